"""A standard Open Inference Protocol client (tritonclient[http], as published) against a real `botscore serve`."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.support.records import shipped_records
from tests.support.servers import Service

pytestmark = pytest.mark.slow
KEY = "oip-key-1234"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _auth() -> dict[str, str]:
    """A new dict per call: tritonclient writes Inference-Header-Content-Length into the headers it is given."""
    return dict(AUTH)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    server = Service(tmp_path_factory.mktemp("oip"), api_keys=KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[triton.InferenceServerClient]:
    oip = triton.InferenceServerClient(service.url.removeprefix("http://"))
    yield oip
    oip.close()


def _inputs(x1: np.ndarray, x2: np.ndarray, *, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name, values in (("x1", x1), ("x2", x2)):
        tensor = triton.InferInput(name, list(values.shape), "FP64" if values.dtype == np.float64 else "FP32")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _bot_score(service: Service, x1: list[float], x2: list[float]) -> list[float]:
    with httpx.Client(base_url=service.url, headers=_auth(), timeout=10) as http:
        return [http.post("/bot-score", json={"x1": a, "x2": b}).json()["p_bot"] for a, b in zip(x1, x2, strict=True)]


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", value) for value in values]


def test_health_and_metadata(client: triton.InferenceServerClient, service: Service) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("bot-score")
    assert not client.is_model_ready("fraud")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = client.get_model_metadata("bot-score")
    assert metadata["versions"] == [httpx.get(service.url + "/readyz").json()["model_version"]]
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        ("x1", "FP64", [-1]),
        ("x2", "FP64", [-1]),
    ]
    assert metadata["outputs"] == [{"name": "p_bot", "datatype": "FP64", "shape": [-1]}]


@pytest.mark.parametrize("binary_inputs", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_output", [True, False, None], ids=["binary-out", "json-out", "client-default-out"])
@pytest.mark.parametrize("n", [1, 100])
def test_infer_equals_bot_score_to_the_last_bit(
    client: triton.InferenceServerClient, service: Service, binary_inputs: bool, binary_output: bool | None, n: int
) -> None:
    rng = random.Random(n)
    x1 = [rng.uniform(-1, 4) for _ in range(n)]
    x2 = [rng.uniform(0, 3) for _ in range(n)]
    outputs = None if binary_output is None else [triton.InferRequestedOutput("p_bot", binary_data=binary_output)]
    result = client.infer(
        "bot-score",
        _inputs(np.array(x1), np.array(x2), binary=binary_inputs),
        outputs=outputs,
        request_id="req-9",
        headers=_auth(),
    )
    p_bot = result.as_numpy("p_bot")
    assert p_bot.dtype == np.float64 and p_bot.shape == (n,)
    assert _bits(p_bot.tolist()) == _bits(_bot_score(service, x1, x2))
    response = result.get_response()
    assert (response["id"], response["model_name"]) == ("req-9", "bot-score")
    assert ("data" in response["outputs"][0]) == (binary_output is False)


@pytest.mark.parametrize("binary_inputs", [True, False])
def test_fp32_and_the_features_form(
    client: triton.InferenceServerClient, service: Service, binary_inputs: bool
) -> None:
    features = np.array([[0.1, 0.2], [1.8, 0.3], [-0.5, 2.5]], dtype=np.float32)
    tensor = triton.InferInput("features", [3, 2], "FP32")
    tensor.set_data_from_numpy(features, binary_data=binary_inputs)
    p_bot = client.infer("bot-score", [tensor], headers=_auth()).as_numpy("p_bot").tolist()
    # single-precision values, widened exactly: /bot-score scores the same doubles
    widened = features.astype(np.float64)
    assert _bits(p_bot) == _bits(_bot_score(service, widened[:, 0].tolist(), widened[:, 1].tolist()))
    x1, x2 = _inputs(features[:, 0].copy(), features[:, 1].copy(), binary=binary_inputs)
    assert client.infer("bot-score", [x1, x2], headers=_auth()).as_numpy("p_bot").tolist() == p_bot


def test_a_thousand_instances_and_the_versioned_route(client: triton.InferenceServerClient) -> None:
    x = np.linspace(-1, 3, 1000)
    p_bot = client.infer("bot-score", _inputs(x, x[::-1].copy(), binary=True), headers=_auth()).as_numpy("p_bot")
    assert p_bot.shape == (1000,)
    version = client.get_model_metadata("bot-score")["versions"][0]
    again = client.infer("bot-score", _inputs(x, x[::-1].copy(), binary=False), model_version=version, headers=_auth())
    assert again.as_numpy("p_bot").tolist() == p_bot.tolist()


def _refusal(
    client: triton.InferenceServerClient, inputs: list[triton.InferInput], **kwargs: object
) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as raised:
        client.infer("bot-score", inputs, **{"headers": _auth(), **kwargs})  # type: ignore[arg-type]
    return raised.value


def test_errors_name_the_problem(client: triton.InferenceServerClient) -> None:
    one = np.array([0.1])
    nan = _refusal(client, _inputs(np.array([0.1, np.nan]), np.array([0.2, 0.3]), binary=True))
    assert (nan.status(), nan.message()) == ("400", "x1[1] must be a finite number, got NaN")
    inf = _refusal(client, _inputs(one, np.array([np.inf]), binary=False))
    assert inf.status() == "400" and "x2[0] must be a finite number" in inf.message()

    wrong_type = triton.InferInput("x1", [1], "INT64")
    wrong_type.set_data_from_numpy(np.array([1], dtype=np.int64), binary_data=False)
    error = _refusal(client, [wrong_type, _inputs(one, one, binary=False)[1]])
    assert error.message() == "input x1: datatype must be FP64 or FP32, got 'INT64'"

    error = _refusal(client, _inputs(np.array([0.1, 0.2]), one, binary=False))
    assert error.message() == "x1 has shape [2] and x2 has shape [1]: they must be the same"

    unknown = triton.InferInput("x3", [1], "FP64")
    unknown.set_data_from_numpy(one)
    error = _refusal(client, [*_inputs(one, one, binary=True), unknown])
    assert error.message().startswith("unknown input 'x3'")

    big = np.zeros(1001)
    assert "N must be 1 to 1000 instances, got 1001" in _refusal(client, _inputs(big, big, binary=True)).message()

    wrong_output = _refusal(client, _inputs(one, one, binary=True), outputs=[triton.InferRequestedOutput("p_human")])
    assert wrong_output.message() == "unknown output 'p_human': the only output is p_bot"

    with pytest.raises(InferenceServerException) as raised:
        client.infer("fraud", _inputs(one, one, binary=True), headers=_auth())
    assert (raised.value.status(), raised.value.message()) == (
        "404",
        "unknown model 'fraud': this server serves one model, bot-score",
    )
    no_key = _refusal(client, _inputs(one, one, binary=True), headers={})
    assert (no_key.status(), no_key.message()) == (
        "401",
        "missing or unknown API key: send Authorization: Bearer <key>",
    )


def test_infer_calls_are_in_the_audit_log(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    try:
        oip = triton.InferenceServerClient(service.url.removeprefix("http://"))
        x1, x2 = np.array([0.1, 1.8, -0.5]), np.array([0.2, 0.3, 2.5])
        p_bot = oip.infer("bot-score", _inputs(x1, x2, binary=True), headers={"X-Request-ID": "oip-call-1"})
        with pytest.raises(InferenceServerException):
            oip.infer(
                "bot-score",
                _inputs(np.array([np.nan]), x2[:1].copy(), binary=True),
                headers={"X-Request-ID": "oip-bad-1"},
            )
        oip.close()
    finally:
        service.stop()
    rows = {(row["id"], row.get("item")): row for row in shipped_records(service.audit_dir)}
    scored = [rows[("oip-call-1", item)] for item in range(3)]
    assert [(r["path"], r["status"], r["x1"], r["x2"]) for r in scored] == [
        ("/v2/models/bot-score/infer", 200, a, b) for a, b in zip(x1.tolist(), x2.tolist(), strict=True)
    ]
    assert [r["p_bot"] for r in scored] == p_bot.as_numpy("p_bot").tolist()
    refused = rows[("oip-bad-1", None)]
    assert (refused["status"], refused["error_code"], refused["error_field"]) == (400, "not_finite", "x1[0]")
