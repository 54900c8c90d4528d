"""The syntax tree of an `.alls` script: frozen dataclasses with source spans.

A script is a sequence of statements, each one command call with optional
assignment targets::

    quantization_param({conv*}, precision_mode=a16_w16)          # Statement
    normalization1 = normalization([0.0, 0.0], [255.0, 255.0])   # with a target
    context_0.place(1, [conv3, conv4])                           # method call

Nodes compare by content: the ``span`` field of every node is excluded from
equality and hashing, so ``parse(format(x)) == parse(x)`` says "the same
program", wherever its pieces stand in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Span",
    "Word",
    "Number",
    "Boolean",
    "Null",
    "String",
    "Glob",
    "ListValue",
    "Value",
    "Name",
    "Argument",
    "Call",
    "Statement",
    "Comment",
    "Script",
]


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node stands: 1-based lines and columns, ``end_column`` exclusive.

    Columns count characters (not bytes) of the decoded line.
    """

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


_SPAN = field(compare=False, repr=False)


# ------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Word:
    """A bare word: an enum value, a layer name, a sub-command (``a16_w16``)."""

    text: str
    span: Span = _SPAN


@dataclass(frozen=True, slots=True)
class Number:
    """An integer or float literal; ``text`` keeps its spelling (``1e-5``)."""

    value: int | float
    text: str
    span: Span = _SPAN


@dataclass(frozen=True, slots=True)
class Boolean:
    """``True``/``False`` (``true``/``false`` are accepted spellings).

    Booleans compare by value: ``true`` and ``True`` are the same program.
    """

    value: bool
    text: str = field(compare=False)
    span: Span = _SPAN


@dataclass(frozen=True, slots=True)
class Null:
    """``None`` or ``null`` (equal to each other)."""

    text: str = field(compare=False)
    span: Span = _SPAN


@dataclass(frozen=True, slots=True)
class String:
    """A double-quoted string; ``value`` is the text between the quotes."""

    value: str
    span: Span = _SPAN


@dataclass(frozen=True, slots=True)
class Glob:
    """A word with brace groups: ``{conv*}``, ``{net/ew_add*}``, ``{}``.

    ``text`` is the spelling; ``pattern`` is the shell pattern inside the
    braces (``conv*``), matched with ``*``, ``?`` and ``[0-9]``.
    """

    text: str
    span: Span = _SPAN

    @property
    def pattern(self) -> str:
        return self.text.replace("{", "").replace("}", "")


@dataclass(frozen=True, slots=True)
class ListValue:
    """``[a, b, c]``: a flat or nested list of values."""

    items: tuple[Value, ...]
    span: Span = _SPAN


Value = Word | Number | Boolean | Null | String | Glob | ListValue


# --------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Name:
    """A name in a syntactic position: a command, a keyword, a target."""

    text: str
    span: Span = _SPAN


@dataclass(frozen=True, slots=True)
class Argument:
    """One argument of a call: positional when ``keyword`` is None."""

    keyword: Name | None
    value: Value
    span: Span = _SPAN

    @property
    def key(self) -> Name:
        """The keyword of a keyword argument (`Call.keywords` holds only those)."""
        if self.keyword is None:
            raise ValueError("a positional argument has no keyword")
        return self.keyword


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args)``, or ``receiver.name(args)`` for a method call."""

    name: Name
    arguments: tuple[Argument, ...]
    receiver: Name | None
    span: Span = _SPAN

    @property
    def positional(self) -> tuple[Argument, ...]:
        return tuple(a for a in self.arguments if a.keyword is None)

    @property
    def keywords(self) -> tuple[Argument, ...]:
        return tuple(a for a in self.arguments if a.keyword is not None)


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement: ``[target, ... =] call``."""

    targets: tuple[Name, ...]
    call: Call
    span: Span = _SPAN

    @property
    def command(self) -> str:
        return self.call.name.text


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``#`` comment; ``text`` includes the ``#``, without trailing blanks."""

    text: str
    span: Span = _SPAN


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed script: its statements and comments, each in source order."""

    filename: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()
    source: str = field(default="", compare=False, repr=False)
