"""schemathesis against /openapi.json: no 5xx, and every response matches the documented schema."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from botscore.service import build
from botscore.settings import load_settings
from tests.support.servers import ROOT

_spool = Path(tempfile.mkdtemp(prefix="botscore-fuzz-"))
service = build(load_settings(audit_dir=_spool, audit_segment_max_age_seconds=1))
# A schema-violating body may be refused as too large (413) before it is parsed: still a refusal.
# JSON Schema cannot say that x1 and x2 hold the same N, or that data holds as many values as the
# shape says, so a schema-valid infer request can still be the protocol's 400. The versioned infer
# route checks the version before the body: a version other than the one serving is its 404.
config = SchemathesisConfig.from_dict(
    {
        "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 405, 413, 415, 422]}},
        "operations": [
            {
                "include-path": "/v2/models/bot-score/infer",
                "checks": {"positive_data_acceptance": {"expected-statuses": [200, 400]}},
            },
            {
                "include-path": "/v2/models/bot-score/versions/{model_version}/infer",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [200, 400, 404]},
                    "negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 413, 415, 422]},
                },
            },
        ],
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", service.app, config=config)
CASES = {"count": 0}


@pytest.fixture(scope="module", autouse=True)
def _audit_running() -> Iterator[None]:
    service.audit.start()
    yield
    service.audit.close()


@schema.parametrize()
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    CASES["count"] += 1
    response = case.call_and_validate()
    assert response.status_code < 500
    if case.path.startswith("/bot-score"):
        assert response.headers["x-request-id"] and response.headers["x-model-version"]


def test_zz_schemathesis_ran_cases() -> None:
    assert CASES["count"] >= 100
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "schemathesis-cases.txt").write_text(f"{CASES['count']}\n")
