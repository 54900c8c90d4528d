"""Parse `.alls` text into a `Script`, collecting every syntax error.

Parsing is LALR over ``grammar/alls.lark``. The tree is built by callbacks
that lark runs during the parse (its *inline* transformer), so no `Tree` is
ever made and no lark object leaves this module; each callback takes the
span of its node from the first and last tokens it covers.

A file that parses cleanly is parsed once, whole. A file with syntax errors
is then split into statements at top-level newlines (brackets, strings and
comments respected) and each statement is parsed on its own, so that one
broken line does not hide the errors, nor the statements, after it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import stat
import threading
from importlib import resources

from lark import Lark, Transformer
from lark.lexer import Lexer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.nodes import (
    Argument,
    Boolean,
    Call,
    Comment,
    Glob,
    ListValue,
    Name,
    Null,
    Number,
    Script,
    Span,
    Statement,
    String,
    Word,
)

__all__ = ["parse", "parse_file", "parse_partial", "read_script", "decode"]

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
_INTEGER = re.compile(r"[-+]?\d+\Z")
_CONSTANTS = {
    "True": (Boolean, True),
    "true": (Boolean, True),
    "False": (Boolean, False),
    "false": (Boolean, False),
    "None": (Null, None),
    "null": (Null, None),
}


def word_value(text: str, span: Span):
    """Classify a WORD token: number, boolean, null, glob or plain word."""
    if "{" in text:
        return Glob(text, span)
    first = text[0]
    if first in "0123456789+-." and _NUMBER.match(text):
        value = int(text) if _INTEGER.match(text) else float(text)
        return Number(value, text, span)
    constant = _CONSTANTS.get(text)
    if constant is not None:
        kind, value = constant
        return Boolean(value, text, span) if kind is Boolean else Null(text, span)
    return Word(text, span)


class _Build(Transformer):
    """The lark callbacks that build nodes; ``file`` is set per parse."""

    file = "<string>"

    def _span(self, first, last) -> Span:
        return Span(self.file, first.line, first.column, last.end_line, last.end_column)

    def _token_span(self, tok) -> Span:
        return Span(self.file, tok.line, tok.column, tok.end_line, tok.end_column)

    # values -------------------------------------------------------------
    def word(self, children):
        tok = children[0]
        return word_value(tok.value, self._token_span(tok))

    def string(self, children):
        tok = children[0]
        return String(tok.value[1:-1], self._token_span(tok))

    def list(self, children):
        return ListValue(tuple(children[1:-1]), self._span(children[0], children[-1]))

    # arguments ----------------------------------------------------------
    def positional(self, children):
        value = children[0]
        return Argument(None, value, value.span)

    def keyword(self, children):
        tok, value = children
        span = self._token_span(tok)
        end = value.span
        return Argument(Name(tok.value, span), value, Span(self.file, span.line, span.column, end.end_line, end.end_column))

    def arguments(self, children):
        return tuple(children)

    # statements ---------------------------------------------------------
    def call(self, children):
        tok = children[0]
        arguments = children[2] if len(children) == 4 else ()
        text = tok.value
        span = self._span(tok, children[-1])
        receiver = None
        dot = text.rfind(".")
        if dot > 0:
            receiver_tok_span = Span(self.file, tok.line, tok.column, tok.line, tok.column + dot)
            receiver = Name(text[:dot], receiver_tok_span)
            name = Name(text[dot + 1 :], Span(self.file, tok.line, tok.column + dot + 1, tok.end_line, tok.end_column))
        else:
            name = Name(text, self._token_span(tok))
        return Call(name, arguments, receiver, span)

    def targets(self, children):
        return tuple(Name(str(t), self._token_span(t)) for t in children)

    def assignment(self, children):
        targets, call = children
        first = targets[0].span
        return Statement(targets, call, Span(self.file, first.line, first.column, call.span.end_line, call.span.end_column))

    def script(self, children):
        return [c if isinstance(c, Statement) else Statement((), c, c.span) for c in children]


class _Token:
    """A lexed token: what lark's LALR driver and the callbacks read of one."""

    __slots__ = ("type", "value", "start_pos", "line", "column", "end_line", "end_column", "end_pos")

    def __init__(self, type, value, start_pos, line, column, end_line, end_column, end_pos):
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


