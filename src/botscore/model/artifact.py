"""The model artifact: a small, versioned JSON file that fully describes a logistic regression.

Never a pickle: loading it runs no code, and a reviewer can read it. Its `checksum` is the
SHA-256 of its canonical JSON without the `checksum` field, and its `version` is derived
from the same content, so two different artifacts never report the same version.

`load` reads a local path or an `s3://bucket/key` URL (boto3's default credential chain;
`AWS_ENDPOINT_URL_S3` points it elsewhere), and validates both the same way.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botscore.model import baseline as _baseline
from botscore.model.baseline import Distribution

FORMAT = "botscore.logistic-regression/v1"
FEATURES = ("x1", "x2")
VERSION_PATTERN = re.compile(r"[A-Za-z0-9._:+-]{1,64}")
S3_SCHEME = "s3://"
S3_MAX_BYTES = 1024 * 1024  # an artifact is about 1 KiB; anything near this is not one
_REQUIRED = ("format", "version", "features", "preprocessing", "coefficients", "intercept", "metrics", "training")


class ArtifactError(Exception):
    """The artifact is missing, unreadable or fails validation; the message names the file and the problem."""


@dataclass(frozen=True)
class Artifact:
    """A validated model: z = coef . ((x - mean) / scale) + intercept, p_bot = sigmoid(z)."""

    version: str
    coefficients: tuple[float, float]
    intercept: float
    mean: tuple[float, float] | None
    scale: tuple[float, float] | None
    metrics: dict[str, Any]
    training: dict[str, Any]
    checksum: str
    # The training rows' shares per histogram bucket of x1, x2 and p_bot (model/baseline.py); None in
    # artifacts made before it existed, for which no drift is computed.
    baseline: dict[str, Distribution] | None = None


def canonical_json(document: dict[str, Any]) -> bytes:
    """The byte form that checksums and versions are computed over."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _digest(document: dict[str, Any], *without: str) -> str:
    content = {key: value for key, value in document.items() if key not in without}
    return hashlib.sha256(canonical_json(content)).hexdigest()


def seal(document: dict[str, Any]) -> dict[str, Any]:
    """Give an artifact document its content-derived `version` and its `checksum`."""
    sealed = {key: value for key, value in document.items() if key not in ("version", "checksum")}
    sealed["version"] = "lr-" + _digest(sealed)[:16]
    sealed["checksum"] = "sha256:" + _digest(sealed, "checksum")
    return sealed


def write(document: dict[str, Any], path: Path) -> None:
    """Write a sealed artifact as readable, sorted JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n")


def _finite_pair(document: dict[str, Any], key: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != len(FEATURES)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise ValueError(f"{key} must be a list of {len(FEATURES)} finite numbers, got {value!r}")
    return float(value[0]), float(value[1])


def parse(document: Any) -> Artifact:
    """Validate a decoded artifact document; raise ValueError saying what is wrong."""
    if not isinstance(document, dict):
        raise ValueError("top level must be a JSON object")
    missing = [key for key in (*_REQUIRED, "checksum") if key not in document]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    if document["format"] != FORMAT:
        raise ValueError(f"format is {document['format']!r}, expected {FORMAT!r}")
    if document["features"] != list(FEATURES):
        raise ValueError(f"features are {document['features']!r}, expected {list(FEATURES)!r}")
    expected = "sha256:" + _digest(document, "checksum")
    if document["checksum"] != expected:
        raise ValueError(f"checksum mismatch: file says {document['checksum']}, content is {expected}")
    coefficients = _finite_pair(document, "coefficients", document["coefficients"])
    intercept = document["intercept"]
    if not isinstance(intercept, (int, float)) or isinstance(intercept, bool) or not math.isfinite(intercept):
        raise ValueError(f"intercept must be a finite number, got {intercept!r}")
    preprocessing = document["preprocessing"]
    mean = scale = None
    if not isinstance(preprocessing, dict) or preprocessing.get("kind") not in ("none", "standard_scaler"):
        raise ValueError(f"preprocessing must be {{'kind': 'none' | 'standard_scaler', ...}}, got {preprocessing!r}")
    if preprocessing["kind"] == "standard_scaler":
        mean = _finite_pair(document, "preprocessing.mean", preprocessing.get("mean"))
        scale = _finite_pair(document, "preprocessing.scale", preprocessing.get("scale"))
        if min(scale) <= 0:
            raise ValueError(f"preprocessing.scale must be positive, got {list(scale)!r}")
    if not isinstance(document["version"], str) or not VERSION_PATTERN.fullmatch(document["version"]):
        raise ValueError(
            f"version must be 1-64 of A-Z a-z 0-9 . _ : + - (it is sent as a header), got {document['version']!r}"
        )
    found = _baseline.parse(document["baseline"]) if "baseline" in document else None
    return Artifact(
        version=document["version"],
        coefficients=coefficients,
        intercept=float(intercept),
        mean=mean,
        scale=scale,
        metrics=dict(document["metrics"]),
        training=dict(document["training"]),
        checksum=document["checksum"],
        baseline=found,
    )


def load(path: str | Path) -> Artifact:
    """Read and validate the artifact at `path` (a file or s3:// URL); ArtifactError names it and the problem."""
    raw = _fetch_s3(str(path)) if str(path).startswith(S3_SCHEME) else _read_file(path)
    return decode(raw, str(path))


def decode(raw: bytes, source: str) -> Artifact:
    """Decode and validate an artifact's bytes: the one check that start-up, reload, the registry's
    publish and a worker following the registry all make; ArtifactError names `source` and the problem."""
    try:
        document = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"model artifact {source}: not valid JSON: {exc}") from None
    try:
        return parse(document)
    except ValueError as exc:
        raise ArtifactError(f"model artifact {source}: {exc}") from None


def _read_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"model artifact {path}: cannot read: {exc.strerror or exc}") from None


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`; ArtifactError if either part is missing."""
    bucket, _, key = url[len(S3_SCHEME) :].partition("/")
    if not bucket or not key:
        raise ArtifactError(f"model artifact {url}: not an s3://bucket/key URL")
    return bucket, key


def _fetch_s3(url: str) -> bytes:
    """The object's bytes; any failure (no such key, access denied, no endpoint) as one ArtifactError line."""
    bucket, key = split_s3_url(url)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = s3_client()
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read(S3_MAX_BYTES + 1)
    except ClientError as exc:
        raise ArtifactError(f"model artifact {url}: cannot fetch: {s3_problem(exc)}") from None
    except BotoCoreError as exc:
        raise ArtifactError(f"model artifact {url}: cannot fetch: {_one_line(str(exc))}") from None
    if len(body) > S3_MAX_BYTES:
        raise ArtifactError(f"model artifact {url}: larger than {S3_MAX_BYTES} bytes, not an artifact")
    return body


def s3_client() -> Any:
    """An S3 client from boto3's default credential chain (AWS_ENDPOINT_URL_S3 points it elsewhere),
    with bounded timeouts: the model is read at start-up and by workers following the registry."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client("s3", config=config)


def s3_problem(exc: Any) -> str:
    """A botocore ClientError as one line: `Code: Message`."""
    error = exc.response.get("Error", {})
    return _one_line(f"{error.get('Code', 'error')}: {error.get('Message') or 'no message'}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"{token} is not a finite number")
    return value
