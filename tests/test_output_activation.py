"""`change_output_activation` changes the network every target runs, as the script's normalization does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alls.diagnostics import AllsError
from alls.runtime import Runner, load

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
MODEL = SAMPLES / "digits_cnn.onnx"
BASE = "model_optimization_config(calibration, batch_size=8, calibset_size=16)\n"


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    return np.load(SAMPLES / "calib.npy")[:16], np.load(SAMPLES / "test_x.npy")[:32]


def _quantized(script: str, calib: np.ndarray) -> Runner:
    runner = Runner(MODEL, progress=False)
    runner.load_script(BASE + script)
    runner.quantize(calib)
    return runner


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def test_sigmoid_on_the_output_reaches_every_target(images, tmp_path):
    calib, data = images
    plain = _quantized("", calib)
    changed = _quantized("change_output_activation(fc1, sigmoid)\n", calib)
    logits = plain.infer(data, target="native").outputs["digits_cnn/output_layer1"]
    native = changed.infer(data, target="native").outputs["digits_cnn/output_layer1"]
    np.testing.assert_allclose(native, _sigmoid(logits), atol=1e-6)
    numeric = changed.infer(data, target="numeric").outputs["digits_cnn/output_layer1"]
    assert changed.quantized is not None
    assert changed.quantized.layers["digits_cnn/fc1"].out.scale == pytest.approx(1 / 255, rel=1e-3)  # about [0, 1] in 8 bits
    # The layers before fc1 are quantized alike, so the sigmoid of the plain model's integer logits is what the
    # table gives, within a few of its 8-bit steps (its 16-bit pre-activation has finer steps than those logits).
    plain_logits = plain.infer(data, target="numeric").outputs["digits_cnn/output_layer1"]
    assert np.abs(numeric - _sigmoid(plain_logits)).max() < 4 / 255
    assert changed.quantized is not None and changed.quantized.layers["digits_cnn/fc1"].table is not None
    assert plain.quantized is not None and plain.quantized.layers["digits_cnn/fc1"].table is None

    path = tmp_path / "q.npz"
    changed.save(path)
    again = load(path)
    for target in ("native", "numeric"):
        before = changed.infer(data, target=target).outputs["digits_cnn/output_layer1"]
        np.testing.assert_array_equal(again.run(data, target=target).outputs["digits_cnn/output_layer1"], before)


def test_linear_removes_a_fused_activation(images):
    calib, data = images
    runner = _quantized("change_output_activation(conv3, linear)\n", calib)
    taps = runner.infer(data[:4], target="native", taps=["conv3"]).taps["digits_cnn/conv3"]
    assert taps.min() < 0  # conv3's ReLU is gone
    assert runner.quantized is not None
    assert runner.quantized.graph["conv3"].activation is None
    assert Runner(MODEL, progress=False).graph["conv3"].activation is not None  # the imported graph is untouched


def test_before_quantize_the_native_target_runs_the_changed_network(images):
    _, data = images
    runner = Runner(MODEL, progress=False)
    logits = runner.infer(data[:4], target="native").outputs["digits_cnn/output_layer1"]
    runner.load_script("change_output_activation(sigmoid)\n")
    probabilities = runner.infer(data[:4], target="native").outputs["digits_cnn/output_layer1"]
    np.testing.assert_allclose(probabilities, _sigmoid(logits), atol=1e-6)


@pytest.mark.parametrize("statement", ["change_output_activation(avgpool1, sigmoid)",
                                       "change_output_activation(fc1, softmax)"])
def test_an_activation_the_emulation_cannot_fuse_is_als551(images, statement):
    runner = Runner(MODEL, progress=False)
    runner.load_script(BASE + statement + "\n")
    with pytest.raises(AllsError) as err:
        runner.quantize(images[0])
    assert err.value.diagnostics[0].code == "ALS551"
    assert statement.split("(", 1)[1].split(",")[0] in err.value.diagnostics[0].message
