"""An open-loop HTTP/1.1 load generator: POSTs sent at fixed times, whatever the server does.

    .venv/bin/python -m bench.openloop --url http://127.0.0.1:8887/bot-score --rate 2000 --seconds 10

A closed loop (wrk, hey) sends a connection's next request when its answer comes back, so a
slow server slows the load and its queue never shows in the latencies (coordinated omission).
Here request i is due at start + i / rate and its latency runs from that due time: time spent
waiting for a connection, in the server's accept queue or behind other requests all counts.

With `--poisson` the gaps between due times are drawn from an exponential distribution of mean
1 / rate (seeded, so runs repeat): independent callers, as a payment platform's are. Fixed gaps
flatter anything that batches (group commit): a request never comes just after another.

Connections are HTTP/1.1 keep-alive, one request at a time each, taken from a pool in turn
(oldest idle first, so that every connection, and so every worker that accepted one, gets
its share). The pool grows when every connection is busy, up to `max_connections`; a request
due when the pool is at its cap and all busy is not sent and counted `unsent`; one without an
answer after `timeout` seconds is counted `timeout` and its connection closed.

Why our own: wrk 4.1 is closed loop; wrk2 and vegeta are in neither Debian bookworm nor PyPI,
and h2load's `--rate` paces connections, not requests. uvloop with raw protocols and one
pre-encoded request sends ~10,000 requests/s from one core with sub-millisecond lag here; the
scheduler's own lag is reported with every run (`lag_p99_ms`), so a run that outgrew the
generator shows it.

Output: one JSON object (see `Tally.summary`). With `--marks`, the lines `measuring` and
`measured` are printed when the measured window opens and closes, for a caller that reads
counters (CPU, memory) over exactly that window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

BODY = b'{"x1": 0.1, "x2": 0.2}'
_CONTENT_LENGTH = b"\r\ncontent-length:"


def due_time(start: float, rate: float, index: int) -> float:
    """When request `index` is due: fixed intervals of 1 / rate from `start`."""
    return start + index / rate


def poisson_offsets(rate: float, seconds: float, seed: int = 1) -> list[float]:
    """Due times (seconds from the start, under `seconds`) of a Poisson process's arrivals at `rate` a second."""
    draw = random.Random(seed).expovariate
    offsets, now = [], draw(rate)
    while now < seconds:
        offsets.append(now)
        now += draw(rate)
    return offsets


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of already sorted values; 0.0 when there are none."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Tally:
    """What happened to the requests due inside the measured window [opens, closes).

    Requests due before `opens` (the warm-up) are sent but not counted. Every time is on the
    `time.perf_counter()` clock; latencies are answer time minus due time.
    """

    opens: float
    closes: float
    latencies: dict[int, list[float]] = field(default_factory=dict)  # status -> seconds
    errors: Counter[str] = field(default_factory=Counter)
    lags: list[float] = field(default_factory=list)  # the scheduler's own delay in handling a due request

    @property
    def due(self) -> int:
        """Requests due in the window (each one is handed to the scheduler once)."""
        return len(self.lags)

    def counts(self, due: float) -> bool:
        return self.opens <= due < self.closes

    def scheduled(self, due: float, at: float) -> None:
        if self.counts(due):
            self.lags.append(at - due)

    def answered(self, due: float, at: float, status: int) -> None:
        if self.counts(due):
            self.latencies.setdefault(status, []).append(at - due)

    def failed(self, due: float, reason: str) -> None:
        if self.counts(due):
            self.errors[reason] += 1

    def summary(self, rate: float) -> dict[str, Any]:
        """The run in numbers: counts by status and error, latency percentiles (ms) of 200s and of all answers."""
        seconds = self.closes - self.opens
        due = self.due
        sent = due - self.errors["unsent"] - self.errors["connect"]
        ok = sorted(self.latencies.get(200, []))
        answered = sorted(v for values in self.latencies.values() for v in values)
        lags = sorted(self.lags)
        statuses = {str(status): len(values) for status, values in sorted(self.latencies.items())}
        failures = sum(self.errors.values()) + sum(n for s, n in statuses.items() if s != "200")

        def ms(values: list[float], q: float) -> float:
            return round(percentile(values, q) * 1000, 3)

        return {
            "rate": rate,
            "seconds": round(seconds, 3),
            "due": due,
            "sent_rate": round(sent / seconds, 1) if seconds else 0.0,
            "statuses": statuses,
            "errors": dict(sorted(self.errors.items())),
            "failed_share": round(failures / due, 6) if due else 0.0,
            "ok_p50_ms": ms(ok, 50),
            "ok_p99_ms": ms(ok, 99),
            "ok_max_ms": ms(ok, 100),
            "answered_p99_ms": ms(answered, 99),
            "lag_p99_ms": ms(lags, 99),
            "lag_max_ms": ms(lags, 100),
        }


