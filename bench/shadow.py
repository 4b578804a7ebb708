"""What shadow scoring and a canary cost: a registry with a shadow set, or a canary at 10 %
(`BENCH_SHADOW=1 make bench`, `python bench/instructions.py shadow canary`), and the measurement
`make bench` reports.

The ceiling, botscore following a registry without a shadow, the same with one, and the same with
a canary at 10 % instead (its requests scored by both models, each request's arm hashed) are measured
side by side (bench/paired.py: sharing the server core at the same time, in sessions of freshly
started servers). The figure is the median over the windows of 1 - CPU without / CPU with, the
throughput a shadow costs on a saturated core, with a distribution-free 95 % interval.

    python bench/shadow.py     # this measurement alone (BENCH_PAIRED_SESSIONS, _WINDOWS, _SECONDS)
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from botscore.model import artifact, manage
from botscore.model.canary import Guardrails
from botscore.model.registry import Registry
from botscore.settings import SHIPPED_MODEL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bench and tests are importable

from bench import load, paired
from tests.support.servers import Weed

BUCKET = "bench-models"
BOUND = 0.05  # issue 21: at most 5 % of /bot-score's throughput; issue 33: a canary within 5 % of a shadow
SERVERS = ("ceiling", "without", "with", "canary")
Mode = Literal["plain", "shadow", "canary"]


def registry(client: Any, mode: Mode = "shadow") -> str:
    """The URL of a registry in BUCKET serving the shipped model, with its variant in shadow, or as a
    canary at 10 % (held: no step, guardrails on), or neither (one registry each way, side by side)."""
    if BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    url = f"s3://{BUCKET}/models/{mode}/"
    models = Registry(url, client=client)
    shipped, _ = models.publish(SHIPPED_MODEL.read_bytes(), str(SHIPPED_MODEL))
    document = json.loads(SHIPPED_MODEL.read_text())
    # A near twin of production: the benches' one body scores in the same bucket and on the same side, so
    # the canary's guardrails let it run (a variant unlike production would be rolled back in a second).
    variant, _ = models.publish(
        json.dumps(artifact.seal({**document, "intercept": document["intercept"] + 0.02})).encode(), "variant"
    )
    manage.promote(models, shipped.version)
    manage.shadow(models, variant.version if mode == "shadow" else None)
    if mode == "canary":
        manage.canary(models, variant.version, (10.0,), 0.0, Guardrails())
    return url


class Cost(paired.Paired):
    """The shadow's measurement: the ceiling's, and botscore's without and with a shadow, and with a canary."""

    def losses(self, name: str = "with") -> list[float]:
        """Throughput lost to the shadow (or the canary) on a saturated core, in each window."""
        return [1 - wo / w for wo, w in zip(self.cpu_us["without"], self.cpu_us[name], strict=True)]

    def canary_to_shadow(self) -> str:
        """The canary's CPU per request over the shadow's, per window: its median and 95 % interval."""
        ratios = [c / w for c, w in zip(self.cpu_us["canary"], self.cpu_us["with"], strict=True)]
        median, (low, high) = statistics.median(ratios), paired.median_interval(ratios)
        verdict = "met" if high <= 1 + BOUND else "met by the median only" if median <= 1 + BOUND else "**missed**"
        return (
            f"A canary at 10 % against a shadow: CPU per request {median:.3f}x the shadow's (95 % interval "
            f"{low:.3f} to {high:.3f}; throughput lost to it {100 * statistics.median(self.losses('canary')):.1f} %), "
            f"target at most {1 + BOUND:.2f}x: {verdict}."
        )

    def table(self) -> str:
        losses = self.losses()
        loss = statistics.median(losses)
        low, high = paired.median_interval(losses)
        cpu = (self.cpu_us[name] for name in SERVERS[:3])
        rows = zip(*cpu, self.ratios("without"), self.ratios("with"), losses, strict=True)
        lines = [
            "## Shadow scoring\n",
            f"`BENCH_SHADOW=1` (bench/shadow.py): the ceiling, botscore following a model registry without a "
            f"shadow, and the same with a shadow set, side by side on core {load.SERVER_CORE} (bench/paired.py: "
            f"each loaded by its own wrk at the same time; {paired.SESSIONS} sessions of freshly started servers, "
            f"{paired.WINDOWS} windows of {paired.WINDOW_SECONDS} s each). CPU per request counts each server's "
            "threads (schedstat) from a window's start until its rows were shipped; a server's throughput on a "
            "saturated core is the inverse of it. Medians over the windows.\n",
            "| figure | ceiling | without shadow | with shadow | canary at 10 % |\n| --- | --- | --- | --- | --- |",
            "| req/s in the shared windows | "
            + " | ".join(f"{statistics.median(self.throughput[name]):,.0f}" for name in SERVERS)
            + " |",
            "| CPU per request, shipping included (µs) | "
            + " | ".join(f"{statistics.median(self.cpu_us[name]):.2f}" for name in SERVERS)
            + " |",
            f"| throughput to the ceiling's | 1.000x | {statistics.median(self.ratios('without')):.3f}x | "
            f"{statistics.median(self.ratios('with')):.3f}x | {statistics.median(self.ratios('canary')):.3f}x |\n",
            "| session.window | ceiling µs | without µs | with µs | without / ceiling | with / ceiling | lost |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *(
                f"| {n // paired.WINDOWS + 1}.{n % paired.WINDOWS + 1} | {c:.2f} | {wo:.2f} | {w:.2f} | {rwo:.3f}x | "
                f"{rw:.3f}x | {100 * lost:.1f} % |"
                for n, (c, wo, w, rwo, rw, lost) in enumerate(rows)
            ),
            "",
            f"Throughput lost to shadow scoring: {100 * loss:.1f} % (median of {len(losses)} windows; 95 % "
            f"interval for the median {100 * low:.1f} to {100 * high:.1f} %; the median of each session: "
            + ", ".join(
                f"{100 * statistics.median(losses[k : k + paired.WINDOWS]):.1f} %"
                for k in range(0, len(losses), paired.WINDOWS)
            )
            + f"), target at most {100 * BOUND:.0f} %: "
            f"{'met' if high <= BOUND else 'met by the median only' if loss <= BOUND else '**missed**'}.\n",
            "## Canary\n",
            "The same windows, botscore with a canary at 10 % instead of the shadow (a near twin of production, "
            "held at its one step, guardrails on; each request's arm by the CRC-32 of its id, the canary's "
            "requests scored by both models).\n",
            self.canary_to_shadow(),
        ]
        return "\n".join(lines) + "\n"


def measure_cost(weed: Weed, tmp: Path) -> Cost:
    """The ceiling and botscore without and with a shadow, and with a canary, side by side; botscore ships to `weed`."""
    client = weed.client()
    servers = {"ceiling": paired.ceiling()}
    modes: dict[str, Mode] = {"without": "plain", "with": "shadow", "canary": "canary"}
    for name, mode in modes.items():
        url = registry(client, mode)
        servers[name] = paired.botscore(load.SERVE, weed, tmp / f"audit-shadow-{name}", BOTSCORE_MODEL_REGISTRY=url)
    measured = paired.measure(servers, tmp, "shadow")
    return Cost(measured.throughput, measured.cpu_us)


def main() -> None:
    """The measurement alone, against a SeaweedFS started for it: `python bench/shadow.py`."""
    tmp = Path(tempfile.mkdtemp(prefix="botscore-shadow-"))
    weed = paired.started_weed(tmp)
    try:
        print(measure_cost(weed, tmp).table())
    finally:
        weed.stop()


if __name__ == "__main__":
    main()
