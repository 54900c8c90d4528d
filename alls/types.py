"""Value types of command arguments, each able to check a parsed value.

A type's `check` returns the problems it finds as ``(code, span, message,
help)`` tuples, so the checker can turn them into diagnostics; an empty list
means the value is acceptable. `describe` names the type for messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from alls.diagnostics import suggestion
from alls.nodes import Boolean, Glob, ListValue, Null, Number, Span, String, Value, Word

__all__ = [
    "Problem",
    "ValueType",
    "Int",
    "Float",
    "Bool",
    "Enum",
    "Policy",
    "Identifier",
    "Layers",
    "ListOf",
    "Range",
    "show",
]

Problem = tuple[str, Span, str, str]  # code, span, message, help


def show(value: Value) -> str:
    """The source spelling of a value, for messages."""
    if isinstance(value, ListValue):
        return "[" + ", ".join(show(v) for v in value.items) + "]"
    if isinstance(value, String):
        return f'"{value.value}"'
    return value.text


def _kind(value: Value) -> str:
    return {
        Word: "a name",
        Number: "a number",
        Boolean: "a boolean",
        Null: "None",
        String: "a string",
        Glob: "a glob",
        ListValue: "a list",
    }[type(value)]


def _placeholder(value: Glob, expected: str) -> list[Problem]:
    """A brace word where a plain value belongs is a template placeholder."""
    return [
        (
            "ALS305",
            value.span,
            f"`{value.text}` looks like an unfilled template placeholder, not {expected}",
            "replace the placeholder with a value before running the script",
        )
    ]


def _wrong(value: Value, expected: str) -> list[Problem]:
    if isinstance(value, Glob):
        return _placeholder(value, expected)
    return [("ALS302", value.span, f"expected {expected}, found {_kind(value)} `{show(value)}`", "")]


class ValueType:
    """Base class: a type accepts some values and describes itself."""

    def check(self, value: Value) -> list[Problem]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(ValueType):
    lo: int | None = None
    hi: int | None = None

    def check(self, value: Value) -> list[Problem]:
        if not isinstance(value, Number) or not isinstance(value.value, int):
            return _wrong(value, self.describe())
        return _range_problems(value, self.lo, self.hi)

    def describe(self) -> str:
        return "an integer" + _bounds(self.lo, self.hi)


@dataclass(frozen=True)
class Float(ValueType):
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def check(self, value: Value) -> list[Problem]:
        if not isinstance(value, Number):
            return _wrong(value, self.describe())
        if self.lo_open and self.lo is not None and value.value <= self.lo:
            return [("ALS303", value.span, f"`{value.text}` must be greater than {self.lo:g}", "")]
        return _range_problems(value, self.lo, self.hi)

    def describe(self) -> str:
        if self.lo_open and self.lo is not None and self.hi is None:
            return f"a number > {self.lo:g}"
        return "a number" + _bounds(self.lo, self.hi)


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in {lo:g}..{hi:g}"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


def _range_problems(value: Number, lo: float | None, hi: float | None) -> list[Problem]:
    if (lo is not None and value.value < lo) or (hi is not None and value.value > hi):
        return [("ALS303", value.span, f"`{value.text}` is out of range", "allowed: " + _bounds(lo, hi).strip().removeprefix("in "))]
    return []


@dataclass(frozen=True)
class Bool(ValueType):
    def check(self, value: Value) -> list[Problem]:
        if isinstance(value, Boolean):
            return []
        return _wrong(value, "`True` or `False`")

    def describe(self) -> str:
        return "`True` or `False`"


@dataclass(frozen=True)
class Enum(ValueType):
    """One of a fixed set of words; ``ignore_case`` for keys like `l2rel`."""

    values: tuple[str, ...]
    ignore_case: bool = False

    def check(self, value: Value) -> list[Problem]:
        if not isinstance(value, Word):
            if isinstance(value, String) and self._known(value.value):
                return []
            return _wrong(value, self.describe())
        if self._known(value.text):
            return []
        allowed = ", ".join(self.values)
        hint = suggestion(value.text, self.values)
        return [("ALS301", value.span, f"`{value.text}` is not an allowed value", (hint + " " if hint else "") + f"allowed: {allowed}")]

    def _known(self, text: str) -> bool:
        if self.ignore_case:
            return text.lower() in {v.lower() for v in self.values}
        return text in self.values

    def describe(self) -> str:
        return "one of " + ", ".join(f"`{v}`" for v in self.values)


def Policy(*extra: str) -> Enum:
    """`enabled` / `disabled` (and any extra states, such as `allowed`)."""
    return Enum(("enabled", "disabled") + extra)


@dataclass(frozen=True)
class Identifier(ValueType):
    """A bare name (a layer, a normalization layer, a device name)."""

    def check(self, value: Value) -> list[Problem]:
        if isinstance(value, Word):
            return []
        return _wrong(value, "a name")

    def describe(self) -> str:
        return "a name"


@dataclass(frozen=True)
class Layers(ValueType):
    """A layer selector: a name, a brace glob, or a list of them."""

    def check(self, value: Value) -> list[Problem]:
        items = value.items if isinstance(value, ListValue) else (value,)
        problems: list[Problem] = []
        for item in items:
            if not isinstance(item, (Word, Glob)):
                problems.append(
                    ("ALS302", item.span, f"expected a layer name or a glob, found {_kind(item)} `{show(item)}`",
                     "write a layer name (`conv3`), a glob (`{conv*}`) or a list of them")
                )
        return problems

    def describe(self) -> str:
        return "layers: a name, a glob such as `{conv*}`, or a list of them"


@dataclass(frozen=True)
class ListOf(ValueType):
    """A list whose items all have one type, with an optional length range."""

    item: ValueType
    min_len: int = 0
    max_len: int | None = None

    def check(self, value: Value) -> list[Problem]:
        if not isinstance(value, ListValue):
            return _wrong(value, self.describe())
        problems: list[Problem] = []
        n = len(value.items)
        if n < self.min_len or (self.max_len is not None and n > self.max_len):
            problems.append(("ALS307", value.span, f"expected {self._length()} items, found {n}", ""))
        for item in value.items:
            problems.extend(self.item.check(item))
        return problems

    def _length(self) -> str:
        if self.max_len == self.min_len:
            return f"{self.min_len}"
        if self.max_len is None:
            return f"at least {self.min_len}"
        return f"{self.min_len} to {self.max_len}"

    def describe(self) -> str:
        return f"a list of {self.item.describe()}"


@dataclass(frozen=True)
class Range(ValueType):
    """``[lo, hi]`` with lo < hi (percentile modes add 0..100 in the checker)."""

    def check(self, value: Value) -> list[Problem]:
        if not isinstance(value, ListValue):
            return _wrong(value, self.describe())
        if len(value.items) != 2:
            return [("ALS307", value.span, f"expected `[lo, hi]`, found {len(value.items)} items", "")]
        problems: list[Problem] = []
        for item in value.items:
            problems.extend(Float().check(item))
        if problems:
            return problems
        lo, hi = (item.value for item in value.items if isinstance(item, Number))  # each is (checked above)
        if lo >= hi:
            return [("ALS304", value.span, f"empty range `{show(value)}`: the low end must be below the high end", "write `[lo, hi]` with lo < hi")]
        return []

    def describe(self) -> str:
        return "a range `[lo, hi]` with lo < hi"
