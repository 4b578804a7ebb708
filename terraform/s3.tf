################################################################################
# Buckets
# - audit:   the audit records the app ships (s3:PutObject under var.audit_prefix,
#            create-only) and the model registry (var.model_registry_prefix,
#            written by the model publisher role only)
# - athena:  Athena query results
# - logs:    ALB access logs, VPC flow logs and the other buckets' access logs
################################################################################

locals {
  audit_bucket_name  = "${var.name}-audit-${local.bucket_suffix}"
  athena_bucket_name = "${var.name}-athena-${local.bucket_suffix}"
  logs_bucket_name   = "${var.name}-logs-${local.bucket_suffix}"
}

################################################################################
# Audit bucket
################################################################################

resource "aws_s3_bucket" "audit" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery decision for the account, not this service; versioning keeps every record object.
  bucket        = local.audit_bucket_name
  force_destroy = var.force_destroy_buckets
}

resource "aws_s3_bucket_ownership_controls" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    object_ownership = "BucketOwnerEnforced" # ACLs disabled
  }
}

resource "aws_s3_bucket_public_access_block" "audit" {
  bucket                  = aws_s3_bucket.audit.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "audit" {
  bucket = aws_s3_bucket.audit.id

  versioning_configuration {
    status = "Enabled"
  }
}

# Object Lock: every object version in the bucket (audit records, model artifacts and pointers) is
# kept for audit_object_lock_days whatever anyone asks. GOVERNANCE by default: an audit record admin
# (var.audit_record_admin_arns, with s3:BypassGovernanceRetention) can still remove a version that
# must not be kept (docs/operations.md, "Correcting an audit record"); COMPLIANCE: nobody, the root
# user included. This resource turns Object Lock on for an existing bucket too (versioning is on);
# once on, it cannot be turned off.
resource "aws_s3_bucket_object_lock_configuration" "audit" {
  count = var.audit_object_lock_mode == null ? 0 : 1

  bucket = aws_s3_bucket.audit.id

  rule {
    default_retention {
      mode = var.audit_object_lock_mode
      days = var.audit_object_lock_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.audit]

  lifecycle {
    precondition {
      condition     = var.audit_object_lock_days <= var.audit_expiration_days
      error_message = "audit_object_lock_days = ${var.audit_object_lock_days} is longer than audit_expiration_days = ${var.audit_expiration_days}: records would be locked past the day they are meant to be deleted."
    }
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    id     = "audit-records"
    status = "Enabled"

    filter {
      prefix = var.audit_prefix
    }

    transition {
      days          = var.audit_transition_days
      storage_class = "STANDARD_IA"
    }

    transition {
      days          = var.audit_glacier_days
      storage_class = "GLACIER_IR"
    }

    expiration {
      days = var.audit_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # The days are validated one by one; S3 also requires an object to spend 30 days in
  # Standard-IA before a rule moves it on, and refuses the whole configuration at apply
  # otherwise. (Preconditions, not validations: a validation naming another variable needs
  # Terraform 1.9, and this configuration supports 1.6.)
  lifecycle {
    precondition {
      condition     = var.audit_glacier_days >= var.audit_transition_days + 30
      error_message = "audit_glacier_days = ${var.audit_glacier_days} is less than 30 days after audit_transition_days = ${var.audit_transition_days}: S3 moves objects out of Standard-IA only after 30 days there. Set audit_glacier_days to ${var.audit_transition_days + 30} or more."
    }

    precondition {
      condition     = var.audit_glacier_days < var.audit_expiration_days
      error_message = "audit_expiration_days = ${var.audit_expiration_days} must be after audit_glacier_days = ${var.audit_glacier_days}."
    }
  }
}

resource "aws_s3_bucket_logging" "audit" {
  bucket        = aws_s3_bucket.audit.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${local.audit_bucket_name}/"
}

resource "aws_s3_bucket_notification" "audit" {
  bucket      = aws_s3_bucket.audit.id
  eventbridge = true # New audit objects are visible on the default event bus for whoever wants them.
}

# The audit trail is append-only, whoever asks: the bucket policy binds every principal of every
# account, whatever its IAM policies allow (an explicit Deny wins), where a role's own policy binds
# only that role. tests/infra/test_terraform_audit_trail.py evaluates these statements.
data "aws_iam_policy_document" "audit_bucket" {
  statement {
    sid       = "DenyPlainHttp"
    effect    = "Deny"
    actions   = ["s3:*"] # Deny every action over plain HTTP: the AWS-recommended TLS-only policy.
    resources = [aws_s3_bucket.audit.arn, "${aws_s3_bucket.audit.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"] # Everyone, in a Deny.
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # An audit object, or a model version, is created, never replaced: a PUT there must be a
  # conditional create (If-None-Match: *), which S3 refuses with 412 when the key exists. The shipper
  # sends it, and takes a 412 on a retry for success once the stored object is the one it sent.
  statement {
    sid       = "CreateOnlyAuditRecordsAndModelVersions"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.audit_prefix}*", "${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}versions/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["true"] # the header is absent: a plain PUT, which would overwrite
    }
  }

  # No audit record and no model is deleted by a principal: they leave by the lifecycle rules only
  # (which no bucket policy binds), after audit_expiration_days. An audit record admin, if there is
  # one, may remove a version that must not be kept, and only that. (Operators' own uploads, such as
  # the outcome labels under labels/, stay theirs to manage.)
  statement {
    sid    = "NoDeletesButByAuditRecordAdmins"
    effect = "Deny"
    actions = [
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:BypassGovernanceRetention",
      "s3:PutObjectRetention",
      "s3:PutObjectLegalHold",
    ]
    resources = ["${aws_s3_bucket.audit.arn}/${var.audit_prefix}*", "${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    dynamic "condition" {
      for_each = length(var.audit_record_admin_arns) > 0 ? [1] : [] # none: everyone is refused

      content {
        test     = "ArnNotEquals"
        variable = "aws:PrincipalArn"
        values   = var.audit_record_admin_arns
      }
    }
  }

  # The model registry moves what the whole fleet serves: only the publisher role writes there
  # (botscore model publish, promote, shadow, canary), and the tasks, whose own policy lets them
  # write the canary's plan and the production pointer alone, conditionally (SteerCanary in iam.tf);
  # not anyone with account-wide S3 rights.
  statement {
    sid       = "ModelRegistryWrittenByThePublisherOnly"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.model_publisher.arn, aws_iam_role.task.arn]
    }
  }

  # The tasks read the registry with s3:GetObject alone, no KMS right: an object there under the
  # bucket's KMS default would be unreadable to them. So only SSE-S3 is accepted there.
  statement {
    sid       = "ModelRegistryEncryptedWithSseS3"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals" # an absent header matches too: the bucket's default would apply
      variable = "s3:x-amz-server-side-encryption"
      values   = ["AES256"]
    }
  }
}

