"""Run `alls` on a hostile input in a child process with time and memory limits.

A hang or an unbounded allocation in the tested code must not take the
test run down with it, so each input runs in ``python -c`` under
``resource`` limits (address space, CPU seconds) and a wall-clock timeout.
`Outcome` holds what came back; `assert_refused` checks the contract for a
hostile input: a coded error, no traceback, no hang, no crash, nothing
written, no input changed.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import resource
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
MEMORY = 3 << 30  # bytes of address space for the child (numba and onnx need about 1.5 GiB of it)
CPU_SECONDS = 120


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def _limited(memory: int, cpu: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_isolated(args: list[str], cwd, timeout: float = 60, memory: int = MEMORY, stdin: bytes | None = None,
                 python: bool = False) -> Outcome:
    """``alls ARGS`` (or ``python -c ARGS[0]`` with ``python``) in a limited child process."""
    command = [sys.executable, "-c", args[0], *args[1:]] if python else [sys.executable, "-m", "alls", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(
        pathlib.Path.home() / ".cache" / "alls-test-numba"))}
    try:
        done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, timeout=timeout, env=env,
                              preexec_fn=_limited(memory, int(min(timeout * 2, CPU_SECONDS))))
    except subprocess.TimeoutExpired as exc:
        return Outcome(-1, (exc.stdout or b"").decode(errors="replace"), (exc.stderr or b"").decode(errors="replace"),
                       True)
    return Outcome(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"), False)


def snapshot(folder: pathlib.Path) -> dict[str, str]:
    """Every file under ``folder`` by path, with a digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(outcome: Outcome, codes: set[str] | None = None) -> None:
    """A coded error (one of ``codes`` when given), exit status 1 or 2, no traceback, no hang, no crash."""
    assert not outcome.timed_out, f"hung: {outcome.text[-2000:]}"
    assert "Traceback" not in outcome.text, outcome.text[-4000:]
    assert outcome.returncode in (1, 2), f"status {outcome.returncode}: {outcome.text[-2000:]}"
    found = set(re.findall(r"error\[(ALS\d{3})\]", outcome.text))
    assert found, f"no coded error: {outcome.text[-2000:]}"
    if codes is not None:
        assert found & codes, f"expected one of {sorted(codes)}, got {sorted(found)}: {outcome.text[-2000:]}"


# ------------------------------------------------------------- small models


def model(nodes, inits=None, inputs=None, outputs=("y",), opset=13, raw_inits=()):
    """A float model: ``inputs`` {name: shape} (default x: 1x3x8x8); ``raw_inits`` are TensorProtos as given."""
    inputs = {"x": (1, 3, 8, 8)} if inputs is None else inputs
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()] + list(raw_inits),
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto


def conv_weight(c_out: int = 4, c_in: int = 3, k: int = 3) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.3, (c_out, c_in, k, k)).astype(np.float32)


def raw_tensor(name: str, dims, data: bytes, data_type: int = TensorProto.FLOAT) -> TensorProto:
    """A tensor exactly as given: its data need not fill its dims (onnx.helper would refuse)."""
    tensor = TensorProto(name=name, data_type=data_type, raw_data=data)
    tensor.dims.extend(dims)
    return tensor
