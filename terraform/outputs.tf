output "service_url" {
  description = "Base URL of the service (HTTPS when certificate_arn is set; point your DNS name at alb_dns_name). The internal ALB's name resolves to private addresses: call it from the VPC or a network routed to it."
  value       = local.https_enabled ? "https://${aws_lb.this.dns_name}" : "http://${aws_lb.this.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the ALB (target of your CNAME/alias record)."
  value       = aws_lb.this.dns_name
}

output "vpc_id" {
  description = "VPC of the tasks and the internal ALB (where to open a CloudShell VPC environment to call it; docs/deploy.md)."
  value       = local.vpc_id
}

output "audit_bucket" {
  description = "Bucket of the audit records."
  value       = aws_s3_bucket.audit.bucket
}

output "audit_prefix" {
  description = "Key prefix of the audit records in audit_bucket."
  value       = var.audit_prefix
}

output "audit_spool_file_system_id" {
  description = "EFS file system of the audit spool (null with audit_spool_storage = ephemeral)."
  value       = one(aws_efs_file_system.spool[*].id)
}

output "ecr_repository_url" {
  description = "ECR repository to push the image to (docker push URL:TAG)."
  value       = aws_ecr_repository.this.repository_url
}

output "athena_workgroup" {
  description = "Athena workgroup for queries over the audit records."
  value       = aws_athena_workgroup.this.name
}

output "glue_database" {
  description = "Glue database of the audit table."
  value       = aws_glue_catalog_database.this.name
}

output "glue_table" {
  description = "Glue table over the audit records."
  value       = aws_glue_catalog_table.audit.name
}

output "athena_results_bucket" {
  description = "Bucket of the Athena query results."
  value       = aws_s3_bucket.athena.bucket
}

output "ecs_cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "log_group_name" {
  description = "CloudWatch log group of the app's logs."
  value       = aws_cloudwatch_log_group.app.name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard name."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "kms_key_arn" {
  description = "KMS key encrypting the audit and Athena results buckets, the audit spool, logs, the alarm topic and the ECR repository."
  value       = aws_kms_key.this.arn
}
