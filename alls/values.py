"""The words a plan holds, typed: one enum per setting whose values are words of the script.

The resolver turns each word a script writes (``bias_mode=double_scale_initialization``,
``mode=mmse``, ``loss_types=[l2rel]``) into a member of its enum, and the runtime compares
members (``lp.bias_mode is BiasMode.DOUBLE``), never spellings. A member's value is its
script spelling and a member is a `str`, so the plan's JSON, its tables and ``explain`` read
as the script does; the catalogue's lists of allowed words are these enums' values.

Imports nothing: the checker, the plan and the runtime all use it.
"""

from __future__ import annotations

import enum

__all__ = ["Word", "BiasMode", "ClippingMode", "Activation", "LossType", "Optimizer", "AdaroundMode",
           "EqualizationTarget"]


class Word(str, enum.Enum):
    """A word of the script as an enum member: it prints, formats and serializes as its spelling."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def spellings(cls) -> tuple[str, ...]:
        """Every member's spelling, in order (the catalogue's allowed values)."""
        return tuple(str(m.value) for m in cls)


class BiasMode(Word):
    """``quantization_param(bias_mode=...)``: the bias mantissa's width (NUMERICS.md (N10))."""

    SINGLE = "single_scale_decomposition"  # an 8-bit mantissa
    DOUBLE = "double_scale_initialization"  # a 16-bit mantissa


class ClippingMode(Word):
    """``mode`` of activation and weights clipping (and the old ``*_clipping_mode``)."""

    DISABLED = "disabled"
    MANUAL = "manual"
    PERCENTILE = "percentile"
    PERCENTILE_FORCE = "percentile_force"  # activations only
    MMSE = "mmse"  # weights only
    MMSE_IF4B = "mmse_if4b"  # weights only: mmse where the weights are 4-bit

    @classmethod
    def for_activations(cls) -> tuple[ClippingMode, ...]:
        return (cls.DISABLED, cls.MANUAL, cls.PERCENTILE, cls.PERCENTILE_FORCE)

    @classmethod
    def for_weights(cls) -> tuple[ClippingMode, ...]:
        return (cls.DISABLED, cls.MANUAL, cls.PERCENTILE, cls.MMSE, cls.MMSE_IF4B)


class Activation(Word):
    """An activation: a layer's fused one (as the importer names it) or the one a script asks for
    (``change_output_activation``); the script may write those of `for_scripts`."""

    LINEAR = "linear"
    RELU = "relu"
    RELU6 = "relu6"
    CLIP = "clip"
    LEAKY_RELU = "leaky_relu"
    PRELU = "prelu"
    ELU = "elu"
    SIGMOID = "sigmoid"
    HARD_SIGMOID = "hard_sigmoid"
    TANH = "tanh"
    SOFTMAX = "softmax"
    HARDSWISH = "hardswish"
    SILU = "silu"

    @classmethod
    def for_scripts(cls) -> tuple[Activation, ...]:
        """Those ``change_output_activation`` takes."""
        return (cls.LINEAR, cls.RELU, cls.RELU6, cls.SIGMOID, cls.TANH, cls.SOFTMAX, cls.LEAKY_RELU,
                cls.HARDSWISH, cls.SILU)


class LossType(Word):
    """``finetune``'s ``loss_types`` and ``def_loss_type`` (written in any case)."""

    L2 = "l2"
    L2REL = "l2rel"
    CE = "ce"
    COSINE = "cosine"
    L1 = "l1"


class Optimizer(Word):
    """``finetune``'s ``optimizer``."""

    ADAM = "adam"
    SGD = "sgd"


class AdaroundMode(Word):
    """``adaround``'s ``mode``: which of its layers it trains."""

    TRAIN_ALL = "train_all"
    TRAIN_4BIT = "train_4bit"


class EqualizationTarget(Word):
    """``equalization``'s ``equalization_target``: the ranges it balances."""

    WEIGHTS = "weights"
    ACTIVATION = "activation"
