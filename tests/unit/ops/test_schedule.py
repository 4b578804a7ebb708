"""The one schedule of a worker's periodic jobs."""

from __future__ import annotations

import asyncio

from botscore.ops.schedule import Schedule


def test_a_job_more_frequent_than_the_tick_runs_at_its_own_period() -> None:
    """BOTSCORE_AUDIT_SYNC_INTERVAL_MS goes down to 10 ms, under the 250 ms tick: its fsync job must not
    wait for the tick (at most its interval is lost)."""
    runs: list[float] = []

    async def main() -> None:
        schedule = Schedule(0.25)
        schedule.every(0.02, "often", lambda: runs.append(asyncio.get_running_loop().time()))
        schedule.start()
        await asyncio.sleep(0.6)
        await schedule.stop()

    asyncio.run(main())
    assert len(runs) >= 10, runs  # about 30; a job held to the tick would run twice


def test_a_coroutine_job_is_not_started_again_while_it_runs_and_a_failing_job_stops_no_other() -> None:
    running: list[int] = []
    most = 0
    ticks: list[int] = []

    async def slow() -> None:
        nonlocal most
        running.append(1)
        most = max(most, len(running))
        await asyncio.sleep(0.1)  # five of its periods
        running.pop()

    def broken() -> None:
        raise RuntimeError("a job's failure")

    async def main() -> None:
        schedule = Schedule(0.05)
        schedule.every(0.02, "slow", slow)
        schedule.every(0.02, "broken", broken)
        schedule.every(0.02, "counted", lambda: ticks.append(1))
        schedule.start()
        await asyncio.sleep(0.4)
        await schedule.stop()

    asyncio.run(main())
    assert most == 1
    assert len(ticks) >= 5
