"""Threads: the runtime's thread count is honoured, scoped to its calls and put back; the results are the
same bit for bit on any count; a bad count is a coded error; the per-call choice keeps to one thread where
more lose (driven with made-up times: no timing here)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hostile import model
from onnx import helper

from alls.diagnostics import AllsError
from alls.runtime import Runner, using_threads
from alls.runtime.kernels import ConvWeights, _parallel, conv
from alls.runtime.kernels.conv import conv_fast
from alls.runtime.numerics import requant

POOL = numba.config.NUMBA_NUM_THREADS
needs_two = pytest.mark.skipif(POOL < 2, reason="Numba's pool has one thread (NUMBA_NUM_THREADS or one core)")


def _weights(c_out, c_in, seed):
    return np.random.default_rng(seed).normal(0, 0.1, (c_out, c_in, 3, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def qmodel():
    """Two convs with work enough (batch 4 at 24x24, 24 channels) to run on several threads."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1])]
    proto = model(nodes, {"w1": _weights(24, 3, 0), "w2": _weights(24, 24, 1)}, inputs={"x": (1, 3, 24, 24)})
    runner = Runner(proto)
    runner.load_script("model_optimization_config(calibration, batch_size=4, calibset_size=8)\n")
    x = np.random.default_rng(2).uniform(0, 1, (8, 24, 24, 3)).astype(np.float32)
    return runner.quantize(x, progress=False), x


@pytest.fixture
def seen(monkeypatch):
    """The Numba thread count inside every parallel kernel call, and the count asked for."""
    calls = []
    original = _parallel._on

    def on(threads, kernel, args):
        def spy(*a):
            calls.append((threads, numba.get_num_threads()))
            return kernel(*a)
        return original(threads, spy, args)

    monkeypatch.setattr(_parallel, "_on", on)
    return calls


@pytest.fixture
def most_threads_always(monkeypatch):
    """Every call that may use several threads uses them all (the measured choice and the load set aside)."""
    monkeypatch.setattr(_parallel, "_pick", lambda site, most: most)
    monkeypatch.setattr(_parallel, "free_cores", lambda: POOL)


def test_the_count_is_honoured_and_put_back(qmodel, seen, most_threads_always):
    model_, x = qmodel
    host = numba.get_num_threads()
    model_.run(x, threads=1)
    assert seen and all(inside == 1 for _, inside in seen)
    assert numba.get_num_threads() == host and _parallel.scoped() is None
    if POOL >= 2:
        seen.clear()
        numba.set_num_threads(1)
        try:
            model_.run(x, threads=2)
            assert numba.get_num_threads() == 1  # the host's count, not the call's
        finally:
            numba.set_num_threads(host)
        assert max(inside for _, inside in seen) == 2 and all(asked == inside for asked, inside in seen)


def test_the_model_and_runner_counts_and_the_block_apply(qmodel, seen, most_threads_always):
    model_, x = qmodel
    model_.threads = 1
    try:
        model_.run(x)
    finally:
        model_.threads = None
    assert seen and all(inside == 1 for _, inside in seen)
    seen.clear()
    with using_threads(1):
        model_.run(x)
    assert seen and all(inside == 1 for _, inside in seen)


def test_the_count_is_put_back_after_an_error(qmodel):
    model_, x = qmodel
    host = numba.get_num_threads()
    with pytest.raises(AllsError):
        model_.run(x, target="nowhere", threads=1)
    assert numba.get_num_threads() == host and _parallel.scoped() is None


@needs_two
def test_integer_results_are_bit_identical_on_one_and_two_threads(qmodel, most_threads_always):
    model_, x = qmodel
    one = model_.run(x, raw_out=True, taps="all", threads=1)
    two = model_.run(x, raw_out=True, taps="all", threads=2)
    for name in one.outputs:
        assert np.array_equal(one.outputs[name], two.outputs[name])
    for name in one.taps:
        assert np.array_equal(one.taps[name], two.taps[name]), name


