################################################################################
# Analytics: a Glue table over the audit records (partition projection, no
# crawler) and an Athena workgroup with encrypted results and a scan limit.
#
# Object keys (app.spool.object_key):
#   {audit_prefix}dt=YYYY-MM-DD/hour=HH/{host}-{worker}-{seq:06d}.jsonl.gz   (UTC)
################################################################################

locals {
  glue_database = replace(var.name, "-", "_")
  glue_table    = "audit_records"
}

resource "aws_glue_catalog_database" "this" {
  name        = local.glue_database
  description = "${var.name} audit records"
}

resource "aws_glue_catalog_table" "audit" {
  name          = local.glue_table
  database_name = aws_glue_catalog_database.this.name
  description   = "One row per scored request (gzip JSON lines shipped by the app)"
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
      name    = "id"
      type    = "string"
      comment = "Request id"
    }

    columns {
      name    = "ts"
      type    = "string"
      comment = "RFC 3339 UTC time with milliseconds; from_iso8601_timestamp(ts)"
    }

    columns {
      name = "path"
      type = "string"
    }

    columns {
      name = "method"
      type = "string"
    }

    columns {
      name    = "status"
      type    = "int"
      comment = "HTTP status answered"
    }

    columns {
      name    = "request"
      type    = "struct<x1:double,x2:double>"
      comment = "Parsed body; null when the body could not be parsed"
    }

    columns {
      name    = "response"
      type    = "struct<p_bot:double,error:struct<code:string,message:string,field:string>>"
      comment = "p_bot on 200, error otherwise"
    }

    columns {
      name    = "raw"
      type    = "string"
      comment = "The body as received, only when it could not be parsed"
    }

    columns {
      name = "model_version"
      type = "string"
    }

    columns {
      name = "latency_ms"
      type = "double"
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

################################################################################
# Example queries (also in docs/deploy.md)
################################################################################

resource "aws_athena_named_query" "p_bot_per_hour" {
  name        = "${var.name}-p-bot-per-hour"
  description = "Distribution of p_bot per hour over the last 7 days"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, hour,
           count(*)                                   AS scored,
           avg(response.p_bot)                        AS mean_p_bot,
           approx_percentile(response.p_bot, 0.50)    AS p50,
           approx_percentile(response.p_bot, 0.90)    AS p90,
           approx_percentile(response.p_bot, 0.99)    AS p99,
           count_if(response.p_bot >= 0.5)            AS likely_bots,
           histogram(round(floor(response.p_bot * 10) / 10, 1)) AS deciles
    FROM ${local.glue_table}
    WHERE dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
      AND status = 200
    GROUP BY dt, hour
    ORDER BY dt, hour
  SQL
}

resource "aws_athena_named_query" "error_rate_per_hour" {
  name        = "${var.name}-error-rate-per-hour"
  description = "Error rate per hour over the last 7 days"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, hour,
           count(*)                                             AS requests,
           count_if(status >= 400)                              AS errors,
           round(100.0 * count_if(status >= 400) / count(*), 2) AS error_pct,
           count_if(status >= 500)                              AS server_errors
    FROM ${local.glue_table}
    WHERE dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
    GROUP BY dt, hour
    ORDER BY dt, hour
  SQL
}

resource "aws_athena_named_query" "errors_by_code" {
  name        = "${var.name}-errors-by-code"
  description = "Error answers per hour and error code over the last 7 days"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = <<-SQL
    SELECT dt, hour, status, response.error.code AS code, count(*) AS answers
    FROM ${local.glue_table}
    WHERE dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
      AND status >= 400
    GROUP BY dt, hour, status, response.error.code
    ORDER BY dt, hour, answers DESC
  SQL
}
