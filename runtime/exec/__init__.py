"""Exec: running a layer graph. The float executor (`native`), calibration, quantization (plan and
statistics to integer layers), the bit-exact integer emulator, partly quantized runs and the thread
limits they run under.

Uses ops, kernels and numerics below it; each layer kind's work is in `alls.runtime.ops`.
"""
