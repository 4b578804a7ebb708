"""The bill as code: what the default deployment costs a month and per million requests, line by line.

    make cost                          # measures (bench/measure_storage.py), then writes docs/cost.json, docs/cost.md
    .venv/bin/python bench/cost.py --rederive   # the same from the figures docs/cost.json holds (nothing measured)

Inputs, each named in the output: the prices of bench/prices.py (each with its source); the Terraform
defaults (terraform/*.tf); the capacity one task carries (docs/capacity.json, from `make capacity`); and
what one task was measured to do at its share of the load, with EFS-like fsync latency and Poisson
arrivals (bench/measure_storage.py): storage calls, log and EMF bytes, S3 bytes per record, p99.

The durable hop is priced at its bound, not at one run's count: under `always` a worker starts at most
1000 / BOTSCORE_AUDIT_COMMIT_WINDOW_MS rounds of fsyncs a second (audit/sync.py), each one EFS write
(metered as at least 32 KiB) and one COMMIT (a metadata operation, 4 KiB), whatever its load.
The run's own count is shown beside it and must stay under it.

The EFS throughput mode and its provisioned MiB/s are derived here (the cheaper mode at the sized fleet,
with headroom) and tied to terraform/variables.tf by tests/infra/test_cost.py, as capacity.json is.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.prices import HOURS_PER_MONTH, PRICES, READ_ON, REGION, SECONDS_PER_MONTH  # noqa: E402

LOADS_RPS = (600, 3000)  # the two sustained loads; the max fleet is a third row
GOALS_PER_MILLION = {600: 0.15, 3000: 0.08}
USD = {name: price.usd for name, price in PRICES.items()}
HOP_GOAL_PER_MILLION = 0.03  # the durable audit hop alone, at 600 req/s
MEASURE_RPS = 300  # one task's share of 600 req/s on the default two tasks
EFS_HEADROOM = 1.25  # provisioned MiB/s over what the sized fleet needs at its bound
EFS_SIZED_TASKS_OVER_GOAL = (
    0  # the fleet EFS is provisioned for: the tasks at the higher goal load (the alarm warns beyond)
)
REQUEST_BYTES = 420  # request and answer on the wire, headers included (a keep-alive client; docs/clients.md)
KIB, MIB, GB = 1024, 1024 * 1024, 1e9
TERRAFORM_KEYS = (
    "task_cpu", "task_memory", "workers", "min_capacity", "max_capacity", "az_count", "internet_facing",
    "waf_enabled", "api_keys_secret_arn", "cpu_architecture", "audit_sync", "audit_commit_window_ms",
    "audit_spool_storage", "audit_spool_throughput_mode", "audit_spool_provisioned_mibps", "log_retention_days",
    "audit_transition_days", "audit_glacier_days", "audit_expiration_days", "monthly_budget_usd",
)  # fmt: skip


def terraform() -> dict[str, Any]:
    """The defaults of the variables the model reads, and the count of alarms and dashboards."""
    import hcl2

    found: dict[str, Any] = {}
    text = ""
    for path in sorted((ROOT / "terraform").glob("*.tf")):
        text += path.read_text()
        with path.open() as handle:
            for block in hcl2.load(handle).get("variable", []):
                for name, body in block.items():
                    value = body.get("default")
                    found[name.strip('"')] = value.strip('"') if isinstance(value, str) else value
    values = {key: found.get(key) for key in TERRAFORM_KEYS}
    values["alarms"] = len(re.findall(r'^resource "aws_cloudwatch_metric_alarm"', text, re.MULTILINE))
    values["dashboards"] = len(re.findall(r'^resource "aws_cloudwatch_dashboard"', text, re.MULTILINE))
    return values


def _tasks(rps: float, tf: dict[str, Any], per_task: float) -> int:
    return max(int(tf["min_capacity"]), math.ceil(rps / per_task))


def efs_per_task(tf: dict[str, Any], measured: dict[str, Any], rps_per_task: float) -> dict[str, float]:
    """Metered EFS bytes a second of one task, at the commit window's bound (KiB/s)."""
    workers = int(tf["workers"])
    window = float(tf["audit_commit_window_ms"])
    data_kib, meta_kib = PRICES["efs_data_op_kib"].usd, PRICES["efs_metadata_op_kib"].usd
    rounds = workers * (1000 / window if window > 0 else rps_per_task)  # fsync rounds a second, at most
    bytes_in = rps_per_task * measured["spool_bytes_per_record"]  # appended, then read once by the shipper
    other = measured["storage_calls_per_second"]
    metadata_calls = workers * sum(n for name, n in other.items() if name not in ("fsync", "fdatasync"))
    write = rounds * max(data_kib, bytes_in / KIB / max(rounds, 1e-9))
    read = max(bytes_in / KIB, data_kib * workers / 60)  # the shipper reads each segment once (1 MiB reads)
    metadata = (rounds + metadata_calls) * meta_kib  # a COMMIT a round; opens, renames, scans, locks
    return {"rounds_per_second": rounds, "write_kibps": write, "read_kibps": read, "metadata_kibps": metadata}


