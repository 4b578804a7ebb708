"""A canary against a real S3 (SeaweedFS) and `botscore serve --workers 2` under steady load: the share
it answers by request id, the rows that name the model and the arm, a bad candidate rolled back by its
guardrails with no failed request, a good one promoted through its steps."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from botscore.model import artifact
from botscore.model.canary import Split
from botscore.model.registry import Registry
from botscore.model.scorer import Scorer
from botscore.settings import SHIPPED_MODEL
from tests.integration.test_model_registry import (
    POLL_SECONDS,
    SteadyLoad,
    fleet,
    metric_samples,
    model_cli,
    serving,
    shipped_rows,
)
from tests.support.athena import example_queries, open_table
from tests.support.models import OLD, SHIPPED, shadow_as_recorded
from tests.support.servers import Weed, wait_for

pytestmark = pytest.mark.slow

GOOD_DOCUMENT = artifact.seal({**SHIPPED, "intercept": SHIPPED["intercept"] + 0.02})  # a near twin: passes
BAD_DOCUMENT = artifact.seal({**SHIPPED, "intercept": SHIPPED["intercept"] + 10})  # scores all near 1
GOOD, BAD = GOOD_DOCUMENT["version"], BAD_DOCUMENT["version"]
WINDOW_SECONDS = 5.0
MIN_CALLS = 50
# A breach is acted on at the first poll after the window holds MIN_CALLS canary calls (well under a
# second at this load), and the other worker stops at its next poll: the stated bound is the window
# itself; the test allows that plus two polls on a loaded 2-core machine.
ROLLBACK_BOUND_SECONDS = WINDOW_SECONDS + 2 * POLL_SECONDS


def rollbacks(url: str) -> float:
    return sum(s.value for s in metric_samples(url) if s.name == "botscore_canary_rollbacks_total")


def plan(registry: Registry) -> dict[str, Any]:
    read = registry.canary()
    assert read is not None and read[0] is not None
    return json.loads(read[0].encode())


def test_a_canary_answers_its_share_by_id_and_is_rolled_back_or_promoted(
    tmp_path: Path, weed: Weed, bucket: str
) -> None:
    url = f"s3://{bucket}/models/bot-score/"
    for document in (GOOD_DOCUMENT, BAD_DOCUMENT):
        artifact.write(document, tmp_path / f"{document['version']}.json")
    assert model_cli(weed, url, "publish", str(SHIPPED_MODEL)).returncode == 0
    assert model_cli(weed, url, "promote", OLD).returncode == 0
    for version in (GOOD, BAD):
        assert model_cli(weed, url, "publish", str(tmp_path / f"{version}.json")).returncode == 0
    service = fleet(tmp_path, weed, bucket, url)
    registry = Registry(url, client=weed.client())
    load = SteadyLoad(service.url, threads=6, pause=0.001, ids="pay", keep_alive=True).start()
    guards = ("--window", str(WINDOW_SECONDS), "--min-calls", str(MIN_CALLS))
    try:
        # 10 %, held: the candidate answers the ids that hash under 10 %, on both workers alike.
        started = model_cli(weed, url, "canary", GOOD, "--percent", "10", *guards)
        assert started.stdout.startswith(f"canary {GOOD}: 10 %, 300 s each, held at the last step"), started.stderr
        wait_for(lambda: len(serving(service.url, "canary")) == 2, 30, "both workers run the canary")
        from_ = time.monotonic()
        wait_for(lambda: len(load.since(from_)) >= 2000, 60, "2,000 answers during the canary")
        answers = load.since(from_)
        split = Split(OLD, GOOD, 10, GOOD)
        assert {a.status for a in answers} == {200} and not load.failures
        wrong = [a for a in answers if a.version != split.pick(a.request_id.encode())]
        assert not wrong, (len(wrong), wrong[:3], plan(registry))  # chosen by id
        share = sum(a.version == GOOD for a in answers) / len(answers)
        print(f"canary share at 10 %: {share:.2%} of {len(answers)} answers")
        assert 0.08 <= share <= 0.12
        retried = answers[:60]
        again = [
            httpx.post(
                service.url + "/bot-score",
                json={"x1": a.features[0], "x2": a.features[1]},
                headers={"x-request-id": a.request_id},
                timeout=10,
            ).headers["x-model-version"]
            for a in retried
        ]
        assert again == [a.version for a in retried], plan(registry)  # a retried payment gets the same model
        assert "canary: " + GOOD + " running at step 1 of 1, 10 %" in model_cli(weed, url, "status").stdout

        # A bad candidate at 50 %: its guardrails roll it back, no request fails meanwhile.
        moved = time.monotonic()
        assert model_cli(weed, url, "canary", BAD, "--steps", "50,100", "--dwell", "600", *guards).returncode == 0
        wait_for(lambda: plan(registry)["state"] == "rolled_back", 30, "the bad canary rolled back")
        wait_for(lambda: not serving(service.url, "canary"), 30, "no worker serves the bad candidate")
        settled = time.monotonic()
        time.sleep(4 * POLL_SECONDS)
        during = load.since(moved)
        bad = [a for a in during if a.version == BAD]
        assert bad and all(a.at < settled for a in bad)
        took = max(a.at for a in bad) - min(a.at for a in bad)
        print(f"bad candidate answered for {took:.2f} s; reason: {plan(registry)['reason']}")
        assert took <= ROLLBACK_BOUND_SECONDS
        assert {a.status for a in during} == {200} and not load.failures
        assert "score PSI" in plan(registry)["reason"] or "disagreement" in plan(registry)["reason"]
        wait_for(lambda: rollbacks(service.url) == 1, 10, "one rollback counted (one writer won)")
        lines = [json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")]
        assert [line["version"] for line in lines if line["message"] == "canary rolled back"] == [BAD]

        # A good candidate through 10 -> 50 -> 100 %, each for 2 s, then production.
        moved = time.monotonic()
        steps = ("--steps", "10,50,100", "--dwell", "2")
        assert model_cli(weed, url, "canary", GOOD, *steps, *guards).returncode == 0
        try:
            wait_for(lambda: registry.pointer("production").version == GOOD, 60, "the good canary promoted")  # type: ignore[union-attr]
        except TimeoutError:
            raise AssertionError(plan(registry)) from None
        promoted = time.monotonic()
        assert plan(registry)["state"] == "promoted"
        assert promoted - moved >= 3 * 2.0  # each step's dwell, the last one's included
        wait_for(lambda: set(serving(service.url, "production").values()) == {GOOD}, 30, "both workers on GOOD")
        time.sleep(4 * POLL_SECONDS)
        after = load.since(time.monotonic() - 2 * POLL_SECONDS)
        assert after and {a.version for a in after} == {GOOD}
        during = load.since(moved)
        assert {a.status for a in during} == {200} and not load.failures
        thirds = [during[k * len(during) // 3 : (k + 1) * len(during) // 3] for k in range(3)]
        shares = [sum(a.version == GOOD for a in third) / len(third) for third in thirds]
        assert shares[0] < shares[1] < shares[2] and shares[2] > 0.9, shares
    finally:
        load.stop()
        service.stop()

    # The rows in S3 name the model that answered and the arm; a canary row carries production's score.
    rows = {(row["id"]): row for row in shipped_rows(weed, bucket) if row.get("arm")}
    old, good = Scorer(artifact.load(SHIPPED_MODEL)), Scorer(artifact.parse(GOOD_DOCUMENT))
    for answer in answers:
        row = rows[answer.request_id]
        assert (row["model_version"], row["arm"]) == (
            (GOOD, "canary") if answer.version == GOOD else (OLD, "production")
        )
        if row["arm"] == "canary":
            assert (row["shadow_version"], row["shadow_p_bot"]) == (
                OLD,
                shadow_as_recorded(old.p_bot(*answer.features)),
            )
            assert row["p_bot"] == answer.p_bot == good.p_bot(*answer.features)

    # The saved Athena query per arm, run by DuckDB over the objects shipped to S3.
    for key, body in weed.objects(bucket):
        if key.startswith("bot-score/"):
            (tmp_path / "s3" / key).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "s3" / key).write_bytes(body)
    by_arm = open_table(tmp_path / "s3").execute(example_queries()["canary_by_arm"]).fetchall()
    totals: dict[tuple[str, str], list[float]] = {}
    for _, arm, version, answered, server_errors, refusals, _, _, disagreements in by_arm:
        assert (server_errors, refusals) == (0, 0)
        totals.setdefault((arm, version), [0, 0])
        totals[arm, version][0] += answered
        totals[arm, version][1] += disagreements
    assert totals["canary", BAD][0] == sum(a.version == BAD for a in load.answers)
    assert totals["canary", BAD][1] > totals["canary", BAD][0] / 2  # the rollback's reason, in SQL
    assert totals["canary", GOOD][0] > 0 and totals["canary", GOOD][1] == 0
    assert totals["production", OLD][0] > totals["canary", GOOD][0]
