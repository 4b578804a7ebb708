"""The model registry in S3: artifacts under their content-derived version, and two pointers.

Layout under the registry's URL (`s3://bucket/models/bot-score/`):

    versions/<version>.json   a validated artifact, written once and never overwritten
    production                {"format": "botscore.model-pointer/v1", "version": "lr-..."}
    shadow                    the same; "version": null when no shadow is set
    canary                    a canary's plan (model/canary.py), moved on by the workers with conditional writes

Objects are written with S3-managed encryption (SSE-S3). Invariants: an artifact is validated
(`artifact.decode`, the check start-up makes) before it is stored and again whenever it is read;
it is stored with a conditional write (`If-None-Match: *`), so a version, once there, is never
replaced; a pointer is moved only to a version that is stored and valid. Workers read the
pointers with a conditional GET on their ETag (`Follower`), so a poll that finds nothing new
costs one 304.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botscore.model import artifact
from botscore.model.artifact import Artifact, ArtifactError
from botscore.model.canary import FORMAT as CANARY_FORMAT
from botscore.model.canary import Plan, PlanError

POINTER_FORMAT = "botscore.model-pointer/v1"
Role = Literal["production", "shadow"]
ROLES: tuple[Role, ...] = ("production", "shadow")
CANARY = "canary"  # the key of the canary's plan
# S3-managed encryption, whatever the bucket's default: in the audit bucket (whose KMS key the service
# may only encrypt with, never decrypt) the workers can then read the registry with s3:GetObject alone.
_SSE = {"ServerSideEncryption": "AES256"}


class RegistryError(ArtifactError):
    """The registry cannot do what was asked (a missing version, a bad pointer, S3 refused); the message says which."""


class RegistryUnreachable(RegistryError):
    """S3 did not answer, or refused access: nothing was learnt about the registry, so it is asked again."""


class _NotFound(RegistryError):
    """S3 answered that the object does not exist (NoSuchKey, 404)."""


class _NotModified(RegistryError):
    """A conditional GET found the object unchanged since the ETag it sent (304)."""


class _Precondition(RegistryError):
    """A conditional write's condition did not hold (412 PreconditionFailed): a create found the key
    taken, or an If-Match write found the object changed."""


@dataclass(frozen=True)
class Pointer:
    """What a pointer names, and its ETag (None: the pointer object does not exist)."""

    version: str | None
    etag: str | None


class Registry:
    """The registry at `url` (s3://bucket/prefix/), through `client` (an S3 client; boto3's default chain if None)."""

    def __init__(self, url: str, client: Any = None) -> None:
        if not url.endswith("/"):
            url += "/"
        self.url = url
        self.bucket, self.prefix = artifact.split_s3_url(url)
        self.client = client if client is not None else artifact.s3_client()

    def artifact_key(self, version: str) -> str:
        return f"{self.prefix}versions/{version}.json"

    def publish(self, raw: bytes, source: str) -> tuple[Artifact, bool]:
        """Validate the artifact `raw` (read from `source`) and store it under its version; (it, True if
        it was stored now, False if that version was already there). Never replaces a stored version."""
        model = artifact.decode(raw, source)
        key = self.artifact_key(model.version)
        try:
            self._s3(
                f"cannot store s3://{self.bucket}/{key}",
                self.client.put_object,
                Key=key,
                Body=raw,
                IfNoneMatch="*",
                ContentType="application/json",
                **_SSE,
            )
        except _Precondition:  # stored already: it must be valid, and this version
            self.load(model.version)
            return model, False
        return model, True

    def load(self, version: str) -> Artifact:
        """The stored artifact of `version`, validated, and checked to be that version."""
        url = f"s3://{self.bucket}/{self.artifact_key(version)}"
        model = artifact.decode(self._get(url, self.artifact_key(version)), url)
        if model.version != version:
            raise RegistryError(f"model artifact {url}: holds version {model.version}, not {version}")
        return model

    def pointer(self, role: Role, etag: str | None = None) -> Pointer | None:
        """What the `role` pointer names; None if it is unchanged since `etag` (a conditional GET: 304)."""
        read = self._read(role, etag)
        if read is None:
            return None
        raw, etag = read
        return Pointer(None if raw is None else parse_pointer(raw, f"s3://{self.bucket}/{self.prefix}{role}"), etag)

    def canary(self, etag: str | None = None) -> tuple[Plan | None, str | None] | None:
        """The canary's plan (None: none was ever set) and its ETag; None if unchanged since `etag` (304).
        A plan that cannot be read is RegistryError, as a bad pointer is."""
        read = self._read(CANARY, etag)
        if read is None:
            return None
        raw, etag = read
        try:
            return (None if raw is None else Plan.decode(raw, f"s3://{self.bucket}/{self.prefix}{CANARY}")), etag
        except PlanError as exc:
            raise RegistryError(str(exc)) from None

    def plan(self, plan: Plan | None, if_match: str | None = None) -> str | None:
        """Write the canary's plan (None: no canary, over a plan that cannot be read); with `if_match`, only
        over the plan of that ETag (one writer wins). The new ETag, or None when the plan had moved
        meanwhile (412: nothing written). A plan written without `if_match` (a person's) runs only a
        stored, valid version."""
        if plan is not None and plan.state == "running" and if_match is None:
            self.load(plan.version)
        body = plan.encode() if plan is not None else json.dumps({"format": CANARY_FORMAT, "version": None}).encode()
        return self._put("cannot write the canary plan", CANARY, body, if_match)

    def _put(self, what: str, name: str, body: bytes, if_match: str | None) -> str | None:
        """Write a pointer or the plan, SSE-S3; with `if_match`, conditionally: None when that failed (412)."""
        try:
            response = self._s3(
                what,
                self.client.put_object,
                Key=self.prefix + name,
                Body=body,
                ContentType="application/json",
                **({"IfMatch": if_match} if if_match else {}),
                **_SSE,
            )
        except _Precondition:
            return None
        etag: str = response.get("ETag") or ""
        return etag

    def _read(self, name: str, etag: str | None) -> tuple[bytes | None, str | None] | None:
        """A pointer's or plan's document and ETag ((None, None): no such object); None if unchanged since `etag`."""
        key = self.prefix + name
        try:
            response = self._s3(
                f"model pointer s3://{self.bucket}/{key}",
                self.client.get_object,
                Key=key,
                **({"IfNoneMatch": etag} if etag else {}),
            )
        except _NotModified:
            return None
        except _NotFound:
            return None, None
        return response["Body"].read(16384), response.get("ETag")

    def point(self, role: Role, version: str | None, *, if_match: str | None = None) -> bool:
        """Move the `role` pointer to `version` (None: no shadow), once it is found stored and valid; with
        `if_match`, only over the pointer of that ETag (False: it had moved meanwhile, nothing written)."""
        if version is None and role == "production":
            raise RegistryError("production must name a version")
        if version is not None:
            self.load(version)
        body = json.dumps({"format": POINTER_FORMAT, "version": version}, sort_keys=True).encode() + b"\n"
        return self._put(f"cannot move {role}", role, body, if_match) is not None

    def _get(self, url: str, key: str) -> bytes:
        try:
            response = self._s3(f"model artifact {url}: cannot fetch", self.client.get_object, Key=key)
        except _NotFound:
            raise RegistryError(f"model artifact {url}: no such version in the registry") from None
        body: bytes = response["Body"].read(artifact.S3_MAX_BYTES + 1)
        if len(body) > artifact.S3_MAX_BYTES:
            raise RegistryError(f"model artifact {url}: larger than {artifact.S3_MAX_BYTES} bytes, not an artifact")
        return body

    def _s3(self, what: str, operation: Callable[..., Any], **arguments: Any) -> Any:
        """`operation` (a method of the S3 client) on this registry's bucket. The one place boto's errors
        become ours: 304, 404 and 412 are answers the callers expect (`_NotModified`, `_NotFound`,
        `_Precondition`); any other refusal, and no answer at all, is RegistryUnreachable, named by `what`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return operation(Bucket=self.bucket, **arguments)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("304", "NotModified"):
                raise _NotModified(what) from None
            if code in ("NoSuchKey", "404"):
                raise _NotFound(what) from None
            if code in ("PreconditionFailed", "412"):
                raise _Precondition(what) from None
            raise RegistryUnreachable(f"{what}: {artifact.s3_problem(exc)}") from None
        except BotoCoreError as exc:
            raise RegistryUnreachable(f"{what}: {exc}") from None


def parse_pointer(raw: bytes, source: str) -> str | None:
    """The version a pointer document names (None: none); RegistryError if it is not a pointer."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"model pointer {source}: not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != POINTER_FORMAT:
        raise RegistryError(f"model pointer {source}: not a {POINTER_FORMAT} document")
    version = document.get("version")
    if version is not None and not (isinstance(version, str) and artifact.VERSION_PATTERN.fullmatch(version)):
        raise RegistryError(f"model pointer {source}: version must be null or a model version, got {version!r}")
    return version
