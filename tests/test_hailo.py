"""The guide's own API (`alls.hailo`), each of its listings run; raw outputs; the taps command; its QFT."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

import alls
from alls.cli import main
from alls.hailo import (ClientRunner, SdkFPOptimized, SdkNative, SdkNumeric, SdkPartialNumeric, run_quantization,
                        run_quantization_from_np)
from alls.runtime.session.model import load
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
def quantized_runner(calib):
    runner = ClientRunner(model=str(DIGITS), hw_arch="hailo8")
    run_quantization_from_np(runner, calib, batch_size=8, calib_num_batch=8)
    return runner


def code(excinfo) -> str:
    return excinfo.value.diagnostics[0].code


def test_importing_alls_hailo_loads_neither_numba_nor_onnx():
    probe = "import sys, alls.hailo; print(sorted(m for m in ('numba', 'onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------ the listings


def test_listing_1_runner_creation(tmp_path, quantized_runner, test_x):
    """`ClientRunner(hn=...)` + `load_params('net.npz')`: here the ONNX model, and alls's quantized file."""
    with pytest.raises(alls.AllsError) as excinfo:
        ClientRunner(hn='{"name": "net", "layers": {}}')
    assert code(excinfo) == "ALS541" and "ONNX" in excinfo.value.diagnostics[0].help
    with pytest.raises(alls.AllsError) as excinfo:
        ClientRunner(model=str(DIGITS), hw_arch="hailo-8")
    assert code(excinfo) == "ALS542" and "hailo8" in excinfo.value.diagnostics[0].help
    runner = ClientRunner(hw_arch="hailo15h")
    with pytest.raises(alls.AllsError) as excinfo:
        _ = runner.all_layers_names
    assert code(excinfo) == "ALS506"
    graph = runner.translate_onnx_model(str(DIGITS), net_name="digits")
    assert runner.all_layers_names[1] == "digits/conv1" and graph.name == runner.model_name == "digits"
    quantized_runner.save_har(tmp_path / "net.npz")
    loaded = ClientRunner()
    loaded.load_params(tmp_path / "net.npz")
    np.testing.assert_array_equal(loaded.emulate(SdkNumeric(), test_x[:20])["digits_cnn/output_layer1"],
                                  quantized_runner.emulate(SdkNumeric(), test_x[:20])["digits_cnn/output_layer1"])
    (tmp_path / "net.har").write_bytes(b"not ours")
    with pytest.raises(alls.AllsError) as excinfo:
        ClientRunner(har=tmp_path / "net.har")
    assert code(excinfo) == "ALS541"


def test_listing_2_run_quantization_from_np_is_runner_quantize(calib, test_x, quantized_runner):
    qmodel = quantized_runner.quantized
    assert qmodel.report["calibration_images"] == 64 and qmodel.report["batch_size"] == 8
    plain = Runner(DIGITS)
    plain.quantize(calib, batch_size=8, calib_num_batch=8, progress=False)
    np.testing.assert_array_equal(quantized_runner.emulate(SdkNumeric(), test_x)["digits_cnn/output_layer1"],
                                  plain.infer(test_x).output)
    # the guide's flags, and its FAQ errors: OutOfRange, FT out of data
    runner = ClientRunner(model=str(DIGITS))
    runner.run_quantization_from_np(calib, batch_size=4, calib_num_batch=4, ibc=False, equalize=False)
    assert runner.quantized.report["calibration_images"] == 16 and not runner.quantized.report["bias_correction"]
    with pytest.raises(alls.AllsError) as excinfo:
        runner.run_quantization_from_np(calib, batch_size=16, calib_num_batch=8)
    assert code(excinfo) == "ALS501"
    with pytest.raises(alls.AllsError) as excinfo:
        runner.run_quantization_from_np(calib, finetune=True)  # 2048 images by default
    assert code(excinfo) == "ALS508"


