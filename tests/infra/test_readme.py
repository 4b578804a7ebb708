"""The README stays true: every setting is in its table, and the quick start is the two commands."""

from __future__ import annotations

from botscore.settings import Settings, env_name
from tests.support.servers import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    for field in Settings.model_fields:
        assert f"| `{env_name(field)}` |" in README, env_name(field)


def test_quick_start_is_make_run_and_make_test() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick_start and "make test" in quick_start
