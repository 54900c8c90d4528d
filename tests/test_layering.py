"""The runtime's stages import only downward, and the front end sees only the runtime's public names.

Top to bottom: session -> analysis -> algorithms -> exec -> ops -> kernels -> numerics. A module may
import its own stage and the stages below it, never one above (function-level imports included).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"
STAGES = ["session", "analysis", "algorithms", "exec", "ops", "kernels", "numerics"]


def imported_modules(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line; ``from a import b`` gives both a and a.b."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def stage_of_module(name: str) -> str | None:
    """The stage an ``alls.runtime.*`` module belongs to, None for anything else."""
    parts = name.split(".")
    if parts[:2] != ["alls", "runtime"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in STAGES else None


def stage_of_file(path: pathlib.Path) -> str:
    first = path.relative_to(RUNTIME).parts[0]
    return first.removesuffix(".py")


RUNTIME_FILES = sorted(p for p in RUNTIME.rglob("*.py") if p.relative_to(RUNTIME).parts[0] != "__init__.py")


def test_every_runtime_module_is_in_a_stage():
    assert RUNTIME_FILES
    assert {stage_of_file(p) for p in RUNTIME_FILES} <= set(STAGES)


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: str(p.relative_to(RUNTIME)))
def test_nothing_imports_upward(path):
    here = STAGES.index(stage_of_file(path))
    upward = [f"line {line}: {name} ({stage_of_module(name)})" for line, name in imported_modules(path)
              if stage_of_module(name) is not None and STAGES.index(stage_of_module(name)) < here]
    assert not upward, f"{path.relative_to(ROOT)} ({STAGES[here]}) imports from a stage above it: {upward}"


FRONT_END = sorted((ROOT / "alls").rglob("*.py"))


@pytest.mark.parametrize("path", FRONT_END, ids=lambda p: str(p.relative_to(ROOT)))
def test_front_end_uses_only_public_runtime_names(path):
    private = [f"line {line}: {name}" for line, name in imported_modules(path)
               if name.startswith("alls.runtime.") and stage_of_module(name) is not None]
    assert not private, f"{path.relative_to(ROOT)} reaches into the runtime: {private}"


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from alls.runtime.session.runner import Runner\n")
    assert [name for _, name in imported_modules(module) if stage_of_module(name) == "session"]
