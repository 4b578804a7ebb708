"""The Terraform deployment (terraform/) agrees with the application it deploys.

The configuration is read with python-hcl2, which keeps HCL's syntax in its values:
string literals keep their quotes (`'"abc"'`), expressions are wrapped in `${...}`
and block labels are quoted keys. `Config` undoes that and evaluates the small part
of the language the deployment uses for the values checked here: literals (strings,
numbers, bools, null, lists, objects), string templates, `var.*` (their defaults, or an
override), `local.*`, `count.index` (in `Config.instance`), `cond ? a : b`, `||`, `&&`,
`!`, comparisons, `+`, `-`, `*`, `/`, `%`, parentheses, indexing, `tostring()`, `length()`,
`contains()`, `floor()`, `lookup()`, `range()`, `split()`, `startswith()`, `concat()`, `distinct()`, `merge()`,
`toset()`, `jsonencode()` (to the value it encodes) and `can(regex())`;
`Config.rendered` expands `dynamic` blocks. A reference to a resource attribute evaluates
to a token such as
`<aws_s3_bucket.audit.bucket>` (`<aws_efs_file_system.spool[0].id>` for a counted
resource), so two places that name the same bucket compare equal; a splat
`aws_subnet.private[*].id` is the list of such tokens, one per evaluated `count`.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import hcl2
import pytest

from botscore.audit import schema
from botscore.audit.spool import object_key
from botscore.audit.upkeep import THREAD_JOIN_SECONDS
from botscore.http.operations import LIVENESS_PATH
from botscore.server import UVICORN_OPTIONS
from botscore.settings import DEFAULT_PORT, ENV_PREFIX, Settings, env_name
from tests.support.athena import template_files

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "terraform"

# Fargate's largest stopTimeout.
FARGATE_MAX_STOP_TIMEOUT = 120


_META_KEYS = {"__is_block__", "__inline_comments__", "__comments__"}
_RESOURCE_REF = re.compile(r"^((?:data\.)?aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+(?:\[[0-9]+\])?)\.([a-z_]+)$")
_SPLAT = re.compile(r"^((?:data\.)?aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+)\[\*\]\.([a-z_]+)$")
_CALL = re.compile(r"^([a-z_]+)\((.*)\)$", re.DOTALL)
_INTERPOLATION = re.compile(r"(?<!\$)\$\{([^{}]*)\}")


class Unresolved(Exception):
    """An expression outside the subset `Config` evaluates."""


class _Failed(Exception):
    """An expression Terraform would refuse to evaluate (e.g. `regex` without a match): what `can()` catches."""


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


@functools.cache
def _parse(directory: Path) -> dict[str, list[Any]]:
    """All .tf files of a directory, merged by block type (parsed once per test session)."""
    blocks: dict[str, list[Any]] = {}
    files = sorted(directory.glob("*.tf"))
    assert files, f"no .tf files in {directory}"
    for path in files:
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for block_type, bodies in parsed.items():
            blocks.setdefault(block_type, []).extend(_clean(bodies))
    return blocks


def ref(resource_type: str, name: str, attribute: str) -> str:
    """The token a reference to a resource attribute evaluates to (name: `spool[0]` for a counted one)."""
    return f"<{resource_type}.{name}.{attribute}>"


def _outside_strings(expression: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(position, character, bracket depth after it) for each character outside string literals."""
    depth, in_string, i = 0, False, start
    while i < len(expression):
        char = expression[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        else:
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            yield i, char, depth
        i += 1
    if depth or in_string:
        raise Unresolved(expression)


def _top_level(expression: str) -> list[int]:
    """Positions in `expression` outside string literals and brackets, in order."""
    return [i for i, char, depth in _outside_strings(expression) if depth == 0 and char not in ")]}"]


def _closing(expression: str, start: int) -> int:
    """Position of the bracket closing the one at `start`."""
    for i, char, depth in _outside_strings(expression, start):
        if depth == 0 and char in ")]}":
            return i
    raise Unresolved(expression)


def _split_commas(text: str) -> list[str]:
    if not text.strip():
        return []
    cuts = [i for i in _top_level(text) if text[i] == ","]
    parts = [text[a + 1 : b] for a, b in zip([-1, *cuts], [*cuts, len(text)], strict=True)]
    return [p for p in parts if p.strip()]  # HCL allows a trailing comma


def _split_conditional(expression: str) -> tuple[str, str, str] | None:
    top = _top_level(expression)
    marks = [i for i in top if expression[i] == "?"]
    if not marks:
        return None
    depth = 0
    for i in top:
        if i <= marks[0]:
            continue
        if expression[i] == "?":
            depth += 1
        elif expression[i] == ":":
            if depth == 0:
                return expression[: marks[0]], expression[marks[0] + 1 : i], expression[i + 1 :]
            depth -= 1
    raise Unresolved(expression)


def _split_binary(expression: str, operators: tuple[str, ...]) -> tuple[str, str, str] | None:
    """The rightmost top-level use of one of `operators` (all left-associative): (left, operator, right)."""
    top = set(_top_level(expression))
    for i in range(len(expression) - 1, 0, -1):
        for operator in operators:
            end = i + len(operator)
            if not all(j in top for j in range(i, end)) or expression[i:end] != operator:
                continue
            if operator in ("<", ">") and expression[end : end + 1] == "=":
                continue  # the first character of <= or >=
            if operator in ("<", ">") and expression[i - 1] in "<>=!":
                continue
            return expression[:i], operator, expression[end:]
    return None


_BINARY = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
}


