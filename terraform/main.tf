data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first az_count names (sorted) are used via slice(); AWS names new zones with later letters, so the chosen zones do not change. Opt-in Local/Wavelength zones are filtered out.
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }

  # az_count is validated alone (2 to 4); many regions have 3 zones (eu-west-1), some 2.
  # Checked here, before local.azs slices the list, so the plan stops with this message
  # rather than slice()'s "end index must not be greater than the length of the list".
  lifecycle {
    postcondition {
      condition     = !var.create_vpc || length(self.names) >= var.az_count
      error_message = "az_count = ${var.az_count}, but ${var.region} has ${length(self.names)} availability zones (without opt-in zones): set az_count to ${length(self.names)} or less."
    }
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # Globally unique bucket names: name, purpose, account and region.
  bucket_suffix = "${local.account_id}-${local.region}"

  # The app's port (app.settings.DEFAULT_PORT) and liveness route (app.api.LIVENESS_PATH), the
  # ALB's health check; tests/infra/test_terraform.py checks both against the application.
  container_name = "botscore"
  container_port = 8887
  liveness_path  = "/healthz"

  # The spool volume the read-only container writes its audit segments to.
  audit_dir = "/var/lib/botscore"

  https_enabled = var.certificate_arn != null

  # The CloudWatch namespace of the app's EMF metrics; the Service dimension is var.name.
  metrics_namespace = "botscore"
}
