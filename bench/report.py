"""docs/capacity.md from the report `bench/capacity.py` builds (the same one it writes to docs/capacity.json)."""

from __future__ import annotations

from typing import Any

from bench.sizing import EQUAL_WITHIN, HEADROOM, MIN_CAPACITY, SHED_AFTER_SECONDS, WAF_WINDOW_SECONDS


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value else "none"


def _at(step: dict[str, Any] | None) -> list[str]:
    if step is None:
        return ["-", "-", "-", "-"]
    return [
        f"{step['load']['ok_p99_ms']:.1f}",
        f"{step['vcpu_used']:.2f}",
        f"{step['throttled_share']:.0%}",
        f"{step['peak_mib']:.0f} / {step['rss_mib']:.0f}",
    ]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _runs(values: list[float]) -> str:
    return ", ".join(_rate(v) for v in values)


def capacity_table(results: list[dict[str, Any]], tight: float, loose: float) -> list[str]:
    lines = [
        f"| vCPU | memory (MiB) | workers | max rate, p99 < {tight:g} ms (req/s), median | runs | p99 (ms) "
        f"| CPU (vCPU) | throttled | memory peak / RSS (MiB) | max rate, p99 < {loose:g} ms (req/s), median | runs "
        "| p99 (ms) | CPU (vCPU) | throttled | memory peak / RSS (MiB) |",
        "| " + " | ".join(["---"] * 15) + " |",
    ]
    for r in results:
        cells = [f"{r['vcpu']:g}", str(r["memory_mib"]), str(r["workers"]), _rate(r["fast_rps"])]
        cells += [_runs(r.get("runs_fast_rps", [])), *_at(r["at_fast"])]
        cells += [_rate(r["slow_rps"]), _runs(r.get("runs_slow_rps", [])), *_at(r["at_slow"])]
        lines.append(_row(cells))
    return lines


