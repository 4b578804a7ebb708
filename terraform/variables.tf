################################################################################
# General
################################################################################

variable "name" {
  description = "Name prefix of every resource (ECS cluster and service, ALB, ECR repository, buckets, ...)."
  type        = string
  default     = "botscore"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name))
    error_message = "name must be 3-22 characters of lower-case letters, digits and '-', starting with a letter (it goes into bucket and ALB names)."
  }
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like an AWS region, e.g. eu-west-1."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource (through the provider's default_tags)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "create_vpc" {
  description = "Create a VPC (private subnets for the tasks and the internal ALB, VPC endpoints for ECR, CloudWatch Logs and S3; public subnets and an internet gateway only with internet_facing = true). false: use vpc_id, private_subnet_ids and (internet_facing = true) public_subnet_ids."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR block of the created VPC (create_vpc = true)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR block of /20 or larger."
  }
}

variable "az_count" {
  description = "Number of availability zones the created VPC spans (create_vpc = true); at most the region's number of zones (3 in most regions), or a postcondition refuses the plan."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 4."
  }
}

variable "vpc_id" {
  description = "Existing VPC (create_vpc = false). Its private subnets must reach ECR, CloudWatch Logs, S3 and, with api_keys_secret_arn, Secrets Manager (NAT gateway or VPC endpoints)."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be null or a VPC id (vpc-...)."
  }
}

variable "public_subnet_ids" {
  description = "Existing public subnets for the internet-facing ALB, in at least two AZs (create_vpc = false and internet_facing = true)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.public_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "public_subnet_ids must be subnet ids (subnet-...)."
  }
}

variable "private_subnet_ids" {
  description = "Existing private subnets for the tasks (and the internal ALB), in at least two AZs (create_vpc = false)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids must be subnet ids (subnet-...)."
  }
}

################################################################################
# Image and tasks
################################################################################

variable "image_tag" {
  description = "Tag of the image in the ECR repository to run (tags are immutable: use a version or git SHA, never latest)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid Docker tag other than 'latest' (the repository's tags are immutable)."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image and the Fargate tasks: X86_64 (docker build --platform linux/amd64) or ARM64 (linux/arm64)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

# Task size and scaling: the defaults below are derived from `make capacity` (docs/capacity.md,
# docs/capacity.json "terraform"; tests/infra/test_terraform.py fails when they differ), run
# with every fsync as slow as an EFS commit and the median of three runs per size:
# - task_cpu/task_memory/workers: the size with the most requests per vCPU at p99 < 50 ms
#   (0.5 vCPU, one worker: 2,380 req/s; 0.25 vCPU: 1,300; 1 vCPU: 2,380 to 3,080), Fargate's least memory;
# - requests_per_target: scale out at 50 % of that, 1,190 req/s a task, times 60 (the ALB metric
#   is per target per minute): the load can double while a new task starts and stay under 50 ms;
# - cpu_target_percent: the CPU a task uses at that rate (58 %), so both policies agree;
# - min_capacity: one task per zone; max_capacity: a cost bound (10 tasks carry 11,900 req/s);
# - max_in_flight: what a worker answers in 100 ms at its p99 < 200 ms rate (2,380 req/s): 238;
# - audit_spool_max_bytes and waf_rate_limit: from the 11,900 req/s the scaling settings carry.
variable "task_cpu" {
  description = "CPU units of a task (1024 = 1 vCPU); from docs/capacity.md."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "task_memory" {
  description = "Memory of a task in MiB; must be a valid Fargate combination with task_cpu (256: 512, 1024 or 2048; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384; 4096: 8192-30720; in steps of 1024 above 2048), or a precondition refuses the plan."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 30720 && var.task_memory % 512 == 0
    error_message = "task_memory must be a multiple of 512 MiB between 512 and 30720."
  }
}

variable "workers" {
  description = "Worker processes per task (BOTSCORE_WORKERS); about one per vCPU."
  type        = number
  default     = 1

  validation {
    condition     = var.workers >= 1 && var.workers <= 64 && floor(var.workers) == var.workers
    error_message = "workers must be a whole number from 1 to 64 (the app's bounds)."
  }
}

variable "max_in_flight" {
  description = "Requests a worker holds at once (BOTSCORE_MAX_IN_FLIGHT); scoring requests past it get a fast 503 with Retry-After. From docs/capacity.md: what a worker answers in 100 ms at its p99 < 200 ms rate; 0 turns shedding off."
  type        = number
  default     = 238

  validation {
    condition     = var.max_in_flight >= 0 && var.max_in_flight <= 100000 && floor(var.max_in_flight) == var.max_in_flight
    error_message = "max_in_flight must be a whole number from 0 (no bound) to 100000 (the app's bounds)."
  }
}

variable "log_level" {
  description = "Level of the app's JSON log lines (BOTSCORE_LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL (Fargate: at most 120). null (the default): the app's drain (5 s of in-flight requests + audit_shutdown_seconds + 11 s of thread joins) plus 5 s, 41 s with the defaults; a value set must cover that drain."
  type        = number
  default     = null

  validation {
    condition     = var.stop_timeout == null ? true : var.stop_timeout >= 2 && var.stop_timeout <= 120 && floor(var.stop_timeout) == var.stop_timeout
    error_message = "stop_timeout must be null (derived from the app's drain) or a whole number of seconds from 2 to 120 (the Fargate maximum)."
  }
}

variable "health_check_grace_period_seconds" {
  description = "Seconds after a task starts during which ECS ignores failed ALB health checks."
  type        = number
  default     = 60

  validation {
    condition     = var.health_check_grace_period_seconds >= 0 && var.health_check_grace_period_seconds <= 2147483647
    error_message = "health_check_grace_period_seconds must not be negative."
  }
}

variable "log_retention_days" {
  description = "Retention of the app's CloudWatch log group, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, ...)."
  }
}

