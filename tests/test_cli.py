"""The command line: exit codes, output formats, fmt's safety, explain."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

import alls
from alls.cli import main

GOOD = "quantization_param({conv*}, precision_mode=a16_w16)\n"
UGLY = "# keep me\nquantization_param( {conv*} ,precision_mode = a16_w16 )   # and me\n\n\n\nnext_cmd(true)"
UGLY_FORMATTED = "# keep me\nquantization_param({conv*}, precision_mode=a16_w16)  # and me\n\nnext_cmd(True)\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def script(tmp_path):
    def write(text, name="s.alls"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8", newline="")
        return path

    return write


# ---------------------------------------------------------------------- check


def test_check_clean_file_exits_0(capsys, script):
    code, out, _ = run(capsys, "check", str(script(GOOD)))
    assert code == 0 and "no problems in 1 file" in out


def test_check_warnings_alone_exit_0(capsys, script):
    code, out, _ = run(capsys, "check", str(script("quantization_param({conv*}, use_16bit_bias=True)\n")))
    assert code == 0 and "warning[ALS209]" in out and "found 1 warning in 1 file" in out


def test_check_errors_exit_1_with_caret_and_help(capsys, script):
    path = script("quantization_param({conv*}, precison_mode=a16_w16)\n")
    code, out, _ = run(capsys, "check", str(path))
    assert code == 1
    assert f"--> {path}:1:29" in out
    assert "  |                             ^^^^^^^^^^^^^ unknown keyword" in out
    assert "= help: did you mean `precision_mode`?" in out


def test_check_missing_file_exits_2(capsys, tmp_path):
    code, out, _ = run(capsys, "check", str(tmp_path / "nope.alls"))
    assert code == 2 and "error[ALS001]" in out


def test_check_several_files_and_concise_format(capsys, script):
    a = script("a_bad(1)\nquantization_param(conv1, precision_mode=best)\n", "a.alls")
    b = script(GOOD, "b.alls")
    code, out, _ = run(capsys, "check", "--output-format", "concise", str(a), str(b))
    assert code == 1
    assert out.splitlines() == [
        f"{a}:1:1: warning[ALS212] unknown command `a_bad`; the emulator ignores it (check the spelling; "
        "`alls explain ALS212` says more)",
        f"{a}:2:42: error[ALS301] `best` is not an allowed value (allowed: a8_w8, a8_w4, a16_w16, a16_w8, "
        "a16_w8_a16, a16_w4_a16, a8_w8_a16)",
    ]


def test_check_json_format_is_machine_readable(capsys, script):
    path = script("quantization_param({conv*}, quantization_groups=9)\n")
    code, out, _ = run(capsys, "check", "--output-format", "json", str(path))
    (item,) = json.loads(out)
    assert code == 1
    assert item["code"] == "ALS303" and item["severity"] == "error"
    assert (item["file"], item["line"], item["column"], item["end_column"]) == (str(path), 1, 49, 50)


def test_check_reads_standard_input(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", type("In", (), {"buffer": __import__("io").BytesIO(b"a(1 2)\n")})())
    code, out, _ = run(capsys, "check", "-")
    assert code == 1 and "<stdin>:1:5" in out and "ALS104" in out


def test_check_binary_garbage_is_a_diagnostic_not_a_traceback(capsys, tmp_path):
    path = tmp_path / "garbage.alls"
    path.write_bytes(b"\xff\xfe\x00a\x00(\x00")
    code, out, err = run(capsys, "check", str(path))
    assert code == 1 and "ALS108" in out and "ALS109" in out and err == ""


# ------------------------------------------------------------------------ fmt


def test_fmt_rewrites_in_place_and_is_idempotent(capsys, script):
    path = script(UGLY)
    code, out, _ = run(capsys, "fmt", str(path))
    assert code == 0 and out == f"reformatted {path}\n"
    assert path.read_text() == UGLY_FORMATTED
    code, out, _ = run(capsys, "fmt", str(path))
    assert code == 0 and out == ""


def test_fmt_check_and_diff_write_nothing(capsys, script):
    path = script(UGLY)
    code, out, _ = run(capsys, "fmt", "--check", str(path))
    assert code == 1 and out == f"would reformat {path}\n"
    code, out, _ = run(capsys, "fmt", "--diff", str(path))
    assert code == 1 and "-quantization_param( {conv*}" in out and "+quantization_param({conv*}" in out
    assert path.read_text() == UGLY
    assert run(capsys, "fmt", "--check", str(script(UGLY_FORMATTED, "ok.alls")))[0] == 0


def test_fmt_refuses_a_file_with_syntax_errors_and_leaves_it_untouched(capsys, script):
    text = "quantization_param( {conv*} ,precision_mode = a16_w16\nb(1 2)\n"
    path = script(text)
    code, out, err = run(capsys, "fmt", str(path))
    assert code == 1 and "ALS102" in err and "not formatted" in err
    assert path.read_text() == text
    assert [p.name for p in path.parent.iterdir()] == ["s.alls"]


def test_fmt_keeps_the_file_mode_and_leaves_no_temporary_file(capsys, script):
    path = script(UGLY)
    path.chmod(0o640)
    run(capsys, "fmt", str(path))
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["s.alls"]


def test_fmt_standard_input_to_standard_output(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", type("In", (), {"buffer": __import__("io").BytesIO(UGLY.encode())})())
    code, out, _ = run(capsys, "fmt", "-")
    assert code == 0 and out == UGLY_FORMATTED


# -------------------------------------------------------------------- explain


@pytest.mark.parametrize("code", sorted(alls.CODES))
def test_explain_every_code(capsys, code):
    status, out, _ = run(capsys, "explain", code.lower())
    assert status == 0
    for part in ("What:", "Why:", "Example:", "Fix:"):
        assert part in out


def test_explain_lists_codes_and_rejects_unknown_ones(capsys):
    status, out, _ = run(capsys, "explain")
    assert status == 0 and len(out.splitlines()) == len(alls.CODES)
    status, _, err = run(capsys, "explain", "ALS2O3")
    assert status == 2 and "did you mean" in err and "`ALS203`" in err


# ---------------------------------------------------------------- the process


def test_console_script_version_and_usage():
    out = subprocess.run([sys.executable, "-m", "alls", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"alls {alls.__version__}"
    out = subprocess.run([sys.executable, "-m", "alls"], capture_output=True, text=True)
    assert out.returncode == 2
    out = subprocess.run([sys.executable, "-m", "alls", "check"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage:" in out.stderr


def test_import_and_check_load_neither_numba_nor_onnx(tmp_path):
    path = tmp_path / "s.alls"
    path.write_text(GOOD)
    probe = (
        "import sys, alls\n"
        "from alls.cli import main\n"
        f"code = main(['check', {str(path)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'onnx', 'numpy', 'onnxruntime'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------- layers

DIGITS = str(__import__("pathlib").Path(__file__).resolve().parent.parent / "samples" / "digits" / "digits_cnn.onnx")


def test_layers_lists_hailo_names_aliases_shapes_and_macs(capsys):
    code, out, _ = run(capsys, "layers", DIGITS)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["layer", "alias", "op", "input", "output", "weights", "MACs"]
    assert lines[2].split() == ["digits_cnn/conv1", "conv1", "Conv+BatchNormalization+Relu", "[relu]", "1x1x8x8",
                                "1x16x8x8", "16x1x3x3", "9,216"]
    assert "9 layers, 198,976 MACs per image" in out


def test_layers_json_and_input_shape_override(capsys):
    code, out, _ = run(capsys, "layers", DIGITS, "--json", "--input-shape", "4,1,16,16", "--name", "d")
    doc = json.loads(out)
    assert code == 0 and doc["network"] == "d"
    assert [l["name"] for l in doc["layers"]][:2] == ["d/input_layer1", "d/conv1"]
    assert doc["layers"][1]["output_shape"] == [4, 16, 16, 16]


def test_layers_bad_model_and_bad_shape_exit_2(capsys, tmp_path):
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"not a model at all")
    code, _, err = run(capsys, "layers", str(garbage))
    assert code == 2 and "ALS402" in err
    code, _, err = run(capsys, "layers", DIGITS, "--input-shape", "1,1,8")
    assert code == 2 and "ALS405" in err
    code, _, err = run(capsys, "layers", DIGITS, "--input-shape", "1,x")
    assert code == 2 and "ALS405" in err


# ----------------------------------------------------------------------- plan


def test_plan_prints_a_row_per_layer_and_the_settings(capsys, script):
    path = script("quantization_param({conv*}, bias_mode=double_scale_initialization)\n")
    code, out, _ = run(capsys, "plan", str(path), "--model", DIGITS)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["layer", "kind", "bits"]
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert conv1.split() == ["conv1", "conv", "8", "8", "8", "double", "1", "-", "-", "eq", "ibc", "1"]
    assert any(line.startswith("calibration: 64 images in batches of 8") for line in lines)


def test_plan_explain_lists_the_statements_that_shaped_a_layer_in_order(capsys, script):
    path = script("quantization_param({conv*}, precision_mode=a16_w16)\n"
                  "quantization_param({*}, precision_mode=a16_w16)\n"
                  "quantization_param(conv2, bias_mode=double_scale_initialization)\n")
    code, out, _ = run(capsys, "plan", str(path), "--model", DIGITS, "--explain", "conv2")
    assert code == 0
    assert out.index("line 1: quantization_param({conv*}") < out.index("line 2:") < out.index("line 3:")
    assert "bias_mode            double_scale_initialization  line 3" in out
    code, _, err = run(capsys, "plan", str(path), "--model", DIGITS, "--explain", "conv9")
    assert code == 2 and "conv9" in err and "did you mean" in err


def test_plan_json_to_stdout_and_to_a_file(capsys, script, tmp_path):
    path = script("quantization_param({cnv*}, precision_mode=a16_w16)\n")
    code, out, _ = run(capsys, "plan", str(path), "--model", DIGITS, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["network"] == "digits_cnn" and len(doc["layers"]) == 9
    assert [d["code"] for d in doc["diagnostics"]] == ["ALS201"]
    target = tmp_path / "plan.json"
    code, out, _ = run(capsys, "plan", str(path), "--model", DIGITS, "-o", str(target))
    assert code == 1 and json.loads(target.read_text())["layers"][1]["name"] == "digits_cnn/conv1"
    assert "error[ALS201]" in out


def test_plan_needs_a_readable_model_and_script(capsys, script, tmp_path):
    code, _, err = run(capsys, "plan", str(script(GOOD)), "--model", str(tmp_path / "missing.onnx"))
    assert code == 2 and "ALS402" in err
    code, _, err = run(capsys, "plan", str(tmp_path / "missing.alls"), "--model", DIGITS)
    assert code == 2 and "ALS001" in err


def test_check_with_a_model_binds_the_selectors(capsys, script):
    path = script("quantization_param({cnv*}, precision_mode=a16_w16)\nquantization_param({*}, quantization_groups=2)\n")
    code, out, _ = run(capsys, "check", str(path))
    assert code == 0  # without a model a glob cannot be checked
    code, out, _ = run(capsys, "check", str(path), "--model", DIGITS, "--output-format", "concise")
    found = [line.split()[1] for line in out.splitlines()]
    assert code == 1 and found == ["error[ALS201]", "error[ALS213]"]
    assert "did you mean `{conv*}`? (3 layers)" in out


# ---------------------------------------------------------------------- help


@pytest.mark.parametrize("command", ["check", "fmt", "layers", "plan", "quantize", "eval", "analyze", "tune",
                                     "explain"])
def test_every_command_has_help_with_an_example_that_names_it(capsys, command):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"example:\n  alls {command} " in out and "--quiet" in out


def test_tune_help_lists_its_steps_and_quantize_help_the_guides_switches(capsys):
    from alls.runtime import STEPS

    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name, _ in STEPS)
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--equalize, --no-equalize", "--ibc, --no-ibc", "--finetune, --no-finetune"))


def test_quantize_switches_reach_the_plan_as_statements(capsys, tmp_path):
    out = tmp_path / "q.npz"
    calib = str(pathlib.Path(DIGITS).parent / "calib.npy")
    assert main(["quantize", DIGITS, "--calib", calib, "-o", str(out), "--no-equalize", "--no-ibc", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "equalized" not in printed and "bias correction" not in printed
    from alls.runtime import load

    qmodel = load(out)
    assert "pre_quantization_optimization(equalization, policy=disabled)" in qmodel.script
    assert not any(layer.equalization or layer.bias_correction for layer in qmodel.plan)


def test_api_help_is_spelled_for_the_command_line_there(capsys, tmp_path):
    import numpy as np

    nchw = tmp_path / "nchw.npy"
    np.save(nchw, np.load(pathlib.Path(DIGITS).parent / "calib.npy").transpose(0, 3, 1, 2))
    code = main(["quantize", DIGITS, "--calib", str(nchw), "-o", str(tmp_path / "q.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "ALS505" in err and "--layout nchw" in err and 'layout="' not in err


def test_the_command_line_is_a_thin_layer_over_the_public_api():
    import re

    package = pathlib.Path(alls.__file__).parent
    modules = [package / "cli.py", *sorted((package / "commands").glob("*.py"))]  # the parser, the commands' bodies
    runtime = __import__("alls.runtime", fromlist=["__all__"])
    imported = set()
    for path in modules:
        source = path.read_text()
        assert "error[ALS" not in source, path.name  # every error is a Diagnostic, rendered by alls.render
        internals = re.findall(r"(?:from|import) (alls\.runtime\.\w+)", source)
        assert internals == [], path.name  # only `from alls.runtime import <public name>`
        for grouped, plain in re.findall(r"from alls\.runtime import (?:\(([^)]*)\)|([\w, ]+))", source):
            imported.update(name.strip() for name in (grouped or plain).split(",") if name.strip())
    assert {"Runner", "load", "analyze", "tune", "write_taps"} <= imported  # the commands were read
    assert not imported - set(runtime.__all__), sorted(imported - set(runtime.__all__))


def test_every_command_runs_a_body_in_alls_commands():
    from alls.cli import _parser

    subparsers = next(a for a in _parser()._actions if a.dest == "==SUPPRESS==" and a.choices)
    bodies = {name: parser.get_default("run") for name, parser in subparsers.choices.items()}
    assert bodies and all(run.__module__.startswith("alls.commands.") for run in bodies.values()), bodies
