"""A worker following the registry's pointers, against a tiny in-memory registry (S3 itself:
tests/integration/test_model_registry.py)."""

from __future__ import annotations

import json
import logging

import pytest

from botscore.model import artifact
from botscore.model.artifact import Artifact
from botscore.model.canary import Plan
from botscore.model.follow import Follower
from botscore.model.registry import Pointer, Registry, RegistryError, RegistryUnreachable, Role
from botscore.settings import SHIPPED_MODEL

OLD = artifact.load(SHIPPED_MODEL)
NEW = artifact.parse(artifact.seal({**json.loads(SHIPPED_MODEL.read_text()), "intercept": -0.5}))


class MemoryRegistry(Registry):
    """Pointers and artifacts in dicts; a role in `down` answers as S3 would when unreachable."""

    def __init__(self) -> None:
        self.url = "s3://memory/models/"
        self.pointers: dict[str, Pointer] = {}
        self.artifacts: dict[str, Artifact] = {}
        self.down: set[str] = set()
        self.loads = 0
        self.stored_plan: tuple[Plan | None, str | None] = (None, None)
        self.plan_writes = 0

    def canary(self, etag: str | None = None) -> tuple[Plan | None, str | None] | None:
        if "canary" in self.down:
            raise RegistryUnreachable(f"model pointer {self.url}canary: Could not connect")
        return None if etag is not None and self.stored_plan[1] == etag else self.stored_plan

    def plan(self, plan: Plan | None, if_match: str | None = None) -> str | None:
        if "canary" in self.down:
            raise RegistryUnreachable(f"cannot write the canary plan {self.url}canary: Could not connect")
        if plan is not None and plan.state == "running" and if_match is None:
            self.load(plan.version)  # as S3's: a person's plan runs only a stored version
        if if_match is not None and if_match != self.stored_plan[1]:
            return None
        self.plan_writes += 1
        self.stored_plan = (plan, f'"plan-{self.plan_writes}"')
        return self.stored_plan[1]

    def point(self, role: Role, version: str | None, *, if_match: str | None = None) -> bool:
        if if_match is not None and if_match != self.pointers.get(role, Pointer(None, None)).etag:
            return False
        self.move(role, version)
        return True

    def move(self, role: Role, version: str | None) -> None:
        self.pointers[role] = Pointer(version, f'"{role}-{len(self.pointers)}-{version}-{self.loads}"')

    def pointer(self, role: Role, etag: str | None = None) -> Pointer | None:
        if role in self.down:
            raise RegistryUnreachable(f"model pointer {self.url}{role}: Could not connect")
        found = self.pointers.get(role, Pointer(None, None))
        return None if etag is not None and found.etag == etag else found

    def load(self, version: str) -> Artifact:
        self.loads += 1
        if version not in self.artifacts:
            raise RegistryError(f"model artifact {self.url}versions/{version}.json: no such version in the registry")
        return self.artifacts[version]


@pytest.fixture
def registry() -> MemoryRegistry:
    memory = MemoryRegistry()
    memory.artifacts = {OLD.version: OLD, NEW.version: NEW}
    return memory


def test_without_a_production_pointer_the_fallback_serves_until_one_is_promoted(registry: MemoryRegistry) -> None:
    follower = Follower(registry)
    assert follower.first(lambda: OLD).version == OLD.version
    assert follower.poll() is None
    registry.move("production", NEW.version)
    pair = follower.poll()
    assert pair is not None and (pair.version, pair.shadow) == (NEW.version, None)


def test_a_pointer_to_a_missing_version_is_refused_once_and_the_model_kept(
    registry: MemoryRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    refused: list[Role] = []
    registry.move("production", OLD.version)
    follower = Follower(registry, on_refused=refused.append)
    follower.first(lambda: NEW)
    registry.move("production", "lr-missing")
    with caplog.at_level(logging.ERROR, logger="botscore.reload"):
        assert [follower.poll() for _ in range(3)] == [None, None, None]
    assert refused == ["production"]
    assert [r.message for r in caplog.records] == ["model pointer refused; still serving the model it had"]
    assert registry.loads == 2  # OLD at start-up, lr-missing once
    registry.move("production", NEW.version)
    pair = follower.poll()
    assert pair is not None and pair.version == NEW.version


def test_a_pointer_followed_before_an_outage_is_swapped_in(registry: MemoryRegistry) -> None:
    registry.move("production", OLD.version)
    follower = Follower(registry)
    follower.first(lambda: NEW)
    registry.move("production", NEW.version)
    registry.down = {"shadow"}
    pair = follower.poll()
    assert pair is not None and pair.version == NEW.version
    registry.down = set()
    registry.move("shadow", OLD.version)
    pair = follower.poll()
    assert pair is not None and pair.version == NEW.version and pair.shadow is not None
    assert pair.shadow.version == OLD.version


def test_a_registry_unreachable_at_start_up_leaves_the_fallback_serving_counted_until_it_answers(
    registry: MemoryRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable: list[None] = []
    registry.move("production", NEW.version)
    registry.down = {"production", "shadow"}
    follower = Follower(registry, on_unreachable=lambda: unreachable.append(None))
    with caplog.at_level(logging.INFO, logger="botscore.reload"):
        assert follower.first(lambda: OLD).version == OLD.version
        assert [follower.poll() for _ in range(2)] == [None, None]
        assert len(unreachable) == 3  # start-up and each poll
        registry.down = set()
        pair = follower.poll()
    assert pair is not None and (pair.version, pair.shadow) == (NEW.version, None)
    assert [r.message for r in caplog.records] == [
        "model registry unreachable at start-up; serving what it could read, else BOTSCORE_MODEL_PATH, "
        "until it answers",
        "model registry reachable again",
    ]
    assert len(unreachable) == 3 and follower.poll() is None


def test_a_shadow_unreachable_at_start_up_keeps_the_production_read(registry: MemoryRegistry) -> None:
    registry.move("production", NEW.version)
    registry.move("shadow", OLD.version)
    registry.down = {"shadow"}
    follower = Follower(registry)
    started = follower.first(lambda: OLD)
    assert (started.version, started.shadow) == (NEW.version, None)
    registry.down = set()
    pair = follower.poll()
    assert pair is not None and pair.shadow is not None and pair.shadow.version == OLD.version
