"""What a script asks of finetune and AdaRound, read from the plan: which layers train, with what
configuration (`configs`), for how many epochs and steps, on how many images and positions.

`alls.runtime.algorithms.finetune` runs the training these settings describe.
"""

from __future__ import annotations

from alls.graph import WEIGHTED_KINDS, Graph, Layer
from alls.plan import LossType, Plan
from alls.runtime.algorithms.patches import POSITIONS_PER_IMAGE
from alls.runtime.algorithms.reconstruct import Config, held_out

__all__ = ["configs", "finetune_epochs", "finetune_steps", "untrained", "images_needed", "positions_per_image",
           "FINETUNE_LR_FACTOR", "FINETUNE_STEPS", "ROWS_PER_LAYER"]

FINETUNE_LR_FACTOR = 100.0
FINETUNE_STEPS = 1024  # the steps a layer trains by default, whatever the images given
ROWS_PER_LAYER = 1 << 16  # the rows a layer trains on: 64 positions an image up to 1024 images


def _beta(b_range: tuple[float, float]) -> tuple[float, float]:
    """β's annealing, from high to low, whichever order ``b_range`` gives."""
    return float(max(b_range)), float(min(b_range))


def _producers(graph: Graph, name: str) -> list[str]:
    """The weighted layers whose outputs make layer ``name``'s output (itself, if it has weights)."""
    layer = graph[name]
    if layer.kind in WEIGHTED_KINDS:
        return [layer.name]
    return [p for source in layer.inputs for p in _producers(graph, source)]


def _losses(graph: Graph, plan: Plan) -> dict[str, tuple[LossType, float]]:
    """Loss type and factor of every weighted layer reached by ``loss_layer_names`` (the first wins)."""
    ft = plan.settings.finetune
    names = ft.loss_layer_names or ()
    types = ft.loss_types or (ft.def_loss_type,) * len(names)
    factors = ft.loss_factors or (1.0,) * len(names)
    chosen: dict[str, tuple[LossType, float]] = {}
    for name, kind, factor in zip(names, types, factors):
        for producer in _producers(graph, name):
            chosen.setdefault(producer, (kind, float(factor)))
    return chosen


def configs(graph: Graph, plan: Plan) -> dict[str, tuple[str, Config]]:
    """The algorithm and training configuration of every layer the plan flags, in graph order."""
    ft, ad = plan.settings.finetune, plan.settings.adaround
    losses = _losses(graph, plan)
    epochs, steps = finetune_epochs(plan), finetune_steps(plan)
    out: dict[str, tuple[str, Config]] = {}
    for index, layer in enumerate(graph):
        lp = plan[layer.name]
        if not _trainable(layer) or not (lp.finetune or lp.adaround):
            continue
        if lp.finetune:
            loss, factor = losses.get(layer.name, (ft.def_loss_type, 1.0))
            out[layer.name] = ("finetune", Config(
                images=ft.dataset_size, epochs=epochs, batch_size=ft.batch_size,
                learning_rate=ft.learning_rate * FINETUNE_LR_FACTOR,
                lr_warmup_steps=ft.warmup_epochs * -(-ft.dataset_size // ft.batch_size),
                reg_weight=ad.weight, reg_warmup=ad.warmup, beta=_beta(ad.b_range),
                optimizer=ft.optimizer, learn_bias=True, learn_scales=ft.train_scales, loss=loss, factor=factor,
                seed=index, steps=steps))
        else:
            out[layer.name] = ("adaround", Config(
                images=ad.dataset_size, epochs=ad.epochs, batch_size=ad.batch_size, learning_rate=ad.learning_rate,
                reg_weight=ad.weight, reg_warmup=ad.warmup, beta=_beta(ad.b_range), seed=index))
    return out


def finetune_epochs(plan: Plan) -> int:
    """The script's finetune epochs; by default enough for `FINETUNE_STEPS` steps on the images that
    are not held out (the guide's 4 epochs of 2048 images make 1024), at least the default 4."""
    ft = plan.settings.finetune
    source = plan.settings.sources.get("finetune.epochs")
    if source is not None and not source.is_default:
        return ft.epochs
    per_epoch = -(-(ft.dataset_size - held_out(ft.dataset_size)) // ft.batch_size)
    return max(ft.epochs, -(-FINETUNE_STEPS // max(per_epoch, 1)))


def finetune_steps(plan: Plan) -> int | None:
    """The most steps of a layer when the script leaves finetune's epochs to `finetune_epochs`:
    `FINETUNE_STEPS`, or the default epochs' steps where those are more (None: the script's
    epochs, every step of each). The last epoch stops there: the guide's 4 epochs of 2048 images are
    1024 steps, not the 6 whole epochs (1152 steps) of the 1536 images that are not held out."""
    ft = plan.settings.finetune
    source = plan.settings.sources.get("finetune.epochs")
    if source is not None and not source.is_default:
        return None
    per_epoch = -(-(ft.dataset_size - held_out(ft.dataset_size)) // ft.batch_size)
    return max(FINETUNE_STEPS, ft.epochs * per_epoch)


def _trainable(layer: Layer) -> bool:
    """A conv, depthwise, transposed conv or dense layer (not a dense layer over a sequence)."""
    return layer.kind in WEIGHTED_KINDS and (layer.kind != "fc" or len(layer.output_shape) == 2)


def untrained(graph: Graph, plan: Plan) -> list[str]:
    """Layers the plan flags that the reconstruction cannot train (dense layers over sequences)."""
    return [layer.name for layer in graph if (plan[layer.name].finetune or plan[layer.name].adaround)
            and not _trainable(layer)]


def images_needed(plan: Plan) -> dict[str, int]:
    """Images each algorithm the plan runs reads: {"finetune": dataset_size, ...}."""
    needed = {}
    for algo in ("finetune", "adaround"):
        if any(getattr(layer, algo) and layer.kind in WEIGHTED_KINDS for layer in plan):
            needed[algo] = getattr(plan.settings, algo).dataset_size
    return needed


def positions_per_image(images: int) -> int:
    """Output positions drawn from every image: 64, fewer beyond 1024 images (ROWS_PER_LAYER rows a layer)."""
    return max(1, min(POSITIONS_PER_IMAGE, ROWS_PER_LAYER // max(images, 1)))
