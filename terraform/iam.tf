################################################################################
# IAM: the execution role (ECS agent: pull the image, write logs, read the API
# keys secret) and the task role (the app: put and check audit objects, mount
# the audit spool) are separate.
################################################################################

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

################################################################################
# Execution role
################################################################################

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS agent of ${var.name}: pulls the image, writes the container logs, reads the API keys secret"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # AWS requires "*": GetAuthorizationToken has no resource to scope to.
  }

  statement {
    sid = "PullImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "WriteContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.app.arn, "${aws_cloudwatch_log_group.app.arn}:*"]
  }

  # The API keys: ECS fetches this one secret at task start for the container's `secrets`.
  # Only the execution role may: the app's own role (task role) cannot read it.
  dynamic "statement" {
    for_each = var.api_keys_secret_arn == null ? [] : [1]

    content {
      sid       = "ReadApiKeysSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.api_keys_secret_arn]
    }
  }

  # A secret under a customer-managed key: decrypt through Secrets Manager, for this secret
  # only (Secrets Manager puts the secret's ARN in the encryption context). The service is
  # named in the secret's own region, taken from its ARN.
  dynamic "statement" {
    for_each = var.api_keys_secret_arn != null && var.api_keys_secret_kms_key_arn != null ? [1] : []

    content {
      sid       = "DecryptApiKeysSecret"
      actions   = ["kms:Decrypt"]
      resources = [var.api_keys_secret_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${split(":", var.api_keys_secret_arn)[3]}.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:SecretARN"
        values   = [var.api_keys_secret_arn]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

################################################################################
# Task role: the app may put objects under the audit prefix and read back what
# is there (it HEADs each upload to confirm its size and checksum before it
# deletes the local segment), and mount the audit spool. It can neither list nor
# delete audit objects, nor read anything outside the prefix.
################################################################################

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "The ${var.name} app: ships audit records to S3"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "PutAuditObjects"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.audit_prefix}*"]
  }

  # HeadObject needs s3:GetObject. On SSE-KMS objects a HEAD needs no kms:Decrypt
  # (it returns metadata only), and the role has none: it cannot read the body
  # of an object back, only its size and metadata.
  statement {
    sid       = "CheckShippedAuditObjects"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.audit_prefix}*"]
  }

  # The model registry (docs/model.md): each worker reads the production and shadow
  # pointers, the canary's plan and the artifacts they name. Publishing, shadowing and
  # starting a canary are an operator's. Its objects are SSE-S3 (botscore model publish
  # writes them so), so reading them needs no KMS right.
  statement {
    sid       = "ReadModelRegistry"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}*"]
  }

  # A canary (docs/model.md#canary) is moved on by the workers themselves: its plan (a step, a
  # rollback, promoted) and, once promoted, the production pointer. Only those two objects, only
  # with If-Match on the ETag the worker read (a conditional write never replaces what another wrote
  # since), only SSE-S3 as the bucket requires there. Artifacts and the shadow stay the publisher's.
  statement {
    sid     = "SteerCanary"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}canary",
      "${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}production",
    ]

    condition {
      test     = "Null"
      variable = "s3:if-match"
      values   = ["false"]
    }

    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["AES256"]
    }
  }

  # SSE-KMS: S3 asks KMS for a data key on the caller's behalf.
  statement {
    sid       = "EncryptAuditObjects"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  # ECS mounts the EFS spool with the task role's credentials (iam = "ENABLED"):
  # this file system only, and only through its access point. EFS encrypts at
  # rest itself, through its grant on the key: the role needs no KMS right for it.
  dynamic "statement" {
    for_each = local.audit_spool_on_efs ? [1] : []

    content {
      sid       = "MountAuditSpool"
      actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
      resources = [aws_efs_file_system.spool[0].arn]

      condition {
        test     = "StringEquals"
        variable = "elasticfilesystem:AccessPointArn"
        values   = [aws_efs_access_point.spool[0].arn]
      }
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "put-audit-records"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

################################################################################
# Model publisher: the one role that may write the model registry (the audit
# bucket's policy refuses everyone else there). Operators assume it to run
# `botscore model publish | promote | shadow` (docs/model.md); the account's IAM
# policies decide who may assume it.
################################################################################

data "aws_iam_policy_document" "model_publisher_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"] # the account: its IAM policies say who
    }
  }
}

resource "aws_iam_role" "model_publisher" {
  name               = "${var.name}-model-publisher"
  description        = "Publishes ${var.name} models and moves the registry's pointers (botscore model)"
  assume_role_policy = data.aws_iam_policy_document.model_publisher_assume.json
}

data "aws_iam_policy_document" "model_publisher" {
  # Reading back what it stores and where pointers point: publish checks a version already there.
  statement {
    sid       = "ReadModelRegistry"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}*"]
  }

  # SSE-S3 only, as the bucket policy requires there: the tasks read it without a KMS right.
  statement {
    sid       = "WriteModelRegistry"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.model_registry_prefix}*"]

    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["AES256"]
    }
  }
}

resource "aws_iam_role_policy" "model_publisher" {
  name   = "write-model-registry"
  role   = aws_iam_role.model_publisher.id
  policy = data.aws_iam_policy_document.model_publisher.json
}
