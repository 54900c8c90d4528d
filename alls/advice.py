"""Advice on a resolved plan, from Hailo's own guide, as warnings.

Each rule is one function of the plan and the graph that yields
diagnostics (ALS311-ALS316); `alls explain CODE` gives the reasoning. The
advice points at the statement that caused it where there is one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from alls.diagnostics import Diagnostic, Severity
from alls.graph import Graph
from alls.plan import Plan, Source

__all__ = ["advise", "MIN_CALIBSET"]

# A 16-bit boundary the resolver found: (producer, consumer, bits written, bits asked).
Boundary = tuple[str, str, int, int]

W = Severity.WARNING
MIN_CALIBSET = 32
_SHOWN = 6


def advise(plan: Plan, graph: Graph, boundaries: Sequence[Boundary] = ()) -> list[Diagnostic]:
    """Every piece of advice for ``plan``; ``boundaries`` come from the resolver's bits step."""
    out: list[Diagnostic] = []
    for rule in (_four_bit, _calibration, _mobilenet, _detection_outputs):
        out.extend(rule(plan, graph))
    out.extend(_partial_16bit(plan, boundaries))
    return out


def _names(names: list[str]) -> str:
    shown = ", ".join(f"`{n.rsplit('/', 1)[-1]}`" for n in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _by_source(items: list[tuple[Source, str]]) -> dict[Source, list[str]]:
    grouped: dict[Source, list[str]] = {}
    for source, name in items:
        grouped.setdefault(source, []).append(name)
    return grouped


def _four_bit(plan: Plan, graph: Graph) -> Iterator[Diagnostic]:
    """Guide: any net with 4-bit layers must use QFT (finetune) and weights clipping."""
    lacking = [(layer.source("weight_bits"), layer.name) for layer in plan
               if layer.weight_bits == 4 and not ((layer.finetune or layer.adaround) and layer.weights_clipping)]
    for source, names in _by_source(lacking).items():
        missing, lines = [], []
        if any(not (plan[n].finetune or plan[n].adaround) for n in names):
            missing.append("finetune")
            # finetune reads dataset_size of the calibration images: as many as the calibration reads
            size = min(plan.settings.finetune.dataset_size, plan.settings.calibration.calibset_size)
            lines.append(f"`post_quantization_optimization(finetune, policy=enabled, dataset_size={size})` "
                         f"({_finetune_plan(plan, size)})")
        unclipped = [n for n in names if plan[n].weights_clipping is None]
        if unclipped:
            missing.append("weights clipping")
            layers = ", ".join(n.rsplit("/", 1)[-1] for n in unclipped)
            lines.append(f"`pre_quantization_optimization(weights_clipping, layers=[{layers}], mode=mmse)`")
        yield Diagnostic(
            "ALS311", W, f"{len(names)} layer{'s' if len(names) != 1 else ''} with 4-bit weights "
            f"({_names(names)}) without {' and '.join(missing)}", source.span, "4-bit weights",
            f"add {' and '.join(lines)} (Hailo's guide: 4-bit weights need finetune and weights clipping)",
        )


def _finetune_plan(plan: Plan, size: int) -> str:
    """What finetune will do with ``size`` images (runtime/algorithms/finetune.py): a quarter held out, 1024 steps
    unless the script sets the epochs."""
    ft = plan.settings.finetune
    held = 0 if size < 2 else min(size - 1, max(1, round(size / 4)))
    per_epoch = -(-(size - held) // ft.batch_size)
    source = plan.settings.sources.get("finetune.epochs")
    epochs = ft.epochs if source is not None and not source.is_default else max(ft.epochs, -(-1024 // per_epoch))
    if not held:
        return f"with one image there is none to hold out: each layer trains {epochs * per_epoch} steps on it"
    return (f"each layer then trains up to {epochs * per_epoch} steps on {size - held} of those images and keeps "
            f"the checkpoint that does best on the other {held}, never worse than where it started there"
            + ("; with so few held out that check is noisy" if held < 16 else ""))


def _partial_16bit(plan: Plan, boundaries: Sequence[Boundary]) -> Iterator[Diagnostic]:
    """Guide: 16-bit must cover the whole network; the narrow layers in between cut it."""
    grouped: dict[Source, dict[str, int]] = {}
    for producer, consumer, written, asked in boundaries:
        wide, narrow = (producer, consumer) if written > asked else (consumer, producer)
        source = plan[wide].source("output_bits" if wide == producer else "precision_mode")
        narrows = grouped.setdefault(source, {})
        narrows[narrow] = narrows.get(narrow, 0) + 1
    for source, narrows in grouped.items():
        edges = sum(narrows.values())
        names = [f"`{n.rsplit('/', 1)[-1]}` ({plan[n].kind})" for n in narrows]
        shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
        yield Diagnostic(
            "ALS312", W, f"16-bit on part of the network: {edges} tensor{'s' if edges != 1 else ''} change width "
            f"at {len(narrows)} narrower layer{'s' if len(narrows) != 1 else ''}: {shown}", source.span,
            "partial 16-bit",
            "apply the precision to the whole network (`quantization_param({*}, precision_mode=a16_w16)`), "
            "or include these layers in the selector",
        )


def _calibration(plan: Plan, graph: Graph) -> Iterator[Diagnostic]:
    settings = plan.settings
    size, batch = settings.calibration.calibset_size, settings.calibration.batch_size
    where = settings.source("calibration.calibset_size")
    if size < MIN_CALIBSET:
        yield Diagnostic(
            "ALS313", W, f"calibset_size={size} is below {MIN_CALIBSET} images: the ranges will not be "
            "representative", where.span, "small calibration set",
            f"calibrate on at least {MIN_CALIBSET} images (the default is 64), drawn from the real input "
            "distribution", )
    if batch > size:
        yield Diagnostic(
            "ALS314", W, f"calibration batch_size={batch} is above calibset_size={size}",
            settings.source("calibration.batch_size").span, "batch larger than the set",
            "the calibration reads batch_size x batches images; make the batch at most calibset_size")
    for algo in ("finetune", "adaround"):
        params = getattr(settings, algo)
        if params.policy and params.batch_size > params.dataset_size:
            yield Diagnostic(
                "ALS314", W, f"{algo} batch_size={params.batch_size} is above its dataset_size={params.dataset_size}",
                settings.source(f"{algo}.batch_size").span, "batch larger than the set",
                f"make the {algo} batch at most dataset_size")


def _mobilenet(plan: Plan, graph: Graph) -> Iterator[Diagnostic]:
    """Guide: MobileNet-like networks benefit greatly from equalization and IBC."""
    dw = [layer for layer in plan if layer.kind == "dw"]
    if not dw:
        return
    missing = []
    if not any(layer.equalization for layer in plan):
        missing.append("equalization")
    if not any(layer.bias_correction or layer.finetune or layer.adaround for layer in plan):
        missing.append("bias correction")
    if missing:
        source = plan.settings.source("optimization_level")
        yield Diagnostic(
            "ALS315", W, f"a MobileNet-like network ({len(dw)} depthwise layer{'s' if len(dw) != 1 else ''}) without {' and '.join(missing)}",
            source.span, "depthwise network",
            "add `pre_quantization_optimization(equalization, policy=enabled)` and "
            "`post_quantization_optimization(bias_correction, policy=enabled)`, or use optimization_level=1",
        )


def _detection_outputs(plan: Plan, graph: Graph) -> Iterator[Diagnostic]:
    """Guide: conv output branches of detectors gain much from 16-bit outputs."""
    heads = []
    for output in graph.outputs:
        producer = graph.get(output.inputs[0]) if output.inputs else None
        shape = output.output_shape
        spatial = len(shape) == 4 and shape[2] * shape[3] > 1
        if producer is not None and producer.kind in ("conv", "deconv", "dw") and spatial \
                and plan[output.name].output_bits == 8:
            heads.append(output.name)
    if heads:
        yield Diagnostic(
            "ALS316", W, f"{len(heads)} output map{'s' if len(heads) != 1 else ''} of a detection or dense-prediction "
            f"head stay 8-bit ({_names(heads)})", None, "",
            "16-bit outputs reduce the under-representation of such branches: "
            "`quantization_param({output_layer*}, precision_mode=a16_w16)`",
        )
