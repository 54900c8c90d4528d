"""Cut an ONNX graph at start and end nodes, as Hailo's parser does (``parser.nodes`` in a zoo
network config, ``start_node_names``/``end_node_names`` in its API).

The graph kept is every node that lies on a path from a start node to an end node, both included:
the start nodes' data inputs become the network's inputs (with the shapes ONNX infers for them from
the original inputs), the end nodes' outputs its outputs. Without start nodes the original inputs
stay; without end nodes the original outputs. A node is named by its ONNX node name or, failing
that, by the name of a tensor it writes.

Errors are `AllsError` with a located diagnostic naming the node and the nearest real names:
ALS406 (no such node), ALS407 (a kept node reads a tensor from outside the cut: an input the cut
does not reach), ALS408 (a start node from which no end node can be reached).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.graph import Graph, InputShapes, Layer

if TYPE_CHECKING:
    import onnx

__all__ = ["Cut", "cut_model", "suggest_end_nodes"]

E = Severity.ERROR


@dataclass(frozen=True)
class Cut:
    """Where a graph is cut: ONNX node names (empty: the graph's own inputs or outputs)."""

    start_nodes: tuple[str, ...] = ()
    end_nodes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.start_nodes or self.end_nodes)

    def as_dict(self) -> dict[str, list[str]]:
        return {"start_nodes": list(self.start_nodes), "end_nodes": list(self.end_nodes)}


def cut_model(proto: onnx.ModelProto, cut: Cut, input_shapes: InputShapes | None = None) -> onnx.ModelProto:
    """``proto`` cut at ``cut`` (a new `onnx.ModelProto`; ``proto`` is not changed). With start
    nodes, their input tensors' shapes are inferred from ``input_shapes`` of the original inputs,
    unless ``input_shapes`` names those tensors itself."""
    import onnx

    graph = proto.graph
    nodes = list(graph.node)
    consts = {t.name for t in graph.initializer} | {o for n in nodes if n.op_type == "Constant" for o in n.output}
    starts = [_find(nodes, name, "start") for name in cut.start_nodes]
    ends = [_find(nodes, name, "end") for name in cut.end_nodes]
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    new_inputs = [t for i in starts for t in nodes[i].input if t and t not in consts]
    new_inputs = list(dict.fromkeys(new_inputs))
    outputs = [o for i in ends for o in nodes[i].output if o] if ends else [o.name for o in graph.output]
    boundary = set(new_inputs) if starts else {i.name for i in graph.input}
    keep = _ancestors(nodes, producer, outputs, boundary, consts)
    if starts:
        for i in starts:
            if i not in keep:
                raise AllsError([Diagnostic("ALS408", E, f"no end node can be reached from the start node "
                                            f"`{nodes[i].name}`", help="ends: " + _names(nodes, ends) if ends
                                            else "check the start and end nodes")])
        _check_closed(nodes, keep, boundary, consts, producer)
    kept = [n for i, n in enumerate(nodes) if i in keep]
    if starts:
        inputs = [_value_info(proto, t, input_shapes) for t in new_inputs]
    else:
        inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
        read = {t for i in keep for t in nodes[i].input}
        for inp in inputs:
            if inp.name not in read:
                raise AllsError([Diagnostic("ALS407", E, f"the input `{inp.name}` reaches none of the end nodes "
                                            f"{_names(nodes, ends)}", help="give end nodes that use every input, "
                                            "or start nodes that leave it out")])
    outs = [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs]
    if not ends:
        outs = list(graph.output)
    used = {t for n in kept for t in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    new_graph = onnx.helper.make_graph(kept, graph.name, inputs, outs, initializer=inits)
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    model.graph.CopyFrom(new_graph)
    return model


def _find(nodes: Sequence[onnx.NodeProto], name: str, role: str) -> int:
    for i, n in enumerate(nodes):
        if n.name == name:
            return i
    for i, n in enumerate(nodes):  # a tensor the node writes
        if name in n.output:
            return i
    known = [n.name for n in nodes if n.name]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    close = close or [k for k in known if name.rsplit("/", 1)[0] and k.startswith(name.rsplit("/", 1)[0])][:3]
    help_text = f"did you mean {', '.join(f'`{c}`' for c in close)}?" if close else \
        "`alls layers MODEL` lists each layer with the ONNX node names it came from"
    raise AllsError([Diagnostic("ALS406", E, f"the {role} node `{name}` is not a node of the model",
                                span=getattr(name, "span", None), label="no such node", help=help_text)])


def _ancestors(nodes: Sequence[onnx.NodeProto], producer: Mapping[str, int], outputs: Iterable[str],
               boundary: set[str], consts: set[str]) -> set[int]:
    """The nodes that compute ``outputs``, stopping at the boundary tensors."""
    keep: set[int] = set()
    stack = [producer[o] for o in outputs if o in producer and o not in boundary]
    while stack:
        i = stack.pop()
        if i in keep:
            continue
        keep.add(i)
        for t in nodes[i].input:
            if t and t not in boundary and t in producer:
                stack.append(producer[t])
    return keep


def _check_closed(nodes: Sequence[onnx.NodeProto], keep: set[int], boundary: set[str], consts: set[str],
                  producer: Mapping[str, int]) -> None:
    """Every kept node reads the cut's inputs, constants, or other kept nodes; a node that reads a
    graph input the start nodes do not stand for (a path around them) is an error."""
    for i in sorted(keep):
        for t in nodes[i].input:
            if t and t not in boundary and t not in consts and t not in producer:
                raise AllsError([Diagnostic(
                    "ALS407", E, f"node `{nodes[i].name}` reads the input `{t}`, which the start nodes do not cut off: "
                    "the end nodes need more than the start nodes give",
                    help=f"add `{nodes[i].name}` (or a node after it) to the start nodes, or choose later end nodes")])


def _names(nodes: Sequence[onnx.NodeProto], indices: Iterable[int]) -> str:
    return ", ".join(f"`{nodes[i].name}`" for i in indices)


def _value_info(proto: onnx.ModelProto, tensor: str, input_shapes: InputShapes | None) -> onnx.ValueInfoProto:
    """``tensor`` as a graph input, its shape from ``input_shapes`` or inferred on the whole model."""
    import onnx

    if isinstance(input_shapes, dict) and tensor in input_shapes:
        return onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, list(input_shapes[tensor]))
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    inits = {t.name for t in model.graph.initializer}
    originals = [i for i in model.graph.input if i.name not in inits]
    wanted = input_shapes if isinstance(input_shapes, dict) else (
        {originals[0].name: input_shapes} if input_shapes is not None and len(originals) == 1 else {})
    for inp in originals:
        if inp.name in wanted:
            shape = onnx.helper.make_tensor_type_proto(inp.type.tensor_type.elem_type, list(wanted[inp.name]))
            inp.type.CopyFrom(shape)
    try:
        inferred: onnx.ModelProto = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is best effort; the importer asks for the shape when it is missing
        inferred = model
    vi: onnx.ValueInfoProto
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        if vi.name == tensor:
            return vi
    return onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)


