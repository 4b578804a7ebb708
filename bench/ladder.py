"""Where the time goes: the ceiling app with the hot path's required work added one step at a time.

    .venv/bin/python bench/ladder.py            (wrk and taskset, as for make bench)

Each step is served by uvicorn with botscore serve's options, pinned to core 0, and loaded
by wrk (32 connections) on core 1; the table gives req/s and the µs each step adds. It
shows the floor of the design: what strict parsing, the audit record, the spool write and
the metrics cost in this stack even when written inline with no structure around them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = [
    "ceiling: read the body, answer a fixed body with 2 headers",
    "+ X-Request-ID (new id) and X-Model-Version headers",
    "+ scan the request headers",
    "+ clocks, method, length and content-type checks",
    "+ strict parse, score, response body",
    "+ the audit record (formatted bytes)",
    "+ append it to the spool file (one write)",
    "+ metrics (two list appends; flushed in bulk)",
]

if os.environ.get("LADDER_STEP") is not None:
    import time as _time

    from botscore.audit import record
    from botscore.call import Call
    from botscore.dataplane import validation
    from botscore.http.ids import new_request_id
    from botscore.model import artifact
    from botscore.model.scorer import Scorer
    from botscore.ops.metrics import Metrics
    from botscore.settings import SHIPPED_MODEL

    _JSON = b"application/json"
    _NOTED = [0]

    STEP = int(os.environ["LADDER_STEP"])
    _FIXED = b'{"p_bot":0.123}'
    _SCORER = Scorer(artifact.load(SHIPPED_MODEL))
    _METRICS = Metrics()
    _FD = os.open(os.environ["LADDER_SPOOL"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        content_type = content_length = None
        if STEP >= 2:
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-length":
                    content_length = value
        if STEP >= 3:
            started, now = _time.perf_counter(), _time.time()
            if scope["method"] != "POST" or (content_length is not None and int(content_length) > 1024):
                return
        message = await receive()
        body = message.get("body", b"")
        if STEP >= 3 and content_type != _JSON:
            return
        response = _FIXED
        if STEP >= 4:
            x1, x2, t1, t2 = validation.parse_with_tokens(body)
            p_bot = _SCORER.p_bot(x1, x2)
            p_bot_token = b"%r" % p_bot
            response = b'{"p_bot":%s}' % p_bot_token
        rid = new_request_id() if STEP >= 1 else b""
        if STEP >= 5:
            call = Call("/bot-score", "POST", rid, _SCORER, now, started)
            line = record.scored(call, 0, t1, t2, p_bot_token)
        if STEP >= 6:
            os.write(_FD, line)
        if STEP >= 7:
            _METRICS.note_score((x1, x2, p_bot))
            _METRICS.note_request(("/bot-score", 200, _time.perf_counter() - started, None))
            _NOTED[0] += 1
            if _NOTED[0] % 5000 == 0:
                _METRICS.flush()
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(response))]
        if STEP >= 1:
            headers += [(b"x-request-id", rid), (b"x-model-version", _SCORER.version_bytes)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": response})


def main() -> None:
    from tests.support.servers import BIN, LOOPBACK, free_port

    seconds = int(os.environ.get("BENCH_SECONDS", "8"))
    spool = Path("/tmp") / f"botscore-ladder-{os.getpid()}.jsonl"
    rows = []
    for step, label in enumerate(STEPS):
        port = free_port()
        code = (
            f"import sys, uvicorn; sys.path.insert(0, {str(ROOT)!r}); from botscore.server import UVICORN_OPTIONS; "
            f"uvicorn.run('bench.ladder:app', host={LOOPBACK!r}, port={port}, **UVICORN_OPTIONS)"
        )
        env = {**os.environ, "LADDER_STEP": str(step), "LADDER_SPOOL": str(spool)}
        server = subprocess.Popen(
            ["taskset", "-c", "0", str(BIN / "python"), "-c", code],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)
            out = subprocess.run(
                [
                    "taskset",
                    "-c",
                    "1",
                    "wrk",
                    "-t1",
                    "-c32",
                    f"-d{seconds}s",
                    "-s",
                    str(ROOT / "bench" / "post.lua"),
                    f"http://{LOOPBACK}:{port}/bot-score",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            server.terminate()
            server.wait(10)
        rows.append((label, float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))))
    spool.unlink(missing_ok=True)
    print("| step | req/s | µs/request | added |\n| --- | --- | --- | --- |")
    previous = None
    for label, rps in rows:
        us = 1e6 / rps
        added = "" if previous is None else f"{us - previous:+.1f}"
        print(f"| {label} | {rps:,.0f} | {us:.1f} | {added} |")
        previous = us


if __name__ == "__main__":
    main()
