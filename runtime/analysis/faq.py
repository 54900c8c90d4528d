"""The FAQ's silent causes of bad accuracy, as warnings: untrained weights and noise for calibration.

Hailo's guide lists random (untrained) weights and random calibration data among the causes of bad
accuracy (and of its "unsupported required slope" error); both quantize without complaint. The
checks here look at the statistics that tell them apart from a trained network and real images:

**Weights** (`untrained_weights`, ALS544). A layer's weights look like a random initialization
when none of these signs of training is present:
- heavy tails: the kurtosis of its weights is above `TRAINED_KURTOSIS`, or above what its number of
  Gaussian draws reaches by chance where that is higher (independent Gaussian draws give 3, uniform
  ones 1.8; training concentrates most weights near 0 and leaves a few large);
- structure across channels: the spread (coefficient of variation) of the output channels' norms
  is more than `TRAINED_SPREAD` times what independent draws of the same kurtosis give
  (``sqrt((kurtosis − 1) / fan_in) / 2``); trained channels differ in norm, random ones do not;
- spatial structure: horizontally adjacent kernel taps correlate above `TRAINED_CORRELATION`
  (kernels of width 2 or more; trained filters are smooth, random ones are not).
The warning names the layers when those that look random hold at least `UNTRAINED_SHARE` of the
network's weights. Separately, batch norms whose statistics are exactly at their initialization
(mean 0, variance 1, scale 1, shift 0: a model exported before training, or before its checkpoint
was loaded) are reported when they are at least `UNTRAINED_SHARE` of the model's batch norms.

**Calibration data** (`noise_like`, ALS545). Neighbouring pixels of real images correlate (0.5 on
the 8x8 digits, 0.98 on photographs); independent noise gives 0. An input whose median
correlation between horizontally and vertically adjacent values, over the first `NOISE_IMAGES`
images and their channels, is below `NOISE_CORRELATION` is reported, with the shape of its
histogram (flat, Gaussian or other). Inputs without two spatial axes are not checked.

The thresholds are calibrated so that the shipped digits sample and CenterFace (pretrained, on
photographs) are far from them, and the same networks with redrawn weights, or noise for
calibration, are reported (tests/test_hailo_faq.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from alls.diagnostics import Diagnostic, Severity
from alls.graph import WEIGHTED_KINDS, Graph

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = ["untrained_weights", "batch_norms_at_init", "noise_like", "weight_signs", "spatial_correlation",
           "TRAINED_KURTOSIS", "TRAINED_SPREAD", "TRAINED_CORRELATION", "UNTRAINED_SHARE", "NOISE_CORRELATION"]

TRAINED_KURTOSIS = 4.0
TRAINED_SPREAD = 2.0
TRAINED_CORRELATION = 0.3
UNTRAINED_SHARE = 0.75
NOISE_CORRELATION = 0.15
NOISE_IMAGES = 16

W = Severity.WARNING


class WeightSigns(TypedDict):
    """`weight_signs`' figures: a kurtosis, and the spread and correlation where they can be measured."""

    kurtosis: float
    spread: float | None
    correlation: float | None


def weight_signs(weight: np.ndarray) -> WeightSigns:
    """A layer's statistics: kurtosis, channel-norm spread over the random expectation, tap correlation."""
    w = np.asarray(weight, np.float64)
    flat = w.reshape(w.shape[0], -1)
    centred = flat.ravel() - flat.mean()
    power = float(np.mean(centred ** 2))
    kurtosis = float(np.mean(centred ** 4) / power ** 2) if power > 0 else 0.0
    norms = np.sqrt((flat ** 2).sum(axis=1))
    spread = None
    if flat.shape[0] >= 4 and norms.mean() > 0:
        expected = math.sqrt(max(kurtosis - 1.0, 0.1) / flat.shape[1]) / 2
        spread = float(norms.std() / norms.mean() / expected)
    correlation = None
    if w.ndim == 4 and w.shape[3] >= 2:
        a, b = w[..., :-1].ravel(), w[..., 1:].ravel()
        if a.std() > 0 and b.std() > 0:
            correlation = float(np.corrcoef(a, b)[0, 1])
    return {"kurtosis": kurtosis, "spread": spread, "correlation": correlation}


def _looks_trained(signs: WeightSigns, size: int) -> bool:
    """A sign of training: a kurtosis beyond what ``size`` Gaussian draws reach by chance (about 4 standard
    errors, at least `TRAINED_KURTOSIS`), channel norms spread apart, or correlated taps."""
    kurtosis_bound = max(TRAINED_KURTOSIS, 3.0 + 4.0 * math.sqrt(24.0 / size))
    return (signs["kurtosis"] > kurtosis_bound
            or (signs["spread"] is not None and signs["spread"] > TRAINED_SPREAD)
            or (signs["correlation"] is not None and signs["correlation"] > TRAINED_CORRELATION))


