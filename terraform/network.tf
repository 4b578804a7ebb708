################################################################################
# Network: a VPC over var.az_count AZs with private subnets (tasks, and the
# internal ALB) and, only for an internet-facing ALB, public subnets (ALB only)
# with an internet gateway. The private subnets have no route to the internet:
# the tasks reach S3 through a gateway endpoint and ECR and CloudWatch Logs
# through interface endpoints, so no NAT gateway is needed.
# With create_vpc = false the service uses var.vpc_id and its subnets instead.
################################################################################

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, var.az_count)

  vpc_id             = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  public_subnet_ids  = var.create_vpc ? aws_subnet.public[*].id : var.public_subnet_ids
  private_subnet_ids = var.create_vpc ? aws_subnet.private[*].id : var.private_subnet_ids

  # Public subnets and the internet gateway exist for an internet-facing ALB only.
  create_public_subnets = var.create_vpc && var.internet_facing

  # Endpoints the tasks need: image pulls (ecr.api, ecr.dkr), the awslogs driver (logs) and,
  # with API keys, the secret ECS reads at task start (secretsmanager).
  interface_endpoints = var.create_vpc ? toset(concat(["ecr.api", "ecr.dkr", "logs"], var.api_keys_secret_arn == null ? [] : ["secretsmanager"])) : toset([])

  # Who reaches the ALB: the callers named in var.alb_ingress_cidrs, else the VPC's own range only.
  vpc_cidr          = var.create_vpc ? var.vpc_cidr : data.aws_vpc.existing[0].cidr_block
  alb_ingress_cidrs = var.alb_ingress_cidrs == null ? [local.vpc_cidr] : var.alb_ingress_cidrs

  # Accounts whose resources the endpoints let the tasks reach: this one, and the API keys
  # secret's (it may live in a security account).
  endpoint_accounts = distinct(concat([local.account_id], var.api_keys_secret_arn == null ? [] : [split(":", var.api_keys_secret_arn)[4]]))
}

data "aws_vpc" "existing" {
  count = var.create_vpc ? 0 : 1

  id = var.vpc_id
}

resource "aws_vpc" "this" {
  count = var.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.name }
}

# The default security group of the VPC allows nothing (nothing uses it).
resource "aws_default_security_group" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name}-default-deny" }
}

resource "aws_flow_log" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id                   = aws_vpc.this[0].id
  traffic_type             = "ALL"
  log_destination_type     = "s3"
  log_destination          = "${aws_s3_bucket.logs.arn}/vpc-flow-logs/"
  max_aggregation_interval = 600

  depends_on = [aws_s3_bucket_policy.logs]
}

resource "aws_subnet" "public" {
  count = local.create_public_subnets ? var.az_count : 0

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = false # Only the ALB lives here; it gets its addresses itself.

  tags = { Name = "${var.name}-public-${local.azs[count.index]}" }
}

resource "aws_subnet" "private" {
  count = var.create_vpc ? var.az_count : 0

  vpc_id            = aws_vpc.this[0].id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index + 8)

  tags = { Name = "${var.name}-private-${local.azs[count.index]}" }
}

resource "aws_internet_gateway" "this" {
  count = local.create_public_subnets ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = var.name }
}

resource "aws_route_table" "public" {
  count = local.create_public_subnets ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name}-public" }
}

resource "aws_route" "public_internet" {
  count = local.create_public_subnets ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = local.create_public_subnets ? var.az_count : 0

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table" "private" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name}-private" }
}

resource "aws_route_table_association" "private" {
  count = var.create_vpc ? var.az_count : 0

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

# Endpoint policies: the tasks reach only this account's resources through the endpoints, so
# a compromised task cannot copy the audit trail to a bucket of someone else's. The S3 endpoint
# also lets image pulls read ECR's layer bucket, which AWS owns (ECR serves layers from S3).
resource "aws_vpc_endpoint" "s3" {
  count = var.create_vpc ? 1 : 0

  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private[0].id]

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "OwnAccountsBuckets"
        Effect    = "Allow"
        Principal = "*"
        Action    = "s3:*"
        Resource  = "*"
        Condition = { StringEquals = { "aws:ResourceAccount" = local.endpoint_accounts } }
      },
      {
        Sid       = "EcrImageLayers"
        Effect    = "Allow"
        Principal = "*"
        Action    = "s3:GetObject"
        Resource  = "arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket/*"
      },
    ]
  })

  tags = { Name = "${var.name}-s3" }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this[0].id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid       = "OwnAccountsResources"
        Effect    = "Allow"
        Principal = "*"
        Action    = "*"
        Resource  = "*"
        Condition = { StringEquals = { "aws:ResourceAccount" = local.endpoint_accounts } }
      }],
      # A registry token names no resource, so no account either: allowed as such.
      each.key == "ecr.api" ? [{
        Sid       = "EcrToken"
        Effect    = "Allow"
        Principal = "*"
        Action    = "ecr:GetAuthorizationToken"
        Resource  = "*"
      }] : [],
    )
  })

  tags = { Name = "${var.name}-${each.key}" }
}

resource "aws_security_group" "endpoints" {
  count = var.create_vpc ? 1 : 0

  name        = "${var.name}-endpoints"
  description = "Interface VPC endpoints: HTTPS from the tasks"
  vpc_id      = aws_vpc.this[0].id

  tags = { Name = "${var.name}-endpoints" }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_tasks" {
  count = var.create_vpc ? 1 : 0

  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the tasks"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.tasks.id
}

################################################################################
# Security groups of the ALB and the tasks
################################################################################

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "ALB of ${var.name}: HTTP(S) from the allowed CIDRs, out to the tasks"
  vpc_id      = local.vpc_id

  tags = { Name = "${var.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each = toset(local.alb_ingress_cidrs)

  #checkov:skip=CKV_AWS_260:The default CIDR is the VPC's own range; an internet-facing ALB requires API keys (precondition). With a certificate port 80 only answers a redirect to HTTPS; without one (trials) it is the service port. The WAF sits in front.
  security_group_id = aws_security_group.alb.id
  description       = local.https_enabled ? "HTTP (redirected to HTTPS)" : "HTTP (trial without certificate)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.key
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = local.https_enabled ? toset(local.alb_ingress_cidrs) : toset([])

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.key
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the tasks' port"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "Tasks of ${var.name}: the app port from the ALB, HTTPS out to AWS APIs"
  vpc_id      = local.vpc_id

  tags = { Name = "${var.name}-tasks" }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "App port from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

# HTTPS to the interface endpoints (created VPC) or, in an existing VPC, to
# whatever reaches ECR, CloudWatch Logs and S3 there (VPC endpoints or a NAT gateway).
resource "aws_vpc_security_group_egress_rule" "tasks_https_vpc" {
  count = var.create_vpc ? 1 : 0

  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to the interface VPC endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_security_group_egress_rule" "tasks_https_s3" {
  count = var.create_vpc ? 1 : 0

  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3[0].prefix_list_id
}

resource "aws_vpc_security_group_egress_rule" "tasks_https_any" {
  count = var.create_vpc ? 0 : 1

  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs through the existing VPC's NAT gateway or endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# NFS to the audit spool's EFS mount targets, and nowhere else (audit_spool_storage = "efs").
resource "aws_vpc_security_group_egress_rule" "tasks_nfs_spool" {
  count = local.audit_spool_on_efs ? 1 : 0

  security_group_id            = aws_security_group.tasks.id
  description                  = "NFS (TLS) to the audit spool's EFS mount targets"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.spool[0].id
}
