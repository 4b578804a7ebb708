"""The canary's plan, split and guardrails, and a worker steering it (against the in-memory registry of
test_follow; S3 itself and `botscore serve --workers 2`: tests/integration/test_canary.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from botscore.model import artifact, manage
from botscore.model.artifact import Artifact
from botscore.model.canary import Guardrails, Plan, PlanError, Split
from botscore.model.follow import Follower
from botscore.model.registry import RegistryError, RegistryUnreachable
from botscore.model.scorer import Scorer
from botscore.ops.tally import Tally, Window
from botscore.settings import SHIPPED_MODEL
from tests.unit.model.test_follow import NEW, OLD, MemoryRegistry

OTHER = artifact.parse(artifact.seal({**json.loads(SHIPPED_MODEL.read_text()), "intercept": 0.25}))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> MemoryRegistry:
    memory = MemoryRegistry()
    memory.artifacts = {OLD.version: OLD, NEW.version: NEW, OTHER.version: OTHER}
    memory.move("production", OLD.version)
    return memory


def test_a_plan_survives_its_document_and_a_bad_one_is_named() -> None:
    plan = Plan(NEW.version, (5.0, 25.0, 100.0), 300.0, step=1, guardrails=Guardrails(window_seconds=30.0))
    assert Plan.decode(plan.encode(), "s3://b/canary") == plan
    assert plan.percent == 25.0 and not plan.last
    with pytest.raises(PlanError, match="steps must be increasing"):
        Plan(NEW.version, (25.0, 5.0), 300.0)
    with pytest.raises(PlanError, match="steps must be increasing"):
        Plan(NEW.version, (50.0, 150.0), 300.0)
    with pytest.raises(PlanError, match="s3://b/canary: guardrails must be an object of"):
        Plan.decode(plan.encode().replace(b'"min_calls"', b'"min_cals"'), "s3://b/canary")
    with pytest.raises(PlanError, match=r"not a botscore\.model-canary/v1 document"):
        Plan.decode(b'{"version": "x"}', "s3://b/canary")


def test_the_split_answers_the_share_by_request_id_the_same_in_every_process() -> None:
    ids = [str(uuid.uuid4()).encode() for _ in range(20_000)] + [b"pay-%06d" % i for i in range(20_000)]
    small, large = Split("p", "c", 5, NEW.version), Split("p", "c", 25, NEW.version)
    in_small = {rid for rid in ids if small.pick(rid) == "c"}
    in_large = {rid for rid in ids if large.pick(rid) == "c"}
    assert 0.045 < len(in_small) / len(ids) < 0.055
    assert 0.24 < len(in_large) / len(ids) < 0.26
    assert in_small <= in_large  # a step up keeps the requests the candidate answered
    # Another worker (a process with other hash seeds) picks the same arm for every id: a retry is answered alike.
    script = (
        "import sys; from botscore.model.canary import Split; s = Split('p', 'c', 5, sys.argv[1]); "
        "print(''.join(s.pick(line.encode()) for line in sys.stdin.read().split()))"
    )
    sample = [rid.decode() for rid in ids[::40]]
    other = subprocess.run(
        [sys.executable, "-c", script, NEW.version],
        input="\n".join(sample),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert other == "".join(small.pick(rid.encode()) for rid in sample) and "c" in other
    assert Split("p", "c", 5, OLD.version).pick  # another candidate's salt: another subset
    assert {rid for rid in ids if Split("p", "c", 5, OLD.version).pick(rid) == "c"} != in_small


def window(production: list[float], canary: list[float], scores: list[float] = ()) -> Window:  # type: ignore[assignment]
    """The window a tally gives for these calls (status, latency, ...) and scores (candidate's, production's, ...)."""
    tally = Tally(60.0, 0.5)
    for i in range(0, len(production), 2):
        tally.note_production((production[i], production[i + 1]))
    for i in range(0, len(canary), 2):
        tally.note_canary((canary[i], canary[i + 1]))
    for i in range(0, len(scores), 2):
        tally.note_compared((scores[i], scores[i + 1]))
    return tally.roll(0.0)


def _calls(n: int, status: int = 200, latency: float = 0.002) -> list[float]:
    return [status, latency] * n


def test_each_guardrail_names_its_breach_and_quiet_traffic_passes() -> None:
    g = Guardrails(min_calls=100)

    def breach(canary: list[float], scores: list[float] = (), production: list[float] | None = None) -> str:  # type: ignore[assignment]
        seen = window(_calls(2000) if production is None else production, canary, list(scores))
        return g.breach(seen, seen.production) or ""

    same = [0.1, 0.1] * 50 + [0.9, 0.9] * 50 + [0.32, 0.33] * 100
    assert breach(_calls(200), same) == ""
    assert breach(_calls(99, 500), same) == ""  # too few canary calls to judge
    failing = _calls(180) + _calls(20, 500)
    assert "5xx share 10.0% against production's 0.0%" in breach(failing, same)
    refusing = _calls(180) + _calls(20, 422)
    assert "refusal share 10.0%" in breach(refusing, same)
    # Client errors fall on both arms alike: 3 % and 2 % is chance at these counts, not the candidate.
    assert breach(_calls(194) + _calls(6, 401), same, _calls(1960) + _calls(40, 401)) == ""
    slow = _calls(200, latency=0.060)
    assert "p95 latency 100 ms against production's 25 ms" in breach(slow, same)
    high = [p for k in range(200) for p in (0.99, k / 400)]
    assert "score PSI" in breach(_calls(200), high)
    crossing = [0.49, 0.51] * 10 + [0.51, 0.49] * 10 + [0.3, 0.3] * 180  # same distribution, 10 % crossed
    assert "disagreement 10.0% with production on the same calls" in breach(_calls(200), crossing)


def test_at_the_100_percent_step_the_canary_is_measured_against_production_as_it_last_answered() -> None:
    g = Guardrails(min_calls=100)
    before = window(_calls(1950) + _calls(50, 401), [])  # the last window production answered: 2.5 % 401s
    alone = window([], _calls(970) + _calls(30, 401))
    assert g.breach(alone, before.production) is None  # 3 % 401s against 2.5 %: no breach
    failing = window([], _calls(900) + _calls(100, 500))
    assert "5xx share 10.0% against production's 0.0%" in (g.breach(failing, before.production) or "")


def test_guardrails_out_of_range_are_refused_by_name() -> None:
    for field, value in (("max_disagreement", 5.0), ("max_score_psi", float("nan")), ("window_seconds", 7200.0)):
        with pytest.raises(PlanError, match=f"guardrail {field} must be a number"):
            Plan(NEW.version, (10.0,), 0.0, guardrails=Guardrails(**{field: value}))
    with pytest.raises(PlanError, match="guardrail min_calls must be a whole number"):
        Plan(NEW.version, (10.0,), 0.0, guardrails=Guardrails(min_calls=0))


def _follower(registry: MemoryRegistry, clock: Clock, rollbacks: list[int]) -> tuple[Follower, Scorer]:
    """A worker started while the canary runs: it serves the split from its first pair."""
    follower = Follower(registry, clock=clock, on_rollback=lambda: rollbacks.append(1))
    return follower, follower.first(lambda: OLD)


def _serve(pair: Scorer, n: int, *, scores: tuple[float, float] = (0.2, 0.2)) -> None:
    """n calls through the pair's split, each noted as the request path notes it."""
    assert pair.split is not None
    for i in range(n):
        scorer = pair.split.pick(b"id-%d" % i)
        assert scorer.watch is not None
        scorer.watch((200, 0.002))
        if scorer.compared is not None:
            scorer.compared(scores)


