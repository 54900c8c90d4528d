"""Fuzzing: scripts, small graphs and quantized files built by hypothesis, each run through the
command line in a limited child process (`tests/fuzz_worker.py`).

Every input must end in a clean exit or a coded error: no traceback, no hang, no crash (the child
has a memory and CPU limit and a wall-clock timeout), nothing written, no input changed.

The default run is short (a few hundred inputs, well under two minutes). Set ``ALLS_FUZZ=N`` to
run N times as many batches, for a longer search::

    ALLS_FUZZ=20 python -m pytest tests/test_fuzz.py -q
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from hostile import ROOT, conv_weight, raw_tensor, snapshot

SCALE = max(1, int(os.environ.get("ALLS_FUZZ", "1")))
WORKER = ROOT / "tests" / "fuzz_worker.py"
FUZZ = settings(max_examples=2 * SCALE, deadline=None, derandomize=SCALE == 1, database=None,
                phases=(Phase.explicit, Phase.generate),  # a batch runs in a child process: no shrinking
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def run_batch(inputs: dict[str, bytes], args: list[str], tmp: pathlib.Path, timeout: float = 240,
              memory: int = 3 << 30, allowed=(0, 1, 2)) -> int:
    """Write ``inputs`` into a fresh folder, run the worker on them, check every result; returns their count."""
    batch = tmp / f"batch{len(list(tmp.iterdir()))}"
    folder, work = batch / "in", batch / "work"
    folder.mkdir(parents=True)
    work.mkdir()
    for name, data in inputs.items():
        (folder / name).write_bytes(data)
    before_in, before_work = snapshot(folder), snapshot(work)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run([sys.executable, str(WORKER), str(memory), str(int(timeout)), str(folder), *args],
                              cwd=work, capture_output=True, text=True, timeout=timeout, env=env)
        lines, status = done.stdout.splitlines(), done.returncode
    except subprocess.TimeoutExpired as exc:
        lines, status = (exc.stdout or b"").decode(errors="replace").splitlines(), "timeout"
    results = [json.loads(line) for line in lines if line.startswith("{")]
    finished = {r["input"]: r for r in results if "input" in r}
    started = [r["start"] for r in results if "start" in r]
    stuck = [name for name in started if name not in finished]
    assert not stuck, f"{status}: input {stuck[0]} hung or crashed the process: {inputs[stuck[0]][:300]!r}"
    assert status == 0 and len(finished) == len(inputs), f"worker status {status}: {done.stderr[-3000:]}"
    for name, r in finished.items():
        shown = f"{name} = {inputs[name][:300]!r}\n{r['output']}"
        assert r["status"] != "traceback" and "Traceback" not in r["output"], shown
        assert r["status"] in allowed, shown
        if r["status"] != 0:
            assert any(mark in r["output"] for mark in ("error[ALS", "usage:", "would reformat")), shown
    assert snapshot(folder) == before_in, "an input was changed"
    assert snapshot(work) == before_work, "something was written"
    return len(inputs)


# -------------------------------------------------------------------- scripts

_COMMANDS = ["quantization_param", "model_optimization_config", "pre_quantization_optimization",
             "post_quantization_optimization", "normalization", "model_optimization_flavor", "nms_postprocess",
             "resources_param", "x"]
_ATOMS = ["{conv*}", "conv1", "a8_w8", "a16_w16", "precision_mode", "policy", "enabled", "batch_size", "1", "-2.5e3",
          "True", "None", '"s"', "'q'", "\u201cc\u201d", "9" * 50, "\x1b[2J", "\x00", "\ufffd", "#c", "=", ",", "(",
          ")", "[", "]", "{", "}", "\n", "\r\n", " ", "\t", "obj.method", "a/b-c_d", "1e999"]


@st.composite
def value(draw, depth: int = 0):
    kind = draw(st.integers(0, 4 if depth < 6 else 2))
    if kind <= 2:
        return draw(st.sampled_from(_ATOMS[:17]))
    if kind == 3:
        return "[" + ", ".join(draw(st.lists(value(depth + 1), max_size=4))) + "]"
    return "[" * draw(st.integers(1, 300)) + "]" * draw(st.integers(0, 300))


@st.composite
def statement(draw):
    args = draw(st.lists(st.one_of(value(), st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_ATOMS[4:8]), value())),
                         max_size=5))
    text = draw(st.sampled_from(_COMMANDS)) + "(" + ", ".join(args) + ")"
    cut = draw(st.integers(0, len(text)))
    return text if draw(st.booleans()) else text[:cut] + draw(st.sampled_from(_ATOMS)) + text[cut:]


scripts = st.one_of(
    st.lists(statement(), max_size=30).map(lambda s: "\n".join(s).encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(_ATOMS), max_size=200).map(lambda s: "".join(s).encode()),
    st.text(max_size=400).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=400),
)


@FUZZ
@given(st.lists(scripts, min_size=60, max_size=60))
def test_fuzzed_scripts_check_and_format_without_a_traceback(tmp_path_factory, batch):
    inputs = {f"s{i:03d}.alls": data for i, data in enumerate(batch)}
    tmp = tmp_path_factory.mktemp("scripts")
    run_batch(inputs, ["check", "{}"], tmp, timeout=120, allowed=(0, 1))
    run_batch(inputs, ["fmt", "--check", "{}"], tmp, timeout=120, allowed=(0, 1))


# --------------------------------------------------------------------- graphs

_OPS = ["Relu", "Add", "Mul", "Identity", "Conv", "ConstantOfShape", "Reshape", "Concat", "MaxPool", "Gemm",
        "Sigmoid", "Shape", "Expand", "Tile", "Einsum"]


@st.composite
def tensor(draw, name: str):
    dims = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 8, -1, 1 << 20, 1 << 40]), min_size=0, max_size=4))
    count = 1
    for d in dims:
        count *= max(d, 0)
    kind = draw(st.integers(0, 3))
    if kind == 0 and count <= 4096:  # well formed, maybe with a NaN
        values = np.asarray(draw(st.lists(st.floats(width=32), min_size=count, max_size=count)), np.float32)
        return raw_tensor(name, dims, values.tobytes())
    if kind == 1:  # int64, for shapes
        values = np.asarray(draw(st.lists(st.sampled_from([1, 2, 3, 8, 0, -1, 1 << 31]), min_size=max(len(dims), 1),
                                          max_size=max(len(dims), 1))), np.int64)
        return raw_tensor(name, [len(values)], values.tobytes(), TensorProto.INT64)
    return raw_tensor(name, dims, draw(st.binary(max_size=256)))  # data that need not fill the dims


@st.composite
def graph(draw) -> bytes:
    names = ["x", "w", "s", "y", "a", "b", "ghost"]
    inits = [draw(tensor("w")), draw(tensor("s"))]
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(_OPS))
        inputs = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        output = draw(st.sampled_from(["y", "a", "b", f"t{i}", inputs[0]]))
        attrs = {"equation": "ij->ij"} if op == "Einsum" else {}
        nodes.append(helper.make_node(op, inputs, [output], name=f"n{i}", **attrs))
    dims = draw(st.lists(st.sampled_from([1, 3, 8, 0, 64]), min_size=1, max_size=4))
    g = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", draw(st.sampled_from([9, 13, 17, 21])))])
    proto.ir_version = 8
    data = proto.SerializeToString()
    return data if draw(st.integers(0, 9)) else data[: draw(st.integers(0, len(data)))]


@FUZZ
@given(st.lists(graph(), min_size=40, max_size=40))
def test_fuzzed_graphs_load_without_a_traceback(tmp_path_factory, batch):
    inputs = {f"g{i:03d}.onnx": data for i, data in enumerate(batch)}
    run_batch(inputs, ["layers", "{}"], tmp_path_factory.mktemp("graphs"), timeout=240)


# ------------------------------------------------------------ quantized files


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> tuple[bytes, pathlib.Path]:
    from hostile import model

    from alls.runtime import Runner

    folder = tmp_path_factory.mktemp("qbase")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    runner = Runner(model(nodes, {"w": conv_weight()}))
    runner.load_script("model_optimization_config(calibration, batch_size=4, calibset_size=8)\n")
    runner.quantize(np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 3)).astype(np.float32), progress=False)
    runner.save(folder / "q.npz")
    np.save(folder / "x.npy", np.random.default_rng(1).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32))
    return (folder / "q.npz").read_bytes(), folder / "x.npy"


@st.composite
def mutation(draw, base: bytes) -> bytes:
    import io
    import zipfile

    kind = draw(st.integers(0, 3))
    if kind == 0:  # flip bytes
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data)
    if kind == 1:  # truncate
        return base[: draw(st.integers(0, len(base) - 1))]
    members = dict(np.load(io.BytesIO(base)))
    key = draw(st.sampled_from(sorted(members)))
    if kind == 2:
        del members[key]
    else:
        dtype = draw(st.sampled_from([np.uint8, np.int8, np.int32, np.float32, np.float64]))
        members[key] = np.asarray(draw(st.lists(st.integers(-300, 300), max_size=64)), dtype=np.int64).astype(dtype)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, array in members.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            z.writestr(name + ".npy", buffer.getvalue())
    return out.getvalue()


@FUZZ
@given(data=st.data())
def test_fuzzed_quantized_files_are_refused_without_a_traceback(tmp_path_factory, quantized, data):
    base, images = quantized
    batch = data.draw(st.lists(mutation(base), min_size=30, max_size=30))
    inputs = {f"q{i:03d}.npz": blob for i, blob in enumerate(batch)}
    run_batch(inputs, ["eval", "{}", "--data", str(images)], tmp_path_factory.mktemp("qfiles"), timeout=300,
              allowed=(0, 2))
