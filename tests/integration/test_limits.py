"""`botscore serve` against clients that are slow, oversized or too many: real sockets, a real server.

The bounds are BotscoreProtocol's (botscore.http.protocol): the request head's size (431), the time
to send a whole request (408), idle connections (closed), and the worker's requests in flight (503).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.records import shipped_records
from tests.support.servers import BIN, LOOPBACK, Service, free_port

KEY = "k-limits-0123456789"
SCORE = b'{"x1": 0.1, "x2": 0.2}'


def _connect(service: Service) -> socket.socket:
    return socket.create_connection((LOOPBACK, service.port), timeout=10)


def _read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection")
    return chunk


def _read_one(sock: socket.socket) -> bytes:
    """One answer on a kept-alive connection: its head, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1]
    )
    while len(body) < length:
        body += _recv(sock)
    return head + b"\r\n\r\n" + body


def _peek_status(sock: socket.socket) -> int:
    """The status of the first answer on the connection, leaving it to be read."""
    data = b""
    while b"\r\n" not in data:
        data = sock.recv(65536, socket.MSG_PEEK)
    return int(data.split()[1])


def _status_and_body(answer: bytes) -> tuple[int, dict[str, object], dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), json.loads(body), {k.lower(): v for k, v in headers.items()}


def test_an_oversized_head_is_refused_with_431_and_the_connection_closed(tmp_path: Path) -> None:
    service = Service(tmp_path, api_keys=KEY).start()
    try:
        with _connect(service) as sock:
            sock.sendall(b"POST /bot-score HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000)
            status, body, headers = _status_and_body(_read_answer(sock))
        assert status == 431
        assert body["error"] == {
            "code": "request_header_too_large",
            "message": "request head over 32768 bytes",
            "field": None,
        }
        assert headers["connection"] == "close"
    finally:
        service.stop()


def test_a_head_not_sent_in_time_gets_408_and_an_idle_connection_is_closed(tmp_path: Path) -> None:
    service = Service(tmp_path, request_timeout_seconds=1, keep_alive_seconds=2).start()
    try:
        with _connect(service) as slow, _connect(service) as idle:
            slow.sendall(b"POST /bot-score HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            started = time.monotonic()
            status, body, _ = _status_and_body(_read_answer(slow))
            assert status == 408
            assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
            assert _read_answer(idle) == b""  # closed without a word: it never asked anything
            assert time.monotonic() - started < 8
    finally:
        service.stop()


def test_a_body_not_sent_in_time_gets_408_and_is_recorded(tmp_path: Path) -> None:
    service = Service(tmp_path, request_timeout_seconds=1).start()
    try:
        with _connect(service) as sock:
            sock.sendall(
                b"POST /bot-score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Request-ID: slow-body-1\r\nContent-Length: 22\r\n\r\n" + SCORE[:10]
            )
            status, body, headers = _status_and_body(_read_answer(sock))
        assert status == 408
        assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
        assert headers["x-request-id"] == "slow-body-1"
        assert headers["connection"] == "close"
    finally:
        service.stop()
    [row] = [r for r in shipped_records(service.audit_dir) if r["id"] == "slow-body-1"]
    assert (row["status"], row["error_code"], row["raw"]) == (408, "request_timeout", SCORE[:10].decode())


def test_slow_and_oversized_clients_without_a_key_hold_neither_memory_nor_normal_requests(tmp_path: Path) -> None:
    # Before the bounds, ten unfinished 20 MB heads held about 100 MB of a worker, and a client that
    # sent half a request held its connection for ever.
    service = Service(tmp_path, api_keys=KEY, request_timeout_seconds=2).start()
    worker = psutil.Process(service.process.pid if service.process else 0)
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=service.url, headers=headers, timeout=10) as client:
            for _ in range(50):
                assert client.post("/bot-score", content=SCORE).status_code == 200
            rss_before = worker.memory_info().rss

            def oversized(_: int) -> bytes:
                with _connect(service) as sock:
                    with contextlib.suppress(OSError):  # the server closes on us after its 431, as it should
                        sock.sendall(b"POST /bot-score HTTP/1.1\r\nX-Pad: " + b"a" * (20 << 20))
                    try:
                        return _read_answer(sock)
                    except OSError:
                        return b""

            half_sent = [_connect(service) for _ in range(300)]
            for sock in half_sent:
                sock.sendall(b"POST /bot-score HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{")
            idle = [_connect(service) for _ in range(300)]
            latencies = []
            with ThreadPoolExecutor(10) as pool:
                attacks = pool.map(oversized, range(10))
                for _ in range(200):
                    started = time.perf_counter()
                    assert client.post("/bot-score", content=SCORE).status_code == 200
                    latencies.append(time.perf_counter() - started)
                answers = list(attacks)
            rss_during = worker.memory_info().rss
            assert all(a == b"" or a.startswith(b"HTTP/1.1 431") for a in answers)
            # No key: 401 before the body; the body never comes, so the connection is closed once its
            # time is up (the client has its answer: no second one).
            for sock in half_sent:
                sock.settimeout(10)
                answer = _read_answer(sock)
                assert answer.startswith(b"HTTP/1.1 401") and answer.count(b"HTTP/1.1") == 1
                sock.close()
            for sock in idle:
                sock.close()
        assert rss_during - rss_before < 40 << 20
        assert max(latencies) < 1.0  # a shared, noisy machine: a bound, not a benchmark
    finally:
        service.stop()


def test_past_the_in_flight_bound_scoring_requests_are_shed_with_503_and_recorded(tmp_path: Path) -> None:
    service = Service(tmp_path, max_in_flight=1, audit_sync="always").start()
    try:
        sockets = [_connect(service) for _ in range(100)]
        for n, sock in enumerate(sockets):  # all sent before any is read: the worker sees them at once
            sock.sendall(
                b"POST /bot-score HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-ID: shed-%d\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (n, len(SCORE), SCORE)
            )
        answers = [_status_and_body(_read_answer(sock)) for sock in sockets]
        for sock in sockets:
            sock.close()
        assert httpx.get(service.url + "/healthz").status_code == 200  # health checks are never shed
    finally:
        service.stop()
    shed = {h["x-request-id"] for status, _, h in answers if status == 503}
    assert shed and len(shed) < 100  # some served, some shed
    for status, body, headers in answers:
        if status == 503:
            assert body["error"]["code"] == "overloaded"  # type: ignore[index]
            assert headers["retry-after"] == "1"
        else:
            assert status == 200
    rows = {r["id"]: r for r in shipped_records(service.audit_dir)}
    assert all(rows[rid]["status"] == 503 and rows[rid]["error_code"] == "overloaded" for rid in shed)
    assert len(rows) == 100  # every answer recorded


def test_an_idle_connection_outlives_the_load_balancers_idle_timeout_by_default(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    request = b"POST /bot-score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(SCORE), SCORE)
    try:
        with _connect(service) as sock:
            sock.sendall(request)
            assert _read_one(sock).startswith(b"HTTP/1.1 200")
            time.sleep(6)  # uvicorn's own default (5 s) would have closed it, and the ALB would answer 502
            sock.sendall(request)
            assert _read_one(sock).startswith(b"HTTP/1.1 200")
    finally:
        service.stop()


def test_a_large_body_sent_with_its_head_is_not_taken_for_an_oversized_head(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    body = json.dumps({"instances": [{"x1": 0.123456789 + i, "x2": 0.987654321} for i in range(1000)]}).encode()
    assert len(body) > 32768
    request = b"POST /bot-score/batch HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    try:
        with _connect(service) as sock:
            sock.sendall(request + request)  # two in one write, pipelined: both heads are small
            first = _read_one(sock)
            second = _read_one(sock)
        assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    finally:
        service.stop()


def test_a_shed_answer_closes_its_connection_and_new_ones_are_served_once_the_load_passes(tmp_path: Path) -> None:
    service = Service(tmp_path, max_in_flight=1, audit_sync="always").start()
    request = b"POST /bot-score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(SCORE), SCORE)
    try:
        sockets = [_connect(service) for _ in range(50)]
        for sock in sockets:
            sock.sendall(request + request)  # pipelined: a shed answer must not leave the second behind
        answers = [_read_answer(sock) if _peek_status(sock) == 503 else b"" for sock in sockets]
        shed = [a for a in answers if a]
        assert shed and all(a.count(b"HTTP/1.1") == 1 and b"connection: close" in a for a in shed)
        for sock in sockets:
            sock.close()
        # The one connection that was not shed may still have its pipelined second request waiting
        # for its fsync: the load has passed once that is answered, and never if a count leaked.
        deadline = time.monotonic() + 5
        while True:
            with _connect(service) as sock:
                sock.sendall(request)
                if _read_one(sock).startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                    break
            time.sleep(0.05)
        for _ in range(20):  # one at a time now: nothing else in flight, so each is served
            with _connect(service) as sock:
                sock.sendall(request)
                assert _read_one(sock).startswith(b"HTTP/1.1 200")
    finally:
        service.stop()


@pytest.mark.parametrize("target", [b"/bot-score", b"/bot-score?over=asgi"])  # answered by the connection, or the app
def test_a_slow_body_does_not_count_towards_the_in_flight_bound(tmp_path: Path, target: bytes) -> None:
    service = Service(tmp_path, max_in_flight=1).start()
    request = b"POST /bot-score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(SCORE), SCORE)
    try:
        slow = [_connect(service) for _ in range(5)]
        for sock in slow:
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{" % target)
        time.sleep(0.5)
        for _ in range(10):
            with _connect(service) as sock:
                sock.sendall(request)
                assert _read_one(sock).startswith(b"HTTP/1.1 200")
        for sock in slow:
            sock.close()
    finally:
        service.stop()


def test_a_body_that_spans_several_reads_is_not_taken_for_an_oversized_head(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    body = json.dumps({"instances": [{"x1": 0.123456789 + i, "x2": 0.987654321} for i in range(1000)]}).encode()
    head = b"POST /bot-score/batch HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    try:
        with _connect(service) as sock:
            sock.sendall(head + body[:5000])
            time.sleep(0.3)  # the rest arrives in reads of its own, 40 KB of them after the head ended
            sock.sendall(body[5000:])
            assert _read_one(sock).startswith(b"HTTP/1.1 200")
    finally:
        service.stop()


def _statuses(answers: bytes) -> list[int]:
    """The statuses of every answer in what the server sent, in order."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)]


def test_a_huge_head_sent_in_small_reads_is_refused_with_431(tmp_path: Path) -> None:
    # The bound counts the whole head, not each read: 200 bytes at a time never reach it alone.
    service = Service(tmp_path).start()
    try:
        with _connect(service) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(b"POST /bot-score HTTP/1.1\r\nHost: x\r\n")
            with contextlib.suppress(OSError):  # the server may close while we still send
                for n in range(250):  # 50 KB of headers
                    sock.sendall(b"X-Pad-%03d: %s\r\n" % (n, b"a" * 186))
                    time.sleep(0.002)
            status, body, _ = _status_and_body(_read_answer(sock))
        assert status == 431
        assert body["error"]["message"] == "request head over 32768 bytes"  # type: ignore[index]
    finally:
        service.stop()


def test_a_huge_head_in_one_write_with_its_body_is_refused_with_431(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    try:
        with _connect(service) as sock:
            sock.sendall(
                b"POST /bot-score HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (b"a" * 98_000, len(SCORE), SCORE)
            )
            assert _statuses(_read_answer(sock)) == [431]
    finally:
        service.stop()


def test_a_head_sent_a_few_bytes_at_a_time_still_gets_408_in_time(tmp_path: Path) -> None:
    # The deadline runs from the request's first byte: each new byte must not restart it.
    service = Service(tmp_path, request_timeout_seconds=1).start()
    try:
        with _connect(service) as sock:
            started = time.monotonic()
            status = 0
            with contextlib.suppress(OSError):
                for byte in b"POST /bot-score HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.monotonic() - started > 6:
                        break
            status, body, _ = _status_and_body(_read_answer(sock))
            elapsed = time.monotonic() - started
        assert status == 408
        assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
        assert elapsed < 3
    finally:
        service.stop()


def test_clients_that_leave_before_their_answer_do_not_count_in_flight_afterwards(tmp_path: Path) -> None:
    # Each answer waits for an fsync; the client is gone by then, so it is never sent. If those
    # requests stayed counted, the worker would shed every request after a few of them.
    service = Service(tmp_path, max_in_flight=2, audit_sync="always").start()
    request = b"POST /bot-score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(SCORE), SCORE)
    # With a query string the request goes through the app over ASGI, without it the connection answers it.
    over_asgi = request.replace(b"/bot-score", b"/bot-score?over=asgi", 1)
    try:
        for n in range(80):
            sock = _connect(service)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.sendall(request if n % 2 else over_asgi)
            sock.close()  # a reset at once, before the answer
        time.sleep(0.5)
        for _ in range(5):
            with _connect(service) as sock:
                sock.sendall(request)
                assert _read_one(sock).startswith(b"HTTP/1.1 200")
    finally:
        service.stop()


def test_a_client_that_reads_none_of_its_answers_starves_nobody_and_is_dropped(tmp_path: Path) -> None:
    # One place in flight: the hog's answers waiting for it to read, or its queued requests, must not take it.
    service = Service(tmp_path, max_in_flight=1, request_timeout_seconds=2).start()
    worker = psutil.Process(service.process.pid if service.process else 0)
    try:
        hog = _connect(service)
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 10_000)  # 39 MB of answers, never read
        time.sleep(1)
        for n in range(20):
            with _connect(service) as sock:
                sock.sendall(
                    b"POST /bot-score HTTP/1.1\r\nHost: x\r\nX-Request-ID: other-%d\r\nContent-Length: %d\r\n\r\n%s"
                    % (n, len(SCORE), SCORE)
                )
                assert _read_one(sock).startswith(b"HTTP/1.1 200")
        assert httpx.get(service.url + "/readyz").status_code == 200
        hog_port = hog.getsockname()[1]

        def states() -> set[str]:
            return {c.status for c in worker.net_connections() if c.raddr and c.raddr.port == hog_port}

        assert states() == {"ESTABLISHED"}
        time.sleep(4)  # past BOTSCORE_REQUEST_TIMEOUT_SECONDS with its answers unread: dropped
        assert "ESTABLISHED" not in states()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        hog.close()
    finally:
        service.stop()
    assert "Exception in ASGI application" not in service.log.read_text()


@pytest.mark.parametrize("chunked", [False, True])  # the body framed by Content-Length, or chunked
def test_an_upgrade_request_with_a_body_is_refused_and_its_body_never_read_as_a_request(
    tmp_path: Path, chunked: bool
) -> None:
    service = Service(tmp_path).start()
    smuggled = b"POST /bot-score HTTP/1.1\r\nHost: x\r\nX-Request-ID: smuggled\r\nContent-Length: %d\r\n\r\n%s" % (
        len(SCORE),
        SCORE,
    )
    framed = (
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
        if chunked
        else b"Content-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
    )
    try:
        with _connect(service) as sock:
            sock.sendall(
                b"POST /bot-score HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"X-Request-ID: upgrading\r\n" + framed
            )
            answers = _read_answer(sock)
        assert _statuses(answers) == [400]
        assert b"upgrade_not_supported" in answers
        with _connect(service) as sock:  # an upgrade without a body is an ordinary request, then the close
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            assert _statuses(_read_answer(sock)) == [200]
    finally:
        service.stop()
    assert "smuggled" not in {r["id"] for r in shipped_records(service.audit_dir)}


def test_a_bad_request_pipelined_behind_good_ones_is_answered_after_them(tmp_path: Path) -> None:
    # audit_sync=always: the good answers wait for an fsync while the bad request is already parsed.
    service = Service(tmp_path, audit_sync="always").start()
    good = b"POST /bot-score HTTP/1.1\r\nHost: x\r\nX-Request-ID: good-%d\r\nContent-Length: %d\r\n\r\n%s"
    try:
        with _connect(service) as sock:
            sock.sendall(good % (1, len(SCORE), SCORE) + good % (2, len(SCORE), SCORE) + b"NOT HTTP AT ALL\r\n\r\n")
            answers = _read_answer(sock)
        assert _statuses(answers) == [200, 200, 400]
        assert answers.index(b"good-1") < answers.index(b"good-2") < answers.index(b"bad_request")
    finally:
        service.stop()


def test_the_briefs_command_says_at_start_up_that_it_serves_without_the_bounds(tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "uvicorn"), "app.main:app", "--host", LOOPBACK, "--port", str(port)]
    brief = Service(tmp_path, command, port=port)
    bounded = Service(tmp_path)
    for service in (brief, bounded):
        service.start()
        assert httpx.post(service.url + "/bot-score", content=SCORE).status_code == 200
        service.stop()
    assert "served without botscore's connection bounds" in brief.log.read_text()
    assert "served without botscore's connection bounds" not in bounded.log.read_text()
