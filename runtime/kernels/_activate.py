"""The fused activations of the float conv's micro-kernel (`floatconv.block_kernel`), as LLVM IR on
vectors of 8 float32: each output is activated as it is stored, not in a pass of its own.

`EPILOGUES` numbers the activations the kernel fuses; `ACTIVATE` holds, by number, the function
that emits one, ``activate(builder, y, constants) -> vector``, ``constants`` the layer's two
parameters, splatted (`constants`). Every other activation (tanh, ELU, PReLU) runs after the conv,
as before.

The piecewise-linear ones are the float32 steps of `alls.runtime.ops.activation`'s NumPy form, in
the same order and rounding (no contraction into fused multiply-adds), so they give the same bits:
ReLU ``max(y, 0)``, clip ``min(max(y, lo), hi)`` (ReLU6: lo 0, hi 6), LeakyReLU ``y >= 0 ? y :
y·alpha``, hard sigmoid ``clip(alpha·y + beta, 0, 1)``, hardswish ``y·clip(y/6 + 0.5, 0, 1)``. A NaN
stays NaN, as through NumPy's ``maximum`` and ``minimum``.

Sigmoid and SiLU are ``1 / (1 + e)`` and ``y / (1 + e)`` with ``e = exp(-y)`` from `exp`: Cephes'
``expf`` (range reduction by ln 2 in two parts, a degree-6 polynomial, the power of two built in
the exponent bits), every step a correctly rounded float32 operation or fused multiply-add, so the
bits are the same on every machine. Measured against float64 over float32 inputs
(``tests/test_fused_activations.py``): sigmoid and SiLU within 4 ulp of the exact value, or within
2^-120 (about 7.5e-37) of it where that is smaller. NumPy's form, ``0.5·(tanh(y/2) + 1)``, which
the separate pass keeps (calibration's observed run), loses relative precision for negative ``y``
(its error is up to half an ulp of 1, about 6e-8, absolute); the two agree within 2^-22 absolute
(that bound times ``|y|`` for SiLU). Past ±88.376 (where 2^n leaves the normal float32s) ``exp``
is 0 below and infinite above, so sigmoid is 1 or 0 there and SiLU ``y`` or -0; SiLU(-inf) is
NaN, as ``-inf · sigmoid(-inf)`` is in NumPy and onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba.core import cgutils

from alls.values import Activation

__all__ = ["EPILOGUES", "ACTIVATE", "Emit", "constants", "splat", "switch", "exp"]

_WIDTH = 8
_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, _WIDTH)
_I32 = ir.IntType(32)
_IVEC = ir.VectorType(_I32, _WIDTH)
_get_or_insert_function: Callable[[Any, Any, str], Any] = cgutils.get_or_insert_function
Emit = Callable[[Any, Any, list[Any]], Any]

# The activations fused into the conv's store, by the number the kernel switches on (0: none)
EPILOGUES: dict[Activation, int] = {Activation.RELU: 1, Activation.RELU6: 2, Activation.CLIP: 2,
                                    Activation.LEAKY_RELU: 3, Activation.HARD_SIGMOID: 4,
                                    Activation.HARDSWISH: 5, Activation.SIGMOID: 6, Activation.SILU: 7}


def constants(activation: Activation, params: dict[str, float]) -> tuple[float, float]:
    """The two float32 constants the kernel reads for ``activation`` with the layer's ``params``."""
    if activation is Activation.RELU6:
        return 0.0, 6.0
    if activation is Activation.CLIP:
        return float(np.float32(params.get("min", -np.inf))), float(np.float32(params.get("max", np.inf)))
    if activation is Activation.LEAKY_RELU:
        return float(np.float32(params.get("alpha", 0.01))), 0.0
    if activation is Activation.HARD_SIGMOID:
        return float(np.float32(params.get("alpha", 0.2))), float(np.float32(params.get("beta", 0.5)))
    return 0.0, 0.0


def splat(builder: Any, value: Any) -> Any:
    """A float32 value in all 8 lanes."""
    undef = ir.Constant(_VEC, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(_IVEC, [0] * _WIDTH))


def _const(value: float) -> Any:
    return ir.Constant(_VEC, [float(np.float32(value))] * _WIDTH)


def _max(builder: Any, y: Any, lo: Any) -> Any:
    return builder.select(builder.fcmp_ordered("<", y, lo), lo, y)


