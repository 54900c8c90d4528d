"""Data in batches within a memory limit: images read as they are used (arrays, memory-mapped `.npy`,
folders of `.npy`), the live tensors of bias correction and finetune spilled to disk beyond the limit,
evaluation accumulated batch by batch; the same results as the run held in memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import alls
from alls.arrays import Folder
from alls.diagnostics import AllsError
from alls.runtime import Runner, evaluate
from alls.runtime.exec import stream
from alls.runtime.exec.calibration import calibrate, input_arrays

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
DIGITS = SAMPLES / "digits_cnn.onnx"
SCRIPT = (SAMPLES / "digits.alls").read_text() + (
    "post_quantization_optimization(bias_correction, policy=enabled)\n"
    "post_quantization_optimization(finetune, policy=enabled, dataset_size=64, epochs=1)\n")


class Recorder:
    """An array-like that records every slice read from it."""

    def __init__(self, array: np.ndarray):
        self.array, self.reads = array, []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, key):
        start, stop, _ = key.indices(len(self.array))
        self.reads.append((start, stop))
        return self.array[key]


def _quantize(data, memory_limit: int | None = None, script: str = SCRIPT):
    runner = Runner(DIGITS, progress=False)
    runner.load_script(script)
    if memory_limit is not None:
        runner.memory_limit = memory_limit  # below what check_memory_limit admits: every tensor spills
    return runner.quantize(data)


def _same_model(a, b) -> None:
    for name, qa in a.layers.items():
        qb = b.layers[name]
        assert qa.out.scale == qb.out.scale and qa.out.zero_point == qb.out.zero_point, name
        if qa.weights is not None:
            assert np.array_equal(qa.weights, qb.weights), name
        if qa.bias is not None:
            assert np.array_equal(qa.bias.accumulator(), qb.bias.accumulator()), name


@pytest.fixture(scope="module")
def calib():
    return np.load(SAMPLES / "calib.npy")


@pytest.fixture(scope="module")
def held(calib):
    return _quantize(calib)


# ----------------------------------------------------------------- calibration


def test_calibration_statistics_from_a_stream_equal_those_of_the_array_bit_for_bit(calib):
    graph = alls.load_model(DIGITS)
    whole = calibrate(graph, input_arrays(graph, calib), 8, 8)
    feeds = input_arrays(graph, Recorder(calib), stream_over=0)
    assert all(isinstance(x, stream.Source) for x in feeds.values())
    streamed = calibrate(graph, feeds, 8, 8)
    assert whole.images == streamed.images == 64
    for name, a in whole.layers.items():
        b = streamed.layers[name]
        for x, y in ((a.output, b.output), (a.before, b.before)):
            if x is None:
                continue
            assert (x.min, x.max, x.count, x.zeros) == (y.min, y.max, y.count, y.zeros), name
            assert all(np.array_equal(x.halves[s][0], y.halves[s][0]) and x.halves[s][1] == y.halves[s][1]
                       for s in (1, -1)), name
            if x.channel_min is not None:
                assert np.array_equal(x.channel_min, y.channel_min) and np.array_equal(x.channel_max, y.channel_max)
        if a.channel_sum is not None:
            assert np.array_equal(a.channel_sum, b.channel_sum) and a.channel_count == b.channel_count, name


def test_a_streamed_quantization_reads_batches_never_the_whole_array(calib):
    many = np.concatenate([calib] * 8)  # 512 images; calibration reads 64 in batches of 8
    recorder = Recorder(many)
    runner = Runner(DIGITS, progress=False)
    runner.load_script((SAMPLES / "digits.alls").read_text())
    runner.memory_limit = 1024  # anything larger than 256 bytes streams
    runner.quantize(recorder)
    sizes = [stop - start for start, stop in recorder.reads]
    assert sizes and max(sizes) <= 64 and max(stop for _, stop in recorder.reads) <= 64


def test_a_memory_mapped_npy_is_not_resident_after_streaming(tmp_path):
    program = f"""
