"""The layer kinds of the runtime: one module per kind, one table, one meaning of "weighted"."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from alls.graph import KINDS, WEIGHTED_KINDS
from alls.runtime.ops import OPS

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"


def test_every_kind_has_one_op():
    assert set(OPS) == set(KINDS) - {"input_layer"}
    for kind, op in OPS.items():
        assert op.kind == kind
        assert callable(op.run) and callable(op.quantize) and callable(op.run_int)


def test_weighted_has_one_definition():
    assert {kind for kind, op in OPS.items() if op.weighted} == set(WEIGHTED_KINDS)
    assert {kind for kind, op in OPS.items() if op.accumulates} == set(WEIGHTED_KINDS) | {"batch_norm"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_only_the_ops_reach_the_kernels():
    """The executor, quantizer and emulator go through `OPS`; only the ops call the kernel registry."""
    for path in sorted(RUNTIME.glob("*.py")):
        reached = {name for name in _imports(path) if name.startswith("alls.runtime.kernels")}
        assert not reached, f"{path.name} imports {reached}"
    for path in sorted((RUNTIME / "ops").glob("*.py")):
        reached = {name for name in _imports(path) if name.startswith("alls.runtime.kernels")}
        assert reached <= {"alls.runtime.kernels", "alls.runtime.kernels.ConvWeights"}, f"{path.name}: {reached}"


def test_the_ops_load_no_numba():
    code = "import sys, alls.runtime.ops, alls.runtime.quantize, alls.runtime.emulator; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

