"""The quantization plan: what a script asks of every layer of a model.

A `Plan` is the result of `alls.resolve(script, graph)`: one immutable
`LayerPlan` per layer, in the graph's order, plus the network-wide
`Settings`. Every field remembers the statement that set it (a `Source`;
`DEFAULT` for a field no statement touched), and every layer keeps the
history of the statements that shaped it, in script order.

Bits: ``input_bits`` are the widths of the tensors the layer reads, as
their producers write them (one width per tensor); ``output_bits`` is the
width it writes; ``weight_bits`` is None for a layer without weights (a
standalone batch norm's scales are its weights, at its input's width).

Every value is the one the runtime uses, defaults included (they come from
`alls.catalogue`); the words are enums spelled as the script spells them
(`alls.values`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from alls.diagnostics import Diagnostic
from alls.nodes import Span
from alls.values import Activation, AdaroundMode, BiasMode, ClippingMode, EqualizationTarget, LossType, Optimizer

if TYPE_CHECKING:
    from alls.graph import Graph

__all__ = [
    "Source",
    "DEFAULT",
    "Clipping",
    "LayerPlan",
    "Calibration",
    "Finetune",
    "Adaround",
    "Normalization",
    "Settings",
    "Plan",
    "BiasMode",
    "ClippingMode",
    "Activation",
    "LossType",
    "Optimizer",
    "AdaroundMode",
    "EqualizationTarget",
]


@dataclass(frozen=True)
class Source:
    """Where a value came from: a statement's canonical text and span.

    ``span`` is None for a built-in default (``text`` says which), and
    ``via`` names an indirect route (``optimization_level=2``).
    """

    text: str
    span: Span | None = None
    via: str = ""

    @property
    def is_default(self) -> bool:
        return self.span is None

    def where(self) -> str:
        """``line 3`` for a statement, ``default`` for a built-in value."""
        if self.span is None:
            return self.text
        return f"line {self.span.line}" + (f" ({self.via})" if self.via else "")

    def as_dict(self) -> dict[str, Any]:
        if self.span is None:
            return {"statement": None, "default": self.text}
        return {"statement": self.text, "file": self.span.file, "line": self.span.line,
                "column": self.span.column, **({"via": self.via} if self.via else {})}


DEFAULT = Source("default")


@dataclass(frozen=True)
class Clipping:
    """A clipping request: ``mode`` and its ``[lo, hi]`` (values or percentiles)."""

    mode: ClippingMode
    values: tuple[float, float] | None = None
    recollect_stats: bool = False

    def __str__(self) -> str:
        if self.values is None:
            return self.mode
        return f"{self.mode} [{_num(self.values[0])}, {_num(self.values[1])}]"


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """What the script asks of one layer.

    ``sources`` maps each field name to the `Source` that set it;
    ``history`` lists the statements that touched the layer, in order, each
    with the fields it set (``(source, (("bias_mode", "double_..."), ...))``).
    """

    name: str
    kind: str
    precision_mode: str
    input_bits: tuple[int, ...]
    weight_bits: int | None
    output_bits: int
    bias_mode: BiasMode | None
    quantization_groups: int
    force_range_in: tuple[float, float] | None
    force_range_index: int
    force_range_out: tuple[float, float] | None
    activation_clipping: Clipping | None
    weights_clipping: Clipping | None
    equalization: bool
    bias_correction: bool
    finetune: bool
    adaround: bool
    activation: Activation | None
    sources: Mapping[str, Source] = field(default_factory=dict)
    history: tuple[tuple[Source, tuple[tuple[str, Any], ...]], ...] = ()

    FIELDS = (
        "precision_mode", "input_bits", "weight_bits", "output_bits", "bias_mode", "quantization_groups",
        "force_range_in", "force_range_index", "force_range_out", "activation_clipping", "weights_clipping",
        "equalization", "bias_correction", "finetune", "adaround", "activation",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def source(self, name: str) -> Source:
        """The statement that set field ``name`` (`DEFAULT` if none did)."""
        return self.sources.get(name, DEFAULT)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        for name in self.FIELDS:
            out[name] = _plain(getattr(self, name))
        out["sources"] = {k: v.as_dict() for k, v in self.sources.items() if not v.is_default}
        return out


@dataclass(frozen=True)
class Calibration:
    """``model_optimization_config(calibration, ...)``: images and batch size."""

    batch_size: int
    calibset_size: int


@dataclass(frozen=True)
class Finetune:
    """``post_quantization_optimization(finetune, ...)``: QFT's parameters."""

    policy: bool
    dataset_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_epochs: int
    loss_layer_names: tuple[str, ...] | None
    loss_types: tuple[LossType, ...] | None
    loss_factors: tuple[float, ...] | None
    def_loss_type: LossType
    train_scales: bool
    meta_arch: str | None
    layers_to_freeze: tuple[str, ...] | None
    optimizer: Optimizer


