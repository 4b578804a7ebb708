################################################################################
# Analytics: a Glue table over the audit records (partition projection, no
# crawler) and an Athena workgroup with encrypted results and a scan limit.
# The columns are botscore.audit.schema.COLUMNS (tests/infra/test_terraform.py
# fails when they differ); the example queries run in tests on real records.
# The view audit_answers (audit_answers.sql, created by running a named query
# once) is docs/audit-log.md's reader's rule over the table: the rows of each
# call as its client got it. The example queries count answers from it.
#
# Object keys (botscore.audit.spool.object_key):
#   {audit_prefix}dt=YYYY-MM-DD/hour=HH/{host}-{worker}-{seq:06d}.jsonl.gz   (UTC)
################################################################################

locals {
  glue_database = replace(var.name, "-", "_")
  glue_table    = "audit_records"
  answers_view  = "audit_answers" # audit_answers.sql creates it over glue_table
}

resource "aws_glue_catalog_database" "this" {
  name        = local.glue_database
  description = "${var.name} audit records"
}

resource "aws_glue_catalog_table" "audit" {
  name          = local.glue_table
  database_name = aws_glue_catalog_database.this.name
  description   = "One row per score, or per call that scored nothing (gzip JSON lines, schema 4)"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "EXTERNAL"                  = "TRUE"
    "classification"            = "json"
    "compressionType"           = "gzip"
    "projection.enabled"        = "true"
    "projection.dt.type"        = "date"
    "projection.dt.format"      = "yyyy-MM-dd"
    "projection.dt.range"       = "${var.audit_projection_start},NOW"
    "projection.dt.interval"    = "1"
    "projection.dt.unit"        = "DAYS"
    "projection.hour.type"      = "integer"
    "projection.hour.range"     = "0,23"
    "projection.hour.digits"    = "2"
    "storage.location.template" = "s3://${aws_s3_bucket.audit.bucket}/${var.audit_prefix}dt=$${dt}/hour=$${hour}/"
  }

  partition_keys {
    name    = "dt"
    type    = "string"
    comment = "UTC day, yyyy-MM-dd"
  }

  partition_keys {
    name    = "hour"
    type    = "string"
    comment = "UTC hour, 00-23"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.audit.bucket}/${var.audit_prefix}"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    compressed    = true

    ser_de_info {
      name                  = "jsonl"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
    }

    columns {
      name    = "schema"
      type    = "int"
      comment = "record schema version (3; 2 had no key_id); absent in version 1 records"
    }

    columns {
      name    = "id"
      type    = "string"
      comment = "the call's 'X-Request-ID'; the rows of one batch share it"
    }

    columns {
      name    = "item"
      type    = "int"
      comment = "position of the instance: 0 on /bot-score, 0 to N-1 in a batch; null if none was scored"
    }

    columns {
      name    = "ts"
      type    = "string"
      comment = "arrival time, RFC 3339 UTC with milliseconds ('2026-11-27T01:02:03.045Z')"
    }

    columns {
      name    = "method"
      type    = "string"
      comment = "the HTTP method"
    }

    columns {
      name    = "path"
      type    = "string"
      comment = "the route: '/bot-score', '/bot-score/batch' or '/v2/models/bot-score/infer'"
    }

    columns {
      name    = "status"
      type    = "int"
      comment = "the HTTP status answered"
    }

    columns {
      name    = "x1"
      type    = "double"
      comment = "x1 as scored, or as sent when it was a finite number; else null"
    }

    columns {
      name    = "x2"
      type    = "double"
      comment = "x2 as scored, or as sent when it was a finite number; else null"
    }

    columns {
      name    = "x1_text"
      type    = "string"
      comment = "x1 as sent, in JSON, when it was not a finite number (''a'', 'true', '1e999'): its first BOTSCORE_AUDIT_RAW_MAX_BYTES bytes, null when that is 0"
    }

    columns {
      name    = "x2_text"
      type    = "string"
      comment = "x2 as sent, in JSON, when it was not a finite number: its first BOTSCORE_AUDIT_RAW_MAX_BYTES bytes, null when that is 0"
    }

    columns {
      name    = "raw"
      type    = "string"
      comment = "the body as received: its first BOTSCORE_AUDIT_RAW_MAX_BYTES bytes (256 by default, null when 0), on the row of a call that was not scored"
    }

    columns {
      name    = "p_bot"
      type    = "double"
      comment = "the score answered; null when nothing was scored"
    }

    columns {
      name    = "error_code"
      type    = "string"
      comment = "the error's 'code' ('invalid_type', 'unauthorized', ...); null on a score"
    }

    columns {
      name    = "error_field"
      type    = "string"
      comment = "the field the error names ('x1', 'instances[3].x2'), if any"
    }

    columns {
      name    = "error_message"
      type    = "string"
      comment = "the error's message"
    }

    columns {
      name    = "model_version"
      type    = "string"
      comment = "the model that answered ('X-Model-Version')"
    }

    columns {
      name    = "latency_ms"
      type    = "double"
      comment = "time from arrival to the record being written"
    }

    columns {
      name    = "key_id"
      type    = "string"
      comment = "the API key's id (first 12 hex digits of its SHA-256), never the key; null when none"
    }

    columns {
      name    = "arm"
      type    = "string"
      comment = "during a canary, the arm that answered: `production` or `canary` (its model is `model_version`); else null"
    }

    columns {
      name    = "shadow_version"
      type    = "string"
      comment = "the model scored beside the one that answered: the shadow, if one was set; on a canary row, production"
    }

    columns {
      name    = "shadow_p_bot"
      type    = "double"
      comment = "that model's score (never answered), to 12 significant digits; null when none"
    }
  }
}

