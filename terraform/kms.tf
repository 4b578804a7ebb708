################################################################################
# One customer-managed key for the service's data at rest: audit and Athena
# results buckets, the audit spool's EFS file system, CloudWatch log groups,
# the SNS alarm topic (CloudWatch alarms and EventBridge publish to it) and ECR.
#
# EFS needs no statement of its own: it uses the key through a grant that it
# creates, on behalf of whoever creates the file system, via the EFS service
# (kms:CreateGrant, kms:DescribeKey, kms:GenerateDataKeyWithoutPlaintext,
# kms:Decrypt). AccountAdministersKey lets the account's IAM policies allow
# those, and the principal running Terraform already administers this key.
# Tasks mounting the file system never call KMS.
################################################################################

resource "aws_kms_key" "this" {
  description             = "${var.name}: audit records and spool, Athena results, logs, alarms, images"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # The key policy. In a key policy "Resource": "*" means this key; AWS requires it.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*" # AWS's default key policy: the account's IAM policies decide who uses the key.
        Resource  = "*"     # This key (AWS requires "*" in key policies).
      },
      {
        Sid       = "CloudWatchLogsEncryptLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*" # This key (AWS requires "*" in key policies).
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
          }
        }
      },
      {
        Sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*" # This key (AWS requires "*" in key policies).
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        Sid       = "BudgetsPublishToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "budgets.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*" # This key (AWS requires "*" in key policies).
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        Sid       = "EventBridgePublishesToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*" # This key (AWS requires "*" in key policies).
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
