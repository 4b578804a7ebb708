"""The one way botscore's code leaves the event loop for work that blocks.

`daemon` starts a named daemon thread for work that runs long or may hang on storage: sealing
segments, shipping them, the spool's heartbeat and housekeeping, reading the keys file. A daemon, so
that a call stuck on a dead file server never holds the process's exit (shutdown has its deadlines).
`off_loop` awaits one blocking call from the event loop, run in the loop's default executor: a poll
of the model registry, loading a model, closing the audit log. `Workers` is a fixed number of daemon
threads whose calls are awaited from the loop, for calls that must be bounded in number and cheap to
hand over: the fsync rounds of audit/sync.py (one a request at low load). The one peer scan of
audit/health.py keeps its own one-thread pool, and the keys watcher (http/auth.py) is a thread of its
own that a SIGHUP pokes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_STOP = object()  # put once per thread by Workers.close: that thread ends


def daemon(target: Callable[[], object], name: str) -> threading.Thread:
    """`target` running in a new daemon thread called `name` (started)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


async def off_loop(call: Callable[..., _T], *args: Any) -> _T:
    """`call(*args)` in a thread, awaited: the event loop goes on serving meanwhile."""
    return await asyncio.to_thread(call, *args)


class Workers:
    """`size` daemon threads called `name`, started on first use, that run blocking calls handed from
    the event loop; `run` returns an asyncio future of the call's result, one round trip.

    By hand, not loop.run_in_executor: that hand-off (a concurrent Future and its Condition, a work
    item, a second future chained to the first) measured 119,000 instructions a round trip under
    callgrind and this one 25,000 (a SimpleQueue, one call_soon_threadsafe; bench/handoff.py), and
    `always` makes a round trip per request at low load. And these threads are daemons: an fsync hung
    on a dead file server never holds the process's exit, where ThreadPoolExecutor joins its threads
    at exit."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError(f"Workers needs at least one thread, not {size}")
        self.size = size
        self.name = name
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def run(self, call: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """`call(*args)` in one of the threads (event loop)."""
        if not self._threads:
            self._threads = [
                daemon(functools.partial(self._serve, self._calls), f"{self.name}-{n}") for n in range(self.size)
            ]
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._calls.put((future, call, args))
        return future

    def close(self) -> None:
        """Let the threads end once the calls handed to them return (a call hung in the kernel is not
        waited for). A `run` after it starts new threads on a new queue: none of them takes a stop
        meant for an old one still in its call."""
        calls, threads = self._calls, self._threads
        self._calls, self._threads = queue.SimpleQueue(), []
        for _ in threads:
            calls.put(_STOP)

    @staticmethod
    def _serve(calls: queue.SimpleQueue[Any]) -> None:
        while (item := calls.get()) is not _STOP:
            future, call, args = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = call(*args)
            except BaseException as exc:  # handed to the awaiting task, like an executor's
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown): nobody waits
                future.get_loop().call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
