"""16-bit activations deliver 16 bits: every layer kind, the range margin, and whole networks
against onnxruntime's A16W8 (docs/accuracy.md)."""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import alls
from alls.runtime.exec.calibration import RANGE_MARGIN, with_margin
from alls.runtime.analysis.metrics import snr_db
from alls.runtime.session.runner import Runner
from test_importer import DIGITS

ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(0)
N = helper.make_node


def _w(*shape, k=0.3):
    return (RNG.standard_normal(shape) * k).astype(np.float32)


def _model(nodes, inits, channels=4, opset=13) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ("N", channels, 8, 8))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _conv(out="c", w="w", b="b", src="x"):
    return N("Conv", [src, w, b], [out], pads=[1, 1, 1, 1])


CONV = {"w": _w(8, 4, 3, 3), "b": _w(8)}
CONV2 = {**CONV, "w2": _w(8, 4, 3, 3), "b2": _w(8)}
SCALES = {"s": np.array([1, 1, 2, 2], np.float32)}
KINDS = {
    "conv": _model([_conv("y")], CONV),
    "conv_relu": _model([_conv(), N("Relu", ["c"], ["y"])], CONV),
    "dw": _model([N("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], group=4)], {"w": _w(4, 1, 3, 3), "b": _w(4)}),
    "deconv": _model([N("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2])], {"w": _w(4, 3, 2, 2), "b": _w(3)}),
    "fc": _model([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                 {"w": _w(5, 256, k=0.05), "b": _w(5)}),
    "batch_norm": _model([N("BatchNormalization", ["x", "s", "o", "m", "v"], ["y"])],
                         {"s": _w(4) + 1, "o": _w(4), "m": _w(4), "v": np.abs(_w(4)) + 0.5}),
    "add": _model([_conv(), _conv("d", "w2", "b2"), N("Add", ["c", "d"], ["y"])], CONV2),
    "sub": _model([_conv(), _conv("d", "w2", "b2"), N("Sub", ["c", "d"], ["y"])], CONV2),
    "mul": _model([_conv(), _conv("d", "w2", "b2"), N("Mul", ["c", "d"], ["y"])], CONV2),
    "mul_const": _model([N("Mul", ["x", "k"], ["y"])], {"k": np.linspace(0.5, 2, 4, dtype=np.float32).reshape(1, 4, 1, 1)}),
    "add_const": _model([N("Add", ["x", "k"], ["y"])], {"k": np.linspace(-0.5, 2, 4, dtype=np.float32).reshape(1, 4, 1, 1)}),
    "concat": _model([_conv(), N("Concat", ["c", "x"], ["y"], axis=1)], CONV),
    "maxpool": _model([_conv(), N("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], CONV),
    "avgpool": _model([_conv(), N("AveragePool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
                      CONV),
    "global_avgpool": _model([_conv(), N("GlobalAveragePool", ["c"], ["y"])], CONV),
    "resize_nearest": _model([_conv(), N("Resize", ["c", "", "s"], ["y"], mode="nearest")], {**CONV, **SCALES}),
    "resize_bilinear": _model([_conv(), N("Resize", ["c", "", "s"], ["y"], mode="linear")], {**CONV, **SCALES}),
    "sigmoid": _model([_conv(), N("Sigmoid", ["c"], ["y"])], CONV),
    "tanh": _model([_conv(), N("Tanh", ["c"], ["y"])], CONV),
    "leaky_relu": _model([_conv(), N("LeakyRelu", ["c"], ["y"], alpha=0.1)], CONV),
    "prelu": _model([_conv(), N("PRelu", ["c", "p"], ["y"])],
                    {**CONV, "p": np.linspace(0.05, 0.3, 8, dtype=np.float32).reshape(8, 1, 1)}),
    "hardswish": _model([_conv(), N("HardSwish", ["c"], ["y"])], CONV, opset=14),
    "silu": _model([_conv(), N("Sigmoid", ["c"], ["s"]), N("Mul", ["c", "s"], ["y"])], CONV),
    "sigmoid_alone": _model([N("Sigmoid", ["x"], ["y"])], {}),
    "softmax": _model([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "w", "b"], ["g"], transB=1),
                       N("Softmax", ["g"], ["y"], axis=1)], {"w": _w(5, 256, k=0.05), "b": _w(5)}),
}
IMAGES = RNG.uniform(-1, 1, (64, 8, 8, 4)).astype(np.float32)


def _snr(model, script: str, images=IMAGES) -> tuple[float, Runner]:
    runner = Runner(model)
    runner.load_script(script)
    runner.quantize(images, progress=False)
    return snr_db(runner.infer(images, target="native").output, runner.infer(images).output), runner


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_layer_kind_at_a16_w16_reaches_60_db_on_in_range_data(kind):
    snr, runner = _snr(KINDS[kind], "quantization_param({*}, precision_mode=a16_w16)\n")
    assert snr >= 60, f"{kind}: {snr:.1f} dB"
    assert all(q.out.bits == 16 for q in runner.quantized.layers.values())


def _on_the_8_bit_grid(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every weight moved to its per-tensor 8-bit grid, so that quantizing its weights
    at 8 bits loses nothing and what is left is the activations' error."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim >= 2:
            step = np.abs(w).max() / 127
            init.CopyFrom(numpy_helper.from_array((np.round(w / step) * step).astype(np.float32), init.name))
    return model


GRID_IMAGES = (RNG.integers(0, 256, (64, 8, 8, 4)) / 255).astype(np.float32)  # on the input's 8-bit grid


@pytest.mark.parametrize("kind", ["conv", "dw", "deconv", "fc", "add", "avgpool", "resize_bilinear", "sigmoid"])
@pytest.mark.parametrize("mode", ["a16_w8", "a8_w8_a16"])
def test_16_bit_outputs_over_8_bit_weights_lose_only_what_the_weights_lose(kind, mode):
    """Weights and inputs on their 8-bit grids: a 16-bit output keeps 60 dB, so nothing between the
    accumulator and the output (multiplier, bias, table, margin) is held at 8-bit resolution."""
    script = ("model_optimization_flavor(optimization_level=0)\n"
              f"quantization_param({{*}}, precision_mode={mode})\n"
              "quantization_param(input_layer1, precision_mode=a8_w8)\n")
    snr, runner = _snr(_on_the_8_bit_grid(KINDS[kind]), script, GRID_IMAGES)
    assert snr >= 60, f"{kind} at {mode}: {snr:.1f} dB"
    weighted = [q for q in runner.quantized.layers.values() if q.weights is not None]
    assert all(q.bias.mantissa_bits == 16 for q in weighted)


# ------------------------------------------------------------------ the plan


def test_a_16_bit_layer_gets_the_16_bit_bias_unless_the_script_says_otherwise():
    graph = alls.load_model(KINDS["conv"])
    plan = alls.resolve(alls.parse("quantization_param({*}, precision_mode=a16_w16)\n"), graph)
    assert plan["m/conv1"].bias_mode == "double_scale_initialization"
    plan = alls.resolve(alls.parse("quantization_param({*}, precision_mode=a16_w16)\n"
                                   "quantization_param(conv1, bias_mode=single_scale_decomposition)\n"), graph)
    assert plan["m/conv1"].bias_mode == "single_scale_decomposition"
    assert alls.resolve(alls.parse(""), graph)["m/conv1"].bias_mode == "single_scale_decomposition"


# --------------------------------------------------------------- the margin


def test_16_bit_ranges_reach_half_again_beyond_the_calibrated_range_and_8_bit_ones_do_not():
    assert RANGE_MARGIN[16] == 0.5 and RANGE_MARGIN[8] == 0.0
    assert with_margin(-2.0, 4.0, 16) == (-3.0, 6.0)
    assert with_margin(0.0, 4.0, 16) == (0.0, 6.0)  # a side at zero stays there
    assert with_margin(-2.0, 4.0, 8) == (-2.0, 4.0)
    assert with_margin(0.0, 5.0, 16, (0.0, 6.0)) == (0.0, 6.0)  # not past what relu6 can produce
    assert with_margin(-0.9, 0.9, 16, (-1.0, 1.0)) == (-1.0, 1.0)


def test_a_16_bit_tensor_is_not_clamped_on_images_a_little_beyond_the_calibration():
    model = KINDS["conv"]
    runner = Runner(model)
    runner.load_script("quantization_param({*}, precision_mode=a16_w16)\n")
    runner.quantize(IMAGES * 0.8, progress=False)  # calibrated on 80% of the amplitude
    snr = snr_db(runner.infer(IMAGES, target="native").output, runner.infer(IMAGES).output)
    assert snr >= 60
    runner.load_script("quantization_param({*}, precision_mode=a16_w16)\n"
                       "quantization_param({*}, force_range_out=[-1.0, 1.0])\n")
    runner.quantize(IMAGES, progress=False)  # a forced range is the user's, without margin
    assert runner.quantized.layers["m/input_layer1"].out.scale == pytest.approx(2 / 65535)


# ---------------------------------------------------------- whole networks


def ort_a16w8(model_path, input_name: str, calib_nchw: np.ndarray, tmp_path) -> object:
    """onnxruntime's QDQ model with uint16 activations and int8 per-channel weights (MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(logging.ERROR)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: calib_nchw[i:i + 1]} for i in range(len(calib_nchw))])

        def get_next(self):
            return next(self.items, None)

    target = tmp_path / "a16w8.onnx"
    quantize_static(str(model_path), str(target), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt16, weight_type=QuantType.QInt8, per_channel=True)
    return ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])


def test_digits_at_a16_w16_beats_onnxruntime_a16w8_per_channel_on_held_out_images(tmp_path):
    calib = np.load(DIGITS.parent / "calib.npy")
    test = np.load(DIGITS.parent / "test_x.npy")[:200]
    runner = Runner(DIGITS)
    runner.load_script("quantization_param({*}, precision_mode=a16_w16)\n")
    runner.quantize(calib, progress=False)
    native = runner.infer(test, target="native").output
    ours = snr_db(native, runner.infer(test).output)
    session = ort_a16w8(DIGITS, "input", calib.transpose(0, 3, 1, 2).astype(np.float32), tmp_path)
    theirs = snr_db(native, session.run(None, {"input": test.transpose(0, 3, 1, 2).astype(np.float32)})[0])
    assert ours > theirs + 20 and ours > 70, (ours, theirs)
    assert math.isfinite(theirs)


def test_centerface_at_a16_w16_beats_onnxruntime_a16w8_per_channel_on_held_out_images(tmp_path):
    import sys
    from pathlib import Path

    import datasets
    import models

    sys.path.insert(0, str(Path(__file__).parent / "bench"))
    from bench_network import fixed_batch_model

    try:
        path = models.centerface()
        calib, test = datasets.face_scenes(32, 96, seed=0), datasets.face_scenes(8, 96, seed=1)
    except (models.Unavailable, datasets.Unavailable) as exc:
        pytest.skip(str(exc))
    shape = (1, 3, 96, 96)
    path = fixed_batch_model(path, 1, shape)
    runner = Runner(path, shape)
    runner.load_script("model_optimization_config(calibration, calibset_size=32)\n"
                       "quantization_param({*}, precision_mode=a16_w16)\n")
    runner.quantize(calib, progress=False)
    x = np.ascontiguousarray(test.transpose(0, 3, 1, 2))
    native = runner.infer(x, target="native", layout="nchw").outputs
    ours = runner.infer(x, layout="nchw").outputs
    session = ort_a16w8(path, "input.1", np.ascontiguousarray(calib.transpose(0, 3, 1, 2)), tmp_path)
    theirs = session.run(None, {"input.1": x})
    for (name, reference), other in zip(native.items(), theirs):
        assert snr_db(reference, ours[name]) > snr_db(reference, other) + 10, name