class Config:
    """All .tf files of a directory, merged, with a tiny evaluator."""

    def __init__(self, directory: Path, overrides: dict[str, Any] | None = None) -> None:
        self.blocks: dict[str, list[Any]] = _parse(directory)  # shared: never modified
        self.variables: dict[str, dict[str, Any]] = {}
        for body in self.blocks.get("variable", []):
            self.variables.update(body)
        self.locals: dict[str, Any] = {}
        for body in self.blocks.get("locals", []):
            for key, value in body.items():
                assert key not in self.locals, f"local.{key} defined twice"
                self.locals[key] = value
        self.overrides = overrides or {}
        self.count_index: int | None = None

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

    def count(self, address: str) -> int:
        """The evaluated `count` of a resource (or `data.` source): 1 without one."""
        kind, _, rest = address.partition(".")
        block = self.data(rest) if kind == "data" else self.resource(address)
        if "count" not in block:
            return 1
        count = self._strict(block["count"])
        assert isinstance(count, int) and not isinstance(count, bool), f"{address}: count {block['count']!r}"
        return count

    def instance(self, index: int) -> Config:
        """This configuration with `count.index` = index, for a counted resource's instance."""
        bound = copy.copy(self)
        bound.count_index = index
        return bound

    def rendered(self, raw: Any) -> Any:
        """A block as Terraform builds it: each `dynamic "x"` block becomes one `x` block per for_each item."""
        if isinstance(raw, list):
            return [self.rendered(v) for v in raw]
        if not isinstance(raw, dict):
            return raw
        out = {k: self.rendered(v) for k, v in raw.items() if k != "dynamic"}
        for dynamic in raw.get("dynamic", []):
            for label, body in dynamic.items():
                items = self._strict(body["for_each"])
                assert isinstance(items, list), f"dynamic {label}: for_each {body['for_each']!r} is not a list"
                [content] = body["content"]
                if items:  # no item, no block
                    out.setdefault(label, []).extend(self.rendered(content) for _ in items)
        return out

    # -- evaluation ---------------------------------------------------------------

    def value(self, raw: Any) -> Any:
        """Evaluate an attribute value as python-hcl2 gives it.

        An expression outside the subset stays as python-hcl2 gave it (e.g. `"${a[*]}"`),
        so it never equals an evaluated value a test expects.
        """
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if not isinstance(raw, str):
            return raw
        try:
            return self._strict(raw)
        except Unresolved:
            return raw

    def _strict(self, raw: Any) -> Any:
        """Like `value`, but a string it cannot evaluate raises Unresolved (inside an expression)."""
        if not isinstance(raw, str):
            return self.value(raw)
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            return self._template(_unquote(raw))
        if raw.startswith("${") and raw.endswith("}") and _closing(raw, 1) == len(raw) - 1:
            return self._expression(raw[2:-1])
        return raw

    def _template(self, text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            return _to_string(self._expression(match.group(1)))

        return _INTERPOLATION.sub(substitute, text).replace("$${", "${")

    def _expression(self, expression: str) -> Any:
        expression = expression.strip()
        if not expression:
            raise Unresolved(expression)
        if parts := _split_conditional(expression):
            condition = self._expression(parts[0])
            if not isinstance(condition, bool):
                raise Unresolved(expression)
            return self._expression(parts[1] if condition else parts[2])
        for operators in (("||",), ("&&",), ("==", "!="), (">=", "<=", ">", "<"), ("+", "-"), ("*", "/", "%")):
            if split := _split_binary(expression, operators):
                left, operator, right = split
                a = self._expression(left)
                if operator in ("||", "&&"):
                    if not isinstance(a, bool):
                        raise Unresolved(expression)
                    if (operator == "||") == a:
                        return a  # short circuit
                    b = self._expression(right)
                    if not isinstance(b, bool):
                        raise Unresolved(expression)
                    return b
                b = self._expression(right)
                if operator not in ("==", "!=") and not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)
                ):
                    raise Unresolved(expression)
                return _BINARY[operator](a, b)
        if expression.startswith("!"):
            operand = self._expression(expression[1:])
            if not isinstance(operand, bool):
                raise Unresolved(expression)
            return not operand
        if expression.startswith('"') and _closing_quote(expression) == len(expression) - 1:
            return self._template(_unquote(expression))
        if expression in ("true", "false"):
            return expression == "true"
        if expression == "null":
            return None
        if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", expression):
            return float(expression) if "." in expression else int(expression)
        if expression.startswith("[") and _closing(expression, 0) == len(expression) - 1:
            return [self._expression(item) for item in _split_commas(expression[1:-1])]
        if expression.startswith("(") and _closing(expression, 0) == len(expression) - 1:
            return self._expression(expression[1:-1])
        if expression.startswith("{") and _closing(expression, 0) == len(expression) - 1:
            return dict(self._attribute(item) for item in _split_commas(expression[1:-1]))
        if (match := _CALL.fullmatch(expression)) and _closing(expression, len(match.group(1))) == len(expression) - 1:
            arguments = _split_commas(match.group(2))
            if match.group(1) == "can" and len(arguments) == 1:
                try:
                    self._expression(arguments[0])
                except _Failed:
                    return False
                return True
            return self._call(match.group(1), [self._expression(a) for a in arguments])
        if match := re.fullmatch(r"var\.([A-Za-z0-9_]+)", expression):
            name = match.group(1)
            if name in self.overrides:
                return self.overrides[name]
            assert name in self.variables, f"var.{name} is not declared"
            if "default" not in self.variables[name]:
                raise Unresolved(expression)  # a required variable
            return self._strict(self.variables[name]["default"])
        if match := re.fullmatch(r"local\.([A-Za-z0-9_]+)", expression):
            name = match.group(1)
            assert name in self.locals, f"local.{name} is not defined"
            return self._strict(self.locals[name])
        if expression == "count.index":
            if self.count_index is None:
                raise Unresolved(expression)
            return self.count_index
        if match := _RESOURCE_REF.fullmatch(expression):
            return ref(*match.groups())
        if match := _SPLAT.fullmatch(expression):
            resource_type, name, attribute = match.groups()
            prefix = "data." if resource_type.startswith("data.") else ""
            count = self.count(f"{prefix}{resource_type.removeprefix('data.')}.{name}")
            return [ref(resource_type, f"{name}[{i}]", attribute) for i in range(count)]
        if expression.endswith("]"):
            opening = next(
                i
                for i in range(len(expression) - 1, -1, -1)
                if expression[i] == "[" and _closing(expression, i) == len(expression) - 1
            )
            if opening > 0:
                base = self._expression(expression[:opening])
                index = self._expression(expression[opening + 1 : -1])
                if isinstance(base, list) and isinstance(index, int) and 0 <= index < len(base):
                    return base[index]
                if isinstance(base, dict) and isinstance(index, str) and index in base:
                    return base[index]
        raise Unresolved(expression)

    def _attribute(self, item: str) -> tuple[str, Any]:
        """One `key = value` (or `key: value`) of an object literal."""
        for i in _top_level(item):
            if item[i] in "=:":
                return _unquote(item[:i].strip()), self._expression(item[i + 1 :])
        raise Unresolved(item)

    @staticmethod
    def _call(function: str, args: list[Any]) -> Any:
        if function == "tostring" and len(args) == 1:
            return _to_string(args[0])
        if function == "length" and len(args) == 1 and isinstance(args[0], (list, dict, str)):
            return len(args[0])
        if function == "contains" and len(args) == 2 and isinstance(args[0], list):
            return args[1] in args[0]
        if function == "concat" and all(isinstance(a, list) for a in args):
            return [item for a in args for item in a]
        if function == "distinct" and len(args) == 1 and isinstance(args[0], list):
            return list(dict.fromkeys(args[0]))
        if function == "merge" and all(isinstance(a, dict) for a in args):
            return {k: v for a in args for k, v in a.items()}
        if function == "jsonencode" and len(args) == 1:
            return args[0]  # the value itself, so that a test reads the policy or pattern it encodes
        if function == "toset" and len(args) == 1 and isinstance(args[0], list):
            return sorted(set(args[0]))  # a set of strings, in Terraform's (lexical) order
        if function == "floor" and len(args) == 1 and isinstance(args[0], (int, float)):
            return math.floor(args[0])
        if function == "lookup" and len(args) == 3 and isinstance(args[0], dict):
            return args[0].get(args[1], args[2])
        if function == "range" and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            return list(range(*args))
        if function == "startswith" and len(args) == 2 and all(isinstance(a, str) for a in args):
            return args[0].startswith(args[1])
        if function == "split" and len(args) == 2 and all(isinstance(a, str) for a in args):
            return args[1].split(args[0])
        if function == "regex" and len(args) == 2 and all(isinstance(a, str) for a in args):
            # RE2 and Python agree on the patterns used here (classes, anchors, repetition).
            if not (match := re.search(args[0], args[1])):
                raise _Failed(f"regex({args[0]!r}, {args[1]!r}) does not match")
            return match.group(0)
        raise Unresolved(f"{function}({args!r})")


