"""What shadow scoring costs: a registry with a shadow set (`BENCH_SHADOW=1 make bench`,
`python bench/instructions.py shadow`), and the paired measurement `make bench` reports.

Measured as separate runs seconds apart, botscore with and without a shadow differed by less than
this shared host moved between them: whole rounds swung by ±20 %, and so did adjacent 3 s windows,
the ceiling's own CPU per request going from 28 to 50 µs. So the three servers (the ceiling,
botscore following a registry without a shadow, and the same with one) share the server core at
the same time, each loaded by its own wrk: whatever the host does, it does to all three. Each one's
CPU per request, read from its threads' schedstat over a window and the shipping of the window's
rows, gives its throughput on a saturated core. The figure is the median over the windows of
1 - CPU without / CPU with, with a distribution-free 95 % interval for that median.

    python bench/shadow.py     # this measurement alone (BENCH_SHADOW_WINDOWS, BENCH_SHADOW_SECONDS)
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botscore.model import artifact, manage
from botscore.model.registry import Registry
from botscore.settings import SHIPPED_MODEL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bench and tests are importable

from bench import load
from tests.support.servers import BIN, LOOPBACK, Process, Weed, free_port, service_env

BUCKET = "bench-models"
WINDOWS = int(os.environ.get("BENCH_SHADOW_WINDOWS", "20"))
WINDOW_SECONDS = int(os.environ.get("BENCH_SHADOW_SECONDS", "5"))
BOUND = 0.05  # issue 21: at most 5 % of /bot-score's throughput
SERVERS = ("ceiling", "without", "with")


def registry(client: Any, *, shadow: bool = True) -> str:
    """The URL of a registry in BUCKET serving the shipped model, its variant in shadow or none (one
    registry each way, side by side)."""
    if BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    url = f"s3://{BUCKET}/models/{'shadowed' if shadow else 'plain'}/"
    models = Registry(url, client=client)
    shipped, _ = models.publish(SHIPPED_MODEL.read_bytes(), str(SHIPPED_MODEL))
    document = json.loads(SHIPPED_MODEL.read_text())
    variant, _ = models.publish(json.dumps(artifact.seal({**document, "intercept": -0.5})).encode(), "variant")
    manage.promote(models, shipped.version)
    manage.shadow(models, variant.version if shadow else None)
    return url


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
class Cost:
    """The paired measurement: each server's req/s and CPU µs a request (shipping included) in each window."""

    throughput: dict[str, list[float]]
    cpu_us: dict[str, list[float]]

    def ratios(self, name: str) -> list[float]:
        """`name`'s throughput on a saturated core against the ceiling's, in each window: the inverse
        ratio of their CPU per request, measured over the same seconds of the same core."""
        return [c / x for c, x in zip(self.cpu_us["ceiling"], self.cpu_us[name], strict=True)]

    def losses(self) -> list[float]:
        """Throughput lost to the shadow on a saturated core, in each window."""
        return [1 - wo / w for wo, w in zip(self.cpu_us["without"], self.cpu_us["with"], strict=True)]

    def table(self) -> str:
        losses = self.losses()
        loss = statistics.median(losses)
        low, high = median_interval(losses)
        cpu = (self.cpu_us[name] for name in SERVERS)
        rows = zip(*cpu, self.ratios("without"), self.ratios("with"), losses, strict=True)
        lines = [
            "## Shadow scoring\n",
            f"`BENCH_SHADOW=1` (bench/shadow.py): the ceiling, botscore following a model registry without a "
            f"shadow, and the same with a shadow set run side by side on core {load.SERVER_CORE}, each loaded by "
            f"its own wrk at the same time, {WINDOWS} windows of {WINDOW_SECONDS} s. Sharing the core second by "
            "second, the three see the same host, which moved separate runs by ±20 %. CPU per request counts "
            "each server's threads (schedstat) from a window's start until its rows were shipped; a server's "
            "throughput on a saturated core is the inverse of it. Medians over the windows.\n",
            "| figure | ceiling | without shadow | with shadow |\n| --- | --- | --- | --- |",
            "| req/s in the shared windows | "
            + " | ".join(f"{statistics.median(self.throughput[name]):,.0f}" for name in SERVERS)
            + " |",
            "| CPU per request, shipping included (µs) | "
            + " | ".join(f"{statistics.median(self.cpu_us[name]):.2f}" for name in SERVERS)
            + " |",
            f"| throughput to the ceiling's | 1.000x | {statistics.median(self.ratios('without')):.3f}x | "
            f"{statistics.median(self.ratios('with')):.3f}x |\n",
            "| window | ceiling µs | without µs | with µs | without / ceiling | with / ceiling | throughput lost |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *(
                f"| {n} | {c:.2f} | {wo:.2f} | {w:.2f} | {rwo:.3f}x | {rw:.3f}x | {100 * lost:.1f} % |"
                for n, (c, wo, w, rwo, rw, lost) in enumerate(rows, 1)
            ),
            "",
            f"Throughput lost to shadow scoring: {100 * loss:.1f} % (median of {len(losses)} windows; 95 % "
            f"interval for the median {100 * low:.1f} to {100 * high:.1f} %), target at most {100 * BOUND:.0f} %: "
            f"{'met' if high <= BOUND else 'met by the median only' if loss <= BOUND else '**missed**'}.",
        ]
        return "\n".join(lines) + "\n"


