"""The Python layout rules of the guide (README "Repository layout"): ml/ is packages by
lifecycle stage, no stage imports a later one, modules stay small, tools live outside ml/."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from conftest import PROJECT_ROOT

ML = PROJECT_ROOT / "ml"
# Lifecycle order: a package may import the shared modules and earlier stages only.
STAGES = ("training", "validation", "promotion", "scoring", "monitoring", "serving")
SHARED = {
    "settings",
    "provenance",
    "registry",
    "warehouse",
    "features",
    "scores",
    "timing",
    "transaction_model",
}
MAX_LINES = 620


def _modules() -> list[Path]:
    return sorted(p for p in ML.rglob("*.py") if "__pycache__" not in p.parts)


def _ml_imports(path: Path) -> set[str]:
    """First component below ``ml`` of every ``ml.*`` import (``from ml import x`` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "ml":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ml" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_ml_is_the_stage_packages_and_the_shared_modules() -> None:
    top = {p.stem for p in ML.glob("*.py")} - {"__init__"}
    packages = {p.name for p in ML.iterdir() if (p / "__init__.py").exists()}
    assert top == SHARED
    assert packages == set(STAGES)


def test_no_stage_imports_a_later_stage() -> None:
    offences = []
    for path in _modules():
        relative = path.relative_to(ML).parts
        own = relative[0] if len(relative) > 1 else None
        allowed = set(SHARED)
        if own in STAGES:
            allowed |= set(STAGES[: STAGES.index(own) + 1])
        for imported in _ml_imports(path) - allowed:
            offences.append(f"{path.relative_to(PROJECT_ROOT)} imports ml.{imported}")
    assert not offences, "\n".join(offences)


def test_modules_stay_small() -> None:
    tools = [
        p
        for tool in ("bench", "simulator")
        for p in sorted((PROJECT_ROOT / tool).rglob("*.py"))
        if "__pycache__" not in p.parts
    ]
    sizes = {p: len(p.read_text().splitlines()) for p in [*_modules(), *tools]}
    big = {str(p.relative_to(PROJECT_ROOT)): n for p, n in sizes.items() if n > MAX_LINES}
    assert not big


def test_tools_are_not_part_of_ml() -> None:
    for tool in ("bench", "simulator", "datagen"):
        assert importlib.util.find_spec(f"ml.{tool}") is None
    assert importlib.util.find_spec("bench.harness") is not None
    assert importlib.util.find_spec("simulator.generate") is not None


def test_every_module_says_what_it_is_for() -> None:
    missing = [
        str(p.relative_to(PROJECT_ROOT))
        for p in _modules()
        if p.name != "__init__.py" and not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert not missing
