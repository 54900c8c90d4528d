"""The integer kernels of ``alls.runtime``: a name → kernel registry, the only way in (the layer
kinds of ``alls.runtime.ops`` call them through `get_kernel`).

Importing this package imports Numba. ``alls.runtime`` itself does not import it.

Every kernel is exact integer arithmetic as NUMERICS.md specifies. Activations are NHWC
``uint8``/``uint16``, and the constants (multipliers, shifts, bias, tables) come from
:mod:`alls.runtime.numerics`. Kernels are ``@njit(cache=True)``. Importing this package compiles nothing: each
kernel compiles on its first call per dtype combination (a line on standard error says so,
`_compiling`), and the machine code is cached on disk (``__pycache__`` next to the sources,
``NUMBA_CACHE_DIR``, or Numba's user cache dir). To keep compilation short, the dispatchers narrow the
dtypes the kernels see: int16 centred inputs and int8 packed weights on the fast paths, int16
or int32 inputs with int16 weights on the general ones, and int32 requantization multipliers.
Only the heavy kernels (the fast conv, which also runs the dense layers, and the fast
depthwise) are ``parallel=True``. Each call runs on the threads `_parallel` chooses for its work, within the
runtime call's budget (``numba.set_num_threads`` for the call, put back after).

Numba checks a cached kernel only against its own source file. After you edit ``_common.py``,
``_simd.py`` or ``_activate.py`` (whose helpers are inlined into the kernels of the other modules), delete
``runtime/kernels/__pycache__/*.nb[ic]``.

    from alls.runtime.kernels import get_kernel
    conv = get_kernel("conv", layer="net/conv3")
    y = conv(x_nhwc, weights, bias, rq, zero_point=zx, strides=(1, 1), pads=(1, 1, 1, 1))

An op without a kernel raises :class:`KernelNotFound`, whose message names the op and the
layer. The plan reports it as a diagnostic before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from alls.runtime.kernels._common import quantize, requantize
from alls.runtime.kernels.conv import ConvWeights, conv, conv_acc, deconv, deconv_acc, dw, dw_acc, fc, fc_acc
from alls.runtime.kernels.eltwise import concat, ew_add, ew_mult, ew_sub, lut
from alls.runtime.kernels.matmul import matmul, matmul_acc
from alls.runtime.kernels.movement import depth_to_space, pad, reduce_max, reduce_sum, slice_axes, space_to_depth
from alls.runtime.kernels.pool import avgpool, global_avgpool, global_maxpool, maxpool
from alls.runtime.kernels.resize import resize_bilinear, resize_nearest

__all__ = ["KERNELS", "KernelNotFound", "get_kernel", "kernel_names", "ConvWeights"]

KERNELS: MappingProxyType[str, Callable[..., Any]] = MappingProxyType({
    "conv": conv,
    "conv_acc": conv_acc,
    "dw": dw,
    "dw_acc": dw_acc,
    "deconv": deconv,
    "deconv_acc": deconv_acc,
    "fc": fc,
    "fc_acc": fc_acc,
    "ew_add": ew_add,
    "ew_sub": ew_sub,
    "ew_mult": ew_mult,
    "concat": concat,
    "maxpool": maxpool,
    "global_maxpool": global_maxpool,
    "avgpool": avgpool,
    "global_avgpool": global_avgpool,
    "resize_nearest": resize_nearest,
    "resize_bilinear": resize_bilinear,
    "lut": lut,
    "requantize": requantize,
    "quantize": quantize,
    "slice": slice_axes,
    "pad": pad,
    "depth_to_space": depth_to_space,
    "space_to_depth": space_to_depth,
    "reduce_max": reduce_max,
    "reduce_sum": reduce_sum,
    "matmul": matmul,
    "matmul_acc": matmul_acc,
})


class KernelNotFound(LookupError):
    """No kernel for an op; the message names the op and, when given, the layer."""


def kernel_names() -> tuple[str, ...]:
    return tuple(sorted(KERNELS))


def get_kernel(op: str, layer: str | None = None) -> Callable[..., Any]:
    """The kernel registered under ``op``, or KernelNotFound naming the op and the layer."""
    try:
        return KERNELS[op]
    except KeyError:
        where = f" (layer {layer})" if layer else ""
        known = ", ".join(kernel_names())
        raise KernelNotFound(f"No kernel for op '{op}'{where}; kernels exist for: {known}") from None
