"""Plain-text tables of graphs, plans and results (`alls layers`, `alls plan`, `alls quantize`, `alls eval`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from alls.graph import Graph, Layer
from alls.plan import BiasMode, LayerPlan, Plan

if TYPE_CHECKING:
    from alls.runtime import Evaluation, QuantizeReport, Trained

__all__ = ["layer_table", "layer_row", "plan_table", "explain_layer", "precision_summary", "algorithm_summary",
           "figures_table"]


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]


def _shape(shape: Sequence[int] | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "-"


# ------------------------------------------------------------------ layers


def layer_row(layer: Layer) -> dict[str, Any]:
    """One layer as JSON-ready data."""
    return {
        "name": layer.name, "kind": layer.kind, "op": layer.op, "aliases": list(layer.aliases),
        "inputs": list(layer.inputs), "input_shapes": [list(s) for s in layer.input_shapes],
        "output_shape": list(layer.output_shape), "weight_shape": list(layer.weight_shape or []) or None,
        "activation": layer.activation, "macs": layer.macs, "supported": layer.supported,
    }


def layer_table(graph: Graph) -> str:
    """Name, alias, op, shapes, weights and MACs of every layer."""
    header = ("layer", "alias", "op", "input", "output", "weights", "MACs")
    rows = []
    for layer in graph:
        op = layer.op + (f" [{layer.activation}]" if layer.activation and layer.kind != "activation" else "")
        alias = next((a for a in layer.aliases if a != layer.tensors[0]), layer.aliases[0] if layer.aliases else "")
        name = layer.name + (" *" if layer.name in graph.tie_numbered else "") + \
            (" !" if layer.name in graph.order_disputed else "")
        rows.append((name, alias, op + ("" if layer.supported else "  (unsupported)"),
                     ", ".join(_shape(s) for s in layer.input_shapes) or "-", _shape(layer.output_shape),
                     _shape(layer.weight_shape), f"{layer.macs:,}" if layer.macs else "-"))
    lines = _table(header, rows)
    total = sum(layer.macs for layer in graph)
    lines.append(f"\n{len(graph)} layers, {total:,} MACs per image (network `{graph.name}`, opset {graph.opset})")
    if graph.tie_numbered:
        lines.append(f"* {len(graph.tie_numbered)} numbers decided between parallel branches of one kind (counted "
                     "breadth-first, by ONNX node name); see docs/naming.md")
    if graph.order_disputed:
        lines.append(f"! {len(graph.order_disputed)} numbers decided by comparing the first count's names as strings "
                     "(conv100 before conv99), as the zoo's YOLOv8l/x and YOLOv9c configs show; compared as "
                     "numbers they would differ (docs/naming.md)")
    if graph.end_nodes or graph.start_nodes:
        lines.append(f"cut at start nodes {', '.join(graph.start_nodes) or '(the inputs)'}; "
                     f"end nodes {', '.join(graph.end_nodes) or '(the outputs)'}")
    return "\n".join(lines)


# ------------------------------------------------------------------ plans

_BIAS = {BiasMode.SINGLE: "single", BiasMode.DOUBLE: "double", None: "-"}


def _bits(layer: LayerPlan) -> str:
    ins = "/".join(str(b) for b in dict.fromkeys(layer.input_bits)) or "-"
    weights = str(layer.weight_bits) if layer.weight_bits is not None else "-"
    return f"{ins} {weights} {layer.output_bits}"


def _algorithms(layer: LayerPlan) -> str:
    flags = [("eq", layer.equalization), ("ibc", layer.bias_correction), ("ft", layer.finetune),
             ("ar", layer.adaround)]
    return " ".join(name for name, on in flags if on) or "-"


def _clip(layer: LayerPlan) -> str:
    parts = []
    if layer.activation_clipping is not None:
        parts.append(f"a:{layer.activation_clipping}")
    if layer.weights_clipping is not None:
        parts.append(f"w:{layer.weights_clipping}")
    return " ".join(parts) or "-"


def _ranges(layer: LayerPlan) -> str:
    parts = []
    if layer.force_range_in is not None:
        parts.append(f"in[{layer.force_range_index}]={list(layer.force_range_in)}")
    if layer.force_range_out is not None:
        parts.append(f"out={list(layer.force_range_out)}")
    return " ".join(parts) or "-"


def _set_by(layer: LayerPlan) -> str:
    lines = sorted({s.span.line for s in layer.sources.values() if s.span is not None})
    return ",".join(str(n) for n in lines) or "-"


def plan_table(plan: Plan) -> str:
    """One row per layer (bits in/weights/out, bias, groups, clipping, ranges, algorithms, lines), then settings."""
    header = ("layer", "kind", "bits i w o", "bias", "groups", "clipping", "forced ranges", "algorithms", "set by")
    rows = [(layer.short_name, layer.kind, _bits(layer), _BIAS.get(layer.bias_mode, layer.bias_mode),
             str(layer.quantization_groups) if layer.weight_bits else "-", _clip(layer), _ranges(layer),
             _algorithms(layer), _set_by(layer)) for layer in plan]
    lines = _table(header, rows)
    lines.append("")
    lines.extend(_settings_lines(plan))
    return "\n".join(lines)


def _bias_correction(plan: Plan) -> str:
    """IBC's state; finetuned layers run their bias correction inside finetune (the guide's QFT)."""
    ibc = sum(1 for layer in plan if layer.bias_correction)
    tuned = sum(1 for layer in plan if layer.finetune)
    if not tuned:
        return "on" if plan.settings.bias_correction else "off"
    return f"{f'on {ibc} layers' if ibc else 'off'}; inside finetune on {tuned} layers"


def _settings_lines(plan: Plan) -> list[str]:
    s = plan.settings
    level = s.source("optimization_level")
    out = [
        f"network `{plan.network}`, script {plan.script}",
        f"optimization_level {s.optimization_level} ({'default' if level.span is None else f'line {level.span.line}'}), compression_level {s.compression_level}, "
        f"4-bit weights ratio {s.auto_4bit_weights_ratio:g}",
        f"calibration: {s.calibration.calibset_size} images in batches of {s.calibration.batch_size}",
        f"equalization: {'on' if s.equalization else 'off'} (target {s.equalization_target}); "
        f"bias correction: {_bias_correction(plan)}",
    ]
    ft, ar = s.finetune, s.adaround
    if ft.policy:
        out.append(f"finetune: {ft.epochs} epochs on {ft.dataset_size} images, batch {ft.batch_size}, "
                   f"lr {ft.learning_rate:g}, warmup {ft.warmup_epochs}, loss {ft.def_loss_type}")
    else:
        out.append("finetune: off")
    if ar.policy:
        out.append(f"adaround: {ar.epochs} epochs on {ar.dataset_size} images, batch {ar.batch_size}, mode {ar.mode}")
    else:
        out.append("adaround: off")
    for norm in s.normalization:
        out.append(f"normalization `{norm.name}` of {norm.input.rsplit('/', 1)[-1]}: mean {list(norm.mean)}, "
                   f"std {list(norm.std)}")
    return out


def _value(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def explain_layer(plan: Plan, name: str) -> str:
    """The statements that shaped layer ``name``, in order, then its final plan with each field's source."""
    layer = plan[name]
    out = [f"{layer.name} ({layer.kind})", ""]
    if layer.history:
        out.append("statements, in order:")
        for source, fields in layer.history:
            where = source.where()
            out.append(f"  {where}: {_short(source.text)}")
            out.append("      sets " + ", ".join(f"{k}={_value(v)}" for k, v in fields))
    else:
        out.append("no statement touches this layer; every field has its default")
    out.append("")
    out.append("final plan:")
    rows = [(f"  {field}", _value(getattr(layer, field)), layer.source(field).where())
            for field in LayerPlan.FIELDS]
    out.extend(_table(("  field", "value", "set by"), rows))
    return "\n".join(out)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------- results


