"""AWS list prices the cost model (bench/cost.py) uses: us-east-1, on-demand, as each page published them.

Nothing is fetched at run time (no network here). Each price names its source; when AWS changes one,
change it here, run `make cost` (or `bench/cost.py --rederive`), and commit docs/cost.json with it.
"""

from __future__ import annotations

from typing import NamedTuple

REGION = "us-east-1"
READ_ON = "2026-12-07"  # when these were last checked against the pages below


class Price(NamedTuple):
    usd: float
    unit: str
    source: str


FARGATE = "https://aws.amazon.com/fargate/pricing/ (Linux, per second, 1 minute minimum)"
ALB = "https://aws.amazon.com/elasticloadbalancing/pricing/ (Application Load Balancer)"
WAF = "https://aws.amazon.com/waf/pricing/"
PRIVATELINK = "https://aws.amazon.com/privatelink/pricing/ (interface endpoints)"
EFS = "https://aws.amazon.com/efs/pricing/ (Regional, Standard)"
EFS_METERING = (
    "https://docs.aws.amazon.com/efs/latest/ug/performance.html (metered throughput: data operations count"
    " as at least 32 KiB, metadata operations as 4 KiB; reads at a third of their size against provisioned)"
)
S3 = "https://aws.amazon.com/s3/pricing/"
CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"
KMS = "https://aws.amazon.com/kms/pricing/"
BUDGETS = "https://aws.amazon.com/aws-cost-management/aws-budgets/pricing/ (the first two budgets are free)"
VPC_LOGS = "https://aws.amazon.com/cloudwatch/pricing/ (vended logs delivered to S3)"

PRICES: dict[str, Price] = {
    "fargate_vcpu_hour_x86_64": Price(0.04048, "vCPU-hour", FARGATE),
    "fargate_gb_hour_x86_64": Price(0.004445, "GB-hour", FARGATE),
    "fargate_vcpu_hour_arm64": Price(0.03238, "vCPU-hour", FARGATE),
    "fargate_gb_hour_arm64": Price(0.00356, "GB-hour", FARGATE),
    "alb_hour": Price(0.0225, "load balancer-hour", ALB),
    "alb_lcu_hour": Price(0.008, "LCU-hour", ALB),
    "waf_web_acl_month": Price(5.00, "web ACL-month", WAF),
    "waf_rule_month": Price(1.00, "rule-month", WAF),
    "waf_million_requests": Price(0.60, "million requests", WAF),
    "endpoint_az_hour": Price(0.01, "endpoint-AZ-hour", PRIVATELINK),
    "endpoint_gb": Price(0.01, "GB processed", PRIVATELINK),
    "efs_storage_gb_month": Price(0.30, "GB-month", EFS),
    "efs_elastic_read_gb": Price(0.03, "GB metered read (Elastic)", EFS),
    "efs_elastic_write_gb": Price(0.06, "GB metered written (Elastic)", EFS),
    "efs_provisioned_mibps_month": Price(6.00, "MiB/s-month provisioned", EFS),
    "efs_data_op_kib": Price(32, "KiB metered per data operation, at least", EFS_METERING),
    "efs_metadata_op_kib": Price(4, "KiB metered per metadata operation", EFS_METERING),
    "s3_put_thousand": Price(0.005, "1,000 PUT requests", S3),
    "s3_standard_gb_month": Price(0.023, "GB-month (Standard, first 50 TB)", S3),
    "s3_standard_ia_gb_month": Price(0.0125, "GB-month (Standard-IA)", S3),
    "s3_glacier_ir_gb_month": Price(0.004, "GB-month (Glacier Instant Retrieval)", S3),
    "s3_transition_ia_thousand": Price(0.01, "1,000 lifecycle transitions to Standard-IA", S3),
    "s3_transition_glacier_ir_thousand": Price(0.02, "1,000 lifecycle transitions to Glacier IR", S3),
    "cloudwatch_metric_month": Price(0.30, "custom metric-month (first 10,000)", CLOUDWATCH),
    "cloudwatch_alarm_month": Price(0.10, "standard-resolution alarm metric-month", CLOUDWATCH),
    "cloudwatch_dashboard_month": Price(3.00, "dashboard-month (beyond the first 3)", CLOUDWATCH),
    "cloudwatch_logs_ingest_gb": Price(0.50, "GB ingested (standard logs)", CLOUDWATCH),
    "cloudwatch_logs_store_gb_month": Price(0.03, "GB-month stored (compressed)", CLOUDWATCH),
    "vended_logs_s3_gb": Price(0.25, "GB of VPC flow logs delivered to S3", VPC_LOGS),
    "kms_key_month": Price(1.00, "customer managed key-month", KMS),
    "kms_ten_thousand_requests": Price(0.03, "10,000 requests", KMS),
    "budget_month": Price(0.00, "budget-month", BUDGETS),
}

HOURS_PER_MONTH = 730.0  # AWS's pricing pages price a month as 730 hours
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
