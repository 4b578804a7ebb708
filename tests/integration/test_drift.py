"""`botscore serve` with EMF on: traffic like the training data keeps DriftX1 under the line; x1 shifted by
one standard deviation raises it over the line within two EMF intervals (src/botscore/model/baseline.py)."""

from __future__ import annotations

import csv
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from botscore.model.baseline import PSI_ACT
from tests.support import emf
from tests.support.servers import ROOT, Service

INTERVAL = 1.0  # seconds between a worker's EMF sets
BATCH = 250  # instances a request: each interval holds well over baseline.MIN_SAMPLES scores


def _rows() -> list[tuple[float, float]]:
    with (ROOT / "data" / "transactions.csv").open() as handle:
        return [(float(row["x1"]), float(row["x2"])) for row in csv.DictReader(handle)]


def _drift(service: Service, since: int) -> list[dict[str, Any]]:
    """The Service-level EMF documents with a drift figure, written after `since` (epoch ms)."""
    found = emf.documents(service.log.read_text())
    return [d for d in found if "DriftX1" in d and d["_aws"]["Timestamp"] > since]


def _send(client: httpx.Client, rows: list[tuple[float, float]], seconds: float, shift: float = 0.0) -> None:
    draw = random.Random(3)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        instances = [{"x1": x1 + shift, "x2": x2} for x1, x2 in draw.sample(rows, BATCH)]
        assert client.post("/bot-score/batch", json={"instances": instances}).status_code == 200


def test_x1_shifted_by_one_deviation_crosses_the_drift_line_within_two_intervals_and_training_like_traffic_does_not(
    tmp_path: Path,
) -> None:
    rows = _rows()
    deviation = statistics.pstdev(x1 for x1, _ in rows)
    service = Service(tmp_path, emf="true", emf_interval_seconds=INTERVAL).start()
    try:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            _send(client, rows, 3 * INTERVAL)
            steady = _drift(service, 0)
            shifted_from = int(time.time() * 1000)
            _send(client, rows, 2 * INTERVAL + 0.3, shift=deviation)
            shifted = _drift(service, shifted_from)
    finally:
        service.stop()
    assert len(steady) >= 2
    assert all(d["DriftX1"] < PSI_ACT and d["DriftX2"] < PSI_ACT and d["DriftScore"] < PSI_ACT for d in steady)
    assert any(d["DriftX1"] > PSI_ACT for d in shifted[:2]), [d["DriftX1"] for d in shifted]
    assert all(d["DriftX2"] < PSI_ACT for d in shifted)  # x2 was left alone