def test_listings_3_5_and_6_quantization_scripts(tmp_path, calib):
    runner = ClientRunner(model=str(DIGITS))
    plan = runner.load_quantization_script("quantization_param({conv*}, bias_mode=double_scale_initialization)\n")
    assert {layer.name.rsplit("/", 1)[-1] for layer in plan if layer.bias_mode == "double_scale_initialization"} == {
        "conv1", "conv2", "conv3"}
    script = tmp_path / "quantization.alls"
    script.write_text("quantization_param({conv*}, precision_mode=a16_w16)\n")
    plan = runner.load_quantization_script(str(script))  # listing 6: a path
    assert plan["conv3"].weight_bits == 16 and plan["conv3"].output_bits == 16
    qmodel = runner.run_quantization_from_np(calib)
    assert qmodel.layers["digits_cnn/conv3"].out.bits == 16
    # or as a parameter of the quantization command
    qmodel = runner.run_quantization_from_np(calib, quantization_script="quantization_param(fc1, precision_mode=a16_w16)\n")
    assert qmodel.layers["digits_cnn/fc1"].out.bits == 16 and qmodel.layers["digits_cnn/conv3"].out.bits == 8


def test_listing_7_the_eval_function(quantized_runner, test_x):
    """The guide's eval(runner, target, images): one image at a time, as its TensorFlow session fed them."""
    def evaluate(runner, target, images):
        return [runner.emulate(target, np.expand_dims(img, axis=0)) for img in images]

    images = test_x[:12]
    for target in (SdkNative(), SdkNumeric()):  # the integer target exactly, the float one to float rounding
        one_by_one = np.concatenate([r["digits_cnn/output_layer1"] for r in evaluate(quantized_runner, target, images)])
        batched = quantized_runner.emulate(target, images)["digits_cnn/output_layer1"]
        tolerance = 0 if isinstance(target, SdkNumeric) else 1e-5
        np.testing.assert_allclose(one_by_one, batched, rtol=tolerance, atol=tolerance)
    session = ort.InferenceSession(str(DIGITS), providers=["CPUExecutionProvider"])
    reference = session.run(None, {session.get_inputs()[0].name: images.transpose(0, 3, 1, 2)})[0]
    native = quantized_runner.emulate(SdkNative(), images)["digits_cnn/output_layer1"]
    np.testing.assert_allclose(native, reference, rtol=1e-4, atol=1e-4)
    numeric = quantized_runner.emulate(SdkNumeric(), images)["digits_cnn/output_layer1"]
    assert (numeric.argmax(1) == native.argmax(1)).mean() >= 0.9


def test_listing_8_inter_layer_tensors(tmp_path, quantized_runner, test_x):
    g = quantized_runner.get_tf_graph(SdkNative())
    assert g.all_layers_names == quantized_runner.all_layers_names and g.output_names == ["digits_cnn/output_layer1"]
    output = g.run(np.expand_dims(test_x[0], axis=0), g.all_layers_names)
    assert set(output) == set(g.all_layers_names)
    expected = quantized_runner.quantized.run(test_x[:1], target="native", taps="all").taps
    for name, tensor in output.items():
        np.save(tmp_path / f"{name.rsplit('/', 1)[-1]}.npy", tensor)  # "save the results as an npy"
        np.testing.assert_array_equal(np.load(tmp_path / f"{name.rsplit('/', 1)[-1]}.npy"), expected[name])
    assert output["digits_cnn/conv1"].shape == (1, 8, 8, 16)


def test_the_four_targets(quantized_runner, test_x):
    qmodel = quantized_runner.quantized
    images = test_x[:30]
    for target, name in ((SdkNative(), "native"), (SdkFPOptimized(), "fp_optimized"), (SdkNumeric(), "numeric")):
        np.testing.assert_array_equal(quantized_runner.emulate(target, images)["digits_cnn/output_layer1"],
                                      qmodel.run(images, target=name).output)
    partial = SdkPartialNumeric(keep_native=["conv3", "fc1"])
    assert partial.keep_native == ("conv3", "fc1") and partial.target == "numeric"
    np.testing.assert_array_equal(quantized_runner.emulate(partial, images)["digits_cnn/output_layer1"],
                                  qmodel.run(images, keep_native=["conv3", "fc1"]).output)
    assert not np.array_equal(qmodel.run(images, keep_native=["conv3", "fc1"]).output, qmodel.run(images).output)
    with pytest.raises(alls.AllsError) as excinfo:
        quantized_runner.emulate("numeric", images)
    assert code(excinfo) == "ALS505"
    before = ClientRunner(model=str(DIGITS))
    np.testing.assert_array_equal(before.emulate(SdkNative(), images)["digits_cnn/output_layer1"],
                                  qmodel.run(images, target="native").output)
    with pytest.raises(alls.AllsError) as excinfo:
        before.emulate(SdkNumeric(), images)
    assert code(excinfo) == "ALS506"


