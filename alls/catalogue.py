"""The catalogue of commands: what each one takes, as data.

The quantization commands are catalogued fully: every argument with its
type, allowed values or range, default and a one-line doc. They are the
commands the emulator interprets (``interpreted=True``). The compiler and
allocator commands are known by name and shape only, and the emulator does
not apply them.

Commands with sub-commands (``pre_quantization_optimization(equalization,
...)``) take the sub-command as their first positional argument; each
sub-command has its own keywords.

Defaults live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alls.types import (
    Bool,
    Enum,
    Float,
    Identifier,
    Int,
    Layers,
    ListOf,
    Policy,
    Range,
    ValueType,
)

__all__ = [
    "Arg",
    "Deprecated",
    "Command",
    "COMMANDS",
    "PRECISION_MODES",
    "LEVELS",
    "COMPRESSION",
    "Level",
    "BIAS_MODES",
    "command",
]

PRECISION_MODES = ("a8_w8", "a8_w4", "a16_w16", "a16_w8", "a16_w8_a16", "a16_w4_a16", "a8_w8_a16")
BIAS_MODES = ("single_scale_decomposition", "double_scale_initialization")
ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "leaky_relu", "hardswish", "silu")
LOSS_TYPES = ("l2", "l2rel", "ce", "cosine", "l1")
NUMBERS = ListOf(Float(), 1)


@dataclass(frozen=True)
class Deprecated:
    """An old spelling: ``since`` the form that replaces it (shown as help)."""

    replacement: str


@dataclass(frozen=True)
class Arg:
    """One argument: its type, default, doc, and whether it is required."""

    name: str
    type: ValueType
    doc: str
    default: object = None
    required: bool = False
    deprecated: Deprecated | None = None


@dataclass(frozen=True)
class Command:
    """A command (or a sub-command) and the arguments it takes.

    ``positional`` lists the positional arguments in order; ``keywords`` maps
    each keyword to its `Arg`; ``subcommands`` (for the optimization
    commands) maps a sub-command name to its own `Command`. An ``open``
    command accepts arguments it does not list (compiler commands, and
    sub-commands the emulator does not interpret, whose keys vary between
    compiler versions). ``targets`` is how many assignment targets it takes.
    """

    name: str
    doc: str
    positional: tuple[Arg, ...] = ()
    keywords: dict[str, Arg] = field(default_factory=dict)
    subcommands: dict[str, Command] | None = None
    interpreted: bool = False
    open: bool = False
    targets: tuple[int, int | None] = (0, None)
    validators: tuple[str, ...] = ()  # names of cross-argument checks (alls/checker.py)

    def keyword(self, name: str) -> Arg | None:
        return self.keywords.get(name)

    def bind(self, count: int) -> tuple[Arg, ...]:
        """The `Arg` of each of ``count`` positional arguments, in order.

        Optional leading arguments are skipped when fewer values are given:
        ``change_output_activation(sigmoid)`` names the activation alone.
        """
        slots = list(self.positional)
        while len(slots) > count and slots and not slots[0].required:
            slots.pop(0)
        return tuple(slots[:count])


def _kw(*args: Arg) -> dict[str, Arg]:
    return {a.name: a for a in args}


def _layers(doc: str = "the layers it applies to (default: every layer it can apply to)") -> Arg:
    return Arg("layers", Layers(), doc)


# -------------------------------------------------------- quantization_param

QUANTIZATION_PARAM = Command(
    "quantization_param",
    "Per-layer quantization: bit widths, bias mode, groups and forced ranges.",
    positional=(Arg("layers", Layers(), "the layers it applies to", required=True),),
    keywords=_kw(
        Arg("precision_mode", Enum(PRECISION_MODES),
            "bits of input activations, weights and (optionally) output activations: aX_wY[_aZ]", "a8_w8"),
        Arg("bias_mode", Enum(BIAS_MODES),
            "bias representation: a narrow mantissa (single) or a 16-bit one (double, finer)",
            "single_scale_decomposition"),
        Arg("quantization_groups", Int(1, 4),
            "contiguous groups of output channels, each with its own weight scale", 1),
        Arg("force_range_in", Range(), "force the input activation range to [lo, hi] instead of calibrating it"),
        Arg("force_range_out", Range(), "force the output activation range to [lo, hi] instead of calibrating it"),
        Arg("force_range_index", Int(0), "which input of a multi-input layer force_range_in applies to", 0),
        Arg("weight_group_size", Int(1), "input channels that share a weight scale (group-wise weights)"),
        Arg("max_elementwise_feed_repeat", Int(1), "how often an elementwise layer may re-read an input (compiler)"),
        Arg("activation_fit", Policy(), "fit the activation function to the quantized range", "enabled"),
        Arg("use_16bit_bias", Bool(), "old form of bias_mode",
            deprecated=Deprecated("bias_mode=double_scale_initialization")),
        Arg("activation_clipping_mode", Enum(("disabled", "manual", "percentile", "percentile_force")),
            "old form of activation clipping",
            deprecated=Deprecated("pre_quantization_optimization(activation_clipping, layers=..., mode=..., clipping_values=[lo, hi])")),
        Arg("activation_clipping_values", Range(), "old form of activation clipping",
            deprecated=Deprecated("pre_quantization_optimization(activation_clipping, layers=..., mode=..., clipping_values=[lo, hi])")),
        Arg("weights_clipping_mode", Enum(("disabled", "manual", "percentile", "mmse", "mmse_if4b")),
            "old form of weights clipping",
            deprecated=Deprecated("pre_quantization_optimization(weights_clipping, layers=..., mode=..., clipping_values=[lo, hi])")),
        Arg("weights_clipping_values", Range(), "old form of weights clipping",
            deprecated=Deprecated("pre_quantization_optimization(weights_clipping, layers=..., mode=..., clipping_values=[lo, hi])")),
    ),
    interpreted=True,
    targets=(0, 0),
    validators=("old_spellings",),
)

# -------------------------------------------- pre_quantization_optimization

_CLIPPING_MODES_ACT = ("disabled", "manual", "percentile", "percentile_force")
_CLIPPING_MODES_W = ("disabled", "manual", "percentile", "mmse", "mmse_if4b")


def _sub(name: str, doc: str, *args: Arg, interpreted: bool = False,
         validators: tuple[str, ...] = ()) -> Command:
    return Command(name, doc, keywords=_kw(*args), interpreted=interpreted, open=not interpreted,
                   validators=tuple(validators))


PRE_SUBCOMMANDS = {
    c.name: c
    for c in (
        _sub("equalization", "Cross-layer equalization of channel ranges (an exact float transform).",
             Arg("policy", Policy(), "run equalization", "enabled"),
             _layers(),
             Arg("equalization_target", Enum(("weights", "activation")),
                 "balance weight ranges, or activation ranges too", "weights"),
             interpreted=True),
        _sub("activation_clipping", "Clip activation ranges before the scales are chosen.",
             _layers(),
             Arg("mode", Enum(_CLIPPING_MODES_ACT),
                 "manual [lo, hi]; percentile of the calibration data; percentile_force also widens", "disabled"),
             Arg("clipping_values", Range(), "[lo, hi]: values for manual, percentiles (0..100) otherwise"),
             Arg("recollect_stats", Bool(), "collect the statistics again after clipping", False),
             interpreted=True, validators=("clipping",)),
        _sub("weights_clipping", "Clip weight ranges before the weight scales are chosen.",
             _layers(),
             Arg("mode", Enum(_CLIPPING_MODES_W),
                 "manual [lo, hi]; percentile of |w|; mmse minimises the quantization error (mmse_if4b: 4-bit only)",
                 "disabled"),
             Arg("clipping_values", Range(), "[lo, hi]: values for manual, percentiles (0..100) for percentile"),
             interpreted=True, validators=("clipping",)),
        _sub("ew_add_fusing", "Fuse elementwise adds into the preceding conv (compiler).",
             Arg("policy", Policy(), "allow fusing", "enabled"),
             Arg("infusible_ew_add_type", Identifier(), "which adds are never fused"), _layers()),
        _sub("matmul_correction", "Zero-point compensation of matmul layers.",
             _layers(), Arg("correction_type", Identifier(), "compensation scheme (zp_comp_block, ...)")),
        _sub("matmul_equalization", "Equalization across the inputs of matmul layers.",
             _layers(), Arg("policy", Policy(), "run it", "disabled"), Arg("matmul_bias", Policy(), "add a bias")),
        _sub("layer_norm_decomposition", "Decompose layer norms for integer execution.",
             _layers(), Arg("bit_decomposition_mode", Enum(("uniform_precision", "split_precision")), "precision split"),
             Arg("eq_consumer", Bool(), "equalize the consumer"), Arg("equalization", Policy(), "equalize"),
             Arg("square_reduce_sum_groups", Int(1), "groups of the square-sum reduction"),
             Arg("token_equalization", Policy(), "equalize tokens")),
        _sub("decompose_conv_factor", "Split convs by a factor (compiler).", _layers(), Arg("policy", Policy(), "run it")),
        _sub("se_optimization", "Squeeze-and-excitation tiling (compiler).", _layers(),
             Arg("method", Identifier(), "tiling method"), Arg("mode", Identifier(), "schedule"),
             Arg("count", Int(1), "number of blocks"), Arg("tile_height", Int(1), "tile height")),
        _sub("global_avgpool_reduction", "Reduce a global average pool in stages (compiler).", _layers(),
             Arg("division_factors", ListOf(Int(1), 1), "reduction per stage")),
        _sub("smart_softmax_stats", "Softmax statistics for transformers.",
             Arg("force_zero_centered", Bool(), "center the statistics"), Arg("optimize_bias", Policy(), "optimize bias"),
             Arg("optimize_bias_algorithm", Identifier(), "algorithm"), Arg("use_saitama", Bool(), "fast statistics")),
        _sub("quarot", "Hadamard rotations for LLM quantization.", Arg("policy", Policy(), "run it"),
             Arg("equalize_inputs", Policy(), "equalize inputs"), Arg("equalize_outputs", Policy(), "equalize outputs")),
        _sub("llm_modifications", "Graph rewrites for LLMs.", Arg("policy", Policy(), "run it"),
             Arg("conv_splits", Int(1), "splits of the head conv")),
        _sub("dead_channels_removal", "Remove channels that are never active.", Arg("policy", Policy(), "run it"), _layers()),
        _sub("zero_static_channels", "Zero channels that are constant on the calibration set.",
             Arg("policy", Policy(), "run it"), _layers()),
        _sub("resolution_reduction", "Optimize at a lower input resolution.", Arg("shape", ListOf(Int(1)), "input shape")),
        _sub("switch_concat_with_add", "Replace a concat by an add where possible.", Arg("policy", Policy(), "run it"), _layers()),
        _sub("split_ew_mult_by_bit_significance", "Split 16-bit elementwise multiplies.", Arg("policy", Policy(), "run it"), _layers()),
        _sub("split_fused_activation", "Split fused activations into their own layers.", Arg("policy", Policy(), "run it"), _layers()),
    )
}

PRE_QUANTIZATION_OPTIMIZATION = Command(
    "pre_quantization_optimization",
    "Float-domain optimizations applied before quantization.",
    positional=(Arg("subcommand", Identifier(), "the optimization", required=True),),
    subcommands=PRE_SUBCOMMANDS,
    interpreted=True,
    targets=(0, 0),
)

# ------------------------------------------- post_quantization_optimization

_FINETUNE = _sub(
    "finetune", "Quantization-aware finetuning (QFT) of weights and biases against the float network.",
    Arg("policy", Policy(), "run finetuning", "disabled"),
    Arg("dataset_size", Int(1), "images used for finetuning", 2048),
    Arg("epochs", Int(1), "passes over the dataset", 4),
    Arg("batch_size", Int(1), "images per step", 8),
    Arg("learning_rate", Float(0.0, lo_open=True), "initial learning rate", 1e-4),
    Arg("warmup_epochs", Int(0), "epochs of linear learning-rate warmup", 1),
    Arg("loss_layer_names", Layers(), "layers whose outputs the loss compares (default: the outputs)"),
    Arg("loss_types", ListOf(Enum(LOSS_TYPES, ignore_case=True), 1), "loss for each loss layer"),
    Arg("loss_factors", NUMBERS, "weight of each loss layer's loss"),
    Arg("def_loss_type", Enum(LOSS_TYPES, ignore_case=True), "loss of the output layers", "l2rel"),
    Arg("train_scales", Bool(), "also train the weight scales", False),
    Arg("meta_arch", Identifier(), "architecture hint for the loss (yolo, ...)"),
    Arg("layers_to_freeze", Layers(), "layers that finetuning leaves unchanged"),
    Arg("optimizer", Enum(("adam", "sgd")), "optimizer", "adam"),
    interpreted=True, validators=("loss_lists",),
)

POST_SUBCOMMANDS = {
    c.name: c
    for c in (
        _sub("bias_correction", "Iterative bias correction (IBC), layer by layer in topological order.",
             Arg("policy", Policy(), "run bias correction", "disabled"),
             _layers(),
             Arg("device", Identifier(), "where the compiler runs it (ignored by the emulator)"),
             Arg("use_saitama", Bool(), "compiler statistics engine (ignored by the emulator)"),
             interpreted=True),
        _FINETUNE,
        _sub("adaround", "Adaptive rounding (AdaRound), layer by layer.",
             Arg("policy", Policy(), "run adaround", "disabled"),
             _layers(),
             Arg("dataset_size", Int(1), "images used", 1024),
             Arg("epochs", Int(1), "passes over the dataset per layer", 320),
             Arg("batch_size", Int(1), "images per step", 8),
             Arg("learning_rate", Float(0.0, lo_open=True), "learning rate", 1e-3),
             Arg("warmup", Float(0.0, 1.0), "share of the steps without the rounding regulariser", 0.2),
             Arg("weight", Float(0.0), "regulariser weight (lambda)", 0.01),
             Arg("b_range", Range(), "annealing range of beta, [low, high]"),
             Arg("mode", Enum(("train_all", "train_4bit")), "which layers to train", "train_4bit"),
             interpreted=True),
    )
}

POST_QUANTIZATION_OPTIMIZATION = Command(
    "post_quantization_optimization",
    "Optimizations applied after the first quantization: bias correction, finetune, adaround.",
    positional=(Arg("subcommand", Identifier(), "the optimization", required=True),),
    subcommands=POST_SUBCOMMANDS,
    interpreted=True,
    targets=(0, 0),
)

# ------------------------------------------------- model_optimization_config

CONFIG_SUBCOMMANDS = {
    c.name: c
    for c in (
        _sub("calibration", "The calibration set: how many images, in batches of what size.",
             Arg("batch_size", Int(1), "images per calibration batch", 8),
             Arg("calibset_size", Int(1), "images used for calibration", 64),
             Arg("device", Identifier(), "where the compiler runs it (ignored by the emulator)"),
             Arg("use_saitama", Bool(), "compiler statistics engine (ignored by the emulator)"),
             interpreted=True),
        _sub("compression_params", "Which share of the layers gets 4-bit weights.",
             Arg("auto_4bit_weights_ratio", Float(0.0, 1.0), "share of the weights (by size) quantized to 4 bits", 0.0),
             Arg("auto_16bit_weights_ratio", Float(0.0, 1.0), "share of the weights quantized to 16 bits", 0.0),
             interpreted=True),
        _sub("globals", "Global settings.",
             Arg("multiproc_policy", Policy("allowed"), "use several processes (compiler)"),
             Arg("output_encoding_vector", Policy(), "per-channel output encoding (compiler)"),
             Arg("output_16bit", Policy(), "16-bit output layers", "disabled"),
             Arg("gpu_policy", Identifier(), "GPU use (compiler)")),
        _sub("negative_exponent", "Allow negative shift exponents.", _layers(), Arg("rank", Int(0), "rank"),
             Arg("split_threshold", Float(), "threshold")),
        _sub("checker_cfg", "The compiler's quantization checker.", Arg("policy", Policy(), "run it"),
             Arg("batch_norm_checker", Bool(), "check batch norms"), Arg("analyze_mode", Identifier(), "analysis mode"),
             Arg("batch_size", Int(1), "batch"), Arg("dataset_size", Int(1), "images")),
    )
}

MODEL_OPTIMIZATION_CONFIG = Command(
    "model_optimization_config",
    "Settings of the optimization flow: calibration, compression and globals.",
    positional=(Arg("subcommand", Identifier(), "the settings group", required=True),),
    subcommands=CONFIG_SUBCOMMANDS,
    interpreted=True,
    targets=(0, 0),
)

MODEL_OPTIMIZATION_FLAVOR = Command(
    "model_optimization_flavor",
    "How hard to optimize and how much to compress; mapped onto the algorithms.",
    keywords=_kw(
        Arg("optimization_level", Int(0, 4),
            "0: equalization; 1: + bias correction; 2: equalization + finetune; 3, 4: equalization + adaround "
            "(see LEVELS)", 1),
        Arg("compression_level", Int(0, 5), "share of the weights at 4 bits: 0, 0.2, 0.4, 0.6, 0.8, 1.0", 0),
        Arg("batch_size", Int(1), "batch size of the optimization algorithms", 8),
    ),
    interpreted=True,
    targets=(0, 0),
)

@dataclass(frozen=True)
class Level:
    """What one ``optimization_level`` turns on, and with which parameters."""

    equalization: bool
    bias_correction: bool
    finetune: dict[str, object] | None = None  # finetune keywords, or None for no finetune
    adaround: dict[str, object] | None = None  # adaround keywords, or None for no adaround


# optimization_level -> algorithms, after Hailo's published table. Explicit
# pre/post_quantization_optimization statements override these wherever they
# stand in the script; the level only replaces the built-in defaults.
LEVELS = {
    0: Level(equalization=True, bias_correction=False),
    1: Level(equalization=True, bias_correction=True),
    2: Level(equalization=True, bias_correction=False, finetune={"epochs": 4, "dataset_size": 1024}),
    3: Level(equalization=True, bias_correction=False,
             adaround={"epochs": 320, "dataset_size": 256, "mode": "train_all"}),
    4: Level(equalization=True, bias_correction=False,
             adaround={"epochs": 320, "dataset_size": 1024, "mode": "train_all"}),
}

# compression_level -> share of the weights quantized to 4 bits.
COMPRESSION = {level: level / 5 for level in range(6)}


NORMALIZATION = Command(
    "normalization",
    "Normalize the input on the way in: (x - mean) / std, per channel.",
    positional=(
        Arg("mean", NUMBERS, "per-channel mean", required=True),
        Arg("std", ListOf(Float(0.0, lo_open=True), 1), "per-channel standard deviation", required=True),
        Arg("input", Layers(), "the input layer (default: every input)"),
    ),
    interpreted=True,
    targets=(0, None),
    validators=("normalization",),
)

CHANGE_OUTPUT_ACTIVATION = Command(
    "change_output_activation",
    "Replace the activation of output layers (for example add a sigmoid).",
    positional=(
        Arg("layers", Layers(), "the output layers (default: every output)"),
        Arg("activation", Enum(ACTIVATIONS), "the new activation", required=True),
    ),
    interpreted=True,
    targets=(0, 0),
)


# ----------------------------------------------- compiler and allocator

def _compiler(name: str, doc: str, targets: tuple[int, int | None] = (0, None)) -> Command:
    return Command(name, doc, open=True, targets=targets)


_COMPILER = [
    _compiler("compilation_param", "Per-layer compilation settings."),
    _compiler("buffers", "Buffer sizes between layers."),
    _compiler("defuse", "Split a layer into several."),
    _compiler("defuse_block", "Split a block of layers."),
    _compiler("shortcut", "Insert a shortcut layer."),
    _compiler("format_conversion", "Insert a format conversion."),
    _compiler("concat", "Insert a concat layer."),
    _compiler("context", "Declare a context of a multi-context network."),
    _compiler("place", "Place layers on a cluster."),
    _compiler("remove_node", "Remove a node from the graph."),
    _compiler("shape_splitter", "Split a tensor by shape."),
    _compiler("allocator_param", "Allocator settings."),
    _compiler("nms_postprocess", "Add an NMS post-processing stage."),
    _compiler("input_conversion", "Convert the input format on the device (color, layout)."),
    _compiler("resources_param", "Resource utilization limits."),
    _compiler("performance_param", "Performance settings of the compiler."),
    _compiler("bucket", "Group layers in a bucket."),
    _compiler("context_switch_param", "Context switch settings."),
    _compiler("mux_demux", "Insert a mux/demux pair."),
    _compiler("resize", "Resize an input on the device."),
    _compiler("join", "Join layers."),
    _compiler("network_group", "Declare a network group."),
    _compiler("transpose_concat", "Transpose a concat."),
    _compiler("platform_param", "Target platform settings."),
    _compiler("logits_layer", "Add a logits layer (softmax, argmax)."),
    _compiler("hef_param", "HEF file settings."),
    _compiler("ddr", "Route through DDR."),
    _compiler("output_layer", "Declare an output layer."),
    _compiler("set_kv_cache_global_params", "KV-cache settings of an LLM."),
    _compiler("set_input_mask_to_softmax", "Feed the input mask to the softmax."),
    _compiler("merge", "Merge two layers."),
    _compiler("l4_portal", "Insert an L4 portal."),
    _compiler("spatial_reshape_flow_params", "Spatial reshape settings."),
    _compiler("transpose", "Transpose the network's input and output."),
    _compiler("from_tf", "Import hints for TensorFlow graphs."),
    _compiler("portal", "Insert a portal."),
]

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        QUANTIZATION_PARAM,
        PRE_QUANTIZATION_OPTIMIZATION,
        POST_QUANTIZATION_OPTIMIZATION,
        MODEL_OPTIMIZATION_CONFIG,
        MODEL_OPTIMIZATION_FLAVOR,
        NORMALIZATION,
        CHANGE_OUTPUT_ACTIVATION,
        *_COMPILER,
    )
}


def command(name: str) -> Command | None:
    """The catalogued command called ``name``, or None."""
    return COMMANDS.get(name)
