"""The audit trail is append-only on AWS: the bucket policy and the roles' policies, evaluated as IAM
evaluates them, refuse an overwrite or a delete of an audit object to everyone (the task, an account
administrator), and a write to the model registry to everyone but the publisher role, in SSE-S3 only
(and the tasks' conditional writes of a canary's plan and the production pointer).

The evaluator covers what these policies use: Allow and Deny statements, action and resource
wildcards, the `*` and role principals, and the condition operators Null, Bool, StringEquals,
StringNotEquals, StringLike, ArnEquals, ArnNotEquals and ArnLike. As IAM does: an explicit Deny in any
policy wins; otherwise, within the account, an Allow in the caller's IAM policy or in the bucket policy
lets the request through; a condition on a key absent from the request is false, except for Null and
the negated operators, for which it is true.
(docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html,
reference_policies_elements_condition_operators.html)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from botscore.audit.uploaders import S3Uploader
from botscore.model.registry import Registry
from botscore.settings import SHIPPED_MODEL
from tests.infra.test_terraform import (
    AUDIT_BUCKET_ARN,
    TERRAFORM_DIR,
    Config,
    _failing_conditions,
    _statements,
    _with,
    ref,
)
from tests.support.servers import Weed

ACCOUNT = "123456789012"
TASK = ref("aws_iam_role", "task", "arn")
PUBLISHER = ref("aws_iam_role", "model_publisher", "arn")
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/administrator"  # AdministratorAccess: s3:* on everything
RECORD_ADMIN = f"arn:aws:iam::{ACCOUNT}:role/audit-record-admin"
EVERYTHING = [{"effect": "Allow", "actions": ["s3:*"], "resources": ["*"]}]
AUDIT_OBJECT = f"{AUDIT_BUCKET_ARN}/bot-score/dt=2026-12-07/hour=01/ip-10-0-1-5-w1-000042.jsonl.gz"
POINTER = f"{AUDIT_BUCKET_ARN}/models/bot-score/production"
VERSION = f"{AUDIT_BUCKET_ARN}/models/bot-score/versions/lr-0123456789abcdef.json"
CREATE = {"s3:if-none-match": "*"}  # If-None-Match: * (a conditional create)
SSE_S3 = {"s3:x-amz-server-side-encryption": "AES256"}


@dataclass(frozen=True)
class Request:
    """One S3 request: who, what, on which object, with which condition keys (lower case) present."""

    principal: str
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)

    def keys(self) -> dict[str, str]:
        return {"aws:principalarn": self.principal, "aws:securetransport": "true", **self.context}


def _wildcard(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


_POSITIVE = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringLike": _wildcard,
    "ArnEquals": lambda pattern, value: pattern == value,
    "ArnLike": _wildcard,
    "Bool": lambda pattern, value: pattern.lower() == value.lower(),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals"}


def _holds(condition: dict[str, Any], keys: dict[str, str]) -> bool:
    test, key, values = condition["test"], condition["variable"].lower(), condition["values"]
    if test == "Null":  # "true": the key must be absent; "false": present
        return (values == ["true"]) == (key not in keys)
    if test in _NEGATED:
        return key not in keys or not any(_POSITIVE[_NEGATED[test]](v, keys[key]) for v in values)
    assert test in _POSITIVE, f"the evaluator does not know {test}"
    return key in keys and any(_POSITIVE[test](v, keys[key]) for v in values)


def _applies(statement: dict[str, Any], request: Request, *, resource_policy: bool) -> bool:
    if not any(_wildcard(a, request.action, case=False) for a in statement["actions"]):
        return False
    if not any(_wildcard(r, request.resource) for r in statement["resources"]):
        return False
    if resource_policy:
        principals = statement.get("principals", [])
        if not any(
            p["type"] == "*" or (p["type"] == "AWS" and request.principal in p["identifiers"]) for p in principals
        ):
            return False
    keys = request.keys()
    return all(_holds(c, keys) for c in statement.get("condition", []))


def allowed(request: Request, bucket_policy: list[dict[str, Any]], identity: list[dict[str, Any]]) -> bool:
    """IAM's decision within one account: an explicit Deny anywhere wins; then an Allow in either policy."""
    applying = [(s, True) for s in bucket_policy if _applies(s, request, resource_policy=True)]
    applying += [(s, False) for s in identity if _applies(s, request, resource_policy=False)]
    if any(s.get("effect", "Allow") == "Deny" for s, _ in applying):
        return False
    return any(s.get("effect", "Allow") == "Allow" for s, _ in applying)


@dataclass
class Policies:
    """The audit bucket's policy and each caller's IAM policy, as a configuration renders them."""

    config: Config

    def bucket(self) -> list[dict[str, Any]]:
        return _statements(self.config, "aws_iam_policy_document.audit_bucket")

    def identity(self, principal: str) -> list[dict[str, Any]]:
        if principal == TASK:
            return _statements(self.config, "aws_iam_policy_document.task")
        if principal == PUBLISHER:
            return _statements(self.config, "aws_iam_policy_document.model_publisher")
        return EVERYTHING  # an administrator of the account, or one with account-wide S3 write


