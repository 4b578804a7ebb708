"""Group commit under fsync latency: BOTSCORE_AUDIT_SYNC=always with every fsync made slower by strace.

    strace -f --seccomp-bpf -e trace=fsync,fdatasync \\
        -e inject=fsync:delay_enter=D -e inject=fdatasync:delay_enter=D -- botscore serve ...

delays each fsync of `botscore serve` (one worker, pinned to core 0, spool in a temp dir, segments
kept in its local folder) by D microseconds before it runs, as a network file system's commit does
(EFS: about 5 ms). wrk, 16 connections, on core 1, BENCH_SECONDS (10) per run, BENCH_ROUNDS (3)
rounds alternating codes and delays; medians. For each delay (BENCH_DELAYS_MS: 0, 2 and 5 ms; 0
runs under strace too, without a delay): requests per fsync (the service's own
botscore_audit_fsync_seconds_count over wrk's requests), req/s and wrk's p99. BENCH_AGAINST=DIR
measures the code in DIR/src too (e.g. `git archive a180ad7 src | tar -x -C DIR`).

    .venv/bin/python bench/group_commit.py    # prints a Markdown table for docs/group-commit.md
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import BIN, LOOPBACK, Process, free_port, service_env  # noqa: E402

DELAYS_MS = [int(ms) for ms in os.environ.get("BENCH_DELAYS_MS", "0,2,5").split(",")]
CONNECTIONS = 16
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
AGAINST = Path(os.environ["BENCH_AGAINST"]) if os.environ.get("BENCH_AGAINST") else None
SERVER_CORE, LOAD_CORE = "0", "1"


def fsyncs(url: str) -> float:
    """The service's own count of spool fsyncs so far (its workers flush counts every 0.25 s)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    match = re.search(r"^botscore_audit_fsync_seconds_count (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _find(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"wrk's output has no {pattern!r}:\n{text}")
    return match


def _wrk(url: str) -> tuple[int, float, float, int]:
    """Requests, req/s, p99 (ms) and non-2xx answers of one wrk run."""
    wrk = ["taskset", "-c", LOAD_CORE, "wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency"]
    out = subprocess.run(
        [*wrk, "-s", str(ROOT / "bench" / "post.lua"), url + "/bot-score"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(_find(r"(\d+) requests in", out).group(1))
    rate = float(_find(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = _find(r"(?m)^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, rate, p99, int(errors.group(1)) if errors else 0


def measure(delay_ms: int, tmp: Path, src: Path | None) -> dict[str, float]:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    env = service_env(tmp / f"spool-{delay_ms}-{port}", audit_sync="always")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    inject = [f"-e inject={call}:delay_enter={delay_ms * 1000}" for call in ("fsync", "fdatasync")] if delay_ms else []
    argv = ["taskset", "-c", SERVER_CORE, "strace", "-f", "--seccomp-bpf", "-o", "/dev/null"]
    argv += ["-e", "trace=fsync,fdatasync", *" ".join(inject).split()]
    argv += ["--", str(BIN / "botscore"), "serve", "--host", LOOPBACK, "--port", str(port)]
    process = Process(argv, env=env, log=tmp / f"service-{port}.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready; see {process.log}")
            time.sleep(0.1)
        time.sleep(0.5)
        before = fsyncs(url)
        requests, rate, p99, errors = _wrk(url)
        time.sleep(0.5)  # the worker flushes its counts every 0.25 s
        synced = fsyncs(url) - before
    finally:
        # SIGTERM to the server itself (strace would only detach); strace exits with it.
        for child in psutil.Process(process.pid).children():
            child.terminate()
        process.stop()
    return {"requests": requests, "rate": rate, "p99": p99, "errors": errors, "per_fsync": requests / max(synced, 1)}


def main() -> None:
    for tool in ("wrk", "strace", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (apt-get install wrk strace)")
    codes = [("this", None)] + ([("against", AGAINST / "src")] if AGAINST else [])
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="botscore-group-commit-") as folder:
        for _ in range(ROUNDS):  # rounds alternate the codes and delays: the neighbours' noise hits all alike
            for delay in DELAYS_MS:
                for name, src in codes:
                    figures = measure(delay, Path(folder), src)
                    print(f"{name} {delay} ms: {figures}", file=sys.stderr)
                    runs.setdefault((name, delay), []).append(figures)
    print(f"Medians of {ROUNDS} rounds, wrk {CONNECTIONS} connections, {SECONDS} s per run.\n")
    print("| code | fsync delay (ms) | requests per fsync | req/s | p99 (ms) | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (name, delay), figures in sorted(runs.items(), key=lambda item: (item[0][1], item[0][0] != "this")):

        def median(key: str, figures: list[dict[str, float]] = figures) -> float:
            return statistics.median(f[key] for f in figures)

        print(
            f"| {name} | {delay} | {median('per_fsync'):.1f} | {median('rate'):,.0f} | {median('p99'):.1f} | "
            f"{sum(f['errors'] for f in figures):.0f} |"
        )


if __name__ == "__main__":
    main()
