"""Servers under load for the benchmarks: one pinned to its core, driven by wrk or hey; its CPU and memory.

The server under test runs on core 0 and the load generators on core 1 (this machine has two), so
the load's own CPU never counts as the server's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import BIN, Process  # noqa: E402

# `botscore serve` as the image runs it: from the runtime-only venv `make bench` builds, when there is one.
SERVE = ROOT / ".venv-runtime" / "bin" / "botscore"
if not SERVE.exists():
    SERVE = BIN / "botscore"

SERVER_CORE, LOAD_CORE = "0", "1"
BODY = '{"x1": 0.1, "x2": 0.2}'


def ceiling_argv(python: Path, host: str, port: int) -> list[str]:
    """The ceiling (bench/ceiling.py): the same stack and uvicorn settings as botscore, none of our code."""
    return [
        str(python),
        "-c",
        "import uvicorn; from bench.ceiling import OPTIONS; "
        f"uvicorn.run('bench.ceiling:app', host='{host}', port={port}, **OPTIONS)",
    ]


def tree(pid: int) -> list[int]:
    """pid and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of pid and its descendants so far (clock-tick resolution, 10 ms)."""
    total = 0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of pid and its descendants, MiB."""
    total = 0
    for member in tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


def start(argv: list[str], env: dict[str, str], url: str, log: Path) -> tuple[Process, float]:
    """`argv` started on the server core, and the seconds until it answered a POST of BODY to `url` with 200."""
    started = time.monotonic()
    process = Process(["taskset", "-c", SERVER_CORE, *argv], env=env, log=log)
    with httpx.Client(timeout=1) as client:
        while time.monotonic() - started < 30:
            try:
                if client.post(url, content=BODY, headers={"content-type": "application/json"}).status_code == 200:
                    return process, time.monotonic() - started
            except httpx.HTTPError:
                time.sleep(0.005)
    raise RuntimeError(f"{argv} did not answer 200 within 30 s; see {log}")


def wrk(url: str, seconds: int, script: Path = ROOT / "bench" / "post.lua") -> tuple[float, int]:
    """Requests/s and requests answered by a server kept busy by 32 connections for `seconds`."""
    (figures,) = wrk_all([url], seconds, script)
    return figures


def wrk_all(urls: list[str], seconds: int, script: Path = ROOT / "bench" / "post.lua") -> list[tuple[float, int]]:
    """`wrk` on each of `urls` at once (32 connections each): requests/s and requests answered, in order."""
    runs = [
        subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    figures = []
    for run in runs:
        out, err = run.communicate()
        if run.returncode:
            raise RuntimeError(f"wrk failed ({run.returncode}): {err}")
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise RuntimeError(f"wrk saw {errors.group(1)} non-2xx responses:\n{out}")
        answered = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        figures.append((float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), answered))  # type: ignore[union-attr]
    return figures


def run_seconds(pid: int) -> float:
    """Time pid and its descendants' threads have run on a CPU so far, to the nanosecond (schedstat):
    clock ticks (cpu_seconds) are too coarse for a few seconds shared by three servers."""
    total = 0
    for member in tree(pid):
        for task in Path(f"/proc/{member}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # the thread ended meanwhile
    return total / 1e9


def hey(url: str, seconds: int, rate: int) -> tuple[float, float, int]:
    """p50 and p99 (ms) and the requests answered, at `rate` requests/s for `seconds`."""
    workers = 10
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(workers),
            "-q",
            str(rate // workers),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-d",
            BODY,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)) * 1000
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)) * 1000
    statuses = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    if set(statuses) != {"200"}:
        raise RuntimeError(f"hey saw statuses {statuses}:\n{out}")
    return p50, p99, int(statuses["200"])
