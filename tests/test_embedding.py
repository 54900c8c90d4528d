"""Embedding hygiene: the library leaves its host as it found it (environment, warnings, logging,
numpy settings, BLAS threads) and never echoes control characters to a terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from hostile import conv_weight, model
from onnx import helper

import alls
from alls.cli import main

ESC = "\x1b]0;owned\x07\x1b[2J"


def test_importing_the_runtime_leaves_the_environment_alone():
    program = ("import os; before = dict(os.environ); import alls.runtime; from alls.runtime import Runner, load; "
               "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")})
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def _host_state():
    root = logging.getLogger()
    environment = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    return (environment, list(warnings.filters), np.geterr(), np.get_printoptions(), root.level,
            list(root.handlers))


def test_quantize_and_run_leave_the_host_as_it_was():
    from alls.runtime import Runner

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    runner = Runner(model(nodes, {"w": conv_weight()}))
    runner.load_script("model_optimization_config(calibration, batch_size=4, calibset_size=8)\n")
    x = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 3)).astype(np.float32)
    threads_before = _blas_threads()
    before = _host_state()
    qmodel = runner.quantize(x, progress=False)
    qmodel.run(x, target="native")
    after = _host_state()
    assert set(after[0].items()) ^ set(before[0].items()) == set()
    assert after == before
    threads_after = _blas_threads()
    assert {path: threads_after[path] for path in threads_before} == threads_before  # libraries loaded since aside


def _blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl (the `threads` extra) is not installed")
    return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}


def test_blas_is_single_threaded_inside_a_runtime_call_only():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl (the `threads` extra) is not installed")
    from alls.runtime.exec.threads import single_threaded_blas

    outside = _blas_threads()
    with single_threaded_blas():
        inside = [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()
                  if i["user_api"] == "blas"]
    assert inside and all(n == 1 for _, n in inside), inside
    now = _blas_threads()
    assert {path: now[path] for path in outside} == outside


# ------------------------------------------------------------ control characters


def test_control_characters_in_a_script_are_not_echoed(tmp_path, capsys):
    path = tmp_path / "s.alls"
    path.write_text(f"quantization_param(conv1, precision_mode=a8_w9)  # {ESC}\nfoo({ESC})\n")
    for fmt in ("full", "concise"):
        main(["check", "--output-format", fmt, str(path)])
        out, err = capsys.readouterr()
        assert "ALS301" in out and "\x1b" not in out + err and "\x07" not in out + err
        assert "␛" in out or "\\x1b" in out


def test_control_characters_in_node_names_are_not_echoed(tmp_path, capsys):
    proto = model([helper.make_node("Einsum", ["x"], ["y"], name=f"evil{ESC}", equation="nchw->nchw")])
    onnx.save(proto, tmp_path / "m.onnx")
    status = main(["layers", str(tmp_path / "m.onnx")])
    out, err = capsys.readouterr()
    assert status == 1 and "ALS401" in out and "\x1b" not in out + err


def test_render_keeps_carets_aligned_under_control_characters():
    text = "a(\x1b, b=)\n"
    script, found = alls.parse_partial(text, "x.alls")
    rendered = alls.render(found, {"x.alls": text})
    source, marks = [line for line in rendered.splitlines() if line.startswith(("1 |", "  |"))][-2:]
    assert "\x1b" not in rendered
    assert marks.index("^") == source.index("␛")