def _closing_quote(expression: str) -> int:
    """Position of the quote closing the string literal that starts `expression`."""
    i = 1
    while i < len(expression):
        if expression[i] == "\\":
            i += 2
            continue
        if expression[i] == '"':
            return i
        i += 1
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
    """The statements of a policy document, `dynamic "statement"` blocks included."""
    return [config.value(s) for s in config.rendered(config.data(address)).get("statement", [])]


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


def test_alb_health_check_is_the_liveness_route_so_a_shared_fault_cycles_no_task(config: Config) -> None:
    """ECS replaces a task the ALB finds unhealthy: the check asks only whether this task's process answers
    (/healthz), never /readyz, whose reasons (a spool filling during an S3 outage) every task shares."""
    target_group = config.value(config.resource("aws_lb_target_group.this"))
    [health_check] = target_group["health_check"]
    assert health_check["path"] == LIVENESS_PATH == "/healthz"
    assert health_check["enabled"] is True
    assert health_check["matcher"] == "200"
    assert health_check["port"] == "traffic-port"
    # A wedged process: three checks of 5 s unanswered, 30 s, and the task is replaced.
    assert (health_check["timeout"], health_check["unhealthy_threshold"], health_check["interval"]) == (5, 3, 10)


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
            "audit_sync",
            "audit_adopt_after_seconds",
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


def _app_drain_seconds(shutdown: float) -> float:
    """The longest the app takes to stop after SIGTERM: uvicorn's graceful shutdown of in-flight requests,
    then AuditLog.close: the shipper's deadline (its thread joined 0.5 s past it, Shipper.stop) and the
    joins of the housekeeping and heartbeat threads."""
    graceful = UVICORN_OPTIONS["timeout_graceful_shutdown"]
    assert isinstance(graceful, (int, float))
    return graceful + shutdown + 0.5 + 2 * THREAD_JOIN_SECONDS


@pytest.mark.parametrize("shutdown", [None, 5, 20, 60, 100])
def test_stop_timeout_is_derived_from_the_apps_whole_drain(shutdown: int | None) -> None:
    """ECS sends SIGKILL stop_timeout after SIGTERM: it covers the app's drain, which is more than the
    shipping deadline alone (5 s graceful + 20 s shipping + up to 10.5 s of joins with the defaults)."""
    config = _with() if shutdown is None else _with(audit_shutdown_seconds=shutdown)
    environment = _environment(config)
    drain = _app_drain_seconds(float(environment[env_name("audit_shutdown_seconds")]))
    stop_timeout = _container(config)["stopTimeout"]
    assert isinstance(stop_timeout, int)
    assert config.value("${local.app_drain_seconds}") == math.ceil(drain)
    assert stop_timeout == math.ceil(drain) + 5
    if stop_timeout <= FARGATE_MAX_STOP_TIMEOUT:
        assert _failing_conditions(config, "aws_ecs_task_definition.this") == []
    else:  # 100 s of shipping: no Fargate stop timeout covers it, and the plan says so
        [message] = _failing_conditions(config, "aws_ecs_task_definition.this")
        assert message.startswith(f"The stop timeout ({stop_timeout} s) must cover the app's drain")
    assert _with().value("${local.stop_timeout}") == 41  # with the defaults


def test_a_stop_timeout_set_below_the_drain_is_refused() -> None:
    assert _failing_conditions(_with(stop_timeout=40), "aws_ecs_task_definition.this") == []
    [message] = _failing_conditions(_with(stop_timeout=30), "aws_ecs_task_definition.this")
    assert message.startswith("The stop timeout (30 s) must cover the app's drain, 36 s")
    assert _validation_passes("stop_timeout", None) and _validation_passes("stop_timeout", 120)
    assert not _validation_passes("stop_timeout", 121)


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


def test_a_saved_query_creates_the_audit_answers_view_from_the_one_file_of_its_sql(config: Config) -> None:
    view = config.value(config.resource("aws_athena_named_query.audit_answers_view"))
    assert view["query"] == '${file("${path.module}/audit_answers.sql")}'
    assert view["workgroup"] == ref("aws_athena_workgroup", "this", "id")
    assert view["database"] == ref("aws_glue_catalog_database", "this", "name")
    sql = (TERRAFORM_DIR / "audit_answers.sql").read_text()
    table, answers = config.value(config.locals["glue_table"]), config.value(config.locals["answers_view"])
    assert sql.startswith(f"CREATE OR REPLACE VIEW {answers} AS\n")
    assert set(re.findall(r"\bFROM (\w+)", sql)) == {table}
    assert ";" not in sql  # Athena runs one statement per query


def test_the_other_saved_queries_count_answers_from_the_view_never_from_the_table(config: Config) -> None:
    table, answers = config.value(config.locals["glue_table"]), config.value(config.locals["answers_view"])
    queries = config.resources_of_type("aws_athena_named_query")
    del queries["audit_answers_view"]
    assert len(queries) == 9
    generated = template_files()
    for name, body in queries.items():
        query = generated[name].read_text() if name in generated else config.value(body)["query"]
        query = query.replace("${answers_view}", answers)  # templatefile's variable, as analytics.tf passes it
        assert re.search(rf"\bFROM {answers}\b", query), name
        assert table not in query, name