def month(rps: float, tf: dict[str, Any], capacity: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Every line of a month at `rps` sustained, in USD."""
    p = USD
    per_task = float(capacity["target_rps_per_task"])
    tasks = min(_tasks(rps, tf, per_task), int(tf["max_capacity"]))
    requests = rps * SECONDS_PER_MONTH
    arch = "arm64" if tf["cpu_architecture"] == "ARM64" else "x86_64"
    vcpu, memory_gb = int(tf["task_cpu"]) / 1024, int(tf["task_memory"]) / 1024
    lines: dict[str, float] = {}
    lines["Fargate tasks"] = (
        tasks * HOURS_PER_MONTH * (vcpu * p[f"fargate_vcpu_hour_{arch}"] + memory_gb * p[f"fargate_gb_hour_{arch}"])
    )
    processed_gb_hour = rps * REQUEST_BYTES * 3600 / GB
    lines["load balancer"] = HOURS_PER_MONTH * (p["alb_hour"] + max(processed_gb_hour, 0.0) * p["alb_lcu_hour"])
    waf = tf["waf_enabled"] if tf["waf_enabled"] is not None else bool(tf["internet_facing"])
    waf_cost = p["waf_web_acl_month"] + 3 * p["waf_rule_month"] + requests / 1e6 * p["waf_million_requests"]
    lines["WAF"] = waf_cost if waf else 0.0
    endpoints = 3 + (tf["api_keys_secret_arn"] is not None)
    log_gb = (requests * measured["log_bytes_per_request"] + _emf_bytes(tasks, tf, measured)) / GB
    lines["interface endpoints"] = (
        endpoints * int(tf["az_count"]) * HOURS_PER_MONTH * p["endpoint_az_hour"] + log_gb * p["endpoint_gb"]
    )
    lines.update(_efs(rps / tasks, tasks, tf, measured))
    lines.update(_s3(requests, tasks, tf, measured))
    retention_months = min(float(tf["log_retention_days"]) / 30, 12)
    lines["CloudWatch logs"] = log_gb * (
        p["cloudwatch_logs_ingest_gb"] + retention_months * p["cloudwatch_logs_store_gb_month"]
    )
    metrics = measured["emf_metrics"]
    lines["CloudWatch metrics, alarms"] = (
        metrics * p["cloudwatch_metric_month"]
        + int(tf["alarms"]) * p["cloudwatch_alarm_month"]
        + max(0, int(tf["dashboards"]) - 3) * p["cloudwatch_dashboard_month"]
    )
    lines["KMS"] = p["kms_key_month"] + tasks * 24 * 30 * p["kms_ten_thousand_requests"] / 1e4
    lines["budget"] = p["budget_month"]
    total = sum(lines.values())
    hop = lines["EFS spool"]
    million = requests / 1e6
    return {
        "rps": rps,
        "tasks": tasks,
        "lines": {name: round(usd, 2) for name, usd in lines.items()},
        "total_month": round(total, 2),
        "per_million": round(total / million, 4),
        "hop_per_million": round(hop / million, 4),
        "with_waf_per_million": round((total - lines["WAF"] + waf_cost) / million, 4),
        "efs": {k: round(v, 2) for k, v in efs_per_task(tf, measured, rps / tasks).items()},
    }


def _emf_bytes(tasks: int, tf: dict[str, Any], measured: dict[str, Any]) -> float:
    intervals = SECONDS_PER_MONTH / 60  # production's BOTSCORE_EMF_INTERVAL_SECONDS
    return tasks * int(tf["workers"]) * intervals * measured["emf_bytes_per_interval"]


def efs_required_mibps(rps_per_task: float, tasks: int, tf: dict[str, Any], measured: dict[str, Any]) -> float:
    """What `tasks` tasks need provisioned: reads count a third against it."""
    e = efs_per_task(tf, measured, rps_per_task)
    return tasks * (e["write_kibps"] + e["read_kibps"] / 3 + e["metadata_kibps"]) / KIB


def _efs(rps_per_task: float, tasks: int, tf: dict[str, Any], measured: dict[str, Any]) -> dict[str, float]:
    if tf["audit_spool_storage"] != "efs":
        return {"EFS spool": 0.0}
    p = USD
    e = efs_per_task(tf, measured, rps_per_task)
    storage_gb = tasks * 60 * rps_per_task * measured["spool_bytes_per_record"] / GB  # about a minute a segment
    if tf["audit_spool_throughput_mode"] == "provisioned":
        throughput = float(tf["audit_spool_provisioned_mibps"]) * p["efs_provisioned_mibps_month"]
    else:
        seconds = SECONDS_PER_MONTH * tasks
        written = e["write_kibps"] * KIB * seconds / GB
        read = (e["read_kibps"] + e["metadata_kibps"]) * KIB * seconds / GB
        throughput = written * p["efs_elastic_write_gb"] + read * p["efs_elastic_read_gb"]
    return {"EFS spool": throughput + storage_gb * p["efs_storage_gb_month"]}


def _s3(requests: float, tasks: int, tf: dict[str, Any], measured: dict[str, Any]) -> dict[str, float]:
    from botscore.settings import Settings

    p = USD
    settings = Settings()
    per_worker = requests / SECONDS_PER_MONTH / (tasks * int(tf["workers"]))
    seals = max(
        1 / settings.audit_segment_max_age_seconds,
        per_worker * measured["spool_bytes_per_record"] / settings.audit_segment_max_bytes,
    )
    objects = seals * SECONDS_PER_MONTH * tasks * int(tf["workers"])
    gb = requests * measured["s3_gzip_bytes_per_record"] / GB
    standard, glacier, expire = (
        float(tf[k]) for k in ("audit_transition_days", "audit_glacier_days", "audit_expiration_days")
    )
    # Steady state: a month's objects, kept through every class until they expire, cost this each month.
    stored = (
        gb
        / 30
        * (
            standard * p["s3_standard_gb_month"]
            + (glacier - standard) * p["s3_standard_ia_gb_month"]
            + (expire - glacier) * p["s3_glacier_ir_gb_month"]
        )
    )
    requests_cost = (
        objects
        / 1000
        * (p["s3_put_thousand"] + p["s3_transition_ia_thousand"] + p["s3_transition_glacier_ir_thousand"])
    )
    return {"S3 audit objects": stored + requests_cost}


def derive(tf: dict[str, Any], capacity: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """The Terraform defaults the model sets: EFS mode and provisioned MiB/s, and the monthly budget."""
    per_task = float(capacity["target_rps_per_task"])
    sized_tasks = _tasks(max(LOADS_RPS), tf, per_task) + EFS_SIZED_TASKS_OVER_GOAL
    need = efs_required_mibps(per_task, sized_tasks, tf, measured)
    provisioned = math.ceil(need * EFS_HEADROOM)
    tf_provisioned = {**tf, "audit_spool_throughput_mode": "provisioned", "audit_spool_provisioned_mibps": provisioned}
    tf_elastic = {**tf, "audit_spool_throughput_mode": "elastic"}
    low = min(LOADS_RPS)
    cheaper = min((tf_provisioned, tf_elastic), key=lambda t: month(low, t, capacity, measured)["lines"]["EFS spool"])[
        "audit_spool_throughput_mode"
    ]
    fleet = int(tf["max_capacity"]) * per_task
    budget = month(
        fleet,
        {**tf, **{"audit_spool_throughput_mode": cheaper, "audit_spool_provisioned_mibps": provisioned}},
        capacity,
        measured,
    )
    return {
        "audit_spool_throughput_mode": cheaper,
        "audit_spool_provisioned_mibps": provisioned,
        "efs_sized_tasks": sized_tasks,
        "efs_sized_rps": round(sized_tasks * per_task),
        "efs_mibps_per_task": round(need / sized_tasks, 2),
        "monthly_budget_usd": int(math.ceil(budget["total_month"] * 1.2 / 10) * 10),  # the max fleet, 20 % over
    }


def report(measured: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    tf = terraform()
    capacity = json.loads((ROOT / "docs" / "capacity.json").read_text())["terraform"]
    derived = derive(tf, capacity, measured)
    fleet = int(tf["max_capacity"]) * float(capacity["target_rps_per_task"])
    rows = [month(rps, tf, capacity, measured) for rps in (*LOADS_RPS, fleet)]
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "prices": {"region": REGION, "read_on": READ_ON, **{k: v._asdict() for k, v in PRICES.items()}},
        "terraform_defaults": tf,
        "capacity": {"target_rps_per_task": capacity["target_rps_per_task"]},
        "measured": measured,
        "measured_before": before,
        "derived": derived,
        "rows": rows,
        "goals": {str(k): v for k, v in GOALS_PER_MILLION.items()} | {"hop_600": HOP_GOAL_PER_MILLION},
    }


def render(r: dict[str, Any]) -> str:
    from bench.cost_report import render as _render

    return _render(r)


def main() -> None:
    path = ROOT / "docs" / "cost.json"
    if "--rederive" in sys.argv:
        old = json.loads(path.read_text())
        result = report(old["measured"], old.get("measured_before"))
    else:
        from bench.measure_storage import measure

        window = int(terraform()["audit_commit_window_ms"])
        with tempfile.TemporaryDirectory(prefix="botscore-cost-") as folder:
            before = measure(0, MEASURE_RPS, 20, Path(folder) / "before")
            measured = measure(window, MEASURE_RPS, 20, Path(folder) / "after")
        result = report(measured, before)
    path.write_text(json.dumps(result, indent=1) + "\n")
    (ROOT / "docs" / "cost.md").write_text(render(result))
    print((ROOT / "docs" / "cost.md").read_text())


if __name__ == "__main__":
    main()