def algorithm_summary(report: QuantizeReport) -> list[str]:
    """`alls quantize`: one line per algorithm that ran, with what it achieved (from the quantized model's
    report)."""
    lines = []
    if report.equalization:
        tensors = report.equalization
        lines.append(f"equalized {len(tensors)} tensor{'s' if len(tensors) != 1 else ''} between layers")
    corrected = report.bias_correction
    if corrected:
        import statistics

        removed = statistics.median(r.removed for r in corrected)
        lost = sum(r.channels_lost for r in corrected)
        channels = sum(r.channels for r in corrected)
        line = (f"bias correction on {len(corrected)} layers: median {100 * removed:.0f}% of the mean channel error "
                f"removed")
        flipped = sum(r.channels_flipped for r in corrected)
        if flipped:
            line += f"; {flipped} channels finished by rounding one weight the other way"
        if lost:
            line += f"; {lost} of {channels} channel corrections were below half a bias step and lost"
            if any(r.channels_lost and r.bias_mode is not BiasMode.DOUBLE for r in corrected):
                line += f" (bias_mode={BiasMode.DOUBLE} keeps most of them)"
        lines.append(line)
    for algo, trained in (("finetune", report.finetune), ("adaround", report.adaround)):
        if trained:
            lines.append(f"{algo} trained {len(trained)} layer{'s' if len(trained) != 1 else ''} against the float network"
                         + (", their bias correction included" if algo == "finetune" else ""))
            lines += _held_out_lines(trained)
    return lines


def _held_out_lines(trained: list[Trained]) -> list[str]:
    """One line per trained layer: its loss on the images held out from its training, before and after."""
    lines = []
    for r in trained:
        if not r.heldout_images:
            continue
        kept = f"epoch {r.best_epoch} of {r.epochs_run}" if r.kept else "round to nearest kept"
        lines.append(f"  {r.layer.rsplit('/', 1)[-1]}: held-out loss {r.heldout_before:.4g} -> "
                     f"{r.heldout_after:.4g} on {r.heldout_images} images ({kept})")
    return lines


def precision_summary(plan: Plan) -> str:
    """`alls quantize`: how many layers at each precision."""
    counts: dict[str, int] = {}
    for layer in plan:
        if layer.weight_bits is not None:
            key = f"a{layer.input_bits[0] if layer.input_bits else 8}_w{layer.weight_bits}_a{layer.output_bits}"
            counts[key] = counts.get(key, 0) + 1
    modes = ", ".join(f"{n} at {k}" for k, n in sorted(counts.items()))
    return f"quantized {len(plan)} layers ({modes or 'no weighted layers'})"


def _percent(share: float | None) -> str:
    return f"{100 * share:.2f}%" if share is not None else "-"


def figures_table(result: Evaluation) -> str:
    """`alls eval`: the figures of the numeric target against the native one, one row per output
    (``result`` is `alls.runtime.Evaluation`)."""
    header = ("output", "cosine", "SNR dB", "max abs err", "range", "top-1 agree", "acc native", "acc numeric")
    rows = [(name.rsplit("/", 1)[-1], f"{f.cosine:.5f}", f"{f.snr_db:.2f}", f"{f.max_abs_error:.4g}", f"{f.range:.4g}",
             _percent(f.top1_agreement), _percent(f.native_accuracy), _percent(f.numeric_accuracy))
            for name, f in result.outputs.items()]
    return "\n".join([f"numeric against native on {result.images} images:", *_table(header, rows)])