# Outcome labels a team uploads (chargebacks, manual reviews): CSV files with a header line
# `id,is_bot` under labels/ of the audit bucket, `id` the scored call's X-Request-ID, `is_bot`
# 1 or 0. The shadow comparison queries join them to the audit rows by id.
resource "aws_glue_catalog_table" "labels" {
  name          = "outcome_labels"
  database_name = aws_glue_catalog_database.this.name
  description   = "Outcome labels joined to audit records by request id (CSV: id,is_bot with a header)"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "EXTERNAL"               = "TRUE"
    "classification"         = "csv"
    "skip.header.line.count" = "1"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.audit.bucket}/labels/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "csv"
      serialization_library = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
      parameters = {
        "field.delim" = ","
      }
    }

    columns {
      name    = "id"
      type    = "string"
      comment = "the X-Request-ID of the scored call"
    }

    columns {
      name    = "is_bot"
      type    = "int"
      comment = "the outcome: 1 a bot, 0 a person"
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = var.name
  description   = "Queries over the ${var.name} audit records"
  force_destroy = var.force_destroy_buckets

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${aws_s3_bucket.athena.bucket}/results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.this.arn
      }
    }
  }
}

# The reader's rule as a view (docs/audit-log.md): a call refused with 503 audit_unavailable
# after its row was written (its 200, or the 4xx it would have answered, then the 503 with the
# same id and ts) keeps only the 503 row. The provider has no resource for an Athena view, so
# this saved query creates it: run it once after `terraform apply`, and again after an apply
# that changes the Glue table (Athena calls a view stale once its table changed). The SQL is in
# audit_answers.sql alone: docs/audit-log.md quotes it, the tests run it.
resource "aws_athena_named_query" "audit_answers_view" {
  name        = "${var.name}-create-audit-answers-view"
  description = "Run once after terraform apply: creates the audit_answers view (the reader's rule) the other queries read"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = file("${path.module}/audit_answers.sql")
}

################################################################################
# Example queries (also in docs/deploy.md). Each counts answers, so each reads
# the view: on the raw table a refused call would also count as what its client
# never got, a score (p_bot_per_hour and the shadow queries) or a 4xx
# (error_rate_per_hour, errors_by_code), and as a call in a second hour when its
# 503 row landed in another one (error_rate_per_hour). No saved query needs
# every recorded row; a look at all the rows of one id reads the table.
################################################################################

