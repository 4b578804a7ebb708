"""The layout in docs/architecture.md holds: subpackages import one way, no cycles, serving never imports training."""

from __future__ import annotations

import ast
from pathlib import Path

import botscore
import botscore_train
from botscore.call import Call

SOURCES = {"botscore": Path(botscore.__file__).parent, "botscore_train": Path(botscore_train.__file__).parent}

# Which parts of botscore each part may import (docs/architecture.md, "Layout"); a part may always import itself.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "settings": set(),
    "ops": set(),
    # ops: a canary's guardrails tally calls with ops' lists and compare scores in the p_bot histogram's buckets
    "model": {"ops"},
    "call": {"errors", "model"},
    "audit": {"call", "errors", "ops"},
    "dataplane": {"audit", "call", "errors", "model", "ops"},
    "http": {"call", "dataplane", "errors", "model", "ops"},
    "service": {"audit", "dataplane", "errors", "http", "model", "ops", "settings"},
    "server": {"errors", "service", "settings"},
    # botscore_train only inside the training commands; model for `botscore model` (the registry)
    "cli": {"model", "ops", "server", "botscore_train"},
    "__main__": {"cli"},
}
# ops: a model's drift baseline is counted in the service's own histogram buckets (ops/metrics.py)
TRAINING_MAY_IMPORT = {"model", "ops", "settings"}


def _modules(package: str) -> dict[str, Path]:
    root = SOURCES[package]
    return {
        ".".join((package, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): path
        for path in root.rglob("*.py")
    }


def _imports(path: Path) -> set[str]:
    """Every module of ours that `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in SOURCES}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "botscore_train" else (parts[1] if len(parts) > 1 else "")


def test_parts_of_botscore_import_only_the_parts_below_them() -> None:
    wrong = []
    for module, path in _modules("botscore").items():
        part = _part(module)
        for imported in _imports(path):
            target = _part(imported)
            if target and target != part and target not in ALLOWED.get(part, set()):
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_training_imports_only_the_model_and_settings_of_botscore() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, path in _modules("botscore_train").items()
        for imported in _imports(path)
        if imported.startswith("botscore.") and imported.split(".")[1] not in TRAINING_MAY_IMPORT
    ]
    assert wrong == []


def test_no_module_imports_itself_through_a_cycle() -> None:
    modules = {**_modules("botscore"), **_modules("botscore_train")}
    graph = {module: {i for i in _imports(path) if i in modules and i != module} for module, path in modules.items()}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        for target in graph[module]:
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif len(trail) < len(graph):
                visit(target, [*trail, target])

    for module in graph:
        visit(module, [module])
    assert cycles == []


def test_the_layout_check_sees_a_wrong_way_import(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from botscore.http.app import create_app\n")
    assert _imports(wrong) == {"botscore.http.app", "botscore.http.app.create_app"}
    assert _part("botscore.http.app") not in ALLOWED["audit"]


# What a request is answered lives in the Answer the data plane returns, never on the Call.
ANSWER_FIELDS = {"status", "response", "render_error", "content_type", "extra_headers", "headers", "answer"}


def _answer_reads(path: Path) -> set[str]:
    """`call.<answer field>` read or written in `path`: the audit package deciding or reading an HTTP answer."""
    return {
        f"{path.name}:{node.lineno} call.{node.attr}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "call"
        and node.attr in ANSWER_FIELDS
    }


def test_the_audit_package_knows_no_http_no_data_plane_and_no_answer() -> None:
    assert not ALLOWED["audit"] & {"dataplane", "http"}
    audit = {m: p for m, p in _modules("botscore").items() if _part(m) == "audit"}
    imported = {i for path in audit.values() for i in _imports(path)}
    assert {i for i in imported if _part(i) in ("dataplane", "http", "service", "server")} == set()
    assert set().union(*(_answer_reads(path) for path in audit.values())) == set()
    assert not set(Call.__slots__) & ANSWER_FIELDS  # the call holds what arrived, nothing of the answer


def test_the_answer_check_sees_an_answer_written_into_a_call(tmp_path: Path) -> None:
    wrong = tmp_path / "log.py"
    wrong.write_text("def refuse(call):\n    call.status = 503\n    call.response = b''\n")
    assert _answer_reads(wrong) == {"log.py:2 call.status", "log.py:3 call.response"}
