"""The float executor's depthwise conv (alls.runtime.kernels.floatdw) against a slow NumPy reference
that adds the same float32 terms in the documented order (so the two agree bit for bit), over the
geometries its index arithmetic branches on: strides 1, 2 and 3 (the stride-1 flat form below
`FLAT_BELOW` columns, the row form above it, the stride-2 vectors), dilations, asymmetric pads, 3x3,
5x5 and other kernels, rows that do and do not fill the kernel's blocks of vectors, and the
activations applied in the store. The same bits for any batch and thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

floatdw = pytest.importorskip("alls.runtime.kernels.floatdw")

from alls.plan import Activation  # noqa: E402
from alls.runtime.ops.activation import ACTIVATIONS  # noqa: E402

ACTS = {floatdw.NONE: None, floatdw.RELU: Activation.RELU, floatdw.RELU6: Activation.RELU6,
        floatdw.HARDSWISH: Activation.HARDSWISH}


def out_hw(h, w, kernel, strides, dilations, pads):
    (kh, kw), (sh, sw), (dh, dw), (top, left, bottom, right) = kernel, strides, dilations, pads
    return (h + top + bottom - (kh - 1) * dh - 1) // sh + 1, (w + left + right - (kw - 1) * dw - 1) // sw + 1


def reference(x, weight, bias, strides, dilations, pads, act):
    """The definition in float32 steps: from zero, each tap's product added (rows, then columns), the
    bias, then the activation as `ACTIVATIONS` computes it."""
    n, c, h, w = x.shape
    _, kh, kw = weight.shape
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    ho, wo = out_hw(h, w, (kh, kw), strides, dilations, pads)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    out = np.zeros((n, c, ho, wo), np.float32)
    for a in range(kh):
        for b in range(kw):
            view = xp[:, :, a * dh:a * dh + (ho - 1) * sh + 1:sh, b * dw:b * dw + (wo - 1) * sw + 1:sw]
            out = out + view * weight[:, a, b][None, :, None, None]
    out = out + bias[None, :, None, None]
    name = ACTS[act]
    return out if name is None else ACTIVATIONS[name](out).astype(np.float32)


def case(rng, n, c, h, w, kernel, scale=1.0):
    x = (rng.standard_normal((n, c, h, w)) * scale).astype(np.float32)
    weight = rng.standard_normal((c, *kernel)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    return x, weight, bias


geometries = st.tuples(
    st.integers(1, 3), st.integers(1, 5),  # N, C
    st.integers(1, 14), st.integers(1, 80),  # H, W (past FLAT_BELOW and several blocks of 32)
    st.sampled_from([(3, 3), (5, 5), (1, 1), (3, 5), (7, 2), (2, 3)]),
    st.sampled_from([(1, 1), (2, 2), (2, 1), (1, 2), (3, 3)]),
    st.sampled_from([(1, 1), (2, 2), (1, 3)]),
    st.tuples(*[st.integers(0, 3)] * 4),
    st.sampled_from(sorted(ACTS)),
)


@settings(max_examples=150, deadline=None)
@given(geometries, st.integers(0, 2**32 - 1))
def test_depthwise_equals_the_float32_reference_bit_for_bit(geometry, seed):
    n, c, h, w, kernel, strides, dilations, pads, act = geometry
    ho, wo = out_hw(h, w, kernel, strides, dilations, pads)
    if ho < 1 or wo < 1:
        return
    x, weight, bias = case(np.random.default_rng(seed), n, c, h, w, kernel, scale=4.0)
    got = floatdw.depthwise(x, weight, bias, strides, dilations, pads, (ho, wo), act, threads=1)
    want = reference(x, weight, bias, strides, dilations, pads, act)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


# (N, C, H, W), kernel, strides, dilations, pads: the network shapes' forms (CenterFace, PP-LCNet)
SHAPES = [
    ((3, 6, 40, 40), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((3, 6, 80, 80), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    ((3, 6, 70, 90), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # the row form
    ((2, 5, 6, 96), (5, 5), (2, 1), (1, 1), (2, 2, 2, 2)),
    ((2, 7, 10, 10), (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),  # no pads: the input read in place
]
# Small stride-1 planes as wide as their input: read in place through masked loads (`_masked`)
IN_PLACE = [
    ((8, 16, 8, 8), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # the digits CNN's dw: a row a vector
    ((3, 5, 5, 7), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # 35 outputs: a last vector past the plane
    ((2, 3, 4, 4), (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),  # taps past the plane on every side
    ((2, 4, 6, 6), (3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),  # dilated
    ((2, 3, 7, 5), (3, 3), (1, 1), (1, 1), (2, 1, 0, 1)),  # asymmetric rows: Ho = H, offsets shifted
    ((2, 3, 6, 5), (2, 3), (1, 1), (1, 1), (0, 1, 2, 1)),  # Ho = H + 1: rows past the input
    ((5, 2, 1, 1), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # 1x1 planes: every tap but one in the padding
    ((2, 3, 16, 16), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # MASKED_UP_TO outputs
    ((9, 17, 2, 3), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),  # a 1x1 kernel on planes of 6
]
SHAPES += IN_PLACE


@pytest.mark.parametrize("geometry", IN_PLACE, ids=str)
def test_small_same_planes_are_read_in_place(geometry):
    shape, kernel, strides, dilations, pads = geometry
    ho, wo = out_hw(*shape[2:], kernel, strides, dilations, pads)
    assert floatdw._in_place(*shape[2:], ho, wo, *kernel, strides, *dilations, *pads[:2]) is not None
    wide = out_hw(16, 17, kernel, strides, dilations, pads)  # past MASKED_UP_TO: the padded form
    assert floatdw._in_place(16, 17, *wide, *kernel, strides, *dilations, *pads[:2]) is None


def test_the_in_place_form_multiplies_the_padding_as_the_padded_form():
    """A tap in the padding is a zero times its weight, added: an infinite or NaN weight gives NaN there,
    as the padded form and the definition give it."""
    x = np.ones((2, 1, 4, 4), np.float32)
    weight = np.ones((1, 3, 3), np.float32)
    weight[0, 0, 0] = np.inf
    got = floatdw.depthwise(x, weight, np.zeros(1, np.float32), (1, 1), (1, 1), (1, 1, 1, 1), (4, 4), threads=1)
    with np.errstate(invalid="ignore"):
        want = reference(x, weight, np.zeros(1, np.float32), (1, 1), (1, 1), (1, 1, 1, 1), floatdw.NONE)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:, 0, 0, :]).all() and np.isinf(got[:, 0, 1:, 1:]).all()


@pytest.mark.parametrize("geometry", SHAPES, ids=str)
@pytest.mark.parametrize("act", sorted(ACTS))
def test_depthwise_gives_the_same_bits_for_any_batch_and_thread_count(geometry, act):
    shape, kernel, strides, dilations, pads = geometry
    x, weight, bias = case(np.random.default_rng(7), *shape, kernel)
    hw = out_hw(*shape[2:], kernel, strides, dilations, pads)
    whole = floatdw.depthwise(x, weight, bias, strides, dilations, pads, hw, act, threads=1)
    np.testing.assert_array_equal(whole, reference(x, weight, bias, strides, dilations, pads, act))
    np.testing.assert_array_equal(floatdw.depthwise(x, weight, bias, strides, dilations, pads, hw, act, threads=4),
                                  whole)
    for i in range(len(x)):
        one = floatdw.depthwise(x[i:i + 1], weight, bias, strides, dilations, pads, hw, act, threads=1)
        np.testing.assert_array_equal(one[0], whole[i])


def test_depthwise_sums_each_output_in_the_documented_order():
    """((0 + x0·w0) + x1·w1) + ... + bias, each product added in float32: with terms whose float32 sum
    depends on the order, the result is the sequential one."""
    def run(values, bias):
        x = np.array(values, np.float32).reshape(1, 1, 1, len(values))
        weight = np.ones((1, 1, len(values)), np.float32)
        return floatdw.depthwise(x, weight, np.array([bias], np.float32), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1),
                                 threads=1)[0, 0, 0, 0]

    assert run([1e8, -1e8, 1.0], 0.0) == 1.0  # (1e8 - 1e8) + 1; the other way round, (1 - 1e8) + 1e8 = 0
    assert run([-1e8, 1.0, 1e8], 0.0) == 0.0  # (-1e8 + 1) + 1e8: the 1 is lost first
    assert run([1e8, -1e8, 0.0], 1.0) == 1.0  # the bias last; first, (1 + 1e8) - 1e8 = 0


def test_the_activations_keep_nan_and_clamp_as_numpy_does():
    x = np.array([np.nan, -3.0, -0.5, 0.0, 2.0, 7.0, np.inf, -np.inf], np.float32).reshape(1, 1, 1, 8)
    weight, bias = np.ones((1, 1, 1), np.float32), np.zeros(1, np.float32)
    for act, name in ACTS.items():
        got = floatdw.depthwise(x, weight, bias, (1, 1), (1, 1), (0, 0, 0, 0), (1, 8), act, threads=1)
        with np.errstate(invalid="ignore"):
            want = x if name is None else ACTIVATIONS[name](x + np.float32(0)).astype(np.float32)
        np.testing.assert_array_equal(got, want)
