"""Hailo's layer numbering: the order in which its parser counts the layers of each kind.

A layer is named ``<net>/<kind><n>``, ``n`` counting the layers of its kind from 1 in one order
over the whole network. The order is inferred from the names Hailo's own model zoo uses for known
layers (its post-processing configs and model scripts; docs/naming.md has the evidence):

1. Input layers first, in the order of the network's inputs; output layers last, in the order of
   the outputs (the end nodes, when the graph is cut).
2. The other layers in a breadth-first order from the inputs (Kahn's algorithm with a FIFO queue):
   a layer is ready once every layer it reads has been counted.
3. A *merge* (a layer reading two or more layers: concat, add, ...) that becomes ready waits until
   no single-input layer is ready. So after a branch point the branches are counted before the
   trunk continues through its concat: YOLOv8's stride-2 conv, then its head's two branches
   interleaved, then the concat and the next C2f.
4. The layers a counted layer makes ready join the queue in the natural order of their ONNX node
   names (``/model.22/cv2.0`` before ``/model.22/cv3.0``, ``BoxPredictor_1`` before
   ``FeatureExtractor/...``, ``Conv_99`` before ``Conv_100``), then in the file's order.

5. A depthwise (``dw``) layer takes two places in the queue: the layers it makes ready join the
   queue one turn later than a conv's would. YOLO11's and YOLOv10's class branches open with one,
   and their box branch beside it is counted whole first (conv49-51, then class conv52-54).

`hailo_order` returns the order and the layers whose number a tie decided: another layer of the
same kind was ready at the same moment, so rule 2's queue order (and rule 4 before it) set which
came first. The zoo's configs agree with that tie rule in every case but one: YOLOv8l/x count the
branches that end the network (the stride-32 head) branch by branch. `disputed_layers` names the
layers whose number that reading would change (docs/naming.md).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["NamingNode", "SLOW_KINDS", "disputed_layers", "hailo_order", "natural_key", "number_layers"]

# Kinds that take two places in the queue (rule 5): the readers of a depthwise layer join the queue
# one turn later than those of a conv, as if its activation were a layer of its own.
SLOW_KINDS = frozenset({"dw"})


@dataclass(frozen=True)
class NamingNode:
    """One layer as the numbering sees it: a key, the keys of the layers it reads, its kind, the
    ONNX node name it came from, and its position in the file."""

    key: str
    inputs: tuple[str, ...]
    kind: str
    node_name: str = ""
    index: int = 0


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """``Conv_99`` before ``Conv_100``: digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def hailo_order(nodes: list[NamingNode], branchwise: bool = False) -> tuple[list[str], set[str]]:
    """The keys of ``nodes`` (input and output layers excluded by the caller, or included as any
    other layer) in Hailo's counting order, and the keys whose number a tie decided.
    ``branchwise``: once nothing is left but branches that end the network (no merge after them),
    count them branch by branch, as the zoo's YOLOv8l/x configs do, instead of interleaved."""
    by_key = {n.key: n for n in nodes}
    inputs = {n.key: tuple(dict.fromkeys(i for i in n.inputs if i in by_key)) for n in nodes}
    readers: dict[str, list[str]] = {n.key: [] for n in nodes}
    for n in nodes:
        for source in inputs[n.key]:
            readers[source].append(n.key)
    waiting = {k: len(v) for k, v in inputs.items()}

    def sort_key(key: str) -> tuple[tuple[tuple[int, int, str], ...], int]:
        node = by_key[key]
        return natural_key(node.node_name), node.index

    first: list[str] = sorted((k for k, w in waiting.items() if w == 0), key=sort_key)
    ready: deque[str | _Step] = deque(first)
    merges: deque[str | _Step] = deque()
    order, ties = [], set()
    terminal = _terminal(nodes, inputs, readers) if branchwise else set()
    while ready or merges:
        if terminal and not merges and all(k in terminal for k in ready):
            order += _branch_by_branch([k for k in ready if not isinstance(k, _Step)], readers, sort_key)
            break
        key = ready.popleft() if ready else merges.popleft()
        if isinstance(key, _Step):  # a depthwise layer's second place in the queue: now release its readers
            _release(key.key, readers, waiting, inputs, ready, merges, sort_key)
            continue
        kind = by_key[key].kind
        if any(not isinstance(k, _Step) and by_key[k].kind == kind for k in ready):
            ties.add(key)
            ties.update(k for k in ready if not isinstance(k, _Step) and by_key[k].kind == kind)
        order.append(key)
        if kind in SLOW_KINDS:
            ready.append(_Step(key))
        else:
            _release(key, readers, waiting, inputs, ready, merges, sort_key)
    counted = set(order)
    order += [n.key for n in nodes if n.key not in counted]  # a cycle cannot occur in ONNX; never dropped
    return order, ties


