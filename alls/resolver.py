"""Resolve a script against a layer graph: the per-layer quantization plan.

`resolve(script, graph)` runs in three steps:

1. the defaults: the catalogue's defaults, then what the optimization and
   compression levels turn on (`model_optimization_flavor`, the last one
   wins; an explicit algorithm statement overrides the level wherever it
   stands in the script);
2. the statements, in order: each binds its selectors to layers and sets
   fields; a later statement wins field by field, and every field records
   the statement that set it;
3. the bits: auto-4-bit compression on the layers no statement gave a
   precision, then the width of every tensor (its producer's output
   width; a 16-bit request on an output layer widens its producer's
   output).

Statements with errors from the checker are skipped; the plan is complete
either way. What cannot apply (a bias mode on a pool, a group count that
does not divide the output channels) is an error naming each layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from alls.catalogue import (
    COMMANDS,
    COMPRESSION,
    LEVELS,
    POST_SUBCOMMANDS,
    QUANTIZATION_PARAM,
)
from alls.checker import check_script
from alls.diagnostics import Diagnostic, Label, Severity
from alls.formatter import format_statement
from alls.graph import WEIGHTED_KINDS, Graph, Layer
from alls.nodes import Argument, Boolean, ListValue, Null, Number, Script, Span, Statement, String, Value, Word
from alls.plan import (
    DEFAULT,
    Adaround,
    Calibration,
    Clipping,
    Finetune,
    LayerPlan,
    Normalization,
    Plan,
    Settings,
    Source,
)
from alls.selectors import select, unique_layers

__all__ = ["resolve", "parse_precision"]

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO
_SKIP = object()  # a value the checker already reported (a template placeholder)
_MAX_LISTED = 8
LayerTest = Callable[[Layer], bool]
Handler = Callable[["_Resolver", Statement], None]
_Group = TypeVar("_Group", Calibration, Finetune, Adaround)


def parse_precision(mode: str) -> tuple[int, int, int]:
    """``"a16_w8_a16"`` -> (input bits, weight bits, output bits)."""
    parts = mode.split("_")
    a_in, w = int(parts[0][1:]), int(parts[1][1:])
    return a_in, w, int(parts[2][1:]) if len(parts) > 2 else a_in


def _default(command: str, keyword: str, sub: str | None = None) -> Any:
    spec = COMMANDS[command]
    if sub is not None:
        assert spec.subcommands is not None, f"{command} has no subcommands"
        spec = spec.subcommands[sub]
    return spec.keywords[keyword].default


@dataclass
class _Layer:
    """A layer's plan while statements are applied."""

    layer: Layer
    values: dict[str, Any]
    sources: dict[str, Source] = field(default_factory=dict)
    events: list[tuple[Source, str, Any]] = field(default_factory=list)

    def set(self, name: str, value: Any, source: Source) -> None:
        self.values[name] = value
        self.sources[name] = source
        self.events.append((source, name, value))

    def history(self) -> tuple[tuple[Source, tuple[tuple[str, Any], ...]], ...]:
        """The statements that shaped the layer, in script order, each with the fields it set."""
        events = list(self.events)
        for name, source in self.sources.items():  # fields set by a level or a global statement
            if not source.is_default and not any(s is source and n == name for s, n, _ in events):
                events.append((source, name, self.values[name]))
        events.sort(key=lambda e: (e[0].span.line, e[0].span.column) if e[0].span else (0, 0))
        grouped: list[tuple[Source, list[tuple[str, Any]]]] = []
        for source, name, value in events:
            if grouped and grouped[-1][0] is source:
                grouped[-1][1].append((name, value))
            else:
                grouped.append((source, [(name, value)]))
        return tuple((source, tuple(fields)) for source, fields in grouped)


