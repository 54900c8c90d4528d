"""A script open in an editor: incremental parsing, diagnostics, positions.

`Document.analyse` gives the statements and diagnostics that `alls check`
gives for the same text (with a model: `alls check --model`), but parses
only the statement chunks that changed since the last call: each chunk is
parsed once on line 1, cached by its text, and moved to where it stands by
shifting its spans. Typing on one line of a 1,000-line script re-parses one
statement.

Columns of `Span` count characters; the protocol counts UTF-16 code units
(`to_utf16`, `from_utf16`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import alls
from alls.nodes import Span
from alls.parser import statement_chunks

__all__ = ["Analysis", "Document", "to_utf16", "from_utf16"]

_CACHE_LIMIT = 4096  # chunks kept per document


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
        self._chunks: dict[str, tuple[tuple, tuple, tuple]] = {}  # parsed on line 1
        self._placed: dict[tuple[int, str], tuple[tuple, tuple, tuple]] = {}  # moved to their line

    def parse(self, text: str) -> tuple[alls.Script, list[alls.Diagnostic]]:
        """What `alls.read_script` gives for ``text``'s UTF-8 bytes."""
        if "\0" in text or "\ufffd" in text or not _encodable(text):
            return alls.read_script(text.encode("utf-8", "surrogatepass"), self.filename)
        statements: list = []
        comments: list = []
        diagnostics: list = []
        used: dict[str, tuple] = {}
        placed: dict[tuple[int, str], tuple] = {}
        for first, start, end in statement_chunks(text):
            chunk = text[start:end]
            key = (first, chunk)
            found = self._placed.get(key)
            if found is None:
                parsed = used[chunk] = used.get(chunk) or self._chunks.get(chunk) or self._parse_chunk(chunk)
                found = parsed if first == 1 else tuple(_shifted(part, first - 1) for part in parsed)
            placed[key] = found
            statements.extend(found[0])
            comments.extend(found[1])
            diagnostics.extend(found[2])
        self._remember(used, placed)
        diagnostics.sort(key=alls.Diagnostic.sort_key)
        return alls.Script(self.filename, tuple(statements), tuple(comments), text), diagnostics

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

    def _parse_chunk(self, chunk: str) -> tuple[tuple, tuple, tuple]:
        script, diagnostics = alls.parse_partial(chunk, self.filename)
        return script.statements, script.comments, tuple(diagnostics)

    def _remember(self, used: dict[str, tuple], placed: dict[tuple[int, str], tuple]) -> None:
        self._chunks.update(used)
        if len(self._chunks) > _CACHE_LIMIT:
            self._chunks = dict(used)
        self._placed = placed


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shifted(node, lines: int):
    """``node`` (a syntax node, a diagnostic, or a tuple of them) moved down by ``lines``."""
    kind = type(node)
    if kind is Span:
        return Span(node.file, node.line + lines, node.column, node.end_line + lines, node.end_column)
    if kind is tuple:
        return tuple([_shifted(item, lines) for item in node])
    names = _FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(node):
            return node
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(node) if f.init)
    values = {}
    for name in names:
        value = getattr(node, name)
        values[name] = value if type(value) in _ATOMS else _shifted(value, lines)
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
