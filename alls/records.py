"""Reports as frozen dataclasses, read by attribute, with one JSON form each.

A `Record` is what a command reports (`alls eval`'s figures, `alls quantize`'s report): code reads
its fields by attribute, ``as_dict()`` is its JSON form (fields left None are left out, so an
absent figure stays absent), and ``record["name"]`` / ``record.get("name")`` read that form's keys,
for code written when these reports were dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

__all__ = ["Record"]


class Record:
    """A mixin for frozen dataclasses: ``as_dict`` and a read-only mapping view of it."""

    def keys(self) -> list[str]:
        """The fields the JSON form holds, in order (those not None)."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.keys()}

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