class _Resolver:
    def __init__(self, script: Script, graph: Graph):
        self.script, self.graph = script, graph
        self.diagnostics: list[Diagnostic] = []
        self.globals: dict[str, Any] = {}
        self.global_sources: dict[str, Source] = {}
        self.layers = {layer.name: _Layer(layer, {}) for layer in graph}
        self.adaround_layers: tuple[str, ...] | None = None
        self.not_applied: set[str] = set()
        self.broken: set[Span] = set()

    # ------------------------------------------------------------ helpers

    def source(self, st: Statement, via: str = "") -> Source:
        return Source(format_statement(st), st.span, via)

    def set_global(self, name: str, value: Any, source: Source) -> None:
        self.globals[name] = value
        self.global_sources[name] = source

    def bind(self, value: Value) -> tuple[Layer, ...]:
        matches, diagnostics = select(value, self.graph)
        self.diagnostics.extend(diagnostics)
        return unique_layers(matches)

    def applicable(self, layers: Iterable[Layer], ok: LayerTest, what: str, keyword_span: Span, selector: Value | None,
                   needs: str) -> list[Layer]:
        """The layers where ``ok(layer)`` holds; ALS213 names the others."""
        layers = list(layers)
        good = [layer for layer in layers if ok(layer)]
        bad = [layer for layer in layers if not ok(layer)]
        if bad:
            listed = _listed(bad)
            labels = (Label(selector.span, f"reaches {len(layers)} layer{'s' if len(layers) != 1 else ''}"),) \
                if selector is not None and selector.span.file == keyword_span.file else ()
            self.diagnostics.append(Diagnostic(
                "ALS213", E, f"{what} cannot apply to {listed}", keyword_span, "cannot apply",
                f"{what} applies to {needs}; narrow the selector (`alls layers MODEL` lists the layers)", labels,
            ))
        return good

    # ------------------------------------------------------------ step 1

    def defaults(self) -> None:
        flavor = [st for st in self.script.statements if st.command == "model_optimization_flavor"
                  and st.span not in self.broken]
        level_source = compression_source = Source("default")
        level = _default("model_optimization_flavor", "optimization_level")
        compression = _default("model_optimization_flavor", "compression_level")
        for st in flavor:
            kw = _keywords(st)
            if "optimization_level" in kw and kw["optimization_level"] is not _SKIP:
                level = kw["optimization_level"]
                level_source = self.source(st, f"optimization_level={level}")
            if "compression_level" in kw and kw["compression_level"] is not _SKIP:
                compression = kw["compression_level"]
                compression_source = self.source(st, f"compression_level={compression}")
        if level_source.is_default:
            level_source = Source(f"default (optimization_level={level})")
        self.set_global("optimization_level", level, level_source)
        self.set_global("compression_level", compression, compression_source)
        self.set_global("auto_4bit_weights_ratio", COMPRESSION[compression], compression_source)
        spec = LEVELS[level]
        self.set_global("equalization", spec.equalization, level_source)
        self.set_global("equalization_target", _default("pre_quantization_optimization", "equalization_target",
                                                        "equalization"), DEFAULT)
        self.set_global("bias_correction", spec.bias_correction, level_source)
        for name in ("batch_size", "calibset_size"):
            self.set_global(f"calibration.{name}", _default("model_optimization_config", name, "calibration"), DEFAULT)
        for algo, chosen in (("finetune", spec.finetune), ("adaround", spec.adaround)):
            for name, arg in POST_SUBCOMMANDS[algo].keywords.items():
                if name in ("layers", "device", "use_saitama"):
                    continue
                value, source = arg.default, DEFAULT
                if name == "policy":
                    value, source = chosen is not None, level_source
                elif chosen and name in chosen:
                    value, source = chosen[name], level_source
                self.set_global(f"{algo}.{name}", value, source)
        for plan in self.layers.values():
            self.layer_defaults(plan, level_source)

    def layer_defaults(self, plan: _Layer, level_source: Source) -> None:
        layer = plan.layer
        weighted = layer.kind in WEIGHTED_KINDS
        v = plan.values
        v["precision_mode"] = QUANTIZATION_PARAM.keywords["precision_mode"].default
        v["bias_mode"] = QUANTIZATION_PARAM.keywords["bias_mode"].default if weighted else None
        v["quantization_groups"] = QUANTIZATION_PARAM.keywords["quantization_groups"].default
        v["force_range_in"] = v["force_range_out"] = None
        v["force_range_index"] = QUANTIZATION_PARAM.keywords["force_range_index"].default
        v["activation_clipping"] = v["weights_clipping"] = None
        v["equalization"] = weighted and self.globals["equalization"]
        v["bias_correction"] = weighted and self.globals["bias_correction"]
        v["activation"] = layer.activation
        if weighted:
            plan.sources["equalization"] = plan.sources["bias_correction"] = level_source

    # ------------------------------------------------------------ step 2

    def statements(self) -> None:
        for st in self.script.statements:
            if st.span in self.broken:
                continue
            name = st.command
            spec = COMMANDS.get(name)
            if spec is None or not spec.interpreted or name == "model_optimization_flavor":
                continue
            if spec.subcommands is not None:
                first = st.call.positional[0].value
                assert not isinstance(first, (String, ListValue)), "the checker asks a subcommand for a word"
                sub = first.text
                handler = _SUB_HANDLERS.get((name, sub))
            else:
                handler = _HANDLERS.get(name)
            if handler is not None:
                handler(self, st)

    # ------------------------------------------------------------ step 3

    def compress(self) -> None:
        """Auto-4-bit: the largest weights first, among layers no statement gave a precision."""
        ratio = self.globals["auto_4bit_weights_ratio"]
        if ratio <= 0:
            return
        source = self.global_sources["auto_4bit_weights_ratio"]
        weighted = [p for p in self.layers.values() if p.layer.kind in WEIGHTED_KINDS]
        total = sum(_size(p.layer) for p in weighted)
        free = sorted((p for p in weighted if "precision_mode" not in p.sources),
                      key=lambda p: (-_size(p.layer), p.layer.name))
        taken = 0
        for plan in free:
            if taken >= ratio * total - 1e-9:
                break
            a_in, _, a_out = parse_precision(plan.values["precision_mode"])
            plan.set("precision_mode", f"a{a_in}_w4" + (f"_a{a_out}" if a_out != a_in else ""), source)
            taken += _size(plan.layer)

    def bits(self) -> list[tuple[str, str, int, int]]:
        """Set the bits of every layer; return the boundaries (producer, consumer, written, asked)."""
        out_bits: dict[str, int] = {}
        for plan in self.layers.values():
            a_in, w, a_out = parse_precision(plan.values["precision_mode"])
            plan.values["weight_bits"] = w if plan.layer.kind in WEIGHTED_KINDS else None
            plan.values["output_bits"] = a_out
            out_bits[plan.layer.name] = a_out
            if "precision_mode" in plan.sources:
                plan.sources["weight_bits"] = plan.sources["output_bits"] = plan.sources["precision_mode"]
            if plan.layer.kind in WEIGHTED_KINDS and "bias_mode" not in plan.sources and 16 in (a_in, w, a_out):
                plan.values["bias_mode"] = "double_scale_initialization"  # an 8-bit mantissa caps it at 8 bits
            if plan.layer.kind in WEIGHTED_KINDS and w == 4 and "weights_clipping" not in plan.sources:
                plan.values["weights_clipping"] = Clipping("mmse")  # the guide: 4-bit weights are clipped
            if plan.layer.kind == "conv" and w == 4 and "quantization_groups" not in plan.sources:
                channels = plan.layer.output_channels or 1  # the guide: groups are for conv layers
                plan.values["quantization_groups"] = next(g for g in (4, 3, 2, 1) if channels % g == 0)
        for plan in self.layers.values():  # a 16-bit output layer widens its producer's output
            if plan.layer.kind == "output_layer" and "precision_mode" in plan.sources and plan.layer.inputs:
                producer = self.layers[plan.layer.inputs[0]]
                bits = parse_precision(plan.values["precision_mode"])[2]
                if bits != producer.values["output_bits"]:
                    producer.set("output_bits", bits, plan.sources["precision_mode"])
                    out_bits[producer.layer.name] = bits
        boundaries = []
        for plan in self.layers.values():
            asked = parse_precision(plan.values["precision_mode"])[0]
            plan.values["input_bits"] = tuple(out_bits[name] for name in plan.layer.inputs)
            if plan.layer.kind == "output_layer":
                plan.values["output_bits"] = out_bits[plan.layer.name] = plan.values["input_bits"][0]
                plan.sources["output_bits"] = self.layers[plan.layer.inputs[0]].sources.get("output_bits", DEFAULT)
                continue
            for name in plan.layer.inputs:
                if out_bits[name] != asked:
                    boundaries.append((name, plan.layer.name, out_bits[name], asked))
        return boundaries

    def algorithms(self) -> None:
        """The per-layer finetune and adaround flags, from the global settings."""
        g, gs = self.globals, self.global_sources
        frozen = set(g["finetune.layers_to_freeze"] or ())
        for plan in self.layers.values():
            weighted = plan.layer.kind in WEIGHTED_KINDS
            plan.values["finetune"] = bool(weighted and g["finetune.policy"] and plan.layer.name not in frozen)
            plan.values["adaround"] = bool(
                weighted and g["adaround.policy"]
                and (self.adaround_layers is None or plan.layer.name in self.adaround_layers)
                and (g["adaround.mode"] == "train_all" or plan.values["weight_bits"] == 4))
            if weighted:
                plan.sources["finetune"] = gs["finetune.policy"]
                plan.sources["adaround"] = gs.get("adaround.layers", gs["adaround.policy"])
            if plan.values["finetune"] and plan.values["bias_correction"] and _by_level(plan.sources["bias_correction"]):
                plan.set("bias_correction", False, _qft_source(gs["finetune.policy"]))

    # ------------------------------------------------------------ result

    def plan(self) -> Plan:
        layers = tuple(
            LayerPlan(name=p.layer.name, kind=p.layer.kind, **{k: p.values[k] for k in LayerPlan.FIELDS},
                      sources={k: s for k, s in p.sources.items() if not s.is_default},
                      history=p.history())
            for p in self.layers.values()
        )
        return Plan(self.graph.name, self.script.filename, layers, self.settings(), tuple(self.diagnostics))

    def settings(self) -> Settings:
        g, gs = self.globals, self.global_sources

        def group(prefix: str, cls: type[_Group]) -> _Group:
            return cls(**{k.split(".", 1)[1]: v for k, v in g.items() if k.startswith(prefix + ".")
                          and k.split(".", 1)[1] in cls.__dataclass_fields__})

        sources = {}
        for key, source in gs.items():
            sources[key] = source
        return Settings(
            optimization_level=g["optimization_level"], compression_level=g["compression_level"],
            auto_4bit_weights_ratio=g["auto_4bit_weights_ratio"], calibration=group("calibration", Calibration),
            equalization=g["equalization"], equalization_target=g["equalization_target"],
            bias_correction=g["bias_correction"], finetune=group("finetune", Finetune),
            adaround=group("adaround", Adaround), normalization=tuple(g.get("normalization", ())),
            sources=sources,
        )


