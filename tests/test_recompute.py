"""Tensors beyond a store's budget computed again from their inputs instead of spilled to disk: reads by
slices, the inputs' lifetimes and bytes, chains, the rule, and finetune and bias correction giving the
same model with them as with every such tensor spilled."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from alls.runtime import Runner
from alls.runtime.exec import emulator, pool, recompute, stream
from alls.runtime.exec.recompute import Again, Recomputed

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
DIGITS = SAMPLES / "digits_cnn.onnx"
SCRIPT = (SAMPLES / "digits.alls").read_text() + (
    "post_quantization_optimization(bias_correction, policy=enabled)\n"
    "post_quantization_optimization(finetune, policy=enabled, dataset_size=64, epochs=1)\n")


def _again(inputs, run=lambda xs: xs[0] * 2 + 1, seconds: float = 1e-9, reads: int = 1) -> Again:
    return Again(lambda: run, tuple(inputs), seconds, reads)


def _store_with(budget: int, **arrays: np.ndarray) -> stream.Store:
    store = stream.Store(budget)
    for name, array in arrays.items():
        store[name] = array
    return store


# ----------------------------------------------------------------- reads


def test_a_recomputed_tensor_reads_by_slices_as_a_spill_does():
    x = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4)
    store = _store_with(x.nbytes, x=x)
    y = store.allocate((6, 4), np.uint8, _again([x]))
    assert isinstance(y, Recomputed) and stream.is_streamed(y)
    assert (y.shape, y.dtype, y.nbytes, len(y), y.ndim) == ((6, 4), np.dtype(np.uint8), 24, 6, 2)
    np.testing.assert_array_equal(y[1:4], x[1:4] * 2 + 1)
    np.testing.assert_array_equal(y[4:100], x[4:] * 2 + 1)
    assert y[3:3].shape == (0, 4)
    np.testing.assert_array_equal(np.asarray(y), x * 2 + 1)
    assert store.recomputed == 24 and store.spilled == 0
    with pytest.raises(TypeError):
        y[2]
    with pytest.raises(TypeError):
        y[::2]


def test_a_read_that_gives_the_wrong_shape_is_caught():
    x = np.zeros((4, 3), np.uint8)
    store = _store_with(x.nbytes, x=x)
    y = store.allocate((4, 5), np.uint8, _again([x], run=lambda xs: xs[0]))
    with pytest.raises(AssertionError):
        y[0:2]


def test_the_store_spills_what_is_not_worth_computing_again_or_whose_inputs_it_does_not_hold(monkeypatch):
    x = np.zeros((8, 16), np.uint8)
    store = _store_with(x.nbytes, x=x)
    assert isinstance(store.allocate((8, 16), np.uint8, _again([x], seconds=1.0, reads=2)), stream.Spill)
    assert isinstance(store.allocate((8, 16), np.uint8, _again([x.copy()])), stream.Spill)  # not the store's
    source = stream.Source(x, lambda a: a, (16,))
    assert isinstance(store.allocate((8, 16), np.uint8, _again([source])), stream.Spill)  # images, not a tensor
    monkeypatch.setattr(recompute, "RECOMPUTE", False)
    assert isinstance(store.allocate((8, 16), np.uint8, _again([x])), stream.Spill)
    monkeypatch.setattr(recompute, "RECOMPUTE", True)
    assert isinstance(store.allocate((8, 16), np.uint8, _again([x])), Recomputed)
    assert store.spilled == 4 * x.nbytes
    store.close()


def test_the_rule_weighs_the_runs_repeated_against_the_disk_saved():
    image = 1 << 20  # a MiB a image: 2.4 ms to write, 0.8 ms to read
    saved = image * (recompute.DISK_WRITE_SECONDS + 2 * recompute.DISK_READ_SECONDS)  # read twice
    weight = recompute.COMPUTE_WEIGHT
    assert recompute.worth(_again([], seconds=1.0, reads=1), image)  # read once: the run is only moved
    assert recompute.worth(_again([], seconds=0.9 * saved / weight, reads=2), image)
    assert not recompute.worth(_again([], seconds=1.1 * saved / weight, reads=2), image)
    assert not recompute.worth(_again([], seconds=0.9 * saved / weight, reads=3), image)
    # a 1x1 convolution of 16 to 96 channels (CenterFace's conv3), read by a layer trained on it: its
    # run costs about a third of the disk's write and read of its output
    conv = recompute.run_seconds(16 * 96, 96, 16)
    assert recompute.worth(_again([], seconds=conv, reads=2), 96)
    assert 2.5 * conv < 96 * (recompute.DISK_WRITE_SECONDS + recompute.DISK_READ_SECONDS)
    # the depthwise 3x3 on it, the expansion run again for each of its reads, is not
    depthwise = recompute.run_seconds(9 * 96, 96, 96)
    assert not recompute.worth(_again([], seconds=depthwise + conv, reads=2), 96)


# ------------------------------------------------------------- lifetimes


def test_the_inputs_stay_and_stay_counted_until_the_recomputed_tensor_is_deleted():
    x = np.arange(40, dtype=np.uint8).reshape(10, 4)
    store = _store_with(x.nbytes, x=x)
    y = store.allocate((10, 4), np.uint8, _again([x, x], run=lambda xs: xs[0] + xs[1]))
    del store["x"]  # its last reader ran: the name goes, the array stays for y
    store["y"] = y
    assert "x" not in store and store.used == x.nbytes and store.held == 1
    np.testing.assert_array_equal(y[2:5], x[2:5] * 2)
    del store["y"]
    assert store.used == 0 and store.held == 0


def test_an_input_outliving_the_recomputed_tensor_is_freed_by_its_own_name():
    x = np.zeros((10, 4), np.uint8)
    store = _store_with(x.nbytes, x=x)
    store["y"] = store.allocate((10, 4), np.uint8, _again([x]))
    del store["y"]
    assert store.used == x.nbytes and store.held == 0
    del store["x"]
    assert store.used == 0


def test_a_chain_reads_through_and_frees_every_link_when_its_end_dies():
    x = np.arange(12, dtype=np.uint8).reshape(6, 2)
    store = _store_with(x.nbytes, x=x)
    first = store.allocate((6, 2), np.uint8, _again([x], seconds=2e-9, reads=1))
    store["first"] = first
    del store["x"]
    # a chain is weighed as if read twice: its runs (3 ns an image, weighed twice) against the disk's write and two reads
    # of its 2 bytes an image (8 ns)
    costly = store.allocate((6, 2), np.uint8, _again([first], seconds=7e-9))
    assert isinstance(costly, stream.Spill)
    second = store.allocate((6, 2), np.uint8, _again([first], run=lambda xs: xs[0] + 3, seconds=1e-9))
    assert isinstance(second, Recomputed) and second.seconds == pytest.approx(3e-9)  # the chain's, per image
    store["second"] = second
    del store["first"]
    assert store.used == x.nbytes and store.held == 2
    np.testing.assert_array_equal(second[1:4], x[1:4] * 2 + 4)
    del store["second"]
    assert store.used == 0 and store.held == 0 and len(store) == 0


def test_closing_a_store_frees_what_recomputed_tensors_held():
    x = np.zeros((6, 2), np.uint8)
    store = _store_with(x.nbytes, x=x)
    store["y"] = store.allocate((6, 2), np.uint8, _again([x]))
    spilled = store["s"] = store.allocate((6, 2), np.uint8)
    store.close()
    assert store.used == 0 and store.held == 0 and spilled.file.closed


def test_a_spilled_input_is_read_from_disk_and_not_closed_while_a_recomputed_tensor_reads_it():
    store = stream.Store(0)
    spilled = store["s"] = store.allocate((6, 2), np.uint8)
    spilled[:] = np.arange(12, dtype=np.uint8).reshape(6, 2)
    y = store["y"] = store.allocate((6, 12), np.uint8, _again([spilled], run=lambda xs: np.tile(xs[0], 6)))
    assert isinstance(y, Recomputed)
    assert y.seconds == pytest.approx(1e-9 + 2 * recompute.DISK_READ_SECONDS)  # a read reads the input's bytes
    del store["s"]
    assert not spilled.file.closed
    np.testing.assert_array_equal(y[2:5], np.tile(np.arange(12, dtype=np.uint8).reshape(6, 2)[2:5], 6))
    del store["y"]
    assert spilled.file.closed


# ------------------------------------------------------------ whole runs


def _quantize(memory_limit: int | None):
    runner = Runner(DIGITS, progress=False)
    runner.load_script(SCRIPT)
    if memory_limit is not None:
        runner.memory_limit = memory_limit  # below what check_memory_limit admits
    return runner.quantize(np.load(SAMPLES / "calib.npy"))


def _counted(monkeypatch) -> list[stream.Store]:
    stores: list[stream.Store] = []
    made = stream.Store.__init__

    def counted(self, *args, **kwargs):
        made(self, *args, **kwargs)
        stores.append(self)

    monkeypatch.setattr(stream.Store, "__init__", counted)
    return stores


def _same(a, b) -> bool:
    """Equal values, arrays and dataclasses (a layer's constants) compared field by field."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and _same(vars(a), vars(b))
    return bool(a == b)


def test_finetune_and_bias_correction_give_the_same_model_computing_again_as_spilling(monkeypatch):
    """With the live tensors' budget (half the limit) holding the input images' codes but not the first
    convolution's output, that output is computed again (from the images' codes, while the next layer
    and finetune read it) instead of spilled: the weights, the report and the outputs are the same."""
    limit = 40 << 10
    monkeypatch.setattr(recompute, "RECOMPUTE", False)
    stores = _counted(monkeypatch)
    spilled = _quantize(limit)
    assert sum(s.recomputed for s in stores) == 0
    before = sum(s.spilled for s in stores)
    monkeypatch.setattr(recompute, "RECOMPUTE", True)
    stores.clear()
    again = _quantize(limit)
    assert sum(s.recomputed for s in stores) > 0, "nothing was computed again"
    assert sum(s.spilled for s in stores) == before - sum(s.recomputed for s in stores)
    assert all(s.used == 0 and s.held == 0 for s in stores)
    for name, qa in spilled.layers.items():
        assert _same(vars(qa), vars(again.layers[name])), name
    assert spilled.report["bias_correction"] == again.report["bias_correction"]
    for a, b in zip(spilled.report["finetune"], again.report["finetune"], strict=True):
        assert replace(a, seconds=0.0) == replace(b, seconds=0.0)
    assert spilled.report["heldout"] == again.report["heldout"]
    x = np.load(SAMPLES / "test_x.npy")[:32]
    np.testing.assert_array_equal(again.run(x).output, spilled.run(x).output)


def test_a_read_in_a_pool_thread_runs_the_layer_there_not_through_the_pool(monkeypatch):
    """The parts of a store's run go through `pool.each`; a `Recomputed` input read in one of them runs
    its layer in that thread, one part after another, and never waits on the pool itself."""
    inside = threading.local()
    nested: list[str] = []
    original = pool.each

    def watched(items, work):
        def marked(item):
            inside.depth = getattr(inside, "depth", 0) + 1
            try:
                return work(item)
            finally:
                inside.depth -= 1

        if getattr(inside, "depth", 0):
            nested.append(threading.current_thread().name)
        return original(items, marked)

    monkeypatch.setattr(emulator, "each", watched)
    monkeypatch.setattr(emulator, "CHUNK_BYTES", 1 << 10)  # many parts a layer
    stores = _counted(monkeypatch)
    _quantize(40 << 10)
    assert sum(s.recomputed for s in stores) > 0
    assert not nested
