"""A missing or broken artifact stops start-up with one line naming the file and the problem."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from botscore.model import artifact
from botscore.settings import SHIPPED_MODEL
from tests.support.servers import BIN, ROOT, service_env


def _shipped() -> dict:
    return json.loads(SHIPPED_MODEL.read_text())


def _write(tmp_path: Path, document: object, *, reseal: bool = False) -> Path:
    if reseal:
        document = artifact.seal(document)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(document))
    return path


def test_shipped_artifact_is_valid_and_versioned_by_content() -> None:
    loaded = artifact.load(SHIPPED_MODEL)
    document = _shipped()
    assert loaded.version == document["version"] == artifact.seal(document)["version"]
    assert set(loaded.metrics) >= {"roc_auc", "log_loss", "brier_score"}
    assert set(loaded.training) >= {"data_sha256", "sklearn_version"}


def test_two_different_artifacts_never_share_a_version() -> None:
    document = _shipped()
    other = artifact.seal({**document, "intercept": document["intercept"] + 1e-9})
    assert other["version"] != document["version"]
    assert artifact.seal(document)["version"] == document["version"]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: {**d, "intercept": d["intercept"] + 1}, "checksum mismatch"),
        (lambda d: {k: v for k, v in d.items() if k != "coefficients"}, "missing field(s): coefficients"),
        (lambda d: artifact.seal({**d, "coefficients": [1.0]}), "coefficients must be a list of 2 finite numbers"),
        (lambda d: artifact.seal({**d, "coefficients": [1.0, 12345.5]}), "1e999 is not a finite number"),
        (lambda d: artifact.seal({**d, "features": ["a", "b"]}), "features are ['a', 'b']"),
        (lambda d: artifact.seal({**d, "format": "pickle"}), "format is 'pickle'"),
    ],
)
def test_broken_artifact_is_refused_with_the_problem(tmp_path: Path, mutate, problem: str) -> None:
    path = tmp_path / "model.json"
    text = json.dumps(mutate(_shipped()))
    path.write_text(text.replace("12345.5", "1e999"))
    with pytest.raises(artifact.ArtifactError) as info:
        artifact.load(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read: No such file or directory"), (b"{not json", "not valid JSON")],
)
def test_server_refuses_to_start_with_a_broken_model(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "model.json"
    if content is not None:
        path.write_bytes(content)
    env = service_env(tmp_path / "audit", BOTSCORE_MODEL_PATH=path)
    result = subprocess.run(
        [str(BIN / "botscore"), "serve", "--port", "1"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"botscore: model artifact {path}: ")
    assert problem in lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "text"),
    [
        ("BOTSCORE_PORT", "eighty", "BOTSCORE_PORT='eighty'"),
        ("BOTSCORE_AUDIT_WHEN_FULL", "ignore", "BOTSCORE_AUDIT_WHEN_FULL='ignore'"),
        ("BOTSCORE_AUDIT_PREFIX", "no-slash", "BOTSCORE_AUDIT_PREFIX='no-slash'"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str, text: str
) -> None:
    env = service_env(tmp_path / "audit", **{variable: value})
    result = subprocess.run(
        [str(BIN / "python"), "-m", "uvicorn", "app.main:app", "--port", "1"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"botscore: {text}: ")


def test_a_version_that_cannot_be_a_header_is_refused(tmp_path: Path) -> None:
    document = {k: v for k, v in _shipped().items() if k != "checksum"}
    document["version"] = "lr-1\r\nX-Evil: 1"
    document["checksum"] = "sha256:" + hashlib.sha256(artifact.canonical_json(document)).hexdigest()
    path = _write(tmp_path, document)
    with pytest.raises(artifact.ArtifactError, match="it is sent as a header"):
        artifact.load(path)
