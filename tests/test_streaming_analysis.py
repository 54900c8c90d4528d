"""`alls analyze`, `alls taps` and `alls tune` within the memory limit: the data read a batch at a time
(arrays, memory-mapped `.npy`, folders of `.npy`), the figures accumulated over the batches equal to
the whole run's, the tap files written row by row equal to `numpy.save` of the whole run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from alls.arrays import Folder
from alls.cli import main
from alls.diagnostics import AllsError
from alls.runtime import Runner
from alls.runtime.analysis.analyze import analyze
from alls.runtime.analysis.metrics import cosine, snr_db, top1
from alls.runtime.analysis.passes import Histogram, Kept, batch_size
from alls.runtime.exec import calibration, stream
from alls.runtime.session.taps import write_taps
from alls.runtime.session.tuning import _Measure
from test_streaming import Recorder

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
DIGITS = SAMPLES / "digits_cnn.onnx"
EXACT = {"max_abs_error", "range", "beyond_encoding", "images", "isolation_images"}




def _conv_model():
    """x (1x12x12) -> conv 3x3 (6) -> relu -> conv 3x3 (6) -> relu -> conv 1x1 (3): convolutions only, whose
    float kernels give every image the same values in any batch (a matrix product over the batch rounds
    its float32 sums by the number of rows)."""
    rng = np.random.default_rng(3)
    inits = {"w1": rng.normal(0, 0.5, (6, 1, 3, 3)), "b1": rng.normal(0, 0.1, 6),
             "w2": rng.normal(0, 0.3, (6, 6, 3, 3)), "b2": rng.normal(0, 0.1, 6),
             "w3": rng.normal(0, 0.3, (3, 6, 1, 1)), "b3": np.zeros(3)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["h2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["y"])]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ("N", 1, 12, 12))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def convs():
    images = np.random.default_rng(0).uniform(0, 1, (30, 12, 12, 1)).astype(np.float32)
    runner = Runner(_conv_model(), progress=False)
    runner.load_script("model_optimization_config(calibration, batch_size=8, calibset_size=16)\n")
    return runner.quantize(images[:16]), images


@pytest.fixture(scope="module")
def digits():
    runner = Runner(DIGITS, progress=False)
    runner.load_script(SAMPLES / "digits.alls")
    return runner.quantize(np.load(SAMPLES / "calib.npy"))


def _limit_for(graph, images: int) -> int:
    """The least memory limit whose batches hold ``images`` images."""
    per_image = sum(math.prod(layer.output_shape[1:]) for layer in graph) * 4
    limit = 4 * 2 * per_image * images
    assert batch_size(graph, limit) == images and batch_size(graph, limit - 4) == images - 1
    return limit


def _same(whole, part, path="", rel=1e-12, tol=1e-300):
    """Two JSON forms of figures: equal, floats to ``rel`` except the exact ones (`EXACT`)."""
    if isinstance(whole, dict):
        assert whole.keys() == part.keys(), path
        for key in whole:
            _same(whole[key], part[key], f"{path}/{key}", rel, tol)
    elif isinstance(whole, list):
        assert len(whole) == len(part), path
        for i, (a, b) in enumerate(zip(whole, part)):
            _same(a, b, f"{path}[{i}]", rel, tol)
    elif isinstance(whole, float) and path.rsplit("/", 1)[-1] not in EXACT and not path.startswith("/range"):
        assert part == pytest.approx(whole, rel=rel, abs=tol), path
    else:
        assert whole == part, path


# ------------------------------------------------------------------ analyze


def test_analysis_in_batches_from_a_memory_mapped_file_equals_the_whole_run(convs, tmp_path, monkeypatch):
    qmodel, images = convs
    whole = analyze(qmodel, images, worst=2, isolation_images=12, progress=False).as_dict()
    np.save(tmp_path / "x.npy", images)
    monkeypatch.setattr(stream, "MIN_MEMORY_LIMIT", 0)
    monkeypatch.setattr(calibration, "_CHECK_BYTES", images[0].nbytes)  # the data checks read an image at a time
    recorded = Recorder(np.load(tmp_path / "x.npy", mmap_mode="r"))
    batched = analyze(qmodel, recorded, worst=2, isolation_images=12, progress=False,
                      memory_limit=_limit_for(qmodel.graph, 4)).as_dict()
    assert max(stop - start for start, stop in recorded.reads) == 4 and len(recorded.reads) > 30  # never the whole array: batches of 4
    whole.pop("seconds"), batched.pop("seconds")
    _same(whole, batched)
    assert [row["layer"] for row in whole["layers"]] == [row["layer"] for row in batched["layers"]]


def test_analysis_of_digits_in_batches_agrees_with_the_whole_run(digits, tmp_path, monkeypatch):
    """Digits ends in a fully connected layer, whose float product rounds differently by the rows of a
    batch: the figures at every layer agree to float64 rounding, the outputs' to float32's."""
    images = np.load(SAMPLES / "test_x.npy")[:40]
    whole = analyze(digits, images, progress=False).as_dict()
    monkeypatch.setattr(stream, "MIN_MEMORY_LIMIT", 0)
    batched = analyze(digits, _folder(images, tmp_path), progress=False, memory_limit=_limit_for(digits.graph, 7)).as_dict()
    order = [layer.name for layer in digits.graph]
    first_fc = min(order.index(layer.name) for layer in digits.graph if layer.kind == "fc")
    for a, b in zip(whole["layers"], batched["layers"]):
        before_fc = order.index(a["layer"]) < first_fc
        _same(a["at_layer"], b["at_layer"], a["layer"], 1e-12 if before_fc else 1e-5)
        if before_fc:
            assert a["range"] == b["range"] and a["beyond_encoding"] == b["beyond_encoding"]
    whole.pop("seconds"), batched.pop("seconds")
    _same(whole["recovery"], batched["recovery"], rel=1e-5, tol=1e-6)  # "removed" is 1 - a ratio near 1


def _folder(images: np.ndarray, folder: Path) -> Folder:
    for i, image in enumerate(images):
        np.save(folder / f"{i:03d}.npy", image)
    return Folder(folder)


def test_kept_tensors_beyond_their_budget_are_spilled_and_read_back():
    values = [{"a": np.arange(12, dtype=np.float32).reshape(3, 4) + b, "b": np.full((3, 2), b, np.int16)}
              for b in range(4)]
    with Kept(60) as kept:
        for b, v in enumerate(values):
            kept.put(b, v)
        assert kept.store.spilled > 0 and kept.store.used <= 60
        for b, v in enumerate(values):
            got = kept.get(b, ["a", "b"])
            assert all(np.array_equal(got[k], v[k]) and got[k].dtype == v[k].dtype for k in v)


@pytest.mark.parametrize("seed", range(4))
def test_histogram_percentiles_do_not_depend_on_the_batching(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_t(3, (40, 4, 6, 6)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    whole, parts = Histogram(4), Histogram(4)
    whole.update(x)
    cuts = np.sort(rng.choice(np.arange(1, 40), 5, replace=False))
    for part in np.split(x, cuts):
        parts.update(part)
    for q in (0.01, 1, 25, 50, 99, 99.99):
        assert whole.percentile(q) == parts.percentile(q)
    assert np.array_equal(whole.halves[1][0], parts.halves[1][0]) and whole.halves[1][1] == parts.halves[1][1]
    assert abs(whole.percentile(50) - np.percentile(x, 50)) <= 2 * whole.halves[1][1] + 2 * whole.halves[-1][1]


def test_analyze_from_the_command_line_reads_a_folder_within_a_memory_limit(digits, capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="the report's figures need matplotlib (pip install 'alls[report]')")
    digits.save(tmp_path / "q.npz")
    images = np.load(SAMPLES / "test_x.npy")[:20]
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images):
        np.save(folder / f"{i:02d}.npy", image)
    code = main(["analyze", str(tmp_path / "q.npz"), "--data", str(folder), "--memory-limit", "64MiB", "--limit",
                 "12", "-o", str(tmp_path / "report"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["images"] == 12
    code = main(["analyze", str(tmp_path / "q.npz"), "--data", str(folder), "--memory-limit", "lots",
                 "-o", str(tmp_path / "other")])
    assert code == 2 and "error[ALS560]" in capsys.readouterr().err and not (tmp_path / "other").exists()


# --------------------------------------------------------------------- taps


def test_taps_written_batch_by_batch_are_the_files_of_the_whole_run(digits, tmp_path, monkeypatch):
    """Within the default limit the 30 images are one batch: the files are `numpy.save` of the whole
    run's tensors. In batches of 4 they are those of the run in batches of 4 (the float fully connected
    layer rounds its float32 sums by the rows of a batch; everything else is the same bit for bit)."""
    images = np.load(SAMPLES / "test_x.npy")[:30]
    np.save(tmp_path / "x.npy", images)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    index = write_taps(digits, mapped, tmp_path / "whole", "[conv1, fc1]", ("native", "numeric"), raw_out=True)
    monkeypatch.setattr(stream, "MIN_MEMORY_LIMIT", 0)
    batched = write_taps(digits, mapped, tmp_path / "taps", "[conv1, fc1]", ("native", "numeric"), raw_out=True,
                         memory_limit=_limit_for(digits.graph, 4))
    assert index == batched and index["images"] == 30 and len(index["taps"]) == 4
    for entry in index["taps"]:
        np.save(tmp_path / "whole.npy", _tap(digits, images, entry))
        np.save(tmp_path / "parts.npy", np.concatenate([_tap(digits, images[s:s + 4], entry) for s in range(0, 30, 4)]))
        assert (tmp_path / "whole" / entry["file"]).read_bytes() == (tmp_path / "whole.npy").read_bytes()
        assert (tmp_path / "taps" / entry["file"]).read_bytes() == (tmp_path / "parts.npy").read_bytes()
        assert entry["shape"] == list(_tap(digits, images, entry).shape)
    assert not [p for p in tmp_path.rglob(".alls-*")]  # no temporary file left


def _tap(qmodel, images: np.ndarray, entry: dict) -> np.ndarray:
    target, name = entry["target"], entry["layer"]
    return qmodel.run(images, target, taps=[name], raw_out=target == "numeric").taps[name]


def test_taps_that_fail_midway_leave_the_files_there_as_they_were(digits, tmp_path, monkeypatch):
    images = np.load(SAMPLES / "test_x.npy")[:12].copy()
    images[10, 5, 5, 0] = np.nan  # in the third batch of 4
    out = tmp_path / "taps"
    (out / "numeric").mkdir(parents=True)
    (out / "numeric" / "conv1.npy").write_bytes(b"the user's")
    monkeypatch.setattr(stream, "MIN_MEMORY_LIMIT", 0)
    with pytest.raises(AllsError) as excinfo:
        write_taps(digits, images, out, "conv1", force=True, memory_limit=_limit_for(digits.graph, 4))
    assert excinfo.value.diagnostics[0].code == "ALS503"
    assert (out / "numeric" / "conv1.npy").read_bytes() == b"the user's"
    assert sorted(p.name for p in out.rglob("*")) == ["conv1.npy", "numeric"]


def test_taps_beyond_the_free_disk_are_refused_before_they_run(digits, tmp_path, monkeypatch, capsys):
    import shutil
    from types import SimpleNamespace

    digits.save(tmp_path / "q.npz")
    np.save(tmp_path / "x.npy", np.load(SAMPLES / "test_x.npy")[:8])
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    code = main(["taps", str(tmp_path / "q.npz"), "--data", str(tmp_path / "x.npy"), "-o", str(tmp_path / "taps")])
    err = capsys.readouterr().err
    assert code == 2 and "error[ALS565]" in err and "--layers" in err and not (tmp_path / "taps").exists()
    code = main(["taps", str(tmp_path / "q.npz"), "--data", str(tmp_path / "x.npy"), "-o", str(tmp_path / "taps"),
                 "--memory-limit", "12 parsecs"])
    assert code == 2 and "error[ALS560]" in capsys.readouterr().err


# --------------------------------------------------------------------- tune


def test_tune_measures_each_step_batch_by_batch_as_on_the_whole_data(tmp_path):
    images, labels = np.load(SAMPLES / "test_x.npy")[:50], np.load(SAMPLES / "test_y.npy")[:50]
    np.save(tmp_path / "x.npy", images)
    runner = Runner(DIGITS, progress=False)
    runner.memory_limit = _limit_for(runner.graph, 6)  # below what check_memory_limit admits
    measure = _Measure(runner, np.load(tmp_path / "x.npy", mmap_mode="r"), labels, "nhwc")
    try:
        assert measure.size == 6  # 9 batches
        runner.load_script(SAMPLES / "digits.alls")
        runner.quantize(np.load(SAMPLES / "calib.npy"))
        snr, cos, accuracy = measure(runner)
    finally:
        measure.close()
    # the native outputs come from a float fully connected layer, which rounds by the rows of a batch
    native = np.concatenate([runner.infer(images[s:s + 6], target="native").output for s in range(0, 50, 6)])
    numeric = runner.infer(images).output
    assert snr == pytest.approx(snr_db(native, numeric), rel=1e-12)
    assert cos == pytest.approx(cosine(native, numeric), rel=1e-12)
    assert accuracy == float((top1(numeric) == labels).mean())
    whole = runner.infer(images, target="native").output
    assert snr == pytest.approx(snr_db(whole, numeric), rel=1e-6)
    with pytest.raises(AllsError) as excinfo:
        _Measure(runner, images, labels[:49], "nhwc")
    assert excinfo.value.diagnostics[0].code == "ALS008"
