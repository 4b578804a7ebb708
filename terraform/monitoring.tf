################################################################################
# Alarms (to an encrypted SNS topic) and a dashboard. The app's own metrics come from
# the EMF lines each worker writes to its log stream every minute (BOTSCORE_EMF,
# src/botscore/ops/emf.py): namespace local.metrics_namespace, dimension Service =
# var.name. Every alarm has a runbook entry in docs/operations.md under its name.
################################################################################

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
}

# The account keeps its default rights on the topic; EventBridge may publish the
# deployment-failure rule's events, and only that rule's.
resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountOwnsTopic"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission", "sns:RemovePermission",
          "sns:DeleteTopic", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish",
        ]
        Resource = aws_sns_topic.alarms.arn
      },
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "BudgetsPublish"
        Effect    = "Allow"
        Principal = { Service = "budgets.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "DeploymentFailuresPublish"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.deployment_failed.arn } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alb_dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.this.arn_suffix
  }
  alarm_actions  = [aws_sns_topic.alarms.arn]
  app_dimensions = { Service = var.name }
}

resource "aws_cloudwatch_metric_alarm" "p99_latency" {
  alarm_name          = "${var.name}-p99-latency"
  alarm_description   = "ALB TargetResponseTime p99 above ${var.p99_latency_threshold_seconds} s for 3 of 5 minutes. Runbook: docs/operations.md#p99-latency"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p99"
  dimensions          = local.alb_dimensions
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p99_latency_threshold_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  alarm_name          = "${var.name}-target-5xx"
  alarm_description   = "Targets answered more than ${var.target_5xx_threshold} 5xx a minute for 3 of 5 minutes. Runbook: docs/operations.md#target-5xx"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  statistic           = "Sum"
  dimensions          = local.alb_dimensions
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.target_5xx_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "alb_5xx" {
  alarm_name          = "${var.name}-alb-5xx"
  alarm_description   = "The ALB itself answered more than ${var.target_5xx_threshold} 5xx a minute (no healthy target, target timeouts) for 3 of 5 minutes. Runbook: docs/operations.md#alb-5xx"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_ELB_5XX_Count"
  statistic           = "Sum"
  dimensions          = { LoadBalancer = aws_lb.this.arn_suffix }
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.target_5xx_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${var.name}-unhealthy-hosts"
  alarm_description   = "At least one target failed the /healthz health check for 3 of 5 minutes. Runbook: docs/operations.md#unhealthy-hosts"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  statistic           = "Maximum"
  dimensions          = local.alb_dimensions
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "no_healthy_hosts" {
  alarm_name          = "${var.name}-no-healthy-hosts"
  alarm_description   = "No target passes the /healthz health check: the service is down. Runbook: docs/operations.md#no-healthy-hosts"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  statistic           = "Minimum"
  dimensions          = local.alb_dimensions
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "app_p99_latency" {
  alarm_name          = "${var.name}-app-p99-latency"
  alarm_description   = "The app's own /bot-score p99 (EMF Latency) above ${var.p99_latency_threshold_seconds * 1000} ms for 3 of 5 minutes. Runbook: docs/operations.md#app-p99-latency"
  namespace           = local.metrics_namespace
  metric_name         = "Latency"
  extended_statistic  = "p99"
  dimensions          = merge(local.app_dimensions, { Route = "/bot-score" })
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p99_latency_threshold_seconds * 1000
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "app_5xx_rate" {
  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "More than ${var.alarm_5xx_percent} % of the app's answers are 5xx (EMF Errors5xx / Requests) for 3 of 5 minutes. Runbook: docs/operations.md#5xx-rate"
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_5xx_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "5xx (% of requests)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Errors5xx"
      dimensions  = local.app_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Requests"
      dimensions  = local.app_dimensions
      period      = 60
      stat        = "Sum"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "shed_rate" {
  alarm_name          = "${var.name}-shed-rate"
  alarm_description   = "More than ${var.alarm_shed_percent} % of requests shed (503 overloaded) for 3 of 5 minutes: the tasks are past their capacity. Runbook: docs/operations.md#shed-rate"
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_shed_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * shed / requests, 0)"
    label       = "shed (% of requests)"
    return_data = true
  }

  metric_query {
    id = "shed"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Shed"
      dimensions  = local.app_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Requests"
      dimensions  = local.app_dimensions
      period      = 60
      stat        = "Sum"
    }
  }
}

# Drift: the largest of the three PSI figures the workers emit (each the average over the workers),
# over 5-minute periods. Missing data (no scores, or under 200 in an interval) is not a breach.
resource "aws_cloudwatch_metric_alarm" "drift" {
  alarm_name          = "${var.name}-feature-drift"
  alarm_description   = "A feature or the score has drifted from the serving model's training data (PSI over ${var.alarm_drift_psi}) for 10 minutes: the model scores traffic unlike what it learned from. Runbook: docs/operations.md#feature-drift"
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_drift_psi
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "worst"
    expression  = "MAX(METRICS())"
    label       = "Largest drift (PSI) of x1, x2 and the score"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { x1 = "DriftX1", x2 = "DriftX2", score = "DriftScore" }

    content {
      id = metric_query.key

      metric {
        namespace   = local.metrics_namespace
        metric_name = metric_query.value
        dimensions  = local.app_dimensions
        period      = 300
        stat        = "Average"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "oldest_unshipped" {
  alarm_name          = "${var.name}-oldest-unshipped"
  alarm_description   = "The oldest audit record not yet in S3 is older than ${var.alarm_oldest_unshipped_seconds} s, 2 minutes in a row: answered requests are not reaching the bucket. Runbook: docs/operations.md#oldest-unshipped"
  namespace           = local.metrics_namespace
  metric_name         = "OldestUnshippedAge"
  statistic           = "Maximum"
  dimensions          = local.app_dimensions
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_oldest_unshipped_seconds
  treat_missing_data  = "breaching" # no data: no worker is writing EMF lines (a dead app), not an empty spool
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "upload_failures" {
  alarm_name          = "${var.name}-upload-failures"
  alarm_description   = "Audit uploads to S3 failed in each of ${var.alarm_upload_failure_minutes} minutes in a row (they are retried; the spool fills meanwhile). Runbook: docs/operations.md#upload-failures"
  namespace           = local.metrics_namespace
  metric_name         = "UploadFailures"
  statistic           = "Sum"
  dimensions          = local.app_dimensions
  period              = 60
  evaluation_periods  = var.alarm_upload_failure_minutes
  datapoints_to_alarm = var.alarm_upload_failure_minutes
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "model_refusals" {
  alarm_name          = "${var.name}-model-refusals"
  alarm_description   = "A worker refused the model a registry pointer names (a missing version or an artifact that fails validation) and kept serving the one it had. Runbook: docs/operations.md#model-refusals"
  namespace           = local.metrics_namespace
  metric_name         = "ModelRefusals"
  statistic           = "Sum"
  dimensions          = local.app_dimensions
  period              = 60
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "canary_rollback" {
  alarm_name          = "${var.name}-canary-rollback"
  alarm_description   = "A canary's guardrails found a breach (5xx or refusal share, latency, score distribution or disagreement against production) and a worker rolled it back; production answers every request again. Runbook: docs/operations.md#canary-rollback"
  namespace           = local.metrics_namespace
  metric_name         = "CanaryRollbacks"
  statistic           = "Sum"
  dimensions          = local.app_dimensions
  period              = 60
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "spool_fill" {
  alarm_name          = "${var.name}-spool-fill"
  alarm_description   = "The audit spool holds more than ${var.alarm_spool_fill_percent} % of audit_spool_max_bytes; at 100 % the tasks refuse requests (503). Runbook: docs/operations.md#spool-fill"
  namespace           = local.metrics_namespace
  metric_name         = "SpoolFill"
  statistic           = "Maximum"
  dimensions          = local.app_dimensions
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_spool_fill_percent
  treat_missing_data  = "breaching" # no data: no worker is writing EMF lines (a dead app), not an empty spool
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Every worker writes its totals line (Requests, SpoolFill, OldestUnshippedAge ...) every
# emf_interval_seconds (60 s), with or without traffic. No line for 3 minutes: no worker is alive to
# write one, or its lines no longer reach CloudWatch (the log driver, the EMF format); every alarm on
# an app metric is then blind, so this one says so.
resource "aws_cloudwatch_metric_alarm" "emf_missing" {
  alarm_name          = "${var.name}-emf-missing"
  alarm_description   = "No EMF metric line from any worker for 3 minutes in a row: the app is down or its metrics no longer reach CloudWatch, and the other app alarms are blind. Runbook: docs/operations.md#emf-missing"
  namespace           = local.metrics_namespace
  metric_name         = "Requests"
  statistic           = "SampleCount"
  dimensions          = local.app_dimensions
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Workers count each read of the registry that S3 did not answer (at start-up, and at each poll);
# they keep serving (BOTSCORE_MODEL_PATH or the model they had) and follow once it answers again.
resource "aws_cloudwatch_metric_alarm" "model_registry_unreachable" {
  alarm_name          = "${var.name}-model-registry-unreachable"
  alarm_description   = "Workers could not read the model registry (S3 unreachable or refusing) in each of 3 minutes in a row: they serve the model they have (or BOTSCORE_MODEL_PATH, if they started meanwhile) and follow no promotion or rollback. Runbook: docs/operations.md#model-registry-unreachable"
  namespace           = local.metrics_namespace
  metric_name         = "RegistryUnreachable"
  statistic           = "Sum"
  dimensions          = local.app_dimensions
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching" # no lines at all: emf_missing pages for that
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "tasks_below_desired" {
  alarm_name          = "${var.name}-tasks-below-desired"
  alarm_description   = "Fewer tasks running than desired for 5 minutes in a row (tasks failing to start or crash-looping). Runbook: docs/operations.md#tasks-below-desired"
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "missing"
    expression  = "desired - running"
    label       = "tasks desired but not running"
    return_data = true
  }

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = { ClusterName = aws_ecs_cluster.this.name, ServiceName = aws_ecs_service.this.name }
      period      = 60
      stat        = "Maximum"
    }
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = { ClusterName = aws_ecs_cluster.this.name, ServiceName = aws_ecs_service.this.name }
      period      = 60
      stat        = "Minimum"
    }
  }
}

# A deployment the circuit breaker gave up on (and rolled back): no metric says so, an event does.
resource "aws_cloudwatch_event_rule" "deployment_failed" {
  name        = "${var.name}-deployment-failed"
  description = "An ECS deployment of ${var.name} failed. Runbook: docs/operations.md#deployment-failed"

  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Deployment State Change"]
    resources     = [aws_ecs_service.this.id]
    detail        = { eventName = ["SERVICE_DEPLOYMENT_FAILED"] }
  })
}

resource "aws_cloudwatch_event_target" "deployment_failed" {
  rule      = aws_cloudwatch_event_rule.deployment_failed.name
  target_id = "alarms-topic"
  arn       = aws_sns_topic.alarms.arn
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name

  dashboard_body = jsonencode({
    widgets = [
      {
        type   = "alarm"
        x      = 0
        y      = 0
        width  = 24
        height = 3
        properties = {
          title = "Alarms"
          alarms = concat([
            aws_cloudwatch_metric_alarm.p99_latency.arn,
            aws_cloudwatch_metric_alarm.app_p99_latency.arn,
            aws_cloudwatch_metric_alarm.target_5xx.arn,
            aws_cloudwatch_metric_alarm.alb_5xx.arn,
            aws_cloudwatch_metric_alarm.app_5xx_rate.arn,
            aws_cloudwatch_metric_alarm.shed_rate.arn,
            aws_cloudwatch_metric_alarm.oldest_unshipped.arn,
            aws_cloudwatch_metric_alarm.drift.arn,
            aws_cloudwatch_metric_alarm.upload_failures.arn,
            aws_cloudwatch_metric_alarm.model_refusals.arn,
            aws_cloudwatch_metric_alarm.canary_rollback.arn,
            aws_cloudwatch_metric_alarm.model_registry_unreachable.arn,
            aws_cloudwatch_metric_alarm.spool_fill.arn,
            aws_cloudwatch_metric_alarm.emf_missing.arn,
            aws_cloudwatch_metric_alarm.tasks_below_desired.arn,
            aws_cloudwatch_metric_alarm.unhealthy_hosts.arn,
            aws_cloudwatch_metric_alarm.no_healthy_hosts.arn,
          ], aws_cloudwatch_metric_alarm.efs_throughput[*].arn)
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 3
        width  = 12
        height = 6
        properties = {
          title  = "Latency: ALB target response time (s)"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.this.arn_suffix, { stat = "p50", label = "p50" }],
            ["...", { stat = "p99", label = "p99" }],
          ]
          annotations = {
            horizontal = [{ label = "p99 alarm", value = var.p99_latency_threshold_seconds }]
          }
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 3
        width  = 12
        height = 6
        properties = {
          title  = "Requests and 5xx (per minute)"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 60
          metrics = [
            ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.this.arn_suffix],
            [".", "HTTPCode_Target_5XX_Count", ".", ".", ".", "."],
            [".", "HTTPCode_Target_4XX_Count", ".", ".", ".", "."],
            [".", "HTTPCode_ELB_5XX_Count", "LoadBalancer", aws_lb.this.arn_suffix],
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 9
        width  = 8
        height = 6
        properties = {
          title  = "Latency: the app's /bot-score (ms, EMF)"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            [local.metrics_namespace, "Latency", "Service", var.name, "Route", "/bot-score", { stat = "p50", label = "p50" }],
            ["...", { stat = "p99", label = "p99" }],
          ]
          annotations = {
            horizontal = [{ label = "p99 alarm", value = var.p99_latency_threshold_seconds * 1000 }]
          }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 9
        width  = 8
        height = 6
        properties = {
          title  = "Traffic: requests, 5xx, shed, refused (per minute, EMF)"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 60
          metrics = [
            [local.metrics_namespace, "Requests", "Service", var.name],
            [".", "Scores", ".", "."],
            [".", "Errors5xx", ".", "."],
            [".", "Shed", ".", "."],
            [".", "Refused", ".", "."],
          ]
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 9
        width  = 8
        height = 6
        properties = {
          title  = "Audit: records written and shipped (per minute)"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 60
          metrics = [
            [local.metrics_namespace, "RecordsWritten", "Service", var.name],
            [".", "RecordsShipped", ".", "."],
            [".", "RecordsDropped", ".", "."],
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 15
        width  = 8
        height = 6
        properties = {
          title  = "Audit: oldest unshipped record (s)"
          region = local.region
          view   = "timeSeries"
          stat   = "Maximum"
          period = 60
          metrics = [
            [local.metrics_namespace, "OldestUnshippedAge", "Service", var.name],
          ]
          annotations = {
            horizontal = [{ label = "alarm", value = var.alarm_oldest_unshipped_seconds }]
          }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 15
        width  = 8
        height = 6
        properties = {
          title  = "Audit: spool fill (% of audit_spool_max_bytes)"
          region = local.region
          view   = "timeSeries"
          stat   = "Maximum"
          period = 60
          metrics = [
            [local.metrics_namespace, "SpoolFill", "Service", var.name],
          ]
          annotations = {
            horizontal = [{ label = "alarm", value = var.alarm_spool_fill_percent }, { label = "refusing", value = 100 }]
          }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 15
        width  = 8
        height = 6
        properties = {
          title  = "Audit: upload failures, adoptions (per minute); fsync p99 (ms)"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            [local.metrics_namespace, "UploadFailures", "Service", var.name, { stat = "Sum" }],
            [".", "Adoptions", ".", ".", { stat = "Sum" }],
            [".", "FsyncLatency", ".", ".", { stat = "p99", yAxis = "right" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 21
        width  = 12
        height = 6
        properties = {
          title  = "Healthy and unhealthy targets"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            ["AWS/ApplicationELB", "HealthyHostCount", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.this.arn_suffix, { stat = "Minimum" }],
            [".", "UnHealthyHostCount", ".", ".", ".", ".", { stat = "Maximum" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 21
        width  = 12
        height = 6
        properties = {
          title  = "Service CPU and memory (%)"
          region = local.region
          view   = "timeSeries"
          stat   = "Average"
          period = 60
          metrics = [
            ["AWS/ECS", "CPUUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.this.name],
            [".", "MemoryUtilization", ".", ".", ".", "."],
          ]
          annotations = {
            horizontal = [{ label = "CPU target", value = var.cpu_target_percent }]
          }
        }
      },
    ]
  })
}