def _drained(audit_dir: Path, timeout: float = 120) -> None:
    """Wait until a server's spool holds no record (all shipped): read from its folder, for a scrape of
    /metrics would cost the server more CPU than the rows of a window take to ship."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [
            path
            for path in audit_dir.glob("workers/*/*/*")
            if path.parent.name in ("active", "sealed") and path.stat().st_size > 0
        ]
        if not waiting:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{audit_dir}: records not shipped within {timeout} s")


def measure_cost(weed: Weed, tmp: Path, audit_bucket: str) -> Cost:
    """The paired measurement described above; the botscore servers ship to `audit_bucket` in `weed`."""
    client = weed.client()
    urls = {name: registry(client, shadow=name == "with") for name in ("without", "with")}
    servers: dict[str, tuple[Process, str]] = {}
    spools = {name: tmp / f"audit-paired-{name}" for name in ("without", "with")}
    try:
        for name in SERVERS:
            port = free_port()
            if name == "ceiling":
                argv, env = load.ceiling_argv(BIN / "python", LOOPBACK, port), dict(os.environ)
            else:
                argv = [str(load.SERVE), "serve", "--host", LOOPBACK, "--port", str(port), "--workers", "1"]
                env = service_env(
                    spools[name],
                    BOTSCORE_AUDIT_BUCKET=audit_bucket,
                    BOTSCORE_MODEL_REGISTRY=urls[name],
                    BOTSCORE_AUDIT_SEGMENT_MAX_AGE_SECONDS=1,  # a window's rows ship within a second or two of it
                    **weed.aws_env(),
                )
            url = f"http://{LOOPBACK}:{port}"
            process, _ = load.start(argv, env, url + "/bot-score", tmp / f"paired-{name}.log")
            servers[name] = process, url
        urls = [url + "/bot-score" for _, url in servers.values()]
        load.wrk_all(urls, WINDOW_SECONDS)  # warm-up, not counted
        throughput: dict[str, list[float]] = {name: [] for name in SERVERS}
        cpu_us: dict[str, list[float]] = {name: [] for name in SERVERS}
        for window in range(WINDOWS):
            before = {name: load.run_seconds(process.pid) for name, (process, _) in servers.items()}
            figures = dict(zip(SERVERS, load.wrk_all(urls, WINDOW_SECONDS), strict=True))
            for name in ("without", "with"):
                _drained(spools[name])  # shipping a window's rows is part of its cost
            for name, (process, _) in servers.items():
                rate, answered = figures[name]
                throughput[name].append(rate)
                cpu_us[name].append((load.run_seconds(process.pid) - before[name]) / answered * 1e6)
            print(
                f"shadow window {window + 1}: "
                + " | ".join(f"{name} {throughput[name][-1]:,.0f} req/s {cpu_us[name][-1]:.2f} µs" for name in SERVERS),
                flush=True,
            )
        return Cost(throughput, cpu_us)
    finally:
        for process, _ in servers.values():
            process.stop(signal.SIGTERM)


def main() -> None:
    """The paired measurement alone, against a SeaweedFS started for it: `python bench/shadow.py`."""
    tmp = Path(tempfile.mkdtemp(prefix="botscore-shadow-"))
    weed = Weed(tmp).start()
    try:
        assert weed.process is not None
        subprocess.run(["taskset", "-a", "-cp", load.LOAD_CORE, str(weed.process.pid)], check=True, capture_output=True)
        weed.client().create_bucket(Bucket="bench-audit")
        print(measure_cost(weed, tmp, "bench-audit").table())
    finally:
        weed.stop()


if __name__ == "__main__":
    main()
