"""`make capacity`: how many requests a Fargate-sized task takes while p99 stays under two limits.

For each task size (CAPACITY_SIZES, vCPU x workers, default 0.25x1, 0.5x1, 1x1 and 1x2),
`botscore serve` runs in a cgroup limited like the task (bench/cgroup.py: a CFS quota per
100 ms period, Fargate's smallest memory for that CPU), pinned to core 0, with its audit log on
(BOTSCORE_AUDIT_SYNC as the Terraform default, `always`, unless set) and every fsync as slow as
an EFS commit (bench/efs.py: the latency model and its source), shipping to a SeaweedFS started
here. bench/openloop.py drives it at fixed rates from core 1 (open loop, latency from each
request's due time), CAPACITY_SECONDS measured after CAPACITY_WARMUP seconds at the same rate.
bench/search.py picks the rates: the highest rate whose p99 stays under each of
CAPACITY_LIMITS_MS (default 50 and 200 ms), with every request answered 200. The search runs
CAPACITY_RUNS times (default 3) per size, interleaved, each on a fresh task; a size's capacity
is the median of its runs. Then the overload (twice the 200 ms rate) and the bare ASGI app
(bench/ceiling.py) in the same cgroup at the same rate. Writes docs/capacity.md and
docs/capacity.json.

Every BOTSCORE_* variable in the environment reaches the service (e.g. BOTSCORE_MAX_IN_FLIGHT),
except those this tool sets: the audit folder and bucket, host, port and workers.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import efs  # noqa: E402
from bench.cgroup import CpuUsage, TaskCgroup  # noqa: E402
from bench.group_commit import fsyncs as spool_fsyncs  # noqa: E402
from bench.search import Trial, capacity, next_rate  # noqa: E402
from bench.sizing import Size, in_flight_bound, suggest  # noqa: E402
from tests.support.servers import BIN, LOOPBACK, Process, Weed, free_port, service_env  # noqa: E402


def _floats(name: str, default: str) -> list[float]:
    return [float(value) for value in os.environ.get(name, default).split(",") if value]


def _sizes(text: str) -> list[tuple[float, int]]:
    """CAPACITY_SIZES: "0.5x1,1x2" -> [(0.5, 1), (1.0, 2)] (vCPU x workers)."""
    pairs = [item.split("x") for item in text.split(",") if item]
    return [(float(vcpu), int(workers)) for vcpu, workers in pairs]


SIZES = _sizes(os.environ.get("CAPACITY_SIZES", "0.25x1,0.5x1,1x1,1x2"))
RUNS = int(os.environ.get("CAPACITY_RUNS", "3"))
SECONDS = float(os.environ.get("CAPACITY_SECONDS", "6"))
WARMUP = float(os.environ.get("CAPACITY_WARMUP", "2"))
# The overload runs with other shedding settings, on fresh tasks (off and 100 ms of work); 0 skips them.
OVERLOAD_VARIANTS = os.environ.get("CAPACITY_OVERLOAD_VARIANTS", "1") != "0"
RESOLUTION = float(os.environ.get("CAPACITY_RESOLUTION", "0.1"))
PEAK_RPS = float(os.environ["CAPACITY_PEAK_RPS"]) if os.environ.get("CAPACITY_PEAK_RPS") else None
# The service's cgroup outweighs the host's other processes and the generator runs SCHED_FIFO,
# so that a shared host's neighbours disturb neither; CAPACITY_PRIORITY=0 turns both off.
PRIORITY = os.environ.get("CAPACITY_PRIORITY", "1") != "0"
# The tight limit is the scale-out criterion. 10 ms on a local disk; with an EFS commit in every
# answer (two at worst: the one running when a request arrives, then its own) the p99 of the
# commits alone is about 20 ms, so the tight limit is a quarter of the brief's 200 ms.
LIMITS_MS = tuple(_floats("CAPACITY_LIMITS_MS", "50,200"))
LAG_LIMIT_MS = 5.0  # a step whose generator lagged more than this at p99 is run again (twice at most)
# Fargate's smallest memory for each CPU size; the Terraform default (512 CPU, 1024 MiB) is one of them.
MEMORY_MIB = {0.25: 512, 0.5: 1024, 1.0: 2048, 2.0: 4096, 4.0: 8192}
SERVICE_CORE, LOAD_CORE = "0", "1"
BUCKET = "capacity-audit"
OWNED = {"BOTSCORE_AUDIT_DIR", "BOTSCORE_AUDIT_BUCKET", "BOTSCORE_HOST", "BOTSCORE_PORT", "BOTSCORE_WORKERS"}
TERRAFORM_KEYS = (
    "task_cpu",
    "task_memory",
    "workers",
    "requests_per_target",
    "cpu_target_percent",
    "min_capacity",
    "max_capacity",
    "max_in_flight",
    "audit_sync",
    "audit_commit_window_ms",
    "audit_spool_max_bytes",
    "waf_rate_limit",
)


def listen_overflows() -> int:
    """The host's count of connections dropped because an accept queue was full (TcpExt ListenOverflows)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0))


