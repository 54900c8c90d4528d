"""Hailo's layer numbering: the order in which its parser counts the layers of each kind.

A layer is named ``<net>/<kind><n>``, ``n`` counting the layers of its kind from 1 in one order
over the whole network. The order is inferred from the names Hailo's own model zoo uses for known
layers (its post-processing configs and model scripts; docs/naming.md has the evidence). It is
counted twice:

1. Input layers first, in the order of the network's inputs; output layers last, in the order of
   the outputs (the end nodes, when the graph is cut).
2. A first count, breadth-first from the inputs (Kahn's algorithm with a FIFO queue): a layer is
   ready once every layer it reads has been counted, and the layers a counted layer makes ready
   join the queue in the natural order of their ONNX node names (``/model.22/cv2.0`` before
   ``/model.22/cv3.0``, ``Conv_99`` before ``Conv_100``), then in the file's order. Each layer
   takes the name this count gives it (``conv99``).
3. The final count, again from the inputs, takes next among the ready layers the one whose first
   name is smallest *as a string*: ``conv100`` before ``conv99``, ``conv`` before ``dw`` and
   ``feature_splitter``, ``avgpool`` before ``conv``. A merge (a layer reading two or more layers:
   concat, add, ...) is taken only when no single-input layer is ready.

So YOLOv8's box and class branches interleave (conv41, conv42, ...) but for YOLOv8l/x's stride-32
head, where the first count's names cross from two digits to three (``conv100`` is taken before
``conv99``), the box branch is counted whole; a depthwise layer (``dw``) waits for the convs
ready beside it, so YOLO11's box branch comes whole before its class branch.

`hailo_order` returns the order and the layers whose number a tie decided (another layer of the
same kind was ready at the same moment). `disputed_layers` names the layers whose number the string
comparison decided: compared as numbers, they would be numbered otherwise.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["NamingNode", "disputed_layers", "hailo_order", "natural_key", "number_layers"]


@dataclass(frozen=True)
class NamingNode:
    """One layer as the numbering sees it: a key, the keys of the layers it reads, its kind, the
    ONNX node name it came from, and its position in the file."""

    key: str
    inputs: tuple[str, ...]
    kind: str
    node_name: str = ""
    index: int = 0


NaturalKey = tuple[tuple[int, int, str], ...]


def natural_key(name: str) -> NaturalKey:
    """``Conv_99`` before ``Conv_100``: digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


@dataclass(frozen=True)
class _Graph:
    """The layers by key, the layers each reads (once each, only those in the graph) and its readers."""

    nodes: dict[str, NamingNode]
    inputs: dict[str, tuple[str, ...]]
    readers: dict[str, list[str]]

    @classmethod
    def of(cls, nodes: list[NamingNode]) -> _Graph:
        by_key = {n.key: n for n in nodes}
        inputs = {n.key: tuple(dict.fromkeys(i for i in n.inputs if i in by_key)) for n in nodes}
        readers: dict[str, list[str]] = {n.key: [] for n in nodes}
        for n in nodes:
            for source in inputs[n.key]:
                readers[source].append(n.key)
        return cls(by_key, inputs, readers)


def hailo_order(nodes: list[NamingNode], as_strings: bool = True) -> tuple[list[str], set[str]]:
    """The keys of ``nodes`` (input and output layers excluded by the caller, or included as any
    other layer) in Hailo's counting order, and the keys whose number a tie decided.
    ``as_strings=False`` compares the first count's names as numbers (``conv99`` before
    ``conv100``) in the final count instead of as strings."""
    graph = _Graph.of(nodes)
    first = _short_names(_breadth_first(graph), graph)
    if as_strings:
        return _by_first_name(graph, lambda key: first[key])
    return _by_first_name(graph, lambda key: natural_key(first[key]))


def _breadth_first(graph: _Graph) -> list[str]:
    """The first count: Kahn's algorithm with a FIFO queue, readers joining it in node-name order."""
    def by_name(key: str) -> tuple[NaturalKey, int]:
        node = graph.nodes[key]
        return natural_key(node.node_name), node.index

    waiting = {k: len(v) for k, v in graph.inputs.items()}
    ready = deque(sorted((k for k, w in waiting.items() if w == 0), key=by_name))
    order = []
    while ready:
        key = ready.popleft()
        order.append(key)
        for reader in sorted(graph.readers[key], key=by_name):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    counted = set(order)
    return order + [k for k in graph.nodes if k not in counted]  # a cycle cannot occur in ONNX; never dropped


def _by_first_name(graph: _Graph, name: Callable[[str], Any]) -> tuple[list[str], set[str]]:
    """The final count: of the ready layers, single-input ones first, each the one whose first name
    (``name(key)``: a string, or a natural key) is smallest; and the layers a tie decided."""
    def rank(key: str) -> tuple[bool, Any, int, str]:
        return len(graph.inputs[key]) > 1, name(key), graph.nodes[key].index, key

    waiting = {k: len(v) for k, v in graph.inputs.items()}
    heap = [rank(k) for k, w in waiting.items() if w == 0]
    heapq.heapify(heap)
    ready: dict[str, set[str]] = {}  # the ready layers of each kind
    for entry in heap:
        ready.setdefault(graph.nodes[entry[-1]].kind, set()).add(entry[-1])
    order, ties = [], set()
    while heap:
        key = heapq.heappop(heap)[-1]
        rivals = ready[graph.nodes[key].kind]
        rivals.discard(key)
        if rivals:
            ties |= rivals | {key}
        order.append(key)
        for reader in graph.readers[key]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(heap, rank(reader))
                ready.setdefault(graph.nodes[reader].kind, set()).add(reader)
    counted = set(order)
    return order + [k for k in graph.nodes if k not in counted], ties


def _short_names(order: list[str], graph: _Graph) -> dict[str, str]:
    """``conv1``, ``conv2``, ...: each kind counted in ``order``."""
    counts: dict[str, int] = {}
    names = {}
    for key in order:
        kind = graph.nodes[key].kind
        counts[kind] = counts.get(kind, 0) + 1
        names[key] = f"{kind}{counts[kind]}"
    return names


def disputed_layers(nodes: list[NamingNode]) -> set[str]:
    """The keys whose short name the string comparison of the final count decided: compared as
    numbers (``conv99`` before ``conv100``), they would be named otherwise."""
    _, names, _ = number_layers(nodes)
    _, other, _ = number_layers(nodes, as_strings=False)
    return {key for key, name in names.items() if other[key] != name}


def number_layers(nodes: list[NamingNode], as_strings: bool = True) -> tuple[list[str], dict[str, str], set[str]]:
    """Hailo's order and short names (``conv41``) for ``nodes``: input layers first and output
    layers last, each in the order given; the rest in `hailo_order` (``as_strings`` as there).
    Returns (order, names, ties)."""
    first = [n for n in nodes if n.kind == "input_layer"]
    last = [n for n in nodes if n.kind == "output_layer"]
    middle = [n for n in nodes if n.kind not in ("input_layer", "output_layer")]
    roots = {n.key for n in first}
    inner = [NamingNode(n.key, tuple(i for i in n.inputs if i not in roots), n.kind, n.node_name, n.index)
             for n in middle]
    order, ties = hailo_order(inner, as_strings)
    order = [n.key for n in first] + order + [n.key for n in last]
    counts: dict[str, int] = {}
    names = {}
    kinds = {n.key: n.kind for n in nodes}
    for key in order:
        counts[kinds[key]] = counts.get(kinds[key], 0) + 1
        names[key] = f"{kinds[key]}{counts[kinds[key]]}"
    return order, names, ties
