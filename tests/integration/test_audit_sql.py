"""The shipped audit records read by a real SQL engine with the Glue table's column types.

`botscore serve` ships to SeaweedFS, which starts only after the spool has filled, so the same
run shows refusals at the bound being recorded and everything reaching S3 once it is back.
Every object is then read by DuckDB with the types of schema.COLUMNS (a value of another type
fails the read, as it would fail Athena's query), and the example queries of
terraform/analytics.tf run on it with the answers the clients saw.

Request kinds covered: 200 single; 200 batch of 3; 400 malformed_json (broken, empty, nested
past the bound); 400 invalid_encoding; 401 unauthorized; 405 method_not_allowed; 413
body_too_large; 415 unsupported_media_type; 422 missing_field, unknown_field, duplicate_key,
invalid_type (a string, a boolean, null, an array), not_finite (NaN, 1e999), invalid_body,
invalid_batch_size, and a batch item's error; 503 audit_unavailable.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import os
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from botscore.audit import schema
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader
from botscore.dataplane.handler import Handler
from botscore.http.app import create_app
from botscore.model import artifact, manage
from botscore.model.registry import Registry
from botscore.model.scorer import ModelSlot, Scorer
from botscore.ops.metrics import Metrics
from botscore.settings import SHIPPED_MODEL
from tests.support.athena import ANSWERS, TABLE, example_queries, open_table
from tests.support.audit import audit_log
from tests.support.models import NEW, NEW_DOCUMENT, OLD, shadow_as_recorded
from tests.support.servers import Service, Weed, wait_for

pytestmark = pytest.mark.slow

KEY = "test-key-1"
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
SINGLE_ERRORS: list[tuple[bytes, dict[str, str], int, str]] = [
    (b'{"x1": 0.1, "x2"', AUTH, 400, "malformed_json"),
    (b"", AUTH, 400, "malformed_json"),
    (b'{"x1":' + b"[" * 40 + b"]" * 40 + b', "x2": 1}', AUTH, 400, "malformed_json"),
    (b'{"x1": 0.1, "x2": "\xff"}', AUTH, 400, "invalid_encoding"),
    (b'{"x1": 0.1, "x2": 0.2}', {"content-type": "application/json"}, 401, "unauthorized"),
    (b"x" * 2000, AUTH, 413, "body_too_large"),
    (b'{"x1": 0.1, "x2": 0.2}', {**AUTH, "content-type": "text/plain"}, 415, "unsupported_media_type"),
    (b'{"x1": 0.1}', AUTH, 422, "missing_field"),
    (b'{"X1": 0.1, "x2": 0.2}', AUTH, 422, "unknown_field"),
    (b'{"x1": 0.1, "x1": 0.3, "x2": 0.2}', AUTH, 422, "duplicate_key"),
    (b'{"x1": "a", "x2": 0.2}', AUTH, 422, "invalid_type"),
    (b'{"x1": true, "x2": 0.2}', AUTH, 422, "invalid_type"),
    (b'{"x1": null, "x2": [1, {"a": 2}]}', AUTH, 422, "invalid_type"),
    (b'{"x1": NaN, "x2": 0.2}', AUTH, 422, "not_finite"),
    (b'{"x1": 1e999, "x2": 0.2}', AUTH, 422, "not_finite"),
    (b"[0.1, 0.2]", AUTH, 422, "invalid_body"),
]
BATCH_ERRORS: list[tuple[bytes, int, str]] = [
    (b'{"instances": []}', 422, "invalid_batch_size"),
    (b'{"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": "b", "x2": 0}]}', 422, "invalid_type"),
]


def _download(weed: Weed, bucket: str, folder: Path) -> int:
    """Every object, under its key, as Athena would find it; the number of rows."""
    rows = 0
    for key, body in weed.objects(bucket):
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        rows += gzip.decompress(body).count(b"\n")
    return rows


def test_every_kind_of_answer_is_read_back_by_sql_with_the_glue_types(tmp_path: Path) -> None:
    weed = Weed(tmp_path / "s3")  # not started yet: S3 is down until the spool has filled
    bucket = "audit"
    service = Service(
        tmp_path,
        api_keys=KEY,
        audit_bucket=bucket,
        audit_spool_max_bytes=65536,
        audit_segment_max_age_seconds=1,
        audit_retry_max_seconds=0.5,
        **weed.aws_env(),
    ).start()
    answered: dict[str, tuple[int, str | None]] = {}  # id -> (status, error code)
    scores: list[float] = []
    try:
        with httpx.Client(base_url=service.url, timeout=10) as client:

            def post(path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
                response = client.post(path, content=body, headers=headers)
                error = response.json().get("error") if response.status_code != 200 else None
                answered[response.headers["x-request-id"]] = (response.status_code, error and error["code"])
                return response

            scores.append(post("/bot-score", b'{"x1": 0.1, "x2": 0.2}', AUTH).json()["p_bot"])
            batch = post(
                "/bot-score/batch",
                b'{"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": 2, "x2": 0}, {"x1": 1.5, "x2": 1}]}',
                AUTH,
            )
            scores.extend(batch.json()["p_bot"])
            for body, headers, status, code in SINGLE_ERRORS:
                response = post("/bot-score", body, headers)
                assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
            for body, status, code in BATCH_ERRORS:
                response = post("/bot-score/batch", body, AUTH)
                assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
            wrong_method = client.get("/bot-score", headers=AUTH)
            answered[wrong_method.headers["x-request-id"]] = (405, "method_not_allowed")
            for i in range(2000):  # S3 is down: fill the spool to its bound
                response = post("/bot-score", b'{"x1": %d.5, "x2": 0.25}' % (i % 3), AUTH)
                if response.status_code == 503:
                    break
                scores.append(response.json()["p_bot"])
            assert response.status_code == 503
        weed.start()  # S3 is back, on the port the service uses
        weed.create_bucket(bucket)
        rows_expected = len(answered) + len(scores) - sum(1 for status, _ in answered.values() if status == 200)
        wait_for(lambda: _download(weed, bucket, tmp_path / "probe") >= rows_expected, 60, "every row in S3")
        assert _download(weed, bucket, tmp_path / "s3") == rows_expected
    finally:
        service.stop()
        weed.stop()

    db = open_table(tmp_path / "s3")
    rows = db.execute(f"SELECT id, item, status, error_code, p_bot, x1, x1_text, raw FROM {TABLE}").fetchall()
    assert len(rows) == rows_expected
    assert Counter(row[0] for row in rows if row[2] != 200) == Counter(
        rid for rid, (status, _) in answered.items() if status != 200
    )
    assert {row[0]: (row[2], row[3]) for row in rows} == answered
    assert sorted(row[1] for row in rows if row[0] == batch.headers["x-request-id"]) == [0, 1, 2]
    assert sorted(row[4] for row in rows if row[2] == 200) == sorted(scores)
    by_id = {row[0]: row for row in rows}
    string = next(rid for rid, row in by_id.items() if row[6] == '"a"')
    assert by_id[string][7] == '{"x1": "a", "x2": 0.2}'  # what the client sent is kept as text
    assert (
        db.execute(
            f"SELECT count(*) FROM {TABLE} WHERE schema = {schema.VERSION} AND ts LIKE '____-__-__T__:__:__.___Z'"
        ).fetchone()[0]
        == rows_expected
    )

    queries = example_queries()
    p_bot = db.execute(queries["p_bot_per_hour"]).fetchall()
    assert sum(row[2] for row in p_bot) == len(scores)
    assert sum(row[5] for row in p_bot) == sum(1 for score in scores if score >= 0.5)
    assert max(row[4] for row in p_bot) == max(scores)
    rate = db.execute(queries["error_rate_per_hour"]).fetchall()
    assert sum(row[2] for row in rate) == len(answered)
    assert sum(row[3] for row in rate) == sum(1 for status, _ in answered.values() if status >= 400)
    assert sum(row[5] for row in rate) == sum(1 for status, _ in answered.values() if status >= 500)
    codes = Counter()
    for _, _, status, code, answers in db.execute(queries["errors_by_code"]).fetchall():
        codes[status, code] += answers
    assert codes == Counter((status, code) for status, code in answered.values() if status >= 400)


def test_the_saved_queries_count_a_call_refused_after_its_row_was_written_once_as_the_503_its_client_got(
    tmp_path: Path,
) -> None:
    failing = threading.Event()

    def fsync(fd: int) -> None:  # EIO while `failing`, as a disk or a file server gives it
        if failing.is_set():
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)

    metrics = Metrics()
    audit = audit_log(
        SpoolDirectory(tmp_path / "spool", host="h"),
        LocalUploader(tmp_path / "s3"),  # the objects under their S3 keys
        prefix="bot-score/",
        shutdown_seconds=5,
        sync="always",
        fsync=fsync,
    )
    metrics.audit_counters = audit.counters
    audit.start()
    shadow = Scorer(artifact.parse(NEW_DOCUMENT))  # so the shadow queries have rows to count
    model = ModelSlot(Scorer(artifact.load(SHIPPED_MODEL), shadow=shadow))
    app = create_app(Handler(audit, metrics), model, metrics, max_body_bytes=1024)
    # Six scores, the fourth refused after its 200 row was written; then a 422 refused the same way.
    calls = [({"x1": i, "x2": 0.5}, i == 3) for i in range(6)] + [({"x1": "a", "x2": 0.5}, True)]

    async def answers() -> dict[str, int]:
        answered = {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://botscore") as client:
            for body, fail in calls:
                if fail:
                    failing.set()
                response = await client.post("/bot-score", json=body)
                failing.clear()
                answered[response.headers["x-request-id"]] = response.status_code
        return answered

    try:
        answered = asyncio.run(answers())
    finally:
        audit.close()  # ships every segment
    assert list(answered.values()) == [200, 200, 200, 503, 200, 200, 503]
    score_refused, error_refused = [rid for rid, status in answered.items() if status == 503]
    db = open_table(tmp_path / "s3")
    for rid, written in ((score_refused, (200, None)), (error_refused, (422, "invalid_type"))):
        rows = db.execute(f"SELECT status, error_code, ts FROM {TABLE} WHERE id = ? ORDER BY status", [rid]).fetchall()
        assert [row[:2] for row in rows] == [written, (503, "audit_unavailable")]
        assert rows[0][2] == rows[1][2]  # the same call: same id, same ts
    assert sorted(db.execute(f"SELECT id, status FROM {ANSWERS}").fetchall()) == sorted(answered.items())

    # Outcome labels for every scored call, the refused one's too, both classes among the answered.
    scored = [rid for (rid,) in db.execute(f"SELECT id FROM {TABLE} WHERE status = 200 ORDER BY ts").fetchall()]
    assert len(scored) == 6
    (tmp_path / "labels.csv").write_text("id,is_bot\n" + "".join(f"{rid},{i % 2}\n" for i, rid in enumerate(scored)))
    db.execute(
        f"CREATE VIEW outcome_labels AS SELECT * FROM read_csv('{tmp_path / 'labels.csv'}', header = true, "
        "columns = {'id': 'VARCHAR', 'is_bot': 'INTEGER'})"
    )

    # Each saved query as Terraform has it (on the raw table every count below would include the
    # refused calls' other rows: 6 scores, 3 errors, a 422).
    queries = example_queries()
    assert sum(row[2] for row in db.execute(queries["p_bot_per_hour"]).fetchall()) == 5  # scores answered
    rate = db.execute(queries["error_rate_per_hour"]).fetchall()
    assert [sum(row[i] for row in rate) for i in (2, 3, 5)] == [7, 2, 2]  # calls, errors, server errors
    codes = Counter()
    for _, _, status, code, count in db.execute(queries["errors_by_code"]).fetchall():
        codes[status, code] += count
    assert codes == Counter({(503, "audit_unavailable"): 2})
    distribution = Counter()
    for side, _, _, count in db.execute(queries["shadow_score_distribution"]).fetchall():
        distribution[side] += count
    assert distribution == Counter({"production": 5, "shadow": 5})
    assert sum(row[3] for row in db.execute(queries["shadow_disagreement"]).fetchall()) == 5
    auc = db.execute(queries["shadow_roc_auc"]).fetchall()
    assert [(row[0], row[2]) for row in auc] == [("production", 5), ("shadow", 5)]
    calibration = Counter()
    for side, _, _, count, _, _ in db.execute(queries["shadow_calibration"]).fetchall():
        calibration[side] += count
    assert calibration == Counter({"production": 5, "shadow": 5})


def _auc(scored: list[tuple[float, int]]) -> float:
    """ROC AUC by its definition: the share of (bot, person) pairs the score orders right, ties half."""
    bots = [score for score, label in scored if label == 1]
    people = [score for score, label in scored if label == 0]
    right = sum((b > p) + 0.5 * (b == p) for b in bots for p in people)
    return right / (len(bots) * len(people))


def test_the_shadow_comparison_queries_run_on_shipped_rows_carrying_both_scores(
    tmp_path: Path, weed: Weed, bucket: str
) -> None:
    registry_url = f"s3://{bucket}/models/bot-score/"
    registry = Registry(registry_url, client=weed.client())
    registry.publish(SHIPPED_MODEL.read_bytes(), "shipped")
    registry.publish(json.dumps(NEW_DOCUMENT).encode(), "new")
    manage.promote(registry, OLD)
    manage.shadow(registry, NEW)
    service = Service(
        tmp_path, model_registry=registry_url, audit_bucket=bucket, audit_segment_max_age_seconds=1, **weed.aws_env()
    ).start()
    # Scores over the whole range, and four where the two models fall on different sides of 0.5.
    features = [(round(-1 + 0.125 * i, 3), round(0.3 * (i % 7), 2)) for i in range(36)]
    features += [(0.9, 0.4), (0.95, 0.45), (2.15, 1.35), (2.2, 1.4)]
    answered: dict[str, list[tuple[float, float, float]]] = {}  # id -> [(x1, x2, p_bot)]
    try:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            for x1, x2 in features[:30]:
                response = client.post("/bot-score", json={"x1": x1, "x2": x2})
                answered[response.headers["x-request-id"]] = [(x1, x2, response.json()["p_bot"])]
            batch = [{"x1": x1, "x2": x2} for x1, x2 in features[30:]]
            response = client.post("/bot-score/batch", json={"instances": batch})
            scores = response.json()["p_bot"]
            answered[response.headers["x-request-id"]] = [
                (*pair, p) for pair, p in zip(features[30:], scores, strict=True)
            ]
    finally:
        service.stop()
    folder = tmp_path / "s3"
    for key, body in weed.objects(bucket):
        if key.startswith("bot-score/"):
            (folder / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).write_bytes(body)
    # A row of schema 3 (before the shadow columns) in the same table: it still reads, shadow null.
    day, hour = next(folder.glob("bot-score/dt=*/hour=*")).parts[-2:]
    old_row = {"schema": 3, "id": "old-row", "item": 0, "ts": "2026-11-27T01:02:03.045Z", "method": "POST"}
    old_row |= {"path": "/bot-score", "status": 200, "x1": 0.1, "x2": 0.2, "p_bot": 0.92, "model_version": OLD}
    (folder / "bot-score" / day / hour / "old-host-1.00000000-000001.jsonl.gz").write_bytes(
        gzip.compress(json.dumps(old_row).encode() + b"\n")
    )
    # Outcome labels by request id, as a team uploads them under labels/ (a batch's rows share one).
    labels = {rid: int(rows[0][2] > 0.5) ^ (i % 4 == 0) for i, (rid, rows) in enumerate(sorted(answered.items()))}
    (tmp_path / "labels.csv").write_text("id,is_bot\n" + "".join(f"{rid},{label}\n" for rid, label in labels.items()))

    db = open_table(folder)
    db.execute(
        f"CREATE VIEW outcome_labels AS SELECT * FROM read_csv('{tmp_path / 'labels.csv'}', header = true, "
        "columns = {'id': 'VARCHAR', 'is_bot': 'INTEGER'})"
    )
    assert db.execute(f"SELECT schema, shadow_version, shadow_p_bot FROM {TABLE} WHERE id = 'old-row'").fetchall() == [
        (3, None, None)
    ]
    challenger = Scorer(artifact.parse(NEW_DOCUMENT))
    rows = [
        (rid, x1, x2, p, shadow_as_recorded(challenger.p_bot(x1, x2)))
        for rid, scored in answered.items()
        for x1, x2, p in scored
    ]
    shipped = db.execute(
        f"SELECT id, x1, x2, p_bot, shadow_p_bot FROM {TABLE} "
        f"WHERE shadow_version = '{NEW}' AND model_version = '{OLD}'"
    ).fetchall()
    assert sorted(shipped) == sorted(rows)

    def tenth(score: float) -> int:
        return min(int(score * 10), 9)

    queries = example_queries()
    distribution = db.execute(queries["shadow_score_distribution"]).fetchall()
    expected = Counter(("production", OLD, tenth(r[3])) for r in rows) + Counter(
        ("shadow", NEW, tenth(r[4])) for r in rows
    )
    assert {(side, version, t): n for side, version, t, n in distribution} == expected

    [(_, model, shadow, count, mean_difference, max_difference, disagreements, pct)] = db.execute(
        queries["shadow_disagreement"]
    ).fetchall()
    assert (model, shadow, count) == (OLD, NEW, len(rows))
    assert mean_difference == pytest.approx(sum(r[4] - r[3] for r in rows) / len(rows))
    assert max_difference == pytest.approx(max(abs(r[4] - r[3]) for r in rows))
    assert disagreements == sum((r[3] >= 0.5) != (r[4] >= 0.5) for r in rows) == 4
    assert pct == round(100 * disagreements / len(rows), 2)

    labelled = [(r[3], r[4], labels[r[0]]) for r in rows]
    auc = {side: row for side, *row in db.execute(queries["shadow_roc_auc"]).fetchall()}
    for side, version, column in (("production", OLD, 0), ("shadow", NEW, 1)):
        scored = [(item[column], item[2]) for item in labelled]
        assert auc[side][:3] == [version, len(scored), sum(label for _, label in scored)]
        assert auc[side][3] == pytest.approx(_auc(scored), abs=1e-12)
        assert auc[side][4] == pytest.approx(sum((s - y) ** 2 for s, y in scored) / len(scored))
    calibration = db.execute(queries["shadow_calibration"]).fetchall()
    for side, version, t, count, mean_score, bot_rate in calibration:
        column = 0 if side == "production" else 1
        bucket_rows = [item for item in labelled if tenth(item[column]) == t]
        assert version == (OLD if side == "production" else NEW)
        assert count == len(bucket_rows)
        assert mean_score == pytest.approx(sum(item[column] for item in bucket_rows) / count)
        assert bot_rate == pytest.approx(sum(item[2] for item in bucket_rows) / count)
    assert sum(row[3] for row in calibration) == 2 * len(rows)


def test_the_answers_view_holds_the_last_8_days_and_applies_the_rule_across_a_midnight(tmp_path: Path) -> None:
    """The view filters `dt` itself (so Athena reads 8 days of objects, not the bucket's history), and a
    refusal whose 503 row landed in the next day's segment still drops its 200 row."""
    today = datetime.now(UTC).date()

    def segment(day: date, hour: int, *rows: dict[str, object]) -> None:
        folder = tmp_path / f"bot-score/dt={day:%Y-%m-%d}/hour={hour:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = "".join(
            json.dumps({"schema": schema.VERSION, "method": "POST", "path": "/bot-score", **row}) + "\n" for row in rows
        )
        (folder / f"h-w-{len(list(folder.iterdir())):06d}.jsonl.gz").write_bytes(gzip.compress(lines.encode()))

    def score(request_id: str, ts: str) -> dict[str, object]:
        return {"id": request_id, "ts": ts, "status": 200, "x1": 0.1, "x2": 0.2, "p_bot": 0.5, "item": 0}

    refusal = {"status": 503, "error_code": "audit_unavailable", "error_message": "fsync failed"}
    yesterday, old = today - timedelta(days=1), today - timedelta(days=9)
    # A call refused at midnight: its 200 row in yesterday's last segment, its 503 row in today's first.
    segment(yesterday, 23, score("a", f"{yesterday}T23:59:59.999Z"), score("b", f"{yesterday}T23:59:58.000Z"))
    segment(today, 0, {"id": "a", "ts": f"{yesterday}T23:59:59.999Z", **refusal})
    # Nine days ago: past the view's 8 days, still in the table.
    segment(old, 12, score("c", f"{old}T12:00:00.000Z"))
    connection = open_table(tmp_path)

    answers = connection.execute(f"SELECT id, status FROM {ANSWERS} ORDER BY id, status").fetchall()
    assert answers == [("a", 503), ("b", 200)]
    assert connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (4,)


