"""The static checks: mypy in strict mode over ``alls`` and ``alls.runtime``, and ruff's rules.

Both tools come with the ``dev`` extra; without them these tests skip and say which is missing.
Their settings, and why each rule or exception is there, are in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from typecheck import ROOT, run_mypy


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (the dev extra)")
def test_mypy_strict_is_clean():
    result = run_mypy()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (the dev extra)")
def test_ruff_is_clean():
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
