"""Numerics that cannot loop: non-finite activations stop calibration with ALS520, data beyond
float16's range are refused (ALS521), integer images are converted; eval refuses no images
(ALS522), `--limit` below 1 (ALS512), bad counts (ALS523), NaN images (ALS503) and labels that are
not class indices (ALS524)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from hostile import assert_refused, conv_weight, model, run_isolated, snapshot
from onnx import helper, save

import alls
from alls.runtime import Runner
from alls.runtime.exec.calibration import NonFinite, TensorStats

SCRIPT = "model_optimization_config(calibration, batch_size=4, calibset_size=8)\n"


def _proto(weight=None):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    return model(nodes, {"w": conv_weight() if weight is None else weight})


def _images(n=8, scale=1.0, dtype=np.float32):
    return (np.random.default_rng(1).uniform(0, 1, (n, 8, 8, 3)) * scale).astype(dtype)


def _runner(weight=None):
    runner = Runner(_proto(weight))
    runner.load_script(SCRIPT)
    return runner


def _code(call) -> str:
    with pytest.raises(alls.AllsError) as error:
        call()
    return error.value.diagnostics[0].code


@pytest.fixture(scope="module")
def qmodel():
    return _runner().quantize(_images(), progress=False)


# ------------------------------------------------------------ calibration


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_histogram_refuses_non_finite_values_instead_of_looping(value):
    stats = TensorStats(3)
    x = np.ones((2, 3, 4, 4), np.float32)
    x[1, 2, 3, 3] = value
    with pytest.raises(NonFinite):
        stats.update(x)


def test_overflowing_activations_stop_calibration_with_als520(tmp_path):
    program = textwrap.dedent("""
        import numpy as np, alls
        from hostile import conv_weight, model
        from onnx import helper
        from alls.runtime import Runner
        w = conv_weight() * 1e37
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
        runner = Runner(model(nodes, {"w": w}))
        runner.load_script("model_optimization_config(calibration, batch_size=4, calibset_size=8)")
        x = np.random.default_rng(1).uniform(0, 255, (8, 8, 8, 3)).astype(np.float32)
        try:
            runner.quantize(x, progress=False)
        except alls.AllsError as error:
            print([d.code for d in error.diagnostics], error.diagnostics[0].message)
    """)
    import hostile

    outcome = run_isolated([f"import sys; sys.path.insert(0, {str(hostile.ROOT / 'tests')!r})\n" + program],
                           tmp_path, timeout=240, python=True)
    assert not outcome.timed_out and outcome.returncode == 0, outcome.text[-3000:]
    assert "['ALS520']" in outcome.stdout and "`conv1`" in outcome.stdout


@pytest.mark.parametrize("value", [3e38, -1e5])
def test_data_beyond_float16_are_refused(value):
    x = _images()
    x[3, 0, 0, 0] = value
    assert _code(lambda: _runner().quantize(x, progress=False)) == "ALS521"


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16, np.uint8])
def test_integer_images_are_converted(dtype, qmodel):
    x = _images(scale=255, dtype=dtype)
    q = _runner().quantize(x, progress=False)
    np.testing.assert_array_equal(q.run(x).output, q.run(x.astype(np.float32)).output)


@pytest.mark.parametrize("name, value", [("batch_size", -4), ("batch_size", 0), ("calib_num_batch", -1)])
def test_counts_below_one_are_als523(name, value):
    assert _code(lambda: _runner().quantize(_images(), progress=False, **{name: value})) == "ALS523"


def test_counts_of_the_wrong_type_are_type_errors():
    with pytest.raises(TypeError, match="batch_size must be an int"):
        _runner().quantize(_images(), batch_size=2.5, progress=False)


# ------------------------------------------------------------------- eval


def test_run_on_zero_images_is_als522(qmodel):
    assert _code(lambda: qmodel.run(_images(0))) == "ALS522"


def test_run_on_nan_images_is_als503(qmodel):
    x = _images(2)
    x[0, 0, 0, 0] = np.nan
    assert _code(lambda: qmodel.run(x)) == "ALS503"


def test_run_with_a_negative_batch_is_als523(qmodel):
    assert _code(lambda: qmodel.run(_images(2), batch_size=-1)) == "ALS523"


@pytest.mark.parametrize("labels", [np.array([0.5, 1.0]), np.array([0, 9]), np.eye(2), np.array([0, 1, 2])])
def test_labels_that_are_not_class_indices_are_als524(labels):
    from alls.runtime.analysis.metrics import compare

    scores = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    assert _code(lambda: compare(scores, scores, labels)) == "ALS524"
    assert compare(scores, scores, np.array([1.0, 3.0]))["native_accuracy"] in (0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, qmodel):
    path = tmp_path_factory.mktemp("eval")
    qmodel.save(path / "q.npz")
    np.save(path / "x.npy", _images(4))
    np.save(path / "none.npy", _images(0))
    nan = _images(4)
    nan[1, 2, 3, 0] = np.nan
    np.save(path / "nan.npy", nan)
    return path


@pytest.mark.parametrize("args, code", [
    (["--data", "none.npy"], "ALS522"),
    (["--data", "x.npy", "--limit", "-1"], "ALS512"),
    (["--data", "x.npy", "--limit", "0"], "ALS512"),
    (["--data", "nan.npy"], "ALS503"),
])
def test_cli_eval_refuses_what_it_cannot_measure(folder, args, code, capsys):
    from alls.cli import main

    status = main(["eval", str(folder / "q.npz"), *[str(folder / a) if a.endswith(".npy") else a for a in args]])
    out, err = capsys.readouterr()
    assert status == 2 and f"error[{code}]" in err and "Traceback" not in out + err


def test_cli_quantize_with_a_negative_batch_size_is_coded(tmp_path):
    save(_proto(), tmp_path / "m.onnx")
    np.save(tmp_path / "calib.npy", _images())
    before = snapshot(tmp_path)
    outcome = run_isolated(["quantize", "m.onnx", "--calib", "calib.npy", "--batch-size", "-4", "-o", "q.npz"],
                           tmp_path, timeout=240)
    assert_refused(outcome, {"ALS523"})
    assert snapshot(tmp_path) == before
