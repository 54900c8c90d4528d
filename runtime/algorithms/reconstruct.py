"""One layer's reconstruction: learn its weight rounding (and bias, and scales) against the float layer.

The layer is modelled in float on the rows of `alls.runtime.algorithms.patches` (centred integer inputs
``x``, exact), with every scale the integer layer uses:

    w̃[c, k] = clip(B[c, k] + h(V[c, k]), −W, W),      B = ⌊w / s_c⌋,  W = 2^(b−1) − 1     (R1)
    h(V) = clip(σ(V)·(ζ − γ) + γ, 0, 1),               ζ = 1.1, γ = −0.1                     (R2)
    z[r, c] = S_x · s_c · Σ_k x[r, k]·w̃[c, k] + b_c                                        (R3)
    ŷ = clip(f(clip(z, p_lo, p_hi)), o_lo, o_hi)                                            (R4)

(R4) is the integer layer's clamp (ReLU, ReLU6 and clips fold into [p_lo, p_hi], f the
identity), or, for a table activation, the pre-activation range, the float activation f and the
output range. The target is the float network's output of the layer, clipped to the same range.
V starts where h(V) equals the fractional part of w/s (so the start is round to nearest, or
the rounding the layer holds when bias correction flipped some); the objective is

    factor · loss(ŷ, y) + λ · Σ (1 − |2h(V) − 1|^β)                                         (R5)

with the regulariser off for the first ``reg_warmup`` share of the steps and β falling linearly
from ``beta[0]`` to ``beta[1]`` over the rest (Nagel et al. 2020). Optionally the bias
(``b = b₀ + S_t·δ``, δ in output steps) and one weight-scale factor per quantization group
(``s = s₀·exp(φ / 2W)``) are learned with it. At the end h is rounded (h ≥ ½, i.e. V ≥ 0);
when the bias is learned it is moved by the mean change of z that the rounding made, and the
result is kept only if its loss on the training rows is below round to nearest's.

**Held-out images.** A share (`HOLDOUT`, at least one image) of the layer's images is never
trained on, the same images for every layer (`held_out_images`). At most `CHECKS` times during
training (and once before it, for the starting point: round to nearest, or what bias correction
left), the layer is rounded (and its bias settled on
the training rows) and its loss measured on the held-out rows; the best of these checkpoints is
what the layer ends with, so its held-out loss never ends above where it started. Training stops
early once `PATIENCE` checks in a row found it worse. Choosing among checkpoints that start at
round to nearest is the regularisation toward it: a penalty ``λ·Σ(h(V) − r)²`` pulling every
rounding toward its nearest choice r was measured too (docs/accuracy.md) and lost to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np

from alls.catalogue import POST_SUBCOMMANDS
from alls.plan import LossType, Optimizer
from alls.runtime.algorithms.losses import LOSSES
from alls.runtime.algorithms.patches import LaidRows, Rows
from alls.runtime.exec.pool import ahead, aside_running, each
from alls.runtime.kernels._parallel import counted
from alls.runtime.kernels.training import (GAMMA, ZETA, PER_WEIGHT, adam_step, depthwise_backward, depthwise_forward,
                                           depthwise_l2, depthwise_rows, gather, l2_gradient, regulariser_powers,
                                           rounding_step, soft_weights, step_part, weight_parts)

__all__ = ["Problem", "Config", "Outcome", "train", "held_out", "held_out_images", "LOSSES", "HOLDOUT"]

_EPS = 1e-12
HOLDOUT = 0.25  # the share of a layer's images held out from training
CHECKS = 16  # held-out checkpoints per layer, at most
PATIENCE = 4  # checks in a row without a better held-out loss before training stops
PAIRED_WEIGHTS = 1 << 15  # a layer of this many weights or more may take its steps on two threads (`_Stepper.step`)
PAIRED_WORK = 4 * PER_WEIGHT  # a step's passes over the weights, a weight: exp, pow, the soft weights and the update
SPLIT_SEED = 0  # one split for every layer: the held-out images are the same for all, so the network is checked on them


@dataclass
class Problem:
    """One layer's data: rows (``per_image`` per image), targets and the integer layer's scales."""

    rows: Rows                  # (R, G, K) centred integer inputs, or a depthwise layer's `LaidRows`
    per_image: int
    target: np.ndarray          # (R, C) float32: the float layer's output
    weight: np.ndarray          # (G, O, K) float weights
    scale: np.ndarray           # (C,) weight scale of every output channel
    group_of: np.ndarray        # (C,) quantization group of every output channel
    wmax: int
    x_scale: float
    bias: np.ndarray            # (C,) the bias as encoded, in real units
    unit: float                 # scale of the tensor the accumulator is requantized to (one output step)
    pre_range: tuple[float, float]
    out_range: tuple[float, float]
    activation: Callable[[np.ndarray], np.ndarray] | None = None
    start: np.ndarray | None = None  # (G, O, K) the integer weights the layer holds now (None: round to nearest)


_ADAROUND, _FINETUNE = POST_SUBCOMMANDS["adaround"].keywords, POST_SUBCOMMANDS["finetune"].keywords


@dataclass(frozen=True)
class Config:
    """How to train one layer (from the plan's finetune or adaround settings)."""

    images: int
    epochs: int
    batch_size: int
    learning_rate: float
    lr_warmup_steps: int = 0
    reg_weight: float = cast(float, _ADAROUND["weight"].default)
    reg_warmup: float = cast(float, _ADAROUND["warmup"].default)
    beta: tuple[float, float] = (max(cast("tuple[float, float]", _ADAROUND["b_range"].default)),
                                 min(cast("tuple[float, float]", _ADAROUND["b_range"].default)))
    optimizer: Optimizer = cast(Optimizer, _FINETUNE["optimizer"].default)
    learn_bias: bool = False
    learn_scales: bool = False
    loss: LossType = cast(LossType, _FINETUNE["def_loss_type"].default)
    factor: float = 1.0
    seed: int = 0
    steps: int | None = None  # the most steps, the last epoch cut short there (None: every step of every epoch)


@dataclass
class Outcome:
    """The learned integer weights (G, O, K), bias, scales, and the losses before and after."""

    weights: np.ndarray
    bias: np.ndarray
    scale: np.ndarray
    loss_before: float
    loss_after: float
    kept: bool  # False: the learned layer lost to round to nearest, which was kept
    flipped: float  # share of weights rounded the other way than to nearest
    steps: int
    heldout_before: float = float("nan")  # the loss on the held-out images at the start, and at the end
    heldout_after: float = float("nan")
    heldout_images: int = 0
    epochs_run: int = 0
    best_epoch: int = 0  # the epoch whose checkpoint the layer ends with (0: the start)


# --------------------------------------------------------------------- model


def _rectified(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """h(V) of (R2) and dh/dV (0 where h is clipped). A logit far below zero (a step too large sends
    it there) overflows exp to inf, which gives its limit, s = 0: that is no error to report."""
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + np.exp(-v))
    raw = s * (ZETA - GAMMA) + GAMMA
    return np.clip(raw, 0.0, 1.0), np.where((raw > 0) & (raw < 1), (ZETA - GAMMA) * s * (1 - s), 0.0)


def _initial_logits(fraction: np.ndarray) -> np.ndarray:
    """V with h(V) = fraction, for fractions in [0, 1)."""
    p = (fraction - GAMMA) / (ZETA - GAMMA)
    return np.log(p / (1 - p))


def _depthwise(shape: tuple[int, ...]) -> bool:
    """A layer of one weight vector per group, several groups: its rows are read as (N, K, C)."""
    return shape[1] == 1 and shape[0] > 1


class _Batch(NamedTuple):
    """A batch's rows as the products read them: float32 (R, G, K), gathered (``picked`` None), or a
    depthwise layer's rows as `depthwise_rows` lays them out (``laid``) and the batch's rows ``picked``."""

    x: np.ndarray
    picked: np.ndarray | None = None
    laid: tuple[np.ndarray, int] | None = None


def _batch(rows: np.ndarray, shape: tuple[int, ...]) -> _Batch:
    """Integer rows (R, G, K) as a `_Batch` of all of them."""
    if _depthwise(shape):
        laid = depthwise_rows(rows)
        return _Batch(laid[0], np.arange(len(rows)), laid)
    return _Batch(gather(rows, np.arange(len(rows))))


def _accumulate(batch: _Batch | np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ_k x[r, g, k]·w[g, o, k] → (R, G·O), float32, for a `_Batch` (or integer rows (R, G, K))."""
    x, index, laid = batch if isinstance(batch, _Batch) else _batch(batch, w.shape)
    if index is not None and laid is not None:
        return depthwise_forward(laid, index, w[:, 0, :])
    if w.shape[0] == 1:
        dense: np.ndarray = x[:, 0, :] @ w[0].T
        return dense
    acc: np.ndarray = np.matmul(x.transpose(1, 0, 2), w.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(len(x), -1)
    return acc


def _weight_grad(batch: _Batch, gacc: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """d/dw of Σ gacc·acc: (G, O, K), for a `_Batch`."""
    (x, index, laid), (g, o, _) = batch, shape
    if index is not None and laid is not None:
        return depthwise_backward(laid, index, gacc)[:, None, :]
    if g == 1:
        dense: np.ndarray = (gacc.T @ x[:, 0, :])[None]
        return dense
    grad: np.ndarray = np.matmul(gacc.reshape(len(x), g, o).transpose(1, 2, 0), x.transpose(1, 0, 2))
    return grad


class _Layer:
    """The float model (R1)-(R4) of one layer, with its parameters V, δ (bias) and φ (scales)."""

    def __init__(self, p: Problem):
        self.p = p
        ratio = p.weight / p.scale.reshape(p.weight.shape[0], p.weight.shape[1], 1)
        self.base = np.floor(ratio).astype(np.float32)  # integers, exact in float32
        self.v = _initial_logits(ratio - self.base).astype(np.float32)
        if p.start is not None:  # start where the layer is (bias correction may have flipped a rounding)
            up = p.start > self.base
            self.v[up != (self.v >= 0)] = np.where(up, 0.05, -0.05)[up != (self.v >= 0)]
        self.delta = np.zeros(p.scale.shape, np.float32)
        self.phi = np.zeros(int(p.group_of.max()) + 1, np.float32)
        # a depthwise layer's rows are read one tap of every channel at a time: gathered so (`LaidRows`), or
        # integer rows (R, C, K) laid out so once
        self.laid = (p.rows.codes, p.rows.offset) if isinstance(p.rows, LaidRows) else \
            depthwise_rows(p.rows) if _depthwise(p.weight.shape) else None

    def scales(self) -> np.ndarray:
        scales: np.ndarray = self.p.scale * np.exp(self.phi[self.p.group_of] / (2.0 * self.p.wmax))
        return scales

    def biases(self) -> np.ndarray:
        biases: np.ndarray = self.p.bias + self.p.unit * self.delta
        return biases

    def weights(self, hard: bool = False) -> np.ndarray:
        """w̃ (R1): soft, or rounded (h ≥ ½, i.e. V ≥ 0)."""
        return self.clipped((self.v >= 0).astype(np.float32) if hard else _rectified(self.v)[0])[0]

    def clipped(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """w̃ for rounding offsets h, and where the clip lets the gradient through."""
        raw = self.base + h
        return np.clip(raw, -self.p.wmax, self.p.wmax).astype(np.float32), (raw > -self.p.wmax) & (raw < self.p.wmax)

    def rows(self, index: np.ndarray) -> _Batch:
        """The problem's rows ``index`` as the products read them."""
        if self.laid is not None:
            return _Batch(self.laid[0], index, self.laid)
        assert not isinstance(self.p.rows, LaidRows), "laid-out rows are a depthwise layer's"
        return _Batch(gather(self.p.rows, index))

    def predict(self, x: _Batch | np.ndarray, w: np.ndarray) -> np.ndarray:
        """ŷ (R4) alone, as `output` computes it (the same bits), in place on the products: what the
        checks and the losses before and after read, without the slope they do not need."""
        p = self.p
        z = _accumulate(x, w)
        z *= (p.x_scale * self.scales()).astype(np.float32)
        z += self.biases().astype(np.float32)
        np.clip(z, *p.pre_range, out=z)
        y = z if p.activation is None else p.activation(z)
        yh: np.ndarray = np.clip(y, *p.out_range, out=y if y is z else None)
        return yh

    def output(self, x: _Batch | np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """z (R3), ŷ (R4), and dŷ/dz, for a batch's rows (or integer rows (R, G, K))."""
        p = self.p
        acc = _accumulate(x, w)
        z = (p.x_scale * self.scales()).astype(np.float32) * acc + self.biases().astype(np.float32)
        a = np.clip(z, *p.pre_range)
        inside = (z >= p.pre_range[0]) & (z <= p.pre_range[1])
        if p.activation is None:
            y, slope = a, inside.astype(np.float32)
        else:
            y = p.activation(a)
            eps = np.float32(1e-3) * max(abs(p.pre_range[1] - p.pre_range[0]), 1e-6)
            slope = (p.activation(a + eps) - p.activation(a - eps)) / (2 * eps) * inside
        yh = np.clip(y, *p.out_range)
        return z, acc, yh, slope * ((y >= p.out_range[0]) & (y <= p.out_range[1]))


# ------------------------------------------------------------------ training


def _target_power(p: Problem, chunk: int = 4096) -> float:
    """ν: the mean square of the clipped target, summed in float64 a part of the rows at a time (whole,
    it made three copies of the targets, the largest layer's 0.5 GiB)."""
    total = 0.0
    for start in range(0, len(p.target), chunk):
        y = np.clip(p.target[start:start + chunk], *p.out_range).astype(np.float64).reshape(-1)
        total += float(np.dot(y, y))
    return max(total / max(p.target.size, 1), _EPS)


def _evaluate(layer: _Layer, config: Config, nu: float, index: np.ndarray, hard: bool = True,
              chunk: int = 4096) -> float:
    """The reconstruction loss of the (rounded) layer on the rows ``index``: ``chunk`` rows at a time, as many
    at once as `alls.runtime.exec.pool.each` finds cores free, one at a time while an aside work (finetune's
    check of the start network) holds the other core (each part's loss alone, summed in order)."""
    w = layer.weights(hard)

    def loss(part: np.ndarray) -> float:
        yh = layer.predict(layer.rows(part), w)
        y = np.clip(layer.p.target[part], *layer.p.out_range)
        value: float = LOSSES[config.loss](yh, y, nu)[0] * len(part)
        return value

    total, parts = 0.0, [index[start:start + chunk] for start in range(0, len(index), chunk)]
    for value in map(loss, parts) if aside_running() else each(parts, loss):
        total += value
    return config.factor * total / max(len(index), 1)


class _Stepper:
    """The training steps (R5) of one layer: the gradients on a batch's rows and the optimizer's update
    of V, δ and φ in place (Adam: β₁ = 0.9, β₂ = 0.999, ε = 1e−8; or SGD with momentum 0.9). A layer
    with no table activation and the l2 or l2rel loss takes the fused passes of
    `alls.runtime.kernels.training` throughout; the others form the loss gradient in NumPy."""

    def __init__(self, layer: _Layer, config: Config, nu: float, target: np.ndarray | None = None):
        self.layer, self.config, self.nu, self.t = layer, config, nu, 0
        params = [layer.v, layer.delta, layer.phi]
        self.m = [np.zeros_like(p) for p in params]
        self.s = [np.zeros_like(p) for p in params] if Optimizer(config.optimizer) is Optimizer.ADAM else None
        self.w, self.gate, self.dh, self.centred = (np.empty_like(layer.v) for _ in range(4))
        self.soft = False  # whether w, gate, dh and centred are the soft weights of V as it is
        self.fused = layer.p.activation is None and config.loss in (LossType.L2, LossType.L2REL)
        self.paired = self.s is not None and layer.v.size >= PAIRED_WEIGHTS
        self.target = np.asarray(layer.p.target if target is None else target)
        self.ranges = np.array((*layer.p.pre_range, *layer.p.out_range), np.float32)
        # (R3)'s factors, for δ and φ that change only by the steps: kept unless learned
        self.a = None if config.learn_scales else self._factors()[0]
        self.b = None if config.learn_bias else self._factors()[1]

    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        """S_x·s_c and b_c of (R3), float32."""
        layer = self.layer
        return (layer.p.x_scale * layer.scales()).astype(np.float32), layer.biases().astype(np.float32)

    def soften(self) -> None:
        """w̃ (R1) of the current V, with dh/dV, the gate of the clip and 2h − 1, for `gradients`."""
        soft_weights(self.layer.v, self.layer.base, self.layer.p.wmax, self.w, self.gate, self.dh, self.centred)

    def gradients(self, x: _Batch, index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """d loss / d w̃ on rows ``x`` (`_Layer.rows`) against the target rows ``index``, and d/dδ, d/dφ
        where those are learned (else None)."""
        layer, p, config = self.layer, self.layer.p, self.config
        a, b = self._factors() if self.a is None or self.b is None else (self.a, self.b)
        relative = config.loss is LossType.L2REL
        if self.fused and x.laid is not None and x.picked is not None:  # a depthwise layer's: one pass over its rows
            grad, sums, moments = depthwise_l2(x.laid, x.picked, self.w[:, 0, :], self.target, a, b, self.ranges,
                                               self.nu, relative, config.factor)
            gw = grad[:, None, :]
        else:
            if self.fused:
                gacc, sums, moments = l2_gradient(_accumulate(x, self.w), self.target, index, a, b, self.ranges,
                                                  self.nu, relative, config.factor)
            else:
                gacc, sums, moments = self._numpy_gradient(x, index, a, b)
            gw = np.ascontiguousarray(_weight_grad(x, gacc, self.w.shape))
        gdelta = sums * p.unit if config.learn_bias else None
        gphi = np.bincount(p.group_of, moments / (2.0 * p.wmax), minlength=len(layer.phi)).astype(np.float32) \
            if config.learn_scales else None
        return gw, gdelta, gphi

    def _numpy_gradient(self, x: _Batch, index: np.ndarray, a: np.ndarray,
                        b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What `l2_gradient` gives, for any activation and loss: d loss / d acc, Σ_r gz, Σ_r gz·(z − b)."""
        p, config = self.layer.p, self.config
        z, _, yh, slope = self.layer.output(x, self.w)
        _, gy = LOSSES[config.loss](yh, np.clip(self.target[index], *p.out_range), self.nu)
        gz = (config.factor * gy * slope).astype(np.float32)
        return gz * a, gz.sum(axis=0), (gz * (z - b)).sum(axis=0)

    def regulariser(self, beta: float | None) -> tuple[float, float] | None:
        """`rounding_step`'s (coefficient, power) of the regulariser's gradient at β (None: off)."""
        return None if beta is None else (-self.config.reg_weight * beta, beta - 1)

    def step(self, index: np.ndarray, lr: float, beta: float | None) -> None:
        """One step on the rows ``index`` at learning rate ``lr`` (β: None while the regulariser is off): a layer
        of `PAIRED_WEIGHTS` or more on two threads where a second core is free and two have measured faster at
        its shape (`_parallel.counted`), and no aside work holds it: its powers beside the products, its update
        in two parts."""
        if self.paired and not aside_running():  # (the core an aside work runs on is not free)
            counted(("training step", self.w.shape), PAIRED_WORK * self.w.size, 2,
                    lambda threads: self._run(index, lr, beta, threads))
        else:
            self._run(index, lr, beta, 1)

    def _run(self, index: np.ndarray, lr: float, beta: float | None, threads: int) -> None:
        layer, reg = self.layer, self.regulariser(beta)
        if not self.soft:  # else made for this V by the last step's pass on two threads
            self.soften()
        self.soft = False
        power = None if reg is None else reg[1]
        powers = ahead(lambda: regulariser_powers(self.centred, power)) if threads > 1 and power is not None else None
        try:
            gw, gdelta, gphi = self.gradients(layer.rows(index), index)
        finally:
            made = None if powers is None else powers.result()  # (waited for, whatever happened here)
        self.t += 1
        adam = None if self.s is None else (layer.v, self.m[0], self.s[0], lr, self.t)
        if threads > 1 and adam is not None:
            self._paired_update(gw, made, reg, adam)
        else:
            rounding_step(gw, self.gate, self.dh, self.centred, reg, adam, made)  # without Adam, gw is dV now
        for i, (param, grad) in enumerate(((layer.v, None if adam else gw), (layer.delta, gdelta),
                                           (layer.phi, gphi))):
            if grad is None:  # stepped already, or not learned (its gradient 0: a step would not move it)
                continue
            if self.s is not None:
                adam_step(param, grad, self.m[i], self.s[i], lr, self.t)
            else:
                self.m[i] = 0.9 * self.m[i] + grad
                param -= lr * self.m[i]

    def _paired_update(self, gw: np.ndarray, powers: np.ndarray | None, reg: tuple[float, float] | None,
                       adam: tuple[np.ndarray, np.ndarray, np.ndarray, float, int]) -> None:
        """The update of V (`rounding_step` with Adam) and the next step's soft weights, the weights in two
        parts (`step_part`), one on another thread."""
        soft, base, wmax = (self.w, self.gate, self.dh, self.centred), self.layer.base, self.layer.p.wmax
        first, second = weight_parts(gw.size, 2)
        other = ahead(lambda: step_part(second, gw, soft, powers, reg, adam, base, wmax))
        try:
            step_part(first, gw, soft, powers, reg, adam, base, wmax)
        finally:
            other.result()
        self.soft = True


def _step(layer: _Layer, rows: np.ndarray, target: np.ndarray, config: Config, nu: float,
          beta: float | None) -> list[np.ndarray]:
    """Gradients of (R5) for integer rows (R, G, K) and their targets (R, C): [dV, dδ, dφ]."""
    stepper = _Stepper(layer, config, nu, target)
    stepper.soften()
    index = np.arange(len(rows))
    gw, gdelta, gphi = stepper.gradients(_batch(rows, layer.v.shape), index)
    rounding_step(gw, stepper.gate, stepper.dh, stepper.centred, stepper.regulariser(beta), None)
    return [gw, np.zeros_like(layer.delta) if gdelta is None else gdelta,
            np.zeros_like(layer.phi) if gphi is None else gphi]


def _schedule(step: int, total: int, config: Config) -> tuple[float, float | None]:
    """The learning rate (linear warm-up) and β (None while the regulariser is off) at ``step``."""
    lr = config.learning_rate * min(1.0, (step + 1) / config.lr_warmup_steps) if config.lr_warmup_steps else \
        config.learning_rate
    start = int(config.reg_warmup * total)
    if step < start:
        return lr, None
    progress = (step - start) / max(total - start, 1)
    return lr, config.beta[0] + (config.beta[1] - config.beta[0]) * progress


def _row_means(rows: Rows, index: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The mean of the rows ``index`` (G, K), float64: integer sums, taken a part at a time."""
    total = np.zeros(rows.shape[1:], np.int64)
    for start in range(0, len(index), chunk):
        part = index[start:start + chunk]
        total += rows.sum(part) if isinstance(rows, LaidRows) else rows[part].sum(axis=0, dtype=np.int64)
    means: np.ndarray = total / max(len(index), 1)
    return means


def _settle_bias(layer: _Layer, means: np.ndarray) -> None:
    """After rounding, move the bias by the mean change of z the rounding made (z soft − z hard).

    z is linear in the rows (R3), so that mean is ``S_x·s_c·Σ_k x̄[g, k]·(w̃_soft − w̃_hard)[g, o, k]``
    with ``means`` x̄ the mean of the training rows (`_row_means`, taken once a layer): a product
    of the weights' size instead of two passes over every training row at every checkpoint."""
    change = layer.weights().astype(np.float64) - layer.weights(hard=True)
    per_channel = np.einsum("gk,gok->go", means, change).reshape(-1)
    shift = layer.p.x_scale * layer.scales() * per_channel
    layer.delta += (shift / layer.p.unit).astype(np.float32)


def held_out(images: int) -> int:
    """How many of ``images`` are held out: `HOLDOUT` of them, at least one (none of a single image)."""
    return 0 if images < 2 else min(images - 1, max(1, int(round(images * HOLDOUT))))


def held_out_images(images: int) -> np.ndarray:
    """The indices of the images held out of every layer's training, of ``images`` given (sorted)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(images)
    return np.sort(order[:held_out(images)])


def _split(images: int, per_image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training images, training rows, held-out rows): the held-out images are `held_out_images`."""
    held_images = held_out_images(images)
    train_images = np.setdiff1d(np.arange(images), held_images)
    offsets = np.arange(per_image)

    def rows(chosen: np.ndarray) -> np.ndarray:
        flat: np.ndarray = (chosen[:, None] * per_image + offsets).reshape(-1)
        return flat

    return train_images, rows(train_images), rows(held_images)


class _Checkpoints:
    """The best rounded state seen on the held-out rows (the start included), and when to stop."""

    def __init__(self, layer: _Layer, config: Config, nu: float, train_rows: np.ndarray, held_rows: np.ndarray):
        self.layer, self.config, self.nu = layer, config, nu
        self.train_rows, self.held_rows = train_rows, held_rows
        self.means = _row_means(layer.p.rows, train_rows) if config.learn_bias else None
        self.best: tuple[float, int, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.since = 0
        self.first = self.check(0, settle=False)

    def check(self, epoch: int, settle: bool = True) -> float:
        layer, delta = self.layer, self.layer.delta.copy()
        if settle and self.means is not None:
            _settle_bias(layer, self.means)
        rows = self.held_rows if len(self.held_rows) else self.train_rows
        loss = _evaluate(layer, self.config, self.nu, rows)
        if self.best is None or loss < self.best[0]:
            self.best = (loss, epoch, layer.v.copy(), layer.delta.copy(), layer.phi.copy())
            self.since = 0
        elif loss > self.best[0]:  # worse (an unchanged rounding is not)
            self.since += 1
        layer.delta[:] = delta
        return loss

    def restore(self) -> tuple[float, int]:
        assert self.best is not None  # the start is checked on construction
        loss, epoch, v, delta, phi = self.best
        self.layer.v[:], self.layer.delta[:], self.layer.phi[:] = v, delta, phi
        return loss, epoch


def train(p: Problem, config: Config, on_epoch: Callable[[], None] | None = None) -> Outcome:
    """Train one layer (R5) on all but the held-out images; the checkpoint with the best held-out loss."""
    layer = _Layer(p)
    nu = _target_power(p)
    rng = np.random.default_rng(config.seed)
    train_images, train_rows, held_rows = _split(len(p.rows) // p.per_image, p.per_image)
    before = _evaluate(layer, config, nu, train_rows)
    per_epoch = math.ceil(len(train_images) / config.batch_size)
    total = config.epochs * per_epoch if config.steps is None else min(config.steps, config.epochs * per_epoch)
    every = max(1, math.ceil(config.epochs / CHECKS))
    checks = _Checkpoints(layer, config, nu, train_rows, held_rows)
    stepper = _Stepper(layer, config, nu)
    offsets = np.arange(p.per_image)
    step = epoch = 0
    while epoch < config.epochs and checks.since < PATIENCE and step < total:
        order = rng.permutation(train_images)
        for b in range(min(per_epoch, total - step)):
            chosen = order[b * config.batch_size:(b + 1) * config.batch_size]
            index = (chosen[:, None] * p.per_image + offsets).reshape(-1)
            lr, beta = _schedule(step, total, config)
            stepper.step(index, lr, beta)
            step += 1
        epoch += 1
        if on_epoch is not None:
            on_epoch()
        if epoch % every == 0 or epoch == config.epochs or step == total:
            checks.check(epoch)
    for _ in range(epoch, config.epochs):  # the progress of the epochs an early stop skipped
        if on_epoch is not None:
            on_epoch()
    held_after, best_epoch = checks.restore()
    nearest = np.clip(np.floor(p.weight / p.scale.reshape(p.weight.shape[0], -1, 1) + 0.5), -p.wmax, p.wmax)
    held: dict[str, Any] = dict(heldout_before=checks.first, heldout_images=len(held_rows) // p.per_image, epochs_run=epoch)
    if best_epoch == 0:
        return Outcome(nearest, p.bias, p.scale, before, before, False, 0.0, step, heldout_after=checks.first,
                       best_epoch=0, **held)
    after = _evaluate(layer, config, nu, train_rows)  # the checkpoint's bias is settled already
    learned = layer.weights(hard=True)
    flipped = float(np.mean(learned != nearest)) if learned.size else 0.0
    return Outcome(learned, layer.biases().astype(np.float64), layer.scales(), before, after, True, flipped, step,
                   heldout_after=held_after, best_epoch=best_epoch, **held)
