"""The deployment's fsync latency, reproduced on a local disk: the model and how a task gets it.

On ECS the spool is on EFS (NFSv4.1) and `BOTSCORE_AUDIT_SYNC=always` answers only after an
fsync, which on NFS is a network round trip that commits the written pages on the server.
The model: every fsync of the task (segment commits, seals, folder syncs) takes FLOOR_MS plus
an exponential tail of mean TAIL_MS, in place of the local disk's fsync. In place of, not on top
of: on ECS the local disk is not involved, and here an ext4 fsync commits the journal with every
neighbour's dirty data, so on a shared host it alone put 200 ms into the p99 of `always` (measured
11:19 UTC on 2026-12-02, 30 sequential req/s: p99 191 ms with `always`, 7 ms with `none`).

- FLOOR_MS 2.7: AWS's published write latency for Regional EFS file systems ("as low as
  2.7 ms", Amazon EFS performance specifications, docs.aws.amazon.com/efs/latest/ug/performance.html;
  One Zone: 1.6 ms). "As low as" is a floor, not a typical value.
- TAIL_MS 2.3: an assumption, not a published figure: it makes the mean 5 ms (the design
  brief's "fsync 5 ms slower, about an EFS commit") and the p99 of one fsync
  2.7 + 2.3 x ln(100) = 13.3 ms, as a commit that crosses AZs now and then would.

The delay is added in the task's own Python processes by `bench/efs_fsync/sitecustomize.py`
(on PYTHONPATH, it replaces `os.fsync` before botscore is imported); the sleep releases the GIL,
as a blocking NFS commit does. CAPACITY_FSYNC_FLOOR_MS / CAPACITY_FSYNC_TAIL_MS override the
model; both 0 measure the local disk alone.
"""

from __future__ import annotations

import os
from pathlib import Path

FLOOR_MS = 2.7
TAIL_MS = 2.3
SITE = Path(__file__).resolve().parent / "efs_fsync"
FLOOR_VARIABLE, TAIL_VARIABLE = "CAPACITY_FSYNC_FLOOR_MS", "CAPACITY_FSYNC_TAIL_MS"


def model() -> tuple[float, float]:
    """(floor, tail mean) in ms, as configured for this run."""
    return float(os.environ.get(FLOOR_VARIABLE, FLOOR_MS)), float(os.environ.get(TAIL_VARIABLE, TAIL_MS))


def task_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a task's processes with the fsync model on (nothing added when both parts are 0)."""
    floor, tail = model()
    if not floor and not tail:
        return dict(env)
    path = os.pathsep.join(p for p in (str(SITE), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, FLOOR_VARIABLE: str(floor), TAIL_VARIABLE: str(tail)}
