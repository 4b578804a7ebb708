"""Servers compared side by side: the figure `make bench` trusts for a difference of a few per cent.

Measured as separate runs seconds apart, two servers differ by less than this shared host moves
between the runs: whole rounds swung by ±20 %, and so did adjacent 3 s windows, the ceiling's own
CPU per request going from 28 to 50 µs. So the servers compared share the server core at the same
time, each loaded by its own wrk: whatever the host does, it does to all of them. Each one's CPU per
request, read from its threads' schedstat over a window and the shipping of that window's rows,
gives its throughput on a saturated core. A process's memory layout moves its speed by a few per
cent too, so the windows are spread over sessions, each with freshly started servers.

    python bench/paired.py CHECKOUT ...   # the ceiling, this checkout and each CHECKOUT's .venv, side by side
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bench and tests are importable

from bench import load
from tests.support.servers import BIN, LOOPBACK, Process, Weed, free_port, service_env

SESSIONS = int(os.environ.get("BENCH_PAIRED_SESSIONS", "4"))
WINDOWS = int(os.environ.get("BENCH_PAIRED_WINDOWS", "5"))  # per session
WINDOW_SECONDS = int(os.environ.get("BENCH_PAIRED_SECONDS", "5"))
AUDIT_BUCKET = "bench-audit"


@dataclass
class Server:
    """One server of a comparison: its command line for a port, its environment, and the audit spool
    whose shipping counts as part of its windows (None: it keeps no records)."""

    argv: Callable[[int], list[str]]
    env: dict[str, str]
    spool: Path | None = None


def ceiling() -> Server:
    """The ceiling: the same stack and uvicorn settings as botscore, none of its code."""
    return Server(lambda port: load.ceiling_argv(BIN / "python", LOOPBACK, port), dict(os.environ))


def botscore(command: Path, weed: Weed, spool: Path, **settings: str | int) -> Server:
    """`botscore serve --workers 1` from `command`, shipping to AUDIT_BUCKET in `weed`; segments seal
    after a second, so a window's rows are shipped a second or two after it."""
    env = service_env(
        spool,
        BOTSCORE_AUDIT_BUCKET=AUDIT_BUCKET,
        BOTSCORE_AUDIT_SEGMENT_MAX_AGE_SECONDS=1,
        **weed.aws_env(),
        **settings,
    )
    return Server(
        lambda port: [str(command), "serve", "--host", LOOPBACK, "--port", str(port), "--workers", "1"], env, spool
    )


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval holding the median with at least `confidence`: the order statistics
    k and n + 1 - k, k the largest with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2."""
    ordered = sorted(values)
    n = len(ordered)
    tail, k = 0.0, 0
    while k < n // 2:
        tail += math.comb(n, k) / 2**n  # P(Binomial(n, 1/2) = k)
        if tail > (1 - confidence) / 2:
            break
        k += 1
    if k == 0:
        return -math.inf, math.inf  # too few values for any interval at this confidence
    return ordered[k - 1], ordered[n - k]


@dataclass
class Paired:
    """Each server's req/s and CPU µs a request (shipping included) in each window, sessions one after another."""

    throughput: dict[str, list[float]]
    cpu_us: dict[str, list[float]]

    def ratios(self, name: str, base: str = "ceiling") -> list[float]:
        """`name`'s throughput on a saturated core against `base`'s, in each window: the inverse ratio of
        their CPU per request, measured over the same seconds of the same core."""
        return [b / x for b, x in zip(self.cpu_us[base], self.cpu_us[name], strict=True)]

    def summary(self, name: str, base: str) -> str:
        """`name` against `base`: the median of the per-window ratios and its 95 % interval."""
        ratios = self.ratios(name, base)
        low, high = median_interval(ratios)
        return f"{statistics.median(ratios):.3f}x ({low:.3f} to {high:.3f})"


