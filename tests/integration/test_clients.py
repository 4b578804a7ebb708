"""The client guide's examples (docs/clients/) run against a real `botscore serve`, and the committed
OpenAPI document is the one it serves.

Each example scores with the payment's id as X-Request-ID, and the audit row is found by that id.
Against a stub HTTP server on 127.0.0.1 that answers what a load balancer and a struggling fleet do
(an HTML 502, a 503 with Retry-After, no answer, a reset connection), each follows the retry table of
docs/clients.md to the attempt and fails open, with the reason it prints.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing, suppress

import httpx
import pytest

from tests.support.records import shipped_records, spooled_records
from tests.support.servers import BIN, LOOPBACK, ROOT, Service, wait_for

CLIENTS = ROOT / "docs" / "clients"
KEY = "client-guide-key-0123456789"
EXPECTED = 0.9211156209223077  # /bot-score's answer for (0.1, 0.2), checked against the service below


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    server = Service(tmp_path_factory.mktemp("clients"), api_keys=KEY).start()
    yield server
    server.stop()


def run(argv: list[str], *, timeout_ms: int = 5000, key: str = KEY) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "BOTSCORE_API_KEY": key, "BOTSCORE_TIMEOUT_MS": str(timeout_ms)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=CLIENTS)


SINGLE_SCORE_EXAMPLES = ["score_httpx.py", "BotScore.java", "score_fetch.mjs"]
LAUNCHERS = {".java": ["java"], ".mjs": ["node"], ".py": [str(BIN / "python")]}


def example(name: str, *args: str, timeout_ms: int = 5000, key: str = KEY) -> subprocess.CompletedProcess[str]:
    launcher = LAUNCHERS[name[name.rindex(".") :]]
    return run([*launcher, str(CLIENTS / name), *args], timeout_ms=timeout_ms, key=key)


def rows_with_id(service: Service, request_id: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    def look() -> bool:
        rows = spooled_records(service.audit_dir) + shipped_records(service.audit_dir)
        found[:] = [row for row in rows if row["id"] == request_id]
        return bool(found)

    wait_for(look, 10, f"the audit row of {request_id}")
    return found


def test_the_expected_score_is_the_services(service: Service) -> None:
    answer = httpx.post(
        service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert answer.json() == {"p_bot": EXPECTED}


@pytest.mark.parametrize("name", SINGLE_SCORE_EXAMPLES)
def test_a_single_score_example_finds_its_payment_in_the_audit_log(service: Service, name: str) -> None:
    payment = f"pay_{name.split('.', maxsplit=1)[0].lower()}_20261202_0001"
    result = example(name, service.url, payment, "0.1", "0.2")
    assert result.returncode == 0, result.stderr
    version = httpx.get(service.url + "/readyz").json()["model_version"]
    assert result.stdout == f"{payment} p_bot={EXPECTED!r} model={version}\n"
    [row] = rows_with_id(service, payment)
    assert (row["status"], row["p_bot"], row["x1"], row["x2"]) == (200, EXPECTED, 0.1, 0.2)


@pytest.mark.parametrize("name", SINGLE_SCORE_EXAMPLES)
def test_a_single_score_example_reports_a_refusal_without_retrying_it(service: Service, name: str) -> None:
    payment = f"pay_refused_{name.split('.', maxsplit=1)[0].lower()}"
    result = example(name, service.url, payment, "0.1", "0.2", key="not-the-key")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{payment} no score (401 unauthorized")
    assert len(rows_with_id(service, payment)) == 1  # a 401 is not retried


@pytest.mark.parametrize("name", SINGLE_SCORE_EXAMPLES)
def test_a_single_score_example_fails_open_on_a_timeout(name: str) -> None:
    # A listening socket that never answers: the connection is made (the kernel's backlog), the answer never comes.
    with closing(socket.socket()) as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(16)
        url = f"http://{LOOPBACK}:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = example(name, url, "pay_timeout", "0.1", "0.2", timeout_ms=300)
        took = time.monotonic() - started
    assert result.stdout == "pay_timeout no score (timeout): failing open\n", result.stderr
    assert took < 10  # two attempts of 0.3 s, plus the interpreter's start-up


# --- against a stub: what a load balancer and a struggling fleet answer ----------------------------------

HTML_502 = (
    b"HTTP/1.1 502 Bad Gateway\r\nServer: awselb/2.0\r\nContent-Type: text/html\r\nContent-Length: 122\r\n\r\n"
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_SHED = b'{"error": {"code": "overloaded", "message": "too many requests in flight; retry", "field": null}}'
JSON_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 30\r\n"
    + f"Content-Length: {len(_SHED)}\r\n\r\n".encode()
    + _SHED
)
_SCORE = b'{"p_bot": 0.25}'
OK_200 = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Model-Version: lr-stub\r\n"
    + f"Content-Length: {len(_SCORE)}\r\n\r\n".encode()
    + _SCORE
)
SILENCE = b""  # read the request, answer nothing
RESET = b"reset"  # read the request, then close with an RST (SO_LINGER 0)


class Stub:
    """An HTTP/1.1 server on 127.0.0.1 that answers its n-th request with `answers[n]` (the last one
    for any after) and counts the requests it read, keep-alive or not."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(16)
        self.url = f"http://{LOOPBACK}:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = self._recv(connection)
                if not chunk:
                    return
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(buffer) < length:
                chunk = self._recv(connection)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[length:]
            with self._lock:
                answer = self.answers[min(self.requests, len(self.answers) - 1)]
                self.requests += 1
            if answer == RESET:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.close()
                return
            if answer != SILENCE:
                connection.sendall(answer)

    @staticmethod
    def _recv(connection: socket.socket) -> bytes:
        try:
            return connection.recv(65536)
        except OSError:
            return b""

    def close(self) -> None:
        self._listener.close()
        for connection in self._open:
            with suppress(OSError):
                connection.close()


