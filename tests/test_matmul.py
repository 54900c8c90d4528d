"""The `matmul` layer, a MatMul of two activations (attention's Q·Kᵀ and ·V): its integer kernel
against a slow reference of (N37) and against onnx.reference, its float run against onnxruntime, an
attention block and a whole YOLO11n quantized and emulated, and the forms the importer refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alls
from alls.codes import explain
from alls.runtime import numerics as nx
from alls.runtime.exec.emulator import run_numeric
from alls.runtime.ops import OPS
from alls.runtime.ops.base import Encoding
from alls.runtime.session.runner import Runner
from test_importer import load, node
from test_native import check
from zoo_blocks import Net
from zoo_recent import _psa_block, build_yolo11, build_yolov10n

kernels = pytest.importorskip("alls.runtime.kernels")
onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

MATMUL, MATMUL_ACC = kernels.KERNELS["matmul"], kernels.KERNELS["matmul_acc"]
U = {8: np.uint8, 16: np.uint16}


# ------------------------------------------------------------------ references


def slow_sums(a, b, za, zb):
    """Σ_k (a[..., i, k] − Z_a)·(b[..., k, j] − Z_b) in Python ints, looping over the definition (N37)."""
    a, b = np.asarray(a, dtype=object) - za, np.asarray(b, dtype=object) - zb
    out = np.empty((*a.shape[:-1], b.shape[-1]), dtype=object)
    for index in np.ndindex(out.shape):
        *batch, i, j = index
        out[index] = sum(a[(*batch, i, k)] * b[(*batch, k, j)] for k in range(a.shape[-1]))
    return out


def slow_matmul(a, b, za, zb, rq):
    """(N37) then (N13): clamp(Z_y + RHU(Σ·M, n), lo, hi), RHU as ⌊x / 2^n + 1/2⌋ in Python ints."""
    m, n = int(rq.multiplier[0]), int(rq.shift[0])
    sums = slow_sums(a, b, za, zb)
    return np.vectorize(lambda s: min(max(rq.zero_point + ((s * m + ((1 << n) >> 1)) >> n), rq.lo), rq.hi),
                        otypes=[np.int64])(sums)


def codes(rng, shape, bits):
    return rng.integers(0, 1 << bits, shape).astype(U[bits])


def onnx_run(node_, feeds, opset=13):
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for name, v in feeds.items()]
    graph = helper.make_graph([node_], "g", inputs, [helper.make_tensor_value_info("y", 0, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, feeds)[0]


# ------------------------------------------------------------------ the kernel


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bits_a=st.sampled_from([8, 16]), bits_b=st.sampled_from([8, 16]),
       out_bits=st.sampled_from([8, 16]), batch=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       m=st.integers(1, 6), k=st.integers(1, 40), n=st.integers(1, 6), log2_mu=st.floats(-30.0, 0.0))
def test_kernel_equals_the_slow_reference(seed, bits_a, bits_b, out_bits, batch, m, k, n, log2_mu):
    """Random shapes, zero points, codes, multipliers and clamps, 8 and 16 bits: equal, value by value."""
    rng = np.random.default_rng(seed)
    a, b = codes(rng, (*batch, m, k), bits_a), codes(rng, (*batch, k, n), bits_b)
    za, zb = int(rng.integers(0, 1 << bits_a)), int(rng.integers(0, 1 << bits_b))
    top = nx.activation_max(out_bits)
    lo, hi = sorted(int(v) for v in rng.integers(0, top + 1, 2))
    bound = k * nx.activation_max(bits_a) * nx.activation_max(bits_b)
    rq = nx.requant([2.0 ** log2_mu], bound, int(rng.integers(0, top + 1)), out_bits, lo, hi)
    ours = MATMUL(a, b, rq, zero_points=(za, zb))
    assert ours.dtype == U[out_bits] and ours.shape == (*batch, m, n)
    np.testing.assert_array_equal(ours, slow_matmul(a, b, za, zb, rq))
    np.testing.assert_array_equal(MATMUL_ACC(a, b, zero_points=(za, zb)), slow_sums(a, b, za, zb).astype(np.int64))


def test_kernel_at_the_largest_sum_int64_carries():
    """Two 16-bit operands at the far end of their codes over K = 32,769: Σ = K·65,535² < 2^47, exact;
    one more term would pass 2^47 and is refused."""
    k = 32769
    a, b = np.full((1, 1, k), 65535, np.uint16), np.full((1, k, 2), 65535, np.uint16)
    b[0, :, 1] = 0
    bound = k * 65535 * 65535
    assert bound < nx.INT64_VALUE_LIMIT
    sums = MATMUL_ACC(a, b, zero_points=(0, 0))
    assert sums.tolist() == [[[bound, 0]]]
    rq = nx.requant([1.0 / bound * 65535], bound, 0, 16)
    np.testing.assert_array_equal(MATMUL(a, b, rq, zero_points=(0, 0)), slow_matmul(a, b, 0, 0, rq))
    np.testing.assert_array_equal(MATMUL_ACC(a, b, zero_points=(65535, 0)), [[[0, 0]]])
    too_long = np.zeros((1, 1, k + 1), np.uint16), np.zeros((1, k + 1, 1), np.uint16)
    with pytest.raises(ValueError, match="2\\^47"):
        MATMUL_ACC(*too_long, zero_points=(0, 0))


def test_sums_are_exact_near_the_bound_with_values_of_both_signs():
    """Random 16-bit codes and zero points over K = 32,769: the sums (taken in float64 by BLAS, in its own
    order) equal Python's integer sums, whose partial sums reach far beyond float32's and 2^31."""
    rng = np.random.default_rng(47)
    k = 32769
    a, b = codes(rng, (1, 2, k), 16), codes(rng, (1, k, 3), 16)
    a[0, 0, : k // 2], b[0, : k // 2, 0] = 65535, 65535  # one long run of the largest products
    za, zb = int(rng.integers(0, 65536)), 3
    ours = MATMUL_ACC(a, b, zero_points=(za, zb))
    ca, cb = a.astype(np.int64) - za, b.astype(np.int64) - zb
    for i in range(2):
        for j in range(3):
            expected = sum(int(x) * int(y) for x, y in zip(ca[0, i].tolist(), cb[0, :, j].tolist()))
            assert int(ours[0, i, j]) == expected
    assert abs(int(ours[0, 0, 0])) > 2**44


@pytest.mark.parametrize("k", [258, 259])
def test_sums_are_exact_at_the_float32_edge(k):
    """8-bit codes over K = 258 (V = 258·255² < 2^24: summed in float32) and 259 (float64): the largest
    products, and random ones, equal Python's integer sums."""
    rng = np.random.default_rng(k)
    a, b = codes(rng, (2, 3, k), 8), codes(rng, (2, k, 4), 8)
    a[0, 0], b[0, :, 0] = 255, 255
    ours = MATMUL_ACC(a, b, zero_points=(0, 0))
    assert int(ours[0, 0, 0]) == k * 255 * 255
    np.testing.assert_array_equal(ours, slow_sums(a, b, 0, 0).astype(np.int64))
    za, zb = 131, 7
    np.testing.assert_array_equal(MATMUL_ACC(a, b, zero_points=(za, zb)), slow_sums(a, b, za, zb).astype(np.int64))


