"""Hostile scripts: each bounded (size, nesting, literal length), recovered from in linear
time, and parsed reentrantly (threads, signal handlers)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading

import lark
import pytest

import alls
from alls.cli import main

GOOD = "quantization_param({conv*}, precision_mode=a16_w16)\n"


def codes(diagnostics):
    return [d.code for d in diagnostics]


# ------------------------------------------------------------------- limits


@pytest.mark.parametrize("depth", [65, 400, 5000])
def test_deep_nesting_is_an_error_not_a_recursion(depth):
    text = "quantization_param(conv1, x=" + "[" * depth + "1" + "]" * depth + ")\n" + GOOD
    found = alls.check(text)
    assert codes(found) == ["ALS021"]
    assert found[0].span.line == 1 and "max_nesting" in found[0].message
    assert alls.parse_partial(text)[0].statements[0].command == "quantization_param"  # the next line still parses


def test_nesting_limit_can_be_raised():
    text = "a(x=" + "[" * 99 + "]" * 99 + ")\n"
    assert codes(alls.check(text)) == ["ALS021"]
    assert "ALS021" not in codes(alls.check(text, limits=alls.Limits(max_nesting=128)))


def test_a_5000_digit_integer_is_an_error():
    found = alls.check("model_optimization_config(calibration, batch_size=" + "9" * 5000 + ")\n")
    assert codes(found) == ["ALS022"] and "max_literal_chars" in found[0].message


def test_script_size_limit_names_itself(tmp_path):
    path = tmp_path / "big.alls"
    path.write_text(GOOD * 100)
    script, found = alls.read_script(path, limits=alls.Limits(max_script_bytes=1000))
    assert codes(found) == ["ALS020"] and "max_script_bytes" in found[0].message and not script.statements
    assert alls.read_script(path)[1] == []


def test_a_stream_stops_at_the_script_limit():
    with open("/dev/zero", "rb") as stream:
        script, found = alls.read_script(stream, limits=alls.Limits(max_script_bytes=1 << 16))
    assert codes(found) == ["ALS020"]
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        assert codes(alls.read_script(fd, limits=alls.Limits(max_script_bytes=1 << 16))[1]) == ["ALS020"]
    finally:
        os.close(fd)


def test_a_device_named_as_a_script_is_refused_unread():
    assert codes(alls.read_script("/dev/zero")[1]) == ["ALS001"]


def test_cli_check_of_an_endless_standard_input_stops():
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run([sys.executable, "-m", "alls", "check", "--max-script-bytes", "65536", "-"],
                              stdin=zeros, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "ALS020" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_cli_limit_options_refuse_nonsense(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--max-nesting", "-1", "x.alls"])
    assert exit_.value.code == 2 and "above 0" in capsys.readouterr().err


def test_cli_fmt_of_deep_nesting_is_a_coded_error(tmp_path, capsys):
    path = tmp_path / "deep.alls"
    original = "a(x=" + "[" * 1000 + "]" * 1000 + ")\n"
    path.write_text(original)
    status = main(["fmt", str(path)])
    out, err = capsys.readouterr()
    assert status == 1 and "ALS021" in err and path.read_text() == original


# ------------------------------------------------------------ linear recovery


def _parsed_characters(monkeypatch, text: str) -> int:
    """How many characters lark's parser is handed while ``text`` is parsed leniently."""
    handed = []
    original = lark.Lark.parse

    def counting(self, source, *args, **kwargs):
        handed.append(len(source))
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(lark.Lark, "parse", counting)
    alls.parse_partial(text)
    return sum(handed)


def test_error_recovery_reads_each_line_a_bounded_number_of_times(monkeypatch):
    body = "".join(f"quantization_param(conv{i}, precision_mode=a8_w8)\n" for i in range(3000))
    text = "quantization_param(conv0, precision_mode=a8_w8\n" + body  # one error, first line
    script, found = alls.parse_partial(text)
    assert codes(found) == ["ALS102"] and len(script.statements) == 3000
    assert script.statements[-1].span.line == 3001
    assert _parsed_characters(monkeypatch, text) <= 3 * len(text)


def test_recovered_spans_are_those_of_the_whole_file():
    text = "a(b\n\nc(d)\n  e(f, g=)\n"
    script, found = alls.parse_partial(text, "x.alls")
    assert [(d.code, d.span.line, d.span.column) for d in found] == [("ALS102", 1, 2), ("ALS100", 4, 10)]
    assert script.statements[0].span.line == 3 and script.statements[0].span.file == "x.alls"


# --------------------------------------------------------------- reentrancy


def test_threads_parse_at_once_each_with_its_own_file_name():
    text = "".join(f"quantization_param(conv{i}, precision_mode=a8_w8)\n" for i in range(2000))
    results: dict[str, set] = {}

    def work(name):
        script = alls.parse(text, name)
        results[name] = {st.span.file for st in script.statements}

    threads = [threading.Thread(target=work, args=(f"t{i}.alls",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {f"t{i}.alls": {f"t{i}.alls"} for i in range(4)}


def test_a_parse_from_a_signal_handler_during_a_parse_completes():
    program = textwrap.dedent("""
        import signal, alls
        text = "".join(f"quantization_param(conv{i}, precision_mode=a8_w8)\\n" for i in range(20000))
        inner = []
        def handler(signum, frame):
            inner.append(alls.parse("inner(x)\\n", "inner.alls").statements[0].span.file)
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        outer = alls.parse(text, "outer.alls")
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert inner and set(inner) == {"inner.alls"}, inner
        assert {st.span.file for st in outer.statements} == {"outer.alls"}
        assert len(outer.statements) == 20000
        print("ok", len(inner))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]


def test_the_collector_is_left_alone_when_other_threads_run(monkeypatch):
    calls = []
    monkeypatch.setattr(gc, "disable", lambda: calls.append("disable"))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        alls.parse_partial(GOOD * 10000)
    finally:
        stop.set()
        other.join()
    assert calls == [] and gc.isenabled()


def test_the_collector_is_restored_after_a_large_parse():
    gc.disable()
    try:
        alls.parse_partial(GOOD * 10000)
        assert not gc.isenabled()
    finally:
        gc.enable()
    alls.parse_partial(GOOD * 10000)
    assert gc.isenabled()


# ------------------------------------------------------ descriptors and types


def test_read_script_from_a_descriptor_leaves_it_open(tmp_path):
    path = tmp_path / "s.alls"
    path.write_text(GOOD)
    fd = os.open(path, os.O_RDONLY)
    try:
        script, found = alls.read_script(fd, "s.alls")
        assert found == [] and script.statements[0].command == "quantization_param"
        os.fstat(fd)  # still open: raises OSError if it was closed
    finally:
        os.close(fd)


def test_read_script_from_a_binary_file_object(tmp_path):
    path = tmp_path / "s.alls"
    path.write_text(GOOD)
    with open(path, "rb") as f:
        script, found = alls.read_script(f)
        assert not f.closed
    assert found == [] and script.filename == str(path)


@pytest.mark.parametrize("call", [
    lambda: alls.check(None),
    lambda: alls.check(b"a(b)"),
    lambda: alls.parse(b"a(b)"),
    lambda: alls.parse("a(b)", filename=3),
    lambda: alls.read_script(3.5),
    lambda: alls.read_script(None),
    lambda: alls.check("a(b)", limits={"max_nesting": 3}),
])
def test_api_type_errors_say_what_was_expected(call):
    with pytest.raises(TypeError, match=r"(takes|must be|is a|limits)"):
        call()