def _terminal(nodes: list[NamingNode], inputs: dict[str, tuple[str, ...]],
              readers: dict[str, list[str]]) -> set[str]:
    """The layers after which no merge comes: every layer they lead to reads one layer only."""
    done: set[str] = set()
    for n in reversed(_topological(nodes, inputs)):
        if all(len(inputs[r]) == 1 and r in done for r in readers[n]):
            done.add(n)
    return done


def _topological(nodes: list[NamingNode], inputs: dict[str, tuple[str, ...]]) -> list[str]:
    """The keys, each after the layers it reads (depth-first, without recursion)."""
    order, seen = [], set()
    for n in nodes:
        stack = [(n.key, False)]
        while stack:
            key, expanded = stack.pop()
            if expanded:
                order.append(key)
            elif key not in seen:
                seen.add(key)
                stack.append((key, True))
                stack.extend((i, False) for i in inputs[key] if i not in seen)
    return order


def _branch_by_branch(starts: list[str], readers: dict[str, list[str]], sort_key: Callable[[str], Any]) -> list[str]:
    """Each start and everything after it, one branch whole before the next, readers in name order."""
    order = []
    for start in starts:
        stack = [start]
        while stack:
            key = stack.pop()
            order.append(key)
            stack.extend(sorted(readers[key], key=sort_key, reverse=True))
    return order


@dataclass(frozen=True)
class _Step:
    """The second place a depthwise layer takes in the queue (rule 5)."""

    key: str


def _release(key: str, readers: dict[str, list[str]], waiting: dict[str, int], inputs: dict[str, tuple[str, ...]],
             ready: deque[str | _Step], merges: deque[str | _Step], sort_key: Callable[[str], Any]) -> None:
    """The readers of ``key`` that it makes ready join the queue (merges apart), in name order."""
    for reader in sorted(readers[key], key=sort_key):
        waiting[reader] -= 1
        if waiting[reader] == 0:
            (merges if len(inputs[reader]) > 1 else ready).append(reader)


def disputed_layers(nodes: list[NamingNode]) -> set[str]:
    """The keys whose short name differs when the branches that end the network are counted branch
    by branch (the zoo's YOLOv8l/x) rather than interleaved (its n/s/m, and this importer)."""
    _, names, _ = number_layers(nodes)
    _, other, _ = number_layers(nodes, branchwise=True)
    return {key for key, name in names.items() if other[key] != name}


def number_layers(nodes: list[NamingNode], branchwise: bool = False) -> tuple[list[str], dict[str, str], set[str]]:
    """Hailo's order and short names (``conv41``) for ``nodes``: input layers first and output
    layers last, each in the order given; the rest in `hailo_order` (``branchwise`` as there).
    Returns (order, names, ties)."""
    first = [n for n in nodes if n.kind == "input_layer"]
    last = [n for n in nodes if n.kind == "output_layer"]
    middle = [n for n in nodes if n.kind not in ("input_layer", "output_layer")]
    roots = {n.key for n in first}
    inner = [NamingNode(n.key, tuple(i for i in n.inputs if i not in roots), n.kind, n.node_name, n.index)
             for n in middle]
    order, ties = hailo_order(inner, branchwise)
    order = [n.key for n in first] + order + [n.key for n in last]
    counts: dict[str, int] = {}
    names = {}
    kinds = {n.key: n.kind for n in nodes}
    for key in order:
        counts[kinds[key]] = counts.get(kinds[key], 0) + 1
        names[key] = f"{kinds[key]}{counts[kinds[key]]}"
    return order, names, ties
