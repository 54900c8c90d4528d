"""The integer runtime of `alls` (imported as ``alls.runtime``).

It executes a resolved quantization plan: calibration, quantization, the
algorithms, and the bit-exact integer emulator beside the float one. It is
imported only when needed, so that ``import alls`` and ``alls check`` stay
free of numba and onnx.
"""