@dataclass
class Step:
    """One fixed-rate run: the generator's summary and the task's CPU and memory over its window."""

    rate: float
    load: dict[str, Any]
    vcpu_used: float
    throttled_share: float
    peak_mib: float
    rss_mib: float
    listen_overflows: int = 0  # host-wide, over the window: connections that found the accept queue full
    tries: int = 1
    fsyncs_per_request: float = 0.0  # storage operations: what EFS bills (docs/cost.md), beside the CPU

    @property
    def clean(self) -> bool:
        return bool(self.load["failed_share"] == 0 and self.load["statuses"])

    def trial(self) -> Trial:
        return Trial(self.rate, self.load["ok_p99_ms"], self.clean)


@dataclass
class Result:
    """One (task size, workers): the steps of each run, the median capacities, overload and ceiling runs."""

    vcpu: float
    memory_mib: int
    workers: int
    runs: list[list[Step]] = field(default_factory=list)
    overload: list[dict[str, Any]] = field(default_factory=list)
    ceiling: list[dict[str, Any]] = field(default_factory=list)
    oom_kills: int = 0

    @property
    def steps(self) -> list[Step]:
        return [step for run in self.runs for step in run]

    def capacities(self, limit_ms: float) -> list[float]:
        """Each run's capacity under `limit_ms`."""
        return [capacity([s.trial() for s in run], limit_ms) for run in self.runs]

    def capacity(self, limit_ms: float) -> float:
        """The median of the runs' capacities (the lower middle one for an even count: errs low)."""
        runs = self.capacities(limit_ms)
        return statistics.median_low(runs) if runs else 0.0

    def at(self, limit_ms: float) -> Step | None:
        """The step at the median capacity, from the run that found it."""
        rate = self.capacity(limit_ms)
        for run, found in zip(self.runs, self.capacities(limit_ms), strict=True):
            if found == rate:
                return next((s for s in run if s.rate == rate), None)
        return None

    def size(self) -> Size:
        curve = tuple(sorted((s.rate, s.vcpu_used) for s in self.steps if s.clean))
        fast, slow = (self.capacity(limit) for limit in LIMITS_MS)
        return Size(self.vcpu, self.memory_mib, self.workers, fast, slow, curve)


