"""The deployment is operable: alarms on the app's own EMF metrics, a WAF that fits the measured load, and
doors closed by default (issue 19). Read with the same evaluator as tests/infra/test_terraform.py."""

from __future__ import annotations

import io
import json
import math
from fnmatch import fnmatch
from typing import Any

import pytest

from bench.sizing import OUTAGE_SECONDS, WAF_WINDOW_SECONDS, rides_out
from botscore.http.operations import LIVENESS_PATH, METRICS_PATH
from botscore.ops.buckets import LATENCY_BUCKETS
from botscore.ops.emf import EmfWriter
from botscore.ops.metrics import Metrics
from tests.infra.test_terraform import SECRET_ARN, TERRAFORM_DIR, Config, _validation_passes, ref
from tests.support import emf

CAPACITY = json.loads((TERRAFORM_DIR.parent / "docs" / "capacity.json").read_text())
EXISTING_VPC = {
    "create_vpc": False,
    "vpc_id": "vpc-0abc",
    "private_subnet_ids": ["subnet-01", "subnet-02"],
    "public_subnet_ids": ["subnet-03", "subnet-04"],
}
TOPIC = ref("aws_sns_topic", "alarms", "arn")


@pytest.fixture(scope="module")
def config() -> Config:
    return Config(TERRAFORM_DIR)


def _with(**overrides: Any) -> Config:
    return Config(TERRAFORM_DIR, overrides)


def _default(config: Config, name: str) -> Any:
    return config.value(config.variables[name]["default"])


def _alarm(config: Config, name: str) -> dict[str, Any]:
    alarm = config.value(config.resource(f"aws_cloudwatch_metric_alarm.{name}"))
    assert alarm["alarm_actions"] == alarm["ok_actions"] == [TOPIC], name
    return alarm


def _queries(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in alarm["metric_query"]}


def _emitted() -> dict[str, set[str]]:
    """What the app's EMF lines hold: metric name -> the dimension names it is published with."""
    metrics, stream = Metrics(lambda: dict.fromkeys(_AUDIT, 1.0)), io.StringIO()
    writer = EmfWriter(metrics.registry, namespace="n", service="s", interval=60, spool_max_bytes=1, stream=stream)
    metrics.note_request(("/bot-score", 200, 0.01, None))
    metrics.note_score((0.1, 0.2, 0.5))
    metrics.note_fsync(0.003)
    metrics.note_refused("production")
    metrics.flush()
    writer.flush()
    emitted: dict[str, set[str]] = {}
    for line in stream.getvalue().splitlines():
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for dimensions in directive["Dimensions"]:
                    emitted.setdefault(metric["Name"], set()).add(",".join(sorted(dimensions)))
    return emitted


_AUDIT = [
    "records_written", "records_shipped", "records_dropped", "records_refused", "torn_lines", "upload_failures",
    "objects_shipped", "adoptions", "spool_bytes", "oldest_unshipped_age_seconds",
]  # fmt: skip


# -- the app's metrics reach CloudWatch --------------------------------------------------------


