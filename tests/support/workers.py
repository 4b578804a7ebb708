"""A real audit worker in a child process, killed with SIGKILL: what a crash leaves in the spool."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

_WORKER = """
import json
import sys
from pathlib import Path
from botscore.audit.segment import SegmentWriter
from botscore.audit.spool import SpoolDirectory

spool = SpoolDirectory(Path(sys.argv[1]), host=sys.argv[4])
spool.open()
writer = SegmentWriter(spool, max_bytes=1 << 20, max_age=3600)
for line in json.loads(sys.argv[2]):
    writer.append(line.encode() + b"\\n")
writer.seal()
for line in json.loads(sys.argv[3]):
    writer.append(line.encode() + b"\\n")
print(spool.worker, flush=True)
sys.stdin.read()
"""


def kill_a_worker(directory: Path, sealed: list[str], active: list[str], host: str) -> str:
    """Run a worker of `host` that seals `sealed` and leaves `active` in its active segment, SIGKILL it; its id."""
    child = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(directory), json.dumps(sealed), json.dumps(active), host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    worker = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL
    return worker
