"""Imported at start-up by every Python process with this folder on PYTHONPATH (bench/efs.py):
os.fsync becomes the EFS model's floor and exponential tail, in place of the local disk's fsync."""

import os
import random
import time

_FLOOR = float(os.environ.get("CAPACITY_FSYNC_FLOOR_MS", "0")) / 1000
_TAIL = float(os.environ.get("CAPACITY_FSYNC_TAIL_MS", "0")) / 1000


def _efs_fsync(fd: int) -> None:
    os.fstat(fd)  # still fails on a bad descriptor, as fsync would
    time.sleep(_FLOOR + (random.expovariate(1 / _TAIL) if _TAIL > 0 else 0.0))


if _FLOOR > 0 or _TAIL > 0:
    os.fsync = _efs_fsync
