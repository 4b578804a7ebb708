"""What one task does to the storage and the logs it is billed for, measured: the cost model's inputs.

    .venv/bin/python -m bench.measure_storage --window-ms 20 --rate 300 --seconds 20

`botscore serve` (one worker, pinned to core 0) runs under strace with every fsync and fdatasync
delayed by FSYNC_DELAY_MS (2.7 ms: an EFS commit, as docs/capacity.md models it), audit sync
`always`, audit to a real S3 (SeaweedFS), EMF on. The open-loop generator (bench/openloop.py, on
core 1) sends Poisson arrivals at `rate`: independent callers, not lock-step clients, which
flatter group commit. Over the measured window it counts the spool's storage calls (strace -y
names each call's file, so only the spool's are counted), the requests answered and their p99,
the log bytes written (EMF lines apart), and afterwards the S3 objects' bytes per record.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from botscore.audit.shipper import gzip_file  # noqa: E402
from tests.support.emf import documents  # noqa: E402
from tests.support.servers import BIN, LOOPBACK, Process, Weed, free_port, service_env, wait_for  # noqa: E402

FSYNC_DELAY_MS = 2.7
SERVER_CORE, LOAD_CORE = "0", "1"
BUCKET = "cost"
EMF_INTERVAL_SECONDS = 5  # shorter than production's 60 s, so a window holds several; bytes are per interval
STORAGE_CALLS = "fsync,fdatasync,openat,rename,renameat,renameat2,unlink,unlinkat,getdents64,flock,mkdir,ftruncate"
_NUMBERS = re.compile(rb'("(?:x1|x2|p_bot|latency_ms)":)[-0-9.e]+')
_CALL = re.compile(r"^(?:\d+\s+)?(\d+\.\d+) (\w+)\(")


def _storage_calls(trace: Path, spool: Path, opens: float, closes: float) -> Counter[str]:
    """Calls on the spool's files between `opens` and `closes` (epoch seconds), by name."""
    found: Counter[str] = Counter()
    marker = str(spool)
    for line in trace.read_text(errors="replace").splitlines():
        match = _CALL.match(line)
        if match and marker in line and opens <= float(match.group(1)) < closes:
            found[match.group(2)] += 1
    return found


def _varied(lines: list[bytes], seed: int = 1) -> bytes:
    """The shipped rows with features and scores as varied as real traffic's (the load sends one body, whose
    rows would compress far better than any real day's): each number drawn at random, at full precision."""
    draw = random.Random(seed)

    def number(match: re.Match[bytes]) -> bytes:
        return match.group(1) + repr(draw.random()).encode()

    return b"".join(_NUMBERS.sub(number, line) for line in lines)


def _metric_count(found: list[dict[str, Any]]) -> int:
    """Distinct CloudWatch metrics (name and dimension set) in one interval's EMF documents."""
    metrics = set()
    for document in found:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                key = tuple((name, document[name]) for name in dimension_set)
                metrics.update((metric["Name"], key) for metric in directive["Metrics"])
    return len(metrics)


def measure(window_ms: int, rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    weed = Weed(tmp / "s3").start()
    weed.create_bucket(BUCKET)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    spool = tmp / f"spool-{window_ms}"
    env = service_env(
        spool,
        audit_sync="always",
        audit_commit_window_ms=window_ms,
        audit_bucket=BUCKET,
        emf="true",
        emf_interval_seconds=EMF_INTERVAL_SECONDS,
        **weed.aws_env(),
    )
    trace = tmp / f"strace-{window_ms}.log"
    delay = int(FSYNC_DELAY_MS * 1000)
    # strace on the load's core: a tracer on the server's core would queue each traced call behind the server.
    argv = ["taskset", "-c", LOAD_CORE, "strace", "-f", "-qq", "-y", "-ttt", "--seccomp-bpf", "-o", str(trace)]
    argv += ["-e", f"trace={STORAGE_CALLS}"]
    argv += ["-e", f"inject=fsync:delay_enter={delay}", "-e", f"inject=fdatasync:delay_enter={delay}"]
    argv += [
        "--",
        "taskset",
        "-c",
        SERVER_CORE,
        str(BIN / "botscore"),
        "serve",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
    ]
    log = tmp / f"service-{window_ms}.log"
    process = Process(argv, env=env, log=log)
    try:
        wait_for(lambda: httpx.get(url + "/readyz", timeout=1).status_code == 200, 30, "service ready")
        load = ["taskset", "-c", LOAD_CORE, str(BIN / "python"), "-m", "bench.openloop", "--url", url + "/bot-score"]
        load += ["--rate", str(rate), "--seconds", str(seconds), "--warmup", "3", "--poisson", "--marks"]
        generator = subprocess.Popen(load, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert generator.stdout is not None
        marks: dict[str, tuple[float, int]] = {}
        summary: dict[str, Any] = {}
        for line in generator.stdout:
            if line.strip() in ("measuring", "measured"):
                marks[line.strip()] = (time.time(), log.stat().st_size)
            elif line.startswith("{"):
                summary = json.loads(line)
        generator.wait()
        (opens, log_from), (closes, log_to) = marks["measuring"], marks["measured"]
        time.sleep(1)
    finally:
        for child in psutil.Process(process.pid).children():
            child.terminate()  # SIGTERM to botscore itself (strace would only detach): it seals and ships
        process.stop()
    calls = _storage_calls(trace, spool, opens, closes)
    with log.open("rb") as handle:
        handle.seek(log_from)
        window_log = handle.read(log_to - log_from).decode(errors="replace")
    emf = documents(window_log)
    emf_bytes = sum(len(line) + 1 for line in window_log.splitlines() if '"_aws"' in line)
    other_bytes = len(window_log.encode()) - emf_bytes
    objects = list(weed.objects(BUCKET))
    weed.stop()
    rows = [line for _, body in objects for line in gzip.decompress(body).splitlines(keepends=True)]
    records = len(rows)
    varied = tmp / "varied.jsonl"
    varied.write_bytes(_varied(rows))
    answered = sum(int(n) for status, n in summary["statuses"].items() if status == "200")
    fsyncs = calls["fsync"] + calls["fdatasync"]
    return {
        "window_ms": window_ms,
        "rate": rate,
        "seconds": seconds,
        "fsync_delay_ms": FSYNC_DELAY_MS,
        "answered": answered,
        "failed_share": summary["failed_share"],
        "p50_ms": summary["ok_p50_ms"],
        "p99_ms": summary["ok_p99_ms"],
        "fsyncs_per_request": round(fsyncs / max(answered, 1), 4),
        "fsyncs_per_second": round(fsyncs / (closes - opens), 2),
        "storage_calls_per_second": {name: round(n / (closes - opens), 2) for name, n in sorted(calls.items())},
        "log_bytes_per_request": round(other_bytes / max(answered, 1), 2),
        "emf_bytes_per_interval": round(emf_bytes / ((closes - opens) / EMF_INTERVAL_SECONDS)),
        "emf_metrics": _metric_count(emf),
        "s3_gzip_bytes_per_record": round(len(gzip_file(varied)[1]) / max(records, 1), 1),
        "spool_bytes_per_record": round(varied.stat().st_size / max(records, 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--window-ms", type=int, default=20)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="botscore-storage-") as folder:
        print(json.dumps(measure(args.window_ms, args.rate, args.seconds, Path(folder)), indent=1))


if __name__ == "__main__":
    main()