class _Lexer(Lexer):
    """One pass of one master regex built from the grammar's own terminals.

    It does what the contextual lexer would, and faster: a newline outside
    brackets is an ``_NL`` (one per run of blank and comment lines), inside
    brackets it is skipped; ``WS`` and ``COMMENT`` are skipped. Only lines
    and columns are tracked, from the newlines already matched.
    """

    def __init__(self, lexer_conf):
        patterns = {t.name: t.pattern.to_regexp() for t in lexer_conf.terminals}
        order = ["WORD", "WS", "COMMA", "EQUAL", "LPAR", "RPAR", "LSQB", "RSQB", "STRING", "COMMENT", "BRACKET_NL"]
        self._regex = re.compile("|".join(f"(?P<{name}>{patterns[name]})" for name in order))

    def lex(self, text):
        scan = self._regex.scanner(text).match
        line, line_start, depth, pos, last = 1, 0, 0, 0, "_NL"
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
                yield _Token(kind, m.group(), pos, line, col, line, col + stop - pos, stop)
                last = kind
            elif kind == "BRACKET_NL":
                if depth == 0 and last != "_NL":
                    col = pos - line_start + 1
                    yield _Token("_NL", "\n", pos, line, col, line, col + 1, stop)
                    last = "_NL"
                line += 1
                line_start = stop
            elif kind == "WS" or kind == "COMMENT":
                pass
            else:
                if kind == "LPAR" or kind == "LSQB":
                    depth += 1
                elif depth > 0:
                    depth -= 1
                col = pos - line_start + 1
                yield _Token(kind, m.group(), pos, line, col, line, col + 1, stop)
                last = kind
            pos = stop


_lock = threading.Lock()
_parser: Lark | None = None
_builder = _Build()


def _lark() -> Lark:
    global _parser
    if _parser is None:
        grammar = resources.files("alls.grammar").joinpath("alls.lark").read_text(encoding="utf-8")
        _parser = Lark(
            grammar,
            parser="lalr",
            lexer=_Lexer,
            start="script",
            transformer=_builder,
            maybe_placeholders=False,
        )
    return _parser


# ----------------------------------------------------------------- decoding

_CURLY = "\u201c\u201d\u201e\u2018\u2019"


