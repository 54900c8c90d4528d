"""The layer analysis: both views, the advice rules, the figures, the page and `alls analyze`."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import alls
from alls.cli import main
from alls.runtime.analysis.analyze import analyze
from alls.runtime.analysis.metrics import snr_db
from alls.runtime.exec.partial import compute_layers, run_partial
from alls.runtime.analysis.report import figures, summary, write_report
from alls.runtime.session.runner import Runner
from test_importer import DIGITS

SAMPLES = DIGITS.parent
PLAIN = ("model_optimization_flavor(optimization_level=0)\n"
         "pre_quantization_optimization(equalization, policy=disabled)\n"
         "model_optimization_config(calibration, batch_size=8, calibset_size=64)\n")


@pytest.fixture(scope="module")
def digits():
    runner = Runner(DIGITS)
    runner.load_script(SAMPLES / "digits.alls")
    qmodel = runner.quantize(np.load(SAMPLES / "calib.npy"), progress=False)
    images = np.load(SAMPLES / "test_x.npy")[:64]
    return qmodel, images, analyze(qmodel, images, worst=3, isolation_images=8, progress=False)


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory, digits):
    folder = tmp_path_factory.mktemp("digits")
    digits[0].save(folder / "q.npz")
    np.save(folder / "x.npy", digits[1])
    return folder


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


# ------------------------------------------------------------------- views


def test_the_table_has_every_compute_layer_sorted_by_harm(digits):
    qmodel, _, analysis = digits
    assert {r.name for r in analysis.layers} == {l.name for l in compute_layers(qmodel.graph)}
    assert len(analysis.layers) == 7
    harm = [r.alone_snr_db for r in analysis.layers]
    assert harm == sorted(harm)
    for row in analysis.layers:
        assert math.isfinite(row.alone_snr_db) and math.isfinite(row.at_layer.snr_db)
        assert row.alone_output == "digits_cnn/output_layer1" and row.alone_mean_snr_db == row.alone_snr_db
        assert 0.99 < row.at_layer.cosine <= 1 and row.at_layer.mse >= 0 and row.at_layer.max_abs_error > 0
    assert analysis.worst == tuple(r.name for r in analysis.layers[:3])


def test_nothing_quantized_is_native_and_everything_quantized_is_numeric(digits):
    qmodel, images, _ = digits
    feeds = qmodel.feeds(images)
    native = qmodel.run(images, target="native").outputs
    numeric = qmodel.run(images).outputs
    none = run_partial(qmodel, feeds, set())
    every = run_partial(qmodel, feeds, {l.name for l in compute_layers(qmodel.graph)})
    for name in native:
        assert snr_db(native[name], none[name]) > 100  # float rounding only: equalization is exact
        np.testing.assert_array_equal(every[name], numeric[name])


def test_the_two_views_meet_at_the_output(digits):
    """fc1 feeds the output: everything quantized at fc1 is the output's numeric error."""
    _, _, analysis = digits
    fc1 = next(r for r in analysis.layers if short(r.name) == "fc1")
    output = analysis.outputs["digits_cnn/output_layer1"]
    assert fc1.at_layer.snr_db == pytest.approx(output.snr_db, abs=0.01)
    assert all(r.alone_snr_db > output.snr_db for r in analysis.layers)  # one layer alone loses less than all


def test_keeping_the_worst_layers_in_float_recovers_the_output(digits):
    _, _, analysis = digits
    rec = analysis.recovery
    name = "digits_cnn/output_layer1"
    assert rec.recovered[name].snr_db > rec.numeric[name].snr_db + 3
    assert rec.recovered[name].relative_error < rec.numeric[name].relative_error
    assert rec.removed(name) > 0.5
    assert rec.numeric[name].snr_db == analysis.outputs[name].snr_db
    assert [d.code for d in analysis.diagnostics] == ["ALS513"]  # recovered: no ALS514


def test_json_form_is_strict_json(digits):
    doc = json.loads(json.dumps(digits[2].as_dict(), allow_nan=False))
    assert doc["network"] == "digits_cnn" and doc["images"] == 64 and doc["isolation_images"] == 8
    assert [row["layer"] for row in doc["layers"]] == [r.name for r in digits[2].layers]
    assert doc["diagnostics"][0]["code"] == "ALS513"


# -------------------------------------------------------------- the advice