################################################################################
# Audit trail
################################################################################

variable "audit_prefix" {
  description = "Key prefix of the audit objects in the audit bucket (BOTSCORE_AUDIT_PREFIX); empty or ending in '/'."
  type        = string
  default     = "bot-score/"

  validation {
    condition     = var.audit_prefix == "" || can(regex("^[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*/$", var.audit_prefix))
    error_message = "audit_prefix must be empty or end with '/', must not start with '/', and may hold only S3-safe characters."
  }
}

variable "audit_shutdown_seconds" {
  description = "Seconds the app spends sealing and shipping its spool after SIGTERM (BOTSCORE_AUDIT_SHUTDOWN_SECONDS); below stop_timeout."
  type        = number
  default     = 20

  validation {
    condition     = var.audit_shutdown_seconds >= 0 && var.audit_shutdown_seconds <= 110
    error_message = "audit_shutdown_seconds must be from 0 to 110 (it must fit in a Fargate stop_timeout of at most 120 s)."
  }
}

variable "audit_when_full" {
  description = "What the app does when its spool is full (BOTSCORE_AUDIT_WHEN_FULL): reject (503) or drop records."
  type        = string
  default     = "reject"

  validation {
    condition     = contains(["reject", "drop"], var.audit_when_full)
    error_message = "audit_when_full must be reject or drop."
  }
}

variable "audit_spool_storage" {
  description = "Where the audit spool (BOTSCORE_AUDIT_DIR) lives. efs (default): an encrypted EFS file system shared by the service's tasks; a task that dies (crash, OOM kill, failed health check, SIGKILL after the stop timeout) leaves its spool on EFS and a live task of the service adopts and ships its segments within 1.5 x audit_adopt_after_seconds + 11 s (plus the NFS server's lock lease if it still holds the dead task's lock). ephemeral: the task's own ephemeral storage, which AWS deletes when the task stops; everything the task had not shipped by then is lost (up to a minute of traffic at the default segment age, and all of an S3 outage)."
  type        = string
  default     = "efs"

  validation {
    condition     = contains(["efs", "ephemeral"], var.audit_spool_storage)
    error_message = "audit_spool_storage must be efs or ephemeral."
  }
}

