"""A cgroup limited like a Fargate task: a CPU quota per 100 ms period and a memory limit.

Fargate enforces a task's CPU as a CFS bandwidth quota (0.25 vCPU: 25 ms of CPU in every
100 ms period) and its memory as a hard limit (the OOM killer past it). The same limits here:
cgroup v1 (`cpu.cfs_quota_us`, `memory.limit_in_bytes`, each controller its own hierarchy) or
v2 (`cpu.max`, `memory.max`, one hierarchy), whichever the host has; root only.

`priority`: the group's CPU weight against everything else on the host (v1 `cpu.shares`, v2
`cpu.weight`). A Fargate task has no neighbours on its vCPU; a shared host does, so the bench
raises the weight so that neighbours yield to it while the quota still caps it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
PERIOD_US = 100_000  # Fargate's (and the kernel's default) CFS period


@dataclass(frozen=True)
class CpuUsage:
    """Counters of the group's CPU, read at one moment."""

    seconds: float  # CPU time used by the group's processes
    periods: int  # CFS periods in which the group ran
    throttled: int  # periods in which it hit the quota and waited

    def since(self, before: CpuUsage) -> CpuUsage:
        return CpuUsage(self.seconds - before.seconds, self.periods - before.periods, self.throttled - before.throttled)


def _stat(path: Path) -> dict[str, int]:
    return {key: int(value) for key, value in (line.split() for line in path.read_text().splitlines())}


class TaskCgroup:
    """One task's limits; create(), start processes through wrap(argv), read, remove()."""

    def __init__(self, name: str, vcpu: float, memory_mib: int, *, priority: bool = True) -> None:
        self.name, self.vcpu, self.memory_mib, self.priority = name, vcpu, memory_mib, priority
        self.v2 = (CGROUP / "cgroup.controllers").exists()
        if self.v2:
            self.dirs = {"cpu": CGROUP / name, "cpuacct": CGROUP / name, "memory": CGROUP / name}
        else:
            self.dirs = {controller: CGROUP / controller / name for controller in ("cpu", "cpuacct", "memory")}

    def create(self) -> TaskCgroup:
        quota = int(self.vcpu * PERIOD_US)
        memory = self.memory_mib * 1024 * 1024
        if self.v2:
            (CGROUP / "cgroup.subtree_control").write_text("+cpu +memory")
            group = self.dirs["cpu"]
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (group / "memory.max").write_text(str(memory))
            (group / "memory.swap.max").write_text("0")
            if self.priority:
                (group / "cpu.weight").write_text("10000")
            return self
        for folder in set(self.dirs.values()):
            folder.mkdir(exist_ok=True)
        cpu = self.dirs["cpu"]
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(quota))
        if (cpu / "cpu.cfs_burst_us").exists():
            (cpu / "cpu.cfs_burst_us").write_text("0")  # Fargate lends no burst
        if self.priority:
            (cpu / "cpu.shares").write_text("262144")
        memory_dir = self.dirs["memory"]
        (memory_dir / "memory.limit_in_bytes").write_text(str(memory))
        if (memory_dir / "memory.memsw.limit_in_bytes").exists():  # no swap, as on Fargate
            (memory_dir / "memory.memsw.limit_in_bytes").write_text(str(memory))
        return self

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run inside the group: a shell joins it, then execs argv (so every child is in it too)."""
        join = "; ".join(f"echo $$ > {folder / 'cgroup.procs'}" for folder in sorted(set(self.dirs.values())))
        return ["sh", "-c", f'{join}; exec "$@"', "sh", *argv]

    def cpu(self) -> CpuUsage:
        if self.v2:
            stat = _stat(self.dirs["cpu"] / "cpu.stat")
            return CpuUsage(stat["usage_usec"] / 1e6, stat.get("nr_periods", 0), stat.get("nr_throttled", 0))
        stat = _stat(self.dirs["cpu"] / "cpu.stat")
        seconds = int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        return CpuUsage(seconds, stat["nr_periods"], stat["nr_throttled"])

    def reset_peak(self) -> None:
        """Start a new peak-memory window (v2 kernels before 6.12 cannot: their peak is since creation)."""
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        with contextlib.suppress(OSError):
            (self.dirs["memory"] / name).write_text("0")

    def memory(self) -> tuple[int, int]:
        """(peak bytes charged to the group since reset_peak(), page cache included; anonymous bytes now)."""
        folder = self.dirs["memory"]
        stat = _stat(folder / "memory.stat")
        if self.v2:
            return int((folder / "memory.peak").read_text()), stat["anon"]
        return int((folder / "memory.max_usage_in_bytes").read_text()), stat["total_rss"]

    def oom_kills(self) -> int:
        if self.v2:
            return _stat(self.dirs["memory"] / "memory.events").get("oom_kill", 0)
        return _stat(self.dirs["memory"] / "memory.oom_control").get("oom_kill", 0)

    def remove(self) -> None:
        """Remove the group once its processes are gone (they are stopped by pid before this)."""
        for folder in set(self.dirs.values()):
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
