"""The integer kernels (alls.runtime.kernels) against slow references and against ONNX.

Every kernel has a slow, obviously correct reference here: Python loops over the definition
in runtime/NUMERICS.md, with NumPy int64 or Python ints (object arrays) where a product could
exceed int64. Results are compared with ``assert_array_equal``. The cases are hand-picked edge
cases (saturation at both ends, zero points 0 and 2^a − 1, .5 ties of RHU, padding,
stride/dilation/group combinations, 4-bit extremes, the int64 path) and seeded random sweeps.

Where ONNX defines the same operation, ``onnx.reference.ReferenceEvaluator`` is a second
oracle. The scales are chosen so that their ratios are powers of two, which the fixed-point
multiplier represents exactly, so the results must agree bit for bit, with one exception. QLinearConv
and QLinearMatMul round half to even (``np.rint``) where RHU rounds half up. Those tests find the
exact ties from the integer accumulator (acc mod 2^s = 2^(s−1)). At a tie they accept ours =
ONNX + 1 when ONNX's result is even; everywhere else they require equality. They also check
that ties occurred.
"""

from __future__ import annotations

import math
import subprocess
import sys
import zlib
from fractions import Fraction

import numpy as np
import pytest

from alls.runtime import numerics as nm

kernels = pytest.importorskip("alls.runtime.kernels")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from alls.runtime.kernels import ConvWeights, KernelNotFound, get_kernel  # noqa: E402

K = kernels.KERNELS
RNG = np.random.default_rng(20240611)
U = {8: np.uint8, 16: np.uint16}


@pytest.fixture(autouse=True)
def _seeded(request):
    """Each test draws from its own seed (its node id), so a failure reproduces on its own."""
    global RNG
    RNG = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


# --- slow references -------------------------------------------------------------------------

def ref_rhu(x: int, n: int) -> int:
    """(N4) by definition: the nearest integer to x/2^n, ties toward +∞."""
    return math.floor(Fraction(int(x), 2 ** int(n)) + Fraction(1, 2))


def ref_requant(v, mult, shift, zo, lo, hi):
    """(N13) elementwise, in Python ints; mult and shift broadcast over the last axis."""
    v = np.asarray(v, dtype=object)
    m = np.broadcast_to(np.asarray(mult, dtype=object), v.shape)
    n = np.broadcast_to(np.asarray(shift, dtype=object), v.shape)
    out = np.empty(v.shape, dtype=np.int64)
    for idx in np.ndindex(v.shape):
        out[idx] = min(max(zo + ref_rhu(v[idx] * m[idx], n[idx]), lo), hi)
    return out


def ref_conv(x, w, bias, zx, strides=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), group=1):
    """(N21): loops over output pixels and taps; a tap outside the image adds nothing (N7)."""
    n_b, h, wd, c = x.shape
    co, cg, kh_n, kw_n = w.shape
    pt, pl, pb, pr = pads
    oh_n = (h + pt + pb - dil[0] * (kh_n - 1) - 1) // strides[0] + 1
    ow_n = (wd + pl + pr - dil[1] * (kw_n - 1) - 1) // strides[1] + 1
    og = co // group
    out = np.zeros((n_b, oh_n, ow_n, co), dtype=object) + np.asarray(bias, dtype=object)
    xc = x.astype(object) - zx
    for oh in range(oh_n):
        for ow in range(ow_n):
            for kh in range(kh_n):
                for kw in range(kw_n):
                    ih, iw = oh * strides[0] - pt + kh * dil[0], ow * strides[1] - pl + kw * dil[1]
                    if 0 <= ih < h and 0 <= iw < wd:
                        for g in range(group):
                            xs = xc[:, ih, iw, g * cg:(g + 1) * cg]
                            wg = w[g * og:(g + 1) * og, :, kh, kw].astype(object)
                            out[:, oh, ow, g * og:(g + 1) * og] += xs.dot(wg.T)
    return out


def ref_deconv(x, w, bias, zx, strides, pads, dil, output_padding, group):
    """(N22): every input pixel scatters (x − Z)·w into the output. w is ONNX (C_in, C_out/G, KH, KW)."""
    n_b, h, wd, c = x.shape
    ci, og, kh_n, kw_n = w.shape
    cg = ci // group
    pt, pl, pb, pr = pads
    oh_n = strides[0] * (h - 1) + output_padding[0] + dil[0] * (kh_n - 1) + 1 - pt - pb
    ow_n = strides[1] * (wd - 1) + output_padding[1] + dil[1] * (kw_n - 1) + 1 - pl - pr
    out = np.zeros((n_b, oh_n, ow_n, og * group), dtype=object) + np.asarray(bias, dtype=object)
    xc = x.astype(object) - zx
    for i in range(h):
        for j in range(wd):
            for u in range(kh_n):
                for v in range(kw_n):
                    oh, ow = i * strides[0] - pt + u * dil[0], j * strides[1] - pl + v * dil[1]
                    if 0 <= oh < oh_n and 0 <= ow < ow_n:
                        for g in range(group):
                            out[:, oh, ow, g * og:(g + 1) * og] += xc[:, i, j, g * cg:(g + 1) * cg].dot(
                                w[g * cg:(g + 1) * cg, :, u, v].astype(object))
    return out


