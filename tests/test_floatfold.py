"""The float conv on small planes (alls.runtime.kernels.floatfold: the batch folded into the positions,
stacked where a plane is whole blocks, interleaved elsewhere), the packed weights kept per parameter
array (floatpack), and the small-layer paths beside them: the same bits as the direct conv for every
geometry, within float rounding of onnxruntime, and never stale weights."""

from __future__ import annotations

import gc

import numpy as np
import pytest

floatconv = pytest.importorskip("alls.runtime.kernels.floatconv")

from alls.runtime.kernels import _parallel, floatfold, floatlanes, floatpack  # noqa: E402
from alls.runtime.kernels.floating import global_pool, maxpool  # noqa: E402
from test_floatconv import reference  # noqa: E402

RNG = np.random.default_rng(20261128)
RELU6 = (2, 0.0, 6.0)  # `floatconv.EPILOGUES` number of ReLU6 and its constants

# (N, C, H, W), (C_out, KH, KW), strides, dilations, pads (top, left, bottom, right)
SMALL = [
    ((8, 32, 4, 4), (32, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # stacked: a 4x4 plane is one block
    ((8, 1, 8, 8), (16, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # stacked, one input channel
    ((1, 32, 4, 4), (32, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # batch 1
    ((3, 7, 3, 5), (9, 3, 3), (2, 1), (1, 2), (2, 0, 1, 3)),  # interleaved: strides, dilations, odd pads
    ((5, 2, 1, 1), (3, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # a 1x1 plane, the kernel mostly padding
    ((2, 4, 17, 9), (13, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),  # row phases
    ((1, 5, 12, 12), (7, 3, 5), (2, 3), (1, 1), (1, 2, 0, 1)),
    ((2, 4, 11, 13), (6, 3, 3), (1, 1), (2, 3), (2, 3, 2, 3)),
    ((1, 2, 9, 10), (4, 2, 3), (3, 2), (2, 1), (0, 0, 3, 3)),
    ((1, 3, 5, 6), (8, 7, 8), (1, 1), (1, 1), (1, 1, 1, 1)),  # the kernel covers the padded plane
    ((4, 16, 10, 10), (20, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # interleaved, 20 channels: a 2-row block
    ((3, 8, 7, 7), (14, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),  # 14 channels: a 2-row block after two
    ((2, 6, 16, 16), (12, 1, 1), (2, 2), (1, 1), (0, 0, 0, 0)),  # stacked, 1x1 at stride 2
    ((6, 8, 3, 3), (4, 3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),  # one output a plane: a 4-row block
]
# Stride 1, rows as wide as the input's, planes of whole blocks: read in place under masks (planes of
# more than `floatlanes.UP_TO` outputs, or fewer taps than `floatlanes.MIN_TAPS`: smaller ones run there)
IN_PLACE = [
    ((2, 5, 8, 12), (7, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((3, 4, 10, 8), (13, 5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),  # 13 channels: a 1-row block last
    ((2, 3, 20, 4), (6, 3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),  # dilated
    ((2, 3, 24, 4), (4, 3, 3), (1, 1), (1, 1), (2, 1, 0, 1)),  # rows shifted down
    ((2, 3, 3, 8), (5, 2, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # Ho = H + 1: a row past the input; 18 taps
    ((1, 2, 16, 16), (3, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # IN_PLACE_UP_TO outputs
    ((5, 3, 4, 4), (2, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),  # 1x1
]
SMALL += IN_PLACE


@pytest.mark.parametrize("geometry", IN_PLACE, ids=str)
def test_a_same_conv_is_read_in_place_with_the_direct_convs_bits_on_any_threads(geometry):
    x, weight, bias, *rest = case(*geometry)
    n, c, h, w = x.shape
    plan = floatconv._plan(x.shape, weight.shape, *rest, None)
    assert plan.serial is floatfold.in_place_part
    direct = floatconv.conv(x, weight, bias, *rest, threads=1, activation=RELU6, fold=False)
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(bits(floatconv.conv(x, weight, bias, *rest, threads=threads, activation=RELU6)),
                                      bits(direct))
    call = floatconv.prepare(weight, bias, *rest, RELU6)
    np.testing.assert_array_equal(bits(call(x)), bits(direct))
    np.testing.assert_array_equal(bits(call(x[-1:])), bits(direct[-1:]))  # the last image: masks at the array's end
    weight[-1] *= -2  # the weights are read as they lie: a change in place is run, the last channel's too
    bias[0] = 0.5
    np.testing.assert_array_equal(
        bits(call(x)), bits(floatconv.conv(x, weight, bias, *rest, threads=1, activation=RELU6, fold=False)))


def case(shape, kernel, strides, dilations, pads):
    x = RNG.standard_normal(shape).astype(np.float32)
    weight = RNG.standard_normal((kernel[0], shape[1], *kernel[1:])).astype(np.float32)
    bias = RNG.standard_normal(kernel[0]).astype(np.float32)
    return x, weight, bias, strides, dilations, pads


def bits(a):
    return np.ascontiguousarray(a).view(np.int32)


@pytest.mark.parametrize("geometry", SMALL, ids=str)
@pytest.mark.parametrize("activation", [(0, 0.0, 0.0), RELU6], ids=["linear", "relu6"])
def test_the_folded_conv_gives_the_direct_convs_bits(geometry, activation):
    x, weight, bias, *rest = case(*geometry)
    direct = floatconv.conv(x, weight, bias, *rest, threads=1, activation=activation, fold=False)
    folded = floatconv.conv(x, weight, bias, *rest, threads=1, activation=activation, fold=True)
    np.testing.assert_array_equal(bits(folded), bits(direct))
    np.testing.assert_array_equal(bits(floatconv.conv(x, weight, bias, *rest, activation=activation)), bits(direct))
    for threads in (2, 4):  # the blocks on parallel threads: the same bits
        np.testing.assert_array_equal(
            bits(floatconv.conv(x, weight, bias, *rest, threads=threads, activation=activation, fold=True)),
            bits(direct))
    for i in range(len(x)):  # and the same for any batch
        np.testing.assert_array_equal(
            bits(floatconv.conv(x[i:i + 1], weight, bias, *rest, threads=1, activation=activation, fold=True)[0]),
            bits(direct[i]))
    if activation[0] == 0:  # and the definition, within float32 rounding of its sums
        want = reference(x, weight, bias, *rest)
        scale = reference(np.abs(x), np.abs(weight), np.abs(bias), *rest)
        assert np.all(np.abs(folded - want) <= 2 * weight[0].size * np.finfo(np.float32).eps * scale + 1e-30)


def test_the_default_folds_small_planes_only():
    """A 12x12 plane (14 columns a row) fills 144 of the direct conv's 176 lanes: folded; a 40x40 plane
    fills 1600 of 1680: direct. A plane of at most 64 outputs runs with the channels in the lanes."""
    small = floatconv._plan((8, 32, 14, 14), (32, 32, 3, 3), (1, 1), (1, 1), (0, 0, 0, 0), None)
    large = floatconv._plan((1, 3, 40, 40), (16, 3, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), None)
    assert small.serial is floatfold.stack_part and large.serial is floatconv.conv_part
    same = floatconv._plan((8, 32, 8, 12), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), None)
    assert same.serial is floatfold.in_place_part  # as wide as its input, whole blocks: read in place
    tiny = floatconv._plan((8, 32, 4, 4), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), None)
    assert tiny.serial is floatlanes.lanes_part
    odd = floatconv._plan((2, 8, 10, 10), (8, 8, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), None)
    assert odd.serial is floatfold.fold_part  # 100 outputs a plane: not whole blocks, interleaved


@pytest.mark.parametrize("plane", [(4, 4), (5, 5)], ids=["stacked", "interleaved"])
def test_a_batch_past_the_scratch_budget_runs_in_groups_with_the_same_bits(plane):
    x, weight, bias, *rest = case((40, 256, *plane), (24, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    g = floatfold.group_size(40, 256, 24, 3, 3, 1, 1, *plane)
    assert 1 < g < 40  # several groups, the last one short
    direct = floatconv.conv(x, weight, bias, *rest, threads=1, fold=False)
    np.testing.assert_array_equal(bits(floatconv.conv(x, weight, bias, *rest, threads=1, fold=True)), bits(direct))
    np.testing.assert_array_equal(bits(floatconv.conv(x, weight, bias, *rest, threads=2, fold=True)), bits(direct))


def test_the_folded_conv_equals_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    from test_importer import build, node

    import alls
    from alls.runtime.exec.native import run_float

    for shape, attrs, w_shape in [((8, 32, 4, 4), {"pads": [1, 1, 1, 1]}, (32, 32, 3, 3)),  # read in place
                                  ((1, 3, 8, 8), {"pads": [2, 2, 2, 2], "dilations": [2, 2]}, (13, 3, 3, 3)),
                                  ((8, 16, 8, 8), {}, (32, 16, 1, 1)),  # a 1x1 conv read in place
                                  ((1, 5, 4, 4), {}, (7, 5, 1, 1)),
                                  ((3, 7, 5, 6), {"pads": [2, 0, 1, 1], "strides": [2, 1], "dilations": [1, 2]},
                                   (9, 7, 3, 3))]:
        weight = RNG.standard_normal(w_shape).astype(np.float32)
        bias = RNG.standard_normal(w_shape[0]).astype(np.float32)
        model = build([node("Conv", ["x", "w", "b"], "c", **attrs), node("Relu", ["c"], "y")],
                      {"w": weight, "b": bias}, inputs={"x": shape})
        x = RNG.standard_normal(shape).astype(np.float32)
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        got = next(iter(run_float(alls.load_model(model, name="net"), x)[0].values()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))


# ------------------------------------------------------------------ a small 1x1 conv read in place

# (N, C, H, W), C_out: planes of whole blocks (in place) and not (BLAS), channels that fill the blocks or not
POINTWISE = [((8, 16, 8, 8), 32), ((1, 16, 8, 8), 32), ((3, 5, 4, 4), 7), ((2, 3, 2, 8), 1), ((4, 9, 16, 16), 13),
             ((5, 6, 3, 5), 11), ((2, 7, 1, 1), 4)]


@pytest.mark.parametrize("shape,out_c", POINTWISE, ids=str)
@pytest.mark.parametrize("activation", [(0, 0.0, 0.0), RELU6], ids=["linear", "relu6"])
def test_a_small_1x1_conv_runs_in_place_with_the_direct_convs_bits(shape, out_c, activation):
    from alls.runtime.ops.conv import conv2d, in_place, prepare

    x, weight, bias, *rest = case(shape, (out_c, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0))
    attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0)}
    got = conv2d(x, weight, bias, attrs, 1, activation)
    want = reference(x, weight, bias, *rest)
    if activation[0]:
        want = np.clip(want, 0, 6)
    scale = reference(np.abs(x), np.abs(weight), np.abs(bias), *rest)
    assert np.all(np.abs(got - want) <= 2 * shape[1] * np.finfo(np.float32).eps * scale + 1e-30)
    if in_place(shape):  # the micro-kernel's chain: the direct conv's bits, for any batch
        direct = floatconv.conv(x, weight, bias, *rest, threads=1, activation=activation, fold=False)
        np.testing.assert_array_equal(bits(got), bits(direct))
        for i in range(len(x)):
            np.testing.assert_array_equal(bits(conv2d(x[i:i + 1], weight, bias, attrs, 1, activation)[0]), bits(direct[i]))
    assert in_place(shape) == (shape[2] * shape[3] % floatfold.LANES == 0)
    layer = type("Layer", (), {"attrs": {**attrs, "group": 1}, "activation": None})()
    call = prepare(layer, {"weight": weight, "bias": bias}) if activation[0] == 0 else None
    if call is not None:  # the prepared layer: the same bits, and weights changed in place are seen
        np.testing.assert_array_equal(bits(call([x])), bits(got))
        weight *= 2
        np.testing.assert_array_equal(bits(call([x])), bits(conv2d(x, weight, bias, attrs, 1, activation)))


def test_a_large_1x1_conv_stays_on_blas():
    from alls.runtime.ops.conv import in_place

    assert not in_place((8, 64, 32, 32)) and in_place((8, 16, 8, 8))


# ------------------------------------------------------------------ the packed weights' cache


def test_packed_weights_are_kept_per_array_and_never_served_stale():
    x, weight, bias, *rest = case((2, 8, 4, 4), (12, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    first = floatpack.packed(weight, bias)
    assert floatpack.packed(weight, bias)[0] is first[0]  # the same arrays: kept
    before = floatconv.conv(x, weight, bias, *rest, threads=1)
    weight[3, 2, 1, 1] += 1.0  # changed in place: packed again
    assert floatpack.packed(weight, bias)[0] is not first[0]
    after = floatconv.conv(x, weight, bias, *rest, threads=1)
    np.testing.assert_array_equal(bits(after), bits(floatconv.conv(x, weight.copy(), bias.copy(), *rest, threads=1)))
    assert not np.array_equal(after[:, 3], before[:, 3])
    bias[5] = -bias[5]  # the bias alone changed in place
    np.testing.assert_array_equal(bits(floatconv.conv(x, weight, bias, *rest, threads=1)),
                                  bits(floatconv.conv(x, weight.copy(), bias.copy(), *rest, threads=1)))
    zero = np.zeros_like(weight)
    assert bits(floatpack.packed(zero, bias)[0])[0] == 0
    zero[...] = -0.0  # equal to +0 for `==`, other bits: packed again
    assert bits(floatpack.packed(zero, bias)[0])[0] == bits(np.array([-0.0], np.float32))[0]


def test_replaced_parameters_are_packed_for_what_they_hold():
    """Arrays that die and are replaced (the executor's ``params=``, equalization) may take their
    ids: the cache serves an entry only to the very arrays it was made from."""
    x, weight, bias, *rest = case((2, 8, 4, 4), (12, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    for k in range(20):
        w = (weight * (k + 1)).astype(np.float32)
        got = floatconv.conv(x, w, bias, *rest, threads=1)
        np.testing.assert_array_equal(bits(got), bits(floatconv.conv(x, w.copy(), bias.copy(), *rest, threads=1)))
        del w, got
    gc.collect()
    alive = [key for key, entry in floatpack._packs.items() if entry[0]() is not None and entry[1]() is not None]
    assert len(alive) == len(floatpack._packs)  # dead arrays' entries are dropped


def test_packing_goes_on_while_the_collector_drops_packed_arrays():
    """Weights kept alive by a cycle die when the collector runs (here at almost every allocation, so
    also while `packed` works): their entries go, the packing never waits on itself, and the arrays
    that take their ids are packed for what they hold."""
    import threading

    done = []

    def work():
        threshold = gc.get_threshold()
        gc.set_threshold(1, 1, 1)  # collect at almost every allocation
        try:
            for k in range(300):
                weight = np.full((4, 2, 3, 3), k, np.float32)
                cycle = [weight]
                cycle.append(cycle)
                assert floatpack.packed(weight, np.zeros(4, np.float32))[0][0] == k
                del weight, cycle
        finally:
            gc.set_threshold(*threshold)
        done.append(True)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(120)
    assert done


def test_the_executor_runs_replaced_parameters():
    from test_importer import build, node

    import alls
    from alls.runtime.exec.native import run_float

    weight = RNG.standard_normal((16, 8, 3, 3)).astype(np.float32)
    bias = RNG.standard_normal(16).astype(np.float32)
    model = build([node("Conv", ["x", "w", "b"], "y", pads=[1, 1, 1, 1])], {"w": weight, "b": bias},
                  inputs={"x": (4, 8, 4, 4)})
    graph = alls.load_model(model, name="net")
    conv = next(layer for layer in graph if layer.kind == "conv")
    x = RNG.standard_normal((4, 8, 4, 4)).astype(np.float32)
    plain = next(iter(run_float(graph, x)[0].values()))
    scale = np.linspace(0.5, 2, 16, dtype=np.float32)
    params = {conv.name: {"weight": conv.params["weight"] * scale[:, None, None, None],
                          "bias": conv.params["bias"] * scale}}
    scaled = next(iter(run_float(graph, x, params=params)[0].values()))
    want = floatconv.conv(x, params[conv.name]["weight"].copy(), params[conv.name]["bias"].copy(), (1, 1), (1, 1),
                          (1, 1, 1, 1), threads=1)
    np.testing.assert_array_equal(bits(scaled), bits(want))
    np.testing.assert_array_equal(bits(next(iter(run_float(graph, x)[0].values()))), bits(plain))


# ------------------------------------------------------------------ small pools


def sequential_max(x, ho, wo):
    """Each 2x2 window's taps in row-major order, the first of equal values kept, a later NaN taking over."""
    out = np.empty(x.shape[:2] + (ho, wo), np.float32)
    for index in np.ndindex(*out.shape):
        i, c, y, z = index
        m = None
        for a in range(2):
            for b in range(2):
                v = x[i, c, 2 * y + a, 2 * z + b]
                if m is None or v > m or v != v:
                    m = v
        out[index] = m
    return out


@pytest.mark.parametrize("shape", [(8, 32, 8, 8), (2, 3, 9, 8), (1, 4, 7, 10), (3, 5, 6, 2), (2, 3, 4, 16), (2, 2, 5, 12),
                                   (1, 1, 2, 8)], ids=str)
def test_the_2x2_max_pool_keeps_the_window_order(shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[::7], flat[::11], flat[::13], flat[::17] = 0.0, -0.0, np.nan, -np.nan
    ho, wo = shape[2] // 2, shape[3] // 2
    got = maxpool(x, 2, 2, 2, 2, 1, 1, 0, 0, ho, wo)
    np.testing.assert_array_equal(bits(got), bits(sequential_max(x, ho, wo)))
    if wo > 1:  # the general loop (a window row narrower than the plane) agrees
        np.testing.assert_array_equal(bits(maxpool(x, 2, 2, 2, 2, 1, 1, 0, 0, ho, wo - 1)), bits(got[..., :wo - 1]))


@pytest.mark.parametrize("plane", [(1, 7), (2, 4), (3, 3), (4, 4), (5, 5), (8, 16), (11, 11), (16, 9)], ids=str)
def test_a_small_global_mean_is_numpys_sum(plane):
    x = (100 * RNG.standard_normal((3, 5, *plane))).astype(np.float32)
    want = np.add.reduce(x, axis=(2, 3), keepdims=True) / np.float32(plane[0] * plane[1])
    np.testing.assert_array_equal(bits(global_pool(x, True)), bits(want.astype(np.float32)))


def test_a_serial_kernel_leaves_numbas_thread_count_alone(monkeypatch):
    """A kernel without a parallel region runs on the calling thread whatever Numba's count: setting
    it (microseconds each way) would buy nothing."""
    import numba

    changes = []
    monkeypatch.setattr(numba, "set_num_threads", lambda n: changes.append(n))
    assert _parallel._serial(floatconv.conv_part) and not _parallel._serial(floatconv.conv_direct)
    outer = _parallel.set_budget(2)
    try:
        x, weight, bias, *rest = case((1, 4, 6, 6), (6, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
        floatconv.conv(x, weight, bias, *rest, threads=1)
    finally:
        _parallel.set_budget(outer)
    assert changes == []