def encode_request(host: str, port: int, path: str, body: bytes = BODY) -> bytes:
    """One HTTP/1.1 keep-alive POST of a JSON body, encoded once and sent as is."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def parse_response(buffer: bytes | bytearray) -> tuple[int, int, bool] | None:
    """(status, bytes taken, connection closes) of the first whole response in `buffer`, or None if incomplete.

    Enough HTTP for this server's answers: a status line, headers and a Content-Length body.
    """
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    start = head.find(_CONTENT_LENGTH)
    length = 0
    if start >= 0:
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + len(_CONTENT_LENGTH) : stop if stop >= 0 else len(head)])
    taken = head_end + 4 + length
    if len(buffer) < taken:
        return None
    return int(buffer[9:12]), taken, b"\r\nconnection: close" in head


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries at most one request at a time."""

    def __init__(self, generator: Generator, due: float | None) -> None:
        self.generator = generator
        self.due = due  # the request it carries, by due time; None when idle
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        if self.due is not None:
            self.transport.write(self.generator.request)

    def send(self, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(self.generator.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (parsed := parse_response(self.buffer)) is not None:
            status, taken, closes = parsed
            del self.buffer[:taken]
            if self.due is None:  # an answer to no request (e.g. a 408 on an idle connection): not ours to count
                continue
            due, self.due = self.due, None
            self.generator.answered(self, due, status, closes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.generator.lost(self)


class Generator:
    """Sends `rate` requests/s for `warmup + seconds` and tallies the last `seconds` of them."""

    def __init__(
        self,
        url: str,
        rate: float,
        seconds: float,
        *,
        warmup: float = 2.0,
        min_connections: int = 16,
        max_connections: int = 4096,
        timeout: float = 10.0,
        body: bytes = BODY,
        marks: bool = False,
        poisson: bool = False,
    ) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = encode_request(self.host, self.port, parts.path or "/", body)
        self.rate, self.seconds, self.warmup = rate, seconds, warmup
        self.min_connections, self.max_connections, self.timeout = min_connections, max_connections, timeout
        self.marks = marks
        self.poisson = poisson
        self.idle: deque[_Connection] = deque()
        self.busy: set[_Connection] = set()
        self.opened = 0  # connections open or opening
        self.most_opened = 0
        self.connecting: set[asyncio.Future[None]] = set()
        self.tally = Tally(0.0, 0.0)

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(self._open_idle(loop) for _ in range(self.min_connections)))
        start = time.perf_counter() + 0.01
        self.tally = Tally(start + self.warmup, start + self.warmup + self.seconds)
        sweeper = asyncio.ensure_future(self._sweep())
        length = self.warmup + self.seconds
        if self.poisson:
            offsets = poisson_offsets(self.rate, length)
        else:
            offsets = [due_time(0.0, self.rate, i) for i in range(math.ceil(length * self.rate))]
        total = len(offsets)
        opened_window = False
        index = 0
        while index < total:
            now = time.perf_counter()
            while index < total and (due := start + offsets[index]) <= now:
                self.tally.scheduled(due, now)
                self._send(loop, due)
                index += 1
            if self.marks and not opened_window and now >= self.tally.opens:
                opened_window = True
                print("measuring", flush=True)
            if index < total:
                # At least 1 ms: the loop's timers have that resolution, and a shorter sleep would spin
                # the core (and lose the scheduler's wake-up priority to a busy neighbour).
                await asyncio.sleep(max(0.001, start + offsets[index] - time.perf_counter()))
        if self.marks:
            print("measured", flush=True)
        while self.busy or self.opened > len(self.idle) + len(self.busy):
            await asyncio.sleep(0.01)
        sweeper.cancel()
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()
        return {**self.tally.summary(self.rate), "connections": max(self.most_opened, self.min_connections)}

    async def _open_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self.opened += 1
        try:
            _, protocol = await loop.create_connection(lambda: _Connection(self, None), self.host, self.port)
        except OSError:
            self.opened -= 1
            raise
        self.idle.append(protocol)

    def _send(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self.idle:
            connection = self.idle.popleft()
            self.busy.add(connection)
            connection.send(due)
        elif self.opened < self.max_connections:
            self.opened += 1
            self.most_opened = max(self.most_opened, self.opened)
            task = asyncio.ensure_future(self._connect(loop, due))
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)
        else:
            self.tally.failed(due, "unsent")

    async def _connect(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        """A new connection that sends its first request (due at `due`) as soon as it is made."""
        connecting = loop.create_connection(lambda: _Connection(self, due), self.host, self.port)
        try:
            _, protocol = await asyncio.wait_for(connecting, self.timeout - (time.perf_counter() - due))
        except (OSError, TimeoutError) as exc:
            self.opened -= 1
            self.tally.failed(due, "timeout" if isinstance(exc, TimeoutError) else "connect")
            return
        if protocol.due is not None:
            self.busy.add(protocol)

    def answered(self, connection: _Connection, due: float, status: int, closes: bool) -> None:
        self.tally.answered(due, time.perf_counter(), status)
        self.busy.discard(connection)
        if closes:
            assert connection.transport is not None
            connection.transport.close()
        else:
            self.idle.append(connection)

    def lost(self, connection: _Connection) -> None:
        self.opened -= 1
        if connection.due is not None:
            self.tally.failed(connection.due, "disconnected")
            connection.due = None
        self.busy.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)

    async def _sweep(self) -> None:
        """Every 50 ms: a request older than the timeout is counted `timeout` and its connection dropped."""
        while True:
            await asyncio.sleep(0.05)
            late = time.perf_counter() - self.timeout
            for connection in list(self.busy):
                if connection.due is not None and connection.due < late:
                    self.tally.failed(connection.due, "timeout")
                    connection.due = None
                    self.busy.discard(connection)
                    assert connection.transport is not None
                    connection.transport.abort()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at the rate before it, not counted")
    parser.add_argument("--min-connections", type=int, default=16, help="connections opened before the start")
    parser.add_argument("--max-connections", type=int, default=4096, help="the pool's cap")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as timed out")
    parser.add_argument("--marks", action="store_true", help="print `measuring` and `measured` around the window")
    parser.add_argument(
        "--poisson", action="store_true", help="exponential gaps between requests (independent callers)"
    )
    args = parser.parse_args(argv)
    import uvloop

    generator = Generator(
        args.url,
        args.rate,
        args.seconds,
        warmup=args.warmup,
        min_connections=args.min_connections,
        max_connections=args.max_connections,
        timeout=args.timeout,
        marks=args.marks,
        poisson=args.poisson,
    )
    summary = uvloop.run(generator.run())
    print(json.dumps(summary), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
