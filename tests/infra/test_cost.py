"""docs/cost.json and docs/cost.md are the cost model's answer for today's Terraform defaults and prices:
a default the model reads, a price or the model's code changed without `make cost` fails here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import cost
from bench.prices import PRICES

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    return dict(json.loads((DOCS / "cost.json").read_text()))


def test_the_model_was_run_on_todays_terraform_defaults(stored: dict[str, Any]) -> None:
    assert cost.terraform() == stored["terraform_defaults"], "a default the cost model reads changed: run make cost"


def test_the_tables_are_what_the_model_gives_from_the_stored_measurements(stored: dict[str, Any]) -> None:
    again = cost.report(stored["measured"], stored["measured_before"])
    assert again["rows"] == stored["rows"], "run bench/cost.py --rederive (prices, model or defaults changed)"
    assert again["prices"] == stored["prices"]
    assert cost.render(again).split("\n", 3)[3] == (DOCS / "cost.md").read_text().split("\n", 3)[3]


def test_the_efs_throughput_and_the_budget_defaults_are_the_models(stored: dict[str, Any]) -> None:
    defaults = cost.terraform()
    derived = stored["derived"]
    for name in ("audit_spool_throughput_mode", "audit_spool_provisioned_mibps", "monthly_budget_usd"):
        assert defaults[name] == derived[name], f"set {name} = {derived[name]} in terraform/variables.tf"


def test_the_defaults_cost_at_most_the_goals_per_million_requests(stored: dict[str, Any]) -> None:
    by_rate = {row["rps"]: row for row in stored["rows"]}
    assert by_rate[600]["per_million"] <= 0.15
    assert by_rate[3000]["per_million"] <= 0.08
    assert by_rate[600]["hop_per_million"] <= 0.03
    assert by_rate[600]["lines"]["WAF"] == 0.0  # off in front of the internal load balancer
    assert by_rate[600]["with_waf_per_million"] > 0.6  # and what turning it on costs is shown


def test_the_measured_fsyncs_stay_under_the_bound_the_model_prices(stored: dict[str, Any]) -> None:
    measured, before = stored["measured"], stored["measured_before"]
    window = stored["terraform_defaults"]["audit_commit_window_ms"]
    assert measured["window_ms"] == window
    assert measured["fsyncs_per_second"] <= 1000 / window * 1.02  # seals and heartbeats fsync too
    assert measured["fsyncs_per_request"] < before["fsyncs_per_request"] / 3
    assert measured["p99_ms"] <= 50 and measured["failed_share"] == 0


def test_elastic_throughput_would_cost_more_than_provisioned_at_the_sized_load(stored: dict[str, Any]) -> None:
    defaults = cost.terraform()
    capacity = {"target_rps_per_task": stored["capacity"]["target_rps_per_task"]}
    elastic = cost.month(600, {**defaults, "audit_spool_throughput_mode": "elastic"}, capacity, stored["measured"])
    assert elastic["lines"]["EFS spool"] > 5 * stored["rows"][0]["lines"]["EFS spool"]


def test_every_price_names_its_source() -> None:
    for name, price in PRICES.items():
        assert price.source.startswith("https://"), name
        assert price.unit, name