def test_the_task_writes_emf_lines_under_the_namespace_and_service_the_alarms_read(config: Config) -> None:
    container = config.value(config.locals["container_definition"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["BOTSCORE_EMF"] == "true"
    assert environment["BOTSCORE_EMF_NAMESPACE"] == config.value("${local.metrics_namespace}") == "botscore"
    assert environment["BOTSCORE_EMF_SERVICE"] == _default(config, "name")
    assert container["logConfiguration"]["logDriver"] == "awslogs"  # stdout reaches CloudWatch Logs


def test_every_alarm_on_an_app_metric_reads_a_metric_and_dimensions_the_app_writes(config: Config) -> None:
    emitted = _emitted()
    for name, block in config.resources_of_type("aws_cloudwatch_metric_alarm").items():
        alarm = config.value(block)
        metrics = [alarm] + [q["metric"][0] for q in alarm.get("metric_query", []) if "metric" in q]
        for metric in metrics:
            if metric.get("namespace") != "botscore":
                continue
            assert metric["metric_name"] in emitted, f"{name}: the app writes no {metric['metric_name']}"
            assert ",".join(sorted(metric["dimensions"])) in emitted[metric["metric_name"]], name
            assert metric["dimensions"]["Service"] == _default(config, "name"), name


def test_the_audit_pipeline_alarms_page_on_the_promise(config: Config) -> None:
    oldest = _alarm(config, "oldest_unshipped")
    assert (oldest["metric_name"], oldest["statistic"], oldest["threshold"]) == ("OldestUnshippedAge", "Maximum", 300)
    assert oldest["comparison_operator"] == "GreaterThanThreshold"
    failing = _alarm(config, "upload_failures")
    assert (failing["metric_name"], failing["statistic"], failing["threshold"]) == ("UploadFailures", "Sum", 0)
    assert failing["evaluation_periods"] == failing["datapoints_to_alarm"] == 5  # every minute of five
    refused = _alarm(config, "model_refusals")  # a registry pointer the fleet would not follow
    assert (refused["metric_name"], refused["statistic"], refused["threshold"]) == ("ModelRefusals", "Sum", 0)
    fill = _alarm(config, "spool_fill")
    assert (fill["metric_name"], fill["statistic"], fill["threshold"]) == ("SpoolFill", "Maximum", 50)


def test_p99_above_200_ms_alarms_from_the_apps_distribution_and_from_the_alb(config: Config) -> None:
    app = _alarm(config, "app_p99_latency")
    assert (app["metric_name"], app["extended_statistic"], app["threshold"]) == ("Latency", "p99", 200)
    assert app["dimensions"]["Route"] == "/bot-score"
    alb = _alarm(config, "p99_latency")
    assert (alb["namespace"], alb["metric_name"], alb["extended_statistic"]) == (
        "AWS/ApplicationELB",
        "TargetResponseTime",
        "p99",
    )
    assert alb["threshold"] == 0.2 == app["threshold"] / 1000


def _emf_p99(seconds: list[float]) -> float:
    """The p99 CloudWatch computes from the EMF latency the app writes for these /bot-score answers: the
    nearest-rank percentile over each value repeated its count (CloudWatch's own is an approximation of
    it; the values here are whole bucket widths away from the threshold, far beyond its error)."""
    metrics, stream = Metrics(), io.StringIO()
    writer = EmfWriter(metrics.registry, namespace="n", service="s", interval=60, spool_max_bytes=1, stream=stream)
    for value in seconds:
        metrics.note_request(("/bot-score", 200, value, None))
    metrics.flush()
    writer.flush()
    [latency] = [d["Latency"] for d in emf.documents(stream.getvalue()) if "Latency" in d]
    expanded = sorted(v for v, n in zip(latency["Values"], latency["Counts"], strict=True) for _ in range(n))
    return float(expanded[math.ceil(0.99 * len(expanded)) - 1])


@pytest.mark.parametrize(("p99_ms", "fires"), [(210, True), (190, False), (200, False), (201, True), (120, False)])
def test_the_app_p99_alarm_fires_past_200_ms_from_the_emf_values_the_app_writes(
    config: Config, p99_ms: float, fires: bool
) -> None:
    """985 answers in 10 ms and 15 in `p99_ms`: the true p99 is `p99_ms`. What reaches CloudWatch, against
    the alarm's threshold and operator in Terraform, fires above 200 ms and only there."""
    alarm = _alarm(config, "app_p99_latency")
    assert (alarm["extended_statistic"], alarm["comparison_operator"]) == ("p99", "GreaterThanThreshold")
    p99 = _emf_p99([0.01] * 985 + [p99_ms / 1000] * 15)
    assert (p99 > alarm["threshold"]) is fires, f"EMF p99 {p99} ms against the {alarm['threshold']} ms threshold"


def test_the_p99_threshold_must_be_a_bound_of_the_apps_latency_buckets(config: Config) -> None:
    """Only a bound puts each bucket's EMF value wholly on one side of the threshold."""
    assert 0.2 in LATENCY_BUCKETS and _default(config, "p99_latency_threshold_seconds") == 0.2
    for bound in LATENCY_BUCKETS:
        assert _validation_passes("p99_latency_threshold_seconds", bound), bound
    for off in (0.15, 0.21, 0.3, 3.0):
        assert not _validation_passes("p99_latency_threshold_seconds", off), off


def test_silence_breaches_where_it_means_a_dead_app_and_missing_emf_lines_alarm(config: Config) -> None:
    """The backlog and spool-fill alarms read gauges every live worker writes each minute: no data is no
    worker, not an empty spool. A missing EMF line alarms on its own, for every other app alarm is blind."""
    for name in ("oldest_unshipped", "spool_fill"):
        assert _alarm(config, name)["treat_missing_data"] == "breaching", name
    missing = _alarm(config, "emf_missing")
    assert (missing["namespace"], missing["metric_name"], missing["statistic"]) == (
        _default(config, "name"),
        "Requests",
        "SampleCount",
    )
    assert missing["dimensions"] == {"Service": _default(config, "name")}
    assert (missing["comparison_operator"], missing["threshold"], missing["treat_missing_data"]) == (
        "LessThanThreshold",
        1,
        "breaching",
    )
    assert missing["evaluation_periods"] == missing["datapoints_to_alarm"] == 3
    # A worker with no traffic still writes its totals line, Requests 0, each interval: silence is no worker.
    metrics, stream = Metrics(), io.StringIO()
    EmfWriter(metrics.registry, namespace="n", service="s", interval=60, spool_max_bytes=1, stream=stream).flush()
    [totals] = emf.documents(stream.getvalue())
    assert (totals["Requests"], totals["Service"]) == (0, "s")
    assert {"Name": "Requests", "Unit": "Count"} in totals["_aws"]["CloudWatchMetrics"][0]["Metrics"]


def test_an_unreachable_model_registry_alarms_from_the_apps_count(config: Config) -> None:
    alarm = _alarm(config, "model_registry_unreachable")
    assert (alarm["metric_name"], alarm["statistic"], alarm["threshold"]) == ("RegistryUnreachable", "Sum", 0)
    assert (alarm["comparison_operator"], alarm["evaluation_periods"], alarm["datapoints_to_alarm"]) == (
        "GreaterThanThreshold",
        3,
        3,
    )
    assert "RegistryUnreachable" in _emitted()


def test_a_deployment_stops_and_rolls_back_on_the_apps_5xx_share_and_p99(config: Config) -> None:
    service = config.value(config.resource("aws_ecs_service.this"))
    [alarms] = service["alarms"]
    assert (alarms["enable"], alarms["rollback"]) == (True, True)
    assert alarms["alarm_names"] == [
        ref("aws_cloudwatch_metric_alarm", "app_5xx_rate", "alarm_name"),
        ref("aws_cloudwatch_metric_alarm", "app_p99_latency", "alarm_name"),
    ]
    assert service["wait_for_steady_state"] is True  # a rolled-back deployment fails the apply
    [breaker] = service["deployment_circuit_breaker"]
    assert breaker == {"enable": True, "rollback": True}


@pytest.mark.parametrize(
    ("alarm", "numerator", "variable"), [("app_5xx_rate", "Errors5xx", 1), ("shed_rate", "Shed", 1)]
)
def test_5xx_and_shed_rates_are_shares_of_the_apps_requests(
    config: Config, alarm: str, numerator: str, variable: int
) -> None:
    found = _alarm(config, alarm)
    queries = _queries(found)
    [returned] = [q for q in queries.values() if q.get("return_data")]
    part, whole = (q for q in queries.values() if "metric" in q)
    assert part["metric"][0]["metric_name"] == numerator and whole["metric"][0]["metric_name"] == "Requests"
    assert returned["expression"] == f"IF(requests > 0, 100 * {part['id']} / requests, 0)"
    assert found["threshold"] == variable


def test_running_tasks_below_desired_alarms_from_container_insights(config: Config) -> None:
    queries = _queries(_alarm(config, "tasks_below_desired"))
    assert queries["missing"]["expression"] == "desired - running"
    for key, metric in (("desired", "DesiredTaskCount"), ("running", "RunningTaskCount")):
        [found] = queries[key]["metric"]
        assert (found["namespace"], found["metric_name"]) == ("ECS/ContainerInsights", metric)
        assert found["dimensions"]["ServiceName"] == ref("aws_ecs_service", "this", "name")
    cluster = config.value(config.resource("aws_ecs_cluster.this"))
    assert {"name": "containerInsights", "value": "enabled"} in cluster["setting"]


def test_a_failed_deployment_reaches_the_alarm_topic_through_eventbridge(config: Config) -> None:
    rule = config.value(config.resource("aws_cloudwatch_event_rule.deployment_failed"))
    assert rule["event_pattern"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Deployment State Change"],
        "resources": [ref("aws_ecs_service", "this", "id")],
        "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
    }
    target = config.value(config.resource("aws_cloudwatch_event_target.deployment_failed"))
    assert (target["rule"], target["arn"]) == (ref("aws_cloudwatch_event_rule", "deployment_failed", "name"), TOPIC)
    topic_policy = config.value(config.resource("aws_sns_topic_policy.alarms"))["policy"]
    [events] = [s for s in topic_policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert events["Condition"] == {
        "ArnEquals": {"aws:SourceArn": ref("aws_cloudwatch_event_rule", "deployment_failed", "arn")}
    }
    key_policy = config.value(config.resource("aws_kms_key.this"))["policy"]
    assert any(s["Principal"] == {"Service": "events.amazonaws.com"} for s in key_policy["Statement"])  # encrypted


def test_the_dashboard_shows_the_audit_pipeline_next_to_traffic_and_latency(config: Config) -> None:
    body = config.value(config.resource("aws_cloudwatch_dashboard.this"))["dashboard_body"]
    rows: dict[int, list[str]] = {}
    for widget in body["widgets"]:
        rows.setdefault(widget["y"], []).append(widget["properties"]["title"])
    assert any(
        any(t.startswith("Audit") for t in titles) and any(t.startswith(("Traffic", "Latency")) for t in titles)
        for titles in rows.values()
    ), rows
    shown = {m[1] for w in body["widgets"] for m in w["properties"].get("metrics", []) if isinstance(m[1], str)}
    assert {"OldestUnshippedAge", "SpoolFill", "UploadFailures", "RecordsShipped", "Latency", "Shed"} <= shown
    [alarms] = [w for w in body["widgets"] if w["type"] == "alarm"]
    every = [
        ref("aws_cloudwatch_metric_alarm", f"{name}[0]" if "count" in body else name, "arn")
        for name, body in config.resources_of_type("aws_cloudwatch_metric_alarm").items()
    ]
    assert sorted(alarms["properties"]["alarms"]) == sorted(every)


def test_every_alarm_and_rule_has_a_runbook_entry(config: Config) -> None:
    runbook = (TERRAFORM_DIR.parent / "docs" / "operations.md").read_text()
    anchors = {line.removeprefix("### ").strip() for line in runbook.splitlines() if line.startswith("### ")}
    names = {config.value(a)["alarm_name"] for a in config.resources_of_type("aws_cloudwatch_metric_alarm").values()}
    names.add(config.value(config.resource("aws_cloudwatch_event_rule.deployment_failed"))["name"])
    assert {name.removeprefix("botscore-") for name in names} <= anchors


# -- health ---------------------------------------------------------------------------------


def test_the_health_check_is_liveness_and_the_spool_rides_out_the_stated_outage(config: Config) -> None:
    [check] = config.value(config.resource("aws_lb_target_group.this"))["health_check"]
    assert check["path"] == LIVENESS_PATH
    bound = _default(config, "audit_spool_max_bytes")
    fleet = _default(config, "max_capacity") * _default(config, "requests_per_target") / 60
    assert rides_out(bound, fleet) >= OUTAGE_SECONDS == CAPACITY["terraform"]["outage_seconds"]
    container = config.value(config.locals["container_definition"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["BOTSCORE_AUDIT_SPOOL_MAX_BYTES"] == str(bound)


# -- the WAF ---------------------------------------------------------------------------------


def _acl(config: Config) -> dict[str, Any]:
    return config.value(config.rendered(config.resource("aws_wafv2_web_acl.this")))


def test_the_waf_rate_limit_is_the_load_the_scaling_settings_carry(config: Config) -> None:
    [rate] = [r for r in _acl(config)["rule"] if r["name"] == "rate-limit-per-ip"]
    [statement] = rate["statement"][0]["rate_based_statement"]
    limit = _default(config, "waf_rate_limit")
    assert statement["limit"] == limit and statement["evaluation_window_sec"] == WAF_WINDOW_SECONDS == 300
    fleet = _default(config, "max_capacity") * _default(config, "requests_per_target") / 60
    assert limit == pytest.approx(fleet * WAF_WINDOW_SECONDS, abs=1)  # one address may use the whole fleet
    assert limit == CAPACITY["terraform"]["waf_rate_limit"]
    assert "scope_down_statement" not in statement
    trusted = _with(waf_trusted_cidrs=["10.9.0.0/16"])
    [statement] = next(r for r in _acl(trusted)["rule"] if r["name"] == "rate-limit-per-ip")["statement"][0][
        "rate_based_statement"
    ]
    [scope] = statement["scope_down_statement"]
    [reference] = scope["not_statement"][0]["statement"][0]["ip_set_reference_statement"]
    assert reference["arn"] == ref("aws_wafv2_ip_set", "trusted[0]", "arn")


def test_the_anonymous_ip_rule_is_paid_for_only_on_an_internet_facing_alb(config: Config) -> None:
    assert "aws-anonymous-ip" not in {r["name"] for r in _acl(config)["rule"]}
    public = _with(internet_facing=True, api_keys_secret_arn=SECRET_ARN)
    assert "aws-anonymous-ip" in {r["name"] for r in _acl(public)["rule"]}


def test_waf_logs_keep_blocked_and_counted_requests_only_with_the_key_headers_redacted(config: Config) -> None:
    logging = config.value(config.rendered(config.resource("aws_wafv2_web_acl_logging_configuration.this")))
    redacted = {field["single_header"][0]["name"] for field in logging["redacted_fields"]}
    assert {"authorization", "x-api-key"} <= redacted  # the app reads `Authorization: Bearer KEY`
    [log_filter] = logging["logging_filter"]
    assert log_filter["default_behavior"] == "DROP"
    [kept] = log_filter["filter"]
    assert kept["behavior"] == "KEEP" and kept["requirement"] == "MEETS_ANY"
    # A managed group's rule overridden to count logs EXCLUDED_AS_COUNT, not COUNT.
    assert sorted(c["action_condition"][0]["action"] for c in kept["condition"]) == [
        "BLOCK",
        "COUNT",
        "EXCLUDED_AS_COUNT",
    ]
    group = config.value(config.resource("aws_cloudwatch_log_group.waf"))
    assert group["retention_in_days"] == _default(config, "waf_log_retention_days") == 30
    assert group["retention_in_days"] < _default(config, "log_retention_days")


def test_no_waf_sample_keeps_a_request_because_redaction_never_reaches_samples(config: Config) -> None:
    """Sampled requests (the console's view) hold every header as received, Authorization included, and
    the logging configuration's redacted_fields do not apply to them: sampling is off everywhere."""
    acl = _acl(_with(internet_facing=True, api_keys_secret_arn=SECRET_ARN))
    configs = [acl["visibility_config"][0], *(rule["visibility_config"][0] for rule in acl["rule"])]
    assert len(configs) == 5
    assert [c["sampled_requests_enabled"] for c in configs] == [False] * 5
    assert all(c["cloudwatch_metrics_enabled"] is True for c in configs)  # counts stay, without requests


WAF_RESOURCES = (
    "aws_wafv2_web_acl.this",
    "aws_wafv2_web_acl_association.this",
    "aws_cloudwatch_log_group.waf",
    "aws_wafv2_web_acl_logging_configuration.this",
)


@pytest.mark.parametrize(
    ("overrides", "on"),
    [
        ({}, False),  # the internal ALB by default: the platform's own backends call it
        ({"internet_facing": True, "api_keys_secret_arn": SECRET_ARN}, True),
        ({"waf_enabled": True}, True),
        ({"waf_enabled": False, "internet_facing": True, "api_keys_secret_arn": SECRET_ARN}, False),
    ],
)
def test_waf_enabled_null_means_on_for_an_internet_facing_alb_only(overrides: dict[str, Any], on: bool) -> None:
    config = _with(**overrides)
    assert [config.count(address) for address in WAF_RESOURCES] == [int(on)] * 4
    assert config.count("aws_wafv2_ip_set.trusted") == 0
    assert _with(**overrides, waf_trusted_cidrs=["10.9.0.0/16"]).count("aws_wafv2_ip_set.trusted") == int(on)


def test_waf_enabled_is_a_nullable_bool_and_its_price_is_documented(config: Config) -> None:
    """The cost model reads `waf_enabled` by this name; its description and the README state the price."""
    variable = config.variables["waf_enabled"]
    assert (variable["type"], variable.get("default"), variable.get("nullable", True)) == ("bool", None, True)
    readme = (TERRAFORM_DIR / "README.md").read_text()
    for text in (config.value(variable["description"]), readme):
        for price in ("$0.60 per million requests", "$5 a month per web ACL", "$1 a month per rule", "us-east-1"):
            assert price in text, price


# -- closed by default -------------------------------------------------------------------------


def test_the_alb_admits_the_vpcs_own_range_by_default(config: Config) -> None:
    assert _default(config, "alb_ingress_cidrs") is None
    assert config.value("${local.alb_ingress_cidrs}") == [_default(config, "vpc_cidr")]
    existing = _with(**EXISTING_VPC)
    assert existing.value("${local.alb_ingress_cidrs}") == [ref("data.aws_vpc", "existing[0]", "cidr_block")]
    named = _with(alb_ingress_cidrs=["10.9.0.0/16"])
    assert named.value("${local.alb_ingress_cidrs}") == ["10.9.0.0/16"]
    rule = config.resource("aws_vpc_security_group_ingress_rule.alb_http")
    assert rule["for_each"] == "${toset(local.alb_ingress_cidrs)}"


def test_operations_routes_are_not_public_unless_a_variable_opens_them(config: Config) -> None:
    rule = "aws_lb_listener_rule.operations_not_found"
    assert config.count(rule) == 0  # internal: only the VPC reaches the ALB
    public = _with(internet_facing=True, api_keys_secret_arn=SECRET_ARN)
    assert public.count(rule) == 1
    found = public.value(public.resource(rule))
    [condition] = found["condition"]
    patterns = condition["path_pattern"][0]["values"]
    for path in (
        METRICS_PATH,
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/static-offline-docs/swagger-ui.css",
    ):
        assert any(fnmatch(path, p) for p in patterns), path
    assert not any(fnmatch(p, pattern) for p in ("/bot-score", LIVENESS_PATH) for pattern in patterns)
    assert found["action"][0]["fixed_response"][0]["status_code"] == "404"
    assert found["listener_arn"] == ref("aws_lb_listener", "http_forward[0]", "arn")
    assert _with(internet_facing=True, api_keys_secret_arn=SECRET_ARN, expose_operations_routes=True).count(rule) == 0


def _policy(config: Config, address: str) -> dict[str, Any]:
    return config.value(config.resource(address))["policy"]


def test_the_s3_endpoint_reaches_this_accounts_buckets_and_ecrs_layer_bucket_only(config: Config) -> None:
    statements = {s["Sid"]: s for s in _policy(config, "aws_vpc_endpoint.s3")["Statement"]}
    assert statements["OwnAccountsBuckets"]["Condition"] == {
        "StringEquals": {"aws:ResourceAccount": [ref("data.aws_caller_identity", "current", "account_id")]}
    }
    layers = statements["EcrImageLayers"]
    assert (layers["Action"], layers["Resource"]) == (
        "s3:GetObject",
        f"arn:{ref('data.aws_partition', 'current', 'partition')}:s3:::prod-"
        f"{ref('data.aws_region', 'current', 'region')}-starport-layer-bucket/*",
    )
    assert set(statements) == {"OwnAccountsBuckets", "EcrImageLayers"}


def _interface_policy(config: Config, endpoint: str) -> dict[str, Any]:
    """The policy of one interface endpoint (`each.key` bound to its name)."""
    raw = config.resource("aws_vpc_endpoint.interface")["policy"]
    return config.value(raw.replace("each.key", json.dumps(endpoint)))


def test_interface_endpoints_reach_this_accounts_resources_and_the_secrets_account(config: Config) -> None:
    account = ref("data.aws_caller_identity", "current", "account_id")
    for endpoint in ("ecr.api", "ecr.dkr", "logs", "secretsmanager"):
        statements = {s["Sid"]: s for s in _interface_policy(config, endpoint)["Statement"]}
        assert statements["OwnAccountsResources"]["Condition"] == {"StringEquals": {"aws:ResourceAccount": [account]}}
        # A registry token names no resource: the one action allowed without an account, on ecr.api only.
        assert set(statements) == (
            {"OwnAccountsResources", "EcrToken"} if endpoint == "ecr.api" else {"OwnAccountsResources"}
        )
    token = {s["Sid"]: s for s in _interface_policy(config, "ecr.api")["Statement"]}["EcrToken"]
    assert token["Action"] == "ecr:GetAuthorizationToken"
    # The API keys secret may sit in another account (a security account): that one is reachable too.
    keyed = _with(api_keys_secret_arn=SECRET_ARN.replace("123456789012", "210987654321"))
    statements = {s["Sid"]: s for s in _interface_policy(keyed, "secretsmanager")["Statement"]}
    assert statements["OwnAccountsResources"]["Condition"]["StringEquals"]["aws:ResourceAccount"] == [
        account,
        "210987654321",
    ]


def test_terraform_destroy_can_take_the_repository_with_its_images_when_asked(config: Config) -> None:
    repository = config.value(config.resource("aws_ecr_repository.this"))
    assert repository["force_delete"] is False
    assert _with(ecr_force_delete=True).value(_with(ecr_force_delete=True).resource("aws_ecr_repository.this"))[
        "force_delete"
    ]


def test_a_refused_bodys_kept_length_reaches_the_app(config: Config) -> None:
    container = config.value(config.locals["container_definition"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["BOTSCORE_AUDIT_RAW_MAX_BYTES"] == str(_default(config, "audit_raw_max_bytes")) == "256"


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_clears_and_names_its_runbook_entry(
    config: Config,
) -> None:
    alarms = config.resources_of_type("aws_cloudwatch_metric_alarm")
    assert len(alarms) == 18
    for name in alarms:
        found = _alarm(config, name)
        assert found["treat_missing_data"] in ("notBreaching", "breaching"), name
        entry = found["alarm_name"].removeprefix(f"{_default(config, 'name')}-")
        assert found["alarm_description"].endswith(f"Runbook: docs/operations.md#{entry}"), name


def test_the_example_tfvars_repeat_the_measured_defaults_not_older_ones(config: Config) -> None:
    import hcl2

    with (TERRAFORM_DIR / "terraform.tfvars.example").open() as handle:
        example = {key: value for key, value in hcl2.load(handle).items() if not key.startswith("__")}
    measured = [name for name in CAPACITY["terraform_defaults"] if name in CAPACITY["terraform"] and name in example]
    assert {"requests_per_target", "cpu_target_percent", "task_cpu"} <= set(measured)
    assert {name: example[name] for name in measured} == {name: _default(config, name) for name in measured}
