"""Calibration: streaming statistics, the data checks of Hailo's FAQ, normalization."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alls
from alls.progress import Progress
from alls.runtime.exec.calibration import BINS, TensorStats, calibrate, check_data, normalize, to_nchw
from alls.runtime.exec.native import run_float
from test_importer import DIGITS


@pytest.fixture(scope="module")
def digits():
    return alls.load_model(DIGITS)


@pytest.fixture(scope="module")
def images():
    return np.load(DIGITS.parent / "calib.npy")  # (64, 8, 8, 1), NHWC


# ------------------------------------------------------------- statistics


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 1000), st.integers(1, 6))
def test_streamed_percentiles_match_numpy_within_a_bin(seed, scale, batches):
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal(500).astype(np.float32) * scale * (b + 1) for b in range(batches)]
    stats = TensorStats()
    for part in parts:
        stats.update(part)
    values = np.concatenate(parts)
    assert (stats.min, stats.max, stats.count) == (values.min(), values.max(), values.size)
    width = max(stats.halves[1][1], stats.halves[-1][1])
    ordered = np.sort(values)
    for q in (0.0, 0.01, 1, 25, 50, 75, 99, 99.99, 100):
        rank = q / 100 * values.size  # the value lies between the order statistics around this rank, up to a bin
        lo, hi = ordered[max(int(np.floor(rank)) - 1, 0)], ordered[min(int(np.ceil(rank)), values.size - 1)]
        assert lo - width * 1.001 <= stats.percentile(q) <= hi + width * 1.001


class NumpyStats:
    """TensorStats written with NumPy array operations: the reference for its Numba kernels."""

    def __init__(self, channels=None):
        self.min, self.max, self.count, self.zeros = np.inf, -np.inf, 0, 0
        self.halves = {1: [np.zeros(BINS, np.int64), 0.0], -1: [np.zeros(BINS, np.int64), 0.0]}
        self.channel_min = np.full(channels, np.inf, np.float32) if channels else None
        self.channel_max = np.full(channels, -np.inf, np.float32) if channels else None

    def update(self, x):
        if self.channel_min is not None and x.ndim >= 2 and x.shape[1] == self.channel_min.size:
            axes = tuple(i for i in range(x.ndim) if i != 1)
            np.minimum(self.channel_min, x.min(axis=axes), out=self.channel_min)
            np.maximum(self.channel_max, x.max(axis=axes), out=self.channel_max)
        flat = x.ravel()
        self.min, self.max = min(self.min, float(flat.min())), max(self.max, float(flat.max()))
        self.count += flat.size
        self.zeros += int(np.count_nonzero(flat == 0))
        for sign, magnitudes in ((1, flat[flat > 0]), (-1, -flat[flat < 0])):
            if magnitudes.size:
                half = self.halves[sign]
                top = float(magnitudes.max())
                if half[1] == 0.0:
                    half[1] = top / BINS * (1 + 1e-6)
                while top >= half[1] * BINS:
                    half[0] = np.concatenate([half[0].reshape(-1, 2).sum(axis=1), np.zeros(BINS // 2, np.int64)])
                    half[1] *= 2
                half[0] += np.bincount(np.minimum((magnitudes / half[1]).astype(np.int64), BINS - 1), minlength=BINS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, channels", [((3, 5, 7, 4), 5), ((6, 9), 9), ((4, 5, 6), None), ((11,), 3)])
def test_the_numba_statistics_equal_numpys_bin_for_bin(dtype, shape, channels):
    rng = np.random.default_rng(0)
    ours, ref = TensorStats(channels), NumpyStats(channels)
    for step, scale in enumerate((0.01, 1.0, 1.0, 300.0, 1e5)):  # the range widens: bins merge
        x = (rng.standard_normal(shape) * scale).astype(dtype)
        x.reshape(-1)[:: 3 + step] = 0
        if step == 2:
            x = np.abs(x)  # a batch without negatives
        ours.update(x)
        ref.update(x)
    for sign in (1, -1):
        np.testing.assert_array_equal(ours.halves[sign][0], ref.halves[sign][0])
        assert ours.halves[sign][1] == ref.halves[sign][1]
    assert (ours.min, ours.max, ours.count, ours.zeros) == (ref.min, ref.max, ref.count, ref.zeros)
    if channels and len(shape) >= 2 and shape[1] == channels:
        np.testing.assert_array_equal(ours.channel_min, ref.channel_min)
        np.testing.assert_array_equal(ours.channel_max, ref.channel_max)


def scanned_extremes(x, channel_min, channel_max, per_channel):
    """`kernels.stats.extremes` as a scan in order, value by value: the reference for its vectorized rows."""
    low, high, zeros, nans, top_pos, top_neg = np.inf, -np.inf, 0, 0, 0.0, 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            lo, hi = (channel_min[j], channel_max[j]) if per_channel else (np.inf, -np.inf)
            for v in x[i, j]:
                lo, hi = (v if v < lo else lo), (v if v > hi else hi)
                top_pos, top_neg = max(top_pos, v) if v > 0 else top_pos, max(top_neg, -v) if v < 0 else top_neg
                zeros, nans = zeros + (v == 0), nans + (v != v)
            if per_channel:
                channel_min[j], channel_max[j] = lo, hi
            low, high = (lo if lo < low else low), (hi if hi > high else high)
    return low, high, zeros, top_pos, top_neg, nans


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_channel", [True, False])
def test_the_extremes_are_a_scan_in_order_signed_zeros_and_nans_included(dtype, per_channel):
    from alls.runtime.kernels.stats import extremes

    rng = np.random.default_rng(1)
    cases = [rng.standard_normal((2, 3, 37)), np.abs(rng.standard_normal((2, 3, 37))), np.zeros((1, 2, 0))]
    signed = rng.choice(np.array([0.0, -0.0, 1.5, -2.5]), (3, 4, 40), p=[0.4, 0.4, 0.1, 0.1])
    signed[0, 0], signed[0, 1], signed[1, 1, :20] = 0.0, -0.0, np.inf  # zeros of one sign; a row of infinities
    mixed = rng.choice(np.array([0.0, -0.0]), (2, 3, 41))  # zeros of both signs: the first is the extreme
    cases += [signed, np.where(signed > 0, np.nan, signed), np.full((1, 2, 5), -0.0), mixed,
              np.where(rng.random(mixed.shape) < 0.3, 3.0, mixed), np.where(rng.random(mixed.shape) < 0.3, -3.0, mixed)]
    for x in cases:
        x = np.ascontiguousarray(x, dtype)
        c = x.shape[1]
        ours = [rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)]
        ours[0][0], ours[1][0] = -0.0, 0.0  # a channel's earlier extremes, a zero first
        theirs = [ours[0].copy(), ours[1].copy()]
        got, want = extremes(x, *ours, per_channel), scanned_extremes(x, *theirs, per_channel)
        assert np.array(got).tobytes() == np.array(want).tobytes(), (got, want)  # the signs of zeros too
        assert ours[0].tobytes() == theirs[0].tobytes() and ours[1].tobytes() == theirs[1].tobytes()


def test_the_histogram_keeps_its_size_however_wide_the_values_grow():
    stats = TensorStats(channels=3)
    for exponent in range(12):
        stats.update(np.full((2, 3, 4, 4), 10.0 ** exponent, np.float32) * np.arange(1, 4).reshape(1, 3, 1, 1))
    assert all(half[0].size == BINS for half in stats.halves.values())
    assert stats.halves[1][0].sum() == stats.count
    np.testing.assert_allclose(stats.channel_max, [1e11, 2e11, 3e11], rtol=1e-6)
    assert stats.channel_min.tolist() == [1.0, 2.0, 3.0]


def test_zeros_and_one_signed_tensors():
    stats = TensorStats()
    stats.update(np.array([0, 0, 0, 1, 2, 3], np.float32))
    assert stats.percentile(0) == 0 and stats.percentile(100) == 3
    assert stats.percentile(40) == 0.0


def test_calibrate_sees_every_layer_and_table_activations_before_and_after(digits, images):
    data = to_nchw(images, digits.inputs[0], "nhwc")
    stats = calibrate(digits, {digits.inputs[0].name: data}, batch_size=8, calib_num_batch=4, progress=False)
    assert stats.images == 32 and set(stats.layers) == {layer.name for layer in digits}
    _, taps = run_float(digits, data[:32], taps="all")
    for name, tensor in taps.items():
        assert stats[name].output.min == tensor.min() and stats[name].output.max == tensor.max()
    assert stats["digits_cnn/conv1"].before is None  # relu folds into the clamp
    assert stats["digits_cnn/conv1"].output.channel_max.shape == (16,)


def test_normalization_from_the_script_applies_on_the_way_in(digits, images):
    plan = alls.resolve("normalization([8.0], [4.0])\n", digits)
    data = to_nchw(images, digits.inputs[0], "nhwc")
    normalized = normalize(data, plan, digits.inputs[0].name)
    np.testing.assert_allclose(normalized, (data - 8) / 4, rtol=1e-6)
    stats = calibrate(digits, {digits.inputs[0].name: data}, 8, 1, plan=plan, progress=False)
    assert stats["digits_cnn/input_layer1"].output.max == pytest.approx((data[:8].max() - 8) / 4)


# ------------------------------------------------------------------- errors


def code(excinfo) -> str:
    return excinfo.value.diagnostics[0].code


def test_too_few_images_is_the_faq_out_of_range_error(images):
    with pytest.raises(alls.AllsError) as excinfo:
        check_data(images.astype(np.float32), 8 * 16)
    assert code(excinfo) == "ALS501" and "128 images but was given 64" in str(excinfo.value)


def test_nan_inf_and_constant_data_are_refused(images):
    bad = images.astype(np.float32).copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(alls.AllsError) as excinfo:
        check_data(bad, 8)
    assert code(excinfo) == "ALS503" and "1 of the 8" in str(excinfo.value)
    with pytest.raises(alls.AllsError) as excinfo:
        check_data(np.zeros((8, 8, 8, 1), np.float32), 8)
    assert code(excinfo) == "ALS504"


def test_wrong_shape_layout_and_dtype_are_named(digits, images):
    layer = digits.inputs[0]
    with pytest.raises(alls.AllsError) as excinfo:
        to_nchw(images.transpose(0, 3, 1, 2), layer, "nhwc")
    assert code(excinfo) == "ALS505" and 'layout="nchw"' in excinfo.value.diagnostics[0].help
    with pytest.raises(alls.AllsError) as excinfo:
        to_nchw(np.zeros((4, 16, 16, 1)), layer, "nhwc")
    assert code(excinfo) == "ALS505" and "(N, 8, 8, 1) in nhwc" in str(excinfo.value)
    with pytest.raises(alls.AllsError) as excinfo:
        to_nchw(np.array([["a"]]), layer, "nhwc")
    assert code(excinfo) == "ALS505" and "dtype" in str(excinfo.value)
    with pytest.raises(alls.AllsError):
        to_nchw(images, layer, "chw")
    assert to_nchw(images[0], layer, "nhwc").shape == (1, 1, 8, 8)  # one image is a batch of one


def test_progress_writes_unless_turned_off():
    stream = io.StringIO()
    bar = Progress("calibration", 4, enabled=True, stream=stream)
    for _ in range(4):
        bar.step()
    bar.close()
    assert "4/4" in stream.getvalue() and stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    Progress("calibration", 4, enabled=False, stream=quiet).step()
    assert quiet.getvalue() == ""
