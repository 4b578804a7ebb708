"""The composition root: builds model, audit log, data plane and app from one Settings, and owns their lifetime.

Start-up loads and checks the model (a broken artifact stops start-up), opens the spool and
starts the shipper. Shutdown runs after uvicorn stopped accepting and finished in-flight
requests: seal the spool and ship it within the deadline, then close. `botscore.server` runs
the process (uvicorn, its workers) and calls `build` in each worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from botscore.audit.log import AuditLog
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader, S3Uploader, Uploader
from botscore.dataplane.handler import Handler
from botscore.errors import fail_startup
from botscore.http.app import BotscoreApp, create_app
from botscore.http.auth import ApiKeys, KeysFileError
from botscore.http.limits import Limits
from botscore.http.protocol import BotscoreProtocol
from botscore.model import artifact, reload
from botscore.model.follow import Follower
from botscore.model.registry import Registry
from botscore.model.scorer import ModelSlot, Scorer
from botscore.ops.logs import configure as configure_logging
from botscore.ops.memory import tune_malloc
from botscore.ops.metrics import Metrics, forget_dead_workers, mark_process_dead
from botscore.settings import Settings, SettingsError, env_name, load_settings

# On the event loop this often: seal the audit segment when old enough (the loop owns it), and
# move metrics counted in plain lists into prometheus_client (small lists, fresh scrapes).
HOUSEKEEPING_SECONDS = 0.25
log = logging.getLogger("botscore.service")


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
    metrics = Metrics(shadow_threshold=settings.shadow_threshold)
    follower = None
    if settings.model_registry:
        follower = Follower(Registry(settings.model_registry), on_refused=metrics.note_refused)
        model = ModelSlot(follower.first(lambda: artifact.load(settings.model_path)))
    else:
        model = ModelSlot(Scorer(artifact.load(settings.model_path)))
    metrics.serving = lambda: (model.scorer.version, model.scorer.shadow.version if model.scorer.shadow else None)
    directory = settings.spool_directory
    if uploader is None:
        uploader = S3Uploader(settings.audit_bucket) if settings.audit_bucket else LocalUploader(directory / "shipped")
    audit = AuditLog(
        SpoolDirectory(directory, host=settings.audit_host),
        uploader,
        prefix=settings.audit_prefix,
        segment_max_bytes=settings.audit_segment_max_bytes,
        segment_max_age=settings.audit_segment_max_age_seconds,
        spool_max_bytes=settings.audit_spool_max_bytes,
        when_full=settings.audit_when_full,
        shutdown_seconds=settings.audit_shutdown_seconds,
        retry_max_seconds=settings.audit_retry_max_seconds,
        sync=settings.audit_sync,
        sync_interval=settings.audit_sync_interval_ms / 1000,
        adopt_after=settings.audit_adopt_after_seconds,
        on_fsync=metrics.note_fsync,
    )
    metrics.audit_counters = audit.counters
    keys = _api_keys(settings)

    async def housekeeping() -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            audit.tick()
            metrics.flush()

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if not app.bounded:
            log.warning(
                "served without botscore's connection bounds (no 431, 408, unread-answer bound or shedding): "
                "run `botscore serve`, or uvicorn with --http botscore.service:worker_protocol"
            )
        forget_dead_workers()
        audit.start()
        watcher = keys.watch(HOUSEKEEPING_SECONDS)  # a rotated keys file takes effect within a tick
        reread_keys = watcher.poke if watcher else _nothing
        background = [asyncio.create_task(housekeeping())]
        if follower is None:
            reload.install(model, settings.model_path, asyncio.get_running_loop(), also=reread_keys)
        else:  # SIGHUP: check the registry's pointers now
            poke = follower.poke

            def also() -> None:
                reread_keys()
                poke()

            reload.install(model, None, asyncio.get_running_loop(), also=also)
            background.append(asyncio.create_task(follower.follow(model, settings.model_poll_seconds)))
        if settings.audit_sync != "none":  # interval: its timer; always: brings a failed fsync back
            every = audit.sync_interval if settings.audit_sync == "interval" else 1.0
            background.append(asyncio.create_task(audit.syncer.every(every)))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if watcher is not None:
                watcher.stop()
            await asyncio.to_thread(audit.close)
            metrics.flush()
            mark_process_dead(os.getpid())

    app = create_app(
        Handler(audit, metrics),
        model,
        metrics,
        max_body_bytes=settings.max_body_bytes,
        limits=Limits(settings.max_header_bytes, settings.request_timeout_seconds, settings.max_in_flight),
        api_keys=keys,
        lifespan=lifespan,
    )
    return Service(settings, model, audit, metrics, app)


def _api_keys(settings: Settings) -> ApiKeys:
    """The keys of BOTSCORE_API_KEYS or BOTSCORE_API_KEYS_FILE; a set variable without a key stops start-up."""
    inline = settings.api_keys.get_secret_value() if settings.api_keys else None
    try:
        keys = ApiKeys.load(inline, settings.api_keys_file)
    except KeysFileError as exc:
        raise SettingsError(f"{env_name('api_keys_file')}={str(settings.api_keys_file)!r}: {exc}") from None
    if (inline is not None or settings.api_keys_file is not None) and not keys.required:
        # Set, yet no key: never serve open by mistake.
        if settings.api_keys_file is not None:
            raise SettingsError(
                f"{env_name('api_keys_file')}={str(settings.api_keys_file)!r}: holds no key; "
                "unset it to leave the scoring routes open"
            )
        raise SettingsError(
            f"{env_name('api_keys')}=<hidden>: holds no key (only separators); "
            "unset it to leave the scoring routes open"
        )
    return keys


def _nothing() -> None:
    """SIGHUP's extra step when there is no keys file to re-read."""


def build_from_environment() -> Service:
    """Settings from BOTSCORE_*, logging, parts; a bad setting or model exits with one line."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        return build(settings)
    except (SettingsError, artifact.ArtifactError) as exc:
        fail_startup(str(exc))


def app_from_environment() -> BotscoreApp:
    """The app of one worker, for uvicorn's `factory=True` (each worker of `--workers N` builds its own);
    `worker_protocol` serves it with its bounds."""
    app = build_from_environment().app
    _Worker.protocol = app.protocol()
    return app


class _Worker:
    """The protocol factory of the app this worker process built (one app a worker)."""

    protocol: type[BotscoreProtocol] | None = None


def worker_protocol(*args: Any, **kwargs: Any) -> BotscoreProtocol:
    """uvicorn's `http` option in a worker of `botscore serve --workers N`: a connection built with the
    bounds of the app this worker built (`app_from_environment`, which uvicorn calls first)."""
    if _Worker.protocol is None:
        raise RuntimeError("worker_protocol serves the app of botscore.service:app_from_environment (factory)")
    return _Worker.protocol(*args, **kwargs)
