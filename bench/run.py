"""`make bench`: botscore against the stack's ceiling, alternated in one run, reported as ratios.

The server under test is pinned to core 0, the load generators (wrk, hey) and SeaweedFS to
core 1. Each round measures the ceiling (bench/ceiling.py, same uvicorn settings) and then
botscore shipping its audit log to a local S3; the report gives the raw figures and the
median of the per-round ratios, because this machine's neighbours move the absolute numbers.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load, paired, shadow  # noqa: E402
from bench.load import BODY, LOAD_CORE, SERVER_CORE  # noqa: E402
from tests.support.servers import BIN, LOOPBACK, Process, Weed, free_port, service_env  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# Other checkouts (each with its own .venv, comma-separated) measured in the same rounds, e.g. the last release,
# and side by side with this one after the rounds (bench/paired.py).
AGAINST = [Path(path) for path in os.environ.get("BENCH_AGAINST", "").split(",") if path]
# BENCH_INSTRUCTIONS=1: also instructions per request under callgrind (bench/instructions.py), every checkout.
INSTRUCTIONS = os.environ.get("BENCH_INSTRUCTIONS") == "1"
# BOTSCORE_AUDIT_SYNC modes to measure too, each in every round (e.g. "interval,always").
SYNC_MODES = [mode for mode in os.environ.get("BENCH_SYNC_MODES", "").split(",") if mode]
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
# BENCH_SHADOW=1: also what a shadow model scored beside production costs, measured side by side after the
# rounds (bench/shadow.py, bench/paired.py: BENCH_PAIRED_SESSIONS, BENCH_PAIRED_WINDOWS, BENCH_PAIRED_SECONDS).
SHADOW = os.environ.get("BENCH_SHADOW") == "1"
RATE = 1000  # requests/s for the latency figures
INFER_PATH = "/v2/models/bot-score/infer"


def _instances(n: int) -> list[tuple[float, float]]:
    return [(round(0.1 + 0.017 * i, 6), round(0.2 + 0.013 * i, 6)) for i in range(n)]


def _batch_body(n: int) -> str:
    return json.dumps({"instances": [{"x1": a, "x2": b} for a, b in _instances(n)]})


def _infer_body(n: int) -> str:
    pairs = _instances(n)
    return json.dumps(
        {
            "inputs": [
                {"name": name, "shape": [n], "datatype": "FP64", "data": [pair[k] for pair in pairs]}
                for k, name in enumerate(("x1", "x2"))
            ]
        }
    )


# The scoring routes measured by wrk in every round, each against that round's ceiling: (path, instances, body).
ROUTES = [
    ("/bot-score", 1, BODY),
    ("/bot-score/batch", 1, _batch_body(1)),
    ("/bot-score/batch", 100, _batch_body(100)),
    (INFER_PATH, 1, _infer_body(1)),
    (INFER_PATH, 100, _infer_body(100)),
]
BUCKET = paired.AUDIT_BUCKET
TARGETS = "throughput >= 0.55x ceiling (BOTSCORE_AUDIT_SYNC=always >= 0.40x); p99 at 1,000 req/s <= 2.0x ceiling; RSS <= 80 MiB; first 200 <= 1.0 s; <= 50 S3 objects per million"


@dataclass
class Figures:
    throughput: float = 0.0  # req/s, wrk, 32 connections
    p50_ms: float = 0.0  # at RATE req/s, hey
    p99_ms: float = 0.0
    cpu_us: float = 0.0  # CPU time per request at RATE
    rss_mib: float = 0.0  # after the load, all processes of the server
    first_200_s: float = 0.0  # process start to the first 200
    objects_per_million: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def measure(argv: list[str], env: dict[str, str], url: str, log: Path) -> tuple[Figures, Process]:
    process, first_200 = load.start(argv, env, url, log)
    figures = Figures(first_200_s=first_200)
    figures.throughput, _ = load.wrk(url, SECONDS)
    cpu_before = load.cpu_seconds(process.pid)
    figures.p50_ms, figures.p99_ms, answered = load.hey(url, SECONDS, RATE)
    figures.cpu_us = (load.cpu_seconds(process.pid) - cpu_before) / answered * 1e6
    figures.rss_mib = load.rss_mib(process.pid)
    return figures, process


def _objects_per_million(weed: Weed) -> tuple[float, int, int]:
    objects = records = 0
    for _, body in weed.objects(BUCKET):
        objects += 1
        records += gzip.decompress(body).count(b"\n")
    return objects / records * 1e6, objects, records


def _clear(weed: Weed) -> None:
    client = weed.client()
    for key, _ in list(weed.objects(BUCKET)):
        client.delete_object(Bucket=BUCKET, Key=key)


def main() -> None:
    for tool in ("wrk", "hey", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (make bench installs wrk and hey from Debian)")
    tmp = Path(tempfile.mkdtemp(prefix="botscore-bench-"))
    weed = Weed(tmp).start()
    assert weed.process is not None
    subprocess.run(["taskset", "-a", "-cp", LOAD_CORE, str(weed.process.pid)], check=True, capture_output=True)
    weed.client().create_bucket(Bucket=BUCKET)
    rounds: list[tuple[Figures, Figures]] = []
    against: dict[Path, list[Figures]] = {path: [] for path in AGAINST}
    modes: dict[str, list[Figures]] = {}
    cost: shadow.Cost | None = None
    side_by_side = ""
    try:
        for n in range(1, ROUNDS + 1):
            port = free_port()
            ceiling, process = measure(
                load.ceiling_argv(BIN / "python", LOOPBACK, port),
                dict(os.environ),
                f"http://{LOOPBACK}:{port}/bot-score",
                tmp / f"ceiling-{n}.log",
            )
            process.stop(signal.SIGTERM)

            if n % 2 == 1:  # alternate which goes first
                _measure_against(against, weed, tmp, n)
            project = _botscore(load.SERVE, weed, tmp, f"botscore-{n}", routes=True)
            for mode in SYNC_MODES:
                modes.setdefault(mode, []).append(
                    _botscore(load.SERVE, weed, tmp, f"sync-{mode}-{n}", BOTSCORE_AUDIT_SYNC=mode)
                )
            if n % 2 == 0:
                _measure_against(against, weed, tmp, n)
            rounds.append((ceiling, project))
            print(
                f"round {n}: ceiling {ceiling.throughput:,.0f} req/s p99 {ceiling.p99_ms:.2f} ms | "
                f"botscore {project.throughput:,.0f} req/s p99 {project.p99_ms:.2f} ms"
                + "".join(f" | {path.name} {figures[-1].throughput:,.0f} req/s" for path, figures in against.items()),
                flush=True,
            )
        if AGAINST:
            side_by_side = paired.against_table(paired.compare(AGAINST, weed, tmp), AGAINST)
        if SHADOW:
            cost = shadow.measure_cost(weed, tmp)
    finally:
        weed.stop()
    report = render(rounds)
    if SYNC_MODES:
        report += "\n" + sync_table(rounds, modes)
    if cost is not None:
        report += "\n" + cost.table()
    for path, figures in against.items():
        report += "\n" + compare(rounds, path, figures)
    if side_by_side:
        report += "\n" + side_by_side
    if INSTRUCTIONS:
        report += "\n" + instructions_table()
    print(report)
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "performance.md").write_text(report)


def _botscore(command: Path, weed: Weed, tmp: Path, name: str, *, routes: bool = False, **settings: str) -> Figures:
    """`botscore serve` from `command` measured, shipping to the bench bucket; the bucket emptied after.
    With `routes`, wrk also measures each of ROUTES (figures.extra["route PATH N"], requests/s)."""
    port = free_port()
    env = service_env(tmp / f"audit-{name}", BOTSCORE_AUDIT_BUCKET=BUCKET, **weed.aws_env(), **settings)
    argv = [str(command), "serve", "--host", LOOPBACK, "--port", str(port), "--workers", "1"]
    figures, process = measure(argv, env, f"http://{LOOPBACK}:{port}/bot-score", tmp / f"{name}.log")
    figures.extra.update(_fsyncs_per_request(f"http://{LOOPBACK}:{port}/metrics"))
    for path, instances, body in ROUTES if routes else []:
        if (path, instances) == ("/bot-score", 1):
            figures.extra[_route_key(path, instances)] = figures.throughput  # measured above
            continue
        script = tmp / f"post-{len(body)}.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = {_lua_string(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
        figures.extra[_route_key(path, instances)], _ = load.wrk(f"http://{LOOPBACK}:{port}{path}", SECONDS, script)
    process.stop(signal.SIGTERM)  # seals and ships the rest of the spool
    figures.objects_per_million, objects, records = _objects_per_million(weed)
    figures.extra.update(objects=objects, records=records)
    _clear(weed)
    return figures


def _route_key(path: str, instances: int) -> str:
    return f"route {path} {instances}"


def _lua_string(text: str) -> str:
    """`text` as a Lua long string literal (no escapes to get wrong)."""
    level = "="
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def routes_table(rounds: list[tuple[Figures, Figures]]) -> str:
    """Requests/s and scores/s of each scoring route, each against the ceiling of its round."""
    lines = [
        "## The scoring routes",
        "",
        f"wrk, 32 connections, {SECONDS} s each, in every round after the figures above; a batch or an infer "
        "call of N instances scores N transactions and writes N audit rows. The ratio is requests/s to the "
        "ceiling's (one fixed answer per request), median per round.",
        "",
        "| route | instances per call | requests/s | scores/s | ratio to the ceiling (requests) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path, instances, _ in ROUTES:
        key = _route_key(path, instances)
        rates = [p.extra[key] for _, p in rounds if key in p.extra]
        if not rates:
            continue
        ratio = statistics.median(p.extra[key] / c.throughput for c, p in rounds if key in p.extra)
        rate = statistics.median(rates)
        lines.append(f"| `{path}` | {instances} | {rate:,.0f} | {rate * instances:,.0f} | {ratio:.3f}x |")
    return "\n".join(lines) + "\n"


def _fsyncs_per_request(metrics_url: str) -> dict[str, float]:
    """fsyncs of the spool per request answered, from the service's own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    time.sleep(0.5)  # the workers flush their counts every 0.25 s
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text)
        for sample in family.samples
    }
    fsyncs = samples.get(("botscore_audit_fsync_seconds_count", ()), 0.0)
    requests = sum(v for (name, _), v in samples.items() if name == "botscore_requests_total")
    return {"fsyncs_per_request": fsyncs / requests if requests else 0.0}