@dataclass(frozen=True)
class Adaround:
    """``post_quantization_optimization(adaround, ...)``: AdaRound's parameters."""

    policy: bool
    dataset_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    warmup: float
    weight: float
    b_range: tuple[float, float]
    mode: AdaroundMode


@dataclass(frozen=True)
class Normalization:
    """``name = normalization(mean, std[, input])``: (x - mean) / std per channel."""

    name: str
    input: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class Settings:
    """The network-wide settings, each field with its `Source`.

    ``optimization_level`` and ``compression_level`` are kept as given; their
    effect is already in the other fields (see `alls.catalogue.LEVELS`).
    """

    optimization_level: int
    compression_level: int
    auto_4bit_weights_ratio: float
    calibration: Calibration
    equalization: bool
    equalization_target: EqualizationTarget
    bias_correction: bool
    finetune: Finetune
    adaround: Adaround
    normalization: tuple[Normalization, ...]
    sources: Mapping[str, Source] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    def source(self, name: str) -> Source:
        return self.sources.get(name, DEFAULT)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "sources"}
        out["sources"] = {k: v.as_dict() for k, v in self.sources.items() if not v.is_default}
        return out


@dataclass(frozen=True, eq=False)
class Plan:
    """A script bound to a model: a `LayerPlan` per layer, and `Settings`.

    ``diagnostics`` holds everything found on the way (the script's own
    checks, the selectors, what cannot apply, and the advice). A plan with
    error diagnostics is still complete: statements with errors are skipped.
    """

    network: str
    script: str
    layers: tuple[LayerPlan, ...]
    settings: Settings
    diagnostics: tuple[Diagnostic, ...] = ()
    _index: dict[str, LayerPlan] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for layer in self.layers:
            self._index[layer.name] = layer
        for layer in self.layers:
            self._index.setdefault(layer.short_name, layer)

    def __iter__(self) -> Iterator[LayerPlan]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> LayerPlan:
        """The plan of layer ``name`` (full or short name)."""
        return self._index[name]

    def get(self, name: str) -> LayerPlan | None:
        return self._index.get(name)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def modify(self, graph: Graph) -> Graph:
        """``graph`` as the script changes it: each layer carries the activation its plan gives
        (``change_output_activation``), the layer's own fused activation replaced. Every target runs this
        graph, as every target reads the script's normalization; ``graph`` itself when nothing changes."""
        changed = [layer for layer in graph if (plan := self.get(layer.name)) is not None
                   and _linear(plan.activation) != _linear(layer.activation)]
        if not changed:
            return graph
        names = {layer.name for layer in changed}
        layers = tuple(replace(layer, activation=_linear(self[layer.name].activation), activation_params=())
                       if layer.name in names else layer for layer in graph)
        return replace(graph, layers=layers, _index={})

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (``alls plan --json``)."""
        return {
            "network": self.network,
            "script": self.script,
            "settings": self.settings.as_dict(),
            "layers": [layer.as_dict() for layer in self.layers],
        }


def _linear(activation: Activation | None) -> Activation | None:
    """None for no activation, however it is spelled."""
    return None if activation is Activation.LINEAR else activation


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a field value."""
    if isinstance(value, (Clipping, Calibration, Finetune, Adaround, Normalization)):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
