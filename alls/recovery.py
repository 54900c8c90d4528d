"""Error recovery: the statements of a script that does not parse whole.

The script is cut into statements at top-level newlines (brackets, strings
and comments respected) and each statement is parsed on its own, so that
one broken line hides neither the errors nor the statements after it. Each
statement is parsed from its own text, told the line it starts on, so the
work is linear in the size of the script: a 1 MB script full of errors is
read in about the time of a clean one.

Each statement that does not parse gets one diagnostic (`syntax_diagnostic`)
that names what went wrong in the user's terms: an unclosed bracket, a
missing comma, a curly quote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Protocol

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from alls.diagnostics import Diagnostic, Severity
from alls.limits import LimitExceeded
from alls.nodes import Span, Statement

__all__ = ["split_statements", "parse_statements", "syntax_diagnostic"]

_STATEMENT_START = re.compile(r"[A-Za-z_{][^\s(=,]*\s*(?:,\s*[^\s(=,]+\s*)*(?:=\s*[A-Za-z_][^\s(=]*\s*)?\(")
_OPEN = {"(": ")", "[": "]"}
_CLOSE = {")": "(", "]": "["}
_BRACKETS = re.compile(r'["#()\[\]]')


# An open bracket: (the character, its line, its column).
Bracket = tuple[str, int, int]


def split_statements(text: str) -> list[tuple[int, int, int, list[Bracket]]]:
    """Cut ``text`` into statement chunks: (first line, start, end, unclosed).

    A chunk ends at a newline outside brackets, or, while a bracket is still
    open, before a line that starts at column 1 with ``name(`` or
    ``target = name(``: the bracket was never closed. ``unclosed`` lists the
    open brackets (char, line, column) left at the end of the chunk.
    """
    chunks = []
    stack: list[tuple[str, int, int]] = []
    start_line = 0
    offset = 0
    start_offset = 0
    for i, line in enumerate(text.split("\n")):
        if stack and i > start_line and _STATEMENT_START.match(line):
            chunks.append((start_line + 1, start_offset, offset - 1, stack))
            stack, start_line, start_offset = [], i, offset
        _scan_brackets(line, i + 1, stack)
        offset += len(line) + 1
        if not stack:
            chunks.append((start_line + 1, start_offset, offset - 1, []))
            start_line, start_offset = i + 1, offset
    if start_offset < len(text):
        chunks.append((start_line + 1, start_offset, len(text), stack))
    return chunks


def _scan_brackets(line: str, line_no: int, stack: list[tuple[str, int, int]]) -> None:
    """Push the brackets ``line`` opens onto ``stack``, pop those it closes (strings and comments skipped)."""
    in_string = False
    for m in _BRACKETS.finditer(line):
        ch = m.group()
        if ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "#":
            break
        elif ch in _OPEN:
            stack.append((ch, line_no, m.start() + 1))
        elif stack and stack[-1][0] == _CLOSE[ch]:
            stack.pop()


def parse_statements(text: str, filename: str, parse_chunk: Callable[[str, int], list[Statement]]
                     ) -> tuple[list[Statement], list[Diagnostic]]:
    """Parse each statement of ``text`` alone with ``parse_chunk(chunk, first_line)``.

    Returns the statements that parsed and one diagnostic per statement
    that did not (a syntax error, or a limit it exceeds).
    """
    statements: list[Statement] = []
    diagnostics: list[Diagnostic] = []
    for first_line, start, end, unclosed in split_statements(text):
        chunk = text[start:end]
        if not chunk.strip():
            continue
        try:
            statements.extend(parse_chunk(chunk, first_line))
        except LimitExceeded as exc:
            diagnostics.append(exc.diagnostic)
        except UnexpectedInput as exc:
            diagnostics.append(syntax_diagnostic(exc, filename, chunk, first_line, unclosed))
    return statements, diagnostics


class Token(Protocol):
    """What a message reads of a token: the lexer's (alls.lexer.Token), or the end token lark makes from it."""

    type: str
    line: int
    column: int
    end_line: int
    end_column: int


_TOKEN_NAMES = {
    "WORD": "a name or value",
    "STRING": "a string",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "_NL": "a new line",
    "$END": "the end of the file",
}


def _describe(expected: Iterable[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(e, e) for e in expected if e in _TOKEN_NAMES})
    return ", ".join(names) if names else "something else"


def syntax_diagnostic(exc: UnexpectedInput, filename: str, chunk: str, first_line: int,
                      unclosed: list[Bracket]) -> Diagnostic:
    """The one diagnostic of a statement ``chunk`` (starting on ``first_line``) that lark refused."""
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(filename, chunk, first_line, line, column, exc.char)
    token: Token | None = getattr(exc, "token", None)
    kind = token.type if token is not None else "$END"
    expected = set(getattr(exc, "expected", ()) or ())
    if kind in ("$END", "_NL") or isinstance(exc, UnexpectedEOF):
        return _early_end(filename, token, line, column, expected, unclosed)
    span = _token_span(filename, token, line, column)
    if token is not None and kind in ("RPAR", "RSQB") and "WORD" in expected:
        what = "a value after `=`" if _previous_is_equals(chunk, first_line, token) else "a value"
        return Diagnostic("ALS100", Severity.ERROR, f"expected {what} before `{token}`", span, "missing value",
                          "give the value, or remove the dangling `=` or `,`")
    closer = {"RPAR": "RSQB", "RSQB": "RPAR"}.get(kind)
    if closer in expected:
        want = "]" if closer == "RSQB" else ")"
        opened = "[" if want == "]" else "("
        return Diagnostic(
            "ALS103", Severity.ERROR, f"`{token}` does not close the open `{opened}`", span, f"expected `{want}`",
            f"close the `{opened}` with `{want}`",
        )
    if kind in ("RPAR", "RSQB"):
        return Diagnostic(
            "ALS103", Severity.ERROR, f"unmatched `{token}`", span, "nothing to close here",
            "remove it, or open the bracket it is meant to close",
        )
    if "COMMA" in expected and kind in ("WORD", "STRING", "LSQB"):
        return Diagnostic(
            "ALS104", Severity.ERROR, f"missing `,` before `{_shown(token)}`", span, "expected `,`",
            "separate arguments and list items with commas",
        )
    if kind == "EQUAL" and "LPAR" in expected:
        return Diagnostic(
            "ALS110", Severity.ERROR, "a statement must call a command", span, "expected `(`",
            "write `target = command(arguments)`",
        )
    return Diagnostic("ALS100", Severity.ERROR, f"unexpected `{_shown(token)}`", span, f"expected {_describe(expected)}")


def _shown(token: Token | None) -> str:
    """A token as a message quotes it: long ones cut short."""
    text = str(token)
    return text if len(text) <= 60 else text[:57] + "..."


def _early_end(filename: str, token: Token | None, line: int, column: int, expected: set[str],
               unclosed: list[Bracket]) -> Diagnostic:
    if unclosed:
        ch, ln, col = unclosed[-1]
        return Diagnostic(
            "ALS102", Severity.ERROR, f"`{ch}` is never closed", Span(filename, ln, col, ln, col + 1),
            "opened here", f"add the matching `{_OPEN[ch]}`",
        )
    if "LPAR" in expected:
        return Diagnostic(
            "ALS110", Severity.ERROR, "a statement must call a command", _token_span(filename, token, line, column),
            "expected `(`", "write `command(arguments)`, for example `quantization_param({conv*}, precision_mode=a8_w8)`",
        )
    return Diagnostic(
        "ALS100", Severity.ERROR, "the statement ends too early", _token_span(filename, token, line, column),
        f"expected {_describe(expected)}",
    )


def _previous_is_equals(chunk: str, first_line: int, token: Token) -> bool:
    lines = chunk.split("\n")
    index = token.line - first_line
    before = lines[index][: token.column - 1].rstrip() if 0 <= index < len(lines) else ""
    return before.endswith("=")


def _token_span(filename: str, token: Token | None, line: int, column: int) -> Span:
    """The span of the offending token; the end of input points just past
    the last token (lark lends ``$END`` the last token's position)."""
    if token is None or getattr(token, "line", None) is None:
        return Span(filename, line, column, line, column + 1)
    if token.type == "$END":
        return Span(filename, token.end_line, token.end_column, token.end_line, token.end_column + 1)
    return Span(filename, token.line, token.column, token.end_line, token.end_column)


_CURLY = "\u201c\u201d\u201e\u2018\u2019"

# A character no token can start with: (code, message, label, help) by character.
_CHARACTER_ERRORS = {
    "'": ("ALS105", "single-quoted string", "single quote", 'strings take double quotes: `"..."`'),
    '"': ("ALS105", "unterminated string", "this string is never closed", 'close it with `"` on the same line'),
    "{": ("ALS111", "unclosed brace glob", "no `}` on this line", "close the glob: `{conv*}`"),
    "}": ("ALS103", "unmatched `}`", "nothing to close here", "a brace glob opens with `{`: `{conv*}`"),
    "\ufffd": ("ALS108", "this line is not valid UTF-8", "invalid byte", "save the file as UTF-8"),
    **{q: ("ALS106", f"curly quote `{q}`", "not a straight quote", 'write strings with straight double quotes: `"..."`')
       for q in _CURLY},
}


_GLOB_WORD = re.compile(r"[A-Za-z0-9_./\-*?\[\]]+")


def _bare_glob(chunk: str, first_line: int, line: int, column: int) -> tuple[int, str] | None:
    """The column and text of a glob written without braces (``output_layer*``) around ``column``."""
    lines = chunk.split("\n")
    if not 0 <= line - first_line < len(lines):
        return None
    source = lines[line - first_line]
    for match in _GLOB_WORD.finditer(source):
        if match.start() < column <= match.end() and any(c.isalnum() or c == "_" for c in match.group()):
            if match.start() > 0 and source[match.start() - 1] == "{":
                return None
            word = match.group()
            lead = len(word) - len(word.lstrip("["))  # a list's bracket, not a character class
            word = word[lead:]
            while word.endswith("]") and word.count("]") > word.count("["):
                word = word[:-1]
            return match.start() + 1 + lead, word
    return None


def _bad_character(filename: str, chunk: str, first_line: int, line: int, column: int, char: str) -> Diagnostic:
    span = Span(filename, line, column, line, column + 1)
    known = _CHARACTER_ERRORS.get(char)
    if known is not None:
        code, message, label, help_text = known
        return Diagnostic(code, Severity.ERROR, message, span, label, help_text)
    glob = _bare_glob(chunk, first_line, line, column) if char in "*?[" else None
    if glob is not None:
        start, word = glob
        return Diagnostic("ALS101", Severity.ERROR, f"unexpected character `{char}`: a glob is written in braces",
                          Span(filename, line, start, line, start + len(word)), "a bare glob",
                          f"write `{{{word}}}`")
    shown = char if char.isprintable() else repr(char)
    return Diagnostic(
        "ALS101", Severity.ERROR, f"unexpected character `{shown}`", span, "not part of the language",
        "names are letters, digits, `_`, `-`, `.` and `/`; comments start with `#`",
    )