variable "audit_sync" {
  description = "When the app fsyncs audit records (BOTSCORE_AUDIT_SYNC). always (default): an answer is sent only after an fsync that covers its record, so 'answered => kept' holds when a task dies (EFS makes it durable across AZs); interval: an fsync every BOTSCORE_AUDIT_SYNC_INTERVAL_MS (500 ms), up to that window lost when a task dies; none: the kernel's page cache, a task's death can lose what the kernel had not written."
  type        = string
  default     = "always"

  validation {
    condition     = contains(["always", "interval", "none"], var.audit_sync)
    error_message = "audit_sync must be always, interval or none."
  }
}

variable "audit_spool_max_bytes" {
  description = "Bound of the audit spool all tasks share on EFS (BOTSCORE_AUDIT_SPOOL_MAX_BYTES); the tasks stop taking requests at it. From docs/capacity.md: an S3 outage of the stated length at the sized load (max_capacity tasks at the scale-out rate) stays under the 80 % at which readiness turns false, so it refuses nothing."
  type        = number
  default     = 69793218560

  validation {
    condition     = var.audit_spool_max_bytes >= 65536 && floor(var.audit_spool_max_bytes) == var.audit_spool_max_bytes
    error_message = "audit_spool_max_bytes must be a whole number of bytes, at least 65536 (the app's bound)."
  }
}

variable "audit_raw_max_bytes" {
  description = "Bytes of a refused request's body the audit record keeps in its raw column for the bucket's whole retention (BOTSCORE_AUDIT_RAW_MAX_BYTES); 0 keeps none. 256 shows the shape of any malformed score and cuts a batch or payload sent by mistake (where card or personal data would sit); set 0 where clients may send such data."
  type        = number
  default     = 256

  validation {
    condition     = var.audit_raw_max_bytes >= 0 && var.audit_raw_max_bytes <= 1048576 && floor(var.audit_raw_max_bytes) == var.audit_raw_max_bytes
    error_message = "audit_raw_max_bytes must be a whole number from 0 to 1048576 (the app's bounds)."
  }
}

variable "audit_adopt_after_seconds" {
  description = "Seconds a worker of another task must be silent, its lock free, before a live task adopts and ships its spool segments (BOTSCORE_AUDIT_ADOPT_AFTER_SECONDS; matters with audit_spool_storage = efs)."
  type        = number
  default     = 30

  validation {
    condition     = var.audit_adopt_after_seconds >= 1 && var.audit_adopt_after_seconds <= 3600
    error_message = "audit_adopt_after_seconds must be from 1 to 3600 (the app's bounds)."
  }
}

variable "audit_transition_days" {
  description = "Days after which audit objects move to S3 Standard-IA (at least 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.audit_transition_days >= 30
    error_message = "audit_transition_days must be at least 30 (the S3 minimum for Standard-IA)."
  }
}

variable "audit_glacier_days" {
  description = "Days after which audit objects move to S3 Glacier Instant Retrieval (still queryable by Athena); at least audit_transition_days + 30 (S3's minimum stay in Standard-IA) and less than audit_expiration_days."
  type        = number
  default     = 90

  validation {
    condition     = var.audit_glacier_days >= 60
    error_message = "audit_glacier_days must be at least 60."
  }
}

variable "audit_expiration_days" {
  description = "Days after which audit objects are deleted."
  type        = number
  default     = 400

  validation {
    condition     = var.audit_expiration_days >= 1
    error_message = "audit_expiration_days must be at least 1."
  }
}

variable "audit_object_lock_mode" {
  description = "S3 Object Lock on the audit bucket: each object version (audit records, model artifacts and pointers) is kept audit_object_lock_days. GOVERNANCE (the default): only an audit_record_admin_arns role can remove a version earlier; COMPLIANCE: nobody, the root user included; null: no Object Lock (trials: terraform destroy can then empty the bucket). Once on, Object Lock stays on for the bucket."
  type        = string
  default     = "GOVERNANCE"
  nullable    = true

  validation {
    condition     = var.audit_object_lock_mode == null ? true : contains(["GOVERNANCE", "COMPLIANCE"], var.audit_object_lock_mode)
    error_message = "audit_object_lock_mode must be GOVERNANCE, COMPLIANCE or null."
  }
}