@pytest.fixture(scope="module")
def policies() -> Policies:
    return Policies(Config(TERRAFORM_DIR))


def _allows(policies: Policies, principal: str, action: str, resource: str, *parts: dict[str, str]) -> bool:
    context = {k: v for part in parts for k, v in part.items()}
    return allowed(Request(principal, action, resource, context), policies.bucket(), policies.identity(principal))


# -- audit objects: created once, never replaced, never deleted ---------------------------------


def test_the_task_creates_audit_objects_and_can_neither_overwrite_nor_delete_one(policies: Policies) -> None:
    assert _allows(policies, TASK, "s3:PutObject", AUDIT_OBJECT, CREATE)
    assert not _allows(policies, TASK, "s3:PutObject", AUDIT_OBJECT)  # a plain PUT: it would overwrite
    assert not _allows(policies, TASK, "s3:DeleteObject", AUDIT_OBJECT)
    assert not _allows(policies, TASK, "s3:DeleteObjectVersion", AUDIT_OBJECT)
    assert _allows(policies, TASK, "s3:GetObject", AUDIT_OBJECT)  # the HEAD that confirms an upload


@pytest.mark.parametrize("principal", [ADMIN, f"arn:aws:iam::{ACCOUNT}:root", PUBLISHER])
@pytest.mark.parametrize(
    "action",
    [
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:BypassGovernanceRetention",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
    ],
)
def test_no_one_deletes_an_audit_object_whatever_their_iam_rights(
    policies: Policies, principal: str, action: str
) -> None:
    assert not _allows(policies, principal, action, AUDIT_OBJECT)
    assert not _allows(policies, principal, action, POINTER)  # nor anything else in the bucket


@pytest.mark.parametrize("principal", [ADMIN, f"arn:aws:iam::{ACCOUNT}:root"])
def test_no_one_overwrites_an_audit_object_whatever_their_iam_rights(policies: Policies, principal: str) -> None:
    assert not _allows(policies, principal, "s3:PutObject", AUDIT_OBJECT)
    assert not _allows(policies, principal, "s3:PutObject", AUDIT_OBJECT, {"s3:if-match": '"etag"'})
    assert _allows(policies, principal, "s3:PutObject", AUDIT_OBJECT, CREATE)  # a new record: a correction
    assert _allows(policies, principal, "s3:GetObject", AUDIT_OBJECT)


def test_an_audit_record_admin_alone_may_remove_a_version_and_still_never_overwrites() -> None:
    named = Policies(_with(audit_record_admin_arns=[RECORD_ADMIN]))
    for action in ("s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"):
        assert _allows(named, RECORD_ADMIN, action, AUDIT_OBJECT)
        assert not _allows(named, ADMIN, action, AUDIT_OBJECT)
        assert not _allows(named, TASK, action, AUDIT_OBJECT)
    assert not _allows(named, RECORD_ADMIN, "s3:PutObject", AUDIT_OBJECT)


# -- the model registry: the publisher role alone, SSE-S3 only -----------------------------------


def test_the_task_writes_the_canary_plan_and_production_conditionally_and_nothing_else_there(
    policies: Policies,
) -> None:
    if_match = {"s3:if-match": '"etag-it-read"'}
    for key in ("canary", "production"):
        resource = f"{AUDIT_BUCKET_ARN}/models/bot-score/{key}"
        assert _allows(policies, TASK, "s3:PutObject", resource, SSE_S3, if_match), key
        assert not _allows(policies, TASK, "s3:PutObject", resource, SSE_S3), key  # an unconditional overwrite
        assert not _allows(policies, TASK, "s3:PutObject", resource, if_match), key  # the bucket's KMS default
        assert not _allows(policies, ADMIN, "s3:PutObject", resource, SSE_S3, if_match), key
    for resource in (f"{AUDIT_BUCKET_ARN}/models/bot-score/shadow", VERSION):
        assert not _allows(policies, TASK, "s3:PutObject", resource, SSE_S3, if_match)
        assert not _allows(policies, TASK, "s3:PutObject", resource, SSE_S3, CREATE)


