"""Equalization through MobileNetV3 / PP-LCNet blocks: what it reaches, that it stays exact, what it says."""

from __future__ import annotations

import numpy as np
import pytest

import alls
import lcnet
from alls.runtime.algorithms.equalize import equalize, pairs, survey
from alls.runtime.analysis.metrics import snr_db
from alls.runtime.exec.native import run_float
from alls.runtime.session.runner import Runner


@pytest.fixture(scope="module")
def blocks():
    return alls.load_model(lcnet.save(), (1, 3, lcnet.SIZE, lcnet.SIZE))


def _short(names):
    return sorted(name.rsplit("/", 1)[-1] for name in names)


def _images(n=8, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (n, 3, lcnet.SIZE, lcnet.SIZE)).astype(np.float32)


def test_factors_pass_squeeze_excite_gates(blocks):
    found = {p.writer.rsplit("/", 1)[-1]: p for p in pairs(blocks)}
    # MobileNetV3's bneck: the depthwise output feeds the SE pool (whose first conv absorbs the factors)
    # and the gated product (whose projection absorbs them)
    assert _short(found["dw1"].readers) == ["conv2", "conv4"] and _short(found["dw1"].through) == ["avgpool1", "ew_mult1"]
    # PP-OCR's residual SE: x + x * gate(x), every operand of the sum carries the factors
    assert _short(found["conv15"].through) == ["avgpool4", "ew_add3", "ew_mult5"]
    assert _short(found["conv18"].through) == ["avgpool5"] and _short(found["conv18"].readers) == ["fc1"]
    assert {"conv5", "dw2", "conv10", "dw5"} <= set(found)  # the direct pairs stay


def test_what_stops_the_factors_is_named(blocks):
    skipped = {s.writer.rsplit("/", 1)[-1]: s for s in survey(blocks)[1]}
    assert "hardswish, is not positive-homogeneous" in skipped["conv1"].reason
    assert "hard_sigmoid, is not positive-homogeneous" in skipped["conv3"].reason  # an SE gate's own conv
    assert skipped["conv4"].layer.endswith("ew_add1") and "another writer" in skipped["conv4"].reason
    assert not set(skipped) & {p.writer.rsplit("/", 1)[-1] for p in pairs(blocks)}


def test_equalization_through_blocks_is_exact_and_moves_the_ranges(blocks):
    params, report = equalize(blocks)
    x = _images()
    before, _ = run_float(blocks, x)
    after, _ = run_float(blocks, x, params)
    for name in before:
        assert snr_db(before[name], after[name]) > 100  # float32 rounding only
    dw1 = next(r for r in report if r["writer"].endswith("dw1"))
    assert dw1["factor_max"] / dw1["factor_min"] > 2 and dw1["balance_after"] > dw1["balance_before"]


def _affine_model():
    """conv + ReLU, then PP-LCNetV3's scalar affine (x * a + b), into a conv: the constant becomes per channel."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    gains = np.exp(rng.uniform(np.log(0.05), np.log(3.0), 8))[:, None, None, None]
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w1", rng.normal(0, 0.5, (8, 3, 3, 3)) * gains), ("b1", rng.normal(0, 0.1, 8)),
        ("a", np.array(0.9)), ("c", np.array(0.25)), ("w2", rng.normal(0, 0.3, (4, 8, 1, 1))),
        ("b2", np.zeros(4)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], pads=[1] * 4), helper.make_node("Relu", ["y1"], ["r"]),
             helper.make_node("Mul", ["r", "a"], ["m"]), helper.make_node("Add", ["m", "c"], ["s"]),
             helper.make_node("Conv", ["s", "w2", "b2"], ["out"])]
    graph = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_sum_with_a_constant_takes_the_factors_per_channel():
    runner = Runner(_affine_model(), (1, 3, 8, 8), progress=False)
    graph = runner.graph
    (pair,) = pairs(graph)
    assert _short(pair.through) == ["ew_add1", "ew_mult1"]
    params, _ = equalize(graph)
    add = next(name for name in pair.through if name.endswith("ew_add1"))
    assert params[add]["const"].shape == (8, 1, 1) and np.ptp(params[add]["const"]) > 0
    x = np.random.default_rng(4).normal(0, 1, (16, 3, 8, 8)).astype(np.float32)
    before, after = run_float(graph, x)[0], run_float(graph, x, params)[0]
    assert all(snr_db(before[k], after[k]) > 100 for k in before)
    # and the integer path quantizes and runs the per-channel constant
    runner.quantize(x, layout="nchw", batch_size=8, calib_num_batch=2, ibc=False)
    out = runner.infer(x, layout="nchw").outputs
    assert all(snr_db(before[k], out[k]) > 20 for k in before)


def test_quantize_says_which_tensors_equalization_left_alone(blocks):
    runner = Runner(lcnet.save(), progress=False)
    runner.quantize(_images(16).transpose(0, 2, 3, 1), batch_size=8, calib_num_batch=2, ibc=False)
    (note,) = [d for d in runner.warnings if d.code == "ALS525"]
    assert "equalization left" in note.message and "`conv1`" in note.message and "hardswish" in note.message
    assert "`conv4` at `ew_add1`" in note.message
    assert any(r["through"] for r in runner.quantized.report["equalization"])
    quiet = Runner(lcnet.save(), progress=False)
    quiet.quantize(_images(16).transpose(0, 2, 3, 1), batch_size=8, calib_num_batch=2, equalize=False, ibc=False)
    assert not any(d.code == "ALS525" for d in quiet.warnings)  # nothing asked, nothing to say