variable "audit_object_lock_days" {
  description = "Days each object version in the audit bucket is locked (with audit_object_lock_mode set); at most audit_expiration_days."
  type        = number
  default     = 400

  validation {
    condition     = var.audit_object_lock_days >= 1 && floor(var.audit_object_lock_days) == var.audit_object_lock_days
    error_message = "audit_object_lock_days must be a whole number of days, at least 1."
  }
}

variable "audit_record_admin_arns" {
  description = "IAM role ARNs that may delete an audit object version (and bypass a GOVERNANCE lock) to correct the trail, the only principals the bucket policy lets delete anything there (docs/operations.md, \"Correcting an audit record\"). Empty (the default): nobody."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.audit_record_admin_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "audit_record_admin_arns must hold IAM role ARNs (arn:aws:iam::ACCOUNT:role/NAME)."
  }
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy delete non-empty buckets (audit, Athena results, logs). For trials only."
  type        = bool
  default     = false
}

################################################################################
# Load balancer and API keys
################################################################################

variable "internet_facing" {
  description = "Put the ALB on the internet (public subnets). false (default): an internal ALB in the private subnets, reachable only from the VPC and the networks peered or routed to it (the platform's own backends). true requires api_keys_secret_arn."
  type        = bool
  default     = false
}

variable "api_keys_secret_arn" {
  description = "Full ARN (with its 6-character suffix) of an existing Secrets Manager secret whose value is the API keys, comma-separated; ECS hands it to the app as BOTSCORE_API_KEYS when a task starts. null: no keys, the scoring routes are open (allowed only with internet_facing = false). The value is never in Terraform's state, plan or the task definition."
  type        = string
  default     = null

  validation {
    condition     = var.api_keys_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", var.api_keys_secret_arn))
    error_message = "api_keys_secret_arn must be null or the full ARN of a Secrets Manager secret, as create-secret prints it: arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf (the execution role may read exactly that ARN)."
  }
}

variable "api_keys_secret_kms_key_arn" {
  description = "The customer-managed KMS key (ARN) the API keys secret is encrypted with; the execution role may decrypt with it only through Secrets Manager and only for that secret. null: the secret uses the AWS managed key aws/secretsmanager, which needs no grant."
  type        = string
  default     = null

  validation {
    condition     = var.api_keys_secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.api_keys_secret_kms_key_arn))
    error_message = "api_keys_secret_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; not an alias)."
  }
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener. null: plain HTTP on port 80, for trials only."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be null or an ACM certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.2 or later only)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = contains(["ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "ELBSecurityPolicy-TLS13-1-3-2021-06", "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04", "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04"], var.ssl_policy)
    error_message = "ssl_policy must be one of the ELBSecurityPolicy-TLS13-1-2/1-3 policies."
  }
}

variable "alb_ingress_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the ALB. null (default): the VPC's own range (var.vpc_cidr, or the existing VPC's primary CIDR), closed to everything else; name the callers' networks (a peered VPC, an office) to admit them."
  type        = list(string)
  default     = null

  validation {
    condition     = try(length(var.alb_ingress_cidrs) > 0 && alltrue([for c in var.alb_ingress_cidrs : can(cidrhost(c, 0))]), var.alb_ingress_cidrs == null)
    error_message = "alb_ingress_cidrs must be null (the VPC's range) or a non-empty list of IPv4 CIDR blocks."
  }
}

variable "expose_operations_routes" {
  description = "On an internet-facing ALB, let /metrics (it names API key ids), /docs and /openapi.json through to the app. false (default): the ALB answers them 404 itself; they stay reachable from inside the VPC (the tasks' own port). No effect on an internal ALB."
  type        = bool
  default     = false
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the ALB (set false before terraform destroy)."
  type        = bool
  default     = true
}