resource "aws_athena_named_query" "p_bot_per_hour" {
  name        = "${var.name}-p-bot-per-hour"
  description = "Scores per hour over the last 7 days: how many, their mean, how many likely bots"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, hour,
           count(*)               AS scores,
           avg(p_bot)             AS mean_p_bot,
           max(p_bot)             AS max_p_bot,
           count_if(p_bot >= 0.5) AS likely_bots
    FROM ${local.answers_view}
    WHERE dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
      AND status = 200
    GROUP BY dt, hour
    ORDER BY dt, hour
  SQL
}

resource "aws_athena_named_query" "error_rate_per_hour" {
  name        = "${var.name}-error-rate-per-hour"
  description = "Calls and error answers per hour over the last 7 days (a batch is one call)"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, hour,
           count(DISTINCT id)                                              AS calls,
           count_if(status >= 400)                                         AS errors,
           round(100.0 * count_if(status >= 400) / count(DISTINCT id), 2) AS error_pct,
           count_if(status >= 500)                                         AS server_errors
    FROM ${local.answers_view}
    WHERE dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
    GROUP BY dt, hour
    ORDER BY dt, hour
  SQL
}

resource "aws_athena_named_query" "errors_by_code" {
  name        = "${var.name}-errors-by-code"
  description = "Error answers per hour, status and error code over the last 7 days"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, hour, status, error_code, count(*) AS answers
    FROM ${local.answers_view}
    WHERE dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
      AND status >= 400
    GROUP BY dt, hour, status, error_code
    ORDER BY dt, hour, answers DESC, status, error_code
  SQL
}

################################################################################
# Shadow comparison (docs/model.md): production and shadow scores of the same
# rows over the last 7 days; with outcome labels joined by request id, each
# model's ROC AUC (rank-sum, ties averaged), Brier score and calibration.
################################################################################

resource "aws_athena_named_query" "shadow_score_distribution" {
  name        = "${var.name}-shadow-score-distribution"
  description = "Production and shadow score distributions (tenths) over the rows both scored, last 7 days"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT side, version, tenth, count(*) AS scores
    FROM (
      SELECT 'production' AS side, model_version AS version, least(CAST(floor(p_bot * 10) AS integer), 9) AS tenth
      FROM ${local.answers_view}
      WHERE dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
        AND status = 200 AND shadow_p_bot IS NOT NULL AND coalesce(arm, 'production') = 'production'
      UNION ALL
      SELECT 'shadow', shadow_version, least(CAST(floor(shadow_p_bot * 10) AS integer), 9)
      FROM ${local.answers_view}
      WHERE dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
        AND status = 200 AND shadow_p_bot IS NOT NULL AND coalesce(arm, 'production') = 'production'
    ) AS scored
    GROUP BY side, version, tenth
    ORDER BY side, version, tenth
  SQL
}

resource "aws_athena_named_query" "shadow_disagreement" {
  name        = "${var.name}-shadow-disagreement"
  description = "Per day: rows both models scored, their mean difference, and how often they fall on different sides of 0.5"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, model_version, shadow_version,
           count(*)                                            AS scores,
           avg(shadow_p_bot - p_bot)                           AS mean_difference,
           max(abs(shadow_p_bot - p_bot))                      AS max_abs_difference,
           count_if((p_bot >= 0.5) <> (shadow_p_bot >= 0.5))   AS disagreements,
           round(100.0 * count_if((p_bot >= 0.5) <> (shadow_p_bot >= 0.5)) / count(*), 2) AS disagreement_pct
    FROM ${local.answers_view}
    WHERE dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
      AND status = 200 AND shadow_p_bot IS NOT NULL AND coalesce(arm, 'production') = 'production'
    GROUP BY dt, model_version, shadow_version
    ORDER BY dt, model_version, shadow_version
  SQL
}

