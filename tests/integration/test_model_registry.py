"""The model registry against a real S3 (SeaweedFS) and `botscore serve --workers 2` under steady load:
a shadow scored beside production in the same audit rows, a promotion and a rollback reaching every
worker with no failed request, and a corrupt artifact and a pointer to a missing version refused while
the service keeps answering with the model it had."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from botscore.model import artifact, manage
from botscore.model.registry import Registry
from botscore.model.scorer import Scorer
from botscore.settings import SHIPPED_MODEL
from tests.support.models import NEW, NEW_DOCUMENT, OLD, SHIPPED, shadow_as_recorded
from tests.support.servers import BIN, ROOT, Service, Weed, service_env, wait_for

pytestmark = pytest.mark.slow

POLL_SECONDS = 0.5
# The fleet serves a new version within one poll interval plus one fetch of the artifact; the margin
# is for a loaded 2-core test machine (the measured figure is printed).
ROLLOUT_BOUND_SECONDS = POLL_SECONDS + 2.0
REFUSED = "model pointer refused; still serving the model it had"


def model_cli(weed: Weed, registry: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "botscore"), "model", "--registry", registry, *args],
        env=service_env(Path("/nonexistent"), **weed.aws_env()),
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass
class Answer:
    at: float  # time.monotonic() when the answer arrived
    status: int
    version: str
    request_id: str
    features: tuple[float, float]
    p_bot: float | None


@dataclass
class SteadyLoad:
    """Threads posting to /bot-score on new connections (so both workers get requests), each paced."""

    url: str
    threads: int = 4
    pause: float = 0.005
    ids: str | None = None  # send X-Request-ID `<ids>-<thread>-<n>` (else the service makes one)
    keep_alive: bool = False  # each thread keeps its connection (more load; new ones spread over the workers)
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> SteadyLoad:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def _run(self, n: int) -> None:
        i = 0
        client = httpx.Client() if self.keep_alive else None  # one connection a thread: one worker each
        while not self._stop.is_set():
            features = (round(0.1 + 0.37 * ((n * 7919 + i) % 11), 3), round(0.05 * ((n + i) % 13), 3))
            i += 1
            headers = {} if self.ids is None else {"x-request-id": f"{self.ids}-{n}-{i}"}
            try:
                response = (client or httpx).post(
                    self.url + "/bot-score", json={"x1": features[0], "x2": features[1]}, headers=headers, timeout=10
                )
            except httpx.HTTPError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            p_bot = response.json()["p_bot"] if response.status_code == 200 else None
            self.answers.append(
                Answer(
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("x-model-version", ""),
                    response.headers["x-request-id"],
                    features,
                    p_bot,
                )
            )
            time.sleep(self.pause)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=20)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.at >= moment]


def metric_samples(url: str) -> list[Any]:
    text = httpx.get(url + "/metrics", timeout=5).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def serving(url: str, role: str) -> dict[str, str]:
    """pid -> the version that worker serves in `role`."""
    return {
        s.labels["pid"]: s.labels["version"]
        for s in metric_samples(url)
        if s.name == "botscore_model_serving" and s.labels["role"] == role and s.value == 1
    }


def refusals(url: str) -> float:
    return sum(s.value for s in metric_samples(url) if s.name == "botscore_model_refusals_total")


def refusal_lines(service: Service) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line["message"] == REFUSED]


def shipped_rows(weed: Weed, bucket: str) -> Iterator[dict[str, Any]]:
    for key, body in weed.objects(bucket):
        if key.startswith("bot-score/"):
            for line in gzip.decompress(body).splitlines():
                yield json.loads(line)


def rollout(load: SteadyLoad, service: Service, moved_at: float, old: str, new: str) -> float:
    """Seconds from the pointer's move until every worker answers with `new` (metrics say so for both
    workers, and no answer with `old` arrives after that)."""
    wait_for(lambda: set(serving(service.url, "production").values()) == {new}, 30, f"both workers on {new}")
    assert len(serving(service.url, "production")) == 2
    settled = time.monotonic()
    time.sleep(4 * POLL_SECONDS)  # answers keep coming: none may be the old model's any more
    after = load.since(moved_at)
    assert all(a.version == new for a in after if a.at > settled), "an old answer after every worker moved"
    last_old = max((a.at for a in after if a.version == old), default=moved_at)
    return max(last_old, moved_at) - moved_at


def fleet(tmp_path: Path, weed: Weed, bucket: str, registry: str) -> Service:
    """`botscore serve --workers 2` following `registry` every POLL_SECONDS, shipping its rows to `bucket`."""
    return Service(
        tmp_path,
        workers=2,
        model_registry=registry,
        model_poll_seconds=POLL_SECONDS,
        audit_bucket=bucket,
        audit_segment_max_age_seconds=1,
        **weed.aws_env(),
    ).start()


def test_a_fleet_follows_the_registry_under_load(tmp_path: Path, weed: Weed, bucket: str) -> None:
    registry = f"s3://{bucket}/models/bot-score/"
    service = fleet(tmp_path, weed, bucket, registry)
    load = SteadyLoad(service.url).start()
    try:
        # Nothing promoted yet: the image's model (MODEL_PATH) serves.
        wait_for(lambda: len(load.answers) > 20, 30, "load running")
        assert {a.version for a in load.answers} == {OLD}
        published = model_cli(weed, registry, "publish", str(SHIPPED_MODEL))
        assert published.stdout == f"published {OLD} at {registry}versions/{OLD}.json\n", published.stderr
        again = model_cli(weed, registry, "publish", str(SHIPPED_MODEL))
        assert again.stdout == f"{OLD} was already published at {registry}versions/{OLD}.json\n"
        assert model_cli(weed, registry, "promote", OLD).stdout == f"production -> {OLD}\n"
        candidate = tmp_path / "candidate.json"
        artifact.write(NEW_DOCUMENT, candidate)
        assert model_cli(weed, registry, "publish", str(candidate)).returncode == 0

        # Shadow: every scored request is scored by NEW too; the answer stays OLD's.
        assert model_cli(weed, registry, "shadow", NEW).stdout == f"shadow -> {NEW}\n"
        wait_for(lambda: set(serving(service.url, "shadow").values()) == {NEW}, 30, "shadow on both workers")
        wait_for(lambda: len(serving(service.url, "shadow")) == 2, 30, "shadow on both workers")
        shadowed_from = time.monotonic()
        time.sleep(2)
        shadowed = [a for a in load.since(shadowed_from) if a.status == 200]
        assert shadowed and {a.version for a in shadowed} == {OLD}
        status = model_cli(weed, registry, "status", "--url", service.url).stdout.splitlines()
        assert status[:2] == [f"production: {OLD} (pointer)", f"shadow: {NEW} (pointer)"]
        assert sorted(line.split(" (")[0] for line in status[2:]) == [f"production: {OLD}"] * 2 + [f"shadow: {NEW}"] * 2

        # Promote NEW, then roll back to OLD: each reaches every worker with no failed request. Moved
        # in-process (what `botscore model promote` calls), to time it from the pointer's write.
        operator = Registry(registry, client=weed.client())
        manage.promote(operator, NEW)
        moved = time.monotonic()
        promoted_in = rollout(load, service, moved, OLD, NEW)
        metadata = [httpx.get(service.url + "/v2/models/bot-score", timeout=5).json() for _ in range(8)]
        assert {tuple(m["versions"]) for m in metadata} == {(NEW,)}
        manage.promote(operator, OLD)
        moved = time.monotonic()
        rolled_back_in = rollout(load, service, moved, NEW, OLD)
        print(f"rollout: promote {promoted_in:.3f} s, rollback {rolled_back_in:.3f} s (poll {POLL_SECONDS} s)")
        assert promoted_in <= ROLLOUT_BOUND_SECONDS and rolled_back_in <= ROLLOUT_BOUND_SECONDS

        # A corrupt artifact and a pointer to a missing version: the CLI refuses both; written by hand
        # past it, each worker refuses them once and keeps answering with OLD.
        corrupt = {**NEW_DOCUMENT, "version": "lr-corrupt", "intercept": 9.0}
        (tmp_path / "corrupt.json").write_text(json.dumps(corrupt))
        refused = model_cli(weed, registry, "publish", str(tmp_path / "corrupt.json"))
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"botscore model publish: model artifact {tmp_path / 'corrupt.json'}: ")
        assert "checksum mismatch" in refused.stderr
        missing = model_cli(weed, registry, "promote", "lr-missing")
        assert (missing.returncode, missing.stderr) == (
            1,
            f"botscore model promote: model artifact {registry}versions/lr-missing.json: "
            "no such version in the registry\n",
        )
        client = weed.client()
        client.put_object(Bucket=bucket, Key="models/bot-score/versions/lr-corrupt.json", Body=json.dumps(corrupt))
        before = time.monotonic()
        pointer = {"format": "botscore.model-pointer/v1", "version": "lr-corrupt"}
        client.put_object(Bucket=bucket, Key="models/bot-score/production", Body=json.dumps(pointer))
        wait_for(lambda: refusals(service.url) == 2, 30, "both workers refuse the corrupt artifact")
        pointer["version"] = "lr-missing"
        client.put_object(Bucket=bucket, Key="models/bot-score/production", Body=json.dumps(pointer))
        wait_for(lambda: refusals(service.url) == 4, 30, "both workers refuse the missing version")
        time.sleep(4 * POLL_SECONDS)  # more polls: nothing more is logged or counted
        assert refusals(service.url) == 4
        reasons = sorted((line["version"], line["reason"].split(": ")[1]) for line in refusal_lines(service))
        assert (
            reasons
            == [("lr-corrupt", "checksum mismatch")] * 2 + [("lr-missing", "no such version in the registry")] * 2
        )
        assert {a.version for a in load.since(before)} == {OLD}
        assert set(serving(service.url, "production").values()) == {OLD}
    finally:
        load.stop()
        service.stop()

    assert load.failures == []
    assert {a.status for a in load.answers} == {200}, "a request failed"
    print(f"{len(load.answers)} answers, 0 failed")

    # Both scores for the same ids, in the shipped rows.
    rows = {row["id"]: row for row in shipped_rows(weed, bucket)}
    challenger = Scorer(artifact.parse(NEW_DOCUMENT))
    for answer in shadowed:
        row = rows[answer.request_id]
        assert (row["model_version"], row["p_bot"]) == (OLD, answer.p_bot)
        assert (row["shadow_version"], row["shadow_p_bot"]) == (
            NEW,
            shadow_as_recorded(challenger.p_bot(*answer.features)),
        )
    assert {a.request_id for a in load.answers} <= set(rows)


def test_an_artifact_without_its_checksum_is_refused_by_publish_and_by_start_up(
    tmp_path: Path, weed: Weed, bucket: str
) -> None:
    registry = f"s3://{bucket}/models/bot-score/"
    unsigned = {key: value for key, value in SHIPPED.items() if key != "checksum"}
    path = tmp_path / "unsigned.json"
    path.write_text(json.dumps(unsigned))
    published = model_cli(weed, registry, "publish", str(path))
    assert (published.returncode, published.stderr) == (
        1,
        f"botscore model publish: model artifact {path}: missing field(s): checksum\n",
    )
    # Stored by hand past the CLI and promoted: start-up refuses it with one line.
    client = weed.client()
    client.put_object(Bucket=bucket, Key=f"models/bot-score/versions/{OLD}.json", Body=json.dumps(unsigned))
    pointer = {"format": "botscore.model-pointer/v1", "version": OLD}
    client.put_object(Bucket=bucket, Key="models/bot-score/production", Body=json.dumps(pointer))
    result = subprocess.run(
        [str(BIN / "botscore"), "serve", "--port", "1"],
        env=service_env(tmp_path / "audit", BOTSCORE_MODEL_REGISTRY=registry, **weed.aws_env()),
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr.strip().splitlines()) == (
        2,
        [f"botscore: model artifact {registry}versions/{OLD}.json: missing field(s): checksum"],
    )


def test_sighup_makes_a_worker_check_the_pointers_at_once(tmp_path: Path, weed: Weed, bucket: str) -> None:
    registry_url = f"s3://{bucket}/models/bot-score/"
    operator = Registry(registry_url, client=weed.client())
    operator.publish(SHIPPED_MODEL.read_bytes(), "shipped")
    operator.publish(json.dumps(NEW_DOCUMENT).encode(), "new")
    manage.promote(operator, OLD)
    service = Service(tmp_path, model_registry=registry_url, model_poll_seconds=3600, **weed.aws_env()).start()
    try:
        manage.promote(operator, NEW)
        time.sleep(1)
        assert httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}).headers["x-model-version"] == OLD
        assert service.process is not None
        service.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (
                httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}).headers["x-model-version"] == NEW
            ),
            10,
            "the promoted version after SIGHUP",
        )
    finally:
        service.stop()
