"""Parse `.alls` text into a `Script`, collecting every syntax error.

Three modules share the work, one job each:

- `alls.lexer` turns text into tokens (and enforces the nesting and
  literal limits while it reads);
- this module reads the bytes (`read_script`, within the script-size
  limit), decodes them (`decode`), and runs lark's LALR parser over
  ``grammar/alls.lark`` on those tokens; the tree is built by callbacks
  that lark runs during the parse (its *inline* transformer), so no `Tree`
  is ever made and no lark object leaves this module; each callback takes
  the span of its node from the first and last tokens it covers;
- `alls.recovery` takes over when the whole file does not parse: each
  statement is parsed on its own, and each that fails gets one diagnostic.

The parse holds no lock and no global state of its own: the file name and
limits of a parse live on a per-thread stack (`alls.lexer.reading`), so a
parse from a signal handler or another thread, in the middle of a parse,
is an ordinary parse.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import IO, Any, cast

from lark import Lark, Transformer
from lark.exceptions import UnexpectedInput

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.lexer import AllsLexer, Reading, Token, current, reading
from alls.limits import Limits, LimitExceeded, check_limits, refuse
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
    Value,
    Word,
)
from alls.recovery import parse_statements

__all__ = ["parse", "parse_file", "parse_partial", "read_script", "decode"]

# What `read_script` reads: a path, the bytes, a file descriptor, or a file open in binary mode.
ScriptSource = str | os.PathLike[str] | bytes | bytearray | memoryview | int | IO[bytes]

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


def word_value(text: str, span: Span) -> Value:
    """Classify a WORD token: number, boolean, null, glob or plain word."""
    if "{" in text:
        return Glob(text, span)
    first = text[0]
    if first in "0123456789+-." and _NUMBER.match(text):
        value = int(text) if _INTEGER.match(text) else float(text)
        return Number(value, text, span)
    constant = _CONSTANTS.get(text)
    if constant is not None:
        kind, flag = constant
        return Boolean(bool(flag), text, span) if kind is Boolean else Null(text, span)
    return Word(text, span)


# A rule's children as lark hands them to its callback: tokens and the nodes built below.
_Children = list[Any]
_Statements = list[Statement]


class _Build(Transformer[Token, list[Statement]]):
    """The lark callbacks that build nodes; the file name is the current parse's (`alls.lexer.current`)."""

    @property
    def file(self) -> str:
        return current().file

    def _span(self, first: Token, last: Token) -> Span:
        return Span(current().file, first.line, first.column, last.end_line, last.end_column)

    def _token_span(self, tok: Token) -> Span:
        return Span(current().file, tok.line, tok.column, tok.end_line, tok.end_column)

    # values -------------------------------------------------------------
    def word(self, children: _Children) -> Value:
        tok = children[0]
        return word_value(tok.value, self._token_span(tok))

    def string(self, children: _Children) -> String:
        tok = children[0]
        return String(tok.value[1:-1], self._token_span(tok))

    def list(self, children: _Children) -> ListValue:
        return ListValue(tuple(children[1:-1]), self._span(children[0], children[-1]))

    # arguments ----------------------------------------------------------
    def positional(self, children: _Children) -> Argument:
        value = children[0]
        return Argument(None, value, value.span)

    def keyword(self, children: _Children) -> Argument:
        tok, value = children
        span = self._token_span(tok)
        end = value.span
        return Argument(Name(tok.value, span), value, Span(self.file, span.line, span.column, end.end_line, end.end_column))

    def arguments(self, children: _Children) -> tuple[Argument, ...]:
        return tuple(children)

    # statements ---------------------------------------------------------
    def call(self, children: _Children) -> Call:
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

    def targets(self, children: _Children) -> tuple[Name, ...]:
        return tuple(Name(str(t), self._token_span(t)) for t in children)

    def assignment(self, children: _Children) -> Statement:
        targets, call = children
        first = targets[0].span
        return Statement(targets, call, Span(self.file, first.line, first.column, call.span.end_line, call.span.end_column))

    def script(self, children: _Children) -> _Statements:
        return [c if isinstance(c, Statement) else Statement((), c, c.span) for c in children]


_build_lock = threading.RLock()  # reentrant: a signal handler may parse while the first parse builds lark
_parser: Lark | None = None


def _lark() -> Lark:
    """The LALR parser, built once; it keeps no state between parses (each has its own lexer and stack)."""
    global _parser
    if _parser is None:
        with _build_lock:
            if _parser is None:
                grammar = resources.files("alls.grammar").joinpath("alls.lark").read_text(encoding="utf-8")
                _parser = Lark(grammar, parser="lalr", lexer=AllsLexer, start="script", transformer=_Build(),
                               maybe_placeholders=False)
    return _parser


# ----------------------------------------------------------------- decoding



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


def parse(text: str, filename: str = "<string>", *, limits: Limits | None = None) -> Script:
    """Parse ``text``; raise `AllsError` with every syntax error if any."""
    script, diagnostics = parse_partial(text, filename, limits=limits)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise AllsError(errors)
    return script


def parse_file(path: ScriptSource, *, limits: Limits | None = None) -> Script:
    """Read and parse a file (UTF-8); raise `AllsError` on any syntax error."""
    script, diagnostics = read_script(path, limits=limits)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise AllsError(errors)
    return script


