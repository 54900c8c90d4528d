"""When a tensor may be freed: after the last layer that reads it has run.

Every run over a layer graph (the float executor, the emulator, partly quantized runs, the memory
estimate of finetune) holds a layer's output only until its last reader is done:

    readers = Readers(graph, keep=tapped)
    for layer in graph:
        values[layer.name] = run(layer, [values[n] for n in layer.inputs])
        readers.release(layer, values)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, MutableMapping
from typing import Any

from alls.graph import Layer

__all__ = ["Readers"]


class Readers:
    """How many layers still have to read each layer's output."""

    def __init__(self, layers: Iterable[Layer], keep: Collection[str] = ()):
        self._left = Counter(name for layer in layers for name in layer.inputs)
        self._keep = frozenset(keep)

    def release(self, layer: Layer, values: MutableMapping[str, Any]) -> None:
        """``layer`` has read its inputs: drop from ``values`` each one no later layer reads (unless kept)."""
        for name in layer.inputs:
            self._left[name] -= 1
            if self._left[name] == 0 and name not in self._keep:
                values.pop(name, None)
