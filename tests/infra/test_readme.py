"""The README stays true: settings, the record's columns, the example queries, and the two-command quick start."""

from __future__ import annotations

from botscore.audit import schema
from botscore.settings import Settings, env_name
from tests.support.athena import example_queries
from tests.support.servers import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    for field in Settings.model_fields:
        assert f"| `{env_name(field)}` |" in README, env_name(field)


def test_quick_start_is_make_run_and_make_test() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick_start and "make test" in quick_start


def test_the_audit_record_table_is_the_schema() -> None:
    section = README.split("### The record", 1)[1].split("```json", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows == [f"| `{c.name}` | {c.type} | {c.description} |" for c in schema.COLUMNS]


def test_the_deploy_guide_shows_the_example_queries_that_terraform_creates() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for name, sql in example_queries().items():
        assert sql in guide, name