def _write_rows(folder: Path, day: str, rows: list[dict[str, object]]) -> None:
    path = folder / "bot-score" / f"dt={day}" / "hour=00" / "h-1-1.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"".join(json.dumps(row).encode() + b"\n" for row in rows)))


def test_the_drift_query_gives_per_day_the_psi_the_service_emits(tmp_path: Path) -> None:
    import csv
    import random

    from botscore.model import baseline
    from botscore.ops.buckets import P_BOT_BUCKETS, X1_BUCKETS, X2_BUCKETS
    from tests.support.servers import ROOT

    model = artifact.load(SHIPPED_MODEL)
    assert model.baseline is not None
    scorer = Scorer(model)
    with (ROOT / "data" / "transactions.csv").open() as handle:
        rows = [(float(r["x1"]), float(r["x2"])) for r in csv.DictReader(handle)]
    draw = random.Random(5)
    today = date.today()
    days = {(today - timedelta(days=2)).isoformat(): 0.0, (today - timedelta(days=1)).isoformat(): 0.6}
    expected: dict[tuple[str, str], float] = {}
    for day, shift in days.items():
        sample = [(x1 + shift, x2) for x1, x2 in draw.sample(rows, 2000)]
        scored = [(x1, x2, scorer.p_bot(x1, x2)) for x1, x2 in sample]
        base = {"schema": 4, "item": 0, "ts": f"{day}T00:00:00.000Z", "method": "POST", "path": "/bot-score"}
        records = [
            {**base, "id": f"{day}-{i}", "status": 200, "x1": x1, "x2": x2, "p_bot": p, "model_version": model.version}
            for i, (x1, x2, p) in enumerate(scored)
        ]
        _write_rows(tmp_path / "s3", day, records)
        for k, (name, bounds) in enumerate((("x1", X1_BUCKETS), ("x2", X2_BUCKETS), ("p_bot", P_BOT_BUCKETS))):
            shares = baseline.distribution(bounds, [row[k] for row in scored]).shares
            psi = model.baseline[name].psi([share * len(scored) for share in shares])
            assert psi is not None
            expected[(day, name)] = psi
    connection = open_table(tmp_path / "s3")
    found = {
        (day, feature): psi
        for day, feature, psi, _ in connection.execute(example_queries()["feature_drift_per_day"]).fetchall()
    }
    assert found == pytest.approx(expected, abs=2e-3)
    shifted = max(days, key=days.__getitem__)
    assert found[(shifted, "x1")] > baseline.PSI_ACT > max(psi for (day, _), psi in found.items() if day != shifted)


def test_the_drift_query_is_written_from_the_shipped_models_baseline() -> None:
    import importlib.util

    from tests.support.servers import ROOT

    spec = importlib.util.spec_from_file_location("write_drift_sql", ROOT / "scripts" / "write-drift-sql.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "terraform" / "feature_drift.sql").read_text() == module.render(), "run scripts/write-drift-sql.py"
