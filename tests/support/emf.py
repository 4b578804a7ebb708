"""CloudWatch embedded metric format, checked as the published specification states it.

docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html:
a root object with `_aws` {Timestamp: epoch ms, CloudWatchMetrics: [MetricDirective]}; a directive
has Namespace (1-255 characters), Dimensions (arrays of at most 30 root member names, each a
string member), Metrics (at most 100 {Name, Unit?}); each metric is a root member holding a
number, an array of at most 100 numbers, or the Values/Counts form (`Values` and `Counts` of the
same length, at most 100, with `Max`, `Min`, `Count`, `Sum`), as the CloudWatch agent's and the
OpenTelemetry EMF exporter's histograms are written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from numbers import Real
from typing import Any

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def documents(text: str) -> list[dict[str, Any]]:
    """The EMF documents among a process's stdout lines (log lines are JSON too, without `_aws`)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            parsed = json.loads(line)
            if "_aws" in parsed:
                found.append(parsed)
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check(document: dict[str, Any]) -> None:
    """Raise AssertionError naming what breaks the specification."""
    meta = document["_aws"]
    assert _is_number(meta["Timestamp"]) and meta["Timestamp"] > 1e12, "Timestamp must be epoch milliseconds"
    assert meta["CloudWatchMetrics"], "CloudWatchMetrics must hold a directive"
    for directive in meta["CloudWatchMetrics"]:
        assert set(directive) <= {"Namespace", "Dimensions", "Metrics"}, directive
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 1 <= len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document.get(name), str), f"dimension {name} must be a string member"
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}, metric
            assert metric.get("Unit", "None") in UNITS, metric
            value = document[metric["Name"]]
            if isinstance(value, dict):
                assert set(value) == {"Values", "Counts", "Max", "Min", "Count", "Sum"}, value
                assert len(value["Values"]) == len(value["Counts"]) <= 100
                assert all(_is_number(v) for v in [*value["Values"], *value["Counts"]])
                assert value["Count"] == sum(value["Counts"])
                assert value["Min"] <= min(value["Values"]) <= max(value["Values"]) <= value["Max"]
            elif isinstance(value, list):
                assert 1 <= len(value) <= 100 and all(_is_number(v) for v in value)
            else:
                assert _is_number(value), f"{metric['Name']} must be a number"


def totals(found: Iterable[dict[str, Any]], metric: str, **dimensions: str) -> float:
    """A metric summed over the documents whose dimension set is exactly `dimensions` (a counter's Sum)."""
    total = 0.0
    for document in found:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            names = {m["Name"] for m in directive["Metrics"]}
            same_set = [sorted(d) for d in directive["Dimensions"]] == [sorted(["Service", *dimensions])]
            if metric in names and same_set and all(document[k] == v for k, v in dimensions.items()):
                value = document[metric]
                total += value["Count"] if isinstance(value, dict) else value
    return total


def requests_by_route_and_status(found: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for document in found:
        if [sorted(d) for d in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]] == [
            ["Route", "Service", "Status"]
        ]:
            counts[(document["Route"], document["Status"])] += document["Requests"]
    return counts
