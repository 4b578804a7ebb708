################################################################################
# The audit spool on EFS (var.audit_spool_storage = "efs", the default)
#
# The app writes its audit segments to local.audit_dir before it ships them to
# S3. On the task's ephemeral storage they die with the task; on this file
# system, shared by the service's tasks, a task that dies leaves them behind and
# a live task adopts and ships them (BOTSCORE_AUDIT_ADOPT_AFTER_SECONDS).
#
# Every task mounts it the same way: through the access point (uid/gid 10001,
# the container's user, rooted at /spool), over TLS, authorised by the task
# role. The file system policy refuses any other way in.
# With audit_spool_storage = "ephemeral" none of this exists (count = 0).
################################################################################

locals {
  audit_spool_on_efs = var.audit_spool_storage == "efs"

  # The container's user (local.container_definition.user); the access point
  # makes every NFS call from a task act as this user.
  audit_spool_uid = 10001
  audit_spool_gid = 10001
}

# No AWS Backup plan and no automatic backups (off by default for file systems
# created through the API): this is a transient spool, not a record. Segments
# stay here about a minute (longer only while S3 is unreachable); the versioned
# S3 audit bucket is the durable copy, and a restored backup would hold segments
# already shipped, or half-written ones.
resource "aws_efs_file_system" "spool" {
  count = local.audit_spool_on_efs ? 1 : 0

  creation_token   = "${var.name}-audit-spool"
  encrypted        = true
  kms_key_id       = aws_kms_key.this.arn
  performance_mode = "generalPurpose"
  # From the cost model (docs/cost.md, `make cost`): under audit_sync = always each
  # task makes at most 1000 / audit_commit_window_ms fsync rounds a second, and
  # Elastic bills each round's write as at least 32 KiB ($0.06/GB), about $300 a
  # task a month. Provisioned throughput carries the same bound for $6 a MiB/s-month;
  # bursting's size-based baseline would be a trickle for a spool this small.
  throughput_mode                 = var.audit_spool_throughput_mode
  provisioned_throughput_in_mibps = var.audit_spool_throughput_mode == "provisioned" ? var.audit_spool_provisioned_mibps : null

  # No lifecycle_policy: files live for minutes, and Infrequent Access would only
  # add per-read charges when a segment is shipped.

  tags = { Name = "${var.name}-audit-spool" }
}

resource "aws_efs_access_point" "spool" {
  count = local.audit_spool_on_efs ? 1 : 0

  file_system_id = aws_efs_file_system.spool[0].id

  # Every operation through this access point runs as the container's user,
  # whatever user the client claims.
  posix_user {
    uid = local.audit_spool_uid
    gid = local.audit_spool_gid
  }

  # Tasks see /spool as the volume's root; EFS creates it on first use.
  root_directory {
    path = "/spool"

    creation_info {
      owner_uid   = local.audit_spool_uid
      owner_gid   = local.audit_spool_gid
      permissions = "0750"
    }
  }

  tags = { Name = "${var.name}-audit-spool" }
}

# One mount target in each private subnet the tasks run in (AWS allows one per
# AZ: with create_vpc = false, give private_subnet_ids at most one subnet per AZ).
resource "aws_efs_mount_target" "spool" {
  count = local.audit_spool_on_efs ? length(local.private_subnet_ids) : 0

  file_system_id  = aws_efs_file_system.spool[0].id
  subnet_id       = local.private_subnet_ids[count.index]
  security_groups = [aws_security_group.spool[0].id]
}

resource "aws_security_group" "spool" {
  count = local.audit_spool_on_efs ? 1 : 0

  name        = "${var.name}-audit-spool"
  description = "EFS mount targets of the audit spool: NFS from the tasks only"
  vpc_id      = local.vpc_id

  tags = { Name = "${var.name}-audit-spool" }
}

# The group's only rule. No egress rule: NFS replies need none (security groups
# are stateful), and the mount targets open no connection of their own.
resource "aws_vpc_security_group_ingress_rule" "spool_nfs_from_tasks" {
  count = local.audit_spool_on_efs ? 1 : 0

  security_group_id            = aws_security_group.spool[0].id
  description                  = "NFS (TLS) from the tasks"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.tasks.id
}

################################################################################
# File system policy: TLS only, and only the task role through the access point
################################################################################

data "aws_iam_policy_document" "spool_file_system" {
  count = local.audit_spool_on_efs ? 1 : 0

  statement {
    sid       = "DenyPlainNfs"
    effect    = "Deny"
    actions   = ["*"] # Every client action without TLS: the AWS-recommended in-transit policy.
    resources = [aws_efs_file_system.spool[0].arn]

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

  # Mount and write, never ClientRootAccess: the access point's posix_user is the
  # only identity a task has on the file system.
  statement {
    sid       = "TaskRoleMountsThroughTheAccessPoint"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.spool[0].arn]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.task.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.spool[0].arn]
    }
  }
}

resource "aws_efs_file_system_policy" "spool" {
  count = local.audit_spool_on_efs ? 1 : 0

  file_system_id = aws_efs_file_system.spool[0].id
  policy         = data.aws_iam_policy_document.spool_file_system[0].json
}

################################################################################
# Throughput alarm: before provisioned throughput throttles the spool's fsyncs
################################################################################

# MeteredIOBytes (reads at a third, as EFS counts them against the limit) over
# PermittedThroughput, each minute. At 80 % for 5 minutes the fleet is near the
# point where EFS delays writes and every answer under `always` waits longer.
resource "aws_cloudwatch_metric_alarm" "efs_throughput" {
  count = local.audit_spool_on_efs ? 1 : 0

  alarm_name          = "${var.name}-efs-throughput"
  alarm_description   = "The audit spool's metered EFS throughput is over ${var.alarm_efs_throughput_percent} % of what it may use, 5 minutes in a row: more tasks than audit_spool_provisioned_mibps was sized for (docs/cost.md). Runbook: docs/operations.md#efs-throughput"
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_efs_throughput_percent
  treat_missing_data  = "notBreaching" # No I/O, no data: nothing to throttle.
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "used"
    expression  = "100 * (metered / 60) / permitted"
    label       = "Metered throughput, % of permitted"
    return_data = true
  }

  metric_query {
    id = "metered"

    metric {
      namespace   = "AWS/EFS"
      metric_name = "MeteredIOBytes"
      dimensions  = { FileSystemId = aws_efs_file_system.spool[0].id }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "permitted"

    metric {
      namespace   = "AWS/EFS"
      metric_name = "PermittedThroughput"
      dimensions  = { FileSystemId = aws_efs_file_system.spool[0].id }
      period      = 60
      stat        = "Average"
    }
  }
}