variable "alb_idle_timeout" {
  description = "ALB idle timeout in seconds."
  type        = number
  default     = 30

  validation {
    condition     = var.alb_idle_timeout >= 1 && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be from 1 to 4000 seconds."
  }
}

variable "waf_enabled" {
  description = "Put a WAF web ACL (AWS managed rules, the per-IP rate limit, its logs) in front of the ALB. null (the default): on when internet_facing, off for the internal ALB, whose callers are the platform's own backends. The WAF bills $0.60 per million requests inspected, plus $5 a month per web ACL and $1 a month per rule (us-east-1 prices)."
  type        = bool
  default     = null
  nullable    = true
}

variable "waf_rate_limit" {
  description = "Requests from one IP address per 5 minutes above which the WAF blocks it. From docs/capacity.md: the load the scaling settings carry (max_capacity tasks at the requests_per_target rate) over the 5 minutes, so one address (callers behind one NAT) may use the whole fleet, never more."
  type        = number
  default     = 3570000

  validation {
    condition     = var.waf_rate_limit >= 10 && var.waf_rate_limit <= 2000000000
    error_message = "waf_rate_limit must be from 10 to 2,000,000,000 (the WAF's bounds)."
  }
}

variable "waf_trusted_cidrs" {
  description = "Source CIDR blocks the WAF's per-IP rate limit does not apply to (scope-down): the platform's own backends, whose load autoscaling and the app's shedding already bound."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.waf_trusted_cidrs : can(cidrhost(c, 0))])
    error_message = "waf_trusted_cidrs must be IPv4 CIDR blocks."
  }
}

variable "waf_log_retention_days" {
  description = "Retention of the WAF's log group, in days. It keeps only blocked and counted requests, with the key headers redacted."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365], var.waf_log_retention_days)
    error_message = "waf_log_retention_days must be a value CloudWatch Logs accepts, at most 365 (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365)."
  }
}

################################################################################
# Scaling
################################################################################

variable "min_capacity" {
  description = "Fewest running tasks (also the initial desired count)."
  type        = number
  default     = 2

  validation {
    condition     = var.min_capacity >= 1 && floor(var.min_capacity) == var.min_capacity
    error_message = "min_capacity must be a whole number of at least 1."
  }
}

variable "max_capacity" {
  description = "Most running tasks; at least min_capacity."
  type        = number
  default     = 10

  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 1000 && floor(var.max_capacity) == var.max_capacity
    error_message = "max_capacity must be a whole number from 1 to 1000."
  }
}

variable "cpu_target_percent" {
  description = "Target average CPU utilisation of the service (target tracking); from docs/capacity.md: a task's CPU at the requests_per_target rate."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be from 10 to 90."
  }
}

variable "requests_per_target" {
  description = "Target ALB requests per task per minute (ALBRequestCountPerTarget target tracking); from docs/capacity.md: 50 % of a task's p99 < 50 ms rate (with EFS commits), times 60."
  type        = number
  default     = 71400

  validation {
    condition     = var.requests_per_target >= 1
    error_message = "requests_per_target must be at least 1."
  }
}

variable "scale_in_cooldown" {
  description = "Seconds after a scale-in before another one."
  type        = number
  default     = 300

  validation {
    condition     = var.scale_in_cooldown >= 0
    error_message = "scale_in_cooldown must not be negative."
  }
}

variable "scale_out_cooldown" {
  description = "Seconds after a scale-out before another one."
  type        = number
  default     = 60

  validation {
    condition     = var.scale_out_cooldown >= 0
    error_message = "scale_out_cooldown must not be negative."
  }
}

################################################################################
# ECR
################################################################################

variable "ecr_force_delete" {
  description = "Let terraform destroy delete the ECR repository while it holds images (they are deleted with it). false (default): destroy stops at a non-empty repository; docs/deploy.md shows how to empty it first."
  type        = bool
  default     = false
}

variable "ecr_keep_images" {
  description = "Tagged images the ECR lifecycle policy keeps (newest first); untagged images expire after a day."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_keep_images >= 1 && floor(var.ecr_keep_images) == var.ecr_keep_images
    error_message = "ecr_keep_images must be a whole number of at least 1."
  }
}

