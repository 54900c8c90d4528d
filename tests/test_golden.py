"""Golden diagnostics: expectations beside the lines, rendered output pinned.

Each `tests/golden/*.alls` file marks what `check` must report on a line with
a trailing comment ``# error[ALS203]:29`` (severity, code, column; several
may follow each other). The full rendering of the whole file is pinned in the
`.txt` beside it; ``pytest --update-golden`` rewrites those.
"""

from __future__ import annotations

import pathlib
import re

import pytest

import alls
from conftest import assert_golden

GOLDEN = pathlib.Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.alls"))
_EXPECT = re.compile(r"(error|warning|info)\[(ALS\d{3})\]:(\d+)")


def expectations(path: pathlib.Path) -> list[tuple[str, str, int, int]]:
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        at = line.rfind("#")
        if at >= 0 and _EXPECT.search(line[at:]):
            out += [(sev, code, line_no, int(col)) for sev, code, col in _EXPECT.findall(line[at:])]
    return sorted(out, key=lambda e: (e[2], e[3], e[1]))


def found(path: pathlib.Path):
    script, diagnostics = alls.read_script(path, path.name)
    return script, sorted(diagnostics + alls.check(script), key=alls.Diagnostic.sort_key)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_diagnostics_match_the_expectations_beside_the_lines(path):
    _, diagnostics = found(path)
    got = [(str(d.severity), d.code, d.span.line, d.span.column) for d in diagnostics]
    assert got == expectations(path)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_rendered_output_matches_the_golden_file(path, update_golden):
    script, diagnostics = found(path)
    rendered = alls.render(diagnostics, {script.filename: script.source})
    assert_golden(rendered, path.with_suffix(".txt"), update_golden)


def test_every_golden_file_expects_something():
    assert FILES and all(expectations(p) for p in FILES)


def test_every_code_is_exercised_by_a_golden_file_or_a_test():
    from test_golden_plans import plan_codes

    exercised = {code for p in FILES for _, code, _, _ in expectations(p)} | plan_codes()
    # ALS108 and ALS109 need files that cannot be written as text:
    # tests/test_parser.py and tests/test_cli.py feed them; the tool's own codes (ALS0xx: files,
    # outputs, internal errors) tests/test_wrong_files.py and tests/test_files.py. The import codes
    # (ALS4xx) are fed by tests/test_importer.py, the runtime's (ALS5xx) by
    # tests/test_runtime.py and tests/test_calibration.py, the limits' (ALS020-ALS049) by
    # tests/test_untrusted_*.py.
    left = set(alls.CODES) - exercised
    assert left == {"ALS108", "ALS109"} | {c for c in alls.CODES if c[3] in "045"}