@pytest.mark.parametrize("prefix", PREFIXES)
def test_task_role_may_put_and_check_objects_under_the_prefix_only(prefix: str | None) -> None:
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
    # The model registry: read, and the canary's two objects written conditionally
    # (test_task_reads_the_model_registry_and_nothing_else_new, test_terraform_audit_trail.py).
    statements = [s for s in statements if s.get("sid") not in ("ReadModelRegistry", "SteerCanary")]
    s3 = [s for s in statements if any(a.startswith("s3:") for a in s["actions"])]
    # Put, and GetObject for the HEAD that confirms an upload's size and checksum before the
    # local segment is deleted; both on the prefix only. Never list or delete.
    assert sorted(a for s in s3 for a in s["actions"]) == ["s3:GetObject", "s3:PutObject"], s3
    for statement in s3:
        assert statement.get("effect", "Allow") == "Allow"
        assert statement["resources"] == [f"{AUDIT_BUCKET_ARN}/{task_prefix}*"]
        assert "condition" not in statement
    # GetObject reads metadata (HEAD) only: the role cannot decrypt an object's body.
    kms_actions = {a for s in statements for a in s["actions"] if a.startswith("kms:")}
    assert kms_actions == {"kms:GenerateDataKey"}
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
    [tls] = [s for s in _statements(config, "aws_iam_policy_document.audit_bucket") if s["sid"] == "DenyPlainHttp"]
    assert tls["condition"][0]["variable"] == "aws:SecureTransport"
    assert tls["condition"][0]["values"] == ["false"]


# -- the audit spool: EFS by default, the task's ephemeral storage on request ---------------

EFS_FILE_SYSTEM_ID = ref("aws_efs_file_system", "spool[0]", "id")
EFS_FILE_SYSTEM_ARN = ref("aws_efs_file_system", "spool[0]", "arn")
EFS_ACCESS_POINT_ID = ref("aws_efs_access_point", "spool[0]", "id")
EFS_ACCESS_POINT_ARN = ref("aws_efs_access_point", "spool[0]", "arn")
EFS_SECURITY_GROUP_ID = ref("aws_security_group", "spool[0]", "id")
TASKS_SECURITY_GROUP_ID = ref("aws_security_group", "tasks", "id")
TASK_ROLE_ARN = ref("aws_iam_role", "task", "arn")
NFS_PORT = 2049
CONTAINER_UID = CONTAINER_GID = 10001

# Everything that exists for the EFS spool only: none of it with audit_spool_storage = "ephemeral".
SPOOL_ADDRESSES = [
    "aws_efs_file_system.spool",
    "aws_efs_access_point.spool",
    "aws_efs_mount_target.spool",
    "aws_efs_file_system_policy.spool",
    "data.aws_iam_policy_document.spool_file_system",
    "aws_security_group.spool",
    "aws_vpc_security_group_ingress_rule.spool_nfs_from_tasks",
    "aws_vpc_security_group_egress_rule.tasks_nfs_spool",
]


def _with(**overrides: Any) -> Config:
    return Config(TERRAFORM_DIR, overrides=overrides)


def _spool_volume(config: Config) -> dict[str, Any]:
    task = config.rendered(config.resource("aws_ecs_task_definition.this"))
    [volume] = [config.value(v) for v in task["volume"]]
    assert volume["name"] == "audit-spool"
    return volume


def _efs_statements(config: Config, address: str) -> list[dict[str, Any]]:
    return [s for s in _statements(config, address) if any(a.startswith("elasticfilesystem:") for a in s["actions"])]


def _rules(config: Config, kind: str, security_group_id: str) -> list[dict[str, Any]]:
    """The evaluated rules (kind: ingress or egress) of a security group, one per instance."""
    found = []
    for name, body in config.resources_of_type(f"aws_vpc_security_group_{kind}_rule").items():
        address = f"aws_vpc_security_group_{kind}_rule.{name}"
        if "for_each" in body:
            rule = config.value(body)
            if rule["security_group_id"] == security_group_id:
                raise AssertionError(f"{address} uses for_each: check its rules by hand")
            continue
        for index in range(config.count(address)):
            rule = config.instance(index).value({k: v for k, v in body.items() if k != "count"})
            if rule["security_group_id"] == security_group_id:
                found.append(rule)
    return found


def test_the_spool_is_on_efs_by_default(config: Config) -> None:
    assert config.value(config.variables["audit_spool_storage"]["default"]) == "efs"
    for address in SPOOL_ADDRESSES:
        if address != "aws_efs_mount_target.spool":
            assert config.count(address) == 1, address
    # Every EFS resource of the configuration is in SPOOL_ADDRESSES, so the ephemeral test covers it.
    every_efs = {
        f"{kind}.{name}"
        for body in config.blocks["resource"]
        for kind, named in body.items()
        if kind.startswith("aws_efs_")
        for name in named
    }
    assert every_efs <= set(SPOOL_ADDRESSES), every_efs - set(SPOOL_ADDRESSES)


def test_spool_volume_mounts_efs_through_the_access_point_over_tls(config: Config) -> None:
    volume = _spool_volume(config)
    assert volume == {
        "name": "audit-spool",
        "efs_volume_configuration": [
            {
                "file_system_id": EFS_FILE_SYSTEM_ID,
                "transit_encryption": "ENABLED",
                "authorization_config": [{"access_point_id": EFS_ACCESS_POINT_ID, "iam": "ENABLED"}],
            }
        ],
    }
    # EFS volumes need Fargate platform 1.4.0 or later; LATEST is 1.4.0 on Linux.
    service = config.value(config.resource("aws_ecs_service.this"))
    assert service["launch_type"] == "FARGATE"
    assert service["platform_version"] in ("LATEST", "1.4.0")
    # Tasks start only once the mount targets and the file system policy exist.
    depends_on = config.resource("aws_ecs_service.this")["depends_on"]
    assert "${aws_efs_mount_target.spool}" in depends_on
    assert "${aws_efs_file_system_policy.spool}" in depends_on


def test_efs_file_system_is_encrypted_with_the_service_key(config: Config) -> None:
    file_system = config.value(config.resource("aws_efs_file_system.spool"))
    assert file_system["encrypted"] is True
    assert file_system["kms_key_id"] == ref("aws_kms_key", "this", "arn")


def test_access_point_is_the_container_user(config: Config, container: dict[str, Any]) -> None:
    assert container["user"] == f"{CONTAINER_UID}:{CONTAINER_GID}"
    access_point = config.value(config.resource("aws_efs_access_point.spool"))
    assert access_point["file_system_id"] == EFS_FILE_SYSTEM_ID
    assert access_point["posix_user"] == [{"uid": CONTAINER_UID, "gid": CONTAINER_GID}]
    [root] = access_point["root_directory"]
    assert root["path"] == "/spool"
    assert root["creation_info"] == [{"owner_uid": CONTAINER_UID, "owner_gid": CONTAINER_GID, "permissions": "0750"}]


