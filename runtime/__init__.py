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

__all__ = ["Runner", "QuantizedModel", "Result", "Encoding", "load", "TARGETS", "load_array", "check_labels",
           "evaluate", "analyze", "write_report", "prepare_folder", "report_summary", "tune", "best", "STEPS",
           "describe_tune", "write_taps", "prepare_taps_folder", "TAPS_INDEX", "using_threads"]

_LAZY = {
    "Runner": "alls.runtime.session.runner",
    "QuantizedModel": "alls.runtime.session.model",
    "Result": "alls.runtime.session.model",
    "load": "alls.runtime.session.model",
    "TARGETS": "alls.runtime.session.model",
    "Encoding": "alls.runtime.exec.quantize",
    "load_array": "alls.runtime.analysis.evaluation",
    "check_labels": "alls.runtime.analysis.evaluation",
    "evaluate": "alls.runtime.analysis.evaluation",
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


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name] if isinstance(_LAZY[name], tuple) else (_LAZY[name], name)
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'alls.runtime' has no attribute {name!r}")
