"""Every subcommand, given the wrong file in each place, ends in a coded error and never a traceback.

The matrix puts a file of another kind (an array where the quantized model
goes, an archive where images go, a binary or Latin-1 file where a script
goes, a folder, a missing path, an empty file) in each file argument of
each command, and bad output paths in each output argument. The checks run
before any work, so the whole matrix takes seconds.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np
import pytest

from alls.cli import main

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "samples" / "digits"
GOOD = {"model": SAMPLES / "digits_cnn.onnx", "script": SAMPLES / "digits.alls", "calib": SAMPLES / "calib.npy",
        "data": SAMPLES / "test_x.npy", "labels": SAMPLES / "test_y.npy"}


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """Named files: the good ones, a quantized model, and every kind of wrong one."""
    root = tmp_path_factory.mktemp("wrong")
    files = {name: str(path) for name, path in GOOD.items()}
    qmodel = root / "q.npz"
    assert main(["quantize", files["model"], "--calib", files["calib"], "-o", str(qmodel), "--quiet"]) == 0
    files["qmodel"] = str(qmodel)
    (root / "latin1.alls").write_bytes("# café\nquantization_param({conv*}, precision_mode=a8_w8)\n".encode("latin-1"))
    (root / "empty").write_bytes(b"")
    (root / "text.txt").write_text("not a model, an array or an archive\n")
    (root / "folder").mkdir()
    (root / "existing.npz").write_bytes(b"keep me")
    np.save(root / "few_labels.npy", np.load(GOOD["labels"])[:10])
    np.save(root / "onehot.npy", np.eye(10, dtype=np.float32)[np.load(GOOD["labels"])])
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    os.symlink(root / "existing.npz", root / "link.npz")
    os.mkfifo(root / "fifo")
    files.update({
        "npy": files["data"], "npz": str(qmodel), "onnx": files["model"], "latin1": str(root / "latin1.alls"),
        "empty": str(root / "empty"), "text": str(root / "text.txt"), "folder": str(root / "folder"),
        "missing": str(root / "missing.npy"), "few_labels": str(root / "few_labels.npy"),
        "onehot": str(root / "onehot.npy"), "objects": str(root / "objects.npy"),
        "nodir": str(root / "nodir" / "out.npz"), "existing": str(root / "existing.npz"),
        "link": str(root / "link.npz"), "fifo": str(root / "fifo"), "out": str(root / "out.npz"),
        "report": str(root / "report"), "tuned": str(root / "tuned.alls"),
    })
    return files


def _commands():
    """(name, argv with {placeholders}, the roles a wrong file may take) for each subcommand."""
    return [
        ("quantize", ["quantize", "{model}", "--script", "{script}", "--calib", "{calib}", "-o", "{out}", "--data",
                      "{data}", "--labels", "{labels}"]),
        ("eval", ["eval", "{qmodel}", "--data", "{data}", "--labels", "{labels}"]),
        ("analyze", ["analyze", "{qmodel}", "--data", "{data}", "-o", "{report}"]),
        ("taps", ["taps", "{qmodel}", "--data", "{data}", "-o", "{report}"]),
        ("tune", ["tune", "{model}", "--script", "{script}", "--calib", "{calib}", "--data", "{data}",
                  "--labels", "{labels}", "-o", "{tuned}"]),
        ("plan", ["plan", "{script}", "--model", "{model}"]),
        ("layers", ["layers", "{model}"]),
        ("check", ["check", "{script}"]),
        ("fmt", ["fmt", "{script}"]),
    ]


# (role, wrong file, the code that must come back; None: any code)
INPUTS = [
    ("model", "npy", "ALS007"), ("model", "npz", "ALS007"), ("model", "text", "ALS402"), ("model", "folder", None),
    ("model", "missing", "ALS402"), ("model", "empty", None),
    ("script", "latin1", "ALS108"), ("script", "npy", None), ("script", "onnx", None), ("script", "folder", "ALS001"),
    ("script", "missing", "ALS001"), ("script", "fifo", "ALS001"),
    ("calib", "npz", "ALS007"), ("calib", "onnx", "ALS007"), ("calib", "text", "ALS007"), ("calib", "folder", "ALS001"),
    ("calib", "missing", "ALS001"), ("calib", "empty", "ALS007"), ("calib", "objects", "ALS505"),
    ("data", "npz", "ALS007"), ("data", "latin1", "ALS007"), ("data", "missing", "ALS001"),
    ("data", "folder", "ALS001"), ("data", "fifo", "ALS001"), ("model", "fifo", "ALS001"),
    ("qmodel", "fifo", "ALS001"),
    ("labels", "few_labels", "ALS008"), ("labels", "onehot", "ALS008"), ("labels", "npz", "ALS007"),
    ("qmodel", "npy", "ALS007"), ("qmodel", "onnx", "ALS007"), ("qmodel", "text", "ALS007"),
    ("qmodel", "folder", "ALS001"), ("qmodel", "missing", "ALS001"), ("qmodel", "empty", "ALS007"),
]
OUTPUTS = [
    ("out", "nodir", "ALS002"), ("out", "folder", "ALS005"), ("out", "existing", "ALS004"), ("out", "link", "ALS006"),
    ("out", "fifo", "ALS005"),
    ("tuned", "nodir", "ALS002"), ("tuned", "folder", "ALS005"), ("tuned", "existing", "ALS004"),
    ("report", "existing", "ALS005"), ("report", "nodir", "ALS002"), ("report", "link", "ALS006"),
]


# The commands that read images from a folder of .npy files as well as from one file: an empty
# folder is refused as data (ALS029), not as a path that is not a file.
FOLDER_DATA = {"quantize", "eval", "tune", "analyze", "taps"}


def _cases():
    for name, argv in _commands():
        for role, wrong, code in INPUTS + OUTPUTS:
            if name in FOLDER_DATA and role in ("calib", "data") and wrong == "folder":
                code = "ALS029"
            if "{" + role + "}" in argv:
                yield pytest.param(argv, role, wrong, code, id=f"{name}-{role}-{wrong}")


@pytest.mark.parametrize("argv, role, wrong, code", list(_cases()))
def test_a_wrong_file_gets_a_code_and_no_traceback(place, capfd, argv, role, wrong, code):
    names = dict(place, **{role: place[wrong]})
    if argv[0] == "fmt" and role == "script" and wrong not in ("missing", "folder", "fifo"):
        copy = pathlib.Path(place["out"]).with_name(f"fmt-{wrong}")  # fmt refuses, but never on a shared file
        shutil.copyfile(names[role], copy)
        names[role] = str(copy)
    before = _snapshot(place)
    status = main([arg.format(**names) for arg in argv])
    out, err = capfd.readouterr()
    assert status in (1, 2), out + err
    assert "Traceback" not in out + err and "ALS000" not in out + err, out + err
    assert "[ALS" in out + err
    if code is not None:
        assert f"[{code}]" in out + err, out + err
    assert _snapshot(place) == before  # nothing given was changed


def _snapshot(place) -> dict:
    keep = ("existing", "qmodel", "latin1", "text", "labels", "data", "calib", "script")
    return {k: pathlib.Path(place[k]).read_bytes() for k in keep}


def test_explain_an_unknown_code_is_a_code_too(capsys):
    assert main(["explain", "ALS2030"]) == 2
    err = capsys.readouterr().err
    assert "error[ALS009]" in err and "alls explain" in err


def test_an_unexpected_exception_is_als000_with_the_version_and_the_traceback_only_with_debug(monkeypatch, capsys):
    import alls
    import alls.cli

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(alls.cli, "_layers", broken)
    assert main(["layers", str(GOOD["model"])]) == 2
    err = capsys.readouterr().err
    assert f"error[ALS000]: internal error in alls {alls.__version__}: RuntimeError: boom" in err
    assert "report" in err and "--debug" in err and "Traceback" not in err
    assert main(["layers", str(GOOD["model"]), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "error[ALS000]" in err


def test_the_output_is_checked_before_the_work(place, capsys, monkeypatch):
    import alls.runtime.session.runner

    def never(*args, **kwargs):
        raise AssertionError("calibration ran")

    monkeypatch.setattr(alls.runtime.session.runner.Runner, "quantize", never)
    assert main(["quantize", place["model"], "--calib", place["calib"], "-o", place["nodir"]]) == 2
    assert "ALS002" in capsys.readouterr().err
