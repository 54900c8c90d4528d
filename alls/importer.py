"""Import an ONNX model as a layer `Graph` (opsets 9 to 21).

The import runs in four passes over plain data:

1. *constants*: initializers, Constant nodes, and every node whose inputs
   are all constant (shape subgraphs: Shape of a static tensor, Gather,
   Slice, Cast, Concat, Unsqueeze, ...) evaluated once with `onnx.reference`
   (`alls.folding`; asked again of each node in pass 3, once the layers
   before it have their shapes);
2. *patterns*: HardSwish written as ``x * HardSigmoid(x)`` or
   ``x * Clip(x + 3, 0, 6) / 6`` and SiLU written as ``x * Sigmoid(x)`` become
   one activation node each;
3. *layers*: each remaining node becomes a layer, is folded into the layer
   before it (BatchNormalization into a conv or dense layer, an activation
   into the layer it follows, a constant bias Add into a dense layer), or
   vanishes (Identity, Dropout);
4. *names*: Hailo-style names counted per kind in topological order.

An op it cannot handle becomes a layer marked unsupported, with an ALS401
diagnostic naming the node, the op and the layer; the rest still loads.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from alls.cut import Cut, cut_model, suggest_end_nodes
from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.folding import fold_node
from alls.graph import Graph, Layer, per_channel
from alls.limits import DEFAULT, Limits, LimitExceeded, check_limits
from alls.naming import NamingNode, disputed_layers, number_layers
from alls.validate import check_input_shapes, validate

__all__ = ["load_model"]

E, W = Severity.ERROR, Severity.WARNING
_MIN_OPSET, _MAX_OPSET = 9, 21
_FUSE_INTO = {"conv", "dw", "deconv", "fc", "batch_norm", "ew_add", "ew_sub", "ew_mult"}


def load_model(model, input_shapes: dict[str, tuple[int, ...]] | tuple[int, ...] | None = None,
               name: str | None = None, start_nodes=(), end_nodes=(), *, limits: Limits | None = None) -> Graph:
    """Import ``model`` (a path or an `onnx.ModelProto`) as a `Graph`.

    ``input_shapes`` overrides fixed input shapes: a shape for the one input,
    or ``{input name: shape}``. ``name`` is the network scope (default: the
    file's stem, else the graph's name). ``start_nodes``/``end_nodes`` cut the
    graph as Hailo's parser does (`alls.cut`): only what lies between them is
    imported. Raises `AllsError` when the model cannot be read (ALS402), is
    unsound (ALS440-ALS446: `alls.validate`, before anything else), exceeds
    ``limits`` (`alls.Limits`), or for a bad cut (ALS406-ALS408); everything
    else is a diagnostic on the graph.
    """
    limits = check_limits(limits)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be str or None, not {type(name).__name__}")
    check_input_shapes(input_shapes, limits)
    proto, default_name, folder = _read(model)
    validate(proto, limits, folder)
    net = _scope_name(name or default_name or proto.graph.name or "net")
    cut = Cut(tuple(start_nodes or ()), tuple(end_nodes or ()))
    if cut:
        proto = cut_model(proto, cut, input_shapes)
        if cut.start_nodes:  # the new inputs carry the shapes inferred from the original ones
            names = {i.name for i in proto.graph.input}
            input_shapes = {k: v for k, v in input_shapes.items() if k in names} or None \
                if isinstance(input_shapes, dict) else None
    graph = _Importer(proto, net, input_shapes, limits).run()
    note = suggest_end_nodes(graph)
    if note is not None:
        graph = dataclasses.replace(graph, diagnostics=graph.diagnostics + (note,))
    return dataclasses.replace(graph, start_nodes=cut.start_nodes, end_nodes=cut.end_nodes) if cut else graph


def _read(model):
    """(proto, default name, folder of its external data); external data are left for `validate` to load."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, None, None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"a model is a path or an onnx.ModelProto, not {type(model).__name__}")
    path = os.fspath(model)
    try:
        proto = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise AllsError([Diagnostic("ALS402", E, f"cannot read model `{path}`: no such file")]) from None
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError, ...
        raise AllsError([Diagnostic("ALS402", E, f"`{path}` is not a readable ONNX model: {exc}",
                                    help="check that the file is complete and is an .onnx model")]) from None
    if not proto.graph.node:
        raise AllsError([Diagnostic("ALS402", E, f"`{path}` holds no ONNX graph",
                                    help="check that the file is complete and is an .onnx model")])
    return proto, os.path.splitext(os.path.basename(path))[0], os.path.dirname(os.path.abspath(path))


def _scope_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", text) or "net"


@dataclass
class _Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)  # of the nodes a pattern rewrite merged into it


@dataclass
class _Draft:
    """A layer under construction (names are given at the end)."""

    kind: str
    ops: list[str]
    inputs: list[str]  # tensor names
    output: str  # tensor name
    aliases: list[str]
    params: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    activation: str | None = None
    activation_params: tuple = ()
    supported: bool = True
    node_name: str = ""
    last_node: str = ""  # the ONNX node whose output the layer's output is, after fusions


