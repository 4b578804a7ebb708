################################################################################
# The bill's alarm: an AWS budget on the account's monthly cost
#
# var.monthly_budget_usd defaults to what docs/cost.md gives for the max fleet
# plus 20 % (`make cost` derives it; tests/infra/test_cost.py ties them). Anything
# over it is outside the model: a WAF turned on, EFS switched to elastic, a log
# flood, or someone else's resources in the account. It notifies the alarm topic.
################################################################################

resource "aws_budgets_budget" "monthly" {
  count = var.monthly_budget_usd == null ? 0 : 1

  name         = "${var.name}-monthly"
  budget_type  = "COST"
  limit_amount = tostring(var.monthly_budget_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  dynamic "notification" {
    for_each = [
      { threshold = 80, type = "ACTUAL" },
      { threshold = 100, type = "ACTUAL" },
      { threshold = 100, type = "FORECASTED" },
    ]

    content {
      comparison_operator       = "GREATER_THAN"
      threshold                 = notification.value.threshold
      threshold_type            = "PERCENTAGE"
      notification_type         = notification.value.type
      subscriber_sns_topic_arns = [aws_sns_topic.alarms.arn]
    }
  }
}
