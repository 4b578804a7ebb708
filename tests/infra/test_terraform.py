"""The Terraform deployment (terraform/) agrees with the application it deploys.

The configuration is read with python-hcl2, which keeps HCL's syntax in its values:
string literals keep their quotes (`'"abc"'`), expressions are wrapped in `${...}`
and block labels are quoted keys. `Config` undoes that and evaluates the small part
of the language the deployment uses for the values checked here: literals, string
templates, `var.*` (their defaults, or an override), `local.*` and `tostring()`.
A reference to a resource attribute evaluates to a token such as
`<aws_s3_bucket.audit.bucket>`, so two places that name the same bucket compare equal.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hcl2
import pytest

from botscore.audit import schema
from botscore.audit.spool import object_key
from botscore.http.app import READINESS_PATH
from botscore.settings import DEFAULT_PORT, ENV_PREFIX, Settings, env_name

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "terraform"

# Fargate's largest stopTimeout.
FARGATE_MAX_STOP_TIMEOUT = 120


_META_KEYS = {"__is_block__", "__inline_comments__", "__comments__"}
_RESOURCE_REF = re.compile(r"^((?:data\.)?aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)$")
_INTERPOLATION = re.compile(r"(?<!\$)\$\{([^{}]*)\}")


class Unresolved(Exception):
    """An expression outside the subset `Config` evaluates."""


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def _clean(value: Any) -> Any:
    """Drop python-hcl2's bookkeeping keys and unquote keys (block labels, map keys)."""
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if k not in _META_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def ref(resource_type: str, name: str, attribute: str) -> str:
    """The token a reference to a resource attribute evaluates to."""
    return f"<{resource_type}.{name}.{attribute}>"


