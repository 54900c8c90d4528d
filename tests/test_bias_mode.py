"""The 16-bit bias (`bias_mode=double_scale_initialization`) changes the bias and nothing else.

Without bias correction, the two modes must give the same weights, scales, multipliers and shifts;
the 16-bit bias is never further from the float bias than the 8-bit one, channel by channel. Any
difference in accuracy between them is then the bias rounding's alone (docs/accuracy.md, "The
16-bit bias on PP-OCRv4's detector").
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from alls.runtime.session.runner import Runner

SAMPLE = pathlib.Path(__file__).resolve().parents[1] / "samples" / "digits"
DIGITS = SAMPLE / "digits_cnn.onnx"
SIXTEEN = "quantization_param([{conv*}, {dw*}, {fc*}], bias_mode=double_scale_initialization)\n"


@pytest.fixture(scope="module")
def both():
    calib = np.load(SAMPLE / "calib.npy")
    out = {}
    for mode in ("", SIXTEEN):
        runner = Runner(DIGITS, progress=False)
        runner.load_script("model_optimization_config(calibration, batch_size=8, calibset_size=64)\n" + mode)
        out[bool(mode)] = runner.quantize(calib, equalize=False, ibc=False)
    return out[False], out[True]


def _acc_scale(model, name):
    layer = model.graph[name]
    q = model.layers[name]
    scale = np.asarray(q.weight_scale, np.float64).reshape(-1)
    channels = q.bias.mantissa.size
    return model.layers[layer.inputs[0]].out.scale * np.repeat(scale, channels // scale.size)


def test_the_bias_mode_changes_only_the_bias(both):
    eight, sixteen = both
    weighted = [n for n, q in eight.layers.items() if q.bias is not None]
    assert weighted
    for name in eight.layers:
        a, b = eight.layers[name], sixteen.layers[name]
        assert a.out.scale == b.out.scale and a.out.zero_point == b.out.zero_point
        if a.weights is not None:
            assert np.array_equal(a.weights, b.weights)
        if hasattr(a.rq, "multiplier"):
            assert np.array_equal(a.rq.multiplier, b.rq.multiplier) and np.array_equal(a.rq.shift, b.rq.shift)
    for name in weighted:
        a, b = eight.layers[name].bias, sixteen.layers[name].bias
        assert (a.mantissa_bits, b.mantissa_bits) == (8, 16) and b.exponent <= a.exponent
        bias = np.asarray(eight.params.get(name, eight.graph[name].params)["bias"], np.float64)
        scale = _acc_scale(eight, name)
        err8, err16 = np.abs(a.error(bias, scale)), np.abs(b.error(bias, scale))
        assert np.all(err16 <= err8 + 1e-12 * np.abs(bias).max())
        assert np.all(err16 <= 2.0 ** (b.exponent - 1) * scale * (1 + 1e-9))  # (N12)