def test_run_quantization_reads_an_iterable_of_batches_as_far_as_it_needs(calib, test_x):
    from_np = ClientRunner(model=str(DIGITS))
    from_np.run_quantization_from_np(calib, batch_size=8, calib_num_batch=4)
    read = []

    def batches():  # endless, as a repeating dataset is
        for start in itertools.cycle(range(0, 64, 8)):
            read.append(start)
            yield calib[start:start + 8], np.zeros(8)  # (images, labels) pairs

    runner = ClientRunner(model=str(DIGITS))
    run_quantization(runner, batches(), batch_size=8, calib_num_batch=4)
    assert len(read) == 4
    np.testing.assert_array_equal(runner.emulate(SdkNumeric(), test_x)["digits_cnn/output_layer1"],
                                  from_np.emulate(SdkNumeric(), test_x)["digits_cnn/output_layer1"])
    singles = ClientRunner(model=str(DIGITS))
    singles.run_quantization(iter(calib), batch_size=8, calib_num_batch=4)  # single (H, W, C) images
    np.testing.assert_array_equal(singles.emulate(SdkNumeric(), test_x)["digits_cnn/output_layer1"],
                                  from_np.emulate(SdkNumeric(), test_x)["digits_cnn/output_layer1"])
    for bad in ([], [calib[:8], calib[:8, :4]], ["images"], calib):
        with pytest.raises(alls.AllsError) as excinfo:
            runner.run_quantization(bad, batch_size=8, calib_num_batch=4)
        assert code(excinfo) == "ALS546"


def test_save_har_before_quantizing_is_refused(tmp_path):
    with pytest.raises(alls.AllsError) as excinfo:
        ClientRunner(model=str(DIGITS)).save_har(tmp_path / "q.npz")
    assert code(excinfo) == "ALS506" and not (tmp_path / "q.npz").exists()


def test_translate_onnx_model_cuts_at_nodes_and_the_cut_is_kept(tmp_path, calib, test_x):
    import onnx

    model = onnx.load(DIGITS)
    runner = ClientRunner()
    runner.translate_onnx_model(model, net_name="digits", net_input_shapes=(1, 1, 8, 8))
    assert runner.graph.inputs[0].output_shape == (1, 1, 8, 8)
    last_conv = [node.name or node.output[0] for node in model.graph.node if node.op_type == "Conv"][-1]
    runner.translate_onnx_model(model, net_name="digits", end_node_names=[last_conv])
    kinds = [layer.kind for layer in runner.graph]
    assert "fc" not in kinds and "avgpool" not in kinds and kinds.count("conv") == 3
    runner.run_quantization_from_np(calib)
    runner.save_har(tmp_path / "cut.npz")
    loaded = ClientRunner(har=tmp_path / "cut.npz")
    assert loaded.all_layers_names == runner.all_layers_names
    out = loaded.emulate(SdkNumeric(), test_x[:4])
    assert [value.shape for value in out.values()] == [(4, 4, 4, 32)]
    with pytest.raises(alls.AllsError) as excinfo:
        runner.translate_onnx_model(model, end_node_names=["no_such_node"])
    assert code(excinfo).startswith("ALS4") and "no_such_node" in str(excinfo.value)


# -------------------------------------------------------------- raw outputs


