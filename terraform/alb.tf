################################################################################
# Application Load Balancer
# Internal by default, in the private subnets: the callers are the platform's own
# backends, in the VPC or a peered one. Internet-facing, in the public subnets,
# only with var.internet_facing, and then only with API keys (precondition).
# With var.certificate_arn: HTTPS on 443 (TLS 1.2+) and HTTP on 80 redirecting to it.
# Without: plain HTTP on 80, for trials only.
################################################################################

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_20:HTTP is redirected to HTTPS whenever certificate_arn is set (aws_lb_listener.http_redirect); only a certificate-less trial serves plain HTTP.
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = !var.internet_facing
  subnets                    = var.internet_facing ? local.public_subnet_ids : local.private_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = var.alb_idle_timeout

  access_logs {
    bucket  = aws_s3_bucket.logs.id
    prefix  = "alb"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.logs]

  lifecycle {
    precondition {
      condition     = !var.internet_facing || var.api_keys_secret_arn != null
      error_message = "internet_facing = true puts the scoring routes on the internet: set api_keys_secret_arn to a Secrets Manager secret holding the API keys (docs/deploy.md shows how), or keep the load balancer internal."
    }
  }
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; the targets are in private subnets, reachable only from the ALB's security group, and the app serves plain HTTP on its port.
  name                 = var.name
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = local.container_port
  vpc_id               = local.vpc_id
  deregistration_delay = 30

  # The health check is the replacement signal: ECS replaces a task the ALB finds unhealthy.
  # So it asks only what replacing the task can fix: does this task's process answer
  # (/healthz, within 5 s, three times in a row), and can it use the spool that the other
  # tasks are seen writing to (/healthz 503 local_fault otherwise)? Not /readyz: its reasons (the spool near its
  # bound during an S3 outage, a stalled EFS commit) are shared by every task on the shared
  # spool, and would cycle the whole fleet without helping. docs/operations.md, "Health".
  health_check {
    enabled             = true
    protocol            = "HTTP"
    path                = local.liveness_path
    port                = "traffic-port"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count = local.https_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  count = local.https_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "http_forward" {
  count = local.https_enabled ? 0 : 1

  #checkov:skip=CKV_AWS_2:Exists only when no certificate_arn is given, for trials; with a certificate port 80 redirects to HTTPS (aws_lb_listener.http_redirect).
  #checkov:skip=CKV_AWS_103:Same listener: plain HTTP for trials without a certificate, so there is no TLS policy to set.
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

# On an internet-facing ALB the operations routes are not the internet's: /metrics names
# API key ids, /docs and /openapi.json map the API. The ALB answers them 404 itself unless
# var.expose_operations_routes; inside the VPC they stay reachable on the tasks' port.
locals {
  operations_paths = ["/metrics", "/docs", "/docs/*", "/openapi.json", "/static-offline-docs/*"]
  serving_listener = local.https_enabled ? aws_lb_listener.https[0].arn : aws_lb_listener.http_forward[0].arn
  hide_operations  = var.internet_facing && !var.expose_operations_routes
}

resource "aws_lb_listener_rule" "operations_not_found" {
  count = local.hide_operations ? 1 : 0

  listener_arn = local.serving_listener
  priority     = 1

  action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = jsonencode({ error = { code = "not_found", message = "not found", field = null } })
    }
  }

  condition {
    path_pattern {
      values = local.operations_paths
    }
  }
}

################################################################################
# WAF in front of the ALB: AWS managed rules and a per-IP rate limit derived from
# the measured capacity (docs/capacity.md). Its logs keep only blocked and counted
# requests (counted ones too when a rule group's override counts them), with the
# headers that carry API keys redacted. No sampled requests: the console's samples
# hold every header as received (Authorization included) and logging's redaction
# does not reach them.
#
# On by default only on an internet-facing ALB (var.waf_enabled = null): an internal
# one's callers are the platform's own backends, and the WAF bills per request
# ($0.60 per million, plus $5 a month per web ACL and $1 per rule, us-east-1).
################################################################################

locals {
  waf_enabled = var.waf_enabled == null ? var.internet_facing : var.waf_enabled
}

