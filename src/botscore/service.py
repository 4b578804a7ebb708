"""The composition root: builds model, audit log, data plane and app from one Settings, and owns their lifetime.

Start-up loads and checks the model (a broken artifact stops start-up), opens the spool and
starts the shipper. Shutdown runs after uvicorn stopped accepting and finished in-flight
requests: seal the spool and ship it within the deadline, then close. `botscore.server` runs
the process (uvicorn, its workers) and calls `build` in each worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botscore.audit.log import AuditLog
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader, S3Uploader, Uploader
from botscore.dataplane.handler import Handler
from botscore.errors import fail_startup
from botscore.http.app import BotscoreApp, create_app
from botscore.http.auth import ApiKeys, KeysFileError, KeysWatcher
from botscore.http.limits import Limits, connection_limit
from botscore.http.protocol import SWEEP_SECONDS, BotscoreProtocol, sweep
from botscore.model import artifact, baseline, reload
from botscore.model.scorer import ModelSlot, Scorer
from botscore.ops.logs import configure as configure_logging
from botscore.ops.memory import tune_malloc
from botscore.ops.metrics import Metrics, forget_dead_workers, mark_process_dead
from botscore.ops.schedule import Schedule
from botscore.ops.threads import off_loop
from botscore.settings import Settings, SettingsError, env_name, load_settings

if TYPE_CHECKING:  # imported where a setting turns them on: about 1 MiB of every worker's RSS otherwise
    from botscore.model.follow import Follower
    from botscore.ops.emf import EmfWriter

# On the event loop this often: seal the audit segment when old enough (the loop owns it), and
# move metrics counted in plain lists into prometheus_client (small lists, fresh scrapes).
HOUSEKEEPING_SECONDS = 0.25
METRICS_CACHE_SECONDS = 1.0  # /metrics is rendered at most this often a worker (a render costs 9-17 ms of CPU)
log = logging.getLogger("botscore.service")


@dataclass
class Service:
    """Everything one worker runs, wired together, and its one lifecycle: `start` and `stop`, which the
    app's lifespan calls (uvicorn runs it after it stopped accepting and finished in-flight requests)."""

    settings: Settings
    model: ModelSlot
    audit: AuditLog
    metrics: Metrics
    keys: ApiKeys
    schedule: Schedule
    follower: Follower | None = None
    emf: EmfWriter | None = None
    app: BotscoreApp = field(init=False)
    _watcher: KeysWatcher | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.app = create_app(
            Handler(self.audit, self.metrics, raw_limit=settings.audit_raw_max_bytes),
            self.model,
            self.metrics,
            max_body_bytes=settings.max_body_bytes,
            limits=Limits(
                settings.max_header_bytes,
                settings.request_timeout_seconds,
                settings.max_in_flight,
                connection_limit(settings.max_in_flight),
            ),
            api_keys=self.keys,
            lifespan=self.lifespan,
            metrics_cache_seconds=METRICS_CACHE_SECONDS,
        )

    def protocol(self) -> type[BotscoreProtocol]:
        """uvicorn's `http` option: connections with the app's bounds, their deadlines on this schedule."""
        watched: set[int] = set()

        def watch(connections: set[Any]) -> None:
            if id(connections) not in watched:
                watched.add(id(connections))
                self.schedule.every(SWEEP_SECONDS, "connection deadlines", functools.partial(sweep, connections))

        return self.app.protocol(watch)

    @asynccontextmanager
    async def lifespan(self, _: Any) -> AsyncIterator[None]:
        """The app's lifespan (Starlette's): the service's own `start` and `stop`."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        """Open the audit log, watch the keys file, take SIGHUP, start the schedule."""
        if not self.app.bounded:
            log.warning(
                "served without botscore's connection bounds (no 431, 408, unread-answer bound or shedding): "
                "run `botscore serve` to apply them"
            )
        forget_dead_workers()
        self.audit.start()
        self._watcher = self.keys.watch(HOUSEKEEPING_SECONDS)  # a thread: a rotated keys file takes effect in a tick
        loop = asyncio.get_running_loop()
        reload.install(self.model, None if self.follower else self.settings.model_path, loop, also=self._on_sighup)
        self.schedule.start()

    def _on_sighup(self) -> None:
        """SIGHUP: read the keys file again, and check the registry's pointers now (with a registry)."""
        if self._watcher is not None:
            self._watcher.poke()
        if self.follower is not None:
            self.schedule.poke(FOLLOW_JOB)

    async def stop(self) -> None:
        """In order: the schedule's jobs, the keys watcher, the audit log (sealed and shipped within its
        deadline, off the loop), the last metrics (and EMF lines), this worker's metric files."""
        await self.schedule.stop()
        if self._watcher is not None:
            self._watcher.stop()
        await off_loop(self.audit.close)
        self.metrics.flush()
        if self.emf is not None:
            self.emf.flush()  # the last interval, shutdown's shipping included
        mark_process_dead(os.getpid())


