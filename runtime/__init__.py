"""The integer runtime of `alls` (imported as ``alls.runtime``).

It executes a resolved quantization plan: calibration, quantization, the
algorithms, and the bit-exact integer emulator beside the float one. It is
imported only when needed, so that ``import alls`` and ``alls check`` stay
free of numba and onnx; importing ``alls.runtime`` itself loads nothing
heavy, and Numba is loaded on the first integer run.

    from alls.runtime import Runner, load

    runner = Runner("model.onnx")
    runner.load_script("model.alls")
    qmodel = runner.quantize(calib)            # (N, H, W, C) images
    result = qmodel.run(images, target="numeric", taps="all")
    qmodel.save("model_q.npz"); qmodel = load("model_q.npz")

The numerics are specified in ``NUMERICS.md`` beside this file. Importing
or using the runtime changes nothing of the host's: no environment
variable, warnings filter, logging setting or numpy setting; BLAS runs
single-threaded, and Numba on the runtime's own thread count, only inside the runtime's own
calls (`exec/threads.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public names' types, for the type checker; at run time they load on first use
    from alls.runtime.analysis.analyze import analyze
    from alls.runtime.analysis.evaluation import check_labels, evaluate, load_array
    from alls.runtime.analysis.report import prepare_folder, summary as report_summary, write_report
    from alls.runtime.exec.quantize import Encoding
    from alls.runtime.exec.threads import using_threads
    from alls.runtime.session.model import TARGETS, QuantizedModel, Result, load
    from alls.runtime.session.runner import Runner
    from alls.runtime.session.taps import INDEX as TAPS_INDEX, prepare_taps_folder, write_taps
    from alls.runtime.session.tuning import STEPS, best, describe as describe_tune, tune

__all__ = ["Runner", "QuantizedModel", "Result", "Encoding", "load", "TARGETS", "load_array", "check_labels",
           "evaluate", "analyze", "write_report", "prepare_folder", "report_summary", "tune", "best", "STEPS",
           "describe_tune", "write_taps", "prepare_taps_folder", "TAPS_INDEX", "using_threads", "Evaluation",
           "Figures", "QuantizeReport", "Corrected", "Trained", "Verdict", "Step",
           "open_data", "first", "Folder",
           "parse_memory_limit", "DEFAULT_MEMORY_LIMIT"]

_LAZY: dict[str, str | tuple[str, str]] = {
    "Runner": "alls.runtime.session.runner",
    "QuantizedModel": "alls.runtime.session.model",
    "Result": "alls.runtime.session.model",
    "load": "alls.runtime.session.model",
    "TARGETS": "alls.runtime.session.model",
    "Encoding": "alls.runtime.exec.quantize",
    "load_array": "alls.runtime.analysis.evaluation",
    "check_labels": "alls.runtime.analysis.evaluation",
    "open_data": "alls.runtime.analysis.evaluation",
    "first": "alls.runtime.analysis.evaluation",
    "Folder": "alls.arrays",
    "parse_memory_limit": "alls.runtime.exec.stream",
    "DEFAULT_MEMORY_LIMIT": "alls.runtime.exec.stream",
    "evaluate": "alls.runtime.analysis.evaluation",
    "Evaluation": "alls.runtime.analysis.evaluation",
    "Figures": "alls.runtime.analysis.metrics",
    "QuantizeReport": "alls.runtime.session.results",
    "Corrected": "alls.runtime.algorithms.ibc",
    "Trained": "alls.runtime.algorithms.finetune",
    "Verdict": "alls.runtime.algorithms.heldout",
    "Step": "alls.runtime.session.tuning",
    "analyze": "alls.runtime.analysis.analyze",
    "write_report": "alls.runtime.analysis.report",
    "prepare_folder": "alls.runtime.analysis.report",
    "report_summary": ("alls.runtime.analysis.report", "summary"),
    "tune": "alls.runtime.session.tuning",
    "best": "alls.runtime.session.tuning",
    "STEPS": "alls.runtime.session.tuning",
    "describe_tune": ("alls.runtime.session.tuning", "describe"),
    "write_taps": "alls.runtime.session.taps",
    "prepare_taps_folder": "alls.runtime.session.taps",
    "TAPS_INDEX": ("alls.runtime.session.taps", "INDEX"),
    "using_threads": "alls.runtime.exec.threads",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        entry = _LAZY[name]
        module, attribute = entry if isinstance(entry, tuple) else (entry, name)
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'alls.runtime' has no attribute {name!r}")
