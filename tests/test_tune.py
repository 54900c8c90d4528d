"""The incremental flow: each step adds one measure, the best script is kept."""

from __future__ import annotations

import numpy as np

import alls
from alls.runtime.runner import Runner
from alls.runtime.tune import best, steps, tune
from test_importer import DIGITS

SAMPLES = DIGITS.parent


def test_the_steps_follow_the_guide_and_name_the_kinds_present():
    graph = alls.load_model(DIGITS)
    flow = steps(graph, images=64)
    assert [s.name for s in flow] == ["round to nearest", "+ 16-bit bias", "+ equalization", "+ bias correction",
                                      "+ finetune", "+ 16-bit outputs"]
    assert "[{conv*}, {dw*}, {fc*}]" in flow[1].statements
    assert "dataset_size=64" in flow[4].statements
    for step in flow:  # every step's statements check cleanly against the model
        assert not [d for d in alls.resolve(step.statements, graph).diagnostics if d.is_error]


def test_tune_runs_every_step_and_keeps_the_best_script():
    calib = np.load(SAMPLES / "calib.npy")
    x, y = np.load(SAMPLES / "test_x.npy")[:120], np.load(SAMPLES / "test_y.npy")[:120]
    done = tune(lambda: Runner(DIGITS), calib, x, y, base="quantization_param(conv1, quantization_groups=2)")
    assert len(done) == 6 and all(step.error == "" for step in done)
    assert all(0.9 <= step.metric <= 1.0 and step.cosine > 0.99 for step in done)
    assert done[-1].script.startswith("quantization_param(conv1, quantization_groups=2)\n")
    assert all(done[i].script in done[i + 1].script for i in range(5))  # each step adds to the one before
    chosen = best(done)
    assert chosen.metric == max(step.metric for step in done)
    assert alls.format_text(chosen.script)  # a script that parses


def test_tune_from_the_command_line_writes_the_best_script(capsys, tmp_path):
    from alls.cli import main

    target = tmp_path / "tuned.alls"
    argv = ["tune", str(DIGITS), "--calib", str(SAMPLES / "calib.npy"), "--data", str(SAMPLES / "test_x.npy"),
            "--labels", str(SAMPLES / "test_y.npy"), "--limit", "60", "-o", str(target)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "+ bias correction" in out and "best:" in out
    assert alls.check(target.read_text()) == [] or all(not d.is_error for d in alls.check(target.read_text()))
    assert alls.format_text(target.read_text()) == target.read_text()  # written formatted
    assert main(argv) == 2 and "--force" in capsys.readouterr().err


def test_tune_refuses_bad_input_with_codes(capsys, tmp_path):
    from alls.cli import main

    common = ["--calib", str(SAMPLES / "calib.npy"), "--data", str(SAMPLES / "test_x.npy"), "--limit", "20",
              "-o", str(tmp_path / "t.alls")]
    assert main(["tune", str(DIGITS), "--script", str(tmp_path / "missing.alls"), *common]) == 2
    assert "ALS001" in capsys.readouterr().err
    broken = tmp_path / "broken.alls"
    broken.write_text("quantization_param({cnv*}, precision_mode=a16_w16)\n")
    assert main(["tune", str(DIGITS), "--script", str(broken), *common]) == 2
    captured = capsys.readouterr()
    assert "ALS201" in captured.out and "error[ALS201]: no step of the flow could run" in captured.err
    assert not (tmp_path / "t.alls").exists()
