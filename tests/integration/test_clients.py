"""The client guide's examples (docs/clients/) run against a real `botscore serve`, and the committed
OpenAPI document is the one it serves.

Each example scores with the payment's id as X-Request-ID, and the audit row is found by that id;
each fails open, quickly, when the service does not answer within its timeout.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing

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


def example(name: str, *args: str, timeout_ms: int = 5000, key: str = KEY) -> subprocess.CompletedProcess[str]:
    launcher = ["java"] if name.endswith(".java") else [str(BIN / "python")]
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


@pytest.mark.parametrize("name", ["score_httpx.py", "BotScore.java"])
def test_a_single_score_example_finds_its_payment_in_the_audit_log(service: Service, name: str) -> None:
    payment = f"pay_{name.split('.', maxsplit=1)[0].lower()}_20261202_0001"
    result = example(name, service.url, payment, "0.1", "0.2")
    assert result.returncode == 0, result.stderr
    version = httpx.get(service.url + "/readyz").json()["model_version"]
    assert result.stdout == f"{payment} p_bot={EXPECTED!r} model={version}\n"
    [row] = rows_with_id(service, payment)
    assert (row["status"], row["p_bot"], row["x1"], row["x2"]) == (200, EXPECTED, 0.1, 0.2)


@pytest.mark.parametrize("name", ["score_httpx.py", "BotScore.java"])
def test_a_single_score_example_reports_a_refusal_without_retrying_it(service: Service, name: str) -> None:
    result = example(name, service.url, f"pay_refused_{name[:5]}", "0.1", "0.2", key="not-the-key")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"pay_refused_{name[:5]} no score (401 unauthorized")
    assert len(rows_with_id(service, f"pay_refused_{name[:5]}")) == 1  # a 401 is not retried


@pytest.mark.parametrize("name", ["score_httpx.py", "BotScore.java"])
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