import numpy as np, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from alls.runtime.exec.stream import Source
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
path = {str(tmp_path / "big.npy")!r}
np.lib.format.open_memmap(path, "w+", np.float32, (2048, 128, 128, 1))[:] = 1.0
x = np.load(path, mmap_mode="r")
source = Source(x, lambda part: np.ascontiguousarray(part.transpose(0, 3, 1, 2)), (1, 128, 128))
before = rss()
total = 0.0
for start in range(0, len(source), 64):
    total += float(source[start:start + 64].sum())
assert total == x.size, total
print(rss() - before)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    grown = int(done.stdout.split()[-1])
    assert grown < 32 << 20, f"streaming a 128 MiB file left {grown >> 20} MiB resident"


# ----------------------------------------------- bias correction and finetune


def _count_spills(monkeypatch) -> list:
    """The first argument of every `Spill` made from now on, in a list that grows as they are made."""
    made: list = []
    original = stream.Spill.__init__

    def counted(self, *args, **kwargs):
        made.append(args[0])
        original(self, *args, **kwargs)

    monkeypatch.setattr(stream.Spill, "__init__", counted)
    return made


def test_bias_correction_and_finetune_spilled_to_disk_give_the_same_model(calib, held, monkeypatch):
    made = _count_spills(monkeypatch)
    spilled = _quantize(calib, memory_limit=2048)
    assert len(made) > 10, "the tensors were not spilled"
    _same_model(held, spilled)
    assert held.report["bias_correction"] == spilled.report["bias_correction"]
    for a, b in zip(held.report["finetune"], spilled.report["finetune"]):
        assert a["loss_after"] == b["loss_after"] and a["heldout_after"] == b["heldout_after"]


def test_a_memory_mapped_npy_and_a_folder_quantize_as_the_array_does(calib, held, tmp_path):
    np.save(tmp_path / "calib.npy", calib)
    folder = tmp_path / "images"
    folder.mkdir()
    for start in range(0, 64, 16):  # batches of 16, one file each
        np.save(folder / f"part{start:03d}.npy", calib[start:start + 16])
    _same_model(held, _quantize(np.load(tmp_path / "calib.npy", mmap_mode="r"), memory_limit=4096))
    _same_model(held, _quantize(Folder(folder, "calibration images"), memory_limit=4096))


def test_a_spill_that_cannot_be_written_is_coded(tmp_path):
    store = stream.Store(0, folder=str(tmp_path / "missing"))
    with pytest.raises(AllsError) as excinfo:
        store.allocate((4, 8), np.uint8)
    assert excinfo.value.diagnostics[0].code == "ALS561"


# ------------------------------------------------------------------ evaluation


def test_evaluation_in_batches_beyond_the_limit_agrees_with_the_whole_run(held):
    data = np.load(SAMPLES / "test_x.npy")
    labels = np.load(SAMPLES / "test_y.npy")
    whole = evaluate(held, data, labels, progress=False)
    batched = evaluate(held, np.load(SAMPLES / "test_x.npy", mmap_mode="r"), labels, progress=False,
                       memory_limit=1024)
    assert whole["images"] == batched["images"] == len(data)
    for name, a in whole["outputs"].items():
        b = batched["outputs"][name]
        for exact in ("max_abs_error", "range", "top1_agreement", "native_accuracy", "numeric_accuracy"):
            assert a[exact] == b[exact], exact
        assert b["cosine"] == pytest.approx(a["cosine"], rel=1e-12)
        assert b["snr_db"] == pytest.approx(a["snr_db"], rel=1e-9)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("value", ["4X", "-1GiB", "nan", "", "12 parsecs", 1 << 20, 0])
def test_a_bad_memory_limit_is_coded(value):
    with pytest.raises(AllsError) as excinfo:
        Runner(DIGITS, progress=False, memory_limit=value)
    assert excinfo.value.diagnostics[0].code == "ALS560"