def _model(nodes, inits, inputs, outputs):
    graph = helper.make_graph(nodes, "made",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _conv(x, name, y, weight, bias):
    return helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [y]), {f"{name}_w": weight, f"{name}_b": bias}


def _uniform(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def _analyzed(model, images, script=""):
    runner = Runner(model)
    runner.load_script(PLAIN + script)
    qmodel = runner.quantize(images, progress=False)
    return qmodel, analyze(qmodel, images, worst=1, progress=False)


def _advice(analysis, layer: str) -> dict[str, tuple[str, ...]]:
    return {a.key: a.lines for a in analysis.advice if short(a.layer) == layer}


def _spread_model():
    """conv1 (4 channels, one 100x wider than the others) -> relu -> conv2 (the same spread) -> output."""
    spread = np.array([1, 0.01, 0.01, 0.01], np.float32)
    c1, i1 = _conv("x", "c1", "h", spread.reshape(4, 1, 1, 1), np.zeros(4))
    c2, i2 = _conv("r", "c2", "y", np.diag(spread).reshape(4, 4, 1, 1), np.zeros(4))
    return _model([c1, helper.make_node("Relu", ["h"], ["r"]), c2], {**i1, **i2}, [("x", ("N", 1, 8, 8))], ["y"])


def test_spread_channels_are_equalized_or_written_at_16_bits():
    qmodel, analysis = _analyzed(_spread_model(), _uniform((64, 8, 8, 1)))
    assert _advice(analysis, "conv1")["equalize_channels"] == (
        "pre_quantization_optimization(equalization, layers=[conv1, conv2], policy=enabled)",)
    assert _advice(analysis, "conv2")["equalize_channels"] == ("quantization_param(conv2, precision_mode=a8_w8_a16)",)
    first, second = (next(a for a in analysis.advice if a.key == "equalize_channels" and short(a.layer) == name)
                     for name in ("conv1", "conv2"))
    assert "spans 1.0% of the range of its widest (channel 0)" in first.reason
    assert second.figures["median_to_widest"] == pytest.approx(1e-4, rel=0.05)
    assert "read by output_layer1" in second.reason
    _lines_resolve(qmodel, analysis)


def _even_model():
    """conv1 (4 channels of equal weights) -> relu -> conv2 (the same) -> output."""
    c1, i1 = _conv("x", "c1", "h", np.full((4, 1, 1, 1), 0.5, np.float32), np.zeros(4))
    c2, i2 = _conv("r", "c2", "y", np.full((4, 4, 1, 1), 0.25, np.float32), np.zeros(4))
    return _model([c1, helper.make_node("Relu", ["h"], ["r"]), c2], {**i1, **i2}, [("x", ("N", 1, 8, 8))], ["y"])


def test_4_bit_weights_ask_for_finetune_and_weights_clipping():
    qmodel, analysis = _analyzed(_even_model(), _uniform((64, 8, 8, 1)),
                                 "quantization_param(conv1, precision_mode=a8_w4)\n")
    assert str(qmodel.plan["conv1"].weights_clipping) == "mmse"  # 4-bit weights are clipped by default
    assert _advice(analysis, "conv1")["finetune_4bit"] == ("post_quantization_optimization(finetune, policy=enabled)",)
    qmodel, analysis = _analyzed(_even_model(), _uniform((64, 8, 8, 1)),
                                 "quantization_param(conv1, precision_mode=a8_w4)\n"
                                 "pre_quantization_optimization(weights_clipping, layers=[conv1], mode=disabled)\n")
    assert _advice(analysis, "conv1")["finetune_4bit"] == (
        "post_quantization_optimization(finetune, policy=enabled)",
        "pre_quantization_optimization(weights_clipping, layers=[conv1], mode=mmse)")
    assert "finetune_4bit" not in _advice(analysis, "conv2")
    _lines_resolve(qmodel, analysis)


def test_4_bit_weights_that_round_whole_channels_to_zero_ask_for_8_bits():
    """A depthwise layer has one 4-bit weight scale (quantization groups are for convs), set by its 4 wide
    channels (1.0, 7 levels a side; too many for the MSE clipping to cut): the 4 narrow ones (0.02, as where
    a folded batch norm scales a few channels far above the rest) all round to 0, so it writes a constant on
    half of its channels; the tool says so and keeps it at 8 bits."""
    spread = np.array([1, 1, 1, 1, 0.02, 0.02, 0.02, 0.02], np.float32)
    dw = helper.make_node("Conv", ["x", "dw_w", "dw_b"], ["h"], group=8)
    c2, i2 = _conv("r", "c2", "y", np.ones((1, 8, 1, 1), np.float32), np.zeros(1))
    model = _model([dw, helper.make_node("Relu", ["h"], ["r"]), c2],
                   {"dw_w": spread.reshape(8, 1, 1, 1), "dw_b": np.zeros(8), **i2}, [("x", ("N", 8, 8, 8))], ["y"])
    qmodel, analysis = _analyzed(model, _uniform((64, 8, 8, 8)), "quantization_param(dw1, precision_mode=a8_w4)\n")
    assert str(qmodel.plan["dw1"].weights_clipping) == "mmse" and qmodel.plan["dw1"].quantization_groups == 1
    codes = qmodel.layers[next(n for n in qmodel.layers if short(n) == "dw1")].weights
    assert [bool(c.any()) for c in codes] == [True] * 4 + [False] * 4
    assert _advice(analysis, "dw1")["finetune_4bit"] == (
        "post_quantization_optimization(finetune, policy=enabled)", "quantization_param(dw1, precision_mode=a8_w8)")
    advice = next(a for a in analysis.advice if a.key == "finetune_4bit")
    assert "rounds every weight of 4 of its 8 output channels to 0" in advice.reason
    assert advice.figures["zeroed_channels"] == 4 and advice.figures["channels"] == 8
    _lines_resolve(qmodel, analysis)
    # finetuned, it is still said: no algorithm brings the channels back
    qmodel, analysis = _analyzed(model, _uniform((64, 8, 8, 8)),
                                 "quantization_param(dw1, precision_mode=a8_w4)\n"
                                 "post_quantization_optimization(finetune, policy=enabled, epochs=1, dataset_size=64)\n")
    assert _advice(analysis, "dw1")["finetune_4bit"] == ("quantization_param(dw1, precision_mode=a8_w8)",)


def test_rare_outliers_ask_for_activation_clipping():
    """conv1 passes one huge value in 16,384 on to a sigmoid, which saturates it anyway."""
    c1, i1 = _conv("x", "c1", "h", np.ones((1, 1, 1, 1)), np.zeros(1))
    c2, i2 = _conv("h", "c2", "z", np.ones((1, 1, 1, 1)), np.full(1, -0.5))
    model = _model([c1, c2, helper.make_node("Sigmoid", ["z"], ["y"])], {**i1, **i2}, [("x", ("N", 1, 16, 16))], ["y"])
    images = _uniform((64, 16, 16, 1))
    images[5, 3, 4, 0] = 100.0
    qmodel, analysis = _analyzed(model, images)
    (advice,) = [a for a in analysis.advice if a.key == "clip_activations"]
    assert advice.layer == "made/conv1" and advice.figures["range_ratio"] < 0.05 and advice.figures["gain_db"] > 10
    assert advice.lines == ("pre_quantization_optimization(activation_clipping, layers=[conv1], mode=percentile, "
                            "clipping_values=[0.01, 99.99])",)
    assert ", 100]; with only this tensor quantized, clipping it at percentiles 0.01 and 99.99" in advice.reason
    _lines_resolve(qmodel, analysis)


def test_an_output_of_logits_asks_for_its_sigmoid_and_a_rounded_output_for_16_bits():
    """convA averages 16 channels (its output rounding dominates); convB makes logits, mostly below -3.9."""
    a, ia = _conv("x", "ca", "mean", np.full((1, 16, 1, 1), 1 / 16), np.zeros(1))
    b, ib = _conv("x", "cb", "logit", np.full((1, 16, 1, 1), 14 / 16), np.full(1, -12.0))
    model = _model([a, b], {**ia, **ib}, [("x", ("N", 16, 8, 8))], ["mean", "logit"])
    qmodel, analysis = _analyzed(model, _uniform((64, 8, 8, 16)))
    assert _advice(analysis, "conv1")["output_16bit"] == ("quantization_param(output_layer1, precision_mode=a16_w16)",)
    assert _advice(analysis, "conv2")["sigmoid_output"] == ("change_output_activation(conv2, sigmoid)",)
    assert "sigmoid_output" not in _advice(analysis, "conv1")
    _lines_resolve(qmodel, analysis)


def test_a_systematic_error_per_channel_asks_for_bias_correction():
    """Three constant channels at 0.25 on a 100-wide range: each rounds to the same wrong code."""
    conv, inits = _conv("x", "c1", "y", np.array([100, 0, 0, 0]).reshape(4, 1, 1, 1), np.array([0, .25, .25, .25]))
    qmodel, analysis = _analyzed(_model([conv], inits, [("x", ("N", 1, 8, 8))], ["y"]), _uniform((64, 8, 8, 1)))
    advice = next(a for a in analysis.advice if a.key == "bias_correction")
    assert advice.lines == ("post_quantization_optimization(bias_correction, policy=enabled)",)
    assert advice.figures["bias_share"] > 0.5 and advice.figures["channel"] in (1, 2, 3)
    _lines_resolve(qmodel, analysis)


def test_values_beyond_the_calibrated_range_ask_for_a_range_and_the_range_helps(digits):
    """The shipped digits model, calibrated on 64 images: on the test images the logits and the pooled
    features pass the calibrated ranges, and the clamp is most of those layers' error."""
    qmodel, images, _ = digits
    x = np.load(SAMPLES / "test_x.npy")
    analysis = analyze(qmodel, x, worst=1, isolation_images=1, progress=False)
    ranged = {short(a.layer): a for a in analysis.advice if a.key == "calibration_range"}
    assert {"fc1", "avgpool1"} <= set(ranged)
    for advice in ranged.values():
        assert advice.figures["beyond"] >= 1e-4 and advice.figures["saturation_share"] >= 0.25
        (line,) = advice.lines
        assert line.startswith(f"quantization_param({short(advice.layer)}, force_range_out=[")
    _lines_resolve(qmodel, analysis)
    runner = Runner(DIGITS)
    runner.load_script((SAMPLES / "digits.alls").read_text() + "".join(a.lines[0] + "\n" for a in ranged.values()))
    forced = runner.quantize(np.load(SAMPLES / "calib.npy"), progress=False)
    native = qmodel.run(x, target="native").output
    assert snr_db(native, forced.run(x).output) > snr_db(native, qmodel.run(x).output) + 3


def _lines_resolve(qmodel, analysis) -> None:
    for advice in analysis.advice:
        for line in advice.lines:
            errors = [d for d in alls.resolve(alls.parse(line), qmodel.graph).diagnostics if d.is_error]
            assert not errors, (line, errors)


def test_bad_settings_and_data_are_named_errors(digits):
    qmodel, images, _ = digits
    for kwargs, code in (({"worst": 0}, "ALS512"), ({"isolation_images": 0}, "ALS512")):
        with pytest.raises(alls.AllsError) as excinfo:
            analyze(qmodel, images, **kwargs)
        assert excinfo.value.diagnostics[0].code == code
    for data, code in ((images[:0], "ALS512"), (images.transpose(0, 3, 1, 2), "ALS505"),
                       (np.full_like(images, np.nan), "ALS503")):
        with pytest.raises(alls.AllsError) as excinfo:
            analyze(qmodel, data)
        assert excinfo.value.diagnostics[0].code == code


# ----------------------------------------------------------- figures, page


def decode_png(data: bytes) -> np.ndarray:
    """The pixels of a PNG (RGB or RGBA), read by matplotlib, after checking its signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import io

    import matplotlib.pyplot as plt

    return (plt.imread(io.BytesIO(data), format="png")[..., :3] * 255).astype(np.uint8)


def needs_matplotlib():
    pytest.importorskip("matplotlib", reason="the report's figures need matplotlib (pip install 'alls[report]')")


def test_without_matplotlib_the_report_is_refused_before_the_work(monkeypatch, tmp_path):
    import sys

    from alls.runtime.analysis.report import prepare_folder

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(alls.AllsError) as error:
        prepare_folder(tmp_path / "report")
    assert error.value.diagnostics[0].code == "ALS011" and "alls[report]" in error.value.diagnostics[0].help


def test_the_report_lists_only_the_rules_that_fired_and_explains_a_negative_recovery(digits, tmp_path):
    import dataclasses

    needs_matplotlib()
    from alls.runtime.analysis.rules import ADVICE
    from alls.runtime.analysis.report import NEGATIVE_RECOVERY, render_html

    _, _, analysis = digits
    page = render_html(analysis, [])
    fired = {a.key for a in analysis.advice}
    assert all((f"<code>{k}</code>:" in page) == (k in fired) for k in ADVICE)
    assert NEGATIVE_RECOVERY not in page
    rec = analysis.recovery
    worse = dataclasses.replace(rec, recovered={o: dataclasses.replace(a, mse=2 * rec.numeric[o].mse)
                                                for o, a in rec.recovered.items()})
    bad = dataclasses.replace(analysis, recovery=worse)
    assert NEGATIVE_RECOVERY in render_html(bad, []) and "-100%" in render_html(bad, [])
    assert NEGATIVE_RECOVERY in summary(bad)


def test_the_report_writes_valid_pngs_and_a_page_that_shows_them(digits, tmp_path):
    needs_matplotlib()
    _, _, analysis = digits
    written = write_report(analysis, tmp_path / "report")
    made = {f.file: f for f in figures(analysis)}
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pngs == sorted(made) and len(pngs) == 1 + 2 * 3 + 1 and "snr_by_layer.png" in pngs
    for name in pngs:
        pixels = decode_png((tmp_path / "report" / name).read_bytes())
        assert (pixels.shape[1], pixels.shape[0]) == made[name].size
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 3  # more than background and axes
    page = (tmp_path / "report" / "index.html").read_text()
    assert all(f'src="{name}"' in page for name in pngs)
    assert re.findall(r"<img [^>]*src=\"([^\"]+)\"", page) and page.count("<table>") >= 3
    table = page[page.index("Layers, by harm"):page.index("<h2>Advice")]
    assert [m for m in re.findall(r"<code>(\w+)</code>", table)] == [short(r.name) for r in analysis.layers]
    assert "x: quantized value" in page and "channel " in page  # axes and legends are text
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert {f["file"] for f in doc["figures"]} == set(made) and tmp_path / "report" / "index.html" in written
    assert doc["layers"][0]["beyond_encoding"] >= 0
    kept = ", ".join(short(n) for n in analysis.worst)
    assert f"recovery with {kept} in float: output_layer1 " in summary(analysis)


def test_figures_are_deterministic(digits):
    needs_matplotlib()
    qmodel, images, analysis = digits
    again = analyze(qmodel, images, worst=1, progress=False)
    first, second = figures(analysis)[1], figures(again)[1]
    assert first.file == second.file
    assert first.png == second.png


# --------------------------------------------------------------------- CLI


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_from_the_command_line(capsys, digits_file, tmp_path):
    needs_matplotlib()
    report = tmp_path / "report"
    code, out, err = run(capsys, "analyze", digits_file / "q.npz", "--data", digits_file / "x.npy", "--limit", 32,
                         "--worst", 2, "-o", report)
    assert code == 0, err
    assert out.startswith("analyzed `digits_cnn` on 32 images (each layer alone on the first 8)")
    assert "layers that harm the outputs most" in out and "recovery with" in out and "info[ALS513]" in out
    assert (report / "index.html").is_file() and len(list(report.glob("*.png"))) == 1 + 2 * 2 + 1
    code, out, _ = run(capsys, "analyze", digits_file / "q.npz", "--data", digits_file / "x.npy", "--limit", 16,
                       "-o", report, "--force", "--json")
    assert code == 0 and json.loads(out)["images"] == 16


def test_analyze_refuses_a_non_empty_folder(capsys, digits_file, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    code, _, err = run(capsys, "analyze", digits_file / "q.npz", "--data", digits_file / "x.npy", "-o", tmp_path)
    assert code == 2 and "error[ALS004]" in err and "--force" in err
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_analyze_bad_input_exits_2_with_a_code(capsys, digits_file, tmp_path):
    q, x = digits_file / "q.npz", digits_file / "x.npy"
    (tmp_path / "not.npz").write_bytes(b"not a zip")
    (tmp_path / "file").write_text("")
    np.save(tmp_path / "nchw.npy", np.load(x).transpose(0, 3, 1, 2))
    cases = [((tmp_path / "not.npz", "--data", x), "ALS007"), ((tmp_path / "none.npz", "--data", x), "ALS001"),
             ((q, "--data", tmp_path / "nchw.npy"), "ALS505"), ((q, "--data", x, "--worst", 0), "ALS512"),
             ((q, "--data", x, "--limit", 0), "ALS512")]
    for args, code_expected in cases:
        code, out, err = run(capsys, "analyze", *args, "-o", tmp_path / "out")
        assert code == 2 and f"error[{code_expected}]" in err and "Traceback" not in err, (args, err)
    code, _, err = run(capsys, "analyze", q, "--data", x, "-o", tmp_path / "file")
    assert code == 2 and "error[ALS005]" in err and "not a directory" in err
    assert not (tmp_path / "out").exists()