def test_only_the_publisher_role_writes_the_model_registry_and_only_with_sse_s3(policies: Policies) -> None:
    for resource, create in ((POINTER, {}), (VERSION, CREATE)):
        assert _allows(policies, PUBLISHER, "s3:PutObject", resource, SSE_S3, create)
        assert not _allows(policies, PUBLISHER, "s3:PutObject", resource, create)  # the bucket's KMS default
        kms = {"s3:x-amz-server-side-encryption": "aws:kms"}
        assert not _allows(policies, PUBLISHER, "s3:PutObject", resource, kms, create)
        for other in (TASK, ADMIN, f"arn:aws:iam::{ACCOUNT}:root"):
            assert not _allows(policies, other, "s3:PutObject", resource, SSE_S3, create), other
    assert not _allows(policies, PUBLISHER, "s3:PutObject", VERSION, SSE_S3)  # a stored version is never replaced
    assert not _allows(policies, PUBLISHER, "s3:PutObject", AUDIT_OBJECT, CREATE)  # and it writes no audit record
    assert _allows(policies, TASK, "s3:GetObject", POINTER) and _allows(policies, TASK, "s3:GetObject", VERSION)


def test_the_prefixes_apart_is_enforced_at_plan_not_a_warning() -> None:
    assert "check" not in Config(TERRAFORM_DIR).blocks  # a `check` only warns
    assert _failing_conditions(_with(), "aws_s3_bucket_policy.audit") == []
    for audit_prefix in ("models/", "models/bot-score/x/", ""):
        [message] = _failing_conditions(_with(audit_prefix=audit_prefix), "aws_s3_bucket_policy.audit")
        assert message.startswith(
            f"model_registry_prefix = models/bot-score/ and audit_prefix = {audit_prefix} overlap"
        )


def test_the_publisher_role_is_this_accounts_to_assume() -> None:
    config = Config(TERRAFORM_DIR)
    role = config.value(config.resource("aws_iam_role.model_publisher"))
    assert role["assume_role_policy"] == ref("data.aws_iam_policy_document", "model_publisher_assume", "json")
    [trust] = _statements(config, "aws_iam_policy_document.model_publisher_assume")
    assert trust["actions"] == ["sts:AssumeRole"]
    assert trust["principals"] == [
        {
            "type": "AWS",
            "identifiers": [
                f"arn:{ref('data.aws_partition', 'current', 'partition')}:iam::"
                f"{ref('data.aws_caller_identity', 'current', 'account_id')}:root"
            ],
        }
    ]


# -- Object Lock ------------------------------------------------------------------------------------


def test_object_lock_keeps_every_version_for_the_configured_days() -> None:
    config = Config(TERRAFORM_DIR)
    lock = config.value(config.resource("aws_s3_bucket_object_lock_configuration.audit"))
    assert lock["bucket"] == ref("aws_s3_bucket", "audit", "id")
    assert lock["rule"][0]["default_retention"] == [{"mode": "GOVERNANCE", "days": 400}]
    assert config.count("aws_s3_bucket_object_lock_configuration.audit") == 1
    compliance = _with(audit_object_lock_mode="COMPLIANCE", audit_object_lock_days=30)
    assert compliance.value(compliance.resource("aws_s3_bucket_object_lock_configuration.audit"))["rule"][0][
        "default_retention"
    ] == [{"mode": "COMPLIANCE", "days": 30}]
    assert _with(audit_object_lock_mode=None).count("aws_s3_bucket_object_lock_configuration.audit") == 0
    [message] = _failing_conditions(_with(audit_object_lock_days=401), "aws_s3_bucket_object_lock_configuration.audit")
    assert message.startswith("audit_object_lock_days = 401 is longer than audit_expiration_days = 400")


# -- what the app sends is what the policy admits ----------------------------------------------------


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _context_of(headers: dict[str, str]) -> dict[str, str]:
    """The condition keys S3 derives from a PUT's headers."""
    context = {}
    if "if-none-match" in headers:
        context["s3:if-none-match"] = headers["if-none-match"]
    if "x-amz-server-side-encryption" in headers:
        context["s3:x-amz-server-side-encryption"] = headers["x-amz-server-side-encryption"]
    return context


def test_the_shippers_and_the_publishers_puts_as_sent_are_what_the_policy_admits(
    policies: Policies, weed: Weed, bucket: str
) -> None:
    client = weed.client()
    sent: list[dict[str, str]] = []
    client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append({k.lower(): _text(v) for k, v in request.headers.items()}),
    )
    S3Uploader(bucket, client=client).put("bot-score/dt=2026-12-07/hour=01/h-w1-000001.jsonl.gz", b"records")
    [shipped] = sent
    assert _allows(policies, TASK, "s3:PutObject", AUDIT_OBJECT, _context_of(shipped))
    sent.clear()
    registry = Registry(f"s3://{bucket}/models/bot-score/", client=client)
    model, _ = registry.publish(SHIPPED_MODEL.read_bytes(), "shipped")
    registry.point("production", model.version)
    published, pointed = sent
    assert _allows(policies, PUBLISHER, "s3:PutObject", VERSION, _context_of(published))
    assert _allows(policies, PUBLISHER, "s3:PutObject", POINTER, _context_of(pointed))
    assert not _allows(policies, TASK, "s3:PutObject", POINTER, _context_of(pointed))
