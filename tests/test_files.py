"""Outputs that cannot destroy: atomic writes with the user's umask, only regular files, no stray temporaries."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

import alls
from alls import files
from alls.cli import main


def _codes(error: pytest.ExceptionInfo) -> list[str]:
    return [d.code for d in error.value.diagnostics]


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        files.write_file(tmp_path / "new.txt", "hello\n")
        assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o640
        (tmp_path / "kept.txt").write_text("x")
        os.chmod(tmp_path / "kept.txt", 0o604)
        files.write_file(tmp_path / "kept.txt", b"y")
        assert stat.S_IMODE(os.stat(tmp_path / "kept.txt").st_mode) == 0o604
    finally:
        os.umask(old)
    assert (tmp_path / "kept.txt").read_bytes() == b"y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt", "new.txt"]  # no temporary left


def test_only_regular_files_are_written(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "target").write_text("mine")
    os.symlink(tmp_path / "target", tmp_path / "link")
    for name, code in (("fifo", "ALS005"), ("dir", "ALS005"), ("link", "ALS006"), ("no/such/file", "ALS002")):
        with pytest.raises(alls.AllsError) as error:
            files.write_file(tmp_path / name, "x")
        assert _codes(error) == [code]
    assert (tmp_path / "target").read_text() == "mine"


def test_an_existing_output_needs_force_and_an_unwritable_folder_is_refused(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(alls.AllsError) as error:
        files.check_output(tmp_path / "out", force=False)
    assert _codes(error) == ["ALS004"] and "--force" in error.value.diagnostics[0].help
    assert files.check_output(tmp_path / "out", force=True) == []
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): ALS003 cannot be provoked by permissions")
        with pytest.raises(alls.AllsError) as error:
            files.check_output(locked / "out", force=False)
        assert _codes(error) == ["ALS003"]
    finally:
        os.chmod(locked, 0o700)


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "out").write_text("old")

    def writer(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(alls.AllsError) as error:
        files.write_file(tmp_path / "out", writer)
    assert _codes(error) == ["ALS003"] and "No space left" in str(error.value)
    assert (tmp_path / "out").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_sigterm_during_a_write_removes_the_temporary_file(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, time
        from alls import files
        def writer(f):
            f.write(b"partial")
            f.flush()
            print("writing", flush=True)
            time.sleep(30)
        try:
            files.write_file({str(tmp_path / 'out')!r}, writer)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert any(p.name.startswith(".alls-") for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "interrupted" in out
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temporary file


def test_a_stale_temporary_file_of_a_killed_run_is_removed_and_reported(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".alls-{dead.pid}-abc.tmp"
    stale.write_bytes(b"partial")
    mine = tmp_path / f".alls-{os.getpid()}-xyz.tmp"  # a live process's: left alone
    mine.write_bytes(b"busy")
    found = files.check_output(tmp_path / "out.npz")
    assert [d.code for d in found] == ["ALS010"] and str(stale) in found[0].message
    assert not stale.exists() and mine.exists()


def test_fmt_rewrites_the_file_a_link_points_to_and_keeps_the_link(tmp_path, capsys):
    real = tmp_path / "real.alls"
    real.write_text("quantization_param( {conv*} ,precision_mode = a16_w16 )\n")
    link = tmp_path / "link.alls"
    os.symlink(real, link)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "quantization_param({conv*}, precision_mode=a16_w16)\n"


def test_plan_output_refuses_a_link_and_overwrites_only_with_force(tmp_path, capsys):
    model = str(__import__("test_importer").DIGITS)
    script = tmp_path / "s.alls"
    script.write_text("quantization_param({conv*}, precision_mode=a8_w8)\n")
    out = tmp_path / "plan.json"
    assert main(["plan", str(script), "--model", model, "-o", str(out)]) == 0
    assert main(["plan", str(script), "--model", model, "-o", str(out)]) == 2
    assert "ALS004" in capsys.readouterr().err
    assert main(["plan", str(script), "--model", model, "-o", str(out), "--force"]) == 0
    os.symlink(out, tmp_path / "link.json")
    assert main(["plan", str(script), "--model", model, "-o", str(tmp_path / "link.json"), "--force"]) == 2
    assert "ALS006" in capsys.readouterr().err
