"""The one way botscore's code leaves the event loop for work that blocks.

`daemon` starts a named daemon thread for work that runs long or may hang on storage: sealing
segments, shipping them, the spool's heartbeat and housekeeping, reading the keys file. A daemon, so
that a call stuck on a dead file server never holds the process's exit (shutdown has its deadlines).
`off_loop` awaits one blocking call from the event loop, run in the loop's default executor: a poll
of the model registry, loading a model, closing the audit log. Two pools stay their own, because
they bound how many run at once: the fsync rounds of audit/sync.py and the one peer scan of
audit/health.py; and the keys watcher (http/auth.py) is a thread of its own that a SIGHUP pokes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


def daemon(target: Callable[[], object], name: str) -> threading.Thread:
    """`target` running in a new daemon thread called `name` (started)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


async def off_loop(call: Callable[..., _T], *args: Any) -> _T:
    """`call(*args)` in a thread, awaited: the event loop goes on serving meanwhile."""
    return await asyncio.to_thread(call, *args)
