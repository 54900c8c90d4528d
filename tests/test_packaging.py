"""The wheel ships every module of the source tree, and the data files the code reads."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# source folder -> the package it installs as (setup.py's ROOTS)
ROOTS = {"alls": "alls", "grammar": "alls/grammar", "runtime": "alls/runtime"}
DATA = ("alls/py.typed", "alls/grammar/alls.lark", "alls/runtime/NUMERICS.md")


def _expected() -> set[str]:
    files = set(DATA)
    for folder, package in ROOTS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                files.add(f"{package}/{path.relative_to(ROOT / folder).as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Deprecat" not in done.stdout + done.stderr, "the build warns about a deprecated setting"
    (path,) = out.glob("alls-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_contains_every_module(wheel):
    names = set(wheel.namelist())
    missing = sorted(_expected() - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "alls/runtime/kernels/conv.py" in names  # the subpackage a fixed list once left out


def test_wheel_has_nothing_but_the_package(wheel):
    stray = [n for n in wheel.namelist() if not n.startswith(("alls/", "alls-"))]
    assert not stray
    assert not [n for n in wheel.namelist() if "__pycache__" in n or n.endswith((".pyc", ".nbi", ".nbc"))]


def test_wheel_declares_the_command_and_the_report_extra(wheel):
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    text = wheel.read(meta).decode()
    assert "Provides-Extra: report" in text
    assert "License-Expression: MIT" in text
    (entry,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "alls = alls.cli:main" in wheel.read(entry).decode()
