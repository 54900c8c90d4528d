"""The `.alls` lexer: text to tokens in one pass of one regular expression.

The regex is built from the grammar's own terminals (``grammar/alls.lark``),
so the grammar stays the one definition of a token. The lexer decides what
the grammar cannot say in terminals alone: a newline outside brackets is an
``_NL`` (one per run of blank and comment lines), inside brackets it is
skipped, and ``WS`` and ``COMMENT`` are skipped everywhere. Lines and
columns come from the newlines already matched.

It also enforces two of the `Limits` while it reads, so that no later pass
(the tree builder, the checker, the formatter) meets an input deeper or
longer than they are: the bracket depth (ALS021) and the length of one
name, number or string (ALS022).

A parse sets what the lexer needs to know (the file name, the first line
of the text, the limits) with `reading`; the settings are a per-thread
stack, so a parse inside a parse (a signal handler, a callback) reads its
own and leaves the outer one's as they were.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from lark.exceptions import UnexpectedCharacters
from lark.common import LexerConf
from lark.lexer import Lexer

from alls.limits import DEFAULT, Limits, refuse
from alls.nodes import Span

__all__ = ["Token", "AllsLexer", "Reading", "reading", "current"]


@dataclass(frozen=True)
class Reading:
    """What one parse tells the lexer and the tree builder."""

    file: str = "<string>"
    first_line: int = 1
    limits: Limits = DEFAULT


_DEFAULT_READING = Reading()
_local = threading.local()


def current() -> Reading:
    """The innermost parse's settings on this thread."""
    stack: list[Reading] | None = getattr(_local, "stack", None)
    return stack[-1] if stack else _DEFAULT_READING


@contextlib.contextmanager
def reading(settings: Reading) -> Iterator[Reading]:
    """Make ``settings`` the current parse's for the duration of the block."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(settings)
    try:
        yield settings
    finally:
        stack.pop()


class Token:
    """A lexed token: what lark's LALR driver and the tree builder read of one."""

    __slots__ = ("type", "value", "start_pos", "line", "column", "end_line", "end_column", "end_pos")

    def __init__(self, type: str, value: str, start_pos: int, line: int, column: int, end_line: int,
                 end_column: int, end_pos: int) -> None:
        self.type = type
        self.value = value
        self.start_pos = start_pos
        self.line = line
        self.column = column
        self.end_line = end_line
        self.end_column = end_column
        self.end_pos = end_pos

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Token({self.type!r}, {self.value!r})"


_ORDER = ("WORD", "WS", "COMMA", "EQUAL", "LPAR", "RPAR", "LSQB", "RSQB", "STRING", "COMMENT", "BRACKET_NL")


class AllsLexer(Lexer):
    """The lexer lark's LALR parser reads tokens from (its custom-lexer interface)."""

    def __init__(self, lexer_conf: LexerConf) -> None:
        patterns = {t.name: t.pattern.to_regexp() for t in lexer_conf.terminals}
        self._regex = re.compile("|".join(f"(?P<{name}>{patterns[name]})" for name in _ORDER))

    # lark calls a custom lexer's lex with the text alone (its wrapper), not the base class's signature.
    def lex(self, text: str) -> Iterator[Token]:  # type: ignore[override]
        settings = current()
        limits = settings.limits
        max_depth, max_chars = limits.max_nesting, limits.max_literal_chars
        scan = self._regex.scanner(text).match  # type: ignore[attr-defined]  # re's undocumented scanner
        line, line_start, depth, pos, last = settings.first_line, 0, 0, 0, "_NL"
        end = len(text)
        while pos < end:
            m = scan()
            if m is None:
                col = pos - line_start + 1
                raise UnexpectedCharacters(text, pos, line, col)
            kind = m.lastgroup
            stop = m.end()
            if kind == "WORD" or kind == "COMMA" or kind == "STRING" or kind == "EQUAL":
                col = pos - line_start + 1
                if stop - pos > max_chars:
                    raise refuse("max_literal_chars", stop - pos, limits, "a literal too long",
                                 Span(settings.file, line, col, line, col + 1))
                yield Token(kind, m.group(), pos, line, col, line, col + stop - pos, stop)
                last = kind
            elif kind == "BRACKET_NL":
                if depth == 0 and last != "_NL":
                    col = pos - line_start + 1
                    yield Token("_NL", "\n", pos, line, col, line, col + 1, stop)
                    last = "_NL"
                line += 1
                line_start = stop
            elif kind == "WS" or kind == "COMMENT":
                pass
            else:
                col = pos - line_start + 1
                if kind == "LPAR" or kind == "LSQB":
                    depth += 1
                    if depth > max_depth:
                        raise refuse("max_nesting", depth, limits, "brackets nested too deep",
                                     Span(settings.file, line, col, line, col + 1))
                elif depth > 0:
                    depth -= 1
                yield Token(kind, m.group(), pos, line, col, line, col + 1, stop)
                last = kind
            pos = stop
