"""`botscore serve`: the process around the workers; each worker's parts are built by `botscore.service`.

It sets prometheus_client's multiprocess folder before anything imports prometheus_client (it
chooses its mode on import), so this module imports the service only when it runs. It fails
fast on a bad setting or model, before any worker starts, then runs uvicorn.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from botscore.errors import fail_startup
from botscore.settings import Settings, SettingsError, env_name, load_settings

# How `botscore serve` runs uvicorn, besides its protocol (`http`: uvicorn's httptools one with the
# app's bounds, botscore.http.protocol); `make bench` runs its ceiling app with these and plain httptools.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "ws": "none",  # no WebSocket route: an Upgrade is an ordinary request
    "lifespan": "on",
    "access_log": False,  # the audit log keeps every request
    "log_config": None,  # our JSON logging (botscore.ops.logs)
    "server_header": False,
    "proxy_headers": False,  # the client address is used nowhere, so X-Forwarded-* is not parsed
    "timeout_graceful_shutdown": 5,  # in-flight requests; then the audit spool gets its own deadline
}
WORKER_APP = "botscore.service:app_from_environment"
WORKER_PROTOCOL = "botscore.http.protocol:from_config"  # each worker's connections get that worker's app's bounds
log = logging.getLogger("botscore.server")  # what each of `--workers N` imports and calls


def serve(**overrides: Any) -> None:
    """Serve with settings from BOTSCORE_*; `overrides` (host, port, workers from the command line) win."""
    # Written back to the environment so that worker processes build the same settings.
    for field, value in overrides.items():
        if value is not None:
            os.environ[env_name(field)] = str(value)
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail_startup(str(exc))
    _metrics_dir(settings)

    import uvicorn

    from botscore import service

    built = service.build_from_environment()  # fails fast on a bad model, before any worker starts
    several = settings.workers > 1
    uvicorn.run(
        WORKER_APP if several else built.app,
        factory=several,
        http=WORKER_PROTOCOL if several else built.protocol(),
        host=settings.host,
        port=settings.port,
        timeout_keep_alive=settings.keep_alive_seconds,
        workers=settings.workers,
        **UVICORN_OPTIONS,
    )


def _metrics_dir(settings: Settings) -> None:
    """prometheus_client's multiprocess mode, so /metrics sums every worker of this `botscore serve`.

    The files are per host and per server process, never on the spool: a spool shared by hosts
    (EFS) would mix their workers, and a full spool disk would kill a worker writing a metric
    (the files are memory-mapped: SIGBUS). Only this process's own folder is cleared at start.
    """
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    name = f"botscore-metrics-{os.getpid()}"
    candidates = (
        [settings.metrics_dir]
        if settings.metrics_dir
        else [Path("/dev/shm") / name, Path(tempfile.gettempdir()) / name]
    )
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("*.db"):
                stale.unlink()
        except OSError as exc:
            log.warning("cannot keep metric files here", extra={"folder": str(folder), "reason": str(exc)})
            continue
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return
    log.warning("no folder for metric files: /metrics reports the worker that answers it, not their sum")