def storage_table(results: list[dict[str, Any]], tight: float) -> list[str]:
    """CPU and storage operations per request at each size's p99 < `tight` rate: what each costs on AWS."""
    lines = [
        f"| vCPU | workers | rate, p99 < {tight:g} ms (req/s) | CPU per request (µs) | fsyncs per request |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        at = r["at_fast"]
        if at is None or "fsyncs_per_request" not in at:
            continue
        cells = [f"{r['vcpu']:g}", str(r["workers"]), _rate(at["rate"])]
        cells += [f"{at['vcpu_used'] / at['rate'] * 1e6:.0f}", f"{at['fsyncs_per_request']:.3f}"]
        lines.append(_row(cells))
    if len(lines) == 2:  # measured before make capacity counted fsyncs
        return []
    return [
        "Storage operations beside CPU: under `always` each fsync round is an EFS write billed as at least 32 KiB "
        "(docs/cost.md prices them).",
        "",
        *lines,
        "",
    ]


def ceiling_table(results: list[dict[str, Any]]) -> list[str]:
    """botscore against the bare ASGI app in the same cgroup at the same rate: CPU per request (medians)."""
    lines = [
        "| vCPU | workers | rate (req/s) | botscore CPU (vCPU) | bare app CPU (vCPU), median | bare app p99 (ms), "
        "median | botscore CPU per request / bare app's | the bare app's CPU-bound rate in this cgroup (req/s) |",
        "| " + " | ".join(["---"] * 8) + " |",
    ]
    for r in results:
        steps, at = r.get("ceiling") or [], r["at_slow"]
        if not steps or at is None:
            continue
        cpu = sorted(s["vcpu_used"] for s in steps)[len(steps) // 2]
        p99 = sorted(s["load"]["ok_p99_ms"] for s in steps)[len(steps) // 2]
        rate = at["rate"]
        ratio = at["vcpu_used"] / cpu if cpu else 0.0
        bound = r["vcpu"] / (cpu / rate) if cpu else 0.0
        lines.append(
            _row(
                [
                    f"{r['vcpu']:g}",
                    str(r["workers"]),
                    _rate(rate),
                    f"{at['vcpu_used']:.3f}",
                    f"{cpu:.3f}",
                    f"{p99:.1f}",
                    f"{ratio:.1f}x",
                    _rate(bound),
                ]
            )
        )
    return lines


def overload_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| vCPU | workers | `BOTSCORE_MAX_IN_FLIGHT` | offered (req/s) | answered 200 | p99 of the 200s (ms) "
        "| shed (503) | other statuses | not answered (timeout, unsent, disconnected) | CPU (vCPU) "
        "| connections opened | accept-queue overflows |",
        "| " + " | ".join(["---"] * 12) + " |",
    ]
    for r in results:
        for run in r["overload"]:
            load = run["load"]
            due = load["due"] or 1
            statuses = load["statuses"]
            other = {k: v for k, v in statuses.items() if k not in ("200", "503")}
            errors = sum(load["errors"].values())
            bound = run["max_in_flight"]
            shedding = "no such setting" if bound is None else f"`{bound}` ({run['label']})"
            lines.append(
                _row(
                    [
                        f"{r['vcpu']:g}",
                        str(r["workers"]),
                        shedding,
                        _rate(run["rate"]),
                        f"{statuses.get('200', 0) / due:.1%}",
                        f"{load['ok_p99_ms']:,.0f}",
                        f"{statuses.get('503', 0) / due:.1%}",
                        ", ".join(f"{k}: {v / due:.1%}" for k, v in other.items()) or "none",
                        f"{errors / due:.1%}"
                        + (f" ({', '.join(f'{k} {v}' for k, v in load['errors'].items())})" if errors else ""),
                        f"{run['vcpu_used']:.2f}",
                        f"{load.get('connections', 0):,}",
                        f"{run.get('listen_overflows', 0):,}",
                    ]
                )
            )
    return lines


def terraform_table(derived: dict[str, Any], defaults: dict[str, Any], tight: float) -> list[str]:
    target = derived["target_rps_per_task"]
    fleet = derived.get("fleet_rps", derived["max_capacity_carries_rps"])
    why = {
        "task_cpu": f"the most requests per vCPU at p99 < {tight:g} ms ({derived['fast_capacity_rps']:,.0f} req/s for "
        f"this size); sizes within {EQUAL_WITHIN:.0%} of the best count as equal and the largest wins",
        "task_memory": "Fargate's smallest memory for that CPU; the peak above stays well inside it",
        "workers": "the worker count that gave that capacity",
        "requests_per_target": f"{HEADROOM:.0%} of the p99 < {tight:g} ms capacity, {target:,.0f} req/s, times 60 "
        "(ALBRequestCountPerTarget counts per target per minute)",
        "cpu_target_percent": f"the task's CPU at {target:,.0f} req/s ({derived['cpu_percent_at_target']:.0f} %, "
        "interpolated between measured steps), so both policies scale out at the same load",
        "min_capacity": f"one task per availability zone ({MIN_CAPACITY}); one lost, the other holds the load "
        f"under {tight:g} ms",
        "max_capacity": (
            f"enough for CAPACITY_PEAK_RPS={derived['peak_rps']:,.0f}"
            if derived["peak_rps"]
            else "a cost bound, not a measurement: kept"
        )
        + f"; {derived['max_capacity']} tasks carry {derived['max_capacity_carries_rps']:,.0f} req/s at the "
        "scale-out point",
        "max_in_flight": f"what a worker answers in {SHED_AFTER_SECONDS * 1000:.0f} ms at its p99 < 200 ms rate "
        f"({derived['slow_capacity_rps']:,.0f} req/s a task): a longer queue is shed (503) rather than waited on",
    }
    if "audit_spool_max_bytes" in derived:
        why["audit_spool_max_bytes"] = (
            f"an S3 outage of {derived['outage_seconds'] / 3600:g} h at the sized load ({fleet:,.0f} req/s: "
            f"max_capacity tasks at the scale-out rate) x {derived['record_bytes']} bytes a record stays under the "
            f"80 % of the bound at which readiness turns false; rounded up to a GiB it rides out "
            f"{derived['spool_rides_out_seconds'] / 3600:.1f} h"
        )
        why["waf_rate_limit"] = (
            f"the sized load ({fleet:,.0f} req/s) over the WAF's {WAF_WINDOW_SECONDS} s window: one address (callers "
            "behind one NAT) may use the whole fleet the scaling settings carry, never more"
        )
    lines = [
        "| variable | variables.tf before this run | derived (variables.tf now) | why |",
        "| --- | --- | --- | --- |",
    ]
    for key, reason in why.items():
        lines.append(_row([f"`{key}`", str(defaults.get(key)), str(derived[key]), reason]))
    return lines


def render(report: dict[str, Any]) -> str:
    method, check = report["method"], report["generator_check"]
    derived, defaults = report["terraform"], report["terraform_defaults"]
    results = report["results"]
    lags = [s["load"]["lag_p99_ms"] for r in results for s in r["steps"]]
    ooms = sum(r["oom_kills"] for r in results)
    old = defaults["requests_per_target"] / 60
    tight, loose = method["limits_ms"][0], method["limits_ms"][-1]
    floor, tail = method.get("fsync_floor_ms", 0.0), method.get("fsync_tail_ms", 0.0)
    disk = (
        f"with every fsync of the task made the deployment's EFS commit in place of the local disk's: {floor:g} ms "
        f"plus an exponential tail of mean {tail:g} ms (`bench/efs.py`: {floor:g} ms is AWS's published write "
        "latency of Regional EFS, 'as low as', in the Amazon EFS performance specifications; the tail is an "
        f"assumption that makes the mean {floor + tail:g} ms and one fsync's p99 {floor + tail * 4.605:.1f} ms)"
        if floor or tail
        else "with the spool on the local disk (no EFS latency model)"
    )
    lines = [
        "# Capacity",
        "",
        f"Generated by `{report['command']}` on {report['generated']} in {report['minutes']} minutes; every "
        "figure below comes from that run. Host: " + report["host"] + ".",
        "",
        f"What one task of a given size takes while the brief's p99 target ({loose:g} ms) holds, and while a "
        f"tighter one ({tight:g} ms, the scale-out criterion) does. Method:",
        "",
        "- The task: `botscore serve --workers N` in a cgroup limited like a Fargate task: a CFS quota of "
        "vCPU × 100 ms per 100 ms period (no burst) and a memory limit of Fargate's smallest memory for that "
        "CPU (0.25 vCPU: 512 MiB, 0.5: 1 GiB, 1: 2 GiB), pinned to core 0. Its audit log is on, "
        f"`BOTSCORE_AUDIT_SYNC={method['audit_sync']}` (the Terraform default; the app's own default is "
        f"`none`), {disk}, shipping to a SeaweedFS S3 on the same host.",
        *(
            [
                f"- This run is a cheaper form than the tool's defaults (6 s measured after 2 s per step, and the "
                f"overload repeated with other shedding settings): {method['warmup']:g} s + {method['seconds']:g} s "
                "steps"
                + ("" if method.get("overload_variants", True) else ", the overload as configured only")
                + ", to fit a shared host's half hour; the medians below are what the defaults rest on."
            ]
            if method["seconds"] < 6 or not method.get("overload_variants", True)
            else []
        ),
        f"- Sizes run: {', '.join(method.get('sizes', []))} (vCPU x workers). Each size's search ran "
        f"{method.get('runs', 1)} times, interleaved with the other sizes' and each on a fresh task; a size's "
        "capacity is the median of its runs (the runs column lists them), so one noisy minute moves no default.",
        "- The load: `bench/openloop.py`, open loop on core 1: request i is due at start + i / rate whatever "
        "the answers, and its latency runs from that due time (no coordinated omission); HTTP/1.1 keep-alive "
        "connections from a pool of 16 that grows to 4,096 when all are busy (as an ALB opens more "
        "connections to a busy target); a request due with all 4,096 busy is `unsent`, one unanswered after "
        '10 s a `timeout`. The body is always `{"x1": 0.1, "x2": 0.2}`.',
        f"- A step: {method['warmup']:g} s at the rate, then {method['seconds']:g} s measured. The rates: "
        "from 1,000 × vCPU req/s, doubled after a pass and halved after a fail until a pass and a fail "
        f"bracket the answer, then bisected to {method['resolution']:.0%} (`bench/search.py`). A pass: every "
        "request of the window answered 200 and their p99 under the limit. A step whose generator lagged more "
        "than 5 ms at p99 is run again, twice at most. The tight limit is "
        + (
            f"{tight:g} ms and not 10 ms: with an EFS commit in every answer (two at worst, the one running when a "
            "request arrives and then its own), the commits alone put a p99 near 20 ms under any load."
            if tight != 10
            else "10 ms."
        ),
        "- At the rate found: CPU is the task cgroup's `cpuacct.usage` over the window per second (vCPU used, "
        "all processes of the task); throttled, the share of CFS periods in which the task hit its quota; "
        "memory, the cgroup's peak over the window (`memory.max_usage_in_bytes`: RSS plus the page cache of "
        "the spool) and its RSS at the end.",
        "- "
        + (
            "Priority: the task's cgroup outweighs the host's other processes (`cpu.shares` 262144) and the "
            "generator runs SCHED_FIFO, so that a neighbour's test run disturbs neither; the quota still caps the "
            "task (`CAPACITY_PRIORITY=0` turns this off)."
            if method["priority"]
            else "Priority: none (`CAPACITY_PRIORITY=0`): the host's other processes competed with the task."
        ),
        "",
        "## Capacity per task size",
        "",
        *capacity_table(results, tight, loose),
        "",
        *storage_table(results, tight),
        f"When this ran, the Terraform default scaled out at `requests_per_target = {defaults['requests_per_target']}`,"
        " "
        f"{old:,.0f} req/s per task.",
        f"Memory limit reached (OOM kills in the task cgroups): {ooms}.",
        "",
        "## Past capacity",
        "",
        f"Twice the median p99 < {loose:g} ms rate for one step on a fresh task, with `BOTSCORE_MAX_IN_FLIGHT` as "
        "configured (the app's default unless set)"
        + (
            f", then with shedding off (`0`) and with the bound set to what a worker answers in 100 ms at its "
            f"p99 < {loose:g} ms rate. "
            if method.get("overload_variants", True)
            else " only (`CAPACITY_OVERLOAD_VARIANTS=0`: the runs with other shedding settings were left out). "
        )
        + "Shares are of the requests due in the window. A queue that grows for the whole step makes the p99 "
        "of the 200s grow with the step's length; answers later than 10 s count as timeouts. Connections "
        "opened is the generator's peak, so the requests outstanding at once; a worker's bound counts only the "
        "requests it has read, and the rest wait in the kernel (accept queue, socket buffers), outside any bound. "
        "Accept-queue overflows are the host's `TcpExt ListenOverflows` over the window: connection attempts the "
        "kernel dropped, which the client retries a second or more later.",
        "",
        *overload_table(results),
        "",
        "## What this means for Terraform",
        "",
        "Computed by `bench/sizing.py` from the table above; docs/capacity.json holds the same numbers "
        "(`terraform`), and the defaults in terraform/variables.tf must be them: `make test` fails until they "
        "are (tests/infra/test_terraform.py). The run does not edit terraform/; the defaults it found there "
        "are in the second column.",
        "",
        *terraform_table(derived, defaults, tight),
        "",
        f"Headroom: scale out at {HEADROOM:.0%} of the p99 < {tight:g} ms capacity. Target tracking acts on "
        "one-minute averages and a new task takes a minute or two to serve, so the load can double before help "
        f"arrives and still be answered within {tight:g} ms; past that the p99 < {loose:g} ms column is the margin "
        "before the brief's target breaks.",
        "",
        "## Against the bare ASGI app in the same cgroup",
        "",
        "The ceiling (`bench/ceiling.py`: a bare ASGI app answering a fixed JSON under the same uvicorn options) "
        f"in a cgroup limited exactly like the task's, driven by the same generator at the task's median p99 < "
        f"{loose:g} ms rate, one step per run (medians). CPU per request is what the comparison rests on: the "
        "bare app's own capacity in a small cgroup is beyond what one generator core sends without lag, so its "
        "rate here is the CPU-bound estimate (the quota over its CPU per request), not a search.",
        "",
        *ceiling_table(results),
        "",
        "## The generator's own floor",
        "",
        f"Against the bare ASGI app (`bench/ceiling.py`, the same uvicorn options, a 1-vCPU cgroup) at "
        f"{check['rate']:,.0f} req/s, the highest rate that passed anywhere above: p99 "
        f"{check['load']['ok_p99_ms']:.1f} ms, sent {check['load']['sent_rate']:,.0f} req/s, scheduler lag p99 "
        f"{check['load']['lag_p99_ms']:.1f} ms, statuses {check['load']['statuses']}, errors "
        f"{check['load']['errors'] or 'none'}. The generator's lag p99 over every step of the run: at most "
        f"{max(lags, default=0):.1f} ms. Lag is in the latencies (they run from the due time), so a {tight:g} ms "
        "verdict carries up to that much of the generator.",
        "",
        "## Caveats",
        "",
        "- A shared 2-core host: other engineers' tests run beside it. The priority above keeps most of "
        "them out, not all; rerun before trusting a difference under about 20 %.",
        "- Loopback only: no ALB, no TLS, no network between client and task. An ALB adds a few ms of its own "
        "and opens its own connections.",
        "- The spool is on the local disk with EFS's commit latency in place of each fsync, not on EFS: EFS's "
        "throughput limits, its metadata round trips (open, rename on a seal) and its bad days are not modelled, "
        "and a modelled commit costs the task no CPU, where an NFS commit costs its client some. On a local disk the "
        "same `always` costs far more CPU (the ext4 journal commit is charged to the task), which is why earlier "
        "local-disk runs of this tool found about a third of these rates.",
        "- A seal (every 60 s, or at 8 MiB) runs in the segment writer's own seal thread "
        "(src/botscore/audit/segment.py `SegmentWriter`), off the event loop: its fsyncs (two commits on EFS, "
        "5-30 ms) never block the event loop, and the worker appends to a new segment meanwhile; a 4 s step "
        "rarely holds a seal at all.",
        "- This host's CPU is not a Fargate vCPU (a Fargate vCPU is a hyperthread of a server CPU of its "
        "generation); the CFS quota reproduces the limit, not the speed.",
        "- One request shape (one score per request); batches cost more per request, which the CPU policy covers.",
        "",
    ]
    return "\n".join(lines)