@pytest.mark.parametrize("parts", [2, 3, 5])
def test_a_conv_split_over_channel_blocks_gives_the_same_codes(parts, monkeypatch):
    """Few rows, many channels: the conv's parallel axis is its channel blocks; every split gives the same codes."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 3, 3, 40), dtype=np.uint8)
    weights = ConvWeights(rng.integers(-127, 128, (70, 20, 3, 3)), 8, group=2)
    rq = requant(np.full(70, 0.002), 255 * 127 * 180, 7, 8)
    whole = conv(x, weights, None, rq, zero_point=9)
    captured = {}
    original = _parallel.run

    def split_run(key, work, jobs, kernel, *args):
        if kernel is conv_fast:
            args = (*args[:6], np.int64(parts), *args[7:])
            captured["parts"] = parts
        return original(key, work, jobs, kernel, *args)

    monkeypatch.setattr(_parallel, "run", split_run)
    split = conv(x, weights, None, rq, zero_point=9)
    assert captured["parts"] == parts and np.array_equal(whole, split)


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, "2", True, 10**6])
def test_bad_thread_counts_are_coded_errors(qmodel, bad):
    model_, x = qmodel
    with pytest.raises(AllsError) as caught:
        model_.run(x, threads=bad)
    assert caught.value.diagnostics[0].code == "ALS550"
    with pytest.raises(AllsError) as caught:
        with using_threads(bad):
            pass
    assert caught.value.diagnostics[0].code == "ALS550"
    with pytest.raises(AllsError) as caught:
        Runner(model([helper.make_node("Relu", ["x"], ["y"])]), threads=bad)
    assert caught.value.diagnostics[0].code == "ALS550"


def test_the_command_line_refuses_a_bad_count(tmp_path, capsys):
    from alls.cli import main

    status = main(["eval", str(tmp_path / "missing.npz"), "--data", str(tmp_path / "x.npy"), "--threads", "0"])
    out, err = capsys.readouterr()
    assert status == 2 and "ALS550" in out + err


# --------------------------------------------------------------------- the float path


@pytest.fixture(scope="module")
def float_model():
    """A depthwise conv and a dense conv large enough for parts on several threads (the direct conv)."""
    dw = np.random.default_rng(4).normal(0, 0.3, (8, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "wd"], ["d"], group=8, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("Conv", ["r", "w"], ["y"], pads=[1, 1, 1, 1])]
    return Runner(model(nodes, {"wd": dw, "w": _weights(8, 8, 5)}, inputs={"x": (1, 8, 40, 40)}))


@pytest.fixture
def float_sites(monkeypatch):
    """Every float kernel's call of `_parallel.run`, as (key, kernel name), with any work worth a thread
    (so that a count above one is for the measured choice to make, every core taken as free)."""
    calls = []
    original = _parallel.run

    def spy(key, work, parts, kernel, *args):
        calls.append((key, kernel.__name__))
        return original(key, work, parts, kernel, *args)

    monkeypatch.setattr(_parallel, "WORK_PER_THREAD", 1)
    monkeypatch.setattr(_parallel, "free_cores", lambda: POOL)
    monkeypatch.setattr(_parallel, "run", spy)
    _parallel.reset()
    yield calls
    _parallel.reset()


def _float_kernels(calls):
    return {name for key, name in calls if str(key[0]).startswith("float")}


def test_the_float_kernels_go_through_the_choice_per_call_site(float_model, float_sites, seen):
    x = np.random.default_rng(6).uniform(0, 1, (4, 40, 40, 8)).astype(np.float32)
    float_model.infer(x, target="native", threads=1)
    assert _float_kernels(float_sites) == {"_depthwise", "conv_part"}  # one part: no parallel region
    assert seen and all(inside == 1 for _, inside in seen)  # threads=1: one thread, whatever the choice
    float_sites.clear()
    seen.clear()
    float_model.infer(x, target="native", threads=POOL)
    float_model.infer(x[:2], target="native", threads=POOL)
    keys = {key for key, _ in float_sites}
    assert len(keys) == 4  # one site per kernel and shape: the depthwise and the dense conv, at batch 4 and 2
    if POOL >= 2:
        measured = {key[0][0] for key, site in _parallel._sites.sites.items() if site.single or site.multi}
        assert {"float dw", "float conv"} <= measured  # each site keeps its own times
        assert {inside for _, inside in seen} <= {1, 2} and all(asked == inside for asked, inside in seen)


@needs_two
def test_float_results_are_bit_identical_on_one_and_two_threads(float_model, float_sites, most_threads_always):
    x = np.random.default_rng(7).uniform(0, 1, (4, 40, 40, 8)).astype(np.float32)
    one = float_model.infer(x, target="native", taps="all", threads=1)
    two = float_model.infer(x, target="native", taps="all", threads=2)
    for name in one.taps:
        assert np.array_equal(one.taps[name], two.taps[name]), name


def test_the_training_products_run_on_the_calling_thread(float_sites):
    """A training step's products and outputs (256 rows) are below a thread's worth: no parallel regions; only
    the passes over the weights (`_by_weights`, through `_parallel.run`) have parallel forms."""
    from alls.runtime.kernels import training

    rng = np.random.default_rng(8)
    rows = rng.integers(-300, 300, (64, 6, 9)).astype(np.int16)
    x, index = training.depthwise_rows(rows), np.arange(64)
    w, grad = rng.normal(0, 1, (6, 9)).astype(np.float32), rng.normal(0, 1, (64, 6)).astype(np.float32)
    forward, backward = training.depthwise_forward(x, index, w), training.depthwise_backward(x, index, grad)
    assert not _float_kernels(float_sites)
    kernels = [getattr(training, name) for name in dir(training) if hasattr(getattr(training, name), "targetoptions")]
    parallel = {k.__name__ for k in kernels if k.targetoptions.get("parallel")}
    assert kernels and parallel == {"_soft_weights_parts", "_rounding_step_parts"}
    np.testing.assert_allclose(forward, np.einsum("rck,ck->rc", rows.astype(np.float64), w), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(backward, np.einsum("rc,rck->ck", grad, rows.astype(np.float64)), rtol=1e-5, atol=1e-2)


def test_the_blas_controller_is_made_again_only_after_an_import(monkeypatch):
    """Making threadpoolctl's controller scans every loaded library: once, until a module is imported."""
    pytest.importorskip("threadpoolctl", reason="threadpoolctl (the `threads` extra) is not installed")
    import sys
    import types

    from alls.runtime.exec import threads

    made = []
    controller_class = threads._threadpoolctl()
    monkeypatch.setattr(threads, "_threadpoolctl", lambda: lambda: made.append(1) or controller_class())
    monkeypatch.setattr(threads, "_controllers", [])
    for _ in range(3):
        with threads.single_threaded_blas():
            pass
    assert len(made) == 1
    monkeypatch.setitem(sys.modules, "alls_test_imported", types.ModuleType("alls_test_imported"))
    with threads.single_threaded_blas():
        pass
    assert len(made) == 2


