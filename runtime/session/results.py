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
from alls.runtime.algorithms.finetune import Trained
from alls.runtime.algorithms.heldout import Verdict
from alls.runtime.algorithms.ibc import Corrected

__all__ = ["QuantizeReport"]


@dataclass(frozen=True)
class QuantizeReport(Record):
    """The images calibration read (``batch_size`` x ``calib_num_batch``), the records of equalization
    (one per tensor), bias correction, finetune and adaround (one per layer), and the warnings."""

    calibration_images: int = 0
    batch_size: int = 0
    calib_num_batch: int = 0
    equalization: list[dict[str, Any]] = field(default_factory=list)
    bias_correction: list[Corrected] = field(default_factory=list)
    finetune: list[Trained] = field(default_factory=list)
    adaround: list[Trained] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    heldout: Verdict | None = None  # the whole network on the images finetune held out: which network won

    @classmethod
    def from_dict(cls, data: QuantizeReport | Mapping[str, Any] | None) -> QuantizeReport:
        """The report of a saved model (``as_dict``'s form; a key an older file lacks takes its default)."""
        if isinstance(data, QuantizeReport):
            return data
        data = dict(data or {})
        data["bias_correction"] = [_record(Corrected, r, {"channels_flipped": 0})
                                   for r in data.get("bias_correction", ())]
        for algo in ("finetune", "adaround"):
            data[algo] = [_record(Trained, r, _BEFORE_HELD_OUT) for r in data.get(algo, ())]
        if data.get("heldout") is not None:
            data["heldout"] = _record(Verdict, data["heldout"], {})
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


# What a file written before the held-out images and weight flips were reported lacks.
_BEFORE_HELD_OUT = {"heldout_images": 0, "heldout_before": float("nan"), "heldout_after": float("nan"),
                    "epochs_run": 0, "best_epoch": 0}


def _record(cls: type[Any], data: Any, missing: Mapping[str, Any]) -> Any:
    if isinstance(data, cls):
        return data
    return cls(**{**missing, **{name: data[name] for name in cls.__dataclass_fields__ if name in data}})
