"""Model reload without downtime: on SIGHUP, load the artifact again and swap it in.

The artifact is read and validated in a thread (a file or an S3 object; the event loop keeps
serving meanwhile), then `model.scorer` is replaced in one assignment. Each request reads
`model.scorer` once when it starts, so requests in flight finish on the model they started
with and later ones get the new one. A broken artifact is logged and the old model keeps
serving. SIGHUPs that arrive during a reload are folded into one more reload after it, so the
last signal always sees the file as it was when it was sent.

Each process handles its own SIGHUP. With `botscore serve --workers N`, uvicorn's parent
process answers SIGHUP by replacing its workers one by one (a broken artifact aborts that and
the old workers keep serving), and a client reusing a keep-alive connection to a retiring
worker may see it closed; `botscore reload --pid PARENT` (`signal_workers`) signals each worker
instead, which swaps the model in place with no failed request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

from app import artifact
from app.api import ModelSlot
from app.scoring import Scorer

log = logging.getLogger("botscore.reload")


class Reloader:
    """Reloads `model_path` into `model`, one reload at a time."""

    def __init__(self, model: ModelSlot, model_path: str, loop: asyncio.AbstractEventLoop) -> None:
        self.model = model
        self.model_path = model_path
        self.loop = loop
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        """Start a reload, or queue one more if a reload is running (called on the event loop)."""
        if self._task is not None and not self._task.done():
            self._again = True
            log.info("model reload queued behind the running one", extra=self._context())
            return
        self._task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            await self.reload()
            if not self._again:
                return

    async def reload(self) -> bool:
        """Load, validate and swap in the artifact; True if the model now serving is the one on disk."""
        old = self.model.scorer.version
        log.info("model reload started", extra=self._context(serving_version=old))
        try:
            loaded = await self.loop.run_in_executor(None, artifact.load, self.model_path)
        except artifact.ArtifactError as exc:
            log.error(
                "model reload failed; still serving the old model",
                extra=self._context(serving_version=old, reason=str(exc)),
            )
            return False
        except Exception as exc:  # anything unforeseen must not take the old model down either
            log.exception(
                "model reload failed; still serving the old model",
                extra=self._context(serving_version=old, reason=f"{type(exc).__name__}: {exc}"),
            )
            return False
        if loaded.version == old:
            log.info("model reload found the same model", extra=self._context(serving_version=old))
            return True
        self.model.scorer = Scorer(loaded)
        log.info("model reloaded", extra=self._context(old_version=old, serving_version=loaded.version))
        return True

    def _context(self, **fields: object) -> dict[str, object]:
        return {"model_path": self.model_path, "pid": os.getpid(), **fields}


def install(model: ModelSlot, model_path: str, loop: asyncio.AbstractEventLoop) -> Reloader | None:
    """Reload `model_path` into `model` on SIGHUP; None where signals cannot be handled (not the main thread)."""
    reloader = Reloader(model, model_path, loop)
    if threading.current_thread() is not threading.main_thread():
        log.debug("SIGHUP reload not installed: the event loop is not in the main thread")
        return None
    try:
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        log.warning("SIGHUP reload not installed", extra={"reason": str(exc)})
        return None
    return reloader


def worker_pids(parent: int, proc: Path = Path("/proc")) -> list[int]:
    """uvicorn's worker processes under `parent` (children started by multiprocessing's spawn), Linux only.

    Other children, such as multiprocessing's resource tracker, are left out: SIGHUP would kill them.
    """
    workers = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state": comm may hold spaces
        if ppid == parent and b"spawn_main" in cmdline:
            workers.append(int(entry.name))
    return sorted(workers)


def serve_pid(proc: Path = Path("/proc")) -> int | None:
    """The oldest `botscore serve` process on this machine (container), or None. Linux only."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            started = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            continue
        if b"serve" in argv and any(part.endswith(b"botscore") for part in argv):
            found.append((started, int(entry.name)))
    return min(found)[1] if found else None


def signal_workers(pid: int) -> list[int]:
    """Send SIGHUP to each worker of the `botscore serve` process `pid`, or to `pid` itself if it has none."""
    targets = worker_pids(pid) or [pid]
    for target in targets:
        os.kill(target, signal.SIGHUP)
    return targets
