"""The float executor's direct conv (alls.runtime.kernels.floatconv) against a float64 reference
and the im2col GEMM it replaces, over the geometries its index arithmetic branches on: strides
(stride phases), dilations, asymmetric pads, a kernel as large as the padded plane, channel counts
that do not fill the last block of ``ROWS``, rows whose positions do and do not fill the last
block of ``LANES``, outputs stored in place (Wq = Wo) and through scratch. The same bits for any
batch and thread count."""

from __future__ import annotations

import numpy as np
import pytest

floatconv = pytest.importorskip("alls.runtime.kernels.floatconv")

RNG = np.random.default_rng(20261127)

# (N, C, H, W), (C_out, KH, KW), strides, dilations, pads (top, left, bottom, right)
GEOMETRIES = [
    ((2, 3, 11, 13), (5, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((2, 4, 17, 9), (13, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    ((1, 5, 12, 12), (7, 3, 5), (2, 3), (1, 1), (1, 2, 0, 1)),
    ((2, 4, 11, 13), (6, 3, 3), (1, 1), (2, 3), (2, 3, 2, 3)),
    ((1, 2, 9, 10), (4, 2, 3), (3, 2), (2, 1), (0, 0, 3, 3)),
    ((1, 3, 5, 6), (8, 7, 8), (1, 1), (1, 1), (1, 1, 1, 1)),  # the kernel covers the padded plane
    ((2, 6, 16, 16), (12, 1, 1), (2, 2), (1, 1), (0, 0, 0, 0)),  # Wq = Wo: stored in place
    ((1, 8, 8, 32), (6, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),  # in place, whole blocks only
    ((2, 16, 20, 20), (24, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((1, 3, 40, 40), (16, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
]


def reference(x, weight, bias, strides, dilations, pads):
    """The conv's definition in float64: a sum over the taps of shifted, strided views."""
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, out_c, ho, wo)) + bias.astype(np.float64)[:, None, None]
    for a in range(kh):
        for b in range(kw):
            view = xp[:, :, a * dh:a * dh + (ho - 1) * sh + 1:sh, b * dw:b * dw + (wo - 1) * sw + 1:sw]
            out += np.einsum("oc,nchw->nohw", weight[:, :, a, b].astype(np.float64), view)
    return out


def gemm(x, weight, bias, strides, dilations, pads):
    """The im2col path: Numba's `im2col` per image, then one float32 BLAS product and the bias."""
    from alls.runtime.kernels.floating import im2col

    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    cols = np.empty((c * kh * kw, ho * wo), np.float32)
    out = np.empty((n, out_c, ho * wo), np.float32)
    for i in range(n):
        im2col(x, i, cols, kh, kw, sh, sw, dh, dw, top, left, ho, wo)
        out[i] = weight.reshape(out_c, -1) @ cols + bias[:, None]
    return out.reshape(n, out_c, ho, wo)


def case(shape, kernel, strides, dilations, pads):
    x = RNG.standard_normal(shape).astype(np.float32)
    weight = RNG.standard_normal((kernel[0], shape[1], *kernel[1:])).astype(np.float32)
    bias = RNG.standard_normal(kernel[0]).astype(np.float32)
    return x, weight, bias, strides, dilations, pads


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_direct_conv_equals_the_float64_definition_and_the_gemm_path(geometry):
    x, weight, bias, *rest = case(*geometry)
    got = floatconv.conv(x, weight, bias, *rest, threads=1)
    want = reference(x, weight, bias, *rest)
    assert got.dtype == np.float32 and got.shape == want.shape
    # float32 sums of K terms: within a few K·eps of the sum of magnitudes
    scale = reference(np.abs(x), np.abs(weight), np.abs(bias), *rest)
    k = weight[0].size
    assert np.all(np.abs(got - want) <= 2 * k * np.finfo(np.float32).eps * scale + 1e-30)
    np.testing.assert_allclose(got, gemm(x, weight, bias, *rest), rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("geometry", [GEOMETRIES[1], GEOMETRIES[6], GEOMETRIES[8]], ids=str)
def test_direct_conv_gives_the_same_bits_for_any_batch_and_thread_count(geometry):
    x, weight, bias, *rest = case(*geometry)
    whole = floatconv.conv(x, weight, bias, *rest, threads=1)
    np.testing.assert_array_equal(floatconv.conv(x, weight, bias, *rest, threads=4), whole)
    for i in range(len(x)):
        np.testing.assert_array_equal(floatconv.conv(x[i:i + 1], weight, bias, *rest, threads=1)[0], whole[i])


def test_direct_conv_sums_each_output_in_the_documented_order():
    """(((x0·w0 + x1·w1) + ...) + bias), taps in (c, a, b) order, each product added in float32:
    with terms whose float32 sum depends on the order, the result is the sequential one."""
    def run(values, bias):
        x = np.array(values, np.float32).reshape(1, len(values), 1, 1)
        weight = np.ones((1, len(values), 1, 1), np.float32)
        return floatconv.conv(x, weight, np.array([bias], np.float32), (1, 1), (1, 1), (0, 0, 0, 0), threads=1)[0, 0]

    assert run([1e8, -1e8, 1.0], 0.0) == 1.0  # (1e8 - 1e8) + 1; the other way round, (1 - 1e8) + 1e8 = 0
    assert run([-1e8, 1.0, 1e8], 0.0) == 0.0  # (-1e8 + 1) + 1e8: the 1 is lost first
    assert run([1e8, -1e8], 1.0) == 1.0  # the bias last; first, (1 + 1e8) - 1e8 = 0