resource "aws_wafv2_web_acl" "this" {
  count = local.waf_enabled ? 1 : 0

  name  = var.name
  scope = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "aws-common"
    priority = 10

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"

        # Its 8 KB body limit would refuse batch and infer calls the app takes (up to 128 KiB):
        # the app bounds bodies itself (413), so the WAF only counts them.
        rule_action_override {
          name = "SizeRestrictions_BODY"
          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-common"
      sampled_requests_enabled   = false
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 20

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-known-bad-inputs"
      sampled_requests_enabled   = false
    }
  }

  # Anonymising services (VPNs, Tor, proxies) are blocked. Requests from hosting
  # providers are only counted: the service's callers may well run in a cloud.
  # Internet-facing only: an internal ALB's callers have private addresses, which the
  # list can never hold, and each rule is billed per request it inspects.
  dynamic "rule" {
    for_each = var.internet_facing ? [1] : []

    content {
      name     = "aws-anonymous-ip"
      priority = 30

      override_action {
        none {}
      }

      statement {
        managed_rule_group_statement {
          vendor_name = "AWS"
          name        = "AWSManagedRulesAnonymousIpList"

          rule_action_override {
            name = "HostingProviderIPList"

            action_to_use {
              count {}
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name}-aws-anonymous-ip"
        sampled_requests_enabled   = false
      }
    }
  }

  # One address may send what the whole fleet is sized to carry (var.waf_rate_limit, from
  # docs/capacity.md), never more; the platform's own backends (var.waf_trusted_cidrs) are left
  # to autoscaling and the app's shedding.
  rule {
    name     = "rate-limit-per-ip"
    priority = 40

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.waf_rate_limit
        evaluation_window_sec = 300
        aggregate_key_type    = "IP"

        dynamic "scope_down_statement" {
          for_each = length(var.waf_trusted_cidrs) > 0 ? [1] : []

          content {
            not_statement {
              statement {
                ip_set_reference_statement {
                  arn = aws_wafv2_ip_set.trusted[0].arn
                }
              }
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit-per-ip"
      sampled_requests_enabled   = false
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = false
  }
}

resource "aws_wafv2_ip_set" "trusted" {
  count = local.waf_enabled && length(var.waf_trusted_cidrs) > 0 ? 1 : 0

  name               = "${var.name}-trusted"
  scope              = "REGIONAL"
  ip_address_version = "IPV4"
  addresses          = var.waf_trusted_cidrs
}

resource "aws_wafv2_web_acl_association" "this" {
  count = local.waf_enabled ? 1 : 0

  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this[0].arn
}

resource "aws_cloudwatch_log_group" "waf" {
  count = local.waf_enabled ? 1 : 0

  #checkov:skip=CKV_AWS_338:Kept var.waf_log_retention_days (30 by default): it holds only blocked and counted requests, for investigating an attack or a false positive, not an audit trail (the audit bucket is).
  name              = "aws-waf-logs-${var.name}" # WAF requires the aws-waf-logs- prefix.
  retention_in_days = var.waf_log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  count = local.waf_enabled ? 1 : 0

  resource_arn            = aws_wafv2_web_acl.this[0].arn
  log_destination_configs = [aws_cloudwatch_log_group.waf[0].arn]

  # Headers that carry API keys: the app reads Authorization (Bearer); x-api-key is the
  # other common convention, so a client that sends its key there is not logged either.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }

  redacted_fields {
    single_header {
      name = "x-api-key"
    }
  }

  # Allowed requests are the service's traffic, which the audit log already keeps; logging
  # each of them would cost more than the tasks at the sized load.
  logging_filter {
    default_behavior = "DROP"

    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"

      condition {
        action_condition {
          action = "BLOCK"
        }
      }

      condition {
        action_condition {
          action = "COUNT"
        }
      }

      # A rule of a managed group overridden to count (SizeRestrictions_BODY, HostingProviderIPList)
      # is logged with this action, not COUNT: without it, what the overrides let through goes unseen.
      condition {
        action_condition {
          action = "EXCLUDED_AS_COUNT"
        }
      }
    }
  }
}
