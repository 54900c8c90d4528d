"""What `Runner.quantize` reports: the calibration it ran and what each algorithm did.

`QuantizeReport` is kept in the quantized model (``qmodel.report``) and saved in its file as
``as_dict()``; `alls quantize` prints it (`alls.tables.algorithm_summary`). Each algorithm's
entries are its per-tensor or per-layer records, as the algorithm writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alls.records import Record

__all__ = ["QuantizeReport"]


@dataclass(frozen=True)
class QuantizeReport(Record):
    """The images calibration read (``batch_size`` x ``calib_num_batch``), the records of equalization
    (one per tensor), bias correction, finetune and adaround (one per layer), and the warnings."""

    calibration_images: int = 0
    batch_size: int = 0
    calib_num_batch: int = 0
    equalization: list[dict[str, Any]] = field(default_factory=list)
    bias_correction: list[dict[str, Any]] = field(default_factory=list)
    finetune: list[dict[str, Any]] = field(default_factory=list)
    adaround: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> QuantizeReport:
        """The report of a saved model (``as_dict``'s form; a key an older file lacks takes its default)."""
        if isinstance(data, QuantizeReport):
            return data
        data = data or {}
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