def sync_table(rounds: list[tuple[Figures, Figures]], modes: dict[str, list[Figures]]) -> str:
    """Each BOTSCORE_AUDIT_SYNC mode against the ceiling of its round."""
    lines = [
        "## BOTSCORE_AUDIT_SYNC modes",
        "",
        "Each mode measured in every round like the default one (medians over the rounds); fsyncs per",
        "request from the service's `botscore_audit_fsync_seconds_count` over all requests of the run",
        "(wrk's at full speed and hey's at 1,000 req/s).",
        "",
        "CPU per request and fsyncs per request side by side: under `always` on EFS each fsync round is billed as",
        "at least 32 KiB (docs/cost.md prices it), so a change that adds fsyncs shows here as money.",
        "",
        "| mode | req/s | ratio to the ceiling | p99 at 1,000 req/s (ms) | p99 ratio | CPU µs per request "
        "| fsyncs per request |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    verdicts: list[str] = []
    for mode, figures in {"none": [p for _, p in rounds], **modes}.items():
        ratio = statistics.median(f.throughput / c.throughput for (c, _), f in zip(rounds, figures, strict=True))
        if mode == "always":
            verdict = "met" if ratio >= 0.40 else "**missed**"
            verdicts.append(f"- `always` {ratio:.3f}x the ceiling (target 0.40x): {verdict}")
        p99_ratio = statistics.median(f.p99_ms / c.p99_ms for (c, _), f in zip(rounds, figures, strict=True))
        lines.append(
            f"| `{mode}` | {statistics.median(f.throughput for f in figures):,.0f} | {ratio:.3f}x | "
            f"{statistics.median(f.p99_ms for f in figures):.2f} | {p99_ratio:.2f}x | "
            f"{statistics.median(f.cpu_us for f in figures):.0f} | "
            f"{statistics.median(f.extra.get('fsyncs_per_request', 0.0) for f in figures):.4f} |"
        )
    return "\n".join([*lines, "", *verdicts]) + "\n"


def _measure_against(against: dict[Path, list[Figures]], weed: Weed, tmp: Path, n: int) -> None:
    for path, figures in against.items():
        figures.append(_botscore(path / ".venv" / "bin" / "botscore", weed, tmp, f"against-{path.name}-{n}"))


def instructions_table() -> str:
    """Instructions per /bot-score request under callgrind: the ceiling, this checkout and each BENCH_AGAINST,
    with BOTSCORE_AUDIT_SYNC none and always (bench/instructions.py)."""
    from bench import inprocess
    from bench.instructions import measure

    lines = [
        "## Instructions per request (callgrind)",
        "",
        "`valgrind --tool=callgrind`, the server alone (`bench/instructions.py`): one keep-alive connection, "
        "the counters zeroed after a warm-up, then N POSTs of the usual body; every instruction of the process "
        "meanwhile (event loop, audit spool and its threads) divided by N. That count moves with the host's "
        "load (the worker's periodic jobs run by the second, and a slower run charges more of them to each "
        "request: the same code has measured 114,667 and 125,483), so beside it is `bench/inprocess.py`: the "
        "same requests fed to one connection of the same app in process, no socket and no job between them, "
        "which two runs repeat to about 1 % (`none` only).",
        "",
        "| server | `BOTSCORE_AUDIT_SYNC` | instructions per request, served | to the ceiling | in process |",
        "| --- | --- | --- | --- | --- |",
    ]
    ceiling = measure("ceiling")
    lines.append(f"| ceiling (bare ASGI app, plain uvicorn httptools) | - | {ceiling:,.0f} | 1.00x | - |")
    for mode in ("none", "always"):
        os.environ["BOTSCORE_AUDIT_SYNC"] = mode
        try:
            for path in [ROOT, *AGAINST]:
                if mode != "none" and not _knows_sync(path):
                    continue  # a checkout from before BOTSCORE_AUDIT_SYNC
                name = "this checkout" if path == ROOT else f"`{path}`"
                count = measure(str(path))
                local = f"{inprocess.measure(str(path)):,.0f}" if mode == "none" else "-"
                lines.append(f"| {name} | `{mode}` | {count:,.0f} | {count / ceiling:.2f}x | {local} |")
        finally:
            del os.environ["BOTSCORE_AUDIT_SYNC"]
    return "\n".join(lines) + "\n"


def _knows_sync(checkout: Path) -> bool:
    return any("audit_sync" in path.read_text() for path in (checkout / "src").rglob("settings.py"))


def compare(rounds: list[tuple[Figures, Figures]], path: Path, against: list[Figures]) -> str:
    """This checkout and one of BENCH_AGAINST's, each as a ratio to the ceiling of its round."""
    lines = [
        f"## This checkout against {path}",
        "",
        "| round | ceiling req/s | this req/s | ratio | against req/s | ratio | this / against |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, ((ceiling, project), other) in enumerate(zip(rounds, against, strict=True), 1):
        lines.append(
            f"| {n} | {ceiling.throughput:,.0f} | {project.throughput:,.0f} | "
            f"{project.throughput / ceiling.throughput:.3f} | {other.throughput:,.0f} | "
            f"{other.throughput / ceiling.throughput:.3f} | {project.throughput / other.throughput:.3f} |"
        )
    this = statistics.median(p.throughput / c.throughput for c, p in rounds)
    other = statistics.median(o.throughput / c.throughput for (c, _), o in zip(rounds, against, strict=True))
    lines += ["", f"Median ratio to the ceiling: this {this:.3f}x, against {other:.3f}x ({this / other - 1:+.1%})."]
    p99 = statistics.median(p.p99_ms for _, p in rounds), statistics.median(o.p99_ms for o in against)
    rss = max(p.rss_mib for _, p in rounds), max(o.rss_mib for o in against)
    lines.append(
        f"p99 at 1,000 req/s: this {p99[0]:.2f} ms, against {p99[1]:.2f} ms; RSS {rss[0]:.1f} vs {rss[1]:.1f} MiB."
    )
    return "\n".join(lines) + "\n"


def render(rounds: list[tuple[Figures, Figures]]) -> str:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    throughput_ratio = median([p.throughput / c.throughput for c, p in rounds])
    p99_ratio = median([p.p99_ms / c.p99_ms for c, p in rounds])
    p50_ratio = median([p.p50_ms / c.p50_ms for c, p in rounds])
    cpu_ratio = median([p.cpu_us / c.cpu_us for c, p in rounds])
    project = [p for _, p in rounds]
    ceiling = [c for c, _ in rounds]
    rss = max(p.rss_mib for p in project)
    first = max(p.first_200_s for p in project)
    objects = max(p.objects_per_million or 0 for p in project)

    def row(name: str, fmt: str, attr: str) -> str:
        c = median([getattr(f, attr) for f in ceiling])
        p = median([getattr(f, attr) for f in project])
        return f"| {name} | {fmt.format(c)} | {fmt.format(p)} | {p / c:.2f}x |"

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        "# Performance",
        "",
        f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores "
        f"({cpu_model}), Linux {platform.release()}, Python {platform.python_version()}.",
        f"Server pinned to core {SERVER_CORE} (`botscore serve --workers 1` from `{load.SERVE.parent.parent.name}`, "
        f"shipping its audit log to a local SeaweedFS S3); wrk, hey and SeaweedFS pinned to core {LOAD_CORE}. {ROUNDS} rounds, each measuring the "
        "ceiling (a bare ASGI app, `bench/ceiling.py`, run by plain uvicorn with httptools and the other options "
        "of `botscore serve`, `bench.ceiling.OPTIONS`: none of the project's code, its protocol class neither) "
        "and then botscore; "
        "medians of the raw figures, and the median of the per-round ratios.",
        "",
        "Command: `"
        + " ".join(f"{name}={value}" for name, value in sorted(os.environ.items()) if name.startswith("BENCH_"))
        + " make bench` (this host is shared with other work: compare ratios within one run, not across runs).",
        "",
        "| figure | ceiling | botscore | ratio (median per round) |",
        "| --- | --- | --- | --- |",
        row(f"throughput, wrk 32 connections, {SECONDS} s (req/s)", "{:,.0f}", "throughput").rsplit("|", 2)[0]
        + f"| {throughput_ratio:.2f}x |",
        row(f"p50 at {RATE:,} req/s, hey (ms)", "{:.2f}", "p50_ms").rsplit("|", 2)[0] + f"| {p50_ratio:.2f}x |",
        row(f"p99 at {RATE:,} req/s, hey (ms)", "{:.2f}", "p99_ms").rsplit("|", 2)[0] + f"| {p99_ratio:.2f}x |",
        row(f"CPU per request at {RATE:,} req/s (µs)", "{:.0f}", "cpu_us").rsplit("|", 2)[0] + f"| {cpu_ratio:.2f}x |",
        row("RSS after the load, all processes (MiB)", "{:.1f}", "rss_mib"),
        row("process start to first 200 (s)", "{:.2f}", "first_200_s"),
        f"| S3 objects per million requests (default 8 MiB / 60 s segments) | - | {objects:.1f} | - |",
        "",
        "Per round:",
        "",
        "| round | ceiling req/s | botscore req/s | ratio | ceiling p99 ms | botscore p99 ms | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, (c, p) in enumerate(rounds, 1):
        lines.append(
            f"| {n} | {c.throughput:,.0f} | {p.throughput:,.0f} | {p.throughput / c.throughput:.2f} | "
            f"{c.p99_ms:.2f} | {p.p99_ms:.2f} | {p.p99_ms / c.p99_ms:.2f} |"
        )
    lines += [
        "",
        f"Targets: {TARGETS}.",
        "",
        f"- throughput {throughput_ratio:.2f}x the ceiling: {verdict(throughput_ratio >= 0.55)}",
        f"- p99 at {RATE:,} req/s {p99_ratio:.2f}x the ceiling's: {verdict(p99_ratio <= 2.0)}",
        f"- RSS {rss:.1f} MiB (worst round): {verdict(rss <= 80)}",
        f"- first 200 after {first:.2f} s (worst round): {verdict(first <= 1.0)}",
        f"- {objects:.1f} S3 objects per million requests: {verdict(objects <= 50)}",
        "",
        routes_table(rounds),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