def _min(builder: Any, y: Any, hi: Any) -> Any:
    return builder.select(builder.fcmp_ordered(">", y, hi), hi, y)


def _fma(builder: Any, a: Any, b: Any, c: Any) -> Any:
    fn = _get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v8f32")
    return builder.call(fn, [a, b, c])


_EXP_HI = 88.3762626647949  # the largest argument whose 2^n is a normal float32
_LOG2E = 1.44269504088896341
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4  # ln 2 = hi + lo, hi with few bits: n·hi is exact
_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)


def exp(builder: Any, x: Any) -> Any:
    """e^x of a vector, Cephes' ``expf`` (see the module's note on its accuracy and range)."""
    given, x = x, _min(builder, _max(builder, x, _const(-_EXP_HI)), _const(_EXP_HI))
    floor = _get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC]), "llvm.floor.v8f32")
    n = builder.call(floor, [builder.fadd(builder.fmul(x, _const(_LOG2E)), _const(0.5))])
    r = _fma(builder, n, _const(-_LN2_HI), x)
    r = _fma(builder, n, _const(-_LN2_LO), r)
    p = _const(_POLY[0])
    for c in _POLY[1:]:
        p = _fma(builder, p, r, _const(c))
    y = builder.fadd(_fma(builder, p, builder.fmul(r, r), r), _const(1.0))
    bits = builder.shl(builder.add(builder.fptosi(n, _IVEC), ir.Constant(_IVEC, [127] * _WIDTH)),
                       ir.Constant(_IVEC, [23] * _WIDTH))
    result = builder.fmul(y, builder.bitcast(bits, _VEC))
    return builder.select(builder.fcmp_ordered(">", given, _const(_EXP_HI)), _const(np.inf), result)


def _relu(builder: Any, y: Any, k: list[Any]) -> Any:
    return _max(builder, y, _const(0.0))


def _clip(builder: Any, y: Any, k: list[Any]) -> Any:
    return _min(builder, _max(builder, y, k[0]), k[1])


def _leaky(builder: Any, y: Any, k: list[Any]) -> Any:
    return builder.select(builder.fcmp_ordered(">=", y, _const(0.0)), y, builder.fmul(y, k[0]))


def _unit(builder: Any, t: Any) -> Any:
    return _min(builder, _max(builder, t, _const(0.0)), _const(1.0))


def _hard_sigmoid(builder: Any, y: Any, k: list[Any]) -> Any:
    return _unit(builder, builder.fadd(builder.fmul(k[0], y), k[1]))


def _hardswish(builder: Any, y: Any, k: list[Any]) -> Any:
    return builder.fmul(y, _unit(builder, builder.fadd(builder.fdiv(y, _const(6.0)), _const(0.5))))


def _one_plus_exp_minus(builder: Any, y: Any) -> Any:
    return builder.fadd(_const(1.0), exp(builder, builder.fmul(y, _const(-1.0))))


def _sigmoid(builder: Any, y: Any, k: list[Any]) -> Any:
    return builder.fdiv(_const(1.0), _one_plus_exp_minus(builder, y))


def _silu(builder: Any, y: Any, k: list[Any]) -> Any:
    return builder.fdiv(y, _one_plus_exp_minus(builder, y))


ACTIVATE: dict[int, Emit] = {1: _relu, 2: _clip, 3: _leaky, 4: _hard_sigmoid, 5: _hardswish, 6: _sigmoid, 7: _silu}


def _linear(builder: Any, y: Any, k: list[Any]) -> Any:
    return y


def switch(builder: Any, code: Any, emit: Callable[[Emit], None]) -> None:
    """``emit(activate)`` in one branch per activation, the branch taken by the int64 ``code`` (any
    number not in `ACTIVATE`: none); the builder is left where the branches join."""
    done = builder.append_basic_block("activated")
    linear = builder.append_basic_block("linear")
    branches = builder.switch(code, linear)
    for number, activate in ACTIVATE.items():
        block = builder.append_basic_block(f"activation{number}")
        branches.add_case(ir.Constant(ir.IntType(64), number), block)
        builder.position_at_end(block)
        emit(activate)
        builder.branch(done)
    builder.position_at_end(linear)
    emit(_linear)
    builder.branch(done)
    builder.position_at_end(done)
