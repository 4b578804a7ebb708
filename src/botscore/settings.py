"""Every setting of the service, read once from `BOTSCORE_*` environment variables.

One `Settings` object is built at start-up and passed to the parts that need it; no
other module reads the environment. A bad value stops start-up with one line that
names the variable (see `load_settings`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BOTSCORE_"
DEFAULT_PORT = 8887
SHIPPED_MODEL = Path(__file__).resolve().parent / "model" / "bot-score.json"


class SettingsError(Exception):
    """A `BOTSCORE_*` variable has a value the service cannot start with."""


class Settings(BaseSettings):
    """The service's configuration; each field is the variable `BOTSCORE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model_path: str = Field(
        default=str(SHIPPED_MODEL),
        description="Model artifact (JSON) to serve. Default: the artifact shipped in the package.",
    )
    model_registry: str | None = Field(
        default=None,
        description=(
            "Model registry (`s3://bucket/prefix/`, see docs/model.md): serve the version its `production` "
            "pointer names, score its `shadow` beside it, and follow both; MODEL_PATH serves until a version is "
            "promoted."
        ),
    )
    model_poll_seconds: float = Field(
        default=10.0,
        ge=0.1,
        le=3600,
        description="With MODEL_REGISTRY: how often each worker checks the pointers (a conditional GET each).",
    )
    shadow_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Score at which the shadow model is counted as disagreeing when on the other side of it.",
    )
    host: str = Field(default="127.0.0.1", description="Address `botscore serve` binds to.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="Port `botscore serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes of `botscore serve`.")
    max_body_bytes: int = Field(
        default=1024, ge=64, le=1_048_576, description="Largest request body accepted on /bot-score (413 above)."
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Keys for the scoring routes, comma-separated; never a path (a keys file is API_KEYS_FILE). "
            "Unset, with API_KEYS_FILE unset too: open."
        ),
    )
    api_keys_file: Path | None = Field(
        default=None,
        description=(
            "A file of keys for the scoring routes (one per line or comma-separated), re-read when it changes "
            "and on SIGHUP; it must exist at start-up."
        ),
    )
    max_header_bytes: int = Field(
        default=32768,
        ge=1024,
        le=1_048_576,
        description="Largest request head (request line and headers) accepted; 431 and the connection closed above.",
    )
    request_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description=(
            "Time a client has to send a whole request, from its first byte; 408 and the connection closed after it."
        ),
    )
    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        le=4100,  # the ALB idle timeout (at most 4,000 s) plus a margin
        description=(
            "An idle connection is closed after this long; keep it above the load balancer's idle timeout "
            "(`alb_idle_timeout`, 30 s in the Terraform; an ALB's own default is 60 s), or the ALB may reuse a "
            "connection as it closes and answer 502."
        ),
    )
    max_in_flight: int = Field(
        default=256,
        ge=0,
        le=100_000,
        description=(
            "Requests a worker holds at once; scoring requests past it are shed with a fast 503 and "
            "Retry-After (recorded). 0: no bound."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the JSON log lines on stdout."
    )

    audit_dir: Path = Field(
        default=Path("var/audit"),
        description="Local spool of audit records; sealed segments wait here until shipped.",
    )
    audit_bucket: str | None = Field(
        default=None,
        description="S3 bucket for audit records. Unset: sealed segments stay under AUDIT_DIR/shipped.",
    )
    audit_prefix: str = Field(default="bot-score/", description="Key prefix of audit objects in the bucket.")
    audit_segment_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="A segment is sealed and shipped at this size..."
    )
    audit_segment_max_age_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="...or at this age, whichever comes first."
    )
    audit_spool_max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=64 * 1024,
        description="Bound on the spool's disk use; /readyz turns 503 above 80 % of it.",
    )
    audit_when_full: Literal["reject", "drop"] = Field(
        default="reject",
        description="At the bound: `reject` answers 503 + Retry-After; `drop` serves and counts dropped records.",
    )
    audit_retry_max_seconds: float = Field(
        default=30.0, ge=0.01, le=600, description="Cap of the backoff between failed uploads (retried forever)."
    )
    audit_sync: Literal["none", "interval", "always"] = Field(
        default="none",
        description=(
            "When records reach the disk: `none` leaves it to the kernel (survives a process crash), "
            "`interval` fsyncs every AUDIT_SYNC_INTERVAL_MS, `always` answers only after an fsync covering the record."
        ),
    )
    audit_sync_interval_ms: int = Field(
        default=500, ge=10, le=60_000, description="With AUDIT_SYNC=interval: the longest time between fsyncs."
    )
    audit_commit_window_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description=(
            "With AUDIT_SYNC=always: rounds of fsyncs start at least this far apart, so an answer waits at most"
            " this long for the fsync that covers it and a worker makes at most 1000 / this fsyncs a second."
            " 0: a round starts as soon as one is needed (a local disk's fsyncs cost nothing); on EFS, which"
            " bills each as at least 32 KiB, the Terraform default is 25 (docs/cost.md)."
        ),
    )
    audit_host: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]{1,63}$",
        description="This host's name in object keys and the spool; unset: the machine's host name.",
    )
    audit_adopt_after_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="A worker of another host silent this long, its lock free, is dead: its segments are adopted.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Folder of the workers' metric files, per host, never on the spool; unset: under /dev/shm or /tmp.",
    )
    audit_shutdown_seconds: float = Field(
        default=20.0, ge=0, le=300, description="On SIGTERM, time allowed to seal and ship the spool."
    )
    audit_raw_max_bytes: int = Field(
        default=256,
        ge=0,
        le=1_048_576,
        description=(
            "Bounds `raw`, `x1_text` and `x2_text`: the bytes of a refused request's body (`raw`) and of an x1 or "
            "x2 that was not a finite number, as sent, that the audit record keeps for the bucket's whole retention; "
            "0 keeps none of them. The default shows the shape of any malformed score (a valid one is about 25 "
            "bytes) and cuts a batch or payload sent by mistake, where card or personal data would sit, to 256 "
            "bytes; set 0 where clients may send such data."
        ),
    )
    emf: bool = Field(
        default=False,
        description=(
            "Write each worker's metrics as CloudWatch embedded metric format lines on stdout every "
            "EMF_INTERVAL_SECONDS (on ECS, awslogs makes them CloudWatch metrics)."
        ),
    )
    emf_interval_seconds: float = Field(
        default=60.0, ge=1, le=3600, description="With EMF on: seconds between a worker's sets of metric lines."
    )
    emf_namespace: str = Field(
        default="botscore", min_length=1, max_length=255, description="With EMF on: the CloudWatch namespace."
    )
    emf_service: str = Field(
        default="botscore",
        min_length=1,
        max_length=255,
        description="With EMF on: the value of the `Service` dimension (the ECS service's name).",
    )

    @property
    def spool_directory(self) -> Path:
        """BOTSCORE_AUDIT_DIR made absolute, so a later chdir cannot move it."""
        return self.audit_dir.expanduser().resolve()

    @field_validator("audit_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        if value.startswith("/"):
            raise ValueError("must not start with '/'")
        if value and not value.endswith("/"):
            raise ValueError("must be empty or end with '/'")
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_no_path(cls, value: SecretStr | None) -> SecretStr | None:
        # One setting, one meaning: a path given here would otherwise become a key nobody holds.
        entries = [entry.strip() for entry in (value.get_secret_value() if value else "").split(",")]
        if any(_looks_like_a_path(entry) for entry in entries if entry):
            raise ValueError(
                "looks like a file path, not a key list; this variable holds the keys themselves "
                f"(name a keys file with {ENV_PREFIX}API_KEYS_FILE)"
            )
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _one_source_of_keys(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("api_keys") is not None:
            raise ValueError(f"set {ENV_PREFIX}API_KEYS or {ENV_PREFIX}API_KEYS_FILE, not both")
        if value is not None and not str(value).strip():
            raise ValueError("is empty; unset it, or name a keys file")
        return value.expanduser() if value is not None else None

    @field_validator("model_registry")
    @classmethod
    def _registry_is_s3(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith("s3://") or not value[len("s3://") :].partition("/")[0]:
            raise ValueError("must be an s3://bucket/prefix/ URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("audit_bucket")
    @classmethod
    def _empty_bucket_is_none(cls, value: str | None) -> str | None:
        return value or None


# What an entry of API_KEYS that is meant as a file looks like: a path, or a file name's extension.
# Keys are tokens (`openssl rand -hex 32`): none starts like a path or ends in `.txt`.
_PATH_START = ("/", "./", "../", "~")
_FILE_EXTENSION = re.compile(r"\.(txt|keys?|csv|conf|cfg|env|ini|json|ya?ml|secrets?|list|pem)$", re.IGNORECASE)


def _looks_like_a_path(entry: str) -> bool:
    """True for an API_KEYS entry that names a file: path-shaped, or an existing file or folder."""
    if entry.startswith(_PATH_START) or _FILE_EXTENSION.search(entry):
        return True
    try:
        return os.path.lexists(entry)
    except (OSError, ValueError):  # a name too long to look up is no file name
        return False


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides); raise SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        value = "<hidden>" if field == "api_keys" else repr(first.get("input"))
        raise SettingsError(f"{env_name(field)}={value}: {first['msg']}") from None