@pytest.mark.parametrize("a_shape, b_shape, dtype", [
    ((2, 3, 4), (2, 5, 3), np.uint8),  # inner dimensions differ
    ((2, 3, 4), (4, 3), np.uint8),  # ranks differ
    ((2, 3, 4), (3, 4, 3), np.uint8),  # batch axes differ
    ((2, 3, 4), (2, 4, 3), np.int32),  # not activation codes
])
def test_kernel_refuses_what_it_cannot_multiply(a_shape, b_shape, dtype):
    bad = np.zeros(a_shape, dtype), np.zeros(b_shape, np.uint8)
    with pytest.raises((ValueError, TypeError)):
        MATMUL_ACC(*bad, zero_points=(0, 0))


def test_sums_equal_onnx_matmulinteger():
    """MatMulInteger (uint8 operands, both zero points) is Σ of (N37) exactly, batched."""
    rng = np.random.default_rng(1)
    a, b = codes(rng, (2, 3, 5, 17), 8), codes(rng, (2, 3, 17, 4), 8)
    node_ = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    theirs = onnx_run(node_, {"a": a, "b": b, "az": np.uint8(131), "bz": np.uint8(7)})
    np.testing.assert_array_equal(MATMUL_ACC(a, b, zero_points=(131, 7)), theirs)