################################################################################
# Monitoring
################################################################################

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (confirm the subscription mail). null: no subscription."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be null or an e-mail address."
  }
}

variable "p99_latency_threshold_seconds" {
  description = "Alarm when the p99 latency is above this many seconds for 3 of 5 minutes: the ALB's TargetResponseTime and the app's own /bot-score distribution (EMF), each its own alarm. The brief's target: 0.2."
  type        = number
  default     = 0.2

  # The app's latency bucket bounds (botscore.ops.metrics.LATENCY_BUCKETS): the EMF p99 is computed from
  # one value per bucket, so only a bound makes the app's alarm fire exactly past the threshold.
  validation {
    condition     = contains([0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5], var.p99_latency_threshold_seconds)
    error_message = "p99_latency_threshold_seconds must be one of the app's latency bucket bounds: 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1 or 2.5."
  }
}

variable "target_5xx_threshold" {
  description = "Alarm when the targets answer more than this many 5xx responses in a minute (for 3 of 5 minutes)."
  type        = number
  default     = 5

  validation {
    condition     = var.target_5xx_threshold >= 0
    error_message = "target_5xx_threshold must not be negative."
  }
}

variable "alarm_5xx_percent" {
  description = "Alarm when more than this share of the app's answers (EMF Errors5xx / Requests) are 5xx, for 3 of 5 minutes."
  type        = number
  default     = 1

  validation {
    condition     = var.alarm_5xx_percent > 0 && var.alarm_5xx_percent <= 100
    error_message = "alarm_5xx_percent must be above 0 and at most 100."
  }
}

variable "alarm_shed_percent" {
  description = "Alarm when more than this share of the app's requests are shed (503 overloaded: more in flight than max_in_flight), for 3 of 5 minutes."
  type        = number
  default     = 1

  validation {
    condition     = var.alarm_shed_percent > 0 && var.alarm_shed_percent <= 100
    error_message = "alarm_shed_percent must be above 0 and at most 100."
  }
}

variable "alarm_oldest_unshipped_seconds" {
  description = "Alarm when the oldest audit record not yet in S3 is older than this, for 2 minutes in a row. Normally it is under a segment's age (60 s) plus an upload; the default is five of those."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_oldest_unshipped_seconds >= 60
    error_message = "alarm_oldest_unshipped_seconds must be at least 60 (a segment is sealed at 60 s)."
  }
}

variable "alarm_upload_failure_minutes" {
  description = "Alarm when audit uploads to S3 have failed in each of this many minutes in a row."
  type        = number
  default     = 5

  validation {
    condition     = var.alarm_upload_failure_minutes >= 1 && var.alarm_upload_failure_minutes <= 60 && floor(var.alarm_upload_failure_minutes) == var.alarm_upload_failure_minutes
    error_message = "alarm_upload_failure_minutes must be a whole number from 1 to 60."
  }
}

variable "alarm_spool_fill_percent" {
  description = "Alarm when the audit spool holds more than this share of audit_spool_max_bytes. At the sized load the spool reaches 50 % about half-way through the S3 outage it is sized to ride out, with as long again before requests are refused."
  type        = number
  default     = 50

  validation {
    condition     = var.alarm_spool_fill_percent > 0 && var.alarm_spool_fill_percent < 100
    error_message = "alarm_spool_fill_percent must be above 0 and below 100."
  }
}

################################################################################
# Analytics
################################################################################

variable "athena_bytes_scanned_cutoff" {
  description = "Largest number of bytes one Athena query in the workgroup may scan (at least 10 MiB)."
  type        = number
  default     = 10737418240

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10485760 (10 MiB, the Athena minimum)."
  }
}

variable "athena_results_expiration_days" {
  description = "Days after which Athena query results are deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.athena_results_expiration_days >= 1
    error_message = "athena_results_expiration_days must be at least 1."
  }
}