class Config:
    """All .tf files of a directory, merged, with a tiny evaluator."""

    def __init__(self, directory: Path, overrides: dict[str, Any] | None = None) -> None:
        self.blocks: dict[str, list[Any]] = {}
        files = sorted(directory.glob("*.tf"))
        assert files, f"no .tf files in {directory}"
        for path in files:
            with path.open() as handle:
                parsed = hcl2.load(handle)
            for block_type, bodies in parsed.items():
                self.blocks.setdefault(block_type, []).extend(_clean(bodies))
        self.variables: dict[str, dict[str, Any]] = {}
        for body in self.blocks.get("variable", []):
            self.variables.update(body)
        self.locals: dict[str, Any] = {}
        for body in self.blocks.get("locals", []):
            for key, value in body.items():
                assert key not in self.locals, f"local.{key} defined twice"
                self.locals[key] = value
        self.overrides = overrides or {}

    def _typed(self, kind: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for body in self.blocks.get(kind, []):
            for type_name, named in body.items():
                for name, block in named.items():
                    key = f"{type_name}.{name}"
                    assert key not in found, f"{kind} {key} defined twice"
                    found[key] = block
        return found

    def resource(self, address: str) -> dict[str, Any]:
        resources = self._typed("resource")
        assert address in resources, f"resource {address} missing from {TERRAFORM_DIR}"
        return resources[address]

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k.split(".", 1)[1]: v for k, v in self._typed("resource").items() if k.startswith(resource_type + ".")}

    def data(self, address: str) -> dict[str, Any]:
        sources = self._typed("data")
        assert address in sources, f"data source {address} missing from {TERRAFORM_DIR}"
        return sources[address]

    # -- evaluation ---------------------------------------------------------------

    def value(self, raw: Any) -> Any:
        """Evaluate an attribute value as python-hcl2 gives it.

        An expression outside the subset stays as python-hcl2 gave it (e.g. `"${a ? b : c}"`),
        so it never equals an evaluated value a test expects.
        """
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if not isinstance(raw, str):
            return raw
        try:
            if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
                return self._template(_unquote(raw))
            if raw.startswith("${") and raw.endswith("}") and _INTERPOLATION.fullmatch(raw):
                return self._expression(raw[2:-1])
        except Unresolved:
            return raw
        return raw

    def _template(self, text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            return _to_string(self._expression(match.group(1)))

        return _INTERPOLATION.sub(substitute, text).replace("$${", "${")

    def _expression(self, expression: str) -> Any:
        expression = expression.strip()
        if match := re.fullmatch(r"tostring\((.*)\)", expression):
            return _to_string(self._expression(match.group(1)))
        if match := re.fullmatch(r"var\.([A-Za-z0-9_]+)", expression):
            name = match.group(1)
            if name in self.overrides:
                return self.overrides[name]
            assert name in self.variables, f"var.{name} is not declared"
            if "default" not in self.variables[name]:
                raise Unresolved(expression)  # a required variable
            return self.value(self.variables[name]["default"])
        if match := re.fullmatch(r"local\.([A-Za-z0-9_]+)", expression):
            name = match.group(1)
            assert name in self.locals, f"local.{name} is not defined"
            return self.value(self.locals[name])
        if match := _RESOURCE_REF.fullmatch(expression):
            return ref(*match.groups())
        if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", expression):
            return float(expression) if "." in expression else int(expression)
        raise Unresolved(expression)


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    raise Unresolved(repr(value))


def _statements(config: Config, address: str) -> list[dict[str, Any]]:
    return [config.value(s) for s in config.data(address).get("statement", [])]


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> Config:
    return Config(TERRAFORM_DIR)


@pytest.fixture(scope="module")
def container(config: Config) -> dict[str, Any]:
    task = config.resource("aws_ecs_task_definition.this")
    definitions = task["container_definitions"]
    assert definitions == "${jsonencode([local.container_definition])}", (
        "the task's container_definitions must be jsonencode([local.container_definition]) so it can be checked"
    )
    return config.value(config.locals["container_definition"])


@pytest.fixture(scope="module")
def environment(container: dict[str, Any]) -> dict[str, str]:
    names = [item["name"] for item in container["environment"]]
    assert len(names) == len(set(names)), f"duplicate environment variables: {names}"
    return {item["name"]: item["value"] for item in container["environment"]}


# -- the container and the app -------------------------------------------------------


def test_container_port_is_the_app_port(config: Config, container: dict[str, Any], environment: dict[str, str]) -> None:
    assert Settings.model_fields["port"].default == DEFAULT_PORT
    assert [m["containerPort"] for m in container["portMappings"]] == [DEFAULT_PORT]
    assert environment[env_name("port")] == str(DEFAULT_PORT)

    target_group = config.value(config.resource("aws_lb_target_group.this"))
    assert target_group["port"] == DEFAULT_PORT
    assert target_group["target_type"] == "ip"

    service = config.value(config.resource("aws_ecs_service.this"))
    [load_balancer] = service["load_balancer"]
    assert load_balancer["container_port"] == DEFAULT_PORT
    assert load_balancer["container_name"] == container["name"]

    # The ALB may reach the tasks on that port, and only that port.
    for address in (
        "aws_vpc_security_group_egress_rule.alb_to_tasks",
        "aws_vpc_security_group_ingress_rule.tasks_from_alb",
    ):
        rule = config.value(config.resource(address))
        assert (rule["from_port"], rule["to_port"], rule["ip_protocol"]) == (DEFAULT_PORT, DEFAULT_PORT, "tcp")


def test_alb_health_check_is_the_readiness_route(config: Config) -> None:
    target_group = config.value(config.resource("aws_lb_target_group.this"))
    [health_check] = target_group["health_check"]
    assert health_check["path"] == READINESS_PATH
    assert health_check["enabled"] is True
    assert health_check["matcher"] == "200"  # /readyz answers 503 when not ready
    assert health_check["port"] == "traffic-port"


def test_every_botscore_variable_is_a_setting(environment: dict[str, str]) -> None:
    known = {env_name(field) for field in Settings.model_fields}
    botscore = {name for name in environment if name.startswith(ENV_PREFIX)}
    assert botscore - known == set(), f"the task sets variables the app does not read: {sorted(botscore - known)}"
    required = {
        env_name(f)
        for f in (
            "audit_bucket",
            "audit_prefix",
            "audit_dir",
            "audit_shutdown_seconds",
            "host",
            "port",
            "log_level",
            "workers",
        )
    }
    assert required - botscore == set(), f"the task does not set {sorted(required - botscore)}"
    assert environment[env_name("host")] == "0.0.0.0"


def test_environment_values_are_valid_settings(environment: dict[str, str]) -> None:
    """The values the task sets (with their defaults) pass the app's own validation."""
    values: dict[str, str] = {}
    for name, value in environment.items():
        if name.startswith(ENV_PREFIX):
            field = name.removeprefix(ENV_PREFIX).lower()
            values[field] = value
    values["audit_bucket"] = "botscore-audit-123456789012-eu-west-1"  # a resource reference in Terraform
    settings = Settings(**values)
    assert settings.port == DEFAULT_PORT
    assert str(settings.audit_dir) == "/var/lib/botscore"


def test_audit_dir_is_the_only_writable_mount(
    config: Config, container: dict[str, Any], environment: dict[str, str]
) -> None:
    assert container["readonlyRootFilesystem"] is True
    assert container["user"] == "10001:10001"
    assert container.get("privileged", False) is False
    [mount] = container["mountPoints"]
    assert mount["containerPath"] == environment[env_name("audit_dir")] == "/var/lib/botscore"
    assert mount["readOnly"] is False
    task = config.value(config.resource("aws_ecs_task_definition.this"))
    assert [v["name"] for v in task["volume"]] == [mount["sourceVolume"]]
    assert task["requires_compatibilities"] == ["FARGATE"]


def test_stop_timeout_outlasts_the_audit_shutdown(
    config: Config, container: dict[str, Any], environment: dict[str, str]
) -> None:
    stop_timeout = container["stopTimeout"]
    shutdown = float(environment[env_name("audit_shutdown_seconds")])
    assert isinstance(stop_timeout, int)
    assert shutdown < stop_timeout <= FARGATE_MAX_STOP_TIMEOUT
    # Also for values other than the defaults: the task definition refuses stop_timeout <= shutdown.
    task = config.resource("aws_ecs_task_definition.this")
    conditions = [p["condition"] for lc in task["lifecycle"] for p in lc.get("precondition", [])]
    assert "${var.stop_timeout > var.audit_shutdown_seconds}" in conditions


def test_service_deployment(config: Config) -> None:
    service = config.value(config.resource("aws_ecs_service.this"))
    [network] = service["network_configuration"]
    assert network["assign_public_ip"] is False
    raw_network = config.resource("aws_ecs_service.this")["network_configuration"][0]
    assert raw_network["subnets"] == "${local.private_subnet_ids}"
    assert config.locals["private_subnet_ids"] == (
        "${var.create_vpc ? aws_subnet.private[*].id : var.private_subnet_ids}"
    )
    [breaker] = service["deployment_circuit_breaker"]
    assert breaker == {"enable": True, "rollback": True}
    assert service["health_check_grace_period_seconds"] > 0
    cluster = config.value(config.resource("aws_ecs_cluster.this"))
    assert {"name": "containerInsights", "value": "enabled"} in cluster["setting"]


# -- the audit bucket, its key layout and who may write to it --------------------------


AUDIT_BUCKET = ref("aws_s3_bucket", "audit", "bucket")
AUDIT_BUCKET_ARN = ref("aws_s3_bucket", "audit", "arn")
PREFIXES = [None, "", "bot-score/", "audit/v2/"]  # None: the variable's default
TIMES = [
    datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 27, 9, 5, 7, 123000, tzinfo=UTC),
    datetime(2027, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
]


@functools.cache
def _with_prefix(prefix: str | None) -> Config:
    return Config(TERRAFORM_DIR, overrides={} if prefix is None else {"audit_prefix": prefix})


def test_the_task_ships_to_the_audit_bucket(environment: dict[str, str], config: Config) -> None:
    assert environment[env_name("audit_bucket")] == AUDIT_BUCKET
    assert environment[env_name("audit_prefix")] == config.value('"${var.audit_prefix}"')
    default_prefix = config.value(config.variables["audit_prefix"]["default"])
    assert default_prefix == Settings.model_fields["audit_prefix"].default


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("when", TIMES)
def test_glue_location_template_matches_object_keys(prefix: str | None, when: datetime) -> None:
    config = _with_prefix(prefix)
    container = config.value(config.locals["container_definition"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    task_prefix = environment[env_name("audit_prefix")]
    bucket = environment[env_name("audit_bucket")]

    table = config.value(config.resource("aws_glue_catalog_table.audit"))
    template = table["parameters"]["storage.location.template"]
    assert template.startswith(f"s3://{bucket}/"), template
    assert "${dt}" in template and "${hour}" in template
    location = template.replace("${dt}", f"{when:%Y-%m-%d}").replace("${hour}", f"{when:%H}")
    key = object_key(task_prefix, when, "host", "w", 1)
    url = f"s3://{bucket}/{key}"
    assert url.startswith(location), f"{url} is not under {location}"
    # The object sits directly in the partition's folder.
    assert "/" not in url[len(location) :]


def test_glue_table_projection_and_schema(config: Config) -> None:
    table = config.value(config.resource("aws_glue_catalog_table.audit"))
    parameters = table["parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dt.type"] == "date"
    assert parameters["projection.dt.format"] == "yyyy-MM-dd"
    assert parameters["projection.dt.range"].endswith(",NOW")
    assert parameters["projection.hour.type"] == "integer"
    assert parameters["projection.hour.range"] == "0,23"
    assert parameters["projection.hour.digits"] == "2"
    assert [(k["name"], k["type"]) for k in table["partition_keys"]] == [("dt", "string"), ("hour", "string")]

    [storage] = table["storage_descriptor"]
    [serde] = storage["ser_de_info"]
    assert serde["serialization_library"] == "org.openx.data.jsonserde.JsonSerDe"
    assert [(c["name"], c["type"]) for c in storage["columns"]] == [(c.name, c.type) for c in schema.COLUMNS]
    assert storage["location"] == f"s3://{AUDIT_BUCKET}/{config.value(config.variables['audit_prefix']['default'])}"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_task_role_may_put_objects_under_the_prefix_only(prefix: str | None) -> None:
    config = _with_prefix(prefix)
    container = config.value(config.locals["container_definition"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    task_prefix = environment[env_name("audit_prefix")]

    task = config.value(config.resource("aws_ecs_task_definition.this"))
    assert task["task_role_arn"] == ref("aws_iam_role", "task", "arn")
    assert task["execution_role_arn"] == ref("aws_iam_role", "execution", "arn")
    policies = {name: config.value(body) for name, body in config.resources_of_type("aws_iam_role_policy").items()}
    task_policies = [p for p in policies.values() if p["role"] == ref("aws_iam_role", "task", "id")]
    assert [p["policy"] for p in task_policies] == [ref("data.aws_iam_policy_document", "task", "json")]
    assert config.resources_of_type("aws_iam_role_policy_attachment") == {}

    statements = _statements(config, "aws_iam_policy_document.task")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in s["actions"])]
    assert len(s3) == 1, s3
    [put] = s3
    assert put.get("effect", "Allow") == "Allow"
    assert put["actions"] == ["s3:PutObject"]
    assert put["resources"] == [f"{AUDIT_BUCKET_ARN}/{task_prefix}*"]
    for statement in statements:
        assert "*" not in statement["resources"], statement
        assert all("*" not in action for action in statement["actions"]), statement


def test_audit_bucket_is_locked_down(config: Config) -> None:
    ownership = config.value(config.resource("aws_s3_bucket_ownership_controls.audit"))
    assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"
    block = config.value(config.resource("aws_s3_bucket_public_access_block.audit"))
    assert all(
        block[k] is True
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    )
    versioning = config.value(config.resource("aws_s3_bucket_versioning.audit"))
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    [tls] = [s for s in _statements(config, "aws_iam_policy_document.audit_bucket") if s.get("effect") == "Deny"]
    assert tls["condition"][0]["variable"] == "aws:SecureTransport"
    assert tls["condition"][0]["values"] == ["false"]


# -- the rest of the layout ----------------------------------------------------------------


def test_versions_are_pinned(config: Config) -> None:
    [terraform] = config.blocks["terraform"]
    assert config.value(terraform["required_version"]) == ">= 1.6"
    [providers] = terraform["required_providers"]
    aws = config.value(providers["aws"])
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> [0-9]+\.0", aws["version"]), aws["version"]


def test_every_variable_is_typed_and_described(config: Config) -> None:
    for name, body in config.variables.items():
        assert "type" in body, f"var.{name} has no type"
        assert config.value(body.get("description", '""')).strip(), f"var.{name} has no description"


def test_outputs(config: Config) -> None:
    outputs: dict[str, Any] = {}
    for body in config.blocks["output"]:
        outputs.update(body)
    for name in ("service_url", "audit_bucket", "ecr_repository_url", "athena_workgroup"):
        assert name in outputs, f"output {name} missing"
        assert config.value(outputs[name]["description"]).strip()


def test_p99_latency_alarm(config: Config) -> None:
    alarm = config.value(config.resource("aws_cloudwatch_metric_alarm.p99_latency"))
    assert alarm["metric_name"] == "TargetResponseTime"
    assert alarm["extended_statistic"] == "p99"
    assert alarm["threshold"] == 0.2
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["alarm_actions"] == [ref("aws_sns_topic", "alarms", "arn")]


def test_readme_tables_list_every_variable_and_output(config: Config) -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text()
    inputs = readme.split("## Inputs", 1)[1].split("## Outputs", 1)[0]
    outputs_section = readme.split("## Outputs", 1)[1]
    documented_inputs = re.findall(r"^\| `([a-z0-9_]+)` \|", inputs, re.MULTILINE)
    documented_outputs = re.findall(r"^\| `([a-z0-9_]+)` \|", outputs_section, re.MULTILINE)
    outputs = [name for body in config.blocks["output"] for name in body]
    assert sorted(documented_inputs) == sorted(config.variables)
    assert sorted(documented_outputs) == sorted(outputs)