# ---------------------------------------------------------------- values


def _py(value: Value) -> Any:
    """A parsed value as Python data; `_SKIP` for a template placeholder."""
    if type(value) is Number or type(value) is Boolean or type(value) is String:
        return value.value
    if type(value) is Null:
        return None
    if type(value) is Word:
        return value.text
    if type(value) is ListValue:
        items = tuple(_py(v) for v in value.items)
        return _SKIP if _SKIP in items else items
    return _SKIP


def _keywords(st: Statement) -> dict[str, Any]:
    return {a.keyword.text: _py(a.value) for a in st.call.keywords if a.keyword is not None}


def _keyword_args(st: Statement) -> dict[str, Any]:
    return {a.keyword.text: a for a in st.call.keywords if a.keyword is not None}


def _policy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("enabled", "allowed"))


def _size(layer: Layer) -> int:
    weight = layer.params.get("weight")
    return int(weight.size) if weight is not None else 0


def _listed(layers: list[Layer]) -> str:
    names = [f"`{layer.short_name}` ({layer.kind})" for layer in layers[:_MAX_LISTED]]
    more = f" and {len(layers) - _MAX_LISTED} more" if len(layers) > _MAX_LISTED else ""
    noun = "layer" if len(layers) == 1 else f"{len(layers)} layers"
    return f"{noun} " + ", ".join(names) + more