def test_requantized_equals_onnx_qlinearmatmul_but_for_its_ties():
    """QLinearMatMul with power-of-two scales: the same codes, except where Σ·μ ends in exactly one half,
    which QLinearMatMul rounds to even and RHU rounds up (the ties are found from Σ, and occur)."""
    rng = np.random.default_rng(2)
    a, b = codes(rng, (1, 2, 12, 9), 8), codes(rng, (1, 2, 9, 10), 8)
    za, zb, zy, shift = 120, 135, 128, 8
    node_ = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
    theirs = onnx_run(node_, {"a": a, "as": np.float32(2.0**-4), "az": np.uint8(za), "b": b, "bs": np.float32(2.0**-4),
                              "bz": np.uint8(zb), "ys": np.float32(2.0**0), "yz": np.uint8(zy)})
    rq = nx.requant([2.0**-shift], 9 * 255 * 255, zy)
    ours = MATMUL(a, b, rq, zero_points=(za, zb)).astype(np.int64)
    sums = MATMUL_ACC(a, b, zero_points=(za, zb))
    tie = sums % (1 << shift) == 1 << (shift - 1)
    diff = ours - theirs.astype(np.int64)
    assert np.all(diff[~tie] == 0) and np.all((diff[tie] == 0) | ((diff[tie] == 1) & (theirs[tie] % 2 == 0)))
    assert tie.any()


@pytest.mark.parametrize("bits_a, bits_b, out_bits", [(8, 8, 8), (16, 8, 8), (16, 16, 16)])
def test_dequantized_result_is_within_one_step_of_float_matmul(bits_a, bits_b, out_bits):
    """Any scales: S_y·(y − Z_y) is within one output step of onnx.reference's float MatMul of the
    dequantized operands, wherever that product lies inside the output's range."""
    rng = np.random.default_rng(bits_a + bits_b + out_bits)
    a, b = codes(rng, (2, 2, 7, 30), bits_a), codes(rng, (2, 2, 30, 6), bits_b)
    ea, eb = Encoding(0.0173, 97 << (bits_a - 8), bits_a), Encoding(0.0041, 30 << (bits_b - 8), bits_b)
    exact = onnx_run(helper.make_node("MatMul", ["a", "b"], ["y"]),
                     {"a": ea.dequantize(a).astype(np.float64), "b": eb.dequantize(b).astype(np.float64)})
    out = Encoding.from_range(float(exact.min()) * 0.8, float(exact.max()) * 0.8, out_bits)  # some clamp at both ends
    rq = nx.requant([ea.scale * eb.scale / out.scale], 30 * nx.activation_max(bits_a) * nx.activation_max(bits_b),
                    out.zero_point, out_bits)
    got = out.dequantize(MATMUL(a, b, rq, zero_points=(ea.zero_point, eb.zero_point))).astype(np.float64)
    inside = (exact >= out.dequantize(np.array(0))) & (exact <= out.dequantize(np.array(nx.activation_max(out_bits))))
    assert inside.mean() > 0.5 and (~inside).any()
    assert np.abs(got - exact)[inside].max() <= out.scale
    np.testing.assert_array_equal(got[~inside], np.clip(exact[~inside], got.min(), got.max()))


# ------------------------------------------------------------------ the importer


@pytest.mark.parametrize("x, z, why", [
    ((1, 8), (8, 4), "axis 0 is the images"),
    ((8,), (1, 8, 4), "axis 0 is the images"),
    ((1, 2, 3, 8), (1, 8, 4), "axis 0 is the images"),
    ((1, 3, 8), (2, 8, 4), "batch axes do not match"),
    ((1, 2, 3, 8), (1, 3, 8, 4), "batch axes do not match"),
])
def test_forms_without_a_matmul_layer_are_als416(x, z, why):
    g = load([node("MatMul", ["x", "z"], "y", name="mm")], inputs={"x": x, "z": z})
    [d] = g.diagnostics
    assert d.code == "ALS416" and why in d.message and "`mm`" in d.message and not g.get("mm").supported
    assert "axis 0 is the images" in explain("ALS416")