FOLLOW_JOB = "follow the model registry's pointers"


async def _follow(follower: Follower, model: ModelSlot) -> None:
    """One check of the registry's pointers (off the loop); a new pair is swapped into `model`."""
    pair = await off_loop(follower.poll)
    if pair is not None:
        model.swap(pair, model_registry=follower.registry.url, pid=os.getpid())


def build(settings: Settings, *, uploader: Uploader | None = None) -> Service:
    """Wire the parts; raises ArtifactError for a bad model. `uploader` overrides the settings' choice."""
    tune_malloc()
    metrics = Metrics(shadow_threshold=settings.shadow_threshold)
    follower = None
    if settings.model_registry:
        from botscore.model.follow import Follower  # only with a registry (RSS, see above)
        from botscore.model.registry import Registry

        follower = Follower(
            Registry(settings.model_registry),
            on_refused=metrics.note_refused,
            on_unreachable=metrics.note_unreachable,
            on_rollback=metrics.note_rollback,
            threshold=settings.shadow_threshold,
        )
        model = ModelSlot(follower.first(lambda: artifact.load(settings.model_path)))
    else:
        model = ModelSlot(Scorer(artifact.load(settings.model_path)))
    metrics.serving = functools.partial(_serving, model)
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
        commit_window=settings.audit_commit_window_ms / 1000,
        adopt_after=settings.audit_adopt_after_seconds,
        on_fsync=metrics.note_fsync,
        raw_limit=settings.audit_raw_max_bytes,
    )
    metrics.audit_counters = audit.counters
    emf = _emf_writer(settings, metrics, model)

    schedule = Schedule(HOUSEKEEPING_SECONDS)
    schedule.every(HOUSEKEEPING_SECONDS, "seal the audit segment when due", audit.tick)
    schedule.every(HOUSEKEEPING_SECONDS, "move metrics into prometheus_client", metrics.flush)
    if emf is not None:  # after the metrics flush, so a set holds what /metrics says
        schedule.every(HOUSEKEEPING_SECONDS, "write the EMF metric lines when due", emf.tick)
    if settings.audit_sync != "none":  # interval: its timer; always: brings a failed fsync back
        every = settings.audit_sync_interval_ms / 1000 if settings.audit_sync == "interval" else 1.0
        schedule.every(every, "fsync the audit spool", audit.syncer.catch_up)
    if follower is not None:
        schedule.every(settings.model_poll_seconds, FOLLOW_JOB, functools.partial(_follow, follower, model))
    return Service(settings, model, audit, metrics, _api_keys(settings), schedule, follower=follower, emf=emf)


def _serving(model: ModelSlot) -> tuple[str, str | None, str | None]:
    """The versions a worker serves: production, the shadow and the canary (None: none)."""
    scorer = model.scorer
    shadow, split = scorer.shadow, scorer.split
    return scorer.version, shadow.version if shadow else None, split.canary.version if split else None


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


def _emf_writer(settings: Settings, metrics: Metrics, model: ModelSlot) -> EmfWriter | None:
    """The worker's CloudWatch EMF lines, read from the registry /metrics is rendered from; None when off."""
    if not settings.emf:
        return None
    from botscore.ops.emf import EmfWriter, worker_properties  # only when on (RSS, see above)

    return EmfWriter(
        metrics.registry,
        namespace=settings.emf_namespace,
        service=settings.emf_service,
        interval=settings.emf_interval_seconds,
        spool_max_bytes=settings.audit_spool_max_bytes,
        properties=worker_properties(lambda: model.scorer.version, settings.audit_host),
        drift=lambda name, bounds, counts: baseline.psi_of(model.scorer.artifact.baseline, name, bounds, counts),
    )


def build_from_environment() -> Service:
    """Settings from BOTSCORE_*, logging, parts; a bad setting or model exits with one line."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        return build(settings)
    except (SettingsError, artifact.ArtifactError) as exc:
        fail_startup(str(exc))


def app_from_environment() -> BotscoreApp:
    """The app of one worker, for uvicorn's `factory=True` (each worker of `--workers N` builds its own),
    with its connection class made (`app.connection_class`), which `botscore.http.protocol.from_config`
    builds each of the worker's connections with."""
    service = build_from_environment()
    service.protocol()
    return service.app