def ref_pool_windows(h, w, k, s, d, pads, ceil_mode):
    """Output size and, per output pixel, the (ih, iw) taps of the window (padding included)."""
    def size(length, kk, ss, dd, pb, pe):
        span = length + pb + pe - dd * (kk - 1) - 1
        out = (-(-span // ss) if ceil_mode else span // ss) + 1
        return out - 1 if ceil_mode and (out - 1) * ss >= length + pb else out
    oh_n, ow_n = size(h, k[0], s[0], d[0], pads[0], pads[2]), size(w, k[1], s[1], d[1], pads[1], pads[3])
    return oh_n, ow_n, lambda oh, ow: [(oh * s[0] - pads[0] + a * d[0], ow * s[1] - pads[1] + b * d[1])
                                        for a in range(k[0]) for b in range(k[1])]


def random_act(shape, bits=8):
    return RNG.integers(0, 2 ** bits, shape).astype(U[bits])


def random_weights(shape, bits=8):
    lim = 2 ** (bits - 1) - 1
    return RNG.integers(-lim, lim + 1, shape)


def conv_rq(co, bound, zo=128, bits=8, lo=None, hi=None, scale=0.0003):
    reals = scale * (1 + 0.5 * RNG.random(co))
    return nm.requant(reals, bound, zo, bits, lo, hi)


# --- ONNX helpers ----------------------------------------------------------------------------

def onnx_run(node, inputs, inits=(), opset=19):
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in inputs.items()]
    outs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output]
    graph = helper.make_graph([node], "g", ins, outs, [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, inputs)[0]


def ort_run(node, inputs, inits=(), opset=19):
    """The same single-node model through onnxruntime (for what the reference evaluator lacks)."""
    ort = pytest.importorskip("onnxruntime")
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in inputs.items()]
    outs = [helper.make_tensor_value_info(o, ins[0].type.tensor_type.elem_type, None) for o in node.output]
    graph = helper.make_graph([node], "g", ins, outs, [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def nchw(x):
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def nhwc(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


# --- numerics --------------------------------------------------------------------------------

@pytest.mark.parametrize("x, n, want", [
    (5, 1, 3), (3, 1, 2), (1, 1, 1), (-1, 1, 0), (-3, 1, -1), (-5, 1, -2),  # x/2 = ±2.5, ±1.5, ±0.5
    (9, 2, 2), (-11, 2, -3), (7, 0, 7), (-7, 0, -7), (-(2**62), 62, -1), (2**61, 62, 1), (2**61 - 1, 62, 0)])
def test_round_half_up_table(x, n, want):
    assert nm.round_half_up(x, n) == want == ref_rhu(x, n)
    assert int(nm.round_half_up(np.array([x], dtype=np.int64), n)[0]) == want


def test_round_half_up_real():
    assert [nm.round_half_up_real(t) for t in (2.5, -2.5, 0.49999999999999994, -0.5, 1e15 + 0.5)] == \
        [3, -2, 0, 0, 10**15 + 1]


@pytest.mark.parametrize("bits", [31, 26, 15])
def test_quantize_multiplier_error_bound(bits):
    for real in [1.0, 0.5, 2.0**-20, 3.0**-5, 0.999999999, 1e-9, 123.456, 2.0**-40] + list(RNG.random(200) * 4):
        m, n = nm.quantize_multiplier(real, bits)
        assert 0 <= m < 2**bits and 0 <= n <= 62
        err = abs(Fraction(m, 2**n) - Fraction(real))
        assert err <= Fraction(1, 2 ** (n + 1))  # (N17)
        if m >= 2 ** (bits - 1):
            assert err <= Fraction(real) / 2**bits


def test_quantize_multiplier_edges():
    assert nm.quantize_multiplier(0.25, 31) == (2**30, 32)  # a power of two is exact
    assert nm.quantize_multiplier(0.0, 31) == (0, 0)
    m, n = nm.quantize_multiplier(1 - 2.0**-40, 31)  # rounds up to 2^31: renormalized
    assert (m, n) == (2**30, 30)
    assert nm.quantize_multiplier(2.0**-70, 31) == (nm.round_half_up_real(Fraction(2.0**-70) * 2**62), 62)
    assert nm.quantize_multiplier(2.0**-64, 31) == (0, 62)  # below 2^−63: the output is Z
    with pytest.raises(ValueError):
        nm.quantize_multiplier(2.0**31, 31)  # needs a left shift
    with pytest.raises(ValueError):
        nm.quantize_multiplier(-0.5, 31)


def test_accumulator_width_table():
    """(N8)/(N9): the numbers in NUMERICS.md §3."""
    def k_max(a, b):
        return (2**31 - 1) // (nm.activation_max(a) * nm.weight_max(b))
    assert (k_max(8, 4), k_max(8, 8), k_max(8, 16), k_max(16, 4), k_max(16, 8), k_max(16, 16)) == \
        (1203072, 66311, 257, 4681, 258, 1)
    assert nm.accumulator_dtype(nm.value_bound(18432, 8, 8)) == np.int32
    assert nm.accumulator_dtype(nm.value_bound(259, 16, 8)) == np.int64
    assert nm.accumulator_dtype(nm.value_bound(258, 16, 8)) == np.int32
    assert nm.accumulator_dtype(nm.value_bound(65539, 16, 16)) == np.int64
    with pytest.raises(ValueError):
        nm.accumulator_dtype(nm.value_bound(65540, 16, 16))  # over 2^47
    assert nm.multiplier_bits(2**31 - 1) == 31 and nm.multiplier_bits(2**47 - 1) == 15
    assert nm.multiplier_bits(nm.value_bound(9, 16, 16)) == 62 - 35


def test_bias_encoding_and_16_bit_finer():
    acc_scale = np.full(4, 0.001)
    b = np.array([2.0, -1.3, 0.0004, 0.0015])  # t = 2000, −1300, 0.4, 1.5
    b8 = nm.quantize_bias(b, acc_scale, 8)
    b16 = nm.quantize_bias(b, acc_scale, 16)
    assert b8.exponent == 4 and list(b8.mantissa) == [125, -81, 0, 0]  # 2000/16 = 125, 1300/16 = 81.25
    assert b16.exponent == 0 and list(b16.mantissa) == [2000, -1300, 0, 2]  # rhu(1.5) = 2
    for bias in (b8, b16):  # (N12)
        assert np.all(np.abs(bias.error(b, acc_scale)) <= 2.0 ** (bias.exponent - 1) * acc_scale + 1e-12)
    assert np.max(np.abs(b16.error(b, acc_scale))) < np.max(np.abs(b8.error(b, acc_scale))) / 8
    # a correction of 3 accumulator units survives with 16 bits and is lost with 8 (e = 4)
    corrected = b + np.array([0, 0, 0.003, 0])
    assert nm.quantize_bias(corrected, acc_scale, 16).mantissa[2] == 3
    assert nm.quantize_bias(corrected, acc_scale, 8).mantissa[2] == 0
    assert nm.Bias([1, -2], 3).accumulator().tolist() == [8, -16]
    with pytest.raises(ValueError):
        nm.Bias([128], 0, 8)


def test_clamp_folding_is_exact():
    """(N19): quantizing a clipped real equals clamping the quantized real."""
    scale, zp = 0.05, 37
    lo, hi = nm.activation_bounds("relu6", 8, scale, zp)
    assert (lo, hi) == (37, 157)
    assert nm.activation_bounds("relu", 16, scale, 0) == (0, 65535)
    assert nm.activation_bounds("clip", 8, scale, zp, {"min": -0.5, "max": 1.0}) == (27, 57)
    reals = RNG.normal(0, 5, 5000)
    quant = np.clip(zp + np.floor(reals / scale + 0.5), 0, 255)
    direct = np.clip(zp + np.floor(np.clip(reals, 0, 6) / scale + 0.5), 0, 255)
    assert np.array_equal(np.clip(quant, lo, hi), direct)
    with pytest.raises(ValueError):
        nm.activation_bounds("sigmoid", 8, scale, zp)


def test_build_lut():
    table = nm.build_lut("sigmoid", 8, 0.05, 128, 8, 1 / 255, 0)
    j = np.arange(256)
    want = np.clip(np.floor(1 / (1 + np.exp(-0.05 * (j - 128))) * 255 + 0.5), 0, 255)
    assert table.dtype == np.uint8 and np.array_equal(table, want)
    t16 = nm.build_lut("hardswish", 16, 0.001, 30000, 16, 0.0005, 1000)
    assert t16.shape == (65536,) and t16.dtype == np.uint16 and t16[30000] == 1000
    assert np.all(np.diff(nm.build_lut("tanh", 16, 0.0002, 32768, 8, 2 / 255, 128).astype(int)) >= 0)


def test_requant_construction_checks():
    with pytest.raises(ValueError):
        nm.Requant([2**31], [31], 0, 0, 255)  # multiplier wider than Q31
    with pytest.raises(ValueError):
        nm.Requant([2**20], [63], 0, 0, 255)  # shift over 62
    with pytest.raises(ValueError):
        nm.Requant([2**20], [31], 0, 10, 5)  # lo > hi
    with pytest.raises(ValueError):
        nm.Requant([2**22], [31], 0, 0, 255, 8, bound=2**40)  # wider than the 21 bits the bound allows


# --- requantize ------------------------------------------------------------------------------

def test_requantize_ties_and_saturation():
    # M·2^−n = 1/16 exactly: v/16 = k + 1/2 ties go up for either sign
    rq = nm.Requant([2**27], [31], 100, 0, 255)
    v = np.array([[8, 24, -8, -24, 40, -40, 7, -9, 10**6, -10**6]], dtype=np.int32)
    want = [101, 102, 100, 99, 103, 98, 100, 99, 255, 0]
    assert kernels.requantize(v, rq).tolist() == [want]
    assert np.array_equal(kernels.requantize(v, rq), ref_requant(v, 2**27, 31, 100, 0, 255))


@pytest.mark.parametrize("zo, bits", [(0, 8), (255, 8), (0, 16), (65535, 16), (3, 16)])
def test_requantize_extreme_zero_points(zo, bits):
    top = 2**bits - 1
    rq = nm.requant([0.003, 0.25, 1e-6, 0.7], 2**31 - 1, zo, bits)
    v = RNG.integers(-2**31, 2**31, (50, 4)).astype(np.int32)
    v[0] = [-2**31, 2**31 - 1, 0, 1]
    got = kernels.requantize(v, rq)
    assert got.dtype == U[bits]
    assert np.array_equal(got, ref_requant(v, rq.multiplier, rq.shift, zo, 0, top))


def test_requantize_int64_extremes():
    """An int64 accumulator near 2^47 times a 15-bit multiplier: no overflow (N15)."""
    bound = 2**47 - 1
    rq = nm.requant([2.0**-33, 1.7e-10, 3.1e-13], bound, 32768, 16)
    assert max(rq.multiplier) < 2**15
    v = np.array([[bound, -bound, 12345], [-bound, bound, -(2**40)], [2**46 + 7, -(2**46) - 3, 0]], dtype=np.int64)
    got = kernels.requantize(v, rq, bound=bound)
    assert np.array_equal(got, ref_requant(v, rq.multiplier, rq.shift, 32768, 0, 65535))


def test_requantize_random_sweep():
    for _ in range(20):
        c = int(RNG.integers(1, 40))
        bits = int(RNG.choice([8, 16]))
        zo = int(RNG.integers(0, 2**bits))
        lo = int(RNG.integers(0, zo + 1))
        rq = nm.requant(RNG.random(c) * 10.0 ** RNG.uniform(-9, 1), 2**31 - 1, zo, bits, lo, 2**bits - 1)
        v = RNG.integers(-2**31, 2**31, (int(RNG.integers(1, 30)), c)).astype(np.int32)
        assert np.array_equal(kernels.requantize(v, rq), ref_requant(v, rq.multiplier, rq.shift, zo, lo, 2**bits - 1))


# --- conv ------------------------------------------------------------------------------------

CONV_CASES = [
    # (N, H, W, C_in, C_out, K, group, strides, pads, dilations, a, b)
    (2, 6, 7, 8, 16, 3, 1, (1, 1), (1, 1, 1, 1), (1, 1), 8, 8),
    (1, 9, 8, 6, 20, 3, 2, (2, 2), (0, 1, 2, 1), (1, 1), 8, 4),
    (1, 7, 9, 5, 7, 3, 1, (1, 2), (2, 2, 2, 2), (2, 2), 8, 8),
    (1, 5, 5, 3, 9, 1, 3, (1, 1), (0, 0, 0, 0), (1, 1), 8, 8),
    (2, 8, 6, 12, 6, (2, 3), 3, (2, 1), (1, 0, 0, 2), (1, 2), 8, 8),
    (1, 6, 6, 8, 16, 3, 1, (1, 1), (1, 1, 1, 1), (1, 1), 16, 8),  # a16_w8, K = 72: int32
    (1, 6, 5, 4, 4, 3, 2, (1, 1), (1, 1, 1, 1), (1, 1), 16, 16),  # a16_w16: int64
    (1, 5, 6, 3, 9, 1, 3, (1, 1), (0, 0, 0, 0), (1, 1), 8, 16),  # a8_w16, K = 1: general int32
    (1, 6, 6, 40, 5, 3, 1, (1, 1), (1, 1, 1, 1), (1, 1), 8, 16),  # a8_w16, K = 360: int64
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[-2]}x{c[-1]}-g{c[6]}-s{c[7][0]}{c[7][1]}-d{c[9][0]}")
def test_conv_against_reference(case):
    n_b, h, w, ci, co, k, group, strides, pads, dil, a, b = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = random_act((n_b, h, w, ci), a)
    wq = random_weights((co, ci // group, kh, kw), b)
    zx = int(RNG.integers(0, 2**a))
    bias = nm.Bias(RNG.integers(-127, 128, co), 5, 8)
    weights = ConvWeights(wq, b, group)
    geo = dict(zero_point=zx, strides=strides, pads=pads, dilations=dil)
    acc = K["conv_acc"](x, weights, bias, **geo)
    want = ref_conv(x, wq, bias.accumulator(), zx, strides, pads, dil, group)
    bound = nm.value_bound(weights.fan_in, a, b, bias.max_abs())
    assert acc.dtype == nm.accumulator_dtype(bound)
    np.testing.assert_array_equal(acc, want.astype(np.int64))
    rq = conv_rq(co, bound, zo=int(RNG.integers(0, 2**a)), bits=a, scale=2.0**-12 if a == 8 else 2.0**-20)
    y = K["conv"](x, weights, bias, rq, **geo)
    np.testing.assert_array_equal(y, ref_requant(want, rq.multiplier, rq.shift, rq.zero_point, rq.lo, rq.hi))


def test_conv_4bit_extremes_and_saturation():
    """a8_w4 with all weights ±7 and inputs at 0 and 255, zero points 0 and 255: both clamp ends."""
    for zx in (0, 255):
        x = np.where(RNG.random((1, 6, 6, 8)) < 0.5, 0, 255).astype(np.uint8)
        wq = np.where(RNG.random((16, 8, 3, 3)) < 0.5, -7, 7)
        weights = ConvWeights(wq, 4)
        acc = K["conv_acc"](x, weights, None, zero_point=zx, pads=(1, 1, 1, 1))
        want = ref_conv(x, wq, np.zeros(16, dtype=np.int64), zx, pads=(1, 1, 1, 1))
        np.testing.assert_array_equal(acc, want.astype(np.int64))
        rq = nm.requant(np.full(16, 0.01), nm.value_bound(72, 8, 4), 128, lo=20, hi=235)
        y = K["conv"](x, weights, None, rq, zero_point=zx, pads=(1, 1, 1, 1))
        assert y.min() == 20 and y.max() == 235
        np.testing.assert_array_equal(y, ref_requant(want, rq.multiplier, rq.shift, 128, 20, 235))


def test_conv_int64_path_where_int32_overflows():
    """a16_w16 at the extremes: the exact sums leave int32, the kernel picks int64 and is exact."""
    x = np.full((1, 4, 4, 4), 65535, dtype=np.uint16)
    x[0, 1::2] = 0
    wq = np.full((2, 4, 3, 3), 32767)
    wq[1] = -32767
    weights = ConvWeights(wq, 16)
    acc = K["conv_acc"](x, weights, None, zero_point=0, pads=(1, 1, 1, 1))
    want = ref_conv(x, wq, [0, 0], 0, pads=(1, 1, 1, 1))
    assert acc.dtype == np.int64
    assert int(want.max()) > 2**31 - 1 and int(want.min()) < -(2**31)  # int32 would have overflowed
    wrapped = ((want.astype(np.int64) + 2**31) % 2**32) - 2**31
    assert not np.array_equal(wrapped, want.astype(np.int64))  # ... and wrapped silently
    np.testing.assert_array_equal(acc, want.astype(np.int64))
    bound = nm.value_bound(36, 16, 16)
    rq = nm.requant([2.0**-30, 2.0**-30], bound, 32768, 16)
    y = K["conv"](x, weights, None, rq, zero_point=0, pads=(1, 1, 1, 1))
    np.testing.assert_array_equal(y, ref_requant(want, rq.multiplier, rq.shift, 32768, 0, 65535))


def test_conv_random_sweep():
    for _ in range(12):
        group = int(RNG.choice([1, 2, 3]))
        ci, co = group * int(RNG.integers(1, 7)), group * int(RNG.integers(1, 12))
        kh, kw = int(RNG.integers(1, 4)), int(RNG.integers(1, 4))
        strides, dil = tuple(int(v) for v in RNG.integers(1, 3, 2)), tuple(int(v) for v in RNG.integers(1, 3, 2))
        pads = tuple(int(v) for v in RNG.integers(0, 3, 4))
        h, w = int(RNG.integers(dil[0] * (kh - 1) + 1, 9)), int(RNG.integers(dil[1] * (kw - 1) + 1, 11))
        b = int(RNG.choice([4, 8]))
        x, wq = random_act((int(RNG.integers(1, 3)), h, w, ci)), random_weights((co, ci // group, kh, kw), b)
        zx = int(RNG.integers(0, 256))
        acc = K["conv_acc"](x, ConvWeights(wq, b, group), None, zero_point=zx, strides=strides, pads=pads,
                            dilations=dil)
        np.testing.assert_array_equal(acc, ref_conv(x, wq, np.zeros(co, dtype=np.int64), zx, strides, pads, dil, group)
                                      .astype(np.int64))


# --- depthwise -------------------------------------------------------------------------------

@pytest.mark.parametrize("c, mult, k, strides, pads, dil, a, b", [
    (16, 1, 3, (1, 1), (1, 1, 1, 1), (1, 1), 8, 8),
    (20, 1, 3, (2, 2), (0, 1, 1, 0), (1, 1), 8, 4),
    (5, 2, 3, (1, 2), (2, 2, 2, 2), (2, 2), 8, 8),
    (6, 1, 5, (1, 1), (2, 2, 2, 2), (1, 1), 16, 8),
    (3, 1, 3, (1, 1), (1, 1, 1, 1), (1, 1), 16, 16),
])
def test_depthwise_against_reference(c, mult, k, strides, pads, dil, a, b):
    x = random_act((2, 7, 9, c), a)
    wq = random_weights((c * mult, 1, k, k), b)
    if b == 4:
        wq[0] = 7
        wq[1] = -7
    zx = 2**a - 1 if a == 8 else 0
    bias = nm.Bias(RNG.integers(-3000, 3000, c * mult), 2, 16)
    weights = ConvWeights(wq, b, c)
    geo = dict(zero_point=zx, strides=strides, pads=pads, dilations=dil)
    acc = K["dw_acc"](x, weights, bias, **geo)
    want = ref_conv(np.repeat(x, mult, axis=3), wq, bias.accumulator(), zx, strides, pads, dil, c * mult)
    np.testing.assert_array_equal(acc, want.astype(np.int64))
    bound = nm.value_bound(k * k, a, b, bias.max_abs())
    rq = conv_rq(c * mult, bound, zo=0, bits=a, scale=2.0**-9)
    y = K["dw"](x, weights, bias, rq, **geo)
    np.testing.assert_array_equal(y, ref_requant(want, rq.multiplier, rq.shift, 0, rq.lo, rq.hi))
    assert y.min() == 0  # saturates at the low end with Z_y = 0


# --- deconv ----------------------------------------------------------------------------------

DECONV_CASES = [
    # (C_in, C_out/G, K, group, strides, pads, dilations, output_padding, a, b)
    (4, 6, 3, 1, (2, 2), (1, 1, 1, 1), (1, 1), (1, 1), 8, 8),
    (6, 2, 2, 3, (2, 3), (0, 0, 0, 0), (1, 1), (0, 2), 8, 4),
    (4, 3, 3, 2, (1, 1), (0, 1, 2, 0), (2, 1), (0, 0), 8, 8),
    (3, 4, 4, 1, (3, 2), (3, 2, 1, 3), (1, 1), (2, 1), 8, 8),  # pads larger than d(K−1): cropped
    (2, 3, 3, 1, (2, 2), (1, 1, 1, 1), (1, 1), (1, 0), 16, 16),
]


@pytest.mark.parametrize("case", DECONV_CASES)
def test_deconv_against_reference_and_onnx(case):
    ci, og, k, group, strides, pads, dil, op, a, b = case
    x = random_act((1, 4, 5, ci), a)
    wq = random_weights((ci, og, k, k), b)
    zx = int(RNG.integers(0, 2**a))
    bias = nm.Bias(RNG.integers(-100, 100, og * group), 3, 8)
    weights = ConvWeights.from_conv_transpose(wq, b, group)
    geo = dict(zero_point=zx, strides=strides, pads=pads, dilations=dil, output_padding=op)
    acc = K["deconv_acc"](x, weights, bias, **geo)
    want = ref_deconv(x, wq, bias.accumulator(), zx, strides, pads, dil, op, group)
    np.testing.assert_array_equal(acc, want.astype(np.int64))
    if group == 1:  # ONNX's reference ConvTranspose does not implement groups
        # ConvTranspose on the centred integers in float64 is exact (|values| < 2^53)
        node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=list(strides), pads=list(pads),
                                dilations=list(dil), output_padding=list(op), kernel_shape=[k, k])
        onnx_y = onnx_run(node, {"x": nchw(x.astype(np.float64) - zx), "w": wq.astype(np.float64),
                                 "b": bias.accumulator().astype(np.float64)})
        np.testing.assert_array_equal(nhwc(onnx_y), want.astype(np.float64))
    rq = conv_rq(og * group, nm.value_bound(weights.fan_in, a, b, bias.max_abs()), bits=a, scale=2.0**-11)
    y = K["deconv"](x, weights, bias, rq, **geo)
    np.testing.assert_array_equal(y, ref_requant(want, rq.multiplier, rq.shift, rq.zero_point, rq.lo, rq.hi))


# --- dense -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n_b, k, co, a, b", [(1, 33, 10, 8, 8), (5, 64, 40, 8, 4), (8, 17, 16, 8, 8),
                                              (3, 300, 7, 16, 8), (2, 12, 5, 16, 16), (4, 9, 3, 8, 16)])
def test_dense_against_reference(n_b, k, co, a, b):
    x = random_act((n_b, k), a)
    x[0] = 2**a - 1
    wq = random_weights((co, k), b)
    zx = int(RNG.integers(0, 2**a))
    bias = nm.Bias(RNG.integers(-30000, 30000, co), 4, 16)
    weights = ConvWeights(wq, b)
    acc = K["fc_acc"](x, weights, bias, zero_point=zx)
    want = (x.astype(object) - zx).dot(wq.astype(object).T) + bias.accumulator().astype(object)
    np.testing.assert_array_equal(acc, want.astype(np.int64))
    bound = nm.value_bound(k, a, b, bias.max_abs())
    assert acc.dtype == nm.accumulator_dtype(bound)
    rq = conv_rq(co, bound, zo=3, bits=8, scale=1e-4 if a == 8 else 1e-7)
    y = K["fc"](x, weights, bias, rq, zero_point=zx)
    np.testing.assert_array_equal(y, ref_requant(want, rq.multiplier, rq.shift, 3, 0, 255))


def test_fast_path_16_bit_output():
    """a8_w8_a16: 8-bit input, 16-bit output, through the fused fast kernels."""
    x = random_act((1, 5, 6, 8))
    wq = random_weights((16, 8, 3, 3))
    rq = nm.requant(np.full(16, 2.0**-8), nm.value_bound(72, 8, 8), 30000, 16)
    y = K["conv"](x, ConvWeights(wq, 8), None, rq, zero_point=100, pads=(1, 1, 1, 1))
    assert y.dtype == np.uint16
    want = ref_conv(x, wq, np.zeros(16, dtype=np.int64), 100, pads=(1, 1, 1, 1))
    np.testing.assert_array_equal(y, ref_requant(want, rq.multiplier, rq.shift, 30000, 0, 65535))


# --- elementwise, concat, lookup -------------------------------------------------------------

def ref_add(a, b, za, zb, rq):
    s = rq.multiplier_a * (a.astype(object) - za) + rq.multiplier_b * (b.astype(object) - zb)
    return ref_requant(s, 1, rq.shift, rq.zero_point, rq.lo, rq.hi)


@pytest.mark.parametrize("bits_a, bits_b, out_bits, subtract", [(8, 8, 8, False), (16, 8, 16, False),
                                                                 (8, 8, 8, True), (16, 16, 8, False)])
def test_ew_add_sub(bits_a, bits_b, out_bits, subtract):
    a, b = random_act((2, 4, 5, 6), bits_a), random_act((2, 4, 5, 6), bits_b)
    za, zb = 2**bits_a - 1, 0
    rq = nm.add_requant(0.02, 0.035, 0.05, 2**out_bits // 2, bits_a, bits_b, out_bits, subtract=subtract)
    op = K["ew_sub" if subtract else "ew_add"]
    y = op(a, b, rq, zero_points=(za, zb))
    np.testing.assert_array_equal(y, ref_add(a, b, za, zb, rq))
    const = random_act((6,), bits_b)  # a per-channel constant, on either side
    y = op(a, const, rq, zero_points=(za, zb))
    np.testing.assert_array_equal(y, ref_add(a, np.broadcast_to(const, a.shape), za, zb, rq))
    if not subtract:
        rq_swapped = nm.add_requant(0.035, 0.02, 0.05, 2**out_bits // 2, bits_b, bits_a, out_bits)
        y = op(const, a, rq_swapped, zero_points=(zb, za))
        np.testing.assert_array_equal(y, ref_add(np.broadcast_to(const, a.shape), a, zb, za, rq_swapped))


def test_ew_add_ties_and_saturation():
    """Scales 1/2 and 1/4 of the output's: M_a·Δa + M_b·Δb lands on exact .5 ties."""
    rq = nm.add_requant(0.5, 0.25, 1.0, 10, lo=5, hi=200)
    a = np.array([[1, 3, 0, 255, 0, 2, 100]], dtype=np.uint8)
    b = np.array([[0, 0, 2, 255, 0, 1, 98]], dtype=np.uint8)
    # sums 0.5, 1.5, 0.5, 191.25, 0, 1.25, 74.5 → 1, 2, 1, 191, 0, 1, 75; +10; clamp to [5, 200]
    assert K["ew_add"](a, b, rq, zero_points=(0, 0)).tolist() == [[11, 12, 11, 200, 10, 11, 85]]
    rq_sub = nm.add_requant(0.5, 0.25, 1.0, 10, lo=5, hi=200, subtract=True)
    # a − b: 0.5, 1.5, −0.5, 63.75, 0, 0.75, 25.5 → 1, 2, 0, 64, 0, 1, 26 (ties toward +∞)
    assert K["ew_sub"](a, b, rq_sub, zero_points=(0, 0)).tolist() == [[11, 12, 10, 74, 10, 11, 36]]
    big = np.full((1, 6), 255, dtype=np.uint8)
    assert K["ew_add"](big, big, rq, zero_points=(0, 0)).tolist() == [[200] * 6]
    assert K["ew_add"](np.zeros((1, 6), np.uint8), np.zeros((1, 6), np.uint8), rq,
                       zero_points=(255, 255)).tolist() == [[5] * 6]


@pytest.mark.parametrize("bits_a, bits_b", [(8, 8), (16, 16), (8, 16)])
def test_ew_mult(bits_a, bits_b):
    a, b = random_act((3, 4, 7), bits_a), random_act((3, 4, 7), bits_b)
    za, zb = int(RNG.integers(0, 2**bits_a)), 2**bits_b - 1
    rq = nm.mul_requant(0.01, 0.02, 0.0005 * 2**(bits_a + bits_b - 16), 77, bits_a, bits_b, 8)
    assert nm.multiplier_bits(rq.bound) == (30 if bits_a == bits_b == 16 else 31)
    want = ref_requant((a.astype(object) - za) * (b.astype(object) - zb), rq.multiplier, rq.shift, 77, 0, 255)
    np.testing.assert_array_equal(K["ew_mult"](a, b, rq, zero_points=(za, zb)), want)
    const = random_act((1, 1, 7), bits_b)
    want = ref_requant((a.astype(object) - za) * (np.broadcast_to(const, a.shape).astype(object) - zb),
                       rq.multiplier, rq.shift, 77, 0, 255)
    np.testing.assert_array_equal(K["ew_mult"](a, const, rq, zero_points=(za, zb)), want)


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_concat(axis):
    xs = [random_act((2, 3, 4, 5)), random_act((2, 3, 4, 5), 16), random_act((2, 3, 4, 5))]
    if axis == -1:
        xs[2] = random_act((2, 3, 4, 2))
    zs = [17, 40000, 128]
    copy = nm.Requant([1], [0], 128, 0, 255)  # input 3 shares the output's scale and zero point
    rqs = [nm.requant([0.6], 255, 128), nm.requant([0.01], 65535, 128), copy]
    y = K["concat"](xs, rqs, zero_points=zs, axis=axis)
    parts = [ref_requant(x.astype(object) - z, rq.multiplier[0], rq.shift[0], 128, 0, 255)
             for x, rq, z in zip(xs, rqs, zs)]
    np.testing.assert_array_equal(y, np.concatenate(parts, axis=axis))
    np.testing.assert_array_equal(np.take(y, range(y.shape[axis] - xs[2].shape[axis], y.shape[axis]), axis=axis), xs[2])


def test_lut_per_tensor_and_per_channel():
    p = random_act((2, 3, 4, 3))
    table = nm.build_lut("silu", 8, 0.1, 100, 8, 0.05, 20)
    np.testing.assert_array_equal(K["lut"](p, table), table[p])
    tables = np.stack([nm.build_lut("prelu", 8, 0.1, 100, 8, 0.05, 128, slope=s) for s in (0.1, 0.25, -0.5)])
    y = K["lut"](p, tables)
    for c in range(3):
        np.testing.assert_array_equal(y[..., c], tables[c][p[..., c]])
    p16 = random_act((1, 2, 2, 4), 16)
    t16 = nm.build_lut("sigmoid", 16, 0.0005, 32768, 16, 1 / 65535, 0)
    np.testing.assert_array_equal(K["lut"](p16, t16), t16[p16])
    with pytest.raises(ValueError):
        K["lut"](p16, table)


# --- pooling ---------------------------------------------------------------------------------

POOL_CASES = [((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True), ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False),
              ((3, 2), (1, 2), (1, 0, 2, 1), (2, 1), False), ((3, 3), (3, 3), (1, 1, 1, 1), (1, 1), True)]


@pytest.mark.parametrize("k, s, pads, dil, ceil_mode", POOL_CASES)
def test_maxpool_against_reference_and_onnx(k, s, pads, dil, ceil_mode):
    x = random_act((2, 7, 8, 3))
    x[0, 0, 0] = 255
    y = K["maxpool"](x, kernel_shape=k, strides=s, pads=pads, dilations=dil, ceil_mode=ceil_mode)
    oh_n, ow_n, taps = ref_pool_windows(7, 8, k, s, dil, pads, ceil_mode)
    want = np.zeros((2, oh_n, ow_n, 3), dtype=np.uint8)
    for oh in range(oh_n):
        for ow in range(ow_n):
            inside = [x[:, i, j] for i, j in taps(oh, ow) if 0 <= i < 7 and 0 <= j < 8]
            want[:, oh, ow] = np.max(inside, axis=0)
    np.testing.assert_array_equal(y, want)
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(k), strides=list(s), pads=list(pads),
                            dilations=list(dil), ceil_mode=int(ceil_mode))
    np.testing.assert_array_equal(nhwc(onnx_run(node, {"x": nchw(x)})), y)
    g = K["global_maxpool"](x)
    np.testing.assert_array_equal(g, x.max(axis=(1, 2), keepdims=True))


@pytest.mark.parametrize("k, s, pads, dil, ceil_mode", POOL_CASES)
@pytest.mark.parametrize("include_pad", [False, True])
def test_avgpool_against_reference_and_onnx(k, s, pads, dil, ceil_mode, include_pad):
    x = random_act((1, 7, 8, 3))
    zx, s_in, s_out = 90, 0.02, 0.02
    taps_n = k[0] * k[1]
    rq = nm.avgpool_requant(taps_n, s_in, s_out, 60)
    y = K["avgpool"](x, rq, zero_point=zx, kernel_shape=k, strides=s, pads=pads, dilations=dil, ceil_mode=ceil_mode,
                     count_include_pad=include_pad)
    oh_n, ow_n, taps = ref_pool_windows(7, 8, k, s, dil, pads, ceil_mode)
    want = np.zeros((1, oh_n, ow_n, 3), dtype=np.int64)
    exact = np.zeros((1, oh_n, ow_n, 3), dtype=object)
    for oh in range(oh_n):
        for ow in range(ow_n):
            window = taps(oh, ow)
            inside = [(i, j) for i, j in window if 0 <= i < 7 and 0 <= j < 8]
            padded = [(i, j) for i, j in window if -pads[0] <= i < 7 + pads[2] and -pads[1] <= j < 8 + pads[3]]
            kappa = len(padded) if include_pad else len(inside)
            for c in range(3):
                total = sum(int(x[0, i, j, c]) - zx for i, j in inside)
                y_c = 60 + ref_rhu(total * int(rq.multiplier[kappa]), int(rq.shift[kappa]))
                want[0, oh, ow, c] = min(max(y_c, 0), 255)
                exact[0, oh, ow, c] = Fraction(total, kappa)
    np.testing.assert_array_equal(y, want)
    # ONNX (float) agrees except where the exact mean is a .5 tie, which the fixed-point
    # reciprocal of a non-power-of-two κ may round either way (N27).
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=list(k), strides=list(s), pads=list(pads),
                            dilations=list(dil), ceil_mode=int(ceil_mode), count_include_pad=int(include_pad))
    onnx_mean = nhwc(onnx_run(node, {"x": nchw(x.astype(np.float64) - zx)}))
    onnx_y = np.clip(60 + np.floor(onnx_mean + 0.5), 0, 255)
    tie = np.vectorize(lambda f: (f - math.floor(f)) == Fraction(1, 2))(exact)
    assert np.all((onnx_y == y) | (tie & (np.abs(onnx_y - y) == 1)))


def test_global_avgpool():
    for bits, h, w in ((8, 7, 7), (16, 5, 3)):
        x = random_act((2, h, w, 6), bits)
        zx = 2**bits - 1
        rq = nm.global_avgpool_requant(h * w, 0.1, 0.07, 40, bits, 8)
        y = K["global_avgpool"](x, rq, zero_point=zx)
        total = (x.astype(object) - zx).sum(axis=(1, 2), keepdims=True)
        np.testing.assert_array_equal(y, ref_requant(total, rq.multiplier[0], rq.shift[0], 40, 0, 255))
        assert y.shape == (2, 1, 1, 6)


# --- resize ----------------------------------------------------------------------------------

RESIZE_CASES = [((5, 6), (10, 12), None), ((5, 6), (15, 13), None), ((6, 8), (3, 4), None), ((5, 6), (7, 4), None),
                ((4, 5), (6, 12), (1.5, 2.5)), ((6, 6), (4, 9), (0.75, 1.5))]


@pytest.mark.parametrize("mode", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                                  "tf_half_pixel_for_nn"])
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_resize_nearest_against_onnx(mode, nearest_mode):
    for (h, w), (oh, ow), scales in RESIZE_CASES:
        x = random_act((1, h, w, 2))
        y = K["resize_nearest"](x, size=(oh, ow), mode=mode, nearest_mode=nearest_mode, scales=scales)
        attrs = dict(mode="nearest", coordinate_transformation_mode=mode, nearest_mode=nearest_mode)
        if scales is None:
            node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
            inits = [("sizes", np.array([1, 2, oh, ow], dtype=np.int64))]
        else:
            node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
            inits = [("scales", np.array([1, 1, *scales], dtype=np.float32))]
        run = ort_run if mode == "tf_half_pixel_for_nn" else onnx_run  # the reference evaluator lacks this mode
        np.testing.assert_array_equal(nhwc(run(node, {"x": nchw(x)}, inits)), y, err_msg=f"{h}x{w}->{oh}x{ow}")


@pytest.mark.parametrize("mode", ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"])
@pytest.mark.parametrize("bits", [8, 16])
def test_resize_bilinear(mode, bits):
    x = random_act((2, 4, 5, 3), bits)
    zx = 2**bits - 1
    oh, ow = 9, 7
    rq = nm.bilinear_requant(0.1, 0.1, zx, bits, bits)
    y = K["resize_bilinear"](x, rq, zero_point=zx, size=(oh, ow), mode=mode)
    one = 1 << nm.RESIZE_FRACTION_BITS

    def axis(l_in, l_out):  # (N28)/(N30) by definition, with exact rationals
        rho, res = Fraction(l_out, l_in), []
        for o in range(l_out):
            xi = {"half_pixel": (o + Fraction(1, 2)) / rho - Fraction(1, 2), "asymmetric": o / rho,
                  "align_corners": Fraction(o * (l_in - 1), l_out - 1),
                  "pytorch_half_pixel": (o + Fraction(1, 2)) / rho - Fraction(1, 2)}[mode]
            base = math.floor(xi)
            w1 = math.floor((xi - base) * one + Fraction(1, 2))
            res.append((min(max(base, 0), l_in - 1), min(max(base + 1, 0), l_in - 1), one - w1, w1))
        return res

    want = np.zeros((2, oh, ow, 3), dtype=np.int64)
    xc = x.astype(object) - zx
    for i, (r0, r1, a0, a1) in enumerate(axis(4, oh)):
        for j, (c0, c1, b0, b1) in enumerate(axis(5, ow)):
            total = a0 * (b0 * xc[:, r0, c0] + b1 * xc[:, r0, c1]) + a1 * (b0 * xc[:, r1, c0] + b1 * xc[:, r1, c1])
            want[:, i, j] = ref_requant(total, rq.multiplier[0], rq.shift[0], zx, 0, 2**bits - 1)
    np.testing.assert_array_equal(y, want)
    if bits == 8:  # ONNX (float) agrees within 1 LSB: the weights are rounded to F = 10 bits
        node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                                coordinate_transformation_mode=mode)
        ref = onnx_run(node, {"x": nchw(x.astype(np.float64))}, [("sizes", np.array([2, 3, oh, ow], dtype=np.int64))])
        assert np.max(np.abs(nhwc(ref) - y)) <= 1


def test_resize_identity_scale_is_a_copy():
    x = random_act((1, 5, 5, 4))
    np.testing.assert_array_equal(K["resize_nearest"](x, size=(5, 5)), x)
    rq = nm.bilinear_requant(0.3, 0.3, 7)
    assert rq.multiplier[0] == 2**30 and rq.shift[0] == 50  # 2^−20 exactly
    np.testing.assert_array_equal(K["resize_bilinear"](x, rq, zero_point=7, size=(5, 5)), x)


# --- ONNX quantized ops: bit for bit ---------------------------------------------------------

def _ties_ok(ours, theirs, acc, shift_bits):
    """Equal, except at exact ties (acc mod 2^s = 2^(s−1)), where RHU is one above half-to-even."""
    tie = (acc.astype(np.int64) % (1 << shift_bits)) == (1 << (shift_bits - 1))
    diff = ours.astype(np.int64) - theirs.astype(np.int64)
    assert np.all((diff == 0) | (tie & (diff == 1))), "a mismatch away from a tie"
    assert np.any(tie & (diff == 1)), "the case has no tie that rounds differently: choose another"
    assert np.all(diff[~tie] == 0)


def test_qlinearconv_bit_exact():
    zx, zy = 131, 120
    x = (zx + RNG.integers(-6, 7, (1, 6, 7, 8))).astype(np.uint8)  # small centred values: no clipping,
    wq = RNG.integers(-5, 6, (16, 4, 3, 3))                          # and many exact ties
    x[0, 0, 0] = 255
    bias = nm.Bias(RNG.integers(-127, 128, 16), 1, 8)
    w_scale = np.array([2.0 ** -(5 + c % 3) for c in range(16)], dtype=np.float32)
    x_scale, y_scale = np.float32(2.0**-6), np.float32(2.0**-8)
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                            pads=[1, 1, 1, 1], group=2, kernel_shape=[3, 3], strides=[1, 2])
    theirs = nhwc(onnx_run(node, {"x": nchw(x)}, [
        ("xs", x_scale), ("xz", np.uint8(zx)), ("w", wq.astype(np.int8)), ("ws", w_scale),
        ("wz", np.zeros(16, np.int8)), ("ys", y_scale), ("yz", np.uint8(zy)),
        ("b", bias.accumulator().astype(np.int32))], opset=13))
    weights = ConvWeights(wq, 8, 2)
    geo = dict(zero_point=zx, pads=(1, 1, 1, 1), strides=(1, 2))
    bound = nm.value_bound(36, 8, 8, bias.max_abs())
    rq = nm.requant(x_scale.astype(np.float64) * w_scale / y_scale, bound, zy)
    ours = K["conv"](x, weights, bias, rq, **geo)
    acc = K["conv_acc"](x, weights, bias, **geo)
    # μ = 2^−s with s = 3, 4, 5 by channel: a tie is acc ≡ 2^(s−1) mod 2^s
    shift = np.array([3 + c % 3 for c in range(16)])
    tie = (acc % (1 << shift)) == (1 << (shift - 1))
    diff = ours.astype(np.int64) - theirs
    assert np.all((diff == 0) | (tie & (diff == 1))), "a mismatch away from a tie"
    assert np.any(tie & (diff == 1)) and np.all(diff[~tie] == 0)


def test_qlinearmatmul_bit_exact():
    za, zy = 7, 100
    a = RNG.integers(0, 16, (16, 40)).astype(np.uint8)
    b = RNG.integers(-9, 10, (40, 24))
    b[:, 0] = 127
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
    theirs = onnx_run(node, {"a": a}, [("as", np.float32(2.0**-7)), ("az", np.uint8(za)), ("b", b.astype(np.int8)),
                                       ("bs", np.float32(2.0**-7)), ("bz", np.int8(0)), ("ys", np.float32(2.0**-10)),
                                       ("yz", np.uint8(zy))], opset=13)
    weights = ConvWeights(b.T, 8)
    rq = nm.requant([2.0**-4], nm.value_bound(40, 8, 8), zy)
    ours = K["fc"](a, weights, None, rq, zero_point=za)
    _ties_ok(ours, theirs, K["fc_acc"](a, weights, None, zero_point=za), 4)


def test_convinteger_and_matmulinteger_exact():
    x = random_act((2, 5, 6, 6))
    wq = random_weights((9, 2, 3, 2))
    node = helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], pads=[1, 0, 1, 1], group=3, strides=[2, 1],
                            dilations=[1, 2])
    theirs = onnx_run(node, {"x": nchw(x)}, [("w", wq.astype(np.int8)), ("xz", np.uint8(255))], opset=13)
    ours = K["conv_acc"](x, ConvWeights(wq, 8, 3), None, zero_point=255, pads=(1, 0, 1, 1), strides=(2, 1),
                         dilations=(1, 2))
    np.testing.assert_array_equal(ours, nhwc(theirs))
    a, b = random_act((3, 70)), random_weights((70, 20))
    node = helper.make_node("MatMulInteger", ["a", "b", "az"], ["y"])
    theirs = onnx_run(node, {"a": a}, [("b", b.astype(np.int8)), ("az", np.uint8(0))], opset=13)
    np.testing.assert_array_equal(K["fc_acc"](a, ConvWeights(b.T, 8), None, zero_point=0), theirs)