@pytest.fixture
def stub(request: pytest.FixtureRequest) -> Iterator[Stub]:
    server = Stub(request.param)
    yield server
    server.close()


# Per attempt. Generous for a loopback stub: on a busy machine a first attempt must not time out while
# the runtime warms up (Node loads its fetch on first use), or the stub would see one request, not two.
STUB_TIMEOUT_MS = 1500

FAILING_OPEN = {
    "an HTML 502 from the load balancer": ([HTML_502], "502 not JSON"),
    "a 503 with Retry-After": ([JSON_503], "503 overloaded, Retry-After 30"),
    "no answer within the timeout": ([SILENCE], "timeout"),
    "a connection reset": ([RESET], "connection error"),
}


@pytest.mark.parametrize("name", SINGLE_SCORE_EXAMPLES)
@pytest.mark.parametrize(("stub", "reason"), list(FAILING_OPEN.values()), ids=list(FAILING_OPEN), indirect=["stub"])
def test_a_single_score_example_retries_once_then_fails_open(stub: Stub, reason: str, name: str) -> None:
    started = time.monotonic()
    result = example(name, stub.url, "pay_stub", "0.1", "0.2", timeout_ms=STUB_TIMEOUT_MS)
    took = time.monotonic() - started
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"pay_stub no score ({reason}): failing open\n"
    assert stub.requests == 2  # the retry table: one retry, at once, then decide without a score
    assert took < 20  # never sleeps on Retry-After (30 s); two attempts of 1.5 s at most, plus start-up


@pytest.mark.parametrize("name", SINGLE_SCORE_EXAMPLES)
@pytest.mark.parametrize("stub", [[HTML_502, OK_200], [RESET, OK_200], [SILENCE, OK_200]], indirect=True)
def test_a_single_score_example_scores_on_its_retry(stub: Stub, name: str) -> None:
    result = example(name, stub.url, "pay_stub", "0.1", "0.2", timeout_ms=STUB_TIMEOUT_MS)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "pay_stub p_bot=0.25 model=lr-stub\n")
    assert stub.requests == 2


def test_the_tritonclient_example_scores_a_batch_under_one_id(service: Service) -> None:
    result = example("score_triton.py", f"{LOOPBACK}:{service.port}", "batch_20261202_7", "0.1,0.2", "1.8,0.3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"batch_20261202_7[0] p_bot={EXPECTED!r}"
    assert lines[1].startswith("batch_20261202_7[1] p_bot=0.02")
    rows = rows_with_id(service, "batch_20261202_7")
    assert sorted((row["item"], row["path"]) for row in rows) == [
        (0, "/v2/models/bot-score/infer"),
        (1, "/v2/models/bot-score/infer"),
    ]


def test_the_committed_openapi_document_is_the_one_served(service: Service) -> None:
    served = httpx.get(service.url + "/openapi.json").json()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert served == committed, "docs/openapi.json is stale: run `make openapi`"


def test_the_served_openapi_document_has_the_versioned_infer_route(service: Service) -> None:
    """The Open Inference Protocol's versioned infer route is answered outside FastAPI's routes: the document
    a running server serves lists it all the same, with the version's parameter and 404."""
    paths = httpx.get(service.url + "/openapi.json").json()["paths"]
    versioned = paths["/v2/models/bot-score/versions/{model_version}/infer"]["post"]
    assert versioned["operationId"] == "infer_version"
    assert [parameter["name"] for parameter in versioned["parameters"]] == ["model_version"]
    assert set(versioned["responses"]) == {*paths["/v2/models/bot-score/infer"]["post"]["responses"], "404"}
    assert versioned["requestBody"] == paths["/v2/models/bot-score/infer"]["post"]["requestBody"]