# --------------------------------------------------------------------- the choice


def test_small_work_runs_on_one_thread():
    assert _parallel.choose(_parallel.WORK_PER_THREAD - 1, parts=64, limit=8) == 1
    assert _parallel.choose(100 * _parallel.WORK_PER_THREAD, parts=3, limit=8) == 3
    assert _parallel.choose(100 * _parallel.WORK_PER_THREAD, parts=64, limit=2) == 2
    assert _parallel.split(100 * _parallel.WORK_PER_THREAD, rows=1, blocks=5) == 2 or _parallel.budget() < 2


@pytest.fixture
def idle():
    """No measurements yet: a new site starts on several threads (the worst start where they lose)."""
    _parallel.reset()
    yield
    _parallel.reset()


def _spy_threads(monkeypatch) -> list[int]:
    """The thread count each kernel call asks for (the kernel itself runs as it is, Numba's count untouched)."""
    counts: list[int] = []

    def on(threads, kernel, args):
        counts.append(threads)
        return kernel(*args)

    monkeypatch.setattr(_parallel, "_on", on)
    return counts


def test_a_call_takes_no_more_threads_than_the_cores_free_now(monkeypatch, idle):
    counts = _spy_threads(monkeypatch)
    monkeypatch.setattr(_parallel, "budget", lambda: 8)
    work = 100 * _parallel.WORK_PER_THREAD
    monkeypatch.setattr(_parallel, "free_cores", lambda: 1)  # every other core runs someone else's task
    for _ in range(20):
        _parallel.run("site", work, 64, lambda: None)
    assert counts == [1] * 20
    assert not _parallel._sites.sites  # nothing measured: a busy machine's times say nothing of free cores
    monkeypatch.setattr(_parallel, "free_cores", lambda: 3)
    counts.clear()
    _parallel.run("site", work, 64, lambda: None)
    assert counts == [3]  # a new site starts on every free core, not the whole budget


def test_a_call_started_with_no_second_core_free_is_a_one_thread_call(qmodel, monkeypatch):
    """threads=2 while other processes hold every core but one: the whole call runs as threads=1 does
    (Numba's count and the kernels' budget 1: no per-kernel changes of the count, no split for two)."""
    model_, x = qmodel
    budgets, counts = [], []
    original = _parallel._on

    def on(threads, kernel, args):
        budgets.append(_parallel.budget())
        counts.append(numba.get_num_threads())
        return original(threads, kernel, args)

    monkeypatch.setattr(_parallel, "_on", on)
    monkeypatch.setattr(_parallel, "free_cores", lambda: 1)
    busy = model_.run(x, threads=2)
    assert budgets and set(budgets) == {1} and set(counts) == {1}
    monkeypatch.setattr(_parallel, "free_cores", lambda: POOL)
    budgets.clear()
    quiet = model_.run(x, threads=2)
    assert set(budgets) == {min(2, POOL)}
    for name in busy.outputs:
        assert np.array_equal(busy.outputs[name], quiet.outputs[name])


