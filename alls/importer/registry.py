"""The one way from an ONNX op type to the function that turns its node into a layer.

A handler is ``handler(imp, n, data_in) -> str | None``: ``imp`` is the running `Importer` (its
constants, shapes and drafts), ``n`` the `Node`, ``data_in`` its non-constant inputs, resolved
through the nodes that vanished. It adds a `Draft` (``imp.add``), folds ``n`` into the layer before
it (``imp.fold_into``) or makes ``n`` vanish (an alias); or it returns why the node has no layer,
which the importer reports as ALS401 on an unsupported layer. An op with no handler is reported the
same way ("no layer for the ONNX op ...").

Handlers register with `handles`, one module per op family under `alls/importer/ops/`
(docs/ops.md, "Adding an ONNX op").
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["HANDLERS", "handles"]

HANDLERS: dict[str, Callable] = {}


def handles(*ops: str):
    """Register the decorated function as the handler of each ONNX op type in ``ops``."""
    def register(fn: Callable) -> Callable:
        for op in ops:
            if op in HANDLERS:
                raise ValueError(f"two handlers for the ONNX op `{op}`: "
                                 f"{HANDLERS[op].__module__}.{HANDLERS[op].__name__} and {fn.__module__}.{fn.__name__}")
            HANDLERS[op] = fn
        return fn
    return register
