"""The float conv on tiny planes with the output channels in the lanes (alls.runtime.kernels.floatlanes):
the direct conv's bits for every geometry it takes (odd sizes, strides, dilations, pads, windows wholly
in the padding, channel counts that leave a block part empty, batch 1), on any thread count, prepared
or not; within float32 rounding of the definition and of onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

floatconv = pytest.importorskip("alls.runtime.kernels.floatconv")

from alls.runtime.kernels import floatlanes  # noqa: E402
from test_floatconv import reference  # noqa: E402
from test_floatfold import bits, case  # noqa: E402

RELU6 = (2, 0.0, 6.0)
SIGMOID = (6, 0.0, 0.0)

# (N, C, H, W), (C_out, KH, KW), strides, dilations, pads (top, left, bottom, right)
TINY = [
    ((8, 32, 4, 4), (32, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # the digits CNN's conv3
    ((1, 32, 4, 4), (32, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # batch 1: a class of one position
    ((3, 7, 3, 5), (9, 3, 3), (2, 1), (1, 2), (2, 0, 1, 3)),  # 9 channels: a pair of blocks, 7 lanes not stored
    ((5, 4, 1, 1), (3, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # a 1x1 plane, one block of 3 channels
    ((2, 3, 1, 1), (5, 3, 3), (1, 1), (1, 1), (3, 3, 3, 3)),  # windows wholly in the padding: the bias alone
    ((4, 16, 5, 7), (24, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),  # stride 2: a pair, then a block alone
    ((2, 6, 6, 6), (17, 3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),  # dilated; the last block one channel
    ((3, 8, 8, 8), (40, 2, 3), (1, 2), (1, 1), (0, 1, 1, 0)),  # a 2x3 kernel, odd pads
    ((7, 12, 3, 3), (8, 3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),  # no padding: one class of 7 positions
    ((2, 9, 8, 8), (13, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # UP_TO outputs a plane
]


@pytest.mark.parametrize("geometry", TINY, ids=str)
@pytest.mark.parametrize("activation", [(0, 0.0, 0.0), RELU6, SIGMOID], ids=["linear", "relu6", "sigmoid"])
def test_a_tiny_plane_runs_with_the_channels_in_the_lanes_and_the_direct_convs_bits(geometry, activation):
    x, weight, bias, *rest = case(*geometry)
    plan = floatconv._plan(x.shape, weight.shape, *rest, None)
    assert plan.serial is floatlanes.lanes_part
    direct = floatconv.conv(x, weight, bias, *rest, threads=1, activation=activation, fold=False)
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(
            bits(floatconv.conv(x, weight, bias, *rest, threads=threads, activation=activation)), bits(direct))
    for i in range(len(x)):  # the same for any batch
        np.testing.assert_array_equal(
            bits(floatconv.conv(x[i:i + 1], weight, bias, *rest, threads=1, activation=activation)[0]),
            bits(direct[i]))
    call = floatconv.prepare(weight, bias, *rest, activation)
    np.testing.assert_array_equal(bits(call(x)), bits(direct))
    if activation[0] == 0:  # and the definition, within float32 rounding of its sums
        want = reference(x, weight, bias, *rest)
        scale = reference(np.abs(x), np.abs(weight), np.abs(bias), *rest)
        assert np.all(np.abs(direct - want) <= 2 * weight[0].size * np.finfo(np.float32).eps * scale + 1e-30)
    weight[-1] *= -2  # changed in place: packed again, the last channel's too
    bias[0] = 0.5
    np.testing.assert_array_equal(
        bits(call(x)), bits(floatconv.conv(x, weight, bias, *rest, threads=1, activation=activation, fold=False)))


def test_a_batch_with_work_for_threads_splits_the_channel_blocks_with_the_same_bits():
    x, weight, bias, *rest = case((32, 64, 4, 4), (72, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    direct = floatconv.conv(x, weight, bias, *rest, threads=1, activation=RELU6, fold=False)
    for threads in (2, 3, 4):
        np.testing.assert_array_equal(
            bits(floatconv.conv(x, weight, bias, *rest, threads=threads, activation=RELU6)), bits(direct))
    assert floatconv.prepare(weight, bias, *rest, RELU6)(x).tobytes() == direct.tobytes()


def test_the_tables_list_only_the_taps_inside_the_plane():
    """A 4x4 plane, 3x3 kernel, pads of 1: nine classes (corners 4 taps a channel, edges 6, the middle
    9), 49 taps a channel in all, every position of every image once."""
    taps, classes, positions = floatlanes.tables((2, 3, 4, 4), (5, 3, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    classes = classes.reshape(-1, 4)
    assert len(classes) == 9
    assert sorted((t1 - t0) // 3 for t0, t1, _, _ in classes) == [4] * 4 + [6] * 4 + [9]
    assert len(taps) // 2 == 3 * 49
    assert sorted(positions.reshape(-1, 2)[:, 1]) == sorted(i * 5 * 16 + q for i in range(2) for q in range(16))


def test_which_convs_take_the_lanes():
    assert floatlanes.takes(4, 4, 32, 3, 3)  # the digits CNN's conv3
    assert not floatlanes.takes(8, 8, 1, 3, 3)  # 9 taps an output: its first conv keeps the vector stores
    assert not floatlanes.takes(4, 4, 64, 1, 1)  # a 1x1 conv: no padding, its own in-place form
    assert not floatlanes.takes(8, 9, 32, 3, 3)  # more than UP_TO outputs a plane


def test_the_lanes_equal_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    from test_importer import build, node

    import alls
    from alls.runtime.exec.native import run_float

    rng = np.random.default_rng(7)
    for shape, attrs, w_shape in [((8, 32, 4, 4), {"pads": [1, 1, 1, 1]}, (32, 32, 3, 3)),
                                  ((1, 32, 4, 4), {"pads": [1, 1, 1, 1]}, (32, 32, 3, 3)),
                                  ((3, 7, 5, 6), {"pads": [2, 0, 1, 1], "strides": [2, 1], "dilations": [1, 2]},
                                   (9, 7, 3, 3)),
                                  ((2, 5, 2, 3), {"pads": [2, 2, 2, 2]}, (19, 5, 3, 3))]:
        weight = rng.standard_normal(w_shape).astype(np.float32)
        bias = rng.standard_normal(w_shape[0]).astype(np.float32)
        model = build([node("Conv", ["x", "w", "b"], "c", **attrs), node("Relu", ["c"], "y")],
                      {"w": weight, "b": bias}, inputs={"x": shape})
        x = rng.standard_normal(shape).astype(np.float32)
        graph = alls.load_model(model, name="net")
        conv = next(layer for layer in graph if layer.kind == "conv")
        assert floatconv._planned(x.shape, w_shape, tuple(conv.attrs["strides"]), tuple(conv.attrs["dilations"]),
                                  tuple(conv.attrs["pads"]), None).serial is floatlanes.lanes_part
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        got = next(iter(run_float(graph, x)[0].values()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))
