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
instead (`botscore.ops.processes`), which swaps the model in place with no failed request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable

from botscore.model import artifact
from botscore.model.scorer import ModelSlot, Scorer
from botscore.ops.threads import off_loop

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
            loaded = await off_loop(artifact.load, self.model_path)
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
        self.model.swap(Scorer(loaded), **self._context())
        return True

    def _context(self, **fields: object) -> dict[str, object]:
        return {"model_path": self.model_path, "pid": os.getpid(), **fields}


def install(
    model: ModelSlot,
    model_path: str | None,
    loop: asyncio.AbstractEventLoop,
    *,
    also: Callable[[], object] = lambda: None,
) -> Reloader | None:
    """Reload `model_path` into `model` on SIGHUP, and call `also` (the API keys' reload; with a model
    registry, `model_path` is None and `also` pokes the registry follower); None where signals cannot be
    handled (not the main thread)."""
    reloader = Reloader(model, model_path, loop) if model_path is not None else None

    def on_sighup() -> None:
        also()
        if reloader is not None:
            reloader.request()

    if threading.current_thread() is not threading.main_thread():
        log.debug("SIGHUP reload not installed: the event loop is not in the main thread")
        return None
    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        log.warning("SIGHUP reload not installed", extra={"reason": str(exc)})
        return None
    return reloader
