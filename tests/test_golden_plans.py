"""Golden plans: scripts bound to models, with the `alls plan` output pinned.

Each `tests/golden/plans/*.alls` names its model in a header comment
(``# model: samples/digits/digits_cnn.onnx``, optionally ``# input-shape:
1,3,320,320``; ``# model: centerface`` is the cached CenterFace fixture),
marks the diagnostics beside the lines as the other golden files do, and
lists those without a place in ``# unplaced: warning[ALS316]``. The `.txt`
beside it pins the whole `alls plan` output; ``pytest --update-golden``
rewrites it.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from alls.cli import main
from conftest import assert_golden
from test_golden import expectations

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLANS = ROOT / "tests" / "golden" / "plans"
FILES = sorted(PLANS.glob("*.alls"))
_HEADER = re.compile(r"^# (model|input-shape|unplaced): (.+)$", re.M)
_UNPLACED = re.compile(r"(error|warning|info)\[(ALS\d{3})\]")


def header(path: pathlib.Path) -> dict[str, str]:
    return dict(_HEADER.findall(path.read_text(encoding="utf-8")))


def arguments(path: pathlib.Path) -> list[str]:
    """The `alls plan` arguments of a golden script, relative to the repository root."""
    head = header(path)
    model = head["model"]
    if model == "centerface":
        from models import centerface

        model = str(centerface())
    args = ["plan", str(path.relative_to(ROOT)), "--model", model]
    if "input-shape" in head:
        args += ["--input-shape", head["input-shape"]]
    return args


def unplaced(path: pathlib.Path) -> list[tuple[str, str]]:
    return _UNPLACED.findall(header(path).get("unplaced", ""))


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_plan_diagnostics_match_the_expectations(path, at_root, capsys):
    main(arguments(path) + ["--json"])
    import json

    diagnostics = json.loads(capsys.readouterr().out)["diagnostics"]
    placed = [(d["severity"], d["code"], d["line"], d["column"]) for d in diagnostics if "line" in d]
    assert placed == [e for e in expectations(path) if e[2] > 0]
    assert sorted((d["severity"], d["code"]) for d in diagnostics if "line" not in d) == sorted(unplaced(path))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_plan_output_matches_the_golden_file(path, at_root, capsys, update_golden):
    main(arguments(path))
    rendered = capsys.readouterr().out
    if header(path)["model"] == "centerface":  # the cache folder differs between machines
        rendered = rendered.replace(arguments(path)[3], "centerface.onnx")
    assert_golden(rendered, path.with_suffix(".txt"), update_golden)


def plan_codes() -> set[str]:
    """Every code the golden plans exercise."""
    return {code for p in FILES for _, code, _, _ in expectations(p)} | {c for p in FILES for _, c in unplaced(p)}