def _weighted(layer: Layer) -> bool:
    return layer.kind in WEIGHTED_KINDS


_WEIGHTED_NEEDS = "layers with weights (conv, dw, deconv, fc)"


# ---------------------------------------------------------------- handlers


def _quantization_param(r: _Resolver, st: Statement) -> None:
    selector = st.call.positional[0].value
    layers = r.bind(selector)
    source = r.source(st)
    args = _keyword_args(st)
    targets: Sequence[Layer]
    for word, arg in args.items():
        value = _py(arg.value)
        if value is _SKIP:
            continue
        if word == "precision_mode":
            targets, name = layers, "precision_mode"
        elif word in ("bias_mode", "use_16bit_bias"):
            targets = r.applicable(layers, _weighted, f"`{word}`", arg.keyword.span, selector, _WEIGHTED_NEEDS)
            name = "bias_mode"
            if word == "use_16bit_bias":
                value = "double_scale_initialization" if value else "single_scale_decomposition"
        elif word == "quantization_groups":
            targets = r.applicable(layers, _weighted, f"`{word}`", arg.keyword.span, selector, _WEIGHTED_NEEDS)
            targets = _dividing(r, targets, value, arg)
            name = word
        elif word in ("force_range_in", "force_range_index"):
            targets = r.applicable(layers, lambda l: bool(l.inputs), f"`{word}`", arg.keyword.span, selector,
                                   "layers with inputs")
            name = word
            if word == "force_range_index":
                targets = _index_in_range(r, targets, value, arg)
        elif word == "force_range_out":
            targets, name = layers, word
        elif word in ("activation_clipping_mode", "weights_clipping_mode"):
            kind = word.split("_clipping")[0]
            values = _py(args[f"{kind}_clipping_values"].value) if f"{kind}_clipping_values" in args else None
            clip = None if value == "disabled" else Clipping(value, None if values is _SKIP else values)
            targets = layers if kind == "activation" else r.applicable(
                layers, _weighted, f"`{word}`", arg.keyword.span, selector, _WEIGHTED_NEEDS)
            value, name = clip, f"{kind}_clipping"
        elif word.endswith("_clipping_values"):
            continue  # read with its mode
        else:
            _not_applied(r, st, f"quantization_param({word})", arg.keyword.span)
            continue
        for layer in targets:
            r.layers[layer.name].set(name, value, source)