def test_mount_targets_in_every_private_subnet(config: Config) -> None:
    address = "aws_efs_mount_target.spool"
    body = config.resource(address)
    # Created VPC: one per private subnet, i.e. per AZ.
    az_count = config.value(config.variables["az_count"]["default"])
    assert config.count(address) == az_count == config.count("aws_subnet.private")
    for index in range(az_count):
        target = config.instance(index).value(body)
        assert target["subnet_id"] == ref("aws_subnet", f"private[{index}]", "id")
        assert target["file_system_id"] == EFS_FILE_SYSTEM_ID
        assert target["security_groups"] == [EFS_SECURITY_GROUP_ID]
    # Existing VPC: the given private subnets, the tasks' subnets.
    subnets = ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3", "subnet-0123456789abcdef4"]
    existing = _with(create_vpc=False, vpc_id="vpc-0123456789abcdef0", private_subnet_ids=subnets)
    assert existing.count(address) == len(subnets)
    assert [existing.instance(i).value(body)["subnet_id"] for i in range(len(subnets))] == subnets
    service = existing.value(existing.resource("aws_ecs_service.this"))
    assert service["network_configuration"][0]["subnets"] == subnets


def test_efs_security_group_admits_nfs_from_the_tasks_only(config: Config) -> None:
    group = config.value(config.resource("aws_security_group.spool"))
    assert group["vpc_id"] == ref("aws_vpc", "this[0]", "id")
    assert "ingress" not in group and "egress" not in group  # no inline rules
    ingress = _rules(config, "ingress", EFS_SECURITY_GROUP_ID)
    assert ingress == [
        {
            "security_group_id": EFS_SECURITY_GROUP_ID,
            "description": ingress[0]["description"],
            "ip_protocol": "tcp",
            "from_port": NFS_PORT,
            "to_port": NFS_PORT,
            "referenced_security_group_id": TASKS_SECURITY_GROUP_ID,
        }
    ]
    assert _rules(config, "egress", EFS_SECURITY_GROUP_ID) == []
    # The tasks may open NFS to the mount targets' group, and to nothing else.
    nfs_out = [r for r in _rules(config, "egress", TASKS_SECURITY_GROUP_ID) if r["to_port"] == NFS_PORT]
    assert [(r["ip_protocol"], r["from_port"], r.get("referenced_security_group_id")) for r in nfs_out] == [
        ("tcp", NFS_PORT, EFS_SECURITY_GROUP_ID)
    ]
    assert all("cidr_ipv4" not in r and "prefix_list_id" not in r for r in nfs_out)
    for storage_vpc in (_with(), _with(create_vpc=False, vpc_id="vpc-0123456789abcdef0")):
        ports = sorted((r["from_port"], r["to_port"]) for r in _rules(storage_vpc, "egress", TASKS_SECURITY_GROUP_ID))
        assert set(ports) <= {(443, 443), (NFS_PORT, NFS_PORT)}, ports