class Target:
    """A server in a task-like cgroup, driven one fixed-rate step at a time; stopped by pid."""

    def __init__(self, tmp: Path, name: str, vcpu: float, argv: list[str], env: dict[str, str], port: int) -> None:
        self.url = f"http://{LOOPBACK}:{port}"
        group = f"botscore-capacity-{os.getpid()}-{name}"
        self.cgroup = TaskCgroup(group, vcpu, MEMORY_MIB[vcpu], priority=PRIORITY).create()
        argv = self.cgroup.wrap(["taskset", "-c", SERVICE_CORE, *argv])
        self.process = Process(argv, env=env, log=tmp / f"{name}.log")
        self.settings = {k: v for k, v in env.items() if k.startswith("BOTSCORE_") and k not in OWNED}
        try:
            self._wait_answering()
        except BaseException:
            self.stop()
            raise

    def _wait_answering(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as client:
            while time.monotonic() < deadline:
                try:
                    if client.post(f"{self.url}/bot-score", json={"x1": 0.1, "x2": 0.2}).status_code == 200:
                        return
                except httpx.HTTPError:
                    time.sleep(0.05)
        raise RuntimeError(f"botscore serve did not answer within {timeout} s; see {self.process.log}")

    def step(self, rate: float) -> Step:
        """The generator at `rate`, run again (twice at most) if it lagged; then wait for the task to be idle."""
        for tries in range(1, 4):
            step = self._step(rate, tries)
            self._settle()
            if step.load["lag_p99_ms"] <= LAG_LIMIT_MS:
                break
        print(_line(step), flush=True)
        return step

    def _step(self, rate: float, tries: int) -> Step:
        argv = ["taskset", "-c", LOAD_CORE, str(BIN / "python"), "-m", "bench.openloop", "--url"]
        argv += [f"{self.url}/bot-score", "--rate", str(rate), "--seconds", str(SECONDS), "--warmup", str(WARMUP)]
        argv += ["--marks"]
        if PRIORITY:
            argv = ["chrt", "-f", "1", *argv]
        before, after, started, ended = CpuUsage(0, 0, 0), CpuUsage(0, 0, 0), 0.0, 0.0
        fsyncs = 0.0
        load: dict[str, Any] = {}
        overflows = 0
        with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True) as generator:
            assert generator.stdout is not None
            for line in generator.stdout:
                if line.strip() == "measuring":
                    fsyncs = spool_fsyncs(self.url)
                    self.cgroup.reset_peak()
                    overflows = listen_overflows()
                    before, started = self.cgroup.cpu(), time.perf_counter()
                elif line.strip() == "measured":
                    after, ended = self.cgroup.cpu(), time.perf_counter()
                    fsyncs = spool_fsyncs(self.url) - fsyncs
                    peak, rss = self.cgroup.memory()
                    overflows = listen_overflows() - overflows
                elif line.startswith("{"):
                    load = json.loads(line)
        if generator.returncode != 0 or not load or not ended:
            raise RuntimeError(f"the load generator failed at {rate} req/s (exit {generator.returncode})")
        used = after.since(before)
        answered = sum(int(n) for status, n in load["statuses"].items() if status == "200")
        return Step(
            rate=rate,
            load=load,
            vcpu_used=round(used.seconds / (ended - started), 3),
            throttled_share=round(used.throttled / used.periods, 3) if used.periods else 0.0,
            peak_mib=round(peak / 2**20, 1),
            rss_mib=round(rss / 2**20, 1),
            listen_overflows=overflows,
            tries=tries,
            fsyncs_per_request=round(fsyncs / answered, 4) if answered else 0.0,
        )

    def _settle(self, timeout: float = 60) -> None:
        """Wait until the task answers its health check at once: the queue of an overload is drained."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    client.get(f"{self.url}/healthz")
                except httpx.HTTPError:
                    continue
                if time.perf_counter() - started < 0.02:
                    break
                time.sleep(0.2)
        time.sleep(0.5)

    def stop(self) -> None:
        self.process.stop(signal.SIGTERM, timeout=40)  # by pid: seals and ships the spool
        self.cgroup.remove()


def _line(step: Step) -> str:
    load = step.load
    return (
        f"  {step.rate:>9,.0f} req/s: p99 {load['ok_p99_ms']:8.2f} ms (200s), statuses {load['statuses']}, "
        f"errors {load['errors']}, CPU {step.vcpu_used:.2f} vCPU, throttled {step.throttled_share:.0%}, "
        f"lag p99 {load['lag_p99_ms']:.1f} ms, {load['connections']} connections, "
        f"{step.listen_overflows} accept-queue overflows" + (f", try {step.tries}" if step.tries > 1 else "")
    )


def start_task(tmp: Path, weed: Weed, vcpu: float, workers: int, **settings: str) -> Target:
    """`botscore serve` limited like a task, its audit log shipping to `weed`; BOTSCORE_* passed through."""
    port = free_port()
    passed = {k: v for k, v in os.environ.items() if k.startswith("BOTSCORE_") and k not in OWNED}
    name = f"{vcpu}-{workers}"
    env = service_env(tmp / f"audit-{name}", BOTSCORE_AUDIT_BUCKET=BUCKET, **weed.aws_env(), **passed)
    env.update(settings)
    env = efs.task_env(env)
    argv = [str(BIN / "botscore"), "serve", "--host", LOOPBACK, "--port", str(port), "--workers", str(workers)]
    return Target(tmp, name, vcpu, argv, env, port)


def configured_shedding() -> str | None:
    """BOTSCORE_MAX_IN_FLIGHT as the service will run it (the app's default if unset); None if it has none."""
    from botscore.settings import Settings

    field = Settings.model_fields.get("max_in_flight")
    if field is None:
        return None
    return os.environ.get("BOTSCORE_MAX_IN_FLIGHT", str(field.default))


def overload_runs(slow: float, workers: int) -> list[tuple[str, dict[str, str]]]:
    """The overload runs after the one as configured: load shedding off, and sized to 100 ms of a worker's work."""
    configured = configured_shedding()
    if configured is None:
        return []
    runs = [("off", {"BOTSCORE_MAX_IN_FLIGHT": "0"})] if configured != "0" else []
    # What a worker finishes in 100 ms at the p99 < 200 ms rate: a queue longer than that is shed.
    sized = os.environ.get("CAPACITY_MAX_IN_FLIGHT") or str(in_flight_bound(slow, workers))
    if sized != configured:
        runs.append(("100 ms of work", {"BOTSCORE_MAX_IN_FLIGHT": sized}))
    return runs


def _overload(task: Target, slow: float, label: str) -> dict[str, Any]:
    bound = task.settings.get("BOTSCORE_MAX_IN_FLIGHT", "")
    print(f"  overload at 2x, BOTSCORE_MAX_IN_FLIGHT {bound} ({label})", flush=True)
    step = task.step(2 * slow)
    return {**asdict(step), "label": label, "max_in_flight": task.settings.get("BOTSCORE_MAX_IN_FLIGHT")}


def search(tmp: Path, weed: Weed, result: Result, start: float) -> None:
    """One run: both limits searched on a fresh task, from `start` req/s; its steps become a run of `result`."""
    configured = configured_shedding()
    extra = {"BOTSCORE_MAX_IN_FLIGHT": configured} if configured is not None else {}
    run = len(result.runs) + 1
    print(f"{result.vcpu} vCPU, {result.memory_mib} MiB, {result.workers} worker(s), run {run}", flush=True)
    task = start_task(tmp, weed, result.vcpu, result.workers, **extra)
    steps: list[Step] = []
    try:
        for limit in LIMITS_MS:
            trials = [s.trial() for s in steps]
            while (rate := next_rate(trials, limit, start=start, resolution=RESOLUTION)) is not None:
                steps.append(task.step(rate))
                trials = [s.trial() for s in steps]
    finally:
        result.oom_kills += task.cgroup.oom_kills()
        task.stop()
        result.runs.append(steps)


def overload(tmp: Path, weed: Weed, result: Result) -> None:
    """Twice the median p99 < 200 ms rate: as configured, then (OVERLOAD_VARIANTS) with other shedding settings."""
    slow = result.capacity(LIMITS_MS[-1])
    if not slow:
        return
    label = "as configured" if "BOTSCORE_MAX_IN_FLIGHT" in os.environ else "the default"
    configured = configured_shedding()
    runs = [(label, {"BOTSCORE_MAX_IN_FLIGHT": configured} if configured is not None else {})]
    if OVERLOAD_VARIANTS:
        runs += overload_runs(slow, result.workers)
    for name, settings in runs:
        task = start_task(tmp, weed, result.vcpu, result.workers, **settings)
        try:
            result.overload.append(_overload(task, slow, name))
        finally:
            result.oom_kills += task.cgroup.oom_kills()
            task.stop()


def ceiling(tmp: Path, result: Result) -> None:
    """The bare ASGI app in the same cgroup as the task, at the task's median p99 < 200 ms rate, RUNS steps:
    its CPU per request against botscore's at the same rate (the ceiling would need that much less CPU)."""
    rate = result.capacity(LIMITS_MS[-1])
    if not rate:
        return
    port = free_port()
    code = (
        "import uvicorn; from botscore.server import UVICORN_OPTIONS; "
        f"uvicorn.run('bench.ceiling:app', host='{LOOPBACK}', port={port}, **UVICORN_OPTIONS)"
    )
    name = f"ceiling-{result.vcpu}-{result.workers}"
    task = Target(tmp, name, result.vcpu, [str(BIN / "python"), "-c", code], dict(os.environ), port)
    try:
        print(f"  the bare app in the same cgroup at {rate:,.0f} req/s", flush=True)
        result.ceiling = [asdict(task.step(rate)) for _ in range(RUNS)]
    finally:
        task.stop()


def generator_check(tmp: Path, rate: float) -> dict[str, Any]:
    """The generator against the bare ASGI app (bench/ceiling.py) in a 1-vCPU cgroup: its own floor at `rate`."""
    port = free_port()
    code = (
        "import uvicorn; from bench.ceiling import OPTIONS; "
        f"uvicorn.run('bench.ceiling:app', host='{LOOPBACK}', port={port}, **OPTIONS)"
    )
    task = Target(tmp, "ceiling", 1.0, [str(BIN / "python"), "-c", code], dict(os.environ), port)
    try:
        print(f"generator check against the bare app at {rate:,.0f} req/s", flush=True)
        return asdict(task.step(rate))
    finally:
        task.stop()


def terraform_defaults() -> dict[str, Any]:
    import hcl2

    with (ROOT / "terraform" / "variables.tf").open() as handle:
        blocks = hcl2.load(handle)["variable"]
    found = {name.strip('"'): body.get("default") for block in blocks for name, body in block.items()}
    return {key: found[key].strip('"') if isinstance(found[key], str) else found[key] for key in TERRAFORM_KEYS}


def rederive() -> None:
    """`bench/capacity.py --rederive`: the Terraform section of docs/capacity.json and docs/capacity.md again,
    from the measurements the file holds, after a change of bench/sizing.py's rules (nothing is measured)."""
    from bench.report import render

    path = ROOT / "docs" / "capacity.json"
    report = json.loads(path.read_text())
    sizes = [
        Size(
            r["vcpu"],
            r["memory_mib"],
            r["workers"],
            r["fast_rps"],
            r["slow_rps"],
            tuple(sorted((s["rate"], s["vcpu_used"]) for s in r["steps"] if s["load"]["failed_share"] == 0)),
        )
        for r in report["results"]
    ]
    report["terraform"] = suggest(sizes, report["terraform_defaults"], PEAK_RPS)
    path.write_text(json.dumps(report, indent=1) + "\n")
    (ROOT / "docs" / "capacity.md").write_text(render(report))


def main() -> None:
    from bench.report import render

    if "--rederive" in sys.argv:
        rederive()
        return
    if os.geteuid() != 0:
        sys.exit("capacity: cgroups need root")
    defaults = terraform_defaults()
    os.environ.setdefault("BOTSCORE_AUDIT_SYNC", str(defaults["audit_sync"]))
    os.environ.setdefault("BOTSCORE_AUDIT_COMMIT_WINDOW_MS", str(defaults["audit_commit_window_ms"]))
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="botscore-capacity-"))
    weed = Weed(tmp).start()
    assert weed.process is not None
    subprocess.run(["taskset", "-a", "-cp", LOAD_CORE, str(weed.process.pid)], check=True, capture_output=True)
    weed.client().create_bucket(Bucket=BUCKET)
    try:
        results = [Result(vcpu, MEMORY_MIB[vcpu], workers) for vcpu, workers in SIZES]
        for _ in range(RUNS):  # interleaved, so that a noisy minute of the host touches every size alike
            for result in results:
                search(tmp, weed, result, start=result.capacity(LIMITS_MS[0]) or 1000 * result.vcpu)
        for result in results:
            overload(tmp, weed, result)
            ceiling(tmp, result)
        highest = max((s.rate for r in results for s in r.steps if s.trial().passes(LIMITS_MS[1])), default=1000.0)
        check = generator_check(tmp, highest)
    finally:
        weed.stop()
    derived = suggest([r.size() for r in results], defaults, PEAK_RPS)
    report = {
        "generated": started.strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": round((datetime.now(UTC) - started).total_seconds() / 60, 1),
        "command": " ".join(
            [*(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("CAPACITY_")), "make capacity"]
        ),
        "host": _host(),
        "method": {
            "seconds": SECONDS,
            "warmup": WARMUP,
            "resolution": RESOLUTION,
            "limits_ms": LIMITS_MS,
            "priority": PRIORITY,
            "audit_sync": os.environ["BOTSCORE_AUDIT_SYNC"],
            "audit_commit_window_ms": int(os.environ["BOTSCORE_AUDIT_COMMIT_WINDOW_MS"]),
            "runs": RUNS,
            "sizes": [f"{vcpu:g}x{workers}" for vcpu, workers in SIZES],
            "fsync_floor_ms": efs.model()[0],
            "fsync_tail_ms": efs.model()[1],
            "overload_variants": OVERLOAD_VARIANTS,
        },
        "results": [_result_json(r) for r in results],
        "generator_check": check,
        "terraform": derived,
        "terraform_defaults": defaults,
    }
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "capacity.json").write_text(json.dumps(report, indent=1) + "\n")
    (ROOT / "docs" / "capacity.md").write_text(render(report))
    print((ROOT / "docs" / "capacity.md").read_text())


def _result_json(result: Result) -> dict[str, Any]:
    size = result.size()
    return {
        "vcpu": result.vcpu,
        "memory_mib": result.memory_mib,
        "workers": result.workers,
        "fast_rps": size.fast,
        "slow_rps": size.slow,
        "runs_fast_rps": result.capacities(LIMITS_MS[0]),
        "runs_slow_rps": result.capacities(LIMITS_MS[-1]),
        "ceiling": result.ceiling,
        "at_fast": asdict(step) if (step := result.at(LIMITS_MS[0])) else None,
        "at_slow": asdict(step) if (step := result.at(LIMITS_MS[1])) else None,
        "overload": result.overload,
        "oom_kills": result.oom_kills,
        "steps": [{**asdict(s), "run": i + 1} for i, run in enumerate(result.runs) for s in run],
    }


def _host() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
        f"load average {load:.2f} at the start"
    )


if __name__ == "__main__":
    main()
