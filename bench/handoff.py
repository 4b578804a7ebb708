"""Instructions a round trip from the event loop to a thread and back: loop.run_in_executor against
ops/threads.Workers, the hand-off each fsync round of BOTSCORE_AUDIT_SYNC=always makes.

Under callgrind, on uvloop as `botscore serve` runs: N awaited calls of a function that returns at
once, after a warm-up, counted from the counters zeroed to their dump; every instruction of the
process meanwhile (the loop, its wake-ups, the threads) divided by N.

    python bench/handoff.py    # prints both
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.instructions import callgrind_control, first_dump  # noqa: E402

CALLS = 2000
WARMUP = 200
WAYS = ("run_in_executor", "Workers")


def _nothing() -> int:
    return 1


async def _calls(way: str) -> None:
    """In the measured process: CALLS round trips the chosen way, counted alone."""
    from botscore.ops.threads import Workers

    loop = asyncio.get_running_loop()
    run: Callable[[], Awaitable[int]]
    if way == "Workers":
        workers = Workers(4, "handoff")
        run = lambda: workers.run(_nothing)  # noqa: E731
    else:
        pool = ThreadPoolExecutor(4)
        run = lambda: loop.run_in_executor(pool, _nothing)  # noqa: E731
    for _ in range(WARMUP):
        await run()
    callgrind_control(os.getpid(), "-z")
    for _ in range(CALLS):
        await run()
    callgrind_control(os.getpid(), "-d")


def measure(way: str) -> float:
    """Instructions a round trip, `way` one of WAYS."""
    tmp = Path(tempfile.mkdtemp(prefix="botscore-handoff-"))
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out.%p", sys.executable, __file__, way]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return first_dump(tmp) / CALLS  # what the CALLS round trips cost


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in WAYS:
        uvloop.run(_calls(sys.argv[1]))
        return
    for way in WAYS:
        print(f"{way}: {measure(way):,.0f} instructions a round trip", flush=True)


if __name__ == "__main__":
    main()