def _drained(spool: Path, timeout: float = 120) -> None:
    """Wait until a server's spool holds no record (all shipped): read from its folder, for a scrape of
    /metrics would cost the server more CPU than the rows of a window take to ship."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [
            path
            for path in spool.glob("workers/*/*/*")
            if path.parent.name in ("active", "sealed") and path.stat().st_size > 0
        ]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{spool}: records not shipped within {timeout} s")


def measure(servers: dict[str, Server], tmp: Path, label: str) -> Paired:
    """SESSIONS sessions of WINDOWS windows with `servers` side by side; `label` names the progress lines."""
    throughput: dict[str, list[float]] = {name: [] for name in servers}
    cpu_us: dict[str, list[float]] = {name: [] for name in servers}
    for session in range(1, SESSIONS + 1):
        running: dict[str, tuple[Process, str]] = {}
        try:
            for name, server in servers.items():
                port = free_port()
                url = f"http://{LOOPBACK}:{port}/bot-score"
                process, _ = load.start(server.argv(port), server.env, url, tmp / f"{label}-{name}-{session}.log")
                running[name] = process, url
            urls = [url for _, url in running.values()]
            load.wrk_all(urls, WINDOW_SECONDS)  # warm-up, not counted
            for window in range(1, WINDOWS + 1):
                before = {name: load.run_seconds(process.pid) for name, (process, _) in running.items()}
                figures = dict(zip(servers, load.wrk_all(urls, WINDOW_SECONDS), strict=True))
                for server in servers.values():
                    if server.spool is not None:
                        _drained(server.spool)  # shipping a window's rows is part of its cost
                for name, (process, _) in running.items():
                    rate, answered = figures[name]
                    throughput[name].append(rate)
                    cpu_us[name].append((load.run_seconds(process.pid) - before[name]) / answered * 1e6)
                print(
                    f"{label} {session}.{window}: "
                    + " | ".join(
                        f"{name} {throughput[name][-1]:,.0f} req/s {cpu_us[name][-1]:.2f} µs" for name in servers
                    ),
                    flush=True,
                )
        finally:
            for process, _ in running.values():
                process.stop(signal.SIGTERM)
    return Paired(throughput, cpu_us)


def against_table(paired: Paired, checkouts: list[Path]) -> str:
    """This checkout and `checkouts` side by side: the table `make bench` adds with BENCH_AGAINST."""
    names = ["this", *(path.name for path in checkouts)]
    lines = [
        f"## Side by side: this checkout and {', '.join(map(str, checkouts))}\n",
        f"The ceiling and each checkout's `botscore serve` sharing core {load.SERVER_CORE} at the same time "
        f"(bench/paired.py): {SESSIONS} sessions of freshly started servers, {WINDOWS} windows of "
        f"{WINDOW_SECONDS} s each. Throughput on a saturated core from each one's CPU per request, "
        "shipping included; medians over the windows, 95 % intervals for the medians.\n",
        "| server | CPU per request (µs) | throughput to the ceiling's | to this checkout's |",
        "| --- | --- | --- | --- |",
        f"| ceiling | {statistics.median(paired.cpu_us['ceiling']):.2f} | 1.000x | - |",
        *(
            f"| {name} | {statistics.median(paired.cpu_us[name]):.2f} | {paired.summary(name, 'ceiling')} | "
            + ("1.000x |" if name == "this" else f"{paired.summary(name, 'this')} |")
            for name in names
        ),
    ]
    return "\n".join(lines) + "\n"


def compare(checkouts: list[Path], weed: Weed, tmp: Path) -> Paired:
    """The ceiling, this checkout (as make bench serves it) and each of `checkouts` (its own .venv)."""
    servers = {"ceiling": ceiling(), "this": botscore(load.SERVE, weed, tmp / "audit-paired-this")}
    for path in checkouts:
        servers[path.name] = botscore(path / ".venv" / "bin" / "botscore", weed, tmp / f"audit-paired-{path.name}")
    return measure(servers, tmp, "side by side")


def started_weed(tmp: Path) -> Weed:
    """A SeaweedFS on the load core with the audit bucket, for a measurement run alone."""
    weed = Weed(tmp).start()
    assert weed.process is not None
    subprocess.run(["taskset", "-a", "-cp", load.LOAD_CORE, str(weed.process.pid)], check=True, capture_output=True)
    weed.client().create_bucket(Bucket=AUDIT_BUCKET)
    return weed


def main() -> None:
    checkouts = [Path(arg).resolve() for arg in sys.argv[1:]]
    tmp = Path(tempfile.mkdtemp(prefix="botscore-paired-"))
    weed = started_weed(tmp)
    try:
        print(against_table(compare(checkouts, weed, tmp), checkouts))
    finally:
        weed.stop()


if __name__ == "__main__":
    main()
