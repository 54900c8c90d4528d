"""The conformance target: every real script parses, checks and round-trips."""

from __future__ import annotations

import functools

import alls
from conftest import corpus_files, needs_corpus

pytestmark = needs_corpus


@functools.lru_cache(maxsize=1)
def _read_all():
    return tuple((path, *alls.read_script(path)) for path in corpus_files())


def test_the_corpus_is_all_there():
    assert len(corpus_files()) >= 530


def test_every_corpus_file_parses_without_error():
    failures = [f"{path}: {d.code} {d.message} at {d.span}" for path, _, diags in _read_all() for d in diags]
    assert failures == []


def test_check_reports_no_error_for_any_corpus_file():
    failures = []
    for _path, script, _ in _read_all():
        failures += [f"{d.span}: {d.code} {d.message}" for d in alls.check(script) if d.is_error]
    assert failures == []


def test_every_corpus_command_is_in_the_catalogue():
    from alls.catalogue import COMMANDS

    unknown = {st.command for _, script, _ in _read_all() for st in script.statements} - set(COMMANDS)
    assert unknown == set()


def test_formatting_round_trips_and_is_idempotent_on_the_corpus():
    for path, script, _ in _read_all():
        formatted = alls.format_script(script)
        again = alls.parse(formatted, script.filename)
        assert again == script, path
        assert alls.format_script(again) == formatted, path
        assert len(again.comments) == len(script.comments), path


def test_statement_counts_match_a_plain_line_count():
    # Statements spanning lines must not be split or merged: count calls that
    # start a line outside brackets with a tiny independent scanner.
    for path, script, _ in _read_all():
        text = script.source
        depth, starts = 0, 0
        for line in text.split("\n"):
            stripped = line.strip()
            if depth == 0 and stripped and not stripped.startswith("#"):
                starts += 1
            for ch in line.split("#")[0]:
                depth += ch in "(["
                depth -= ch in ")]"
        assert len(script.statements) == starts, path
