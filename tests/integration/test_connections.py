"""`botscore serve` against too many connections and too many scrapes: real sockets, a real server.

A worker holds a bounded number of connections (below its open-file limit), and `/metrics` is
rendered at most once a second and shed like a scoring request.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import httpx

from tests.support.servers import BIN, LOOPBACK, Service

SCORE = b'{"x1": 0.1, "x2": 0.2}'


def _connect(service: Service) -> socket.socket:
    return socket.create_connection((LOOPBACK, service.port), timeout=10)


def test_idle_connections_past_the_open_file_limit_leave_health_checks_and_clients_served(tmp_path: Path) -> None:
    # Before: 1,100 idle keyless connections at a 1,024 open-file limit left new clients and health
    # checks unanswered, and the heartbeat and shipper failed with EMFILE.
    argv = ["prlimit", "--nofile=256:256", str(BIN / "botscore"), "serve", "--host", LOOPBACK, "--port"]
    service = Service(tmp_path, argv, audit_segment_max_age_seconds=1)
    service.argv.append(str(service.port))
    service.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(400):
            with contextlib.suppress(OSError):
                idle.append(_connect(service))
        time.sleep(0.5)
        for _ in range(20):
            assert httpx.get(service.url + "/healthz", timeout=2).status_code == 200
            assert httpx.post(service.url + "/bot-score", content=SCORE, timeout=2).status_code == 200
        time.sleep(2)  # a segment sealed and shipped meanwhile: the shipper had descriptors to do it
        assert httpx.get(service.url + "/readyz", timeout=2).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        service.stop()
    log = service.log.read_text()
    assert "Too many open files" not in log
    assert "EMFILE" not in log


def test_metrics_are_rendered_at_most_once_a_second(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    try:
        with httpx.Client(base_url=service.url) as client:
            for _ in range(5):  # a loaded machine may take a second over the scoring requests: try again then
                started = time.monotonic()
                first = client.get("/metrics").text
                for _ in range(5):
                    assert client.post("/bot-score", content=SCORE).status_code == 200
                second = client.get("/metrics").text
                if time.monotonic() - started < 0.9:
                    break
                time.sleep(1.0)
            else:
                raise AssertionError("no two scrapes within 0.9 s")
            assert second == first  # the scores since are counted, but not rendered yet
            time.sleep(1.0)
            assert client.get("/metrics").text != first
    finally:
        service.stop()


def test_metrics_are_shed_past_the_in_flight_bound_and_health_checks_are_not(tmp_path: Path) -> None:
    service = Service(tmp_path, max_in_flight=1, audit_sync="always").start()
    request = b"POST /bot-score HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
        len(SCORE),
        SCORE,
    )
    try:
        sockets = [_connect(service) for _ in range(60)]
        for n, sock in enumerate(sockets):
            if n % 3 == 0:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            elif n % 3 == 1:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            else:
                sock.sendall(request)
        answers = []
        for sock in sockets:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answers.append(b"".join(chunks))
            sock.close()
    finally:
        service.stop()
    metrics = [answer.split(b" ", 2)[1] for answer in answers[0::3]]
    health = [answer.split(b" ", 2)[1] for answer in answers[1::3]]
    assert set(health) == {b"200"}
    assert b"503" in metrics
    shed = next(answer for answer in answers[0::3] if answer.split(b" ", 2)[1] == b"503")
    assert b'"code":"overloaded"' in shed
    assert b"retry-after: 1\r\n" in shed
