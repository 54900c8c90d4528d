"""The parts of a pass on several threads (`alls.runtime.exec.pool`): the same results as one after another."""

from __future__ import annotations

import threading
from dataclasses import replace
import time
from pathlib import Path

import numpy as np
import pytest

import alls
import alls.runtime.exec.pool as pool
import alls.runtime.kernels._parallel as parallel
from alls.runtime.exec.native import run_float
from alls.runtime.exec.threads import numba_threads
from alls.runtime import Runner
from test_importer import DIGITS

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"


@pytest.fixture
def two_threads(monkeypatch):
    """The pool on two threads whatever the machine's load (when Numba's threading layer allows it)."""
    from alls.runtime.kernels.floatconv import conv_direct  # noqa: F401  (a parallel kernel: the layer is chosen)

    run_float(alls.load_model(DIGITS, input_shapes=(1, 1, 8, 8)),
              np.zeros((64, 1, 8, 8), np.float32))  # a run large enough to start a parallel region
    if not pool._concurrent_regions():
        pytest.skip("Numba's threading layer here (workqueue) runs one parallel region at a time")
    monkeypatch.setattr(parallel, "free_cores", lambda: 2)
    with numba_threads(2):
        yield


def test_each_keeps_the_order_and_runs_the_items_on_the_threads(two_threads):
    names, running, most = set(), [0], [0]
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            names.add(threading.current_thread().name)
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return i * i

    assert pool.workers(10) == 2
    assert list(pool.each(range(10), work)) == [i * i for i in range(10)]
    assert all(name.startswith("alls-part") for name in names) and len(names) == 2
    assert most[0] == 2  # both threads at once, never more


def test_each_runs_in_the_calling_thread_on_one_thread(monkeypatch):
    monkeypatch.setattr(parallel, "free_cores", lambda: 1)
    with numba_threads(2):
        assert pool.workers(8) == 1
        seen = list(pool.each(range(4), lambda i: threading.current_thread() is threading.main_thread()))
    assert seen == [True] * 4
    with numba_threads(1):
        assert pool.workers(8) == 1
    assert pool.workers(1) == 1


def test_a_failing_part_raises_in_the_caller(two_threads):
    def work(i: int) -> int:
        if i == 3:
            raise ValueError("part 3")
        return i

    with pytest.raises(ValueError, match="part 3"):
        list(pool.each(range(8), work))


def test_a_part_runs_its_kernels_on_one_thread(two_threads):
    from alls.runtime.kernels._parallel import budget

    assert set(pool.each(range(6), lambda i: budget())) == {1}


def test_the_float_executor_in_parts_on_two_threads_gives_the_same_bits(two_threads, monkeypatch):
    import alls.runtime.exec.native as native

    graph = alls.load_model(DIGITS, input_shapes=(1, 1, 8, 8))
    x = np.random.default_rng(1).uniform(0, 1, (53, 1, 8, 8)).astype(np.float32)
    monkeypatch.setattr(native, "PART_BYTES", 4 * 32 * 8 * 8 * 4)  # 4 images a part
    together = run_float(graph, x)[0]
    monkeypatch.setattr(pool, "workers", lambda parts: 1)
    alone = run_float(graph, x)[0]
    for name in alone:
        np.testing.assert_array_equal(together[name], alone[name])


def test_finetune_with_its_passes_on_two_threads_learns_the_same_layers(two_threads, monkeypatch):
    """The float targets' batches on two threads and the start network's check beside the training: the
    learned layers, the report's losses and the verdict are those of the passes taken one part after
    another (the integer pass takes its parts in turn, each on both threads: `emulator._rest`)."""
    import alls.runtime.algorithms.finetune as finetune

    monkeypatch.setattr(finetune, "_MOST_IMAGES", 8)  # float batches of 8 images
    x = np.load(SAMPLES / "calib.npy")
    script = ("quantization_param({conv*}, precision_mode=a8_w4)\n"
              "post_quantization_optimization(finetune, policy=enabled, dataset_size=64, epochs=16)\n")
    learned, parts = {}, []
    monkeypatch.setattr(pool, "_alone", lambda work, item, alone=pool._alone: (parts.append(item), alone(work, item))[1])
    for threads in (True, False):
        if not threads:
            monkeypatch.setattr(pool, "workers", lambda parts: 1)
        runner = Runner(str(SAMPLES / "digits_cnn.onnx"), progress=False)
        runner.load_script(script)
        q = runner.quantize(x, finetune=True)
        learned[threads] = q
    together, alone = learned[True], learned[False]
    def records(q):  # what was learned, not how long it took
        return [replace(r, seconds=0.0) for r in q.report["finetune"]]

    assert len(parts) >= 7  # the float batches after the first went to the threads
    assert records(together) == records(alone) != []
    assert together.report.heldout == alone.report.heldout is not None  # the start network run beside the training
    assert any(r.kept for r in records(alone))
    for name, layer in alone.layers.items():
        other = together.layers[name]
        if layer.weights is not None:
            np.testing.assert_array_equal(other.weights, layer.weights)
            np.testing.assert_array_equal(other.bias.accumulator(), layer.bias.accumulator())


def test_work_aside_runs_on_a_thread_of_its_own_and_hands_back_its_result_or_error():
    from alls.runtime.kernels._parallel import budget

    seen = pool.aside(lambda: (threading.current_thread().name, budget())).result(timeout=60)
    assert seen == ("alls-aside", 1)

    def fail() -> None:
        raise RuntimeError("beside")

    with pytest.raises(RuntimeError, match="beside"):
        pool.aside(fail).result(timeout=60)