resource "aws_s3_bucket_policy" "audit" {
  bucket = aws_s3_bucket.audit.id
  policy = data.aws_iam_policy_document.audit_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.audit]

  # The statements above tell the two prefixes apart: were one inside the other, the task could write
  # the registry, or the registry's pointers could not move.
  lifecycle {
    precondition {
      condition     = var.audit_prefix != "" && !startswith(var.model_registry_prefix, var.audit_prefix) && !startswith(var.audit_prefix, var.model_registry_prefix)
      error_message = "model_registry_prefix = ${var.model_registry_prefix} and audit_prefix = ${var.audit_prefix} overlap (or audit_prefix is empty): the task, which writes audit objects, could then write the registry. Give each its own prefix."
    }
  }
}

################################################################################
# Athena results bucket
################################################################################

resource "aws_s3_bucket" "athena" {
  #checkov:skip=CKV_AWS_144:Query results are disposable (they expire after athena_results_expiration_days); replicating them to another region buys nothing.
  bucket        = local.athena_bucket_name
  force_destroy = var.force_destroy_buckets
}

resource "aws_s3_bucket_ownership_controls" "athena" {
  bucket = aws_s3_bucket.athena.id

  rule {
    object_ownership = "BucketOwnerEnforced" # ACLs disabled
  }
}

