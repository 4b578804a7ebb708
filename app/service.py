"""The composition root: builds model, audit log and app from one Settings, and owns their lifetime.

Start-up loads and checks the model (a broken artifact stops start-up), opens the spool and
starts the shipper. Shutdown runs after uvicorn stopped accepting and finished in-flight
requests: seal the spool and ship it within the deadline, then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from app import artifact, reload
from app.api import BotscoreApp, ModelSlot, create_app
from app.audit import AuditLog, spool_dir
from app.auth import ApiKeys
from app.errors import fail_startup
from app.logs import configure as configure_logging
from app.memory import tune_malloc
from app.metrics import Metrics, audit_counters, mark_process_dead
from app.scoring import Scorer
from app.settings import Settings, SettingsError, load_settings
from app.spool import Spool
from app.uploaders import LocalUploader, S3Uploader, Uploader

# On the event loop this often: seal the audit segment when old enough (the loop owns it), and
# move metrics counted in plain lists into prometheus_client (small lists, fresh scrapes).
HOUSEKEEPING_SECONDS = 0.25


@dataclass
class Service:
    """Everything one worker runs, wired together."""

    settings: Settings
    model: ModelSlot
    audit: AuditLog
    metrics: Metrics
    app: BotscoreApp


def build(settings: Settings, *, uploader: Uploader | None = None) -> Service:
    """Wire the parts; raises ArtifactError for a bad model. `uploader` overrides the settings' choice."""
    tune_malloc()
    model = ModelSlot(Scorer(artifact.load(settings.model_path)))
    directory = spool_dir(settings.audit_dir)
    if uploader is None:
        uploader = S3Uploader(settings.audit_bucket) if settings.audit_bucket else LocalUploader(directory / "shipped")
    spool = Spool(
        directory,
        segment_max_bytes=settings.audit_segment_max_bytes,
        segment_max_age=settings.audit_segment_max_age_seconds,
    )
    audit = AuditLog(
        spool,
        uploader,
        prefix=settings.audit_prefix,
        spool_max_bytes=settings.audit_spool_max_bytes,
        when_full=settings.audit_when_full,
        shutdown_seconds=settings.audit_shutdown_seconds,
        retry_max_seconds=settings.audit_retry_max_seconds,
    )

    metrics = Metrics(audit_counters(audit))
    keys = ApiKeys.from_setting(settings.api_keys.get_secret_value() if settings.api_keys else None)

    async def housekeeping() -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            audit.tick()
            metrics.flush()

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        audit.start()
        reload.install(model, settings.model_path, asyncio.get_running_loop())
        flusher = asyncio.create_task(housekeeping())
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await asyncio.to_thread(audit.close)
            metrics.flush()
            mark_process_dead(os.getpid())

    app = create_app(
        model, audit, metrics, max_body_bytes=settings.max_body_bytes, api_keys=keys, lifespan=lifespan
    )
    return Service(settings, model, audit, metrics, app)


def build_from_environment() -> Service:
    """Settings from BOTSCORE_*, logging, parts; a bad setting or model exits with one line."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        return build(settings)
    except (SettingsError, artifact.ArtifactError) as exc:
        fail_startup(str(exc))