class _Importer:
    def __init__(self, proto, net: str, input_shapes, limits: Limits = DEFAULT):
        self.proto = proto
        self.limits = limits
        self.net = net
        self.input_shapes = input_shapes
        self.diagnostics: list[Diagnostic] = []
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.drafts: list[_Draft] = []
        self.producer: dict[str, _Draft] = {}  # tensor -> draft that produces it
        self.alias_of: dict[str, str] = {}  # tensor -> tensor it equals (Identity, Dropout, folded nodes)
        self.consumers: Counter = Counter()

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
        nodes = _rewrite_patterns(nodes, self.consts, [o.name for o in graph.output])
        for n in nodes:
            for t in n.inputs:
                self.consumers[t] += 1
        for out in graph.output:  # a graph output is read too: nothing may fold into the layer making it
            self.consumers[out.name] += 1
        for i, inp in enumerate(inputs):
            draft = _Draft("input_layer", ["Input"], [], inp.name, [inp.name])
            self._add(draft)
        for n in nodes:
            self._layer(n)
        for out in graph.output:
            source = self._resolve(out.name)
            if source in self.consts:
                self._warn("ALS404", f"output `{out.name}` is a constant; it is left out of the graph")
                continue
            self._add(_Draft("output_layer", ["Output"], [source], out.name + ":out", [out.name]))
        return self._named()

    def _warn(self, code: str, message: str, severity=W, help_text: str = ""):
        self.diagnostics.append(Diagnostic(code, severity, message, help=help_text))

    def _node(self, proto_node) -> _Node:
        import onnx

        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto_node.attribute}
        for key, value in list(attrs.items()):
            if isinstance(value, bytes):
                attrs[key] = value.decode()
            elif isinstance(value, onnx.TensorProto):
                attrs[key] = onnx.numpy_helper.to_array(value)
        return _Node(proto_node.op_type, proto_node.name, list(proto_node.input), list(proto_node.output), attrs)

    # -------------------------------------------------------------- shapes
    def _input_shapes(self, inputs) -> None:
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
            self.shapes[inp.name] = tuple(dims)

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
    def _fold_constants(self, nodes: list[_Node]) -> list[_Node]:
        """The nodes that do not fold now (`alls.folding`); the layer pass asks again of each."""
        return [n for n in nodes if not self._fold(n)]

    def _fold(self, n: _Node) -> bool:
        """Fold ``n`` if it is constant now; a fold over the limits leaves it a node, with its ALS025/ALS026."""
        try:
            folded = fold_node(n, self.consts, lambda t: self.consts.get(self._resolve(t)),
                               lambda t: self._shape(t) or None, self.opset, self.limits)
        except LimitExceeded as exc:
            if exc.diagnostic not in self.diagnostics:
                self.diagnostics.append(exc.diagnostic)
            return False
        if folded:
            for t in n.inputs:  # a folded reader no longer holds its source's layer apart
                source = self._resolve(t) if t else ""
                if self.consumers[source] > 0:
                    self.consumers[source] -= 1
        return folded

    # -------------------------------------------------------------- layers
    def _resolve(self, tensor: str) -> str:
        while tensor in self.alias_of:
            tensor = self.alias_of[tensor]
        return tensor

    def _shape(self, tensor: str) -> tuple[int, ...]:
        tensor = self._resolve(tensor)
        if tensor in self.shapes:
            return self.shapes[tensor]
        if tensor in self.consts:
            return tuple(self.consts[tensor].shape)
        return ()

    def _add(self, draft: _Draft) -> _Draft:
        self.drafts.append(draft)
        self.producer[draft.output] = draft
        return draft

    def _layer(self, n: _Node) -> None:
        if self._fold(n):  # constant only now that the layers before it have their shapes
            return
        handler = getattr(self, f"_op_{n.op}", None)
        data_in = [self._resolve(i) for i in n.inputs if i and self._resolve(i) not in self.consts]
        if n.outputs and n.outputs[0] not in self.shapes and all(self._shape(t) for t in data_in):
            self._infer_node_shapes(n)
        if handler is None:
            self._unsupported(n, data_in, f"no layer for the ONNX op `{n.op}`")
            return
        problem = handler(n, data_in)
        if problem:
            self._unsupported(n, data_in, problem)

    def _infer_node_shapes(self, n: _Node) -> None:
        """ONNX shape inference of one node whose whole-model inference gave no shape, with the
        constants folded since (a Reshape to a shape that a folded shape subgraph computed)."""
        import onnx

        try:  # best effort, like _infer_shapes
            inputs, inits = [], []
            for tensor in dict.fromkeys(t for t in n.inputs if t):
                source = self._resolve(tensor)
                if source in self.consts:
                    inits.append(onnx.numpy_helper.from_array(np.asarray(self.consts[source]), tensor))
                else:
                    shape = self._shape(source)
                    inputs.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, shape))
            node = _proto_node(n)
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

    def _unsupported(self, n: _Node, data_in: list[str], why: str) -> None:
        kind = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", n.op).lower()  # LSTM -> lstm, ConstantOfShape -> constant_of_shape
        outputs = [o for o in n.outputs if o] or [f"{n.name or n.op}:{len(self.drafts)}"]  # an LSTM may omit its first
        draft = self._add(_Draft(kind, [n.op], data_in, outputs[0], _aliases(n), supported=False, node_name=n.name))
        draft.attrs["reason"] = why
        for extra in outputs[1:]:
            self.alias_of[extra] = outputs[0]

    def _single_consumer_producer(self, tensor: str, kinds) -> _Draft | None:
        draft = self.producer.get(tensor)
        if draft is None or not draft.supported or draft.kind not in kinds or self.consumers[tensor] != 1:
            return None
        return draft

    def _fold_into(self, draft: _Draft, n: _Node) -> None:
        """``n`` disappears into ``draft``: its output now names the draft's."""
        draft.ops.append(n.op)
        draft.last_node = n.name
        draft.aliases.extend(_aliases(n))
        self.alias_of[n.outputs[0]] = draft.output
        self.consumers[draft.output] = self.consumers[n.outputs[0]]  # n was its one reader

    # Identity and Dropout vanish.
    def _op_Identity(self, n, data_in):
        source = self._resolve(n.inputs[0])
        self.alias_of[n.outputs[0]] = source
        self.consumers[source] += self.consumers[n.outputs[0]] - 1

    def _op_Dropout(self, n, data_in):
        training = self._resolve(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else ""
        if training and (training not in self.consts or bool(self.consts[training])):
            return "Dropout in training mode (or with a computed `training_mode`) drops at random; it has no layer"
        if len(n.outputs) > 1 and n.outputs[1] and self.consumers[n.outputs[1]]:
            return "the mask output of Dropout has no layer"
        return self._op_Identity(n, data_in)

    def _op_Conv(self, n, data_in):
        weight = self.consts.get(self._resolve(n.inputs[1])) if len(n.inputs) > 1 else None
        if weight is None or len(data_in) != 1:
            return "the weights are not constant"
        bias = self.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
        in_shape = self._shape(data_in[0])
        group = int(n.attrs.get("group", 1))
        c_in, c_out = (in_shape[1] if len(in_shape) > 1 else weight.shape[1] * group), weight.shape[0]
        kind = "dw" if group > 1 and group == c_in and c_out % group == 0 else "conv"
        attrs = _conv_attrs(n, weight.shape[2:], in_shape)
        attrs["group"] = group
        draft = _Draft(kind, ["Conv"], data_in, n.outputs[0], _aliases(n), node_name=n.name, attrs=attrs)
        draft.params["weight"] = weight.astype(np.float32)
        draft.params["bias"] = (bias if bias is not None else np.zeros(c_out)).astype(np.float32)
        self._add(draft)

    def _op_ConvTranspose(self, n, data_in):
        weight = self.consts.get(self._resolve(n.inputs[1])) if len(n.inputs) > 1 else None
        if weight is None or len(data_in) != 1:
            return "the weights are not constant"
        group = int(n.attrs.get("group", 1))
        bias = self.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
        attrs = _conv_attrs(n, weight.shape[2:], self._shape(data_in[0]))
        attrs["group"] = group
        for key in ("output_padding", "output_shape"):
            if key in n.attrs:
                attrs[key] = tuple(n.attrs[key])
        draft = _Draft("deconv", ["ConvTranspose"], data_in, n.outputs[0], _aliases(n), node_name=n.name, attrs=attrs)
        draft.params["weight"] = weight.astype(np.float32)
        draft.params["bias"] = (bias if bias is not None else np.zeros(weight.shape[1] * group)).astype(np.float32)
        self._add(draft)

    def _op_Gemm(self, n, data_in):
        weight = self.consts.get(self._resolve(n.inputs[1]))
        if weight is None or len(data_in) != 1 or n.attrs.get("transA", 0):
            return "only x·W with a constant W is a dense layer"
        w = weight.T if n.attrs.get("transB", 0) else weight  # (in, out)
        w = w * float(n.attrs.get("alpha", 1.0))
        c = self.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
        if c is not None and (c.ndim > 2 or c.size not in (1, w.shape[1]) or (c.ndim == 2 and c.shape[0] != 1)):
            return f"a bias C of shape {tuple(c.shape)} differs from row to row; a dense layer's bias is one per output"
        bias = np.broadcast_to(c * float(n.attrs.get("beta", 1.0)), (1, w.shape[1]))[0] if c is not None else np.zeros(w.shape[1])
        self._dense(n, data_in, w, bias)

    def _op_MatMul(self, n, data_in):
        weight = self.consts.get(self._resolve(n.inputs[1]))
        if weight is None or weight.ndim != 2 or len(data_in) != 1:
            return "only x·W with a constant 2-D W is a dense layer"
        self._dense(n, data_in, weight, np.zeros(weight.shape[1]))

    def _dense(self, n, data_in, w_in_out, bias):
        source, absorbed = self._unflatten(data_in[0])
        draft = _Draft("fc", [n.op], [source], n.outputs[0], _aliases(n) + absorbed, node_name=n.name)
        draft.params["weight"] = np.ascontiguousarray(w_in_out.T).astype(np.float32)  # (out, in)
        draft.params["bias"] = np.asarray(bias, dtype=np.float32).copy()
        self._add(draft)

    def _unflatten(self, tensor: str) -> tuple[str, list[str]]:
        """A Flatten/Reshape [N,C,1,1] -> [N,C] in front of a dense layer is absorbed: (source, its aliases)."""
        draft = self._single_consumer_producer(tensor, ("format_conversion",))
        if draft is not None and draft.attrs.get("squeeze_only"):
            self.drafts.remove(draft)
            del self.producer[draft.output]
            return draft.inputs[0], draft.aliases
        return tensor, []

    def _op_BatchNormalization(self, n, data_in):
        if n.attrs.get("training_mode", 0) or any(self.consumers[o] for o in n.outputs[1:] if o):
            return "BatchNormalization in training mode (batch statistics) has no layer"
        scale, bias, mean, var = (self.consts.get(self._resolve(i)) for i in n.inputs[1:5])
        if any(a is None for a in (scale, bias, mean, var)):
            return "the statistics are not constant"
        a = scale / np.sqrt(var + float(n.attrs.get("epsilon", 1e-5)))
        b = bias - mean * a
        draft = self._single_consumer_producer(data_in[0], ("conv", "dw", "deconv", "fc"))
        if draft is not None and draft.kind == "fc" and len(self._shape(data_in[0])) != 2:
            draft = None  # BN normalizes axis 1; an fc's features are its last axis
        if draft is not None and draft.activation is None:
            _scale_outputs(draft, a)
            draft.params["bias"] = (draft.params["bias"] + b).astype(np.float32)
            self._fold_into(draft, n)
            return None
        draft = _Draft("batch_norm", ["BatchNormalization"], data_in, n.outputs[0], _aliases(n), node_name=n.name)
        draft.params["scale"], draft.params["shift"] = a.astype(np.float32), b.astype(np.float32)
        self._add(draft)

    def _activation(self, n, data_in, name: str, params: tuple = ()):
        draft = self._single_consumer_producer(data_in[0], _FUSE_INTO)
        if draft is not None and draft.activation is None:
            draft.activation, draft.activation_params = name, params
            self._fold_into(draft, n)
            return None
        new = _Draft("activation", [n.op], data_in, n.outputs[0], _aliases(n), node_name=n.name)
        new.activation, new.activation_params = name, params
        self._add(new)

    def _op_Relu(self, n, data_in):
        return self._activation(n, data_in, "relu")

    def _op_Clip(self, n, data_in):
        if len(data_in) != 1:
            return "the bounds are not constant"
        lo = n.attrs.get("min", self._const_scalar(n.inputs[1] if len(n.inputs) > 1 else "", -np.inf))
        hi = n.attrs.get("max", self._const_scalar(n.inputs[2] if len(n.inputs) > 2 else "", np.inf))
        if lo == 0 and hi == 6:
            return self._activation(n, data_in, "relu6")
        if lo == 0 and hi == np.inf:
            return self._activation(n, data_in, "relu")
        return self._activation(n, data_in, "clip", (("min", float(lo)), ("max", float(hi))))

    def _const_scalar(self, tensor: str, default: float) -> float:
        if not tensor:
            return default
        value = _scalar(self.consts.get(self._resolve(tensor)))
        return value if value is not None else default

    def _op_LeakyRelu(self, n, data_in):
        return self._activation(n, data_in, "leaky_relu", (("alpha", float(n.attrs.get("alpha", 0.01))),))

    def _op_PRelu(self, n, data_in):
        slope = self.consts.get(self._resolve(n.inputs[1]))
        if slope is None:
            return "the slope is not constant"
        result = self._activation(n, data_in, "prelu")
        owner = self.producer[self._resolve(n.outputs[0])]
        owner.params["prelu_slope"] = np.asarray(slope, dtype=np.float32).reshape(-1)
        return result

    def _op_Sigmoid(self, n, data_in):
        return self._activation(n, data_in, "sigmoid")

    def _op_Tanh(self, n, data_in):
        return self._activation(n, data_in, "tanh")

    def _op_Elu(self, n, data_in):
        return self._activation(n, data_in, "elu", (("alpha", float(n.attrs.get("alpha", 1.0))),))

    def _op_HardSigmoid(self, n, data_in):
        params = (("alpha", float(n.attrs.get("alpha", 0.2))), ("beta", float(n.attrs.get("beta", 0.5))))
        return self._activation(n, data_in, "hard_sigmoid", params)

    def _op_HardSwish(self, n, data_in):
        return self._activation(n, data_in, "hardswish")

    def _op_Swish(self, n, data_in):  # made by _rewrite_patterns from x * Sigmoid(x)
        return self._activation(n, data_in, "silu")

    def _elementwise(self, n, data_in, kind: str):
        const_in = [self._resolve(i) for i in n.inputs if self._resolve(i) in self.consts]
        if len(data_in) == 2:
            shapes = [self._shape(t) for t in data_in]
            self._add(_Draft(kind, [n.op], data_in, n.outputs[0], _aliases(n), node_name=n.name,
                             attrs={"broadcast": shapes[0] != shapes[1]}))
            return None
        if len(data_in) != 1 or len(const_in) != 1:
            return "elementwise ops take two tensors, or one tensor and a constant"
        const = self.consts[const_in[0]].astype(np.float32)
        if kind == "ew_sub" and self._resolve(n.inputs[0]) in self.consts:
            kind, const = "ew_rsub", const
        if kind in ("ew_add", "ew_sub"):
            producer = self._single_consumer_producer(data_in[0], ("conv", "dw", "deconv", "fc"))
            channels = producer.params["bias"].shape[0] if producer is not None else 0
            if producer is not None and producer.activation is None and per_channel(const, channels, self._shape(data_in[0])):
                sign = 1.0 if kind == "ew_add" else -1.0
                producer.params["bias"] = (producer.params["bias"] + sign * const.reshape(-1)[:channels]
                                           if const.size == channels else producer.params["bias"] + sign * float(const.reshape(-1)[0]))
                producer.params["bias"] = producer.params["bias"].astype(np.float32)
                self._fold_into(producer, n)
                return None
        if kind == "ew_div":
            kind, const = "ew_mult", (1.0 / const).astype(np.float32)
        if kind == "ew_mult":  # a scale per output channel (or one for all) folds into the weights and bias
            producer = self._single_consumer_producer(data_in[0], ("conv", "dw", "deconv", "fc"))
            channels = producer.params["bias"].shape[0] if producer is not None else 0
            if (producer is not None and producer.activation is None
                    and (producer.kind != "fc" or len(self._shape(data_in[0])) == 2)
                    and per_channel(const, channels, self._shape(data_in[0]))):
                scale = const.reshape(-1)[:channels] if const.size == channels else np.full(channels, const.reshape(-1)[0])
                _scale_outputs(producer, scale.astype(np.float32))
                self._fold_into(producer, n)
                return None
        if kind == "ew_rsub":
            kind = "ew_sub"
        draft = _Draft(kind, [n.op], data_in, n.outputs[0], _aliases(n), node_name=n.name,
                       attrs={"const_first": self._resolve(n.inputs[0]) in self.consts})
        draft.params["const"] = const
        self._add(draft)

    def _op_Add(self, n, data_in):
        return self._elementwise(n, data_in, "ew_add")

    def _op_Sum(self, n, data_in):  # Caffe2's residual add: a Sum of two is an Add, of one an Identity
        if len(n.inputs) == 1:
            return self._op_Identity(n, data_in)
        if len(n.inputs) != 2:
            return f"a Sum of {len(n.inputs)} inputs has no layer (of two it is an add)"
        return self._elementwise(n, data_in, "ew_add")

    def _op_Sub(self, n, data_in):
        return self._elementwise(n, data_in, "ew_sub")

    def _op_Mul(self, n, data_in):
        return self._elementwise(n, data_in, "ew_mult")

    def _op_Div(self, n, data_in):
        if len(data_in) == 2 or self._resolve(n.inputs[0]) in self.consts:
            return "division by a tensor has no layer"
        return self._elementwise(n, data_in, "ew_div")

    def _op_Concat(self, n, data_in):
        if len(data_in) != len([i for i in n.inputs if i]):
            return "a concat of constants and tensors has no layer"
        self._add(_Draft("concat", ["Concat"], data_in, n.outputs[0], _aliases(n), node_name=n.name,
                         attrs={"axis": int(n.attrs.get("axis", 1))}))

    def _pool(self, n, data_in, kind, is_global=False):
        in_shape = self._shape(data_in[0])
        if is_global:
            attrs = {"global": True, "kernel_shape": tuple(in_shape[2:]), "strides": (1, 1), "pads": (0, 0, 0, 0)}
        else:
            attrs = _conv_attrs(n, tuple(n.attrs["kernel_shape"]), in_shape)
            attrs["ceil_mode"] = int(n.attrs.get("ceil_mode", 0))
            attrs["count_include_pad"] = int(n.attrs.get("count_include_pad", 0))
        self._add(_Draft(kind, [n.op], data_in, n.outputs[0], _aliases(n), node_name=n.name, attrs=attrs))

    def _op_MaxPool(self, n, data_in):
        if len(n.outputs) > 1 and n.outputs[1]:
            return "MaxPool with an indices output has no layer"
        return self._pool(n, data_in, "maxpool")

    def _op_AveragePool(self, n, data_in):
        return self._pool(n, data_in, "avgpool")

    def _op_GlobalAveragePool(self, n, data_in):
        return self._pool(n, data_in, "avgpool", is_global=True)

    def _op_GlobalMaxPool(self, n, data_in):
        return self._pool(n, data_in, "maxpool", is_global=True)

    def _op_Resize(self, n, data_in):
        mode = n.attrs.get("mode", "nearest")
        if mode not in ("nearest", "linear", "bilinear"):
            return f"resize mode `{mode}` has no layer"
        in_shape, out_shape = self._shape(data_in[0]), self._shape(n.outputs[0])
        if not out_shape:
            sizes = scales = None
            for i in n.inputs[1:]:
                value = self.consts.get(self._resolve(i)) if i else None
                if value is not None and value.size == len(in_shape):
                    sizes, scales = (value, scales) if value.dtype.kind in "iu" else (sizes, value)
            if sizes is not None:
                out_shape = tuple(int(v) for v in sizes)
            elif scales is not None:
                out_shape = tuple(int(np.floor(d * s)) for d, s in zip(in_shape, scales))
            else:
                return "the output size is not constant"
            self.shapes[n.outputs[0]] = out_shape
        default_ctm = "half_pixel" if n.op == "Resize" and self.opset >= 11 else "asymmetric"
        attrs = {"mode": "nearest" if mode == "nearest" else "bilinear",
                 "coordinate_transformation_mode": n.attrs.get("coordinate_transformation_mode", default_ctm),
                 "nearest_mode": n.attrs.get("nearest_mode", "round_prefer_floor")}
        self._add(_Draft("resize", [n.op], data_in, n.outputs[0], _aliases(n), node_name=n.name, attrs=attrs))

    _op_Upsample = _op_Resize

    def _op_Softmax(self, n, data_in):
        axis = int(n.attrs.get("axis", 1 if self.opset < 13 else -1))
        self._add(_Draft("softmax", ["Softmax"], data_in, n.outputs[0], _aliases(n), node_name=n.name,
                         attrs={"axis": axis}))

    def _view(self, n, data_in):
        if len(data_in) != 1:
            return "the target shape or axes are not constant"
        in_shape, out_shape = self._shape(data_in[0]), self._shape(n.outputs[0])
        squeeze_only = (len(in_shape) == 4 and in_shape[2:] == (1, 1) and out_shape == in_shape[:2])
        attrs = {"op": n.op, "squeeze_only": squeeze_only, "shape": out_shape}
        if n.op == "Transpose":
            attrs["perm"] = tuple(n.attrs.get("perm", ()))
        self._add(_Draft("format_conversion", [n.op], data_in, n.outputs[0], _aliases(n), node_name=n.name,
                         attrs=attrs))

    _op_Reshape = _op_Flatten = _op_Squeeze = _op_Unsqueeze = _op_Transpose = _view

    # ------------------------------------------------------- data movement
    def _const_ints(self, n, index: int, attr: str):
        """Integers given as attribute ``attr`` (older opsets) or as constant input ``index``: a list,
        None when not given, False when given but not constant."""
        if attr in n.attrs:
            return [int(v) for v in np.atleast_1d(n.attrs[attr])]
        if len(n.inputs) > index and n.inputs[index]:
            value = self.consts.get(self._resolve(n.inputs[index]))
            return False if value is None else [int(v) for v in np.asarray(value).reshape(-1)]
        return None

    def _moved(self, n, data_in, kind: str, out_shape: tuple[int, ...], attrs: dict, output: str = "",
               aliases: list[str] | None = None) -> None:
        """A layer that only moves codes; its shape is known here even where ONNX inference gave none."""
        output = output or n.outputs[0]
        self.shapes.setdefault(output, tuple(out_shape))
        self._add(_Draft(kind, [n.op], list(data_in), output, _aliases(n) if aliases is None else aliases,
                         node_name=n.name, attrs=attrs))

    def _op_Slice(self, n, data_in):
        shape = self._shape(data_in[0]) if len(data_in) == 1 else ()
        starts, ends = self._const_ints(n, 1, "starts"), self._const_ints(n, 2, "ends")
        axes, steps = self._const_ints(n, 3, "axes"), self._const_ints(n, 4, "steps")
        if len(data_in) != 1 or any(v is False for v in (starts, ends, axes, steps)) or not starts or not ends:
            return "the starts, ends, axes or steps are not constant"
        if not shape:
            return "the input shape is unknown"
        axes = axes or list(range(len(starts)))
        steps = steps or [1] * len(starts)
        out, slices = list(shape), []
        for axis, start, end, step in zip(axes, starts, ends, steps):
            axis %= len(shape)
            if step == 0:
                return "a slice step of 0"
            bounds = _slice_bounds(start, end, step, shape[axis])
            if axis == 0:  # the whole batch, in order, is no slice (the layer runs on any number of images)
                if bounds[2] != 1 or len(range(*bounds)) != shape[0]:
                    return "a slice of the batch axis has no layer"
                continue
            out[axis] = len(range(*bounds))
            slices.append((axis, *bounds))
        if 0 in out:
            return "an empty slice has no layer"
        self._moved(n, data_in, "slice", tuple(out), {"slices": tuple(slices)})

    def _op_Split(self, n, data_in):
        shape = self._shape(data_in[0]) if len(data_in) == 1 else ()
        sizes = self._const_ints(n, 1, "split")
        if len(data_in) != 1 or sizes is False:
            return "the split sizes are not constant"
        if not shape:
            return "the input shape is unknown"
        axis = int(n.attrs.get("axis", 0)) % len(shape)
        if not sizes:
            parts = int(n.attrs.get("num_outputs", len(n.outputs)))
            step = -(-shape[axis] // parts)
            sizes = [min(step, shape[axis] - i * step) for i in range(parts)]
        if axis == 0 or sum(sizes) != shape[axis] or len(sizes) != len(n.outputs) or min(sizes) <= 0:
            return f"a split of axis {axis} ({shape[axis]}) into {sizes} has no layer"
        start = 0
        for i, (output, size) in enumerate(zip(n.outputs, sizes)):
            if output and self.consumers[output]:  # one layer per part that is read
                part = list(shape)
                part[axis] = size
                aliases = ([n.name] if i == 0 else []) + [output]
                self._moved(n, data_in, "feature_splitter", tuple(part),
                            {"slices": ((axis, start, start + size, 1),), "part": i}, output, aliases)
            start += size

    def _op_Pad(self, n, data_in):
        shape = self._shape(data_in[0]) if len(data_in) == 1 else ()
        pads, axes = self._const_ints(n, 1, "pads"), self._const_ints(n, 3, "axes")
        if len(data_in) != 1 or not pads or axes is False:
            return "the pads or the value are not constant"
        if not shape:
            return "the input shape is unknown"
        axes = [a % len(shape) for a in axes] if axes else list(range(len(shape)))
        per = [(0, 0)] * len(shape)
        for i, axis in enumerate(axes):
            per[axis] = (pads[i], pads[i + len(axes)])
        mode = n.attrs.get("mode", "constant")
        if mode not in ("constant", "reflect", "edge", "wrap"):
            return f"pad mode `{mode}` has no layer"
        if per[0] != (0, 0) or min(min(p) for p in per) < 0:
            return "a pad of the batch axis, or a negative pad (a crop), has no layer"
        value = n.attrs.get("value", self._const_scalar(n.inputs[2] if len(n.inputs) > 2 else "", 0.0))
        out = tuple(d + b + a for d, (b, a) in zip(shape, per))
        self._moved(n, data_in, "pad", out, {"pads": tuple(per), "mode": mode, "value": float(value)})

    def _op_DepthToSpace(self, n, data_in):
        shape, b = self._shape(data_in[0]), int(n.attrs.get("blocksize", 0))
        if len(shape) != 4 or b < 1 or shape[1] % (b * b):
            return "DepthToSpace of an NCHW tensor whose channels split into blocksize² parts is a layer"
        out = (shape[0], shape[1] // (b * b), shape[2] * b, shape[3] * b)
        self._moved(n, data_in, "depth_to_space", out, {"blocksize": b, "mode": n.attrs.get("mode", "DCR")})

    def _op_SpaceToDepth(self, n, data_in):
        shape, b = self._shape(data_in[0]), int(n.attrs.get("blocksize", 0))
        if len(shape) != 4 or b < 1 or shape[2] % b or shape[3] % b:
            return "SpaceToDepth of an NCHW tensor whose height and width split into blocks is a layer"
        out = (shape[0], shape[1] * b * b, shape[2] // b, shape[3] // b)
        self._moved(n, data_in, "space_to_depth", out, {"blocksize": b})

    def _reduce(self, n, data_in, kind: str):
        shape = self._shape(data_in[0]) if len(data_in) == 1 else ()
        axes = self._const_ints(n, 1, "axes")
        if len(data_in) != 1 or axes is False:
            return "the axes are not constant"
        if not shape:
            return "the input shape is unknown"
        if not axes and n.attrs.get("noop_with_empty_axes", 0):
            return self._op_Identity(n, data_in)
        axes = sorted({a % len(shape) for a in axes} if axes else range(len(shape)))
        if 0 in axes:
            return "a reduction over the batch axis has no layer"
        keepdims = int(n.attrs.get("keepdims", 1))
        out = tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)
        self._moved(n, data_in, kind, out, {"axes": tuple(axes), "keepdims": keepdims})

    def _op_Pow(self, n, data_in):  # YOLOv5's box decoding squares: (2·sigmoid(t))²
        exponent = self._const_scalar(n.inputs[1] if len(n.inputs) > 1 else "", float("nan"))
        if len(data_in) != 1 or exponent not in (1.0, 2.0):
            return "only a power of 1 or 2 by a constant exponent is a layer (a product of the tensor with itself)"
        if exponent == 1.0:
            return self._op_Identity(n, data_in)
        self._add(_Draft("ew_mult", [n.op], [data_in[0], data_in[0]], n.outputs[0], _aliases(n), node_name=n.name,
                         attrs={"broadcast": False}))

    def _op_ReduceMax(self, n, data_in):
        return self._reduce(n, data_in, "reduce_max")

    def _op_ReduceMean(self, n, data_in):
        return self._reduce(n, data_in, "reduce_mean")

    def _op_ReduceSum(self, n, data_in):
        return self._reduce(n, data_in, "reduce_sum")

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
            input_shapes = tuple(self._shape(t) for t in draft.inputs)
            if draft.kind == "output_layer":  # its own tensor's: an unsupported node's second output is not its first
                source = self.producer.get(draft.inputs[0]) if draft.inputs else None
                guess = input_shapes[0] if input_shapes and (source is None or source.supported) else ()
                out_shape = self.shapes.get(draft.aliases[0]) or guess
            else:
                out_shape = self._shape(draft.output) or _computed_shape(draft, input_shapes)
                self.shapes.setdefault(draft.output, out_shape)
                conflict = _shape_conflict(draft, input_shapes, tuple(out_shape))
                if conflict:
                    draft.supported, draft.attrs = False, {**draft.attrs, "reason": conflict}
            for value in draft.params.values():
                value.setflags(write=False)
            layer = Layer(
                name=name, kind=draft.kind, op="+".join(draft.ops), inputs=inputs, input_shapes=input_shapes,
                output_shape=tuple(out_shape), aliases=tuple(dict.fromkeys(a for a in draft.aliases if a)),
                tensors=(draft.output,), activation=draft.activation, activation_params=draft.activation_params,
                params=draft.params, attrs=draft.attrs, macs=_macs(draft, input_shapes, tuple(out_shape)),
                supported=draft.supported, end_node=draft.last_node or draft.node_name,
            )
            layers.append(layer)
            if not draft.supported:
                node = f"node `{draft.node_name}`" if draft.node_name else f"the node producing `{draft.output}`"
                self.diagnostics.append(Diagnostic(
                    "ALS401", E, f"{node} (op `{draft.ops[0]}`, layer `{name}`): {draft.attrs['reason']}",
                    help="the layer is listed but cannot be quantized or emulated; `alls explain ALS401`",
                ))
        return Graph(self.net, tuple(layers), tuple(self.diagnostics), self.opset,
                     tie_numbered=frozenset(names[k] for k in ties),
                     order_disputed=frozenset(names[k] for k in disputed_layers(nodes)))


# ------------------------------------------------------------------ helpers


def _proto_node(n: _Node):
    """``n`` as an ONNX node again; a tensor attribute (ConstantOfShape's ``value``) read as an array
    goes back as a tensor, not as a list of floats."""
    import onnx

    attrs = {k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in n.attrs.items()}
    return onnx.helper.make_node(n.op, n.inputs, n.outputs, **attrs)


def _aliases(n: _Node) -> list[str]:
    return [n.name] + [o for o in n.outputs if o] + n.aliases


def _conv_attrs(n: _Node, kernel: tuple[int, ...], in_shape: tuple[int, ...]) -> dict:
    """Strides, dilations and explicit pads (auto_pad resolved) of a conv or pool."""
    dims = len(kernel)
    strides = tuple(n.attrs.get("strides", (1,) * dims))
    dilations = tuple(n.attrs.get("dilations", (1,) * dims))
    pads = tuple(n.attrs.get("pads", (0,) * (2 * dims)))
    auto_pad = n.attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and len(in_shape) == dims + 2:
        begin, end = [], []
        for size, k, s, d in zip(in_shape[2:], kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = tuple(begin + end)
    elif auto_pad == "VALID":
        pads = (0,) * (2 * dims)
    return {"kernel_shape": tuple(int(k) for k in kernel), "strides": strides, "dilations": dilations, "pads": pads}


def _shape_conflict(draft: _Draft, input_shapes, out_shape: tuple[int, ...]) -> str:
    """Why a layer's shapes cannot hold together, or ``""``. ONNX shape inference does not check that
    a constant target shape (or a concat's parts) fits the inputs it is given; a model exported for
    one input size and imported at another would otherwise run on garbled shapes."""
    known = [s for s in input_shapes if s]
    if not draft.supported or not out_shape or len(known) != len(input_shapes) or not known:
        return ""
    if draft.kind == "format_conversion":
        values_in, values_out = math.prod(known[0]), math.prod(out_shape)
        if values_in != values_out:
            return (f"{draft.ops[0]} of {_dims(known[0])} ({values_in:,} values) to {_dims(out_shape)} "
                    f"({values_out:,}): a target shape fixed for another input shape")
    if draft.kind == "concat" and "axis" in draft.attrs:
        axis = draft.attrs["axis"] % len(out_shape)
        rest = {tuple(d for i, d in enumerate(s) if i != axis) for s in known if len(s) == len(out_shape)}
        if len(rest) != 1 or sum(s[axis] for s in known if len(s) == len(out_shape)) != out_shape[axis]:
            return f"parts {', '.join(_dims(s) for s in known)} do not join into {_dims(out_shape)} on axis {axis}"
    return ""


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def _computed_shape(draft: _Draft, input_shapes) -> tuple[int, ...]:
    """The output shape when ONNX inference gave none (a fallback); unknown, ``()``, for an
    unsupported layer, whose output need not be shaped like its input."""
    if not input_shapes or not input_shapes[0] or not draft.supported:
        return ()
    shape = input_shapes[0]
    if draft.kind in ("conv", "dw") and len(shape) == 4:
        k, s, d, p = (draft.attrs[key] for key in ("kernel_shape", "strides", "dilations", "pads"))
        spatial = [(size + p[i] + p[i + 2] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i, size in enumerate(shape[2:])]
        return (shape[0], draft.params["weight"].shape[0], *spatial)
    if draft.kind == "fc":
        return (shape[0], draft.params["weight"].shape[0])
    return shape


def _macs(draft: _Draft, input_shapes, out_shape) -> int:
    weight = draft.params.get("weight")
    if weight is None or not out_shape:
        return 0
    if draft.kind in ("conv", "dw"):
        return int(np.prod(out_shape[1:]) * np.prod(weight.shape[1:]))
    if draft.kind == "deconv":
        return int(np.prod(input_shapes[0][1:]) * np.prod(weight.shape[1:]))
    return int(np.prod(out_shape[1:-1])) * int(weight.size)  # fc: once per position of an (N, ..., out) output


def _scale_outputs(draft: _Draft, a: np.ndarray) -> None:
    """Multiply every output channel of a weighted layer (weights and bias) by ``a`` (one per channel)."""
    weight = draft.params["weight"]
    if draft.kind == "deconv":  # (C_in, C_out/G, KH, KW): the output channels of group g are axis 1 of its slice
        g = draft.attrs["group"]
        w = weight.reshape(g, weight.shape[0] // g, -1, *weight.shape[2:])
        w = w * a.reshape(g, 1, -1, *([1] * (weight.ndim - 2)))
        draft.params["weight"] = w.reshape(weight.shape).astype(np.float32)
    else:
        draft.params["weight"] = (weight * a.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32)
    draft.params["bias"] = (draft.params["bias"] * a).astype(np.float32)


def _slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int, int]:
    """ONNX Slice's clamping of (start, end) on an axis of ``dim``: negative indices count from the
    end, and with a negative step the end may be −1 (through index 0), as ``range`` reads it."""
    start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim), step
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step


def _scalar(value) -> float | None:
    """The one number of a constant of any rank (``[[3.]]`` included), or None."""
    if value is None or np.size(value) != 1:
        return None
    return float(np.asarray(value).reshape(-1)[0])


def _rewrite_patterns(nodes: list[_Node], consts: dict[str, np.ndarray], graph_outputs=()) -> list[_Node]:
    """HardSwish and SiLU written out in primitives become one node each."""
    producer = {o: n for n in nodes for o in n.outputs}
    uses: Counter = Counter(i for n in nodes for i in n.inputs)
    uses.update(graph_outputs)  # a graph output must stay
    removed: set[int] = set()

    def const_value(tensor):
        return _scalar(consts.get(tensor))

    def only_use(tensor):
        return uses[tensor] == 1

    out = []
    for n in nodes:
        if n.op in ("Mul", "Div") and len(n.inputs) == 2:
            match = _match_swish(n, producer, const_value, only_use)
            if match is not None:
                op, x, dead = match
                removed.update(id(d) for d in dead)
                out.append(_Node(op, n.name, [x], n.outputs, aliases=[a for d in dead for a in _aliases(d)]))
                continue
        out.append(n)
    return [n for n in out if id(n) not in removed]


def _match_swish(n: _Node, producer, const_value, only_use):
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
