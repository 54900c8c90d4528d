"""Bind layer selectors to the layers of a graph.

A selector is a layer name, a brace glob, or a list of them:

- a name matches a layer by its full name (``net/conv3``), its short name
  (``conv3``) or an ONNX alias (the node's name or an output tensor's);
- a glob uses shell rules, case-sensitive: ``*``, ``?``, ``[0-9]``; a glob with
  a ``/`` (``{net/ew_add*}``) is matched against full names, one without
  against short names; ``{*}`` is every layer;
- a name scoped to another network (``yolov5m/conv3`` on a graph called
  ``digits``) matches by its short name, with a warning (ALS211).

A selector that matches nothing is an error (ALS201) with the nearest names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from alls.diagnostics import Diagnostic, Severity, did_you_mean
from alls.graph import Graph, Layer
from alls.nodes import Glob, ListValue, Span, Value, Word

__all__ = ["Match", "select", "unique_layers"]

E, W = Severity.ERROR, Severity.WARNING


@dataclass(frozen=True)
class Match:
    """What one selector item matched: the item's span and its layers."""

    text: str
    span: Span
    layers: tuple[Layer, ...]
    is_glob: bool


def select(selector: Value, graph: Graph) -> tuple[list[Match], list[Diagnostic]]:
    """Match every item of ``selector`` against ``graph``.

    Returns one `Match` per item (in order, duplicates kept) and the
    diagnostics: ALS201 for an item that matches nothing, ALS211 for a name
    scoped to another network.
    """
    items = selector.items if isinstance(selector, ListValue) else (selector,)
    matches: list[Match] = []
    diagnostics: list[Diagnostic] = []
    for item in items:
        if isinstance(item, Glob):
            layers, note = _glob(item.pattern, graph)
            matches.append(Match(item.text, item.span, layers, True))
            if not layers:
                diagnostics.append(_no_glob_match(item, graph))
            elif note:
                diagnostics.append(Diagnostic("ALS211", W, note, item.span, "other network",
                                              "write the glob without the scope"))
        elif isinstance(item, Word):
            layer, note = _name(item.text, graph)
            matches.append(Match(item.text, item.span, (layer,) if layer else (), False))
            if layer is None:
                diagnostics.append(_no_name_match(item, graph))
            elif note:
                diagnostics.append(Diagnostic("ALS211", W, note, item.span, "other network",
                                              f"write `{layer.short_name}` or `{layer.name}`"))
    return matches, diagnostics


def _glob(pattern: str, graph: Graph) -> tuple[tuple[Layer, ...], str]:
    """The layers a glob matches, and a note when its scope is another net's."""
    if "/" not in pattern:
        return tuple(l for l in graph.layers if fnmatch.fnmatchcase(l.short_name, pattern)), ""
    found = tuple(l for l in graph.layers if fnmatch.fnmatchcase(l.name, pattern))
    scope, short = pattern.rsplit("/", 1)
    if found or scope == graph.name or any(c in scope for c in "*?["):
        return found, ""
    found = tuple(l for l in graph.layers if fnmatch.fnmatchcase(l.short_name, short))
    note = f"`{{{pattern}}}` is scoped to `{scope}`, not to this network (`{graph.name}`); matched by `{{{short}}}`"
    return found, note if found else ""


def _name(text: str, graph: Graph) -> tuple[Layer | None, str]:
    layer = graph.get(text)
    if layer is not None:
        return layer, ""
    if "/" in text:
        scope, short = text.rsplit("/", 1)
        layer = graph.get(short)
        if layer is not None and layer.short_name == short:
            return layer, f"`{text}` is scoped to `{scope}`, not to this network (`{graph.name}`); matched `{layer.name}`"
    return None, ""


def _no_name_match(item: Word, graph: Graph) -> Diagnostic:
    short = item.text.rsplit("/", 1)[-1]
    hits = did_you_mean(short, [l.short_name for l in graph.layers])
    help_text = ("did you mean " + " or ".join(f"`{h}`" for h in hits) + "?") if hits else _kinds_help(graph)
    return Diagnostic("ALS201", E, f"selector `{item.text}` matches no layer", item.span, "no layer has this name",
                      help_text)


def _no_glob_match(item: Glob, graph: Graph) -> Diagnostic:
    pattern = item.pattern
    prefix = re.split(r"[*?\[]", pattern.rsplit("/", 1)[-1], maxsplit=1)[0]
    kinds = sorted({_kind_prefix(l.short_name) for l in graph.layers})
    help_text = _kinds_help(graph)
    if prefix:
        for kind in did_you_mean(prefix, kinds, n=1):
            fixed = item.text.replace(prefix, kind, 1)
            count = len(_glob(fixed.replace("{", "").replace("}", ""), graph)[0])
            if count:
                help_text = f"did you mean `{fixed}`? ({count} layer{'s' if count != 1 else ''})"
    return Diagnostic("ALS201", E, f"selector `{item.text}` matches no layer", item.span, "no layer name matches",
                      help_text)


def _kind_prefix(short_name: str) -> str:
    return short_name.rstrip("0123456789")


def _kinds_help(graph: Graph) -> str:
    counts: dict[str, int] = {}
    for layer in graph.layers:
        counts[_kind_prefix(layer.short_name)] = counts.get(_kind_prefix(layer.short_name), 0) + 1
    listed = ", ".join(f"{k}* ({n})" for k, n in sorted(counts.items()))
    return f"this network has: {listed}; `alls layers MODEL` lists every name"


def unique_layers(matches: Iterable[Match]) -> tuple[Layer, ...]:
    """The layers of all matches, each once, in graph order of first match."""
    seen: dict[str, Layer] = {}
    for m in matches:
        for layer in m.layers:
            seen.setdefault(layer.name, layer)
    return tuple(seen.values())