def _dividing(r: _Resolver, layers: Sequence[Layer], groups: int, arg: Argument) -> list[Layer]:
    good = [l for l in layers if l.output_channels and l.output_channels % groups == 0]
    bad = [l for l in layers if l not in good]
    if bad:
        shown = ", ".join(f"`{l.short_name}` ({l.output_channels} channels)" for l in bad[:_MAX_LISTED])
        more = f" and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        r.diagnostics.append(Diagnostic(
            "ALS308", E, f"{groups} quantization groups do not divide the output channels of {shown}{more}",
            arg.value.span, "does not divide", "groups are equal blocks of output channels: choose a divisor",
        ))
    return good


def _index_in_range(r: _Resolver, layers: Sequence[Layer], index: int, arg: Argument) -> list[Layer]:
    good = [l for l in layers if index < len(l.inputs)]
    bad = [l for l in layers if l not in good]
    if bad:
        shown = ", ".join(f"`{l.short_name}` ({len(l.inputs)} input{'s' if len(l.inputs) != 1 else ''})"
                          for l in bad[:_MAX_LISTED])
        r.diagnostics.append(Diagnostic(
            "ALS308", E, f"`force_range_index={index}` is past the inputs of {shown}", arg.value.span,
            "no such input", "inputs count from 0",
        ))
    return good


def _not_applied(r: _Resolver, st: Statement, key: str, span: Span) -> None:
    if key in r.not_applied:
        return
    r.not_applied.add(key)
    r.diagnostics.append(Diagnostic("ALS208", I, f"`{key}` is not applied by the emulator", span, "not emulated",
                                    "it is kept for the compiler; the plan does not model it"))


def _layers_argument(r: _Resolver, st: Statement, default: Iterable[Layer], ok: LayerTest, what: str,
                     needs: str) -> tuple[list[Layer], bool]:
    """The layers of a ``layers=`` keyword (checked with ``ok``), or ``default``."""
    args = _keyword_args(st)
    if "layers" not in args:
        return [l for l in default if ok(l)], False
    arg = args["layers"]
    return r.applicable(r.bind(arg.value), ok, what, arg.keyword.span, arg.value, needs), True


