"""The open-loop generator: requests due at fixed times, latency from the due time, every failure counted."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bench.openloop import Generator, Tally, due_time, encode_request, parse_response, percentile, poisson_offsets


def test_requests_are_due_at_fixed_intervals_from_the_start() -> None:
    assert [due_time(10.0, 4.0, i) for i in range(5)] == [10.0, 10.25, 10.5, 10.75, 11.0]


def test_poisson_arrivals_have_the_rate_and_exponential_gaps_and_repeat_with_the_seed() -> None:
    offsets = poisson_offsets(1000.0, 20.0)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert 19_000 < len(offsets) < 21_000
    assert offsets == sorted(offsets) and offsets[0] > 0 and offsets[-1] < 20.0
    # Exponential: a third of the gaps are under 0.4 / rate (1 - e^-0.4 = 0.33), unlike fixed ones (none).
    assert 0.31 < sum(gap < 0.0004 for gap in gaps) / len(gaps) < 0.35
    assert poisson_offsets(1000.0, 20.0) == offsets
    assert poisson_offsets(1000.0, 20.0, seed=2) != offsets


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 50) == 50.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) == 0.0


def test_latency_runs_from_the_due_time_not_from_the_send() -> None:
    tally = Tally(opens=100.0, closes=101.0)
    tally.scheduled(100.0, at=100.5)  # handled half a second late: that wait is the client's too
    tally.answered(100.0, at=100.6, status=200)
    assert tally.latencies == {200: [pytest.approx(0.6)]}
    assert tally.lags == [pytest.approx(0.5)]


def test_requests_due_outside_the_window_are_sent_but_not_counted() -> None:
    tally = Tally(opens=100.0, closes=101.0)
    for due in (99.9, 100.0, 100.999, 101.0):
        tally.scheduled(due, at=due)
        tally.answered(due, at=due + 0.001, status=200)
    assert tally.due == 2
    assert len(tally.latencies[200]) == 2


def test_the_summary_separates_200s_sheds_other_statuses_and_errors() -> None:
    tally = Tally(opens=0.0, closes=1.0)
    for i in range(10):
        tally.scheduled(i / 10, at=i / 10)
    for i in range(6):
        tally.answered(i / 10, at=i / 10 + (i + 1) / 1000, status=200)
    tally.answered(0.6, at=0.9, status=503)
    tally.answered(0.7, at=0.71, status=500)
    tally.failed(0.8, "unsent")
    tally.failed(0.9, "timeout")
    summary = tally.summary(rate=10.0)
    assert summary["due"] == 10
    assert summary["statuses"] == {"200": 6, "500": 1, "503": 1}
    assert summary["errors"] == {"timeout": 1, "unsent": 1}
    assert summary["failed_share"] == 0.4
    assert summary["sent_rate"] == 9.0  # the unsent one never left
    assert summary["ok_p99_ms"] == 6.0  # the 503's 300 ms is not a 200's latency
    assert summary["ok_max_ms"] == 6.0
    assert summary["answered_p99_ms"] == 300.0


def test_a_response_is_parsed_only_when_whole() -> None:
    response = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nRetry-After: 1\r\n\r\nbusy!"
    assert parse_response(response[:20]) is None
    assert parse_response(response[:-1]) is None
    assert parse_response(response + b"HTTP/1.1 200") == (503, len(response), False)
    closing = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
    assert parse_response(closing) == (200, len(closing), True)
    assert parse_response(b"HTTP/1.1 204 No Content\r\n\r\n") == (204, 27, False)


def test_the_request_is_a_keep_alive_post_with_its_length() -> None:
    request = encode_request("127.0.0.1", 8887, "/bot-score", b'{"x1": 0.1, "x2": 0.2}')
    assert request.startswith(b"POST /bot-score HTTP/1.1\r\nHost: 127.0.0.1:8887\r\n")
    assert b"Content-Length: 22\r\n\r\n" in request
    assert b"close" not in request.lower()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/bot-score"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n" + b'{"p_bot":0.123}')
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


def _run(handler: Handler, generator: Callable[[str], Generator]) -> dict[str, Any]:
    """A generator made for the URL of a tiny in-process server, run to its end."""

    async def main() -> dict[str, Any]:
        async for url in _serve(handler):
            return await generator(url).run()
        raise AssertionError("no server")

    return asyncio.run(main())


def test_every_request_due_in_the_window_is_sent_and_answered() -> None:
    summary = _run(_answer, lambda url: Generator(url, 200.0, 0.5, warmup=0.1, min_connections=2))
    assert summary["due"] == 100
    assert summary["statuses"] == {"200": 100}
    assert summary["errors"] == {}


def test_a_request_with_no_free_connection_at_the_cap_is_unsent_and_one_never_answered_times_out() -> None:
    summary = _run(
        _never_answer,
        lambda url: Generator(url, 100.0, 0.3, warmup=0.0, min_connections=1, max_connections=2, timeout=0.5),
    )
    assert summary["due"] == 30
    assert summary["statuses"] == {}
    assert summary["errors"] == {"timeout": 2, "unsent": 28}
