"""docs/cost.md from the report bench/cost.py builds (the same one it writes to docs/cost.json)."""

from __future__ import annotations

from typing import Any


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _measured(m: dict[str, Any], label: str) -> str:
    calls = ", ".join(f"{name} {n:g}" for name, n in m["storage_calls_per_second"].items())
    return (
        f"| {label} | {m['window_ms']} | {m['fsyncs_per_request']:.3f} | {m['fsyncs_per_second']:.1f} | "
        f"{m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['failed_share']:.3f} | {calls} |"
    )


def render(r: dict[str, Any]) -> str:
    tf, d, rows = r["terraform_defaults"], r["derived"], r["rows"]
    names = list(rows[0]["lines"])
    out = [
        "# What botscore costs on AWS",
        "",
        f"Written by `make cost` (bench/cost.py) on {r['generated']}; do not edit by hand. Prices: "
        f"{r['prices']['region']}, on-demand, as read on {r['prices']['read_on']} (sources below). Load: sustained, "
        f"the fleet scaled to it by the default scaling ({r['capacity']['target_rps_per_task']:,.0f} req/s a task, "
        f"from docs/capacity.json).",
        "",
        "## Per month and per million requests",
        "",
        "| line | " + " | ".join(f"{row['rps']:,.0f} req/s ({row['tasks']} tasks)" for row in rows) + " |",
        "| --- | " + " | ".join("---" for _ in rows) + " |",
    ]
    for name in names:
        out.append(f"| {name} | " + " | ".join(_usd(row["lines"][name]) for row in rows) + " |")
    out.append("| **total a month** | " + " | ".join(f"**{_usd(row['total_month'])}**" for row in rows) + " |")
    out.append("| **per million requests** | " + " | ".join(f"**{_usd(row['per_million'])}**" for row in rows) + " |")
    out.append(
        "| durable audit hop (EFS) per million | " + " | ".join(_usd(row["hop_per_million"]) for row in rows) + " |"
    )
    out.append(
        "| per million with the WAF on | " + " | ".join(_usd(row["with_waf_per_million"]) for row in rows) + " |"
    )
    goals = r["goals"]
    verdicts = [
        f"{row['rps']:,.0f} req/s: {_usd(row['per_million'])} against {_usd(goals[str(int(row['rps']))])} "
        f"({'met' if row['per_million'] <= goals[str(int(row['rps']))] else 'NOT met'})"
        for row in rows
        if str(int(row["rps"])) in goals
    ]
    hop = rows[0]["hop_per_million"]
    out += [
        "",
        "Goals (issue 28): " + "; ".join(verdicts) + f"; the durable hop at 600 req/s: {_usd(hop)} against "
        f"{_usd(goals['hop_600'])} ({'met' if hop <= goals['hop_600'] else 'NOT met'}).",
        "",
        "## The durable hop: EFS operations at the commit window's bound",
        "",
        f"Under `audit_sync = {tf['audit_sync']}` a worker starts at most 1000 / {tf['audit_commit_window_ms']} ms = "
        f"{1000 / float(tf['audit_commit_window_ms']):.0f} rounds of fsyncs a second whatever its load; each is one "
        "EFS write, metered as at least 32 KiB, and one COMMIT (4 KiB). The model prices that bound; the run "
        "below shows the service stays under it.",
        "",
        "| row | rounds/s a task (bound) | metered write KiB/s a task | read KiB/s | metadata KiB/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        e = row["efs"]
        out.append(
            f"| {row['rps']:,.0f} req/s | {e['rounds_per_second']:.0f} | {e['write_kibps']:,.0f} | "
            f"{e['read_kibps']:,.0f} | {e['metadata_kibps']:,.0f} |"
        )
    out += [
        "",
        f"EFS throughput mode (derived, Terraform's default): **{d['audit_spool_throughput_mode']}**, "
        f"**{d['audit_spool_provisioned_mibps']} MiB/s**: what {d['efs_sized_tasks']} tasks "
        f"(about {d['efs_sized_rps']:,} req/s) need at their bound, with 25 % headroom. Elastic would bill every "
        "round's 32 KiB at $0.06/GB, many times more at these loads. A fleet larger than that gets throttled: the "
        "`efs-throughput` alarm fires at 80 % of the permitted throughput, and the runbook says how far to raise "
        f"`audit_spool_provisioned_mibps` (about {d['efs_mibps_per_task']} MiB/s a task).",
        "",
        "## Measured: one task's share of 600 req/s, fsyncs 2.7 ms slower, Poisson arrivals",
        "",
        "`bench/measure_storage.py`: `botscore serve` on one core under strace (each fsync delayed 2.7 ms, "
        "as an EFS commit), SeaweedFS as S3, open-loop Poisson arrivals; counts over the measured window.",
        "",
        "| code | commit window (ms) | fsyncs per request | fsyncs/s | p50 (ms) | p99 (ms) | failed | spool calls/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    if r.get("measured_before"):
        out.append(_measured(r["measured_before"], "before (no window)"))
    m = r["measured"]
    out += [
        _measured(m, "this"),
        "",
        f"Also measured: {m['spool_bytes_per_record']:.0f} bytes a record in the spool, "
        f"{m['s3_gzip_bytes_per_record']:.0f} in S3 (gzip; features drawn at random, as real traffic's vary), "
        f"{m['log_bytes_per_request']:g} log bytes a request, {m['emf_bytes_per_interval']:,} EMF bytes a worker "
        f"an interval, {m['emf_metrics']} CloudWatch metrics.",
        "",
        "## What each line assumes",
        "",
        "- Fargate: the tasks the default scaling runs at that load, never fewer than `min_capacity`.",
        "- Load balancer: one ALB; LCUs from processed bytes (about 420 bytes a request and answer, callers keeping "
        "connections alive as docs/clients.md asks); rule evaluations stay in the free 10.",
        "- WAF: off by default in front of the internal load balancer, on when it is internet-facing "
        "(`waf_enabled`); the last row of the table prices it on.",
        "- Interface endpoints: ecr.api, ecr.dkr and logs (secretsmanager too with API keys) in each AZ; S3 is a "
        "free gateway endpoint. A NAT gateway instead would cost more ($0.045/hour and $0.045/GB).",
        "- S3: a month's objects kept through Standard, Standard-IA and Glacier IR until they expire, plus PUTs "
        "and lifecycle transitions; one object a worker a segment (sealed at 60 s or 8 MiB).",
        "- CloudWatch: the EMF metrics (one set for the service, not per task), every alarm in terraform/, app logs "
        "(EMF lines every 60 s a worker) kept `log_retention_days` (at most 12 months counted).",
        "- KMS: one key; data keys are cached (S3 bucket keys, one per EFS mount).",
        "- Not counted: data transfer inside one AZ, VPC flow logs (a few records a connection per 10 minutes: "
        "cents), ECR storage (a few images, cents), the first two AWS budgets (free).",
        "",
        "## Prices",
        "",
        "| price | USD | unit | source |",
        "| --- | --- | --- | --- |",
    ]
    for name, price in r["prices"].items():
        if isinstance(price, dict):
            out.append(f"| {name} | {price['usd']:g} | {price['unit']} | {price['source']} |")
    out.append("")
    return "\n".join(out)