def test_memory_limits_in_text():
    assert stream.parse_memory_limit("4GiB") == 4 << 30
    assert stream.parse_memory_limit("512m") == 512 << 20
    assert stream.parse_memory_limit("2.5 GB") == int(2.5 * (1 << 30))
    assert Runner(DIGITS, progress=False).memory_limit == stream.DEFAULT_MEMORY_LIMIT
    with pytest.raises(TypeError):
        Runner(DIGITS, progress=False, memory_limit=1.5)


def test_folders_that_cannot_be_one_batch_are_coded(tmp_path):
    from alls.arrays import Folder

    (tmp_path / "empty").mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.zeros((8, 8, 1), np.float32))
    np.save(mixed / "b.npy", np.zeros((8, 8, 3), np.float32))
    for folder in (tmp_path / "empty", mixed):
        with pytest.raises(AllsError) as excinfo:
            Folder(folder, "calibration images")
        assert excinfo.value.diagnostics[0].code == "ALS029"
    images = tmp_path / "images"
    images.mkdir()
    data = np.arange(5 * 8 * 8, dtype=np.float32).reshape(5, 8, 8, 1)
    for i, image in enumerate(data):
        np.save(images / f"{i}.npy", image)
    folder = Folder(images)
    assert folder.shape == data.shape and np.array_equal(folder[1:4], data[1:4])
    assert np.array_equal(folder.head(2)[:], data[:2])


def test_the_command_line_takes_a_folder_and_a_memory_limit(calib, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(calib):
        np.save(folder / f"{i:03d}.npy", image)
    common = [sys.executable, "-m", "alls", "quantize", str(DIGITS), "--script", str(SAMPLES / "digits.alls"),
              "--quiet"]
    one = subprocess.run([*common, "--calib", str(folder), "-o", str(tmp_path / "a.npz")], capture_output=True,
                         text=True, timeout=600)
    two = subprocess.run([*common, "--calib", str(SAMPLES / "calib.npy"), "-o", str(tmp_path / "b.npz"),
                          "--memory-limit", "64MiB"], capture_output=True, text=True, timeout=600)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    bad = subprocess.run([*common, "--calib", str(folder), "-o", str(tmp_path / "c.npz"), "--memory-limit", "lots"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "ALS560" in bad.stderr and not (tmp_path / "c.npz").exists()


def test_streamed_data_are_checked_as_the_array_is(calib, tmp_path):
    bad = calib.copy()
    bad[40, 3, 3, 0] = np.nan
    bad[41, 0, 0, 0] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    np.save(tmp_path / "flat.npy", np.full_like(calib, 7.0))
    for name, code, words in (("bad.npy", "ALS503", "2 of the 64"), ("flat.npy", "ALS504", "every value is 7")):
        messages = []
        for data in (np.load(tmp_path / name), np.load(tmp_path / name, mmap_mode="r")):
            runner = Runner(DIGITS, progress=False)
            runner.memory_limit = 1024
            with pytest.raises(AllsError) as excinfo:
                runner.quantize(data)
            d = excinfo.value.diagnostics[0]
            assert d.code == code and words in d.message, d.message
            messages.append(d.message)
        assert messages[0] == messages[1]


def test_finetune_targets_beyond_their_share_are_spilled_one_layer_at_a_time(calib, held, monkeypatch):
    from alls.runtime.algorithms import finetune

    made = _count_spills(monkeypatch)
    graph = alls.load_model(DIGITS)
    plan = alls.resolve(alls.parse(SCRIPT), graph)
    sizes = []
    for name, (_, config) in finetune.configs(graph, plan).items():
        h, w = graph[name].output_shape[2:] if len(graph[name].output_shape) == 4 else (1, 1)
        rows = config.images * min(finetune.positions_per_image(config.images), h * w)
        sizes.append(4 * rows * graph[name].output_shape[1])
    assert len(sizes) > 1
    for share, spills in ((0, len(sizes)), (max(sizes), None)):
        made.clear()
        monkeypatch.setattr(finetune, "memory_shares", lambda limit, share=share: (1 << 30, share))
        _same_model(held, _quantize(calib))
        # the live tensors are held; of the targets, all spill with no share, some (never all) within one
        assert len(made) == spills if spills else 0 < len(made) < len(sizes), (share, made)
