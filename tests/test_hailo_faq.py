"""The FAQ's silent causes of bad accuracy: untrained weights (ALS544) and noise for calibration (ALS545).

Each check runs on trained networks with real images (the digits sample, CenterFace on photographs),
which must not trigger it, and on the same networks with redrawn weights or noise, which must.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import alls
from alls.cli import main
from alls.runtime.analysis.faq import batch_norms_at_init, noise_like, spatial_correlation, untrained_weights
from alls.runtime.session.runner import Runner
from test_importer import DIGITS

SAMPLES = DIGITS.parent


def _redrawn(model: onnx.ModelProto, how: str, seed: int = 0) -> onnx.ModelProto:
    """The model with every Conv and Gemm weight redrawn as an initializer draws it, and its batch norms at init."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    rng = np.random.default_rng(seed)
    weights = {node.input[1] for node in model.graph.node if node.op_type in ("Conv", "ConvTranspose", "Gemm")}
    norms = {node.input[i]: value for node in model.graph.node if node.op_type == "BatchNormalization"
             for i, value in ((1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0))}
    for index, tensor in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if tensor.name in weights and how != "batch_norms_only":
            fan_in = int(np.prod(array.shape[1:]))
            if how == "normal":  # He initialization
                array = rng.normal(0, np.sqrt(2 / fan_in), array.shape)
            else:  # PyTorch's default: Kaiming uniform with a = sqrt(5)
                array = rng.uniform(-1, 1, array.shape) / np.sqrt(fan_in)
        elif tensor.name in norms:
            array = np.full(array.shape, norms[tensor.name])
        model.graph.initializer[index].CopyFrom(numpy_helper.from_array(array.astype(np.float32), tensor.name))
    return model


def _codes(diagnostics) -> list[str]:
    return [d.code for d in diagnostics]


@pytest.fixture(scope="module")
def calib():
    return np.load(SAMPLES / "calib.npy")


def test_the_trained_digits_sample_quantizes_without_either_warning(calib):
    runner = Runner(DIGITS)
    runner.quantize(calib, progress=False)
    assert not {"ALS544", "ALS545"} & set(_codes(runner.warnings))
    assert spatial_correlation(calib.transpose(0, 3, 1, 2)) > 0.4


@pytest.mark.parametrize("how", ["normal", "uniform"])
def test_untrained_digits_weights_are_reported(calib, how):
    runner = Runner(_redrawn(onnx.load(DIGITS), how))
    runner.quantize(calib, progress=False)
    found = [d for d in runner.warnings if d.code == "ALS544"]
    assert len(found) == 2  # the weights, and the batch norms at init
    assert "5 of 5 weighted layers" in found[0].message and "`conv1`" in found[0].message
    assert "2 of 2 batch norms hold their initial statistics" in found[1].message


def test_batch_norms_at_init_alone_are_reported():
    model = _redrawn(onnx.load(DIGITS), "batch_norms_only")
    assert untrained_weights(alls.load_model(model)) == []  # the convs' own weights are trained
    assert _codes(batch_norms_at_init(model)) == ["ALS544"]
    assert batch_norms_at_init(onnx.load(DIGITS)) == []


@pytest.mark.parametrize("kind, shape", [("uniform", "flat histogram"), ("normal", "Gaussian histogram")])
def test_noise_for_calibration_is_reported(capsys, tmp_path, calib, kind, shape):
    rng = np.random.default_rng(5)
    noise = (rng.random(calib.shape) if kind == "uniform" else rng.normal(0.5, 0.2, calib.shape)).astype(np.float32)
    runner = Runner(DIGITS)
    runner.quantize(noise, progress=False)
    found = [d for d in runner.warnings if d.code == "ALS545"]
    assert len(found) == 1 and shape in found[0].message and "`input_layer1`" in found[0].message
    # the command line shows it, and still quantizes
    np.save(tmp_path / "noise.npy", noise)
    rc = main(["quantize", str(DIGITS), "--calib", str(tmp_path / "noise.npy"), "-o", str(tmp_path / "q.npz")])
    out = capsys.readouterr().out
    assert rc == 0 and "warning[ALS545]" in out and (tmp_path / "q.npz").exists()


def test_inputs_without_two_spatial_axes_are_not_judged():
    assert spatial_correlation(np.random.default_rng(0).random((8, 10)).astype(np.float32)) is None
    assert noise_like({"net/input_layer1": np.random.default_rng(0).random((8, 10))}) == []


def test_centerface_and_photographs_trigger_neither_and_its_redrawn_weights_and_noise_do():
    import datasets
    import models

    try:
        path, scenes = models.centerface(), datasets.face_scenes(16, seed=0)
    except (models.Unavailable, datasets.Unavailable) as exc:
        pytest.skip(str(exc))
    model = onnx.load(path)
    assert untrained_weights(alls.load_model(model, (1, 3, 320, 320))) == []
    assert batch_norms_at_init(model) == []
    assert noise_like({"centerface/input_layer1": scenes.transpose(0, 3, 1, 2)}) == []
    assert spatial_correlation(scenes.transpose(0, 3, 1, 2)) > 0.9
    for how in ("normal", "uniform"):
        found = untrained_weights(alls.load_model(_redrawn(model, how), (1, 3, 320, 320)))
        assert _codes(found) == ["ALS544"] and "63 of 63 weighted layers" in found[0].message
    noise = np.random.default_rng(1).uniform(0, 255, (16, 3, 320, 320)).astype(np.float32)
    assert _codes(noise_like({"centerface/input_layer1": noise})) == ["ALS545"]


def test_each_code_is_explained():
    for code in ("ALS541", "ALS542", "ALS543", "ALS544", "ALS545", "ALS546"):
        text = alls.explain(code)
        assert "What:" in text and "Fix:" in text
    assert "unsupported required slope" in alls.explain("ALS544")
