"""Algorithms: the float- and integer-domain changes the script asks for before or after
quantization. Equalization, IBC (bias correction), finetune and AdaRound (layer-wise reconstruction).

Uses exec, ops, kernels and numerics below it.
"""
