"""The importer's driver: the passes over one model, and what the op handlers are given.

`Importer.run` reads the inputs' shapes and ONNX's shape inference, folds constants
(`alls.folding`), rewrites patterns (`alls.importer.patterns`), hands each remaining node to its
op's handler (`alls.importer.registry.HANDLERS`), and names the layers (`alls.naming`). A handler
sees the importer through its public methods: `resolve`, `shape`, `add`, `fold_into`,
`single_consumer_producer`, `const_ints`, `const_scalar` and `moved`, and its tables `consts`,
`shapes`, `producer`, `alias_of`, `consumers`, `drafts` and `opset`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.folding import fold_node
from alls.graph import Graph, InputShapes, Layer
from alls.importer.drafts import Draft, Node, aliases_of, proto_node, scalar
from alls.importer.layers import computed_shape, macs, shape_conflict
from alls.importer.ops import HANDLERS
from alls.importer.patterns import rewrite_patterns
from alls.limits import DEFAULT, Limits, LimitExceeded
from alls.naming import NamingNode, disputed_layers, number_layers
from alls.values import Activation

if TYPE_CHECKING:
    import onnx

E, W = Severity.ERROR, Severity.WARNING
_MIN_OPSET, _MAX_OPSET = 9, 21


class Importer:
    """One import of one model: `run` makes the `Graph`; the op handlers add the drafts."""

    def __init__(self, proto: onnx.ModelProto, net: str, input_shapes: InputShapes | None,
                 limits: Limits = DEFAULT):
        self.proto = proto
        self.limits = limits
        self.net = net
        self.input_shapes = input_shapes
        self.diagnostics: list[Diagnostic] = []
        self.consts: dict[str, NDArray[Any]] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.drafts: list[Draft] = []
        self.producer: dict[str, Draft] = {}  # tensor -> draft that produces it
        self.alias_of: dict[str, str] = {}  # tensor -> tensor it equals (Identity, Dropout, folded nodes)
        self.consumers: Counter[str] = Counter()

    # ----------------------------------------------------------- the passes
    def run(self) -> Graph:
        import onnx

        self.opset = next((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        if not _MIN_OPSET <= self.opset <= _MAX_OPSET:
            self._warn("ALS403", f"opset {self.opset} is outside the supported {_MIN_OPSET}..{_MAX_OPSET}; "
                                 "import continues, some ops may be read wrongly")
        graph = self.proto.graph
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.consts]
        self._input_shapes(inputs)
        self._infer_shapes()
        nodes = [self._node(n) for n in graph.node]
        nodes = self._fold_constants(nodes)
        nodes = rewrite_patterns(nodes, self.consts, [o.name for o in graph.output])
        for n in nodes:
            for t in n.inputs:
                self.consumers[t] += 1
        for out in graph.output:  # a graph output is read too: nothing may fold into the layer making it
            self.consumers[out.name] += 1
        for inp in inputs:
            draft = Draft("input_layer", ["Input"], [], inp.name, [inp.name])
            self.add(draft)
        for n in nodes:
            self._layer(n)
        for out in graph.output:
            source = self.resolve(out.name)
            if source in self.consts:
                self._warn("ALS404", f"output `{out.name}` is a constant; it is left out of the graph")
                continue
            self.add(Draft("output_layer", ["Output"], [source], out.name + ":out", [out.name]))
        return self._named()

    def _warn(self, code: str, message: str, severity: Severity = W, help_text: str = "") -> None:
        self.diagnostics.append(Diagnostic(code, severity, message, help=help_text))

    def _node(self, proto_node: onnx.NodeProto) -> Node:
        import onnx

        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto_node.attribute}
        for key, value in list(attrs.items()):
            if isinstance(value, bytes):
                attrs[key] = value.decode()
            elif isinstance(value, onnx.TensorProto):
                attrs[key] = onnx.numpy_helper.to_array(value)
        return Node(proto_node.op_type, proto_node.name, list(proto_node.input), list(proto_node.output), attrs)

    # -------------------------------------------------------------- shapes
    def _input_shapes(self, inputs: Sequence[onnx.ValueInfoProto]) -> None:
        wanted = self.input_shapes
        if wanted is None:
            wanted = {}
        elif not isinstance(wanted, dict):
            if len(inputs) != 1:
                raise AllsError([Diagnostic("ALS405", E, f"the model has {len(inputs)} inputs; give a shape for each "
                                            "as NAME=N,C,H,W", help="inputs: " + ", ".join(i.name for i in inputs))])
            wanted = {inputs[0].name: tuple(wanted)}
        names = {i.name for i in inputs}
        for key in wanted:
            if key not in names:
                raise AllsError([Diagnostic("ALS405", E, f"the model has no input `{key}`",
                                            help="inputs: " + ", ".join(sorted(names)))])
        for inp in inputs:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
            ranked = inp.type.tensor_type.HasField("shape")  # no shape at all: any rank, no size known
            if inp.name in wanted:
                shape = tuple(int(x) for x in wanted[inp.name])
                if ranked and len(shape) != len(dims):
                    raise AllsError([Diagnostic("ALS405", E, f"input `{inp.name}` has rank {len(dims)}; "
                                                f"the shape given has rank {len(shape)}")])
                dims, ranked = list(shape), True
            if dims and dims[0] is None:
                dims[0] = 1
            if not ranked or any(d is None or d <= 0 for d in dims):
                raise AllsError([Diagnostic("ALS405", E, f"input `{inp.name}` has an unknown size {dims}",
                                            help="give its shape with --input-shape / input_shapes=")])
            self.shapes[inp.name] = tuple(d for d in dims if d is not None)  # every size is known here

    def _infer_shapes(self) -> None:
        """ONNX shape inference with the input shapes fixed."""
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.proto)
        graph = model.graph
        kept = [i for i in graph.input if i.name not in self.consts]
        del graph.input[:]
        for inp in kept:
            shape = self.shapes[inp.name]
            graph.input.append(onnx.helper.make_tensor_value_info(inp.name, inp.type.tensor_type.elem_type, shape))
        del graph.value_info[:]
        outputs = [(o.name, o.type.tensor_type.elem_type) for o in graph.output]
        del graph.output[:]
        for out_name, elem_type in outputs:  # declared output shapes may be stale: infer them anew
            graph.output.append(onnx.helper.make_tensor_value_info(out_name, elem_type, None))
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception as exc:  # inference is best effort; layers compute their own shapes
            self._warn("ALS404", f"ONNX shape inference failed ({exc}); shapes come from the layers alone")
            return
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            dims = vi.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(d.dim_value for d in dims)

    # ----------------------------------------------------------- constants
    def _fold_constants(self, nodes: list[Node]) -> list[Node]:
        """The nodes that do not fold now (`alls.folding`); the layer pass asks again of each."""
        return [n for n in nodes if not self._fold(n)]

    def _fold(self, n: Node) -> bool:
        """Fold ``n`` if it is constant now; a fold over the limits leaves it a node, with its ALS025/ALS026."""
        try:
            folded = fold_node(n, self.consts, lambda t: self.consts.get(self.resolve(t)),
                               lambda t: self.shape(t) or None, self.opset, self.limits)
        except LimitExceeded as exc:
            if exc.diagnostic not in self.diagnostics:
                self.diagnostics.append(exc.diagnostic)
            return False
        if folded:
            for t in n.inputs:  # a folded reader no longer holds its source's layer apart
                source = self.resolve(t) if t else ""
                if self.consumers[source] > 0:
                    self.consumers[source] -= 1
        return folded

    # -------------------------------------------------------------- layers
    def resolve(self, tensor: str) -> str:
        while tensor in self.alias_of:
            tensor = self.alias_of[tensor]
        return tensor

    def shape(self, tensor: str) -> tuple[int, ...]:
        tensor = self.resolve(tensor)
        if tensor in self.shapes:
            return self.shapes[tensor]
        if tensor in self.consts:
            return tuple(self.consts[tensor].shape)
        return ()

    def add(self, draft: Draft) -> Draft:
        self.drafts.append(draft)
        self.producer[draft.output] = draft
        return draft

    def _layer(self, n: Node) -> None:
        if self._fold(n):  # constant only now that the layers before it have their shapes
            return
        handler = HANDLERS.get(n.op)
        data_in = [self.resolve(i) for i in n.inputs if i and self.resolve(i) not in self.consts]
        if n.outputs and n.outputs[0] not in self.shapes and all(self.shape(t) for t in data_in):
            self._infer_node_shapes(n)
        if handler is None:
            self._unsupported(n, data_in, f"no layer for the ONNX op `{n.op}`")
            return
        problem = handler(self, n, data_in)
        if problem:
            self._unsupported(n, data_in, problem)

    def _infer_node_shapes(self, n: Node) -> None:
        """ONNX shape inference of one node whose whole-model inference gave no shape, with the
        constants folded since (a Reshape to a shape that a folded shape subgraph computed)."""
        import onnx

        try:  # best effort, like _infer_shapes
            inputs, inits = [], []
            for tensor in dict.fromkeys(t for t in n.inputs if t):
                source = self.resolve(tensor)
                if source in self.consts:
                    inits.append(onnx.numpy_helper.from_array(np.asarray(self.consts[source]), tensor))
                else:
                    shape = self.shape(source)
                    inputs.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, shape))
            node = proto_node(n)
            outputs = [onnx.helper.make_empty_tensor_value_info(o) for o in n.outputs if o]
            graph = onnx.helper.make_graph([node], "infer", inputs, outputs, initializer=inits)
            model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", max(self.opset, 9))])
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:
            return
        for vi in inferred.graph.output:
            dims = vi.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                self.shapes.setdefault(vi.name, tuple(d.dim_value for d in dims))

    def _unsupported(self, n: Node, data_in: list[str], why: str, code: str = "ALS401") -> None:
        kind = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", n.op).lower()  # LSTM -> lstm, ConstantOfShape -> constant_of_shape
        outputs = [o for o in n.outputs if o] or [f"{n.name or n.op}:{len(self.drafts)}"]  # an LSTM may omit its first
        draft = self.add(Draft(kind, [n.op], data_in, outputs[0], aliases_of(n), supported=False, node_name=n.name))
        draft.attrs["reason"] = why
        if code != "ALS401":
            draft.attrs["code"] = code
        for extra in outputs[1:]:
            self.alias_of[extra] = outputs[0]

    def refuse(self, n: Node, data_in: list[str], code: str, why: str) -> None:
        """``n`` becomes an unsupported layer reported with ``code`` (a form its handler knows and
        names with its own code) instead of ALS401."""
        self._unsupported(n, data_in, why, code)

    # ------------------------------------------------------- for the handlers
    def single_consumer_producer(self, tensor: str, kinds: Collection[str]) -> Draft | None:
        """The supported draft of one of ``kinds`` that makes ``tensor``, when nothing else reads it
        (a node may fold into it), else None."""
        draft = self.producer.get(tensor)
        if draft is None or not draft.supported or draft.kind not in kinds or self.consumers[tensor] != 1:
            return None
        return draft

    def fold_into(self, draft: Draft, n: Node) -> None:
        """``n`` disappears into ``draft``: its output now names the draft's."""
        draft.ops.append(n.op)
        draft.last_node = n.name
        draft.aliases.extend(aliases_of(n))
        self.alias_of[n.outputs[0]] = draft.output
        self.consumers[draft.output] = self.consumers[n.outputs[0]]  # n was its one reader

    def const_scalar(self, tensor: str, default: float) -> float:
        """The one number of constant ``tensor``; ``default`` when there is no such input or it is not one number."""
        if not tensor:
            return default
        value = scalar(self.consts.get(self.resolve(tensor)))
        return value if value is not None else default

    def const_ints(self, n: Node, index: int, attr: str) -> list[int] | Literal[False] | None:
        """Integers given as attribute ``attr`` (older opsets) or as constant input ``index``: a list,
        None when not given, False when given but not constant."""
        if attr in n.attrs:
            return [int(v) for v in np.atleast_1d(n.attrs[attr])]
        if len(n.inputs) > index and n.inputs[index]:
            value = self.consts.get(self.resolve(n.inputs[index]))
            return False if value is None else [int(v) for v in np.asarray(value).reshape(-1)]
        return None

    def moved(self, n: Node, data_in: Sequence[str], kind: str, out_shape: tuple[int, ...], attrs: dict[str, Any],
              output: str = "", aliases: list[str] | None = None) -> None:
        """A layer that only moves codes; its shape is known here even where ONNX inference gave none."""
        output = output or n.outputs[0]
        self.shapes.setdefault(output, tuple(out_shape))
        self.add(Draft(kind, [n.op], list(data_in), output, aliases_of(n) if aliases is None else aliases,
                       node_name=n.name, attrs=attrs))

    # --------------------------------------------------------------- names
    def _named(self) -> Graph:
        """Name the layers as Hailo's parser does (`alls.naming`) and list them in that order."""
        nodes = [NamingNode(d.output, tuple(t for t in d.inputs if t in self.producer), d.kind, d.node_name, i)
                 for i, d in enumerate(self.drafts)]
        order, short, ties = number_layers(nodes)
        names = {key: f"{self.net}/{name}" for key, name in short.items()}
        drafts = {d.output: d for d in self.drafts}
        layers = []
        for draft in (drafts[key] for key in order):
            name = names[draft.output]
            inputs = tuple(names.get(t, t) for t in draft.inputs)
            input_shapes = tuple(self.shape(t) for t in draft.inputs)
            if draft.kind == "output_layer":  # its own tensor's: an unsupported node's second output is not its first
                source = self.producer.get(draft.inputs[0]) if draft.inputs else None
                guess = input_shapes[0] if input_shapes and (source is None or source.supported) else ()
                out_shape = self.shapes.get(draft.aliases[0]) or guess
            else:
                out_shape = self.shape(draft.output) or computed_shape(draft, input_shapes)
                self.shapes.setdefault(draft.output, out_shape)
                conflict = shape_conflict(draft, input_shapes, tuple(out_shape))
                if conflict:
                    draft.supported, draft.attrs = False, {**draft.attrs, "reason": conflict}
            for value in draft.params.values():
                value.setflags(write=False)
            layer = Layer(
                name=name, kind=draft.kind, op="+".join(draft.ops), inputs=inputs, input_shapes=input_shapes,
                output_shape=tuple(out_shape), aliases=tuple(dict.fromkeys(a for a in draft.aliases if a)),
                tensors=(draft.output,), activation=_activation(draft.activation), activation_params=draft.activation_params,
                params=draft.params, attrs=draft.attrs, macs=macs(draft, input_shapes, tuple(out_shape)),
                supported=draft.supported, end_node=draft.last_node or draft.node_name,
            )
            layers.append(layer)
            if not draft.supported:
                node = f"node `{draft.node_name}`" if draft.node_name else f"the node producing `{draft.output}`"
                code = draft.attrs.get("code", "ALS401")
                self.diagnostics.append(Diagnostic(
                    code, E, f"{node} (op `{draft.ops[0]}`, layer `{name}`): {draft.attrs['reason']}",
                    help=f"the layer is listed but cannot be quantized or emulated; `alls explain {code}`",
                ))
        return Graph(self.net, tuple(layers), tuple(self.diagnostics), self.opset,
                     tie_numbered=frozenset(names[k] for k in ties),
                     order_disputed=frozenset(names[k] for k in disputed_layers(nodes)))


def _activation(name: str | None) -> Activation | None:
    """The draft's activation as `Layer` holds it (the importer names it by its word: ``"relu6"``)."""
    return Activation(name) if name is not None else None