def test_raw_in_raw_out_is_the_quantized_path_bit_for_bit(test_x):
    from test_runtime import _every_kind_model

    model = _every_kind_model()
    images = np.random.default_rng(3).uniform(0, 1, (24, 16, 16, 3)).astype(np.float32)
    for script in ("", "quantization_param({*}, precision_mode=a16_w16)\n"):
        runner = Runner(model)
        if script:
            runner.load_script(script)
        qmodel = runner.quantize(images, batch_size=8, calib_num_batch=3, progress=False)
        floats = qmodel.run(images, taps="all")
        codes = {name: enc.quantize(images) for name, enc in qmodel.input_encodings.items()}
        raw = qmodel.run(codes[next(iter(codes))], raw=True, raw_out=True, taps="all")
        assert set(raw.encodings) == set(raw.outputs) | set(raw.taps)
        for name, values in [*raw.outputs.items(), *raw.taps.items()]:
            encoding = raw.encodings[name]
            assert values.dtype == encoding.dtype and encoding == qmodel.layers[name].out
            expected = floats.outputs[name] if name in floats.outputs else floats.taps[name]
            np.testing.assert_array_equal(encoding.dequantize(values), expected)
        np.testing.assert_array_equal(qmodel.run(images, raw_out=True).outputs["every/output_layer1"],
                                      raw.outputs["every/output_layer1"])
        assert max(e.bits for e in raw.encodings.values()) == (16 if script else 8)
        with pytest.raises(alls.AllsError) as excinfo:
            qmodel.run(images, target="native", raw_out=True)
        assert code(excinfo) == "ALS543"


def test_emulate_returns_codes_as_a_device_stream_does(quantized_runner, test_x):
    codes = quantized_runner.emulate(SdkNumeric(), test_x[:10], raw_out=True)["digits_cnn/output_layer1"]
    encoding = quantized_runner.quantized.output_encodings["digits_cnn/output_layer1"]
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(encoding.dequantize(codes),
                                  quantized_runner.emulate(SdkNumeric(), test_x[:10])["digits_cnn/output_layer1"])
    with pytest.raises(alls.AllsError) as excinfo:
        quantized_runner.emulate(SdkNative(), test_x[:10], raw_out=True)
    assert code(excinfo) == "ALS543"


# ---------------------------------------------------------------- alls taps


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_taps_command_writes_one_npy_per_layer_and_target(capsys, tmp_path, quantized_runner, test_x):
    q, data = tmp_path / "q.npz", tmp_path / "x.npy"
    quantized_runner.save_har(q)
    np.save(data, test_x[:40])
    out_dir = tmp_path / "taps"
    rc, out, err = run(capsys, "taps", q, "--data", data, "--layers", "{conv*}", "--target", "native", "--target",
                       "numeric", "-o", out_dir)
    assert rc == 0, err
    assert "wrote 6 tensors (3 layers x native, numeric) on 40 images" in out
    index = json.loads((out_dir / "index.json").read_text())
    assert index["images"] == 40 and index["network"] == "digits_cnn"
    assert [(e["layer"], e["target"]) for e in index["taps"]] == [
        (f"digits_cnn/{layer}", target) for target in ("native", "numeric") for layer in ("conv1", "conv2", "conv3")]
    qmodel = load(q)
    for entry in index["taps"]:
        array = np.load(out_dir / entry["file"])
        assert list(array.shape) == entry["shape"] and str(array.dtype) == entry["dtype"]
        np.testing.assert_array_equal(array, qmodel.run(test_x[:40], target=entry["target"], taps=[entry["layer"]])
                                      .taps[entry["layer"]])
    # nothing is overwritten unasked
    before = (out_dir / "numeric" / "conv1.npy").read_bytes()
    rc, out, err = run(capsys, "taps", q, "--data", data, "--layers", "conv1", "--raw", "-o", out_dir)
    assert rc == 2 and "ALS004" in err and "--force" in err
    assert (out_dir / "numeric" / "conv1.npy").read_bytes() == before
    rc, out, err = run(capsys, "taps", q, "--data", data, "--layers", "[conv1, fc1]", "--raw", "-o", out_dir, "--force")
    assert rc == 0, err
    index = json.loads((out_dir / "index.json").read_text())
    conv1 = next(e for e in index["taps"] if e["layer"] == "digits_cnn/conv1")
    assert conv1["dtype"] == "uint8" and conv1["encoding"]["bits"] == 8
    codes = np.load(out_dir / conv1["file"])
    encoding = qmodel.layers["digits_cnn/conv1"].out
    np.testing.assert_array_equal(encoding.dequantize(codes), qmodel.run(test_x[:40], taps=["conv1"]).taps["digits_cnn/conv1"])


