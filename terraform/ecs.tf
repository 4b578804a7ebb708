################################################################################
# ECS Fargate: cluster, task definition, service, autoscaling
################################################################################

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

# The task sizes Fargate runs (Linux): for each task_cpu, the task_memory values (MiB) it
# accepts. The variables are validated one by one; this table refuses the pairs AWS would
# refuse only when it registers the task definition.
locals {
  fargate_memory_by_cpu = {
    "256"  = [512, 1024, 2048]
    "512"  = range(1024, 4097, 1024)
    "1024" = range(2048, 8193, 1024)
    "2048" = range(4096, 16385, 1024)
    "4096" = range(8192, 30721, 1024)
  }
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

# What the app takes to stop after SIGTERM, at worst (botscore.service, botscore.audit.log): uvicorn's
# graceful shutdown of in-flight requests (5 s, botscore.server.UVICORN_OPTIONS), then sealing and
# shipping the spool (audit_shutdown_seconds), then joining the shipper (0.5 s past its deadline) and
# the audit log's two housekeeping threads (5 s each, botscore.audit.log.THREAD_JOIN_SECONDS), rounded
# up. ECS waits stop_timeout for it, with a margin for the process to exit and flush its last EMF
# lines: less, and SIGKILL takes a spool that was still shipping (tests/infra/test_terraform.py ties
# these numbers to the app's).
locals {
  app_graceful_seconds    = 5
  app_thread_join_seconds = 11
  app_drain_seconds       = local.app_graceful_seconds + var.audit_shutdown_seconds + local.app_thread_join_seconds
  stop_margin_seconds     = 5
  stop_timeout            = var.stop_timeout == null ? local.app_drain_seconds + local.stop_margin_seconds : var.stop_timeout
}

locals {
  container_definition = {
    name      = local.container_name
    image     = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"
    essential = true
    user      = "10001:10001"

    readonlyRootFilesystem = true
    privileged             = false
    # ECS waits this long after SIGTERM before SIGKILL: the app's whole drain and a margin.
    stopTimeout = local.stop_timeout

    portMappings = [
      {
        name          = "http"
        containerPort = local.container_port
        hostPort      = local.container_port
        protocol      = "tcp"
      },
    ]

    # The app's settings (app.settings.Settings): each is BOTSCORE_ + a field name in
    # upper case. tests/infra/test_terraform.py checks the names and values against the app.
    environment = [
      { name = "BOTSCORE_HOST", value = "0.0.0.0" },
      { name = "BOTSCORE_PORT", value = tostring(local.container_port) },
      { name = "BOTSCORE_WORKERS", value = tostring(var.workers) },
      { name = "BOTSCORE_MAX_IN_FLIGHT", value = tostring(var.max_in_flight) },
      { name = "BOTSCORE_LOG_LEVEL", value = var.log_level },
      { name = "BOTSCORE_AUDIT_DIR", value = local.audit_dir },
      { name = "BOTSCORE_AUDIT_BUCKET", value = aws_s3_bucket.audit.bucket },
      { name = "BOTSCORE_AUDIT_PREFIX", value = var.audit_prefix },
      { name = "BOTSCORE_MODEL_REGISTRY", value = "s3://${aws_s3_bucket.audit.bucket}/${var.model_registry_prefix}" },
      { name = "BOTSCORE_AUDIT_SHUTDOWN_SECONDS", value = tostring(var.audit_shutdown_seconds) },
      { name = "BOTSCORE_AUDIT_WHEN_FULL", value = var.audit_when_full },
      { name = "BOTSCORE_AUDIT_SYNC", value = var.audit_sync },
      { name = "BOTSCORE_AUDIT_COMMIT_WINDOW_MS", value = tostring(var.audit_commit_window_ms) },
      { name = "BOTSCORE_AUDIT_ADOPT_AFTER_SECONDS", value = tostring(var.audit_adopt_after_seconds) },
      { name = "BOTSCORE_AUDIT_SPOOL_MAX_BYTES", value = tostring(var.audit_spool_max_bytes) },
      { name = "BOTSCORE_AUDIT_RAW_MAX_BYTES", value = tostring(var.audit_raw_max_bytes) },
      # The app's metrics reach CloudWatch as EMF lines in this log stream (monitoring.tf).
      { name = "BOTSCORE_EMF", value = "true" },
      { name = "BOTSCORE_EMF_NAMESPACE", value = local.metrics_namespace },
      { name = "BOTSCORE_EMF_SERVICE", value = var.name },
      # Idle connections outlive the ALB's, or the ALB may send a request on one as the task closes it (502).
      { name = "BOTSCORE_KEEP_ALIVE_SECONDS", value = tostring(var.alb_idle_timeout + 15) },
      { name = "AWS_REGION", value = local.region },
    ]

    # The API keys (BOTSCORE_API_KEYS) are no environment value: ECS reads the secret with
    # the execution role when a task starts and sets the variable in the container, so the
    # task definition, the plan and the state hold only the secret's ARN. A task reads the
    # value once, at its start: a new value reaches the service with a new deployment.
    # Without a secret, `secrets` is null (ECS: none), not an empty list.
    secrets = var.api_keys_secret_arn == null ? null : [
      { name = "BOTSCORE_API_KEYS", valueFrom = var.api_keys_secret_arn },
    ]

    # The only writable path: the audit spool, on EFS or on the task's ephemeral
    # storage (var.audit_spool_storage). The workers' metric files are not on it:
    # BOTSCORE_METRICS_DIR is unset, so the app keeps them in /dev/shm (memory).
    mountPoints = [
      {
        sourceVolume  = "audit-spool"
        containerPath = local.audit_dir
        readOnly      = false
      },
    ]

    linuxParameters = {
      initProcessEnabled = true
      capabilities       = { drop = ["ALL"] }
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "app"
        mode                  = "non-blocking"
        max-buffer-size       = "4m"
      }
    }
  }
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  container_definitions = jsonencode([local.container_definition])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # The audit spool. "efs": the shared EFS file system (efs.tf), mounted over TLS
  # through its access point (uid/gid 10001) with the task role's credentials; it
  # outlives the task. "ephemeral": a bind mount on the task's (encrypted)
  # ephemeral storage, deleted with the task; the image declares VOLUME
  # /var/lib/botscore owned by 10001, so Fargate hands the non-root user a
  # writable directory.
  volume {
    name = "audit-spool"

    dynamic "efs_volume_configuration" {
      for_each = local.audit_spool_on_efs ? [1] : []

      content {
        file_system_id     = aws_efs_file_system.spool[0].id
        transit_encryption = "ENABLED"

        authorization_config {
          access_point_id = aws_efs_access_point.spool[0].id
          iam             = "ENABLED"
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.stop_timeout >= local.app_drain_seconds && local.stop_timeout <= 120
      error_message = "The stop timeout (${local.stop_timeout} s) must cover the app's drain, ${local.app_drain_seconds} s (5 s of in-flight requests, audit_shutdown_seconds = ${var.audit_shutdown_seconds} of shipping, ${local.app_thread_join_seconds} s of thread joins), and Fargate allows at most 120 s: ECS would kill the app while it ships its spool. Leave stop_timeout unset (null) to derive it, or lower audit_shutdown_seconds."
    }

    # The created VPC reaches Secrets Manager only through its own endpoint, in var.region.
    precondition {
      condition     = var.create_vpc && var.api_keys_secret_arn != null ? split(":", var.api_keys_secret_arn)[3] == var.region : true
      error_message = "The API keys secret must be in ${var.region}: the created VPC's tasks reach Secrets Manager only through its endpoint in that region."
    }

    precondition {
      condition     = contains(lookup(local.fargate_memory_by_cpu, tostring(var.task_cpu), []), var.task_memory)
      error_message = "Fargate has no task size of task_cpu = ${var.task_cpu} with task_memory = ${var.task_memory}. It takes, in MiB: 512, 1024 or 2048 with 256 CPU units; 1024 to 4096 with 512; 2048 to 8192 with 1024; 4096 to 16384 with 2048; 8192 to 30720 with 4096 (above 2048 MiB in steps of 1024)."
    }
  }
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.this.arn
  desired_count                     = var.min_capacity
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST" # 1.4.0 or later: EFS volumes need 1.4.0.
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"
  # terraform apply waits for the deployment to finish, and fails when it was rolled back: a bad image
  # is an error for whoever applied it, not a success that the circuit breaker quietly undid.
  wait_for_steady_state = true

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # The circuit breaker sees only tasks that fail to start or fail /healthz. A new image that answers
  # 5xx or slowly passes both: these alarms, on the app's own answers, stop and roll back the deployment
  # while they fire during it (and in the bake time after it).
  alarms {
    enable   = true
    rollback = true
    alarm_names = [
      aws_cloudwatch_metric_alarm.app_5xx_rate.alarm_name,
      aws_cloudwatch_metric_alarm.app_p99_latency.alarm_name,
    ]
  }

  network_configuration {
    subnets          = local.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  lifecycle {
    ignore_changes = [desired_count] # Owned by autoscaling after the first apply.

    precondition {
      condition     = var.create_vpc || (var.vpc_id != null && length(var.private_subnet_ids) >= 2 && (!var.internet_facing || length(var.public_subnet_ids) >= 2))
      error_message = "With create_vpc = false, set vpc_id, at least two private_subnet_ids and, with internet_facing = true, two public_subnet_ids."
    }
  }

  depends_on = [
    aws_lb_listener.http_redirect,
    aws_lb_listener.http_forward,
    aws_lb_listener.https,
    aws_iam_role_policy.execution,
    aws_iam_role_policy.task,
    aws_vpc_endpoint.interface,
    aws_vpc_endpoint.s3,
    # Tasks mount the spool at start: its mount targets, policy and NFS rule first.
    aws_efs_mount_target.spool,
    aws_efs_file_system_policy.spool,
    aws_vpc_security_group_egress_rule.tasks_nfs_spool,
    aws_vpc_security_group_ingress_rule.spool_nfs_from_tasks,
  ]
}

################################################################################
# Autoscaling: target tracking on CPU and on requests per target
################################################################################

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity

  lifecycle {
    precondition {
      condition     = var.min_capacity <= var.max_capacity
      error_message = "min_capacity must not exceed max_capacity."
    }
  }
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = var.scale_in_cooldown
    scale_out_cooldown = var.scale_out_cooldown

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = var.scale_in_cooldown
    scale_out_cooldown = var.scale_out_cooldown

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }
}
