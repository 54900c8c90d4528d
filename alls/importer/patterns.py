"""The patterns pass: HardSwish written as ``x * HardSigmoid(x)`` or ``x * Clip(x + 3, 0, 6) / 6``
and SiLU written as ``x * Sigmoid(x)`` become one node each (`HardSwish`, `Swish`), which the
activation handlers (`alls.importer.ops.activations`) then read as one activation."""

from __future__ import annotations

from collections import Counter

import numpy as np

from alls.importer.drafts import Node, aliases_of, scalar


def rewrite_patterns(nodes: list[Node], consts: dict[str, np.ndarray], graph_outputs=()) -> list[Node]:
    """HardSwish and SiLU written out in primitives become one node each."""
    producer = {o: n for n in nodes for o in n.outputs}
    uses: Counter = Counter(i for n in nodes for i in n.inputs)
    uses.update(graph_outputs)  # a graph output must stay
    removed: set[int] = set()

    def const_value(tensor):
        return scalar(consts.get(tensor))

    def only_use(tensor):
        return uses[tensor] == 1

    out = []
    for n in nodes:
        if n.op in ("Mul", "Div") and len(n.inputs) == 2:
            match = _match_swish(n, producer, const_value, only_use)
            if match is not None:
                op, x, dead = match
                removed.update(id(d) for d in dead)
                out.append(Node(op, n.name, [x], n.outputs, aliases=[a for d in dead for a in aliases_of(d)]))
                continue
        out.append(n)
    return [n for n in out if id(n) not in removed]


def _match_swish(n: Node, producer, const_value, only_use):
    """``x*Sigmoid(x)``, ``x*HardSigmoid(x)`` (alpha 1/6, beta 1/2), and
    ``x*Clip(x+3,0,6)/6`` in its Mul/Div orders, as (op, x, dead nodes)."""
    a, b = n.inputs
    if n.op == "Mul":
        for x, y in ((a, b), (b, a)):
            p = producer.get(y)
            if p is not None and only_use(y) and p.inputs[:1] == [x]:
                if p.op == "Sigmoid":
                    return "Swish", x, [p]
                if p.op == "HardSigmoid" and abs(p.attrs.get("alpha", 0.2) - 1 / 6) < 1e-6 \
                        and abs(p.attrs.get("beta", 0.5) - 0.5) < 1e-6:
                    return "HardSwish", x, [p]
            scaled = _match_relu6_plus3_over6(y, producer, const_value, only_use)
            if scaled is not None and scaled[0] == x:
                return "HardSwish", x, scaled[1]
    # (x * Clip(x+3, 0, 6)) / 6  or  (x * Clip(x+3, 0, 6)) * (1/6), the 1/6 first or second
    if n.op == "Mul" and const_value(a) is not None:
        a, b = b, a
    divisor = const_value(b)
    if divisor is not None and ((n.op == "Div" and abs(divisor - 6) < 1e-6) or (n.op == "Mul" and abs(divisor - 1 / 6) < 1e-6)):
        m = producer.get(a)
        if m is not None and m.op == "Mul" and only_use(a):
            for x, y in ((m.inputs[0], m.inputs[1]), (m.inputs[1], m.inputs[0])):
                clip = _match_relu6_plus3(y, producer, const_value, only_use)
                if clip is not None and clip[0] == x:
                    return "HardSwish", x, [m, *clip[1]]
    return None


def _match_relu6_plus3(tensor, producer, const_value, only_use):
    clip = producer.get(tensor)
    if clip is None or clip.op not in ("Clip", "Relu6") or not only_use(tensor):
        return None
    lo = clip.attrs.get("min", const_value(clip.inputs[1]) if len(clip.inputs) > 1 else None)
    hi = clip.attrs.get("max", const_value(clip.inputs[2]) if len(clip.inputs) > 2 else None)
    if lo != 0 or hi != 6:
        return None
    add = producer.get(clip.inputs[0])
    if add is None or add.op != "Add" or not only_use(clip.inputs[0]):
        return None
    for x, c in ((add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])):
        if const_value(c) == 3:
            return x, [clip, add]
    return None


def _match_relu6_plus3_over6(tensor, producer, const_value, only_use):
    """``Clip(x+3,0,6)/6`` or ``Clip(x+3,0,6)*(1/6)``: (x, dead nodes)."""
    scale = producer.get(tensor)
    if scale is None or not only_use(tensor) or scale.op not in ("Div", "Mul") or len(scale.inputs) != 2:
        return None
    y, c = scale.inputs
    if scale.op == "Mul" and const_value(y) is not None:
        y, c = c, y
    value = const_value(c)
    if value is None or not ((scale.op == "Div" and abs(value - 6) < 1e-6) or (scale.op == "Mul" and abs(value - 1 / 6) < 1e-6)):
        return None
    clip = _match_relu6_plus3(y, producer, const_value, only_use)
    if clip is None:
        return None
    return clip[0], [scale, *clip[1]]