# --- registry and imports --------------------------------------------------------------------

def test_registry():
    assert set(kernels.kernel_names()) >= {"conv", "dw", "deconv", "fc", "ew_add", "ew_mult", "concat", "maxpool",
                                          "avgpool", "global_avgpool", "resize_nearest", "resize_bilinear", "lut",
                                          "requantize"}
    assert get_kernel("conv") is K["conv"]
    with pytest.raises(KernelNotFound, match=r"No kernel for op 'Einsum' \(layer net/einsum1\)"):
        get_kernel("Einsum", layer="net/einsum1")
    with pytest.raises(TypeError):
        K["conv"](np.zeros((1, 3, 3, 1), np.float32), ConvWeights(np.ones((1, 1, 1, 1), np.int8), 8), None,
                  nm.Requant([1], [0], 0, 0, 255), zero_point=0)


def test_runtime_import_stays_light():
    code = ("import sys, alls, alls.runtime, alls.runtime.numerics; "
            "assert 'numba' not in sys.modules and 'alls.runtime.kernels' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_the_network_edge_quantizes_as_the_float64_formula(bits, dtype):
    """(N5) clamp(Z + ⌊x/S + ½⌋) in one compiled pass: the same codes as NumPy's float64 steps,
    ties, infinities, huge values, strided input and every dtype included; NaN gives 0."""
    from alls.runtime.ops.base import Encoding

    enc = Encoding(0.0173, 37, bits)
    top = nm.activation_max(bits)
    rng = np.random.default_rng(bits)
    x = (rng.normal(size=(3, 4, 9, 10)) * 0.0173 * top).astype(dtype)
    if dtype != np.int64:
        x.flat[:9] = [np.inf, -np.inf, 1e30, -1e30, 0.5 * 0.0173, -37.5 * 0.0173, 1.5 * 0.0173, -0.0, 1e-45]
    for data in (x, x[:, :, ::2, 1::3]):
        want = np.clip(np.floor(np.asarray(data, np.float64) / enc.scale + 0.5) + enc.zero_point, 0, top)
        got = enc.quantize(data)
        assert got.dtype == enc.dtype and got.shape == data.shape
        np.testing.assert_array_equal(got, want.astype(enc.dtype))
    if dtype != np.int64:
        assert len(np.unique(enc.quantize(x))) > 10  # codes across the range, clipped at both ends
        assert enc.quantize(np.array([np.nan], dtype))[0] == 0
