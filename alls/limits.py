"""Limits on untrusted inputs: declared once, checked before the work.

Scripts, models, arrays and quantized files may come from anyone. Each
limit below bounds the time or memory one input can make `alls` spend; it
has a default, an override (the keyword ``limits=Limits(...)`` in the API,
``--max-...`` on the command line) and a diagnostic code that names it when
it is exceeded. ``docs/untrusted-inputs.md`` lists them with the threat
model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.nodes import Span

__all__ = ["Limits", "LimitExceeded", "DEFAULT", "exceeded", "check_limits"]

_KIB, _MIB, _GIB = 1 << 10, 1 << 20, 1 << 30


def _limit(default: float, code: str, option: str, what: str) -> Any:
    return field(default=default, metadata={"code": code, "option": option, "what": what})


@dataclass(frozen=True)
class Limits:
    """Every limit on an input, with its default; ``Limits(max_nesting=128)`` overrides one."""

    max_script_bytes: int = _limit(16 * _MIB, "ALS020", "--max-script-bytes", "bytes in a script")
    max_nesting: int = _limit(64, "ALS021", "--max-nesting", "nested brackets in a script")
    max_literal_chars: int = _limit(4096, "ALS022", "--max-literal-chars", "characters in one name, number or string")
    max_tensor_elements: int = _limit(1 << 30, "ALS023", "--max-tensor-elements",
                                      "elements in one declared tensor (a weight, an input, a shape)")
    max_constant_bytes: int = _limit(4 * _GIB, "ALS024", "--max-constant-bytes", "bytes of a model's constants")
    max_fold_elements: int = _limit(1 << 26, "ALS025", "--max-fold-elements",
                                    "elements one folded constant node may produce")
    max_fold_seconds: float = _limit(10.0, "ALS026", "--max-fold-seconds", "seconds one constant fold may take")
    max_array_bytes: int = _limit(16 * _GIB, "ALS027", "--max-array-bytes",
                                  "bytes of one .npy array or of all the members of an .npz")
    max_compression_ratio: int = _limit(200, "ALS028", "--max-compression-ratio",
                                        "how many times larger an .npz member may be than its compressed bytes")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{f.name} must be a number, not {type(value).__name__}")
            if not value > 0:
                raise ValueError(f"Limits.{f.name} must be positive, not {value}")


DEFAULT = Limits()


def check_limits(limits: object) -> Limits:
    """``limits`` as `Limits` (None: the defaults); a `TypeError` for anything else."""
    if limits is None:
        return DEFAULT
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be alls.Limits or None, not {type(limits).__name__}")
    return limits


def describe(name: str) -> tuple[str, str, str]:
    """(code, option, what) of the limit ``name``."""
    meta = Limits.__dataclass_fields__[name].metadata
    return meta["code"], meta["option"], meta["what"]


def exceeded(name: str, found: object, limits: Limits, subject: str, span: Span | None = None) -> Diagnostic:
    """The diagnostic of limit ``name`` exceeded by ``subject`` (``found`` of it)."""
    code, option, what = describe(name)
    limit = getattr(limits, name)
    amount = f"{found:,}" if isinstance(found, (int, float)) else str(found)
    return Diagnostic(code, Severity.ERROR, f"{subject}: {amount} {what}, more than the limit of {limit:,} ({name})",
                      span, "over the limit",
                      f"if the input is trusted, raise the limit: `{option}` or `Limits({name}=...)`")


class LimitExceeded(AllsError):
    """An input over one of the `Limits`: an `AllsError` with its one diagnostic."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__([diagnostic])
        self.diagnostic = diagnostic


def refuse(name: str, found: object, limits: Limits, subject: str, span: Span | None = None) -> LimitExceeded:
    return LimitExceeded(exceeded(name, found, limits, subject, span))
