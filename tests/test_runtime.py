"""The runtime end to end: quantize, emulate, save and load, the CLI, the FAQ's errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import alls
from alls.cli import main
from alls.runtime.analysis.metrics import compare, cosine, snr_db
from alls.runtime.session.model import load
from alls.runtime.exec.quantize import Encoding
from alls.runtime.session.runner import Runner
from test_importer import DIGITS

SAMPLES = DIGITS.parent
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def calib():
    return np.load(SAMPLES / "calib.npy")


@pytest.fixture(scope="module")
def test_x():
    return np.load(SAMPLES / "test_x.npy")


@pytest.fixture(scope="module")
def test_y():
    return np.load(SAMPLES / "test_y.npy")


def quantized(script: str = "", model=DIGITS, data=None, **kw):
    runner = Runner(model)
    if script:
        runner.load_script(script)
    runner.quantize(np.load(SAMPLES / "calib.npy") if data is None else data, progress=False, **kw)
    return runner


# ------------------------------------------------------------- the digits CNN


def test_digits_numeric_agrees_with_native_on_99_percent(test_x, test_y):
    runner = quantized()
    native = runner.infer(test_x, target="native").output
    numeric = runner.infer(test_x).output
    figures = compare(native, numeric, test_y)
    assert figures["top1_agreement"] >= 0.99
    assert figures["numeric_accuracy"] >= figures["native_accuracy"] - 0.01
    assert figures["cosine"] > 0.998


def test_native_equals_onnxruntime(test_x):
    session = ort.InferenceSession(str(DIGITS), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": test_x.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    native = quantized().infer(test_x, target="native").output
    assert np.abs(native - expected).max() < 1e-4 * np.ptp(expected)


def test_16_bit_everywhere_is_far_closer_than_8_bit(calib):
    """On the calibration images themselves, where no value falls outside the calibrated ranges."""
    eight = quantized()
    sixteen = quantized("quantization_param({*}, precision_mode=a16_w16)\n"
                        "quantization_param([{conv*}, {dw*}, fc1], bias_mode=double_scale_initialization)\n")
    native = eight.infer(calib, target="native").output
    snr8 = snr_db(native, eight.infer(calib).output)
    snr16 = snr_db(native, sixteen.infer(calib).output)
    assert snr16 > snr8 + 30
    assert all(q.out.bits == 16 for q in sixteen.quantized.layers.values())


def test_4_bit_weights_lose_more_than_8_bit(test_x):
    native = quantized().infer(test_x, target="native").output
    four = quantized("quantization_param({conv*}, precision_mode=a8_w4)\n")
    eight = quantized()
    assert snr_db(native, four.infer(test_x).output) < snr_db(native, eight.infer(test_x).output)
    weights = four.quantized.layers["digits_cnn/conv2"].weights
    assert np.abs(weights).max() <= 7 and weights.dtype == np.int8


def test_the_16_bit_bias_is_finer_than_the_8_bit_one():
    single = quantized().quantized.layers["digits_cnn/conv3"]
    double = quantized("quantization_param({conv*}, bias_mode=double_scale_initialization)\n").quantized.layers[
        "digits_cnn/conv3"]
    assert single.bias.mantissa_bits == 8 and double.bias.mantissa_bits == 16
    assert double.bias.exponent < single.bias.exponent
    assert double.info["bias_error_max"] < single.info["bias_error_max"]


def test_quantization_groups_give_each_group_its_scale():
    layer = quantized("quantization_param(conv2, quantization_groups=4)\n").quantized.layers["digits_cnn/conv2"]
    scales = layer.weight_scale
    assert len(np.unique(scales)) == 4 and all(len(set(scales[i * 8:(i + 1) * 8])) == 1 for i in range(4))


def test_forced_ranges_and_manual_clipping_set_the_encodings():
    runner = quantized("quantization_param(conv1, force_range_out=[0.0, 2.0])\n"
                       "quantization_param(conv2, force_range_in=[0.0, 4.0])\n"
                       "pre_quantization_optimization(activation_clipping, layers=[conv3], mode=manual, "
                       "clipping_values=[0.0, 3.0])\n")
    layers = runner.quantized.layers
    assert layers["digits_cnn/conv1"].out == Encoding.from_range(0.0, 2.0, 8)
    assert layers["digits_cnn/dw1"].out == Encoding.from_range(0.0, 4.0, 8)  # the producer of conv2's input
    assert layers["digits_cnn/conv3"].out == Encoding.from_range(0.0, 3.0, 8)


def test_an_encoding_represents_zero_exactly():
    for lo, hi in ((-1.3, 2.7), (0.5, 3.0), (-4.0, -1.0), (0.0, 0.0)):
        e = Encoding.from_range(lo, hi, 8)
        assert e.dequantize(e.quantize(np.zeros(1)))[0] == 0.0 and 0 <= e.zero_point <= 255


# ---------------------------------------------------------- the targets


def test_taps_keep_native_and_raw_inputs(test_x, calib):
    from alls.runtime.exec.native import run_layer

    runner = quantized()
    model = runner.quantized
    full = model.run(test_x[:32], taps="all")
    assert set(full.taps) == {layer.name for layer in runner.graph}
    assert full.taps["digits_cnn/conv1"].shape == (32, 8, 8, 16)  # NHWC, like the input
    # a layer kept native computes in float on its dequantized inputs, then quantizes its output
    mixed = model.run(test_x[:32].transpose(0, 3, 1, 2), keep_native=["conv3"], taps=["maxpool1", "conv3"], layout="nchw")
    conv3 = runner.graph["conv3"]
    expected = run_layer(conv3, [mixed.taps["digits_cnn/maxpool1"]], model.params.get(conv3.name))
    encoding = model.layers[conv3.name].out
    np.testing.assert_array_equal(mixed.taps[conv3.name], encoding.dequantize(encoding.quantize(expected)))
    # keeping every weighted layer native recovers most of the error (on images inside the calibrated ranges)
    native = model.run(calib, target="native").output
    kept = model.run(calib, keep_native=["conv1", "dw1", "conv2", "conv3", "fc1"]).output
    assert snr_db(native, kept) > snr_db(native, model.run(calib).output)
    encoding = model.input_encodings["digits_cnn/input_layer1"]
    codes = encoding.quantize(test_x[:32])
    raw = model.run(codes, raw=True).output
    np.testing.assert_array_equal(raw, full.output)


def test_save_and_load_give_the_same_numbers(tmp_path, test_x):
    runner = quantized("quantization_param({conv*}, bias_mode=double_scale_initialization)\n")
    path = tmp_path / "q.npz"
    runner.save(path)
    loaded = load(path)
    np.testing.assert_array_equal(loaded.run(test_x[:50]).output, runner.infer(test_x[:50]).output)
    assert loaded.plan["conv1"].bias_mode == "double_scale_initialization"
    result = loaded.run(test_x[:4], taps=["conv1"])
    result.save(tmp_path / "taps.npz")
    with np.load(tmp_path / "taps.npz") as saved:
        assert sorted(saved.files) == ["output:digits_cnn/output_layer1", "tap:digits_cnn/conv1"]


def _code(excinfo) -> str:
    return excinfo.value.diagnostics[0].code


def test_foreign_truncated_and_other_version_files_are_refused(tmp_path):
    runner = quantized()
    good = tmp_path / "q.npz"
    runner.save(good)
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "other.npz"
    np.savez(foreign, x=np.zeros(3))
    for path in (truncated, foreign):
        with pytest.raises(alls.AllsError) as excinfo:
            load(path)
        assert _code(excinfo) == "ALS509"
    with zipfile.ZipFile(good) as z:
        meta = json.loads(np.lib.format.read_array(z.open("meta.json.npy")).tobytes())
    meta["version"] = 99
    arrays = dict(np.load(good))
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(alls.AllsError) as excinfo:
        load(newer)
    assert _code(excinfo) == "ALS509" and "version 99" in str(excinfo.value)
    with pytest.raises(alls.AllsError) as excinfo:
        load(tmp_path / "missing.npz")
    assert _code(excinfo) == "ALS001"


# ----------------------------------------------------------- the FAQ's errors


def test_the_faq_errors(calib):
    runner = Runner(DIGITS)
    with pytest.raises(alls.AllsError) as excinfo:
        runner.quantize(calib[:16], progress=False)  # calibset_size 64 by default
    assert _code(excinfo) == "ALS501"
    with pytest.raises(alls.AllsError) as excinfo:
        runner.quantize(calib.transpose(0, 3, 1, 2), progress=False)
    assert _code(excinfo) == "ALS505"
    with pytest.raises(alls.AllsError) as excinfo:
        runner.infer(calib, target="numeric")
    assert _code(excinfo) == "ALS506"
    runner.quantize(calib[:16], batch_size=4, calib_num_batch=4, progress=False)  # asking for fewer works
    assert runner.quantized.report["calibration_images"] == 16
    with pytest.raises(alls.AllsError) as excinfo:
        runner.load_script("quantization_param({cnv*}, precision_mode=a16_w16)\n")
    assert _code(excinfo) == "ALS201"
    with pytest.raises(alls.AllsError) as excinfo:
        runner.load_script("no_such_script.txt")  # a path, not script text
    assert _code(excinfo) == "ALS001"
    runner.load_script("quantization_param(conv1, bias_mode=double_scale_initialization)")  # text, one line


def test_a_dead_output_branch_is_reported(calib):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 1, 8, 8))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="c"),
             helper.make_node("Relu", ["c"], ["y"], name="r")]
    inits = [numpy_helper.from_array(-np.ones((2, 1, 1, 1), np.float32), "w"),
             numpy_helper.from_array(np.zeros(2, np.float32), "b")]
    graph = helper.make_graph(nodes, "dead", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    runner = Runner(model)
    runner.quantize(calib, progress=False)  # images are >= 0, so -x then ReLU is always 0
    assert [d.code for d in runner.warnings if d.code == "ALS502"] == ["ALS502"]


def test_an_unsupported_layer_cannot_be_quantized(calib):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 1, 8, 8))
    nodes = [helper.make_node("Erf", ["x"], ["y"], name="erf")]
    graph = helper.make_graph(nodes, "erf", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    runner = Runner(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    with pytest.raises(alls.AllsError) as excinfo:
        runner.quantize(calib, progress=False)
    assert _code(excinfo) == "ALS510" and "Erf" in str(excinfo.value)


# ------------------------------------------------- every layer kind, emulated


def _every_kind_model() -> onnx.ModelProto:
    rng = np.random.default_rng(7)

    def w(*shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32))

    inits = {}

    def init(name, value):
        inits[name] = value
        value.name = name
        return name

    n = helper.make_node
    nodes = [
        n("Conv", ["x", init("w1", w(8, 3, 3, 3)), init("b1", w(8))], ["c1"], pads=[1, 1, 1, 1]),
        n("Relu", ["c1"], ["r1"]),
        n("Conv", ["r1", init("w2", w(8, 1, 3, 3)), init("b2", w(8))], ["c2"], pads=[1, 1, 1, 1], group=8),
        n("Clip", ["c2", init("lo", numpy_helper.from_array(np.float32(0))),
                   init("hi", numpy_helper.from_array(np.float32(6)))], ["r2"]),
        n("Conv", ["r2", init("w3", w(8, 8, 1, 1)), init("b3", w(8))], ["c3"]),
        n("Add", ["c3", "r1"], ["s1"]),
        n("MaxPool", ["s1"], ["m1"], kernel_shape=[2, 2], strides=[2, 2]),
        n("AveragePool", ["s1"], ["a1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Concat", ["m1", "a1"], ["k1"], axis=1),
        n("Resize", ["k1", "", init("sc", numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32)))], ["u1"],
          mode="nearest"),
        n("Resize", ["m1", "", "sc"], ["u2"], mode="linear"),
        n("Concat", ["u1", "u2"], ["k2"], axis=1),
        n("ConvTranspose", ["k2", init("w4", w(24, 4, 2, 2)), init("b4", w(4))], ["t1"], strides=[2, 2]),
        n("LeakyRelu", ["t1"], ["l1"], alpha=0.1),
        n("Conv", ["l1", init("w5", w(2, 4, 1, 1)), init("b5", w(2))], ["c5"]),
        n("Sigmoid", ["c5"], ["heat"]),
        n("Mul", ["k1", init("k", numpy_helper.from_array(np.linspace(0.5, 2, 16).astype(np.float32)
                                                            .reshape(1, 16, 1, 1)))], ["g0"]),
        n("GlobalAveragePool", ["g0"], ["g1"]),
        n("Flatten", ["g1"], ["f1"]),
        n("Gemm", ["f1", init("w6", w(5, 16)), init("b6", w(5))], ["fc"], transB=1),
        n("Softmax", ["fc"], ["prob"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "every", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ("N", 3, 16, 16))],
        [helper.make_tensor_value_info("heat", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("prob", TensorProto.FLOAT, None)], list(inits.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def every_kind():
    model = _every_kind_model()
    images = np.random.default_rng(0).uniform(0, 1, (64, 16, 16, 3)).astype(np.float32)
    return model, images


def test_every_layer_kind_in_one_model_native_equals_onnxruntime(every_kind):
    model, images = every_kind
    runner = Runner(model)
    kinds = {layer.kind for layer in runner.graph}
    assert {"conv", "dw", "deconv", "fc", "ew_add", "ew_mult", "concat", "maxpool", "avgpool", "resize",
            "softmax"} <= kinds
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": images[:8].transpose(0, 3, 1, 2)})
    got = runner.infer(images[:8], target="native", layout="nhwc")
    for e, g in zip(expected, got.outputs.values()):
        g = g.transpose(0, 3, 1, 2) if g.ndim == 4 else g
        assert np.abs(e - g).max() < 1e-4 * max(1.0, np.ptp(e))


@pytest.mark.parametrize("script, floor", [("", 0.995), ("quantization_param({*}, precision_mode=a16_w16)\n", 0.99999)])
def test_every_layer_kind_in_one_model_numeric_is_close_to_native(every_kind, script, floor):
    model, images = every_kind
    runner = Runner(model)
    if script:
        runner.load_script(script)
    runner.quantize(images, progress=False)
    native = runner.infer(images, target="native")
    numeric = runner.infer(images)
    for name in native.outputs:
        assert cosine(native.outputs[name], numeric.outputs[name]) > floor, name


def test_every_layer_kind_runs_the_same_over_its_images_in_parts(every_kind, monkeypatch):
    from alls.runtime.exec import emulator

    model, images = every_kind
    runner = Runner(model)
    runner.quantize(images, progress=False)
    whole = runner.infer(images)
    calls = []
    real = emulator._in_parts

    def counted(run, xs, layer):
        calls.append(layer.kind)
        return real(run, xs, layer)

    monkeypatch.setattr(emulator, "CHUNK_BYTES", 3000)  # a few images a part for every layer
    monkeypatch.setattr(emulator, "_in_parts", counted)
    parts = runner.infer(images)
    assert len(calls) == len(runner.graph)
    for name in whole.outputs:
        np.testing.assert_array_equal(parts.outputs[name], whole.outputs[name])


# ------------------------------------------------------------------- the CLI


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_quantize_then_eval_from_the_command_line(capsys, tmp_path):
    target = tmp_path / "q.npz"
    code, out, err = run(capsys, "quantize", DIGITS, "--script", SAMPLES / "digits.alls", "--calib",
                         SAMPLES / "calib.npy", "-o", target)
    assert code == 0 and target.exists() and "calibrated `digits_cnn` on 64 images (8 batches of 8)" in out
    code, _, err = run(capsys, "quantize", DIGITS, "--calib", SAMPLES / "calib.npy", "-o", target)
    assert code == 2 and "--force" in err
    code, out, _ = run(capsys, "eval", target, "--data", SAMPLES / "test_x.npy", "--labels", SAMPLES / "test_y.npy")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("output_layer1"))
    cos, agree = float(row.split()[1]), float(row.split()[5].rstrip("%"))
    assert cos > 0.998 and agree >= 99.0
    code, out, _ = run(capsys, "eval", target, "--data", SAMPLES / "test_x.npy", "--json", "--limit", "10")
    doc = json.loads(out)
    assert doc["images"] == 10 and "cosine" in doc["outputs"]["digits_cnn/output_layer1"]


def test_cli_errors_exit_2_with_codes(capsys, tmp_path):
    code, _, err = run(capsys, "eval", tmp_path / "none.npz", "--data", SAMPLES / "test_x.npy")
    assert code == 2 and "ALS001" in err
    code, _, err = run(capsys, "quantize", DIGITS, "--calib", SAMPLES / "test_y.npy", "-o", tmp_path / "q.npz")
    assert code == 2 and "ALS505" in err
    bad = tmp_path / "bad.alls"
    bad.write_text("quantization_param({cnv*}, precision_mode=a16_w16)\n")
    code, _, err = run(capsys, "quantize", DIGITS, "--script", bad, "--calib", SAMPLES / "calib.npy", "-o",
                       tmp_path / "q.npz")
    assert code == 2 and "ALS201" in err and "cnv*" in err
    assert not (tmp_path / "q.npz").exists()


# ------------------------------------------------------------ the face detector


def test_centerface_heatmap_survives_8_bit_quantization(capsys, tmp_path):
    """CenterFace at 320x320, all 8-bit by default, calibrated on 64 scenes of real photographs and faces."""
    import datasets
    import models

    try:
        model = models.centerface()
        calib, test = datasets.face_scenes(64, seed=0), datasets.face_scenes(8, seed=1)
    except (models.Unavailable, datasets.Unavailable) as exc:
        pytest.skip(str(exc))
    np.save(tmp_path / "calib.npy", calib)
    np.save(tmp_path / "test.npy", test)
    code, out, err = run(capsys, "quantize", model, "--input-shape", "1,3,320,320", "--calib", tmp_path / "calib.npy",
                         "-o", tmp_path / "q.npz", "--data", tmp_path / "test.npy")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("output_layer")}
    assert float(rows["output_layer1"][1]) >= 0.88  # the heatmap's cosine against native
    assert len(rows) == 4


def test_centerface_bias_correction_removes_90_percent_of_every_layers_mean_error_with_the_16_bit_bias():
    import datasets
    import models

    try:
        model, calib = models.centerface(), datasets.face_scenes(64, seed=0)
    except (models.Unavailable, datasets.Unavailable) as exc:
        pytest.skip(str(exc))
    runner = Runner(model, (1, 3, 320, 320))
    runner.load_script("quantization_param([{conv*}, {dw*}, {deconv*}], bias_mode=double_scale_initialization)\n")
    report = runner.quantize(calib, progress=False).report["bias_correction"]
    assert len(report) == 63
    worst = min(report, key=lambda r: r["removed"])
    assert worst["removed"] >= 0.9, worst
    assert sum(r["channels_flipped"] for r in report) > 0


# ------------------------------------------------------------ the algorithms


def test_equalization_is_an_exact_float_transform(every_kind, calib):
    from alls.runtime.algorithms.equalize import equalize, pairs

    model, images = every_kind
    runner = Runner(model)
    assert pairs(runner.graph)  # conv1 -> dw1 and dw1's readers, at least
    params, report = equalize(runner.graph, runner.plan)
    assert report and all(r["balance_after"] >= r["balance_before"] - 1e-9 for r in report)
    runner.quantize(images, progress=False)
    native = runner.infer(images, target="native")
    optimized = runner.infer(images, target="fp_optimized")
    assert runner.quantized.params  # the default level equalizes
    for name in native.outputs:
        np.testing.assert_allclose(optimized.outputs[name], native.outputs[name], atol=1e-4, rtol=1e-4)


def test_bias_correction_moves_the_means_and_reports_what_the_bias_format_lost():
    single = quantized("model_optimization_flavor(optimization_level=1)\n")
    double = quantized("model_optimization_flavor(optimization_level=1)\n"
                       "quantization_param([{conv*}, {dw*}, fc1], bias_mode=double_scale_initialization)\n")
    for runner in (single, double):
        report = runner.quantized.report["bias_correction"]
        assert [r["layer"].rsplit("/", 1)[-1] for r in report] == ["conv1", "dw1", "conv2", "conv3", "fc1"]
        assert all(r["mean_error_after"] <= r["mean_error_before"] + r["bias_step"] for r in report)
    lost = lambda runner: sum(r["channels_lost"] for r in runner.quantized.report["bias_correction"])
    assert lost(double) < lost(single)
    removed = [r["removed"] for r in double.quantized.report["bias_correction"] if r["mean_error_before"] > 0]
    assert np.median(removed) >= 0.9


def test_bias_correction_reports_the_error_it_leaves_and_flips_only_near_ties():
    from alls.runtime.exec.emulator import accumulators, run_numeric
    from alls.runtime.exec.native import run_float
    from alls.runtime.algorithms.patches import to_groups
    from alls.runtime.exec.quantize import quantize_weights

    single = quantized("quantization_param([{conv*}, {dw*}, fc1], bias_mode=single_scale_decomposition)\n")
    assert not any(r["channels_flipped"] for r in single.quantized.report["bias_correction"])
    # 16-bit activations and weights make accumulator units so fine that the 16-bit bias needs an exponent
    runner = quantized("quantization_param([{conv*}, {dw*}, fc1], bias_mode=double_scale_initialization)\n"
                       "quantization_param({*}, precision_mode=a16_w16)\n")
    q = runner.quantized
    report = {r["layer"]: r for r in q.report["bias_correction"]}
    assert sum(r["channels_flipped"] for r in report.values()) > 0
    feeds = q.feeds(np.load(SAMPLES / "calib.npy")[:q.report["calibration_images"]])
    floats, measured = {}, {}
    batch = q.report["batch_size"]  # calibration's batches: float32 sums made as calibration made them
    for start in range(0, q.report["calibration_images"], batch):
        run_float(q.graph, {k: v[start:start + batch] for k, v in feeds.items()}, q.params,
                  observe=lambda layer, pre, _: floats.setdefault(layer.name, []).append(pre))
    floats = {name: np.concatenate(parts) for name, parts in floats.items()}

    def measure(layer, ql, xs):
        if layer.name in report:
            x = q.layers[layer.inputs[0]].out
            acc = accumulators(layer, ql, xs[0], x.zero_point)
            mean = acc.reshape(-1, acc.shape[-1]).mean(axis=0) + ql.bias.accumulator()
            measured[layer.name] = mean * x.scale * ql.weight_scale

    run_numeric(q.graph, q.layers, feeds, params=q.params, before=measure)
    for name, r in report.items():
        pre = floats[name].astype(np.float64)
        target = pre.mean(axis=(0, 2, 3)) if pre.ndim == 4 else pre.mean(axis=0)
        # the pre-activations of calibration's batches, means summed in another order: equal to 1e-12
        assert np.mean(np.abs(measured[name] - target)) == pytest.approx(r["mean_error_after"], rel=1e-6, abs=1e-12)
        # a flipped weight is one step from round to nearest, towards its float value, from near a tie
        layer, ql = q.graph[name], q.layers[name]
        weight = q.params.get(name, layer.params)["weight"]
        rtn, scale = quantize_weights(weight, layer.kind, layer.attrs.get("group", 1), ql.weight_bits, 1, None)
        np.testing.assert_array_equal(scale, ql.weight_scale)
        taps = to_groups(rtn, layer).shape[-1]
        diff = (to_groups(ql.weights, layer).astype(int) - to_groups(rtn, layer)).reshape(-1, taps)
        frac = (to_groups(weight, layer).reshape(-1, taps) / scale[:, None]) - to_groups(rtn, layer).reshape(-1, taps)
        assert set(np.unique(diff)) <= {-1, 0, 1} and np.count_nonzero(diff, axis=1).max() <= 1
        assert (diff != 0).sum() == r["channels_flipped"]
        assert np.all(np.abs(frac[diff != 0]) >= 3 / 8) and np.all(np.sign(frac[diff != 0]) == diff[diff != 0])


def test_bias_correction_and_equalization_help_the_digits_model(calib):
    plain = quantized("model_optimization_flavor(optimization_level=0)\n"
                      "pre_quantization_optimization(equalization, policy=disabled)\n")
    tuned = quantized("quantization_param([{conv*}, {dw*}, fc1], bias_mode=double_scale_initialization)\n")
    native = plain.infer(calib, target="native").output
    assert snr_db(native, tuned.infer(calib).output) > snr_db(native, plain.infer(calib).output)
