"""Diagnostics as data: what the front end has to say about a script.

A `Diagnostic` carries a stable code (`ALS1xx` syntax, `ALS2xx` names and
selectors, `ALS3xx` values and plan, `ALS4xx` model and data, `ALS5xx`
runtime), a severity, a message, the span it is about, optional secondary
labels and a help line. Rendering is separate (`alls.render`).
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alls.nodes import Span

__all__ = ["Severity", "Label", "Diagnostic", "AllsError", "did_you_mean", "has_errors"]


class Severity(enum.Enum):
    """How much a diagnostic matters; only errors make `alls check` fail."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary span with a short message (``^^^ first set here``)."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: ``error[ALS203]: unknown keyword ...`` at ``span``.

    ``message`` is the headline; ``label`` is the short text under the caret;
    ``help`` is the suggested fix (did-you-mean, allowed values, new form).
    """

    code: str
    severity: Severity
    message: str
    span: Span | None = None
    label: str = ""
    help: str = ""
    labels: tuple[Label, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.column, self.code)


class AllsError(Exception):
    """Raised when a script cannot be used; ``diagnostics`` says why.

    ``str(error)`` is the concise rendering of every diagnostic, one a line.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(_one_line(d) for d in self.diagnostics))

    @classmethod
    def of(cls, code: str, message: str, help: str = "") -> AllsError:
        """One error without a place in a script (a file, a model, data)."""
        return cls([Diagnostic(code, Severity.ERROR, message, help=help)])


def _one_line(d: Diagnostic) -> str:
    where = f"{d.span}: " if d.span else ""
    return f"{where}{d.severity}[{d.code}]: {d.message}"


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """True when any of ``diagnostics`` is an error."""
    return any(d.is_error for d in diagnostics)


def did_you_mean(word: str, candidates: Iterable[str], n: int = 2) -> list[str]:
    """The candidates closest to ``word``, best first (case-insensitive).

    The one helper behind every "did you mean" in the project: commands,
    keywords, enum values and layer names all go through it. A runner-up is
    offered only when it is nearly as close as the best match.
    """
    pool = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in pool}
    exact = lowered.get(word.lower())
    if exact is not None and exact != word:
        return [exact]
    target = word.lower()
    scored = []
    for key in difflib.get_close_matches(target, list(lowered), n=max(n, 5), cutoff=0.6):
        scored.append((difflib.SequenceMatcher(None, target, key).ratio(), key))
    if not scored:
        return []
    best = scored[0][0]
    return [lowered[key] for score, key in scored[:n] if score >= best - 0.05]


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """A help line: ``did you mean `x`?`` or empty when nothing is close."""
    hits = did_you_mean(word, candidates)
    if not hits:
        return ""
    return "did you mean " + " or ".join(f"`{h}`" for h in hits) + "?"