variable "audit_projection_start" {
  description = "First day (yyyy-MM-dd) of the dt partition projection; Athena projects dt from it to NOW."
  type        = string
  default     = "2026-01-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.audit_projection_start))
    error_message = "audit_projection_start must be a date yyyy-MM-dd."
  }
}

variable "model_registry_prefix" {
  description = "Key prefix of the model registry in the audit bucket (BOTSCORE_MODEL_REGISTRY, docs/model.md): versions/, the production and shadow pointers, and a canary's plan. The task role may read it, and write the canary's plan and the production pointer with If-Match only."
  type        = string
  default     = "models/bot-score/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*/$", var.model_registry_prefix))
    error_message = "model_registry_prefix must end with '/', must not start with '/', and may hold only S3-safe characters."
  }
}

variable "audit_commit_window_ms" {
  description = "With audit_sync = always: rounds of fsyncs start at least this far apart (BOTSCORE_AUDIT_COMMIT_WINDOW_MS), so an answer waits at most this long for the fsync that covers it and a task makes at most 1000 / this fsyncs a second, each billed by EFS as at least 32 KiB. 25 ms: an answer's wait, the window and an EFS commit (about 5 ms at its tail) stay within the 50 ms p99 budget, and what docs/cost.md prices."
  type        = number
  default     = 25

  validation {
    condition     = var.audit_commit_window_ms >= 0 && var.audit_commit_window_ms <= 1000 && floor(var.audit_commit_window_ms) == var.audit_commit_window_ms
    error_message = "audit_commit_window_ms must be a whole number of milliseconds from 0 to 1000."
  }
}

variable "audit_spool_throughput_mode" {
  description = "EFS throughput mode of the audit spool: provisioned (default: derived by `make cost`, the cheaper at the sized load, docs/cost.md) or elastic (billed per operation, each at least 32 KiB)."
  type        = string
  default     = "provisioned"

  validation {
    condition     = contains(["provisioned", "elastic"], var.audit_spool_throughput_mode)
    error_message = "audit_spool_throughput_mode must be provisioned or elastic."
  }
}

variable "audit_spool_provisioned_mibps" {
  description = "With audit_spool_throughput_mode = provisioned: the spool's throughput in MiB/s ($6.00 a MiB/s-month in us-east-1). Derived by `make cost` from the commit window's bound per task, for the tasks docs/cost.md names, with 25 % headroom; the efs-throughput alarm fires at 80 % of it."
  type        = number
  default     = 7

  validation {
    condition     = var.audit_spool_provisioned_mibps >= 1 && var.audit_spool_provisioned_mibps <= 3414
    error_message = "audit_spool_provisioned_mibps must be from 1 to 3414 (EFS's bounds)."
  }
}

variable "monthly_budget_usd" {
  description = "AWS Budgets alarm on the account's actual monthly cost, in USD, notified at 80 % and 100 % (and forecast 100 %) to the alarm topic. Default: docs/cost.md's figure for the max fleet plus 20 %, from `make cost`. null: no budget."
  type        = number
  default     = 690
  nullable    = true

  validation {
    condition     = var.monthly_budget_usd == null || try(var.monthly_budget_usd > 0, false)
    error_message = "monthly_budget_usd must be a positive number of US dollars, or null."
  }
}

variable "alarm_efs_throughput_percent" {
  description = "The efs-throughput alarm fires when the audit spool's metered EFS throughput is over this share of its permitted throughput for 5 minutes (provisioned throughput throttles at 100 %)."
  type        = number
  default     = 80

  validation {
    condition     = var.alarm_efs_throughput_percent > 0 && var.alarm_efs_throughput_percent < 100
    error_message = "alarm_efs_throughput_percent must be between 0 and 100."
  }
}

variable "alarm_drift_psi" {
  description = "The drift alarm fires when the population stability index of x1, x2 or the score against the serving model's training data (DriftX1, DriftX2, DriftScore) is over this for 10 minutes. 0.2 is the usual line for a shift to act on (docs/model-card.md)."
  type        = number
  default     = 0.2

  validation {
    condition     = var.alarm_drift_psi > 0
    error_message = "alarm_drift_psi must be positive."
  }
}