def test_sixteen_bit_operands_over_too_long_a_sum_are_als417():
    g = load([node("MatMul", ["x", "z"], "y", name="mm")], inputs={"x": (1, 1, 2, 32770), "z": (1, 1, 32770, 2)})
    layer = g.get("mm")
    enc = {layer.inputs[0]: Encoding(0.01, 0, 16), layer.inputs[1]: Encoding(0.01, 0, 16), layer.name: Encoding(1, 0, 8)}
    with pytest.raises(alls.AllsError) as error:
        OPS["matmul"].quantize(layer, None, {}, enc, {})
    assert [d.code for d in error.value.diagnostics] == ["ALS417"] and "K = 32770" in str(error.value)
    enc[layer.inputs[1]] = Encoding(0.01, 0, 8)  # one 8-bit operand: 32770·65535·255 < 2^47
    assert OPS["matmul"].quantize(layer, None, {}, enc, {}).rq.bound == 32770 * 65535 * 255


# ------------------------------------------------------------------ in a network

HW = 8  # the attention block's feature map: 8x8, 64 tokens


def psa_model(channels: int = 128) -> onnx.ModelProto:
    """YOLO11's PSA block (ultralytics' Attention: qkv conv, Q·Kᵀ, scale, Softmax over the keys, V·attnᵀ,
    positional depthwise conv, projection, then the feed-forward pair) between two convs."""
    net = Net(7)
    net.channels["x"] = channels
    stem = net.conv("x", channels, 1, 1, "stem")
    y = net.conv(_psa_block(net, stem, HW, "m"), channels, 1, 1, "head", act=None)
    return net.model("x", [1, channels, HW, HW], [(y, "y")], "psa")


def test_attention_block_float_target_matches_onnxruntime():
    check(psa_model())


@pytest.fixture(scope="module")
def psa_runner():
    runner = Runner(psa_model())
    runner.quantize(np.random.default_rng(0).standard_normal((64, HW, HW, 128)).astype(np.float32), progress=False)
    return runner


def snr_db(reference: np.ndarray, value: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((reference - value) ** 2.0)))


def test_attention_block_quantizes_and_follows_native(psa_runner):
    graph = psa_runner.graph
    assert graph.diagnostics == () and [layer.kind for layer in graph].count("matmul") == 2
    x = np.random.default_rng(1).standard_normal((8, HW, HW, 128)).astype(np.float32)
    native, numeric = psa_runner.infer(x, target="native").output, psa_runner.infer(x).output
    assert snr_db(native, numeric) > 25


def test_attention_block_at_16_bits_is_closer_to_native(psa_runner):
    """With every layer at a16_w16 both matmuls multiply 16-bit operands (int64 sums) and the block's
    output comes nearer the float network than at 8 bits."""
    runner = Runner(psa_model())
    runner.load_script("quantization_param({*}, precision_mode=a16_w16)\n")
    runner.quantize(np.random.default_rng(0).standard_normal((64, HW, HW, 128)).astype(np.float32), progress=False)
    layers = runner.quantized.layers
    for layer in (layer for layer in runner.graph if layer.kind == "matmul"):
        assert [layers[name].out.bits for name in layer.inputs] == [16, 16] and layers[layer.name].out.bits == 16
    x = np.random.default_rng(1).standard_normal((8, HW, HW, 128)).astype(np.float32)
    native = runner.infer(x, target="native").output
    sixteen, eight = snr_db(native, runner.infer(x).output), snr_db(native, psa_runner.infer(x).output)
    assert sixteen > eight + 20


def _codes(runner, seed=2):
    graph = runner.graph
    x = np.random.default_rng(seed).standard_normal((4, 128, HW, HW)).astype(np.float32)
    _, taps = run_numeric(graph, runner.quantized.layers, {graph.inputs[0].name: x}, taps="all", raw_out=True)
    return taps


