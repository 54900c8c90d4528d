"""One progress display: a bar on a terminal, plain periodic lines in a log, silent when asked."""

from __future__ import annotations

import io

import numpy as np
import pytest

from alls import progress
from alls.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def default_on():
    progress.configure(True)
    yield
    progress.configure(True)


def test_a_log_gets_a_line_at_the_start_periodic_lines_and_one_at_the_end(monkeypatch):
    clock = iter([0.0, 3.0, 11.0, 12.0, 25.0, 26.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    log = io.StringIO()
    bar = Progress("calibration", 5, stream=log)
    for _ in range(4):
        bar.step()
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0] == "calibration: 0/5"
    assert lines[1] == "calibration: 2/5 (11.0 s)" and lines[2] == "calibration: 4/5 (25.0 s)"
    assert lines[-1] == "calibration: 4/5 done in 26.0 s" and "\r" not in log.getvalue()


def test_a_terminal_gets_a_bar_redrawn_in_place():
    tty = Terminal()
    with Progress("finetune", 4, stream=tty) as bar:
        bar.step(2)
    text = tty.getvalue()
    assert text.startswith("\rfinetune [############............] 2/4") and text.endswith("\n")


def test_quiet_and_false_show_nothing_and_true_overrides_the_default():
    log = io.StringIO()
    progress.configure(False)
    with Progress("evaluation", 3, stream=log) as bar:
        bar.step(3)
    progress.note("compiling", stream=log)
    assert log.getvalue() == ""
    with Progress("evaluation", 3, True, stream=log) as bar:
        bar.step(3)
    assert "evaluation: 3/3 done in" in log.getvalue()
    progress.configure(True)
    other = io.StringIO()
    with Progress("evaluation", 3, False, stream=other) as bar:
        bar.step(3)
    assert other.getvalue() == ""


def test_the_runner_shows_advice_and_progress_and_progress_false_hides_both(capfd):
    from alls.runtime import Runner
    from test_importer import DIGITS

    calib = np.load(DIGITS.parent / "calib.npy")
    runner = Runner(DIGITS)
    runner.load_script("quantization_param({conv*}, precision_mode=a8_w4)\n")
    runner.quantize(calib)
    err = capfd.readouterr().err
    assert "warning[ALS311]" in err and "calibration: 8/8 done in" in err and "bias correction: 5/5" in err
    assert err.index("warning[ALS311]") < err.index("calibration: 0/8")  # advice before the work
    quiet = Runner(DIGITS, progress=False)
    quiet.load_script("quantization_param({conv*}, precision_mode=a8_w4)\n")
    quiet.quantize(calib)
    assert capfd.readouterr().err == ""


def test_the_command_line_is_quiet_with_quiet(tmp_path, capfd):
    from alls.cli import main
    from test_importer import DIGITS

    script = tmp_path / "four.alls"
    script.write_text("quantization_param({conv*}, precision_mode=a8_w4)\n")
    argv = ["quantize", str(DIGITS), "--script", str(script), "--calib", str(DIGITS.parent / "calib.npy"),
            "-o", str(tmp_path / "q.npz")]
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "warning[ALS311]" in err and "calibration: 0/8" in err
    assert main([*argv, "--force", "--quiet"]) == 0
    assert capfd.readouterr().err == ""


def test_an_empty_script_is_a_script_not_a_missing_file():
    from alls.runtime import Runner
    from test_importer import DIGITS

    plan = Runner(DIGITS).load_script("")
    assert all(layer.weight_bits in (None, 8) for layer in plan)
