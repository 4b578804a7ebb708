"""The layout in docs/architecture.md holds: subpackages import one way, no cycles, serving never imports training."""

from __future__ import annotations

import ast
from pathlib import Path

import botscore
import botscore_train

SOURCES = {"botscore": Path(botscore.__file__).parent, "botscore_train": Path(botscore_train.__file__).parent}

# Which parts of botscore each part may import (docs/architecture.md, "Layout"); a part may always import itself.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "settings": set(),
    "ops": set(),
    "model": set(),
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
TRAINING_MAY_IMPORT = {"model", "settings"}


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