def test_attention_matmuls_are_bit_exact_in_the_network(psa_runner):
    """Each matmul's codes in the running network equal the slow reference of (N37) on its input codes
    (the operands of shape (N, heads, d, HW) and (N, heads, HW, HW), as the importer lays them out)."""
    taps, layers = _codes(psa_runner), psa_runner.quantized.layers
    for layer in (layer for layer in psa_runner.graph if layer.kind == "matmul"):
        a, b = (taps[name] for name in layer.inputs)
        assert a.ndim == 4 and a.shape[1] == 2 and taps[layer.name].shape == (4, *layer.output_shape[1:])
        za, zb = (layers[name].out.zero_point for name in layer.inputs)
        np.testing.assert_array_equal(taps[layer.name], slow_matmul(a, b, za, zb, layers[layer.name].rq),
                                      err_msg=layer.name)


def test_softmax_over_the_keys_is_exact_in_the_network(psa_runner):
    """The attention's Softmax (axis −1 of (N, heads, HW, HW)) in integers: its codes are the Q15 exp
    table normalized by an exact division, taken from its definition on its input codes, and within
    one output step of float softmax on the dequantized input."""
    taps, layers = _codes(psa_runner), psa_runner.quantized.layers
    [layer] = [layer for layer in psa_runner.graph if layer.kind == "softmax"]
    assert layer.attrs["axis"] == -1 and len(layer.output_shape) == 4
    x, y, xenc, yenc = taps[layer.inputs[0]], taps[layer.name], layers[layer.inputs[0]].out, layers[layer.name].out
    d = (x.max(axis=-1, keepdims=True) - x).astype(np.int64)
    e = np.vectorize(lambda t: math.floor(math.exp(-xenc.scale * t) * 2**15 + 0.5), otypes=[np.int64])(d)
    total, top = e.sum(axis=-1, keepdims=True), nx.activation_max(yenc.bits)
    np.testing.assert_array_equal(y, (2 * e * top + total) // (2 * total))
    r = xenc.dequantize(x).astype(np.float64)
    want = np.exp(r - r.max(axis=-1, keepdims=True))
    want /= want.sum(axis=-1, keepdims=True)
    assert np.abs(yenc.dequantize(y) - want).max() <= yenc.scale


# ------------------------------------------------------------------ the zoo's attention networks

SIZE = 64


def test_yolov10n_psa_imports_with_nothing_unsupported():
    graph = alls.load_model(build_yolov10n(imgsz=SIZE))
    assert graph.diagnostics == () and all(layer.supported for layer in graph)
    assert [layer.short_name for layer in graph if layer.kind == "matmul"] == ["matmul1", "matmul2"]


def test_yolo11n_imports_quantizes_and_runs_in_integers():
    """YOLO11n whole (C2PSA attention and the Detect head's decoding included): no ALS401, the default
    script, 64 calibration images; on 8 others the SNR against the float network of the output and of
    the attention's layers (34.7 dB at the output, 36.5 and 39.6 dB at the two matmuls when written)."""
    model = build_yolo11("n", imgsz=SIZE)
    graph = alls.load_model(model)
    assert graph.diagnostics == () and [layer.kind for layer in graph].count("matmul") == 2
    runner = Runner(model)
    rng = np.random.default_rng(0)
    runner.quantize(rng.random((64, SIZE, SIZE, 3)).astype(np.float32), progress=False)
    x = rng.random((8, SIZE, SIZE, 3)).astype(np.float32)
    attention = [layer.name for layer in graph if layer.kind in ("matmul", "softmax")][:3]
    native, numeric = runner.infer(x, target="native", taps=attention), runner.infer(x, taps=attention)
    assert native.output.shape == numeric.output.shape == (8, 84, sum((SIZE // s) ** 2 for s in (8, 16, 32)))
    assert snr_db(native.output, numeric.output) > 30
    assert [graph[name].kind for name in attention] == ["matmul", "softmax", "matmul"]
    assert all(snr_db(native.taps[name], numeric.taps[name]) > 30 for name in attention)
