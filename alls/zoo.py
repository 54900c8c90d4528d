"""Read a Hailo model-zoo network config (``networks/yolov8s_pose.yaml``): where its parser cuts the
graph (``parser.nodes``: the start nodes, then the end nodes) and the input shape.

The configs are YAML, in the small subset the zoo writes: block mappings and sequences (nested
``- - x`` included), plain and quoted scalars, ``null``, ``[]``. That subset is read here rather
than adding a YAML dependency; anything outside it is an ALS409 error naming the line. A config
lists ``base:`` files (``base/yolov8.yaml``, relative to the folder above ``networks/``) whose
settings it overrides, as the zoo merges them.
"""

from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.nodes import Span

__all__ = ["NodeName", "ZooNetwork", "read_zoo_network", "parse_yaml_subset"]


class NodeName(str):
    """A node name read from a file, which remembers where (``span``): an error about the node
    (no such node, ALS406) points at that line."""

    span: Span | None = None

    def __new__(cls, name: str, span: Span | None = None) -> NodeName:
        self = super().__new__(cls, name)
        self.span = span
        return self


@dataclass(frozen=True)
class ZooNetwork:
    """What a zoo network config says about parsing: node names and the NCHW input shape."""

    name: str
    start_nodes: tuple[str, ...]
    end_nodes: tuple[str, ...]
    input_shape: tuple[int, ...] | None  # (1, C, H, W) from the config's H x W x C


def read_zoo_network(path: str | os.PathLike[str]) -> ZooNetwork:
    """The cut and input shape of the zoo config at ``path`` (its ``base:`` files merged)."""
    path = pathlib.Path(path)
    config = _merged(path, depth=0)
    nodes = (config.get("parser") or {}).get("nodes") or [None, None]
    starts, ends = (list(nodes) + [None, None])[:2]
    shape = (config.get("preprocessing") or {}).get("input_shape") or (config.get("info") or {}).get("input_shape")
    name = (config.get("network") or {}).get("network_name") or path.stem
    return ZooNetwork(str(name), _names(starts, path), _names(ends, path), _nchw(shape, path))


def _names(value: Any, path: pathlib.Path) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [str(v) for v in value if v is not None] if isinstance(value, list) else [str(value)]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    return tuple(NodeName(n, _where(lines, n, str(path))) for n in names)


def _where(lines: list[str], name: str, filename: str) -> Span | None:
    """The first line of the config that lists ``name`` (a base file's nodes are not located)."""
    for number, line in enumerate(lines, start=1):
        column = line.find(name)
        if column >= 0 and line[:column].strip(" -'\"") == "":
            return Span(filename, number, column + 1, number, column + 1 + len(name))
    return None


def _nchw(shape: Any, path: pathlib.Path) -> tuple[int, ...] | None:
    if shape is None:
        return None
    dims = shape if isinstance(shape, list) else str(shape).split("x")
    try:
        numbers = [int(d) for d in dims]
    except ValueError:
        raise AllsError([Diagnostic("ALS409", Severity.ERROR, f"`{path}`: input_shape `{shape}` is not H x W x C")]) \
            from None
    return (1, numbers[2], numbers[0], numbers[1]) if len(numbers) == 3 else tuple(numbers)


def _merged(path: pathlib.Path, depth: int) -> dict[str, Any]:
    if depth > 8:
        raise AllsError([Diagnostic("ALS409", Severity.ERROR, f"`{path}`: `base:` files include each other")])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AllsError([Diagnostic("ALS409", Severity.ERROR, f"cannot read zoo config `{path}`: "
                                    f"{exc.strerror or exc}")]) from None
    config = parse_yaml_subset(text, str(path))
    merged: dict[str, Any] = {}
    for base in config.get("base") or []:
        candidate = path.parent.parent / str(base)
        _deep_update(merged, _merged(candidate if candidate.exists() else path.parent / str(base), depth + 1))
    _deep_update(merged, config)
    return merged


def _deep_update(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_update(into[key], value)
        else:
            into[key] = value


_KEY = re.compile(r"^([A-Za-z0-9_.\-]+):(?:\s+(.*))?$")


# A YAML line: (its number, its indentation, its text).
_Line = tuple[int, int, str]


def parse_yaml_subset(text: str, filename: str = "<yaml>") -> Any:
    """The zoo's YAML subset as Python data (dicts, lists, str, int, float, bool, None)."""
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if stripped.strip():
            lines.append((number, len(stripped) - len(stripped.lstrip(" ")), stripped.strip()))
    value, index = _block(lines, 0, lines[0][1] if lines else 0, filename)
    if index != len(lines):
        _fail(filename, lines[index][0], "unexpected indentation")
    return value if value is not None else {}


def _block(lines: list[_Line], i: int, indent: int, filename: str) -> tuple[Any, int]:
    if i >= len(lines):
        return None, i
    if lines[i][2].startswith("- ") or lines[i][2] == "-":
        return _sequence(lines, i, indent, filename)
    return _mapping(lines, i, indent, filename)


def _sequence(lines: list[_Line], i: int, indent: int, filename: str) -> tuple[list[Any], int]:
    items: list[Any] = []
    while i < len(lines) and lines[i][1] == indent and (lines[i][2].startswith("- ") or lines[i][2] == "-"):
        number, _, text = lines[i]
        rest = text[1:].strip()
        if not rest:
            value, i = _block(lines, i + 1, lines[i + 1][1] if i + 1 < len(lines) else indent + 2, filename)
        elif rest.startswith("- ") or _KEY.match(rest):  # "- - x" or "- key: value": a nested block inline
            inner_indent = indent + (len(text) - len(rest))
            lines[i] = (number, inner_indent, rest)
            value, i = _block(lines, i, inner_indent, filename)
        else:
            value, i = _scalar(rest, filename, number), i + 1
        items.append(value)
    return items, i


def _mapping(lines: list[_Line], i: int, indent: int, filename: str) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while i < len(lines) and lines[i][1] == indent:
        number, _, text = lines[i]
        match = _KEY.match(text)
        if not match:
            _fail(filename, number, f"expected `key: value`, found `{text}`")
        key, rest = match.group(1), (match.group(2) or "").strip()
        if rest:
            i += 1
            while i < len(lines) and lines[i][1] > indent:  # a plain scalar folded over more lines
                rest, i = f"{rest} {lines[i][2]}", i + 1
            result[key] = _scalar(rest, filename, number)
        elif i + 1 < len(lines) and (lines[i + 1][1] > indent or
                                     (lines[i + 1][1] == indent and lines[i + 1][2].startswith("- "))):
            result[key], i = _block(lines, i + 1, lines[i + 1][1], filename)
        else:
            result[key], i = None, i + 1
    return result, i


def _scalar(text: str, filename: str, number: int) -> Any:
    if text in ("null", "~", "None"):
        return None
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if text[0] in "'\"":
        if len(text) < 2 or text[-1] != text[0]:
            _fail(filename, number, f"unclosed quote in `{text}`")
        return text[1:-1]
    if text[0] in "[{|>&*!":
        _fail(filename, number, f"`{text[:20]}`: flow collections, block scalars, anchors and tags are not read")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fail(filename: str, number: int, message: str) -> NoReturn:
    raise AllsError([Diagnostic("ALS409", Severity.ERROR, f"{filename}:{number}: {message}",
                                help="zoo configs are read in the YAML subset the zoo writes")])
