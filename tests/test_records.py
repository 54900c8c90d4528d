"""Reports as dataclasses: read by attribute, one JSON form each (the keys and order the dicts had)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from alls.plan import BiasMode, LossType
from alls.runtime import Evaluation, Figures, QuantizeReport, Runner, evaluate, load
from alls.runtime.algorithms.finetune import Trained
from alls.runtime.algorithms.ibc import Corrected
from alls.runtime.analysis.metrics import compare

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "digits"
OLD_FIGURE_KEYS = ["cosine", "snr_db", "max_abs_error", "range", "top1_agreement", "native_accuracy",
                   "numeric_accuracy"]
OLD_CORRECTED_KEYS = ["layer", "channels", "mean_error_before", "mean_error_after", "removed", "channels_flipped",
                      "channels_lost", "bias_step", "bias_mode"]
OLD_REPORT_KEYS = ["calibration_images", "batch_size", "calib_num_batch", "equalization", "bias_correction",
                   "finetune", "adaround", "warnings"]


@pytest.fixture(scope="module")
def qmodel():
    runner = Runner(SAMPLES / "digits_cnn.onnx")
    runner.load_script("post_quantization_optimization(bias_correction, policy=enabled)\n")
    return runner.quantize(np.load(SAMPLES / "calib.npy"), progress=False)


def test_figures_leave_out_what_was_not_measured():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((20, 10))
    full = compare(scores, scores + 0.01, rng.integers(0, 10, 20))
    assert isinstance(full, Figures) and list(full.as_dict()) == OLD_FIGURE_KEYS
    assert full.cosine == full["cosine"] and full.top1_agreement == 1.0
    maps = compare(scores.reshape(20, 10, 1, 1), scores.reshape(20, 10, 1, 1))
    assert list(maps.as_dict()) == OLD_FIGURE_KEYS[:4] and maps.top1_agreement is None
    assert "top1_agreement" not in maps and maps.get("native_accuracy", "-") == "-"
    with pytest.raises(KeyError):
        maps["top1_agreement"]


def test_evaluate_returns_an_evaluation_whose_json_is_the_old_dict(qmodel):
    x, y = np.load(SAMPLES / "test_x.npy")[:32], np.load(SAMPLES / "test_y.npy")[:32]
    result = evaluate(qmodel, x, y, progress=False)
    assert isinstance(result, Evaluation) and result.images == 32
    figures = result.outputs["digits_cnn/output_layer1"]
    assert 0.9 < figures.cosine <= 1.0 and figures.numeric_accuracy is not None
    doc = json.loads(json.dumps(result.as_dict()))
    assert list(doc) == ["images", "outputs"] and list(doc["outputs"]["digits_cnn/output_layer1"]) == OLD_FIGURE_KEYS
    assert doc["outputs"]["digits_cnn/output_layer1"]["snr_db"] == figures.snr_db


def test_the_quantize_report_is_read_by_attribute_and_saved_as_before(qmodel, tmp_path):
    report = qmodel.report
    assert isinstance(report, QuantizeReport) and report.calibration_images == 64
    assert report.batch_size * report.calib_num_batch == 64 and report.bias_correction
    assert report["bias_correction"] is report.bias_correction and list(report.as_dict()) == OLD_REPORT_KEYS
    first = report.bias_correction[0]
    assert isinstance(first, Corrected) and first.bias_mode is BiasMode.SINGLE and first["removed"] == first.removed
    assert list(first.as_dict()) == OLD_CORRECTED_KEYS
    qmodel.save(tmp_path / "q.npz")
    again = load(tmp_path / "q.npz").report
    assert json.dumps(again.as_dict()) == json.dumps(report.as_dict())
    assert isinstance(again.bias_correction[0], Corrected) and again.bias_correction[0].bias_mode is BiasMode.SINGLE


def test_a_report_an_older_file_lacks_takes_its_defaults():
    empty = QuantizeReport.from_dict({})
    assert empty.calibration_images == 0 and empty.finetune == [] and QuantizeReport.from_dict(empty) is empty
    partial = QuantizeReport.from_dict({"calibration_images": 8, "unknown": 1})
    assert partial.calibration_images == 8 and "unknown" not in partial
    old = {"layer": "n/conv1", "algorithm": "adaround", "images": 8, "rows": 64, "steps": 10, "loss": "l2rel",
           "loss_before": 1.0, "loss_after": 0.5, "kept": True, "flipped": 0.1, "seconds": 1.0}
    trained = QuantizeReport.from_dict({"adaround": [old]}).adaround[0]
    assert isinstance(trained, Trained) and trained.loss is LossType.L2REL and trained.heldout_images == 0