def suggest_end_nodes(graph: Graph) -> Diagnostic | None:
    """When every unsupported layer lies after a cut that leaves a network (each input still read,
    a layer with weights kept, at most 1% of the supported layers' MACs cut off with them: the
    post-processing, not the network), an ALS411 note naming the end nodes of that cut: the
    supported layers that feed an unsupported one, or an output."""
    unsupported = [layer.name for layer in graph if not layer.supported]
    if not unsupported:
        return None
    readers: dict[str, list[Layer]] = {layer.name: [] for layer in graph}
    for layer in graph:
        for source in layer.inputs:
            if source in readers:
                readers[source].append(layer)
    after, stack = set(), list(unsupported)
    while stack:  # the unsupported layers and everything they feed
        name = stack.pop()
        if name not in after:
            after.add(name)
            stack.extend(r.name for r in readers[name])
    kept = [layer for layer in graph if layer.name not in after and layer.kind not in ("input_layer", "output_layer")]
    total = sum(layer.macs for layer in graph if layer.supported)
    if 100 * sum(layer.macs for layer in graph if layer.name in after and layer.supported) > total:
        return None  # the cut would drop real work (more than 1% of the MACs), not just post-processing
    if not any(layer.has_weights for layer in kept) or any(
            not any(r.name not in after and r.kind != "output_layer" for r in readers[i.name]) for i in graph.inputs):
        return None
    ends = [layer for layer in kept if layer.end_node and any(r.name in after or r.kind == "output_layer"
                                                              for r in readers[layer.name])]
    if not ends:
        return None
    ops = sorted({layer.op.split("+")[0] for layer in graph if not layer.supported})
    return Diagnostic("ALS411", Severity.INFO,
                      f"the unsupported ops ({', '.join(ops)}) all come after {len(ends)} layer(s): ending the "
                      f"network there leaves {len(kept)} supported layers",
                      help="--end-nodes " + ",".join(layer.end_node for layer in ends))