def decode(data: bytes, filename: str) -> tuple[str, list[Diagnostic]]:
    """Bytes to text; each invalid UTF-8 sequence and NUL byte is an error.

    Bad bytes become U+FFFD and NULs become spaces, so the rest of the file
    can still be checked. A UTF-8 byte-order mark is dropped.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    diagnostics: list[Diagnostic] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        for line_no, line in enumerate(text.split("\n"), 1):
            col = line.find("\ufffd")
            if col >= 0:
                span = Span(filename, line_no, col + 1, line_no, col + 2)
                diagnostics.append(
                    Diagnostic("ALS108", Severity.ERROR, "this line is not valid UTF-8", span,
                               "invalid byte", "save the file as UTF-8")
                )
    if "\0" in text:
        for line_no, line in enumerate(text.split("\n"), 1):
            col = line.find("\0")
            if col >= 0:
                span = Span(filename, line_no, col + 1, line_no, col + 2)
                diagnostics.append(
                    Diagnostic("ALS109", Severity.ERROR, "NUL byte in the script", span,
                               "NUL byte", "the file is binary or corrupt; remove the NUL bytes")
                )
        text = text.replace("\0", " ")
    return text, diagnostics


# ------------------------------------------------------------------ parsing


def parse(text: str, filename: str = "<string>") -> Script:
    """Parse ``text``; raise `AllsError` with every syntax error if any."""
    script, diagnostics = parse_partial(text, filename)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise AllsError(errors)
    return script


def parse_file(path) -> Script:
    """Read and parse a file (UTF-8); raise `AllsError` on any syntax error."""
    script, diagnostics = read_script(path)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise AllsError(errors)
    return script


def read_script(source, filename: str | None = None) -> tuple[Script, list[Diagnostic]]:
    """Read a script leniently: the statements that parse, and a diagnostic
    for everything that does not (unreadable file, bad bytes, bad syntax).

    ``source`` is a path, or the script's bytes (then ``filename`` names it).
    """
    if isinstance(source, bytes):
        data, name = source, filename or "<bytes>"
    else:
        name = filename or str(source)
        try:
            if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO would block, a device never end
                raise IsADirectoryError(0, "a directory" if os.path.isdir(source) else "not a regular file")
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            problem = Diagnostic("ALS001", Severity.ERROR, f"cannot read `{name}`: {reason}",
                                 help="check the path and the file's permissions")
            return Script(name, (), (), ""), [problem]
    text, diagnostics = decode(data, name)
    script, more = parse_partial(text, name)
    flagged = {d.span.line for d in diagnostics if d.span is not None}
    diagnostics += [d for d in more if d.span is None or d.span.line not in flagged]
    diagnostics.sort(key=Diagnostic.sort_key)
    return script, diagnostics


def parse_partial(text: str, filename: str = "<string>") -> tuple[Script, list[Diagnostic]]:
    """Parse what can be parsed: the statements that are well formed, and a
    diagnostic for each one that is not (at most one per statement)."""
    comments = _comments(text, filename)
    with _lock, _collector_paused():
        _builder.file = filename
        try:
            statements = _lark().parse(text)
            diagnostics: list[Diagnostic] = []
        except UnexpectedInput:
            statements, diagnostics = _parse_statements(text, filename)
    diagnostics += _argument_order(statements)
    diagnostics.sort(key=Diagnostic.sort_key)
    return Script(filename, tuple(statements), comments, text), diagnostics


@contextlib.contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector while a tree is built.

    A parse allocates many small objects and frees none, so each automatic
    collection rescans the whole growing tree: parsing time grows faster
    than the input. The tree has no cycles, so nothing is lost by waiting.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _argument_order(statements) -> list[Diagnostic]:
    out = []
    for st in statements:
        seen_keyword = None
        for arg in st.call.arguments:
            if arg.keyword is not None:
                seen_keyword = seen_keyword or arg
            elif seen_keyword is not None:
                out.append(
                    Diagnostic(
                        "ALS107",
                        Severity.ERROR,
                        "positional argument after a keyword argument",
                        arg.span,
                        "positional argument",
                        f"move it before `{seen_keyword.keyword.text}=`, or name it",
                    )
                )
                break
    return out


def _comments(text: str, filename: str) -> tuple[Comment, ...]:
    if "#" not in text:
        return ()
    out = []
    for line_no, line in enumerate(text.split("\n"), 1):
        col = _comment_start(line)
        if col >= 0:
            body = line[col:].rstrip()
            out.append(Comment(body, Span(filename, line_no, col + 1, line_no, col + 1 + len(body))))
    return tuple(out)


def _comment_start(line: str) -> int:
    """Offset of the ``#`` that starts a comment on ``line``, or -1."""
    hash_at = line.find("#")
    if hash_at < 0 or '"' not in line[:hash_at]:
        return hash_at
    in_string = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_string = not in_string
        elif ch == "#" and not in_string:
            return i
    return -1


# ------------------------------------------------------------ error recovery

_STATEMENT_START = re.compile(r"[A-Za-z_{][^\s(=,]*\s*(?:,\s*[^\s(=,]+\s*)*(?:=\s*[A-Za-z_][^\s(=]*\s*)?\(")
_OPEN = {"(": ")", "[": "]"}
_CLOSE = {")": "(", "]": "["}


