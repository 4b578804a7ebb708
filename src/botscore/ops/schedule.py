"""The periodic work of one worker's event loop, on one schedule owned by one object.

Jobs are plain callables run every `seconds` on a single timer (a timer per job, or per
request, costs more and scatters who owns what); a coroutine job (an fsync that takes as long
as the disk takes) runs as a task of its own and is not started again while it runs. A job's
failure is logged and the schedule goes on: one job must not end the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("botscore.schedule")


@dataclass
class _Job:
    name: str
    seconds: float
    run: Callable[[], Any]
    due: float = 0.0
    task: asyncio.Task[Any] | None = field(default=None, repr=False)


class Schedule:
    """Every periodic job of a worker: `every` adds one, `start` runs them all on one timer."""

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self._jobs: list[_Job] = []
        self._timer: asyncio.Task[None] | None = None

    def every(self, seconds: float, name: str, run: Callable[[], Any]) -> None:
        """Run `run` every `seconds`, first one period after it was added (a coroutine job that is still
        running when it is due again: once it ends, within a tick)."""
        self._jobs.append(_Job(name, seconds, run, time.monotonic() + seconds))

    def poke(self, name: str) -> None:
        """Run the job `name` at the next tick rather than at its period (SIGHUP: check the registry now)."""
        for job in self._jobs:
            if job.name == name:
                job.due = 0.0

    def jobs(self) -> list[tuple[str, float]]:
        """The jobs and their periods, as scheduled."""
        return [(job.name, job.seconds) for job in self._jobs]

    def start(self) -> None:
        """Start the timer on the running event loop."""
        self._timer = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the timer and every job still running."""
        tasks = [task for task in (self._timer, *(job.task for job in self._jobs)) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            wake = now + self.tick  # at the latest: a running job's end and a poke are seen within a tick
            for job in self._jobs:
                if job.task is None or job.task.done():
                    if now >= job.due:
                        job.due = now + job.seconds
                        self._start(job)
                    wake = min(wake, job.due)
            await asyncio.sleep(wake - now)

    def _start(self, job: _Job) -> None:
        try:
            result = job.run()
            if inspect.isawaitable(result):
                job.task = asyncio.ensure_future(result)
                job.task.add_done_callback(functools.partial(_report, job.name))
        except Exception:
            log.exception("periodic job failed; it runs again at its next period", extra={"job": job.name})


def _report(name: str, task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        log.error("periodic job failed; it runs again at its next period", extra={"job": name}, exc_info=error)