resource "aws_s3_bucket_public_access_block" "athena" {
  bucket                  = aws_s3_bucket.athena.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "athena" {
  bucket = aws_s3_bucket.athena.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "athena" {
  bucket = aws_s3_bucket.athena.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "athena" {
  bucket = aws_s3_bucket.athena.id

  rule {
    id     = "expire-results"
    status = "Enabled"

    filter {}

    expiration {
      days = var.athena_results_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_logging" "athena" {
  bucket        = aws_s3_bucket.athena.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${local.athena_bucket_name}/"
}

resource "aws_s3_bucket_notification" "athena" {
  bucket      = aws_s3_bucket.athena.id
  eventbridge = true
}

data "aws_iam_policy_document" "athena_bucket" {
  statement {
    sid       = "DenyPlainHttp"
    effect    = "Deny"
    actions   = ["s3:*"] # Deny every action over plain HTTP: the AWS-recommended TLS-only policy.
    resources = [aws_s3_bucket.athena.arn, "${aws_s3_bucket.athena.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"] # Everyone, in a Deny.
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "athena" {
  bucket = aws_s3_bucket.athena.id
  policy = data.aws_iam_policy_document.athena_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.athena]
}

################################################################################
# Logs bucket: ALB access logs, VPC flow logs, S3 server access logs
################################################################################

# ALB access logs are delivered by a regional ELB account in the regions opened before
# August 2022, and by the log-delivery service principal in the later ones. The
# aws_elb_service_account data source knows the former only (the list below is the
# provider's, from internal/service/elb/service_account_data_source.go) and fails with
# "unsupported AWS Region" in any other, e.g. eu-central-2, ap-south-2, il-central-1 or
# ca-west-1: it is read only where it has an account.
locals {
  elb_account_regions = [
    "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ca-central-1", "cn-north-1", "cn-northwest-1",
    "eu-central-1", "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2", "eu-west-3", "me-south-1",
    "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-west-1", "us-west-2",
  ]
}

data "aws_elb_service_account" "this" {
  count = contains(local.elb_account_regions, var.region) ? 1 : 0
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log destination of the other buckets; logging it into itself would loop.
  #checkov:skip=CKV_AWS_144:Operational logs with a short life; replicating them to another region buys nothing.
  #checkov:skip=CKV_AWS_145:ALB access logs and S3 server access logs can only be delivered to SSE-S3 (AES256) buckets, not SSE-KMS.
  bucket        = local.logs_bucket_name
  force_destroy = var.force_destroy_buckets
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced" # ACLs disabled
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256" # The only encryption ALB and S3 access-log delivery support.
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"

    filter {}

    # Standard-IA only pays off for logs kept well past its 30-day minimum.
    dynamic "transition" {
      for_each = var.log_retention_days > 60 ? [30] : []
      content {
        days          = transition.value
        storage_class = "STANDARD_IA"
      }
    }

    expiration {
      days = var.log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_notification" "logs" {
  bucket      = aws_s3_bucket.logs.id
  eventbridge = true
}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid       = "DenyPlainHttp"
    effect    = "Deny"
    actions   = ["s3:*"] # Deny every action over plain HTTP: the AWS-recommended TLS-only policy.
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"] # Everyone, in a Deny.
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # ALB access logs: regions from before August 2022 deliver as the regional ELB account,
  # newer ones as the log-delivery service.
  dynamic "statement" {
    for_each = data.aws_elb_service_account.this[*].arn # one statement, or none

    content {
      sid       = "AlbAccessLogs"
      actions   = ["s3:PutObject"]
      resources = ["${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"]

      principals {
        type        = "AWS"
        identifiers = data.aws_elb_service_account.this[*].arn
      }
    }
  }

  statement {
    sid       = "AlbAccessLogsDeliveryService"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["logdelivery.elasticloadbalancing.amazonaws.com"]
    }
  }

  statement {
    sid       = "VpcFlowLogsWrite"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/vpc-flow-logs/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "VpcFlowLogsAclCheck"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.logs.arn]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3-access/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
