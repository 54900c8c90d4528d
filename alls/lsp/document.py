"""A script open in an editor: incremental parsing, diagnostics, positions.

`Document.analyse` gives the statements and diagnostics that `alls check`
gives for the same text (with a model: `alls check --model`), but parses
only the statement chunks (`alls.recovery.split_statements`) that changed
since the last call. Each chunk's statements, comments and syntax errors
are cached by its text and line; a chunk that moved is moved by shifting
its spans, a new one is parsed alone. With a cold cache the whole text is
parsed at once (faster than chunk by chunk) and, when clean, cut into the
cache. Typing on one line of a 1,000-line script re-parses one statement.

Columns of `Span` count characters; the protocol counts UTF-16 code units
(`to_utf16`, `from_utf16`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import alls
from alls.nodes import Comment, Span, Statement
from alls.parser import parse_partial
from alls.recovery import split_statements

__all__ = ["Analysis", "Document", "to_utf16", "from_utf16"]

_T = TypeVar("_T")
# A chunk's statements, comments and syntax diagnostics.
Parts = tuple[tuple[Statement, ...], tuple[Comment, ...], tuple[alls.Diagnostic, ...]]


@dataclass(frozen=True)
class Analysis:
    """One version of a document: its script, diagnostics and (with a model) plan."""

    script: alls.Script
    syntax: tuple[alls.Diagnostic, ...]
    diagnostics: tuple[alls.Diagnostic, ...]
    plan: alls.Plan | None = None

    @property
    def clean(self) -> bool:
        """True when the text parses without syntax errors (it can be formatted)."""
        return not any(d.is_error for d in self.syntax)


class Document:
    """The parse cache of one open script, named ``filename`` in its spans."""

    def __init__(self, filename: str):
        self.filename = filename
        self._known: dict[str, dict[int, Parts]] = {}  # chunk -> first line -> parts

    def parse(self, text: str) -> tuple[alls.Script, list[alls.Diagnostic]]:
        """What `alls.read_script` gives for ``text``'s UTF-8 bytes."""
        if "\0" in text or "\ufffd" in text or not _encodable(text):
            return alls.read_script(text.encode("utf-8", "surrogatepass"), self.filename)
        chunks = [(first, text[start:end]) for first, start, end in _chunks(text)]
        if sum(chunk not in self._known for _, chunk in chunks) > len(chunks) // 2:
            whole = self._parse_whole(text, chunks)
            if whole is not None:
                return whole
        statements: list[Statement] = []
        comments: list[Comment] = []
        diagnostics: list[alls.Diagnostic] = []
        known: dict[str, dict[int, Parts]] = {}
        for first, chunk in chunks:
            found = self._place(chunk, first)
            known.setdefault(chunk, {})[first] = found
            statements.extend(found[0])
            comments.extend(found[1])
            diagnostics.extend(found[2])
        self._known = known
        diagnostics.sort(key=alls.Diagnostic.sort_key)
        return alls.Script(self.filename, tuple(statements), tuple(comments), text), diagnostics

    def _place(self, chunk: str, first: int) -> Parts:
        """The parts of ``chunk`` standing at line ``first``: cached, moved, or parsed."""
        seen = self._known.get(chunk)
        if seen:
            if first in seen:
                return seen[first]
            was, parts = next(iter(seen.items()))
            return _shifted(parts, first - was)
        script, diagnostics = parse_partial(chunk, self.filename)
        parts = (script.statements, script.comments, tuple(diagnostics))
        return parts if first == 1 else _shifted(parts, first - 1)

    def _parse_whole(self, text: str, chunks: list[tuple[int, str]]
                     ) -> tuple[alls.Script, list[alls.Diagnostic]] | None:
        """Parse the text at once (one parse is faster than one per chunk) and,
        when it is clean, cache its statements and comments chunk by chunk."""
        script, diagnostics = parse_partial(text, self.filename)
        if diagnostics:
            return None
        statements, comments = list(script.statements), list(script.comments)
        known: dict[str, dict[int, Parts]] = {}
        si = ci = 0
        for first, chunk in chunks:
            last = first + chunk.count("\n")
            s0, c0 = si, ci
            while si < len(statements) and statements[si].span.line <= last:
                si += 1
            while ci < len(comments) and comments[ci].span.line <= last:
                ci += 1
            known.setdefault(chunk, {})[first] = (tuple(statements[s0:si]), tuple(comments[c0:ci]), ())
        self._known = known
        return script, []

    def analyse(self, text: str, graph: alls.Graph | None = None) -> Analysis:
        """The script, its syntax diagnostics, and every diagnostic `alls check` reports."""
        script, syntax = self.parse(text)
        if graph is None:
            checked, plan = alls.check(script), None
        else:
            plan = alls.resolve(script, graph)
            own = set(graph.diagnostics)
            checked = [d for d in plan.diagnostics if d not in own]
        found = sorted(syntax + checked, key=alls.Diagnostic.sort_key)
        return Analysis(script, tuple(syntax), tuple(found), plan)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shifted(node: _T, lines: int) -> _T:
    """``node`` (a syntax node, a diagnostic, or a tuple of them) moved down by ``lines``."""
    moved: _T = _moved(node, lines)
    return moved


def _moved(node: Any, lines: int) -> Any:
    """`_shifted` of any node: it walks the fields of whatever dataclass it is given."""
    kind = type(node)
    if kind is Span:
        return Span(node.file, node.line + lines, node.column, node.end_line + lines, node.end_column)
    if kind is tuple:
        return tuple([_moved(item, lines) for item in node])
    names = _FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(node):
            return node
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(node) if f.init)
    values = {}
    for name in names:
        value = getattr(node, name)
        values[name] = value if type(value) in _ATOMS else _moved(value, lines)
    return kind(**values)


_FIELDS: dict[type, tuple[str, ...]] = {}
_ATOMS = {str, int, float, bool, type(None), alls.Severity}


def to_utf16(line: str, column: int) -> int:
    """A 0-based character column of ``line`` in UTF-16 code units."""
    head = line[:column]
    if head.isascii():
        return len(head)
    return len(head.encode("utf-16-le")) // 2


def from_utf16(line: str, units: int) -> int:
    """A 0-based UTF-16 column of ``line`` as a character column."""
    if line.isascii():
        return min(units, len(line))
    count = 0
    for i, ch in enumerate(line):
        if count >= units:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def _chunks(text: str) -> list[tuple[int, int, int]]:
    """(first line, start, end) of each statement chunk, cut as error recovery cuts them."""
    return [(first, start, end) for first, start, end, _ in split_statements(text)]