def _policy_switch(field: str, default: str, what: str, extra: tuple[str, ...] = ()) -> Handler:
    """The handler of an algorithm switched by ``policy`` on weighted layers (all of them as the
    global setting when no ``layers`` is given); ``extra`` keywords are global settings too."""
    def handler(r: _Resolver, st: Statement) -> None:
        kw, source = _keywords(st), r.source(st)
        policy = _policy(kw.get("policy", default))
        layers, explicit = _layers_argument(r, st, r.graph, _weighted, what, _WEIGHTED_NEEDS)
        if not explicit:
            r.set_global(field, policy, source)
        for word in extra:
            if kw.get(word, _SKIP) is not _SKIP:
                r.set_global(word, kw[word], source)
        for layer in layers:
            r.layers[layer.name].set(field, policy, source)
    return handler


def _by_level(source: Source) -> bool:
    """Whether a value came from the optimization level (its default, or model_optimization_flavor)."""
    return source.span is None or source.via.startswith("optimization_level")


def _qft_source(finetune: Source) -> Source:
    """The guide's QFT includes bias correction: a finetuned layer runs no separate IBC unless a statement asks."""
    note = "finetune includes bias correction"
    return Source(f"{finetune.text}: {note}") if finetune.span is None else Source(finetune.text, finetune.span, note)


_equalization = _policy_switch("equalization", "enabled", "equalization", ("equalization_target",))
_bias_correction = _policy_switch("bias_correction", "disabled", "bias correction")


def _clipping(kind: str) -> Handler:
    def handler(r: _Resolver, st: Statement) -> None:
        kw, source = _keywords(st), r.source(st)
        mode = kw.get("mode", "disabled")
        values = kw.get("clipping_values")
        clip = None if mode == "disabled" or mode is _SKIP else Clipping(
            mode, None if values is _SKIP else values, bool(kw.get("recollect_stats", False)))
        if kind == "weights":
            layers, _ = _layers_argument(r, st, r.graph, _weighted, "weights clipping", _WEIGHTED_NEEDS)
        else:
            layers, _ = _layers_argument(r, st, r.graph, lambda l: l.kind != "output_layer", "activation clipping",
                                         "layers that write an activation (not output layers)")
        for layer in layers:
            r.layers[layer.name].set(f"{kind}_clipping", clip, source)
    return handler


def _algorithm(algo: str) -> Handler:
    """finetune and adaround: their parameters are global; layers are flagged at the end."""
    layer_keys = {"loss_layer_names", "layers_to_freeze", "layers"}

    def handler(r: _Resolver, st: Statement) -> None:
        source = r.source(st)
        for word, arg in _keyword_args(st).items():
            if word in ("device", "use_saitama"):
                continue
            if word in layer_keys:
                layers = r.bind(arg.value)
                if algo == "adaround" and word == "layers":
                    r.adaround_layers = tuple(l.name for l in layers)
                    r.global_sources["adaround.layers"] = source
                    continue
                r.set_global(f"{algo}.{word}", tuple(l.name for l in layers), source)
                continue
            value = _py(arg.value)
            if value is _SKIP:
                continue
            if word == "policy":
                value = _policy(value)
            elif word in ("loss_types", "def_loss_type"):
                value = tuple(v.lower() for v in value) if isinstance(value, tuple) else value.lower()
            r.set_global(f"{algo}.{word}", value, source)
    return handler


def _calibration(r: _Resolver, st: Statement) -> None:
    source = r.source(st)
    for word, value in _keywords(st).items():
        if word in ("batch_size", "calibset_size") and value is not _SKIP:
            r.set_global(f"calibration.{word}", value, source)


def _compression(r: _Resolver, st: Statement) -> None:
    value = _keywords(st).get("auto_4bit_weights_ratio", _SKIP)
    if value is not _SKIP:
        r.set_global("auto_4bit_weights_ratio", float(value), r.source(st))