resource "aws_athena_named_query" "canary_by_arm" {
  name        = "${var.name}-canary-by-arm"
  description = "Per day, each arm of a canary: rows answered, 5xx and refusal shares, latency, mean score, and the canary's disagreements with production on the same calls"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, arm, model_version,
           count(*)                                                              AS answered,
           round(100.0 * count_if(status >= 500) / count(*), 2)                  AS server_error_pct,
           round(100.0 * count_if(status >= 400 AND status < 500) / count(*), 2) AS refusal_pct,
           avg(latency_ms)                                                       AS mean_latency_ms,
           avg(p_bot)                                                            AS mean_p_bot,
           count_if(arm = 'canary' AND (p_bot >= 0.5) <> (shadow_p_bot >= 0.5)) AS disagreements_with_production
    FROM ${local.answers_view}
    WHERE dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
      AND arm IS NOT NULL
    GROUP BY dt, arm, model_version
    ORDER BY dt, arm, model_version
  SQL
}

resource "aws_athena_named_query" "shadow_roc_auc" {
  name        = "${var.name}-shadow-roc-auc"
  description = "Each model's ROC AUC and Brier score on the labelled rows both scored, last 7 days"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    WITH labelled AS (
      SELECT a.model_version, a.shadow_version, a.p_bot, a.shadow_p_bot, l.is_bot
      FROM ${local.answers_view} a
      JOIN outcome_labels l ON l.id = a.id
      WHERE a.dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
        AND a.status = 200 AND a.shadow_p_bot IS NOT NULL AND coalesce(a.arm, 'production') = 'production'
    ),
    sides AS (
      SELECT 'production' AS side, model_version AS version, p_bot AS score, is_bot FROM labelled
      UNION ALL
      SELECT 'shadow', shadow_version, shadow_p_bot, is_bot FROM labelled
    ),
    ranked AS (
      SELECT side, version, score, is_bot,
             rank() OVER (PARTITION BY side, version ORDER BY score)
               + (count(*) OVER (PARTITION BY side, version, score) - 1) / 2e0 AS score_rank
      FROM sides
    )
    SELECT side, version,
           count(*)    AS labelled,
           sum(is_bot) AS bots,
           (sum(CASE WHEN is_bot = 1 THEN score_rank ELSE 0e0 END) - sum(is_bot) * (sum(is_bot) + 1) / 2e0)
             / CAST(sum(is_bot) * (count(*) - sum(is_bot)) AS double) AS roc_auc,
           avg((score - is_bot) * (score - is_bot))    AS brier_score
    FROM ranked
    GROUP BY side, version
    ORDER BY side, version
  SQL
}

resource "aws_athena_named_query" "shadow_calibration" {
  name        = "${var.name}-shadow-calibration"
  description = "Each model's calibration on the labelled rows both scored: mean score against bot rate per tenth"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    WITH labelled AS (
      SELECT a.model_version, a.shadow_version, a.p_bot, a.shadow_p_bot, l.is_bot
      FROM ${local.answers_view} a
      JOIN outcome_labels l ON l.id = a.id
      WHERE a.dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
        AND a.status = 200 AND a.shadow_p_bot IS NOT NULL AND coalesce(a.arm, 'production') = 'production'
    ),
    sides AS (
      SELECT 'production' AS side, model_version AS version, p_bot AS score, is_bot FROM labelled
      UNION ALL
      SELECT 'shadow', shadow_version, shadow_p_bot, is_bot FROM labelled
    )
    SELECT side, version, least(CAST(floor(score * 10) AS integer), 9) AS tenth,
           count(*)    AS labelled,
           avg(score)  AS mean_score,
           avg(is_bot) AS bot_rate
    FROM sides
    GROUP BY side, version, least(CAST(floor(score * 10) AS integer), 9)
    ORDER BY side, version, tenth
  SQL
}

# Drift of each feature and of the score, per day, against the image's model's training baseline
# (the population stability index the service also emits each minute as DriftX1, DriftX2 and
# DriftScore). The SQL is written by scripts/write-drift-sql.py from the shipped artifact.
resource "aws_athena_named_query" "feature_drift_per_day" {
  name        = "${var.name}-feature-drift-per-day"
  description = "PSI per day of x1, x2 and p_bot against the image's model's training rows (over 0.2: act, docs/model-card.md)"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = templatefile("${path.module}/feature_drift.sql", { answers_view = local.answers_view })
}