def test_a_good_canary_moves_through_its_steps_after_each_dwell_and_is_promoted(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (10.0, 100.0), 60.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    assert pair.split is not None and pair.split.cut == 1000
    arms = (pair.arm_name, pair.split.canary.arm_name, pair.split.canary.version)
    assert arms == ("production", "canary", NEW.version)
    _serve(pair, 1000)
    clock.now += 59
    assert follower.poll() is None  # the dwell has not passed
    clock.now += 1
    pair = follower.poll()
    assert pair is not None and pair.split is not None and pair.split.cut == 10_000
    assert registry.stored_plan[0] is not None and registry.stored_plan[0].step == 1
    _serve(pair, 100)
    clock.now += 60
    pair = follower.poll()
    assert registry.stored_plan[0] is not None and registry.stored_plan[0].state == "promoted"
    assert registry.pointers["production"].version == NEW.version
    assert pair is not None and pair.split is None and pair.version == NEW.version and not rollbacks


def test_a_breach_rolls_the_canary_back_once_and_stops_serving_it(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (50.0,), 600.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    assert pair.split is not None
    _serve(pair, 600, scores=(0.99, 0.1))
    pair = follower.poll()
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "rolled_back" and "score PSI" in (stored.reason or "")
    assert pair is not None and pair.split is None and pair.version == OLD.version and rollbacks == [1]
    assert follower.poll() is None and rollbacks == [1]


def test_a_rollback_that_loses_the_write_still_stops_serving_the_candidate_here(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (50.0, 100.0), 600.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    _serve(pair, 600, scores=(0.99, 0.1))
    moved = registry.stored_plan[0]
    assert moved is not None
    write = registry.plan

    def racing(plan: Plan, if_match: str | None = None) -> str | None:
        """Another worker moves the step on between this worker's read and its write: this write loses."""
        registry.plan = write  # type: ignore[method-assign]
        write(moved.moved(step=1))
        return write(plan, if_match)

    registry.plan = racing  # type: ignore[method-assign]
    pair = follower.poll()
    assert pair is not None and pair.split is None and not rollbacks  # lost, yet no candidate served here
    stored = registry.stored_plan[0]
    assert stored is not None and (stored.state, stored.step) == ("running", 1)
    assert follower.poll() is None  # read again: the breach still stands, and now the write wins
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "rolled_back" and rollbacks == [1]


def test_a_canary_of_a_missing_version_or_an_unreadable_plan_is_refused_once(
    registry: MemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[str] = []
    registry.stored_plan = (Plan("lr-0000000000000000", (50.0,), 60.0), '"by-hand"')  # a version not stored
    follower = Follower(registry, on_refused=refused.append)
    pair = follower.first(lambda: OLD)
    assert pair.split is None and pair.version == OLD.version and refused == ["canary"]
    assert follower.poll() is None and refused == ["canary"]  # not fetched nor counted again

    def unreadable(etag: str | None = None) -> None:
        raise RegistryError("canary plan s3://memory/models/canary: not valid JSON")

    monkeypatch.setattr(registry, "canary", unreadable)
    follower = Follower(registry, on_refused=refused.append)
    assert follower.first(lambda: OLD).split is None
    assert follower.poll() is None and refused == ["canary", "canary"]


def test_in_an_s3_outage_a_breach_still_stops_the_candidate_and_is_written_once_s3_answers(
    registry: MemoryRegistry,
) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (50.0,), 600.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    registry.down = {"production", "shadow", "canary"}
    _serve(pair, 600, scores=(0.99, 0.1))
    pair = follower.poll()
    assert pair is not None and pair.split is None and not rollbacks  # stopped here; nothing written yet
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "running"
    registry.down = set()
    assert follower.poll() is None
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "rolled_back" and rollbacks == [1]


def test_a_canary_started_again_after_a_rollback_is_a_new_run_with_its_own_dwell(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    guards = Guardrails(min_calls=20)
    manage.canary(registry, NEW.version, (50.0, 100.0), 300.0, guards)
    follower, pair = _follower(registry, clock, rollbacks)
    _serve(pair, 600, scores=(0.99, 0.1))
    follower.poll()
    assert rollbacks == [1]
    clock.now += 400
    manage.canary(registry, NEW.version, (50.0, 100.0), 300.0, guards)  # the same version, once more
    pair = follower.poll()
    assert pair is not None and pair.split is not None and rollbacks == [1]  # no breach carried over
    _serve(pair, 600)
    clock.now += 10
    assert follower.poll() is None
    stored = registry.stored_plan[0]
    assert stored is not None and (stored.state, stored.step) == ("running", 0)  # its dwell began at the start


def test_a_candidate_s3_did_not_serve_is_fetched_at_the_next_poll(
    registry: MemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    follower = Follower(registry, clock=Clock())
    assert follower.first(lambda: OLD).split is None
    manage.canary(registry, NEW.version, (10.0,), 300.0, Guardrails())
    load = registry.load

    def blip(version: str) -> Artifact:
        monkeypatch.setattr(registry, "load", load)
        raise RegistryUnreachable("model artifact: Could not connect")

    monkeypatch.setattr(registry, "load", blip)
    assert follower.poll() is None  # S3 failed half-way: nothing taken in
    pair = follower.poll()
    assert pair is not None and pair.split is not None and pair.split.canary.version == NEW.version


def test_a_promotion_never_moves_a_pointer_a_person_moved_since(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    manage.canary(registry, NEW.version, (100.0,), 60.0, Guardrails(min_calls=20))
    follower, pair = _follower(registry, clock, rollbacks)
    _serve(pair, 100)
    registry.move("production", OTHER.version)  # a person's promote, by an older CLI that leaves the plan
    clock.now += 60
    pair = follower.poll()
    assert registry.pointers["production"].version == OTHER.version
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "promoted"
    assert pair is not None and pair.version == OTHER.version and pair.split is None
    assert follower.poll() is None and registry.pointers["production"].version == OTHER.version


def test_a_rollback_whose_retried_write_found_its_own_plan_counts_once(
    registry: MemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, rollbacks = Clock(), []
    manage.canary(registry, NEW.version, (50.0,), 600.0, Guardrails(min_calls=20))
    follower, pair = _follower(registry, clock, rollbacks)
    _serve(pair, 600, scores=(0.99, 0.1))
    write = registry.plan

    def applied_then_412(plan: Plan | None, if_match: str | None = None) -> str | None:
        write(plan, if_match)  # the first try was applied; botocore's retry then meets its own ETag: 412
        return None

    monkeypatch.setattr(registry, "plan", applied_then_412)
    follower.poll()
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "rolled_back" and rollbacks == [1]


def test_stop_and_promote_end_a_running_canary(registry: MemoryRegistry) -> None:
    manage.canary(registry, NEW.version, (10.0,), 300.0, Guardrails())
    assert manage.stop_canary(registry) == f"canary {NEW.version} stopped at 10 %"
    assert manage.stop_canary(registry) == "no canary is running"
    manage.canary(registry, NEW.version, (10.0, 100.0), 300.0, Guardrails())
    said = manage.promote(registry, OTHER.version)
    assert said == f"production -> {OTHER.version}; canary {NEW.version} stopped at 10 %"
    stored = registry.stored_plan[0]
    assert (
        stored is not None
        and stored.state == "stopped"
        and stored.reason == f"production moved to {OTHER.version} by hand"
    )
    registry.stored_plan = (None, '"broken"')
    registry.canary = lambda etag=None: (_ for _ in ()).throw(RegistryError("not valid JSON"))  # type: ignore[method-assign]
    assert "an unreadable canary plan removed" in manage.promote(registry, OLD.version)
