"""The incremental flow: each step adds one measure, the best script is kept."""

from __future__ import annotations

import numpy as np

import alls
from alls.runtime.session.runner import Runner
from alls.runtime.session.tuning import STEPS, State, best, script_for, tune
from test_importer import DIGITS

SAMPLES = DIGITS.parent


def test_each_step_states_every_switch_once_and_checks_cleanly():
    graph = alls.load_model(DIGITS)
    states = [State(), State(bias16=True, equalization=True, bias_correction=True, finetune=64,
                             wide=("digits_cnn/conv2",))]
    for state in states:
        text = script_for("quantization_param(conv1, quantization_groups=2)\n", state, graph, "a step")
        script = alls.parse(text)
        switches = [s.call.arguments[0].value.text for s in script.statements
                    if s.command.endswith("_optimization")]
        assert sorted(switches) == ["bias_correction", "equalization", "finetune"]  # each once: no contradiction
        assert not [d for d in alls.resolve(text, graph).diagnostics if d.is_error]
    assert "[{conv*}, {dw*}, {fc*}]" in script_for("", states[1], graph, "x")
    assert "dataset_size=64" in script_for("", states[1], graph, "x")
    assert "quantization_param([conv2], precision_mode=a16_w16)" in script_for("", states[1], graph, "x")


def test_tune_runs_every_step_measures_snr_and_widens_the_blamed_layers():
    calib = np.load(SAMPLES / "calib.npy")
    x, y = np.load(SAMPLES / "test_x.npy")[:120], np.load(SAMPLES / "test_y.npy")[:120]
    done = tune(lambda: Runner(DIGITS), calib, x, y, base="quantization_param(conv1, quantization_groups=2)",
                progress=False)
    assert [s.name for s in done] == [name for name, _ in STEPS]
    assert all(step.error == "" for step in done), [s.error for s in done]
    assert all(10 < step.snr_db < 80 and step.cosine > 0.99 and 0.9 <= step.accuracy <= 1.0 for step in done)
    assert all(s.script.startswith("quantization_param(conv1, quantization_groups=2)\n") for s in done)
    assert done[-1].layers and "precision_mode=a16_w16" in done[-1].script
    assert done[-1].snr_db > done[0].snr_db  # 16 bits where the error is beats round to nearest
    chosen = best(done)
    assert chosen.snr_db >= max(step.snr_db for step in done) - 0.05
    assert alls.format_text(chosen.script)  # a script that parses


def test_tune_from_the_command_line_writes_the_best_script_and_json(capsys, tmp_path):
    import json

    from alls.cli import main

    target = tmp_path / "tuned.alls"
    argv = ["tune", str(DIGITS), "--calib", str(SAMPLES / "calib.npy"), "--data", str(SAMPLES / "test_x.npy"),
            "--labels", str(SAMPLES / "test_y.npy"), "--limit", "60", "-o", str(target), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "SNR dB" in out and "top-1" in out and "+ bias correction" in out and "best:" in out
    assert all(not d.is_error for d in alls.check(target.read_text()))
    assert alls.format_text(target.read_text()) == target.read_text()  # written formatted
    assert main(argv) == 2 and "--force" in capsys.readouterr().err
    assert main([*argv, "--force", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["best"] in [s["name"] for s in doc["steps"]] and len(doc["steps"]) == len(STEPS)
    assert all(s["seconds"] > 0 and s["snr_db"] is not None for s in doc["steps"])


def test_tune_refuses_bad_input_with_codes(capsys, tmp_path):
    from alls.cli import main

    common = ["--calib", str(SAMPLES / "calib.npy"), "--data", str(SAMPLES / "test_x.npy"), "--limit", "20",
              "-o", str(tmp_path / "t.alls")]
    assert main(["tune", str(DIGITS), "--script", str(tmp_path / "missing.alls"), *common]) == 2
    assert "ALS001" in capsys.readouterr().err
    broken = tmp_path / "broken.alls"
    broken.write_text("quantization_param({cnv*}, precision_mode=a16_w16)\n")
    assert main(["tune", str(DIGITS), "--script", str(broken), *common]) == 2
    assert "error[ALS201]" in capsys.readouterr().err
    assert not (tmp_path / "t.alls").exists()