def test_task_role_may_mount_the_spool_only_through_its_access_point(config: Config) -> None:
    [statement] = _efs_statements(config, "aws_iam_policy_document.task")
    assert statement.get("effect", "Allow") == "Allow"
    assert sorted(statement["actions"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert statement["resources"] == [EFS_FILE_SYSTEM_ARN]
    assert statement["condition"] == [
        {"test": "StringEquals", "variable": "elasticfilesystem:AccessPointArn", "values": [EFS_ACCESS_POINT_ARN]}
    ]


def test_file_system_policy_is_tls_only_and_admits_the_task_role_through_the_access_point(config: Config) -> None:
    policy = config.value(config.resource("aws_efs_file_system_policy.spool"))
    assert policy["file_system_id"] == EFS_FILE_SYSTEM_ID
    assert policy["policy"] == ref("data.aws_iam_policy_document", "spool_file_system[0]", "json")
    assert policy.get("bypass_policy_lockout_safety_check", False) is False
    statements = _statements(config, "aws_iam_policy_document.spool_file_system")
    [deny] = [s for s in statements if s.get("effect") == "Deny"]
    assert deny["condition"] == [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]
    assert deny["principals"] == [{"type": "*", "identifiers": ["*"]}]
    assert deny["actions"] == ["*"]
    assert deny["resources"] == [EFS_FILE_SYSTEM_ARN]
    [allow] = [s for s in statements if s.get("effect", "Allow") == "Allow"]
    assert allow["principals"] == [{"type": "AWS", "identifiers": [TASK_ROLE_ARN]}]
    assert sorted(allow["actions"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert allow["resources"] == [EFS_FILE_SYSTEM_ARN]
    assert allow["condition"] == [
        {"test": "StringEquals", "variable": "elasticfilesystem:AccessPointArn", "values": [EFS_ACCESS_POINT_ARN]}
    ]


def test_ephemeral_spool_creates_no_efs() -> None:
    config = _with(audit_spool_storage="ephemeral")
    for address in SPOOL_ADDRESSES:
        assert config.count(address) == 0, address
    # The plain bind mount on the task's ephemeral storage, as before EFS.
    assert _spool_volume(config) == {"name": "audit-spool"}
    assert _efs_statements(config, "aws_iam_policy_document.task") == []
    assert config.value(config.resource("aws_ecs_service.this"))["launch_type"] == "FARGATE"


@pytest.mark.parametrize(
    ("overrides", "sync", "adopt"),
    [({}, "always", "30"), ({"audit_sync": "interval", "audit_adopt_after_seconds": 90}, "interval", "90")],
)
def test_spool_settings_reach_the_app(overrides: dict[str, Any], sync: str, adopt: str) -> None:
    config = _with(**overrides)
    container = config.value(config.locals["container_definition"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment[env_name("audit_sync")] == sync
    assert environment[env_name("audit_adopt_after_seconds")] == adopt
    if not overrides:  # the variables' defaults
        assert config.value(config.variables["audit_sync"]["default"]) == "always"
        assert config.value(config.variables["audit_adopt_after_seconds"]["default"]) == 30
    settings = Settings(audit_sync=environment[env_name("audit_sync")], audit_adopt_after_seconds=adopt)
    assert settings.audit_sync == sync
    assert settings.audit_adopt_after_seconds == float(adopt)
    # The metric files (memory-mapped) never live on the spool.
    metrics_dir = environment.get(env_name("metrics_dir"))
    assert metrics_dir is None or not metrics_dir.startswith(environment[env_name("audit_dir")])


def _failing_conditions(
    config: Config, address: str, kind: str = "precondition", self_values: dict[str, Any] | None = None
) -> list[str]:
    """The error messages of the conditions (`precondition`, or `postcondition`) of a resource or
    `data.` source that fail in this configuration; `self_values` stand for `self.NAME` (what AWS
    would answer, in a postcondition)."""
    block = config.data(address.removeprefix("data.")) if address.startswith("data.") else config.resource(address)

    def bound(raw: str) -> str:
        for name, value in (self_values or {}).items():
            raw = raw.replace(f"self.{name}", json.dumps(value))  # JSON lists and strings are HCL literals
        return raw

    messages = []
    for condition in [c for lifecycle in block.get("lifecycle", []) for c in lifecycle.get(kind, [])]:
        holds = config._strict(bound(condition["condition"]))
        assert isinstance(holds, bool), f"{address}: cannot evaluate {condition['condition']}"
        if not holds:
            messages.append(config.value(bound(condition["error_message"])))
    return messages


def _validation_passes(variable: str, value: Any) -> bool:
    config = _with(**{variable: value})
    results = [config._strict(v["condition"]) for v in config.variables[variable]["validation"]]
    assert all(isinstance(r, bool) for r in results), results
    return all(results)


def test_spool_variables_accept_what_the_app_accepts() -> None:
    sync_choices = list(get_args(Settings.model_fields["audit_sync"].annotation))
    assert sorted(sync_choices) == ["always", "interval", "none"]
    for choice in sync_choices:
        assert _validation_passes("audit_sync", choice)
    assert not _validation_passes("audit_sync", "sometimes")
    for storage in ("efs", "ephemeral"):
        assert _validation_passes("audit_spool_storage", storage)
    assert not _validation_passes("audit_spool_storage", "ebs")
    # The app's bounds of audit_adopt_after_seconds (ge=1, le=3600).
    for seconds in (1, 30, 3600):
        assert _validation_passes("audit_adopt_after_seconds", seconds)
        Settings(audit_adopt_after_seconds=seconds)
    for seconds in (0, 0.5, 3601):
        assert not _validation_passes("audit_adopt_after_seconds", seconds)
        with pytest.raises(ValueError):
            Settings(audit_adopt_after_seconds=seconds)


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


# -- the API keys: from Secrets Manager, through the execution role only ----------------------

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:botscore/api-keys-AbC123"
SECRET_KMS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
API_KEYS_ENV = env_name("api_keys")


def _container(config: Config) -> dict[str, Any]:
    container: dict[str, Any] = config.value(config.locals["container_definition"])
    return container


def _environment(config: Config) -> dict[str, str]:
    return {item["name"]: item["value"] for item in _container(config)["environment"]}


def test_without_a_secret_the_task_sets_no_api_keys(config: Config, container: dict[str, Any]) -> None:
    assert config.value(config.variables["api_keys_secret_arn"]["default"]) is None
    assert container["secrets"] is None
    assert API_KEYS_ENV not in _environment(config)
    assert [s["sid"] for s in _statements(config, "aws_iam_policy_document.execution")] == [
        "EcrLogin",
        "PullImage",
        "WriteContainerLogs",
    ]


def test_api_keys_come_from_the_secret_never_from_the_environment() -> None:
    config = _with(api_keys_secret_arn=SECRET_ARN)
    container = _container(config)
    assert container["secrets"] == [{"name": API_KEYS_ENV, "valueFrom": SECRET_ARN}]
    assert API_KEYS_ENV in {env_name(field) for field in Settings.model_fields}
    environment = _environment(config)
    assert API_KEYS_ENV not in environment and env_name("api_keys_file") not in environment
    # The secret's value is never in Terraform's state: no secret version, no variable holding keys.
    assert config.resources_of_type("aws_secretsmanager_secret_version") == {}
    assert not [name for name in config.variables if name.startswith("api_keys") and not name.endswith("_arn")]


def test_only_the_execution_role_may_read_the_secret_and_only_that_secret() -> None:
    config = _with(api_keys_secret_arn=SECRET_ARN)
    statements = _statements(config, "aws_iam_policy_document.execution")
    secrets = [s for s in statements if any(a.startswith("secretsmanager:") for a in s["actions"])]
    assert secrets == [
        {"sid": "ReadApiKeysSecret", "actions": ["secretsmanager:GetSecretValue"], "resources": [SECRET_ARN]}
    ]
    # Under the AWS managed key (the default) the role needs no KMS right.
    assert not [s for s in statements if any(a.startswith("kms:") for a in s["actions"])]
    task = _statements(config, "aws_iam_policy_document.task")
    assert not [a for s in task for a in s["actions"] if a.startswith("secretsmanager:") or a == "kms:Decrypt"]
    execution = config.value(config.resource("aws_iam_role_policy.execution"))
    assert execution["role"] == ref("aws_iam_role", "execution", "id")
    assert execution["policy"] == ref("data.aws_iam_policy_document", "execution", "json")


def test_a_customer_managed_key_decrypts_that_secret_only_through_secrets_manager() -> None:
    config = _with(api_keys_secret_arn=SECRET_ARN, api_keys_secret_kms_key_arn=SECRET_KMS_KEY_ARN)
    [kms] = [s for s in _statements(config, "aws_iam_policy_document.execution") if s["sid"] == "DecryptApiKeysSecret"]
    assert kms["actions"] == ["kms:Decrypt"]
    assert kms["resources"] == [SECRET_KMS_KEY_ARN]
    assert kms["condition"] == [
        {"test": "StringEquals", "variable": "kms:ViaService", "values": ["secretsmanager.eu-west-1.amazonaws.com"]},
        {"test": "StringEquals", "variable": "kms:EncryptionContext:SecretARN", "values": [SECRET_ARN]},
    ]
    # A key without a secret grants nothing.
    alone = _with(api_keys_secret_kms_key_arn=SECRET_KMS_KEY_ARN)
    assert "DecryptApiKeysSecret" not in [s["sid"] for s in _statements(alone, "aws_iam_policy_document.execution")]


def test_the_tasks_reach_secrets_manager_in_the_created_vpc() -> None:
    assert _with().value("${local.interface_endpoints}") == ["ecr.api", "ecr.dkr", "logs"]
    config = _with(api_keys_secret_arn=SECRET_ARN)
    assert config.value("${local.interface_endpoints}") == ["ecr.api", "ecr.dkr", "logs", "secretsmanager"]
    assert _failing_conditions(config, "aws_ecs_task_definition.this") == []
    # Through that endpoint, only a secret of the deployment's region.
    elsewhere = SECRET_ARN.replace(":eu-west-1:", ":us-east-1:")
    assert _failing_conditions(_with(api_keys_secret_arn=elsewhere), "aws_ecs_task_definition.this") == [
        "The API keys secret must be in eu-west-1: the created VPC's tasks reach Secrets Manager only through its"
        " endpoint in that region."
    ]
    existing = _with(api_keys_secret_arn=elsewhere, **EXISTING_VPC)  # its own NAT gateway or endpoints
    assert existing.value("${local.interface_endpoints}") == []
    assert _failing_conditions(existing, "aws_ecs_task_definition.this") == []


def test_the_secret_variables_take_full_arns_only() -> None:
    assert _validation_passes("api_keys_secret_arn", None)
    assert _validation_passes("api_keys_secret_arn", SECRET_ARN)
    assert _validation_passes("api_keys_secret_arn", SECRET_ARN.replace(":aws:", ":aws-us-gov:"))
    # A name, or an ARN without the suffix Secrets Manager adds, would never equal the policy's resource.
    for wrong in ("botscore/api-keys", SECRET_ARN.removesuffix("-AbC123"), SECRET_ARN.replace("secretsmanager", "ssm")):
        assert not _validation_passes("api_keys_secret_arn", wrong), wrong
    assert _validation_passes("api_keys_secret_kms_key_arn", None)
    assert _validation_passes("api_keys_secret_kms_key_arn", SECRET_KMS_KEY_ARN)
    assert not _validation_passes("api_keys_secret_kms_key_arn", "alias/aws/secretsmanager")


# -- the load balancer: internal unless asked, and then never without keys -----------------------

PUBLIC_NETWORK = [
    "aws_subnet.public",
    "aws_internet_gateway.this",
    "aws_route_table.public",
    "aws_route.public_internet",
    "aws_route_table_association.public",
]
EXISTING_VPC = {
    "create_vpc": False,
    "vpc_id": "vpc-0123456789abcdef0",
    "private_subnet_ids": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
}
PUBLIC_SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
KEYS_REQUIRED = (
    "internet_facing = true puts the scoring routes on the internet: set api_keys_secret_arn to a Secrets Manager"
    " secret holding the API keys (docs/deploy.md shows how), or keep the load balancer internal."
)


def test_the_load_balancer_is_internal_in_the_private_subnets_by_default(config: Config) -> None:
    assert config.value(config.variables["internet_facing"]["default"]) is False
    alb = config.value(config.resource("aws_lb.this"))
    assert alb["internal"] is True
    az_count = config.value(config.variables["az_count"]["default"])
    assert alb["subnets"] == [ref("aws_subnet", f"private[{i}]", "id") for i in range(az_count)]
    # Nothing in the VPC routes to or from the internet.
    for address in PUBLIC_NETWORK:
        assert config.count(address) == 0, address
    assert _failing_conditions(config, "aws_lb.this") == []
    # An existing VPC needs no public subnet either.
    existing = _with(**EXISTING_VPC)
    assert existing.value(existing.resource("aws_lb.this"))["subnets"] == EXISTING_VPC["private_subnet_ids"]
    assert _failing_conditions(existing, "aws_ecs_service.this") == []


def test_a_public_load_balancer_without_api_keys_is_refused() -> None:
    keyless = _with(internet_facing=True)
    assert _failing_conditions(keyless, "aws_lb.this") == [KEYS_REQUIRED]
    # With keys: internet-facing, in the public subnets, which exist for it.
    public = _with(internet_facing=True, api_keys_secret_arn=SECRET_ARN)
    assert _failing_conditions(public, "aws_lb.this") == []
    alb = public.value(public.resource("aws_lb.this"))
    assert alb["internal"] is False
    az_count = public.value(public.variables["az_count"]["default"])
    assert alb["subnets"] == [ref("aws_subnet", f"public[{i}]", "id") for i in range(az_count)]
    assert public.count("aws_subnet.public") == public.count("aws_route_table_association.public") == az_count
    assert public.count("aws_internet_gateway.this") == public.count("aws_route.public_internet") == 1
    assert _container(public)["secrets"] == [{"name": API_KEYS_ENV, "valueFrom": SECRET_ARN}]


def test_an_existing_vpc_needs_public_subnets_only_for_a_public_load_balancer() -> None:
    public = {**EXISTING_VPC, "internet_facing": True, "api_keys_secret_arn": SECRET_ARN}
    assert _failing_conditions(_with(**public), "aws_ecs_service.this") == [
        "With create_vpc = false, set vpc_id, at least two private_subnet_ids and, with internet_facing = true,"
        " two public_subnet_ids."
    ]
    with_subnets = _with(**public, public_subnet_ids=PUBLIC_SUBNETS)
    assert _failing_conditions(with_subnets, "aws_ecs_service.this") == []
    assert with_subnets.value(with_subnets.resource("aws_lb.this"))["subnets"] == PUBLIC_SUBNETS


# -- regions: the ones opened since August 2022 plan too -------------------------------------

# Regions with no legacy ELB account: aws_elb_service_account errors there ("unsupported AWS Region").
NEWER_REGIONS = [
    "eu-central-2",
    "eu-south-2",
    "ap-south-2",
    "il-central-1",
    "ca-west-1",
    "me-central-1",
    "mx-central-1",
]
ALB_LOGS = "/alb/AWSLogs/"


def _alb_log_writers(config: Config) -> list[tuple[str, list[str]]]:
    """(principal type, identifiers) of each statement that lets a principal put ALB access logs."""
    return [
        (principal["type"], principal["identifiers"])
        for statement in _statements(config, "aws_iam_policy_document.logs_bucket")
        if statement["actions"] == ["s3:PutObject"] and any(ALB_LOGS in r for r in statement["resources"])
        for principal in statement["principals"]
    ]


def test_an_older_region_admits_its_elb_account_and_the_log_delivery_service(config: Config) -> None:
    assert config.value(config.variables["region"]["default"]) == "eu-west-1"
    assert config.count("data.aws_elb_service_account.this") == 1
    assert sorted(_alb_log_writers(config)) == [
        ("AWS", [ref("data.aws_elb_service_account", "this[0]", "arn")]),
        ("Service", ["logdelivery.elasticloadbalancing.amazonaws.com"]),
    ]


@pytest.mark.parametrize("region", NEWER_REGIONS)
def test_a_newer_region_plans_without_the_elb_account(region: str) -> None:
    assert _validation_passes("region", region)
    config = _with(region=region)
    assert config.count("data.aws_elb_service_account.this") == 0
    assert _alb_log_writers(config) == [("Service", ["logdelivery.elasticloadbalancing.amazonaws.com"])]
    # No other data source looks the region up in a fixed list.
    read = {
        f"data.{kind}.{name}"
        for body in config.blocks["data"]
        for kind, named in body.items()
        for name in named
        if config.count(f"data.{kind}.{name}") > 0
    }
    assert {a for a in read if not a.startswith("data.aws_iam_policy_document.")} == {
        "data.aws_caller_identity.current",
        "data.aws_partition.current",
        "data.aws_region.current",
        "data.aws_availability_zones.available",
    }


# -- task sizes: only the CPU and memory pairs Fargate runs -------------------------------------

# AWS's table of Fargate task sizes (Linux), CPU units: memory in MiB.
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: [1024, 2048, 3072, 4096],
    1024: list(range(2048, 8192 + 1, 1024)),
    2048: list(range(4096, 16384 + 1, 1024)),
    4096: list(range(8192, 30720 + 1, 1024)),
}


def test_the_default_task_size_is_a_fargate_size(config: Config) -> None:
    cpu = config.value(config.variables["task_cpu"]["default"])
    assert config.value(config.variables["task_memory"]["default"]) in FARGATE_SIZES[cpu]
    assert _failing_conditions(config, "aws_ecs_task_definition.this") == []


def test_only_fargate_task_sizes_pass() -> None:
    memories_validated = list(range(512, 30720 + 1, 512))  # every value the task_memory validation lets through
    assert all(_validation_passes("task_memory", memory) for memory in memories_validated)
    for cpu, memories in FARGATE_SIZES.items():
        assert _validation_passes("task_cpu", cpu)
        for memory in memories_validated:
            failing = _failing_conditions(_with(task_cpu=cpu, task_memory=memory), "aws_ecs_task_definition.this")
            if memory in memories:
                assert failing == [], (cpu, memory)
            else:
                [message] = failing
                assert message.startswith(
                    f"Fargate has no task size of task_cpu = {cpu} with task_memory = {memory}. It takes, in MiB:"
                ), message


# -- availability zones: no more than the region has ---------------------------------------------

AZS = "data.aws_availability_zones.available"
EU_WEST_1_AZS = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


def test_az_count_within_the_regions_zones_plans(config: Config) -> None:
    assert config.value(config.variables["az_count"]["default"]) == 2
    assert _failing_conditions(config, AZS, "postcondition", {"names": EU_WEST_1_AZS}) == []
    three = _with(az_count=3)
    assert _failing_conditions(three, AZS, "postcondition", {"names": EU_WEST_1_AZS}) == []
    # The VPC's subnets take the first az_count zones.
    assert config.locals["azs"] == "${slice(data.aws_availability_zones.available.names, 0, var.az_count)}"


def test_more_zones_than_the_region_has_is_refused_before_the_subnets() -> None:
    four = _with(az_count=4)
    assert _validation_passes("az_count", 4)
    assert _failing_conditions(four, AZS, "postcondition", {"names": EU_WEST_1_AZS}) == [
        "az_count = 4, but eu-west-1 has 3 availability zones (without opt-in zones): set az_count to 3 or less."
    ]
    # An existing VPC brings its own subnets: az_count plays no part.
    existing = _with(az_count=4, **EXISTING_VPC)
    assert _failing_conditions(existing, AZS, "postcondition", {"names": EU_WEST_1_AZS}) == []


# -- the audit bucket's lifecycle: what S3 accepts -------------------------------------------------

LIFECYCLE = "aws_s3_bucket_lifecycle_configuration.audit"


def test_the_audit_lifecycle_moves_objects_as_configured(config: Config) -> None:
    [rule] = [r for r in config.value(config.resource(LIFECYCLE))["rule"] if r["id"] == "audit-records"]
    assert rule["transition"] == [
        {"days": 30, "storage_class": "STANDARD_IA"},
        {"days": 90, "storage_class": "GLACIER_IR"},
    ]
    assert rule["expiration"] == [{"days": 400}]
    assert _failing_conditions(config, LIFECYCLE) == []
    # The shortest path S3 allows: 30 days in Standard, 30 in Standard-IA.
    assert _failing_conditions(_with(audit_transition_days=30, audit_glacier_days=60), LIFECYCLE) == []


def test_glacier_less_than_30_days_after_standard_ia_is_refused() -> None:
    overrides = {"audit_transition_days": 45, "audit_glacier_days": 60}
    for variable, value in overrides.items():
        assert _validation_passes(variable, value)  # each alone is fine
    assert _failing_conditions(_with(**overrides), LIFECYCLE) == [
        "audit_glacier_days = 60 is less than 30 days after audit_transition_days = 45: S3 moves objects out of"
        " Standard-IA only after 30 days there. Set audit_glacier_days to 75 or more."
    ]
    assert _failing_conditions(_with(audit_glacier_days=400), LIFECYCLE) == [
        "audit_expiration_days = 400 must be after audit_glacier_days = 400."
    ]


def test_task_size_and_scaling_defaults_are_the_capacity_measurements(config: Config) -> None:
    report = json.loads((TERRAFORM_DIR.parent / "docs" / "capacity.json").read_text())
    sizing = [name for name in report["terraform_defaults"] if name in report["terraform"]]  # what it derives
    assert {"task_cpu", "requests_per_target", "cpu_target_percent", "max_in_flight"} <= set(sizing)
    defaults = {name: config.value(config.variables[name]["default"]) for name in sizing}
    assert defaults == {name: report["terraform"][name] for name in sizing}, "set the defaults make capacity derived"


def test_idle_connections_outlive_the_load_balancers(config: Config, environment: dict[str, str]) -> None:
    idle = config.value(config.variables["alb_idle_timeout"]["default"])
    assert int(environment["BOTSCORE_KEEP_ALIVE_SECONDS"]) > idle
    assert Settings(keep_alive_seconds=4000 + 15).keep_alive_seconds == 4015  # the largest ALB idle timeout


def test_the_waf_leaves_body_size_to_the_app(config: Config) -> None:
    acl = config.value(config.resource("aws_wafv2_web_acl.this"))
    [common] = [
        rule["statement"][0]["managed_rule_group_statement"][0]
        for rule in acl["rule"]
        if rule["statement"][0].get("managed_rule_group_statement", [{}])[0].get("name")
        == "AWSManagedRulesCommonRuleSet"
    ]
    overrides = {o["name"]: o["action_to_use"][0] for o in common["rule_action_override"]}
    assert "count" in overrides["SizeRestrictions_BODY"]  # a 128 KiB batch is the app's to bound (413)


def test_task_reads_the_model_registry_and_nothing_else_new(config: Config) -> None:
    container = config.value(config.locals["container_definition"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    prefix = config.value(config.variables["model_registry_prefix"]["default"])
    assert environment[env_name("model_registry")] == f"s3://{ref('aws_s3_bucket', 'audit', 'bucket')}/{prefix}"
    [registry] = [s for s in _statements(config, "aws_iam_policy_document.task") if s.get("sid") == "ReadModelRegistry"]
    assert registry["actions"] == ["s3:GetObject"]
    assert registry["resources"] == [f"{AUDIT_BUCKET_ARN}/{prefix}*"]
    assert "condition" not in registry
    audit_prefix = config.value(config.variables["audit_prefix"]["default"])
    assert not prefix.startswith(audit_prefix) and not audit_prefix.startswith(prefix)
