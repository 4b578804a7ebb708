"""Workers: the fsync rounds' threads, each call awaited from the event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from botscore.ops.threads import Workers


def test_a_call_returns_its_result_and_raises_its_error_in_the_awaiting_task() -> None:
    def fail() -> None:
        raise OSError(5, "Input/output error")

    async def main() -> tuple[str, str]:
        workers = Workers(2, "test")
        try:
            name = await workers.run(lambda: threading.current_thread().name)
            with pytest.raises(OSError, match="Input/output error"):
                await workers.run(fail)
            return name, await workers.run(str.upper, "ok")
        finally:
            workers.close()

    name, result = asyncio.run(main())
    assert name.startswith("test-")
    assert result == "OK"


def test_calls_run_side_by_side_up_to_the_size() -> None:
    barrier = threading.Barrier(3, timeout=5)  # three calls meet only if three threads run them at once

    async def main() -> list[int]:
        workers = Workers(3, "test")
        try:
            return list(await asyncio.gather(*(workers.run(barrier.wait) for _ in range(3))))
        finally:
            workers.close()

    assert sorted(asyncio.run(main())) == [0, 1, 2]


def test_after_close_the_calls_handed_over_still_run_and_a_new_call_gets_new_threads() -> None:
    release = threading.Event()

    async def main() -> tuple[bool, str]:
        workers = Workers(1, "test")
        first = workers.run(release.wait, 5)  # its thread is busy when close() comes
        workers.close()
        second = workers.run(lambda: threading.current_thread().name)
        name = await asyncio.wait_for(second, 5)  # not stuck behind the old thread's stop
        release.set()
        done = await asyncio.wait_for(first, 5)
        workers.close()
        return done, name

    done, name = asyncio.run(main())
    assert done is True
    assert name.startswith("test-")


def test_a_pool_of_no_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        Workers(0, "test")


def test_a_call_hung_in_a_thread_does_not_hold_the_process_exit() -> None:
    """An fsync hung on a dead file server: the process still exits (ThreadPoolExecutor's threads
    are joined at exit, these are daemons)."""
    script = """
import asyncio, threading
from botscore.ops.threads import Workers
async def main():
    workers = Workers(1, "test")
    workers.run(threading.Event().wait)  # never returns
    await asyncio.sleep(0.2)
    workers.close()
asyncio.run(main())
print("exited")
"""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exited"
    assert time.monotonic() - started < 20