def _split_statements(text: str) -> list[tuple[int, int, int, list[tuple[str, int, int]]]]:
    """Cut ``text`` into statement chunks: (first line, start, end, unclosed).

    A chunk ends at a newline outside brackets, or, while a bracket is still
    open, before a line that starts at column 1 with ``name(`` or
    ``target = name(``: the bracket was never closed. ``unclosed`` lists the
    open brackets (char, line, column) left at the end of the chunk.
    """
    chunks = []
    lines = text.split("\n")
    stack: list[tuple[str, int, int]] = []
    start_line = 0
    offset = 0
    start_offset = 0
    for i, line in enumerate(lines):
        if stack and i > start_line and _STATEMENT_START.match(line):
            chunks.append((start_line + 1, start_offset, offset - 1, stack))
            stack, start_line, start_offset = [], i, offset
        in_string = False
        for col, ch in enumerate(line):
            if ch == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif ch == "#":
                break
            elif ch in _OPEN:
                stack.append((ch, i + 1, col + 1))
            elif ch in _CLOSE and stack and stack[-1][0] == _CLOSE[ch]:
                stack.pop()
        offset += len(line) + 1
        if not stack:
            chunks.append((start_line + 1, start_offset, offset - 1, []))
            start_line, start_offset = i + 1, offset
    if start_offset < len(text):
        chunks.append((start_line + 1, start_offset, len(text), stack))
    return chunks


def _parse_statements(text: str, filename: str):
    statements: list[Statement] = []
    diagnostics: list[Diagnostic] = []
    parser = _lark()
    for first_line, start, end, unclosed in _split_statements(text):
        chunk = text[start:end]
        if not chunk.strip():
            continue
        try:
            statements.extend(parser.parse("\n" * (first_line - 1) + chunk))
        except UnexpectedInput as exc:
            diagnostics.append(_syntax_diagnostic(exc, filename, text, unclosed))
    return statements, diagnostics


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


def _describe(expected) -> str:
    names = sorted({_TOKEN_NAMES.get(e, e) for e in expected if e in _TOKEN_NAMES})
    return ", ".join(names) if names else "something else"


def _syntax_diagnostic(exc: UnexpectedInput, filename: str, text: str, unclosed) -> Diagnostic:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(text, filename, line, column, exc.char)
    token = getattr(exc, "token", None)
    kind = token.type if token is not None else "$END"
    expected = set(getattr(exc, "expected", ()) or ())
    if kind in ("$END", "_NL") or isinstance(exc, UnexpectedEOF):
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
    span = _token_span(filename, token, line, column)
    if kind in ("RPAR", "RSQB") and "WORD" in expected:
        what = "a value after `=`" if _previous_is_equals(text, token) else "a value"
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
            "ALS104", Severity.ERROR, f"missing `,` before `{token}`", span, "expected `,`",
            "separate arguments and list items with commas",
        )
    if kind == "EQUAL" and "LPAR" in expected:
        return Diagnostic(
            "ALS110", Severity.ERROR, "a statement must call a command", span, "expected `(`",
            "write `target = command(arguments)`",
        )
    return Diagnostic(
        "ALS100", Severity.ERROR, f"unexpected `{token}`", span, f"expected {_describe(expected)}",
    )


def _previous_is_equals(text: str, token) -> bool:
    lines = text.split("\n")
    before = lines[token.line - 1][: token.column - 1].rstrip() if token.line <= len(lines) else ""
    return before.endswith("=")


def _token_span(filename: str, token, line: int, column: int) -> Span:
    """The span of the offending token; the end of input points just past
    the last token (lark lends ``$END`` the last token's position)."""
    if token is None or getattr(token, "line", None) is None:
        return Span(filename, line, column, line, column + 1)
    if token.type == "$END":
        return Span(filename, token.end_line, token.end_column, token.end_line, token.end_column + 1)
    return Span(filename, token.line, token.column, token.end_line, token.end_column)


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


def _bare_glob(text: str, line: int, column: int) -> tuple[int, str] | None:
    """The column and text of a glob written without braces (``output_layer*``) around ``column``."""
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return None
    source = lines[line - 1]
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


def _bad_character(text: str, filename: str, line: int, column: int, char: str) -> Diagnostic:
    span = Span(filename, line, column, line, column + 1)
    known = _CHARACTER_ERRORS.get(char)
    if known is not None:
        code, message, label, help_text = known
        return Diagnostic(code, Severity.ERROR, message, span, label, help_text)
    glob = _bare_glob(text, line, column) if char in "*?[" else None
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