def test_the_taps_command_refuses_bad_input(capsys, monkeypatch, tmp_path, quantized_runner, test_x):
    q, data = tmp_path / "q.npz", tmp_path / "x.npy"
    quantized_runner.save_har(q)
    np.save(data, test_x[:4])
    (tmp_path / "file").write_text("keep me")
    cases = [(("--layers", "{cnv*}"), "ALS201"), (("--layers", "conv1("), "ALS201"),
             (("-o", tmp_path / "file"), "ALS005"), (("-o", tmp_path / "no" / "out"), "ALS002"),
             (("--limit", "0"), "ALS512")]
    for extra, expected in cases:
        argv = ["taps", q, "--data", data, "-o", tmp_path / "out", *extra]
        rc, out, err = run(capsys, *argv)
        assert rc == 2 and f"error[{expected}]" in err, (extra, err)
    assert (tmp_path / "file").read_text() == "keep me"
    rc, out, err = run(capsys, "taps", tmp_path / "none.npz", "--data", data, "-o", tmp_path / "out")
    assert rc == 2 and "ALS001" in err
    monkeypatch.setattr("alls.runtime.session.runner.available_memory", lambda: 1 << 10)
    rc, out, err = run(capsys, "taps", q, "--data", data, "-o", tmp_path / "out")
    assert rc == 2 and "error[ALS507]" in err and "--layers" in err and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the QFT


def test_qft_includes_bias_correction_in_the_plan():
    plan = alls.resolve("post_quantization_optimization(finetune, policy=enabled)\n", DIGITS)
    conv1 = plan["conv1"]
    assert conv1.finetune and not conv1.bias_correction
    assert conv1.source("bias_correction").where() == "line 1 (finetune includes bias correction)"
    assert "bias correction: off; inside finetune on 5 layers" in alls.tables.plan_table(plan)
    both = alls.resolve("post_quantization_optimization(finetune, policy=enabled)\n"
                        "post_quantization_optimization(bias_correction, policy=enabled)\n", DIGITS)
    assert both["conv1"].finetune and both["conv1"].bias_correction  # a statement asking for both gets both
    frozen = alls.resolve("post_quantization_optimization(finetune, policy=enabled, layers_to_freeze=[conv1])\n", DIGITS)
    assert frozen["conv1"].bias_correction and not frozen["conv2"].bias_correction
    assert not alls.resolve("", DIGITS)["conv1"].finetune and alls.resolve("", DIGITS)["conv1"].bias_correction


def test_qft_removes_the_mean_channel_error_as_bias_correction_does(calib, test_x):
    """Finetune alone (no separate IBC: a statement turns it off, else the runner corrects the finetuned
    layers before training) leaves a mean channel error at each layer far below round to nearest's."""
    def mean_error(script):
        runner = Runner(DIGITS)
        runner.load_script(script)
        qmodel = runner.quantize(calib, progress=False)
        names = ["conv1", "dw1", "conv2", "conv3", "fc1"]
        numeric = qmodel.run(test_x[:200], taps=names).taps
        floats = qmodel.run(test_x[:200], target="fp_optimized", taps=names).taps
        errors = []
        for name in numeric:
            error = numeric[name] - floats[name]
            errors.append(np.abs(error.mean(axis=tuple(range(error.ndim - 1)))).mean() / np.abs(floats[name]).mean())
        return float(np.mean(errors)), qmodel.report

    nearest, _ = mean_error("post_quantization_optimization(bias_correction, policy=disabled)\n")
    qft, report = mean_error("post_quantization_optimization(bias_correction, policy=disabled)\n"
                             "post_quantization_optimization(finetune, policy=enabled, dataset_size=64, epochs=8)\n")
    assert not report["bias_correction"] and len(report["finetune"]) == 5
    assert qft < 0.6 * nearest, (qft, nearest)