def untrained_weights(graph: Graph) -> list[Diagnostic]:
    """ALS544 when the layers whose weights look random hold most of the network's weights."""
    looked: list[tuple[str, int, WeightSigns]] = []
    for layer in graph:
        weight = layer.params.get("weight")
        if layer.kind in WEIGHTED_KINDS and weight is not None and weight.size:
            looked.append((layer.short_name, int(weight.size), weight_signs(weight)))
    total = sum(size for _, size, _ in looked)
    random = [(name, size, signs) for name, size, signs in looked if not _looks_trained(signs, size)]
    share = sum(size for _, size, _ in random) / total if total else 0.0
    if not random or share < UNTRAINED_SHARE:
        return []
    shown = ", ".join(f"`{name}` (kurtosis {s['kurtosis']:.2f}, channel spread {_fmt(s['spread'])}x random"
                      + (f", tap correlation {s['correlation']:.2f}" if s["correlation"] is not None else "") + ")"
                      for name, _, s in random[:3])
    more = f" and {len(random) - 3} more" if len(random) > 3 else ""
    return [Diagnostic("ALS544", W, f"the weights look untrained: {len(random)} of {len(looked)} weighted layers "
                       f"({100 * share:.0f}% of the weights) show no sign of training: {shown}{more}", None, "",
                       "export the model after loading its trained weights (`alls explain ALS544`)")]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def batch_norms_at_init(model: ModelProto) -> list[Diagnostic]:
    """ALS544 when most BatchNormalization nodes of an ONNX model hold their initial statistics."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    norms = [node for node in model.graph.node if node.op_type == "BatchNormalization"]
    at_init = []
    for node in norms:
        found = [constants.get(name) for name in node.input[1:5]]
        values = [v for v in found if v is not None]
        if len(values) < len(found):
            continue
        scale, shift, mean, var = (numpy_helper.to_array(v) for v in values)
        if np.all(scale == 1) and np.all(shift == 0) and np.all(mean == 0) and np.all(var == 1):
            at_init.append(node.name or node.output[0])
    if not norms or len(at_init) < UNTRAINED_SHARE * len(norms):
        return []
    names = ", ".join(f"`{name}`" for name in at_init[:3]) + (f" and {len(at_init) - 3} more" if len(at_init) > 3 else "")
    return [Diagnostic("ALS544", W, f"{len(at_init)} of {len(norms)} batch norms hold their initial statistics "
                       f"(mean 0, variance 1, scale 1, shift 0): {names}", None, "",
                       "export the model after training, with its checkpoint loaded (`alls explain ALS544`)")]


def spatial_correlation(images: np.ndarray) -> float | None:
    """The median correlation of adjacent values along the two spatial axes of NCHW ``images``."""
    x = np.asarray(images[:NOISE_IMAGES], np.float64)
    if x.ndim != 4 or x.shape[2] < 2 or x.shape[3] < 2:
        return None
    found = []
    for a, b in ((x[..., :, :-1], x[..., :, 1:]), (x[..., :-1, :], x[..., 1:, :])):
        a = a - a.mean(axis=(2, 3), keepdims=True)
        b = b - b.mean(axis=(2, 3), keepdims=True)
        den = np.sqrt((a * a).sum(axis=(2, 3)) * (b * b).sum(axis=(2, 3)))
        keep = den > 0
        found.append((a * b).sum(axis=(2, 3))[keep] / den[keep])
    values = np.concatenate(found)
    return float(np.median(values)) if values.size else None


def _histogram_shape(images: np.ndarray) -> str:
    x = np.asarray(images[:NOISE_IMAGES], np.float64).ravel()
    counts, _ = np.histogram(x, bins=32)
    p = counts[counts > 0] / counts.sum()
    flatness = float(-(p * np.log(p)).sum() / math.log(32))
    centred = x - x.mean()
    power = float(np.mean(centred ** 2))
    kurtosis = float(np.mean(centred ** 4) / power ** 2) if power > 0 else 0.0
    if flatness > 0.97:
        return "a flat histogram, as uniform noise has"
    if abs(kurtosis - 3.0) < 0.3:
        return f"a Gaussian histogram (kurtosis {kurtosis:.2f})"
    return "no spatial structure"


def noise_like(feeds: dict[str, np.ndarray]) -> list[Diagnostic]:
    """ALS545 for every spatial input whose calibration images ({name: NCHW}) look like noise."""
    found = []
    for name, images in feeds.items():
        correlation = spatial_correlation(images)
        if correlation is None or correlation >= NOISE_CORRELATION:
            continue
        found.append(Diagnostic(
            "ALS545", W, f"the calibration data of `{name.rsplit('/', 1)[-1]}` look like noise: adjacent values "
            f"correlate {correlation:.2f} (real images: 0.5 and above) and show {_histogram_shape(images)}", None, "",
            "calibrate on real images with the network's pre-processing (`alls explain ALS545`)"))
    return found