def read_script(source: ScriptSource, filename: str | None = None, *, limits: Limits | None = None
                ) -> tuple[Script, list[Diagnostic]]:
    """Read a script leniently: the statements that parse, and a diagnostic
    for everything that does not (unreadable file, bad bytes, bad syntax,
    a limit exceeded).

    ``source`` is a path, the script's bytes, an open binary file or a file
    descriptor (read from where it stands, and left open); ``filename``
    names it in diagnostics. At most ``limits.max_script_bytes`` are read
    (ALS020 beyond), so a stream such as ``/dev/zero`` ends too.
    """
    limits = check_limits(limits)
    if filename is not None and not isinstance(filename, str):
        raise TypeError(f"filename must be str, not {type(filename).__name__}")
    name = filename or _source_name(source)
    try:
        data = _read_bytes(source, name, limits)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = Diagnostic("ALS001", Severity.ERROR, f"cannot read `{name}`: {reason}",
                             help="check the path and the file's permissions")
        return Script(name, (), (), ""), [problem]
    except LimitExceeded as exc:
        return Script(name, (), (), ""), [exc.diagnostic]
    text, diagnostics = decode(data, name)
    script, more = parse_partial(text, name, limits=limits)
    flagged = {d.span.line for d in diagnostics if d.span is not None}
    diagnostics += [d for d in more if d.span is None or d.span.line not in flagged]
    diagnostics.sort(key=Diagnostic.sort_key)
    return script, diagnostics


def _source_name(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, int) and not isinstance(source, bool):
        return f"<fd {source}>"
    name = getattr(source, "name", None)
    if hasattr(source, "read"):
        return name if isinstance(name, str) else "<stream>"
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else repr(source)


def _read_bytes(source: object, name: str, limits: Limits) -> bytes:
    """The bytes of ``source`` (see `read_script`), at most the script limit."""
    cap = limits.max_script_bytes
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(cap + 1)
        if not isinstance(data, bytes):
            raise TypeError(f"the script file must be opened in binary mode ('rb'); it gave {type(data).__name__}")
    elif isinstance(source, (str, os.PathLike)) or (isinstance(source, int) and not isinstance(source, bool)):
        if not isinstance(source, int) and not stat.S_ISREG(os.stat(source).st_mode):
            # a FIFO named as a file would block, a device never end: only streams handed over are read
            raise IsADirectoryError(0, "a directory" if os.path.isdir(source) else "not a regular file")
        with open(source, "rb", closefd=not isinstance(source, int)) as f:
            size = os.fstat(f.fileno()).st_size  # 0 for a pipe or a device: then the read below stops
            if size > cap:
                raise refuse("max_script_bytes", size, limits, f"`{name}` is too large")
            data = f.read(cap + 1)
    else:
        raise TypeError("a script source is a path, bytes, a binary file or a file descriptor, "
                        f"not {type(source).__name__}")
    if len(data) > cap:
        found = f"more than {cap:,}" if len(data) == cap + 1 else len(data)
        raise refuse("max_script_bytes", found, limits, f"`{name}` is too large")
    return data


def parse_partial(text: str, filename: str = "<string>", *, limits: Limits | None = None
                  ) -> tuple[Script, list[Diagnostic]]:
    """Parse what can be parsed: the statements that are well formed, and a
    diagnostic for each one that is not (at most one per statement)."""
    if not isinstance(text, str):
        raise TypeError(f"the script text must be str, not {type(text).__name__} (for bytes: alls.read_script)")
    if not isinstance(filename, str):
        raise TypeError(f"filename must be str, not {type(filename).__name__}")
    limits = check_limits(limits)
    if len(text) > limits.max_script_bytes:
        too_large = refuse("max_script_bytes", len(text), limits, f"`{filename}` is too large")
        return Script(filename, (), (), ""), [too_large.diagnostic]
    comments = _comments(text, filename)
    parser = _lark()

    def parse_chunk(chunk: str, first_line: int) -> list[Statement]:
        with reading(Reading(filename, first_line, limits)):
            return cast("list[Statement]", parser.parse(chunk))  # what the embedded _Build.script makes

    with _collector_paused(len(text)):
        try:
            statements = parse_chunk(text, 1)
            diagnostics: list[Diagnostic] = []
        except (UnexpectedInput, LimitExceeded):
            statements, diagnostics = parse_statements(text, filename, parse_chunk)
    diagnostics += _argument_order(statements)
    diagnostics.sort(key=Diagnostic.sort_key)
    return Script(filename, tuple(statements), comments, text), diagnostics


# The cyclic collector rescans the growing tree at each of its full collections: on a 1.6 MB synthetic
# script (tests/bench/bench_parse.py, 20,000 lines) a parse takes 1.6 times as long with it running
# (median 7.6 s against 4.6 s on a loaded 2-core machine); on the largest real script (1 MB, few long
# statements) the two are equal (2.61 s against 2.56 s). The tree has no cycles, so nothing is lost by
# waiting. But the switch is process-wide, so it is thrown only where no one else can see it: a large
# text, in a process with one thread, and put back as it was by the outermost parse (a parse from a
# signal handler inside a parse leaves it to the outer one).
_PAUSE_FROM = 256 * 1024
_paused_depth = 0


@contextlib.contextmanager
def _collector_paused(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector while a large tree is built, where that is safe (above)."""
    global _paused_depth
    if size < _PAUSE_FROM or threading.active_count() > 1:
        yield
        return
    outermost = _paused_depth == 0
    was_enabled = gc.isenabled()
    _paused_depth += 1
    if outermost:
        gc.disable()
    try:
        yield
    finally:
        _paused_depth -= 1
        if outermost and was_enabled:
            gc.enable()


def _argument_order(statements: Iterable[Statement]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
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
                        f"move it before `{seen_keyword.key.text}=`, or name it",
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