def test_busy_neighbours_leave_no_free_core(monkeypatch):
    """As many spinning processes as this process has cores (two, as it is told): `free_cores` finds none
    but the caller's."""
    import subprocess
    import sys
    import time

    cores = 2
    monkeypatch.setattr(_parallel, "_cores", lambda: cores)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(0.5)
        monkeypatch.setitem(_parallel._load, "at", -1.0)
        assert _parallel.free_cores() == 1
        assert _parallel._own_running() >= 1  # the calling thread is running
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _drive(single: float, multi: float, calls: int = 300) -> list[int]:
    """The counts `_pick` chooses at one site over ``calls`` calls that take ``single`` / ``multi`` seconds."""
    _parallel.reset()
    site, picks = _parallel._Site(), []
    for _ in range(calls):
        threads = _parallel._pick(site, 2)
        _parallel._record(site, threads, single if threads == 1 else multi)
        picks.append(threads)
    return picks


@pytest.mark.parametrize("single, multi", [(1.0, 2.6), (1.0, 7.0), (1.0, 1.05)])
def test_where_two_threads_lose_they_are_seldom_tried(single, multi, idle):
    picks = _drive(single, multi)
    assert picks.count(2) <= 6, picks.count(2)
    cost = sum(single if t == 1 else multi for t in picks) / (single * len(picks))
    assert cost < 1.08  # within 8% of always choosing one thread, its first call on two included
    later = _drive(single, multi, 3000)[300:]
    assert sum(single if t == 1 else multi for t in later) / (single * len(later)) < 1.04


@pytest.mark.parametrize("single, multi", [(1.0, 0.55), (1.0, 0.8)])
def test_where_two_threads_win_they_are_used(single, multi, idle):
    picks = _drive(single, multi)
    assert picks.count(1) <= 10


def test_the_choice_follows_a_change_of_load(idle):
    _parallel.reset()
    site = _parallel._Site()
    for phase_multi in (0.5, 3.0, 0.5):  # quiet, busy, quiet again
        picks = []
        for _ in range(600):
            threads = _parallel._pick(site, 2)
            _parallel._record(site, threads, 1.0 if threads == 1 else phase_multi)
            picks.append(threads)
        settled = picks[-100:]
        assert settled.count(2 if phase_multi < 1 else 1) >= 95


# ------------------------------------------------------------- compiling notes


def _fresh(module: str):
    """A new Numba function whose module is ``module`` (nothing cached: it compiles on its first call)."""
    namespace = {"__name__": module}
    exec("def kernel(x):\n    return x + 1\n", namespace)
    return numba.njit(namespace["kernel"])


def test_a_kernel_compiling_inside_a_runtime_call_says_so(monkeypatch, capsys):
    from alls.runtime.kernels import _compiling

    monkeypatch.setattr(_compiling, "_announced", [False])
    monkeypatch.setattr(_compiling, "QUIET_BELOW", 0.0)
    with _compiling.compile_notes():
        _fresh("alls.runtime.kernels.example")(1)
        _fresh("hosts.own.code")(1)  # the host's own Numba code is not reported
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("compiling the kernels on first use")
    assert len(lines) == 2 and lines[1].startswith("compiling the kernels (kernel in ")
    with _compiling.compile_notes(False):
        _fresh("alls.runtime.kernels.example")(1)
    assert capsys.readouterr().err == ""
    _fresh("alls.runtime.kernels.example")(1)  # outside a runtime call: no listener
    assert capsys.readouterr().err == ""


def test_a_compilation_shorter_than_the_threshold_prints_nothing(monkeypatch, capsys):
    from alls.runtime.kernels import _compiling

    monkeypatch.setattr(_compiling, "_announced", [False])
    monkeypatch.setattr(_compiling, "QUIET_BELOW", 600.0)
    with _compiling.compile_notes():
        _fresh("alls.runtime.kernels.example")(1)
    assert capsys.readouterr().err == ""
    assert _compiling._announced == [False]  # a later, longer compilation still gets the first line
