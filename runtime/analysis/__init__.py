"""Analysis: how far the integer network is from the float one, and why. Per-layer noise and its
advice rules, evaluation over labelled data, the metrics, the figures and the HTML report.

Uses the algorithms, exec, ops, kernels and numerics below it; only the session stage imports it.
"""
