"""The brief's load test runs headless against a real server and finds no failure."""

from __future__ import annotations

import csv
import signal
import subprocess
from pathlib import Path

from tests.support.servers import BIN, ROOT, Service


def test_locust_headless_against_the_service(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    try:
        result = subprocess.run(
            [
                str(BIN / "locust"),
                "-f",
                str(ROOT / "locustfile.py"),
                "--headless",
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                "4s",
                "--host",
                service.url,
                "--csv",
                str(tmp_path / "run"),
                "--only-summary",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        service.stop(signal.SIGTERM)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "run_stats.csv") as stats:
        total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 50
    assert int(total["Failure Count"]) == 0
