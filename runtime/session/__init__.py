"""Session: what a user holds. `Runner` (script, calibration, the algorithms, quantization),
`QuantizedModel` and its file format, `tune` (the search over scripts) and the taps writer.

The top stage: it may use every stage below (analysis, algorithms, exec, ops, kernels, numerics);
nothing below imports it.
"""
