"""Finding `botscore serve` and its uvicorn workers, to signal them (`botscore reload`); psutil does the looking."""

from __future__ import annotations

import os
import signal

import psutil


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes under `parent`: children started by multiprocessing's spawn.

    Other children, such as multiprocessing's resource tracker, are left out: SIGHUP would kill them.
    """
    workers = []
    for child in psutil.Process(parent).children():
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                workers.append(child.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(workers)


def serve_pid() -> int | None:
    """The oldest `botscore serve` process on this machine (container), or None."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "create_time"]):
        argv = process.info["cmdline"] or []
        if process.info["pid"] != os.getpid() and "serve" in argv and any(a.endswith("botscore") for a in argv):
            found.append((process.info["create_time"], process.info["pid"]))
    return min(found)[1] if found else None


def signal_workers(pid: int) -> list[int]:
    """Send SIGHUP to each worker of the `botscore serve` process `pid`, or to `pid` itself if it has none."""
    try:
        targets = worker_pids(pid) or [pid]
    except psutil.NoSuchProcess:
        raise ProcessLookupError(f"no process {pid}") from None
    for target in targets:
        os.kill(target, signal.SIGHUP)
    return targets