def _normalization(r: _Resolver, st: Statement) -> None:
    positional = [_py(a.value) for a in st.call.positional]
    if _SKIP in positional[:2]:
        return
    mean, std = positional[0], positional[1]
    if len(st.call.positional) > 2:
        inputs = r.applicable(r.bind(st.call.positional[2].value), lambda l: l.kind == "input_layer",
                              "normalization", st.call.positional[2].value.span, None, "input layers")
    else:
        inputs = list(r.graph.inputs)
    name = st.targets[0].text if st.targets else f"normalization{len(r.globals.get('normalization', ())) + 1}"
    found = list(r.globals.get("normalization", ()))
    for layer in inputs:
        channels = layer.output_channels
        if channels is not None and len(mean) not in (1, channels):
            r.diagnostics.append(Diagnostic(
                "ALS307", E, f"normalization has {len(mean)} values per list but input `{layer.short_name}` has "
                f"{channels} channel{'s' if channels != 1 else ''}", st.call.positional[0].value.span, f"{len(mean)} values",
                "give one mean and one std per channel, or one of each for all channels"))
            continue
        found = [n for n in found if n.input != layer.name]  # a later normalization of an input replaces it
        found.append(Normalization(name, layer.name, tuple(float(m) for m in mean), tuple(float(s) for s in std)))
    r.set_global("normalization", tuple(found), r.source(st))


def _change_output_activation(r: _Resolver, st: Statement) -> None:
    positional = st.call.positional
    activation = _py(positional[-1].value)
    if activation is _SKIP:
        return
    if len(positional) > 1:
        layers = [r.graph[l.inputs[0]] if l.kind == "output_layer" and l.inputs else l for l in r.bind(positional[0].value)]
        layers = r.applicable(layers, lambda l: l.kind not in ("input_layer", "output_layer"),
                              "change_output_activation", positional[0].value.span, None, "layers that compute")
    else:
        layers = [r.graph[o.inputs[0]] for o in r.graph.outputs if o.inputs]
    source = r.source(st)
    for layer in layers:
        r.layers[layer.name].set("activation", None if activation == "linear" else activation, source)


_HANDLERS = {
    "quantization_param": _quantization_param,
    "normalization": _normalization,
    "change_output_activation": _change_output_activation,
}
_SUB_HANDLERS = {
    ("pre_quantization_optimization", "equalization"): _equalization,
    ("pre_quantization_optimization", "activation_clipping"): _clipping("activation"),
    ("pre_quantization_optimization", "weights_clipping"): _clipping("weights"),
    ("post_quantization_optimization", "bias_correction"): _bias_correction,
    ("post_quantization_optimization", "finetune"): _algorithm("finetune"),
    ("post_quantization_optimization", "adaround"): _algorithm("adaround"),
    ("model_optimization_config", "calibration"): _calibration,
    ("model_optimization_config", "compression_params"): _compression,
}



# ---------------------------------------------------------------- entry


def _broken_statements(script: Script, diagnostics: list[Diagnostic]) -> set[Span]:
    """The spans of statements that carry an error diagnostic."""
    errors = [d.span for d in diagnostics if d.is_error and d.span is not None]
    broken = set()
    for st in script.statements:
        s = st.span
        for e in errors:
            if (s.line, s.column) <= (e.line, e.column) <= (s.end_line, s.end_column):
                broken.add(s)
                break
    return broken


def resolve(script: Script, graph: Graph, *, advice: bool = True) -> Plan:
    """Bind ``script`` to ``graph``: the `Plan`, with every diagnostic found.

    The plan's diagnostics hold the script's own checks, the selector
    errors, what cannot apply, and (with ``advice``) the advice of Hailo's
    guide as warnings.
    """
    checks = check_script(script)
    r = _Resolver(script, graph)
    r.broken = _broken_statements(script, checks)
    r.defaults()
    r.statements()
    r.compress()
    boundaries = r.bits()
    r.algorithms()
    plan = r.plan()
    found = checks + r.diagnostics
    if advice:
        from alls.advice import advise

        found += advise(plan, graph, boundaries)
    found.sort(key=Diagnostic.sort_key)
    return Plan(plan.network, plan.script, plan.layers, plan.settings, tuple(found))

