"""docs/model.md's local registry recipe runs as written: `weed mini` as the S3, `botscore serve` following
the registry, a challenger trained, published and promoted, then a rollback to the image's own model,
which was never published (`botscore model promote shipped`).

The block is run by bash from a scratch folder (so `var/` is the test's), with each port of the recipe
replaced by a free one: on a shared machine the documented ports may be taken. Nothing else is changed.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
from contextlib import closing, suppress
from pathlib import Path

import pytest

from botscore.model import manage
from botscore.settings import SHIPPED_MODEL
from tests.support.servers import BIN, LOOPBACK, ROOT

pytestmark = pytest.mark.slow

HEADING = "### Locally, with SeaweedFS"
PORT = r"(?<=\.port=)\d+|(?<=127\.0\.0\.1:)\d+|(?<=--port )\d+"  # -s3.port=8333, 127.0.0.1:8887, --port 8887


def recipe() -> str:
    section = (ROOT / "docs" / "model.md").read_text().split(f"\n{HEADING}\n", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def _free(port: int) -> bool:
    with closing(socket.socket()) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def on_free_ports(script: str) -> str:
    """The recipe with each port it names (`-x.port=N`, `127.0.0.1:N`, `--port N`) replaced by a free one, the same
    port for the same number everywhere."""
    numbers = sorted(set(re.findall(PORT, script)))
    taken: set[int] = set()
    ports = {}
    for number in numbers:
        # Below the kernel's ephemeral range (as tests.support.servers.Weed takes them), and weed binds
        # each port + 10000 for gRPC too, so both must be free.
        port = random.randint(20000, 22767)
        while port in taken or not (_free(port) and _free(port + 10000)):
            port = random.randint(20000, 22767)
        taken |= {port, port + 10000}
        ports[number] = str(port)
    return re.sub(PORT, lambda match: ports[match[0]], script)


def test_the_recipe_names_weed_mini_and_not_weed_server() -> None:
    assert manage.SHIPPED_ARTIFACT == SHIPPED_MODEL  # `promote shipped` promotes what MODEL_PATH serves by default
    script = recipe()
    assert "weed mini " in script and "weed server" not in script
    assert "botscore model promote shipped" in script


def test_the_local_registry_recipe_runs_as_written_and_rolls_back_to_the_images_own_model(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(ROOT / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BOTSCORE_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    script = "set -euo pipefail\n" + on_free_ports(recipe())
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the services it starts are stopped with it
    )
    try:
        out, err = process.communicate(timeout=240)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    logs = {name: (tmp_path / "var" / name).read_text()[-2000:] for name in ("serve.log", "weed.log")}
    assert process.returncode == 0, (err, logs)

    challenger = json.loads((tmp_path / "var" / "challenger.json").read_text())["version"]
    shipped = json.loads(SHIPPED_MODEL.read_text())["version"]
    lines = out.splitlines()
    ready = [json.loads(line) for line in lines if line.startswith("{")]
    assert [answer["model_version"] for answer in ready] == [shipped, challenger]
    assert f"published {challenger} at s3://botscore-local/models/bot-score/versions/{challenger}.json" in lines
    assert f"production -> {challenger}" in lines
    assert f"production -> {shipped} (the shipped model, bot-score.json)" in lines
    assert f"production: {shipped} (pointer)" in lines
    serving = [line for line in lines if line.startswith("production: ") and not line.endswith("(pointer)")]
    assert serving and all(line.startswith(f"production: {shipped} (") for line in serving), lines
