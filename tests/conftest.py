"""Shared fixtures: the corpus of real scripts and the golden-file switch."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden", action="store_true", default=False,
        help="rewrite the rendered golden files in tests/golden/ instead of comparing with them",
    )


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


def assert_golden(rendered: str, golden: pathlib.Path, update: bool) -> None:
    """``rendered`` equals the pinned ``golden`` file (written anew with --update-golden)."""
    if update or not golden.exists():
        golden.write_text(rendered, encoding="utf-8")
        if not update:
            pytest.fail(f"{golden.name} did not exist and was written; review it and run again")
    assert rendered == golden.read_text(encoding="utf-8")


def corpus_files() -> list[pathlib.Path]:
    """Every .alls file of ../shared/corpus (empty when the folder is absent)."""
    if not CORPUS.is_dir():
        return []
    return sorted(CORPUS.rglob("*.alls"))


needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="the corpus (../shared/corpus) is not present")
