"""The reconstruction's training step (`reconstruct._Stepper`, kernels in `alls.runtime.kernels.training`)
against the NumPy step it replaced, kept here as the reference: the same formulas (R1)-(R5) in float32,
one NumPy pass per operation, rows gathered by fancy indexing and converted on every step.

The fused step follows NumPy's roundings operation by operation (exp and pow are NumPy's own passes),
so the two learn the same integer weights, bias and scales, bit for bit; Adam's step is the runtime's
`adam_step` in both (its per-element arithmetic shared with the fused pass).
"""

from __future__ import annotations

from dataclasses import replace

import numba
import numpy as np
import pytest

from alls.plan import LossType, Optimizer
from alls.runtime.algorithms import reconstruct as R
from alls.runtime.algorithms.patches import LaidRows
from alls.runtime.kernels import _parallel
from alls.runtime.kernels import patches as P
from alls.runtime.kernels import training as T

F32 = np.float32


# ----------------------------------------------------------- the reference


def ref_rectified(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + np.exp(-v))
    raw = s * (R.ZETA - R.GAMMA) + R.GAMMA
    return np.clip(raw, 0.0, 1.0), np.where((raw > 0) & (raw < 1), (R.ZETA - R.GAMMA) * s * (1 - s), 0.0)


def ref_depthwise_forward(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """acc[r, c] = Σ_k rows[r, c, k]·w[c, k], the taps added in order (as the former kernel did)."""
    acc = np.zeros(rows.shape[:2], F32)
    for k in range(rows.shape[2]):
        acc += rows[:, :, k].astype(F32) * w[:, k]
    return acc


def ref_depthwise_backward(rows: np.ndarray, gacc: np.ndarray) -> np.ndarray:
    """out[c, k] = Σ_r gacc[r, c]·rows[r, c, k], the rows added in order (as the former kernel did)."""
    out = np.zeros((rows.shape[1], rows.shape[2]), F32)
    for r in range(len(rows)):
        out += gacc[r, :, None] * rows[r].astype(F32)
    return out


def ref_accumulate(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Integer rows (R, G, K); a depthwise layer's taps summed in order, as its kernel did."""
    if w.shape[0] == 1:
        return rows[:, 0, :].astype(F32) @ w[0].T
    if w.shape[1] == 1:
        return ref_depthwise_forward(rows, w[:, 0, :])
    x = rows.astype(F32)
    return np.matmul(x.transpose(1, 0, 2), w.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(len(rows), -1)


def ref_weight_grad(rows: np.ndarray, gacc: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """d/dw of Σ gacc·acc; a depthwise layer's rows summed in order, as its kernel did."""
    g, o, _ = shape
    if g == 1:
        return (gacc.T @ rows[:, 0, :].astype(F32))[None]
    if o == 1:
        return ref_depthwise_backward(rows, gacc)[:, None, :]
    return np.matmul(gacc.reshape(len(rows), g, o).transpose(1, 2, 0), rows.astype(F32).transpose(1, 0, 2))


def ref_output(layer: R._Layer, rows: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = layer.p
    z = (p.x_scale * layer.scales()).astype(F32) * ref_accumulate(rows, w) + layer.biases().astype(F32)
    a = np.clip(z, *p.pre_range)
    inside = (z >= p.pre_range[0]) & (z <= p.pre_range[1])
    if p.activation is None:
        y, slope = a, inside.astype(F32)
    else:
        y = p.activation(a)
        eps = F32(1e-3) * max(abs(p.pre_range[1] - p.pre_range[0]), 1e-6)
        slope = (p.activation(a + eps) - p.activation(a - eps)) / (2 * eps) * inside
    return z, np.clip(y, *p.out_range), slope * ((y >= p.out_range[0]) & (y <= p.out_range[1]))


def ref_step(layer: R._Layer, rows: np.ndarray, target: np.ndarray, config: R.Config, nu: float,
             beta: float | None) -> list[np.ndarray]:
    p = layer.p
    h, dh = ref_rectified(layer.v)
    raw = layer.base + h
    w, through = np.clip(raw, -p.wmax, p.wmax).astype(F32), (raw > -p.wmax) & (raw < p.wmax)
    z, yh, slope = ref_output(layer, rows, w)
    _, gy = R.LOSSES[config.loss](yh, np.clip(target, *p.out_range), nu)
    gz = (config.factor * gy * slope).astype(F32)
    s = layer.scales()
    gw = ref_weight_grad(rows, gz * (p.x_scale * s).astype(F32), w.shape)
    gv = gw * through * dh
    if beta is not None:
        t = 2 * h - 1
        greg = -config.reg_weight * beta * np.abs(t) ** (beta - 1) * np.sign(t) * 2
        gv = gv + greg * dh
    gdelta = gz.sum(axis=0) * p.unit if config.learn_bias else np.zeros_like(layer.delta)
    gphi = np.zeros_like(layer.phi)
    if config.learn_scales:
        per_channel = (gz * (z - layer.biases().astype(F32))).sum(axis=0) / (2.0 * p.wmax)
        gphi = np.bincount(p.group_of, per_channel, minlength=len(layer.phi)).astype(F32)
    return [gv.astype(F32, copy=False), gdelta.astype(F32, copy=False), gphi]


class RefStepper:
    """`reconstruct._Stepper`'s interface on the reference step and optimizer."""

    def __init__(self, layer: R._Layer, config: R.Config, nu: float):
        self.layer, self.config, self.nu, self.t = layer, config, nu, 0
        params = [layer.v, layer.delta, layer.phi]
        self.m = [np.zeros_like(q) for q in params]
        self.s = [np.zeros_like(q) for q in params] if config.optimizer is Optimizer.ADAM else None

    def step(self, index: np.ndarray, lr: float, beta: float | None) -> None:
        p = self.layer.p
        grads = ref_step(self.layer, p.rows[index], p.target[index], self.config, self.nu, beta)
        self.t += 1
        for i, (q, g) in enumerate(zip((self.layer.v, self.layer.delta, self.layer.phi), grads)):
            if self.s is not None:
                T.adam_step(q, g, self.m[i], self.s[i], lr, self.t)
            else:
                self.m[i] = 0.9 * self.m[i] + g
                q -= lr * self.m[i]


# ------------------------------------------------------------ the problems


def problem(kind: str, seed: int = 0, pre: tuple[float, float] = (-np.inf, np.inf), activation=None) -> R.Problem:
    """A layer of 16 images of 16 rows: dense (1 group), grouped (2 groups of 3) or depthwise (12 channels)."""
    groups, outs, taps = {"dense": (1, 8, 27), "grouped": (2, 3, 18), "depthwise": (12, 1, 9)}[kind]
    rng = np.random.default_rng(seed)
    images, per_image = 16, 16
    rows = rng.integers(-128, 128, (images * per_image, groups, taps)).astype(np.int16)
    weight = rng.normal(0, 0.3, (groups, outs, taps))
    scale = np.abs(weight).max(axis=2).reshape(-1) / 7
    x_scale = 0.02
    clean = x_scale * np.einsum("rgk,gok->rgo", rows.astype(np.float64), weight).reshape(len(rows), -1)
    target = clean + rng.normal(0, 0.05 * clean.std(), clean.shape)
    if activation is not None:
        target = activation(np.clip(target, *pre))
    elif np.isfinite(pre).all():
        target = np.clip(target, *pre)
    return R.Problem(rows=rows, per_image=per_image, target=target.astype(F32), weight=weight, scale=scale,
                     group_of=np.arange(groups * outs) % 2, wmax=7, x_scale=x_scale, bias=rng.normal(0, 0.05, groups * outs),
                     unit=float(np.abs(clean).max() / 127), pre_range=pre, out_range=(-np.inf, np.inf),
                     activation=activation)


BASE = R.Config(images=16, epochs=32, batch_size=4, learning_rate=2e-2, loss=LossType.L2REL)
CASES = {
    "dense l2": ("dense", {}, dict(loss=LossType.L2)),
    "dense l2rel bias scales": ("dense", {}, dict(learn_bias=True, learn_scales=True)),
    "dense relu6 l2rel bias": ("dense", dict(pre=(0.0, 6.0)), dict(learn_bias=True)),
    "grouped l2rel bias": ("grouped", {}, dict(learn_bias=True)),
    "grouped l2 scales": ("grouped", {}, dict(loss=LossType.L2, learn_scales=True)),
    "depthwise l2rel": ("depthwise", {}, {}),
    "depthwise l2 bias scales": ("depthwise", dict(pre=(0.0, np.inf)), dict(loss=LossType.L2, learn_bias=True,
                                                                           learn_scales=True)),
    "depthwise l1 bias": ("depthwise", {}, dict(loss=LossType.L1, learn_bias=True)),
    "dense cosine scales": ("dense", {}, dict(loss=LossType.COSINE, learn_scales=True)),
    "dense tanh l2 bias": ("dense", dict(pre=(-3.0, 3.0), activation=np.tanh), dict(loss=LossType.L2, learn_bias=True)),
    "grouped sgd l2rel": ("grouped", {}, dict(optimizer=Optimizer.SGD, learning_rate=5.0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_fused_step_learns_what_the_numpy_step_learns(case, monkeypatch, threads):
    """On 1 and 2 threads (the passes over the weights cut in ranges on 2)."""
    kind, shape, settings = CASES[case]
    p, config = problem(kind, **shape), replace(BASE, **settings)
    new = R.train(p, config)
    monkeypatch.setattr(R, "_Stepper", RefStepper)
    old = R.train(p, config)
    assert new.steps == old.steps and new.steps > 0
    assert new.kept == old.kept and new.best_epoch == old.best_epoch
    assert old.kept or case.startswith("dense relu6")  # the layers learn (so the comparison says something)
    np.testing.assert_array_equal(new.weights, old.weights)
    np.testing.assert_allclose(new.loss_after, old.loss_after, rtol=1e-5)
    np.testing.assert_allclose(new.heldout_after, old.heldout_after, rtol=1e-5)
    np.testing.assert_allclose(new.bias, old.bias, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(new.scale, old.scale, rtol=1e-6)
    parallel = {"_soft_weights_parts", "_rounding_step_parts"}
    assert parallel <= set(threads[1]) if threads[0] > 1 else not parallel & set(threads[1])


# ------------------------------------------------------------- the kernels


POOL = numba.config.NUMBA_NUM_THREADS


@pytest.fixture(params=[1, 2])
def threads(request, monkeypatch):
    """Kernel calls on 1 or 2 threads whatever their size and the machine's load (the parallel kernels
    called, where they are, with every core taken as free); the names of the kernels `_parallel.run` ran."""
    if request.param > POOL:
        pytest.skip("Numba's pool has one thread (NUMBA_NUM_THREADS or one core)")
    ran = []
    original = _parallel.run

    def spy(key, work, parts, kernel, *args):
        ran.append(kernel.__name__)
        return original(key, work, parts, kernel, *args)

    monkeypatch.setattr(_parallel, "WORK_PER_THREAD", 1 if request.param > 1 else 1 << 62)
    monkeypatch.setattr(_parallel, "free_cores", lambda: request.param)
    monkeypatch.setattr(_parallel, "_pick", lambda site, most: most)
    monkeypatch.setattr(_parallel, "run", spy)
    monkeypatch.setattr(T, "_SMALLEST_PART", 1 if request.param > 1 else T._SMALLEST_PART)
    before = _parallel.set_budget(request.param)
    yield request.param, ran
    _parallel.set_budget(before)


@pytest.mark.parametrize("per_group", [1, 3])
def test_laid_out_taps_are_the_centred_taps_in_the_steps_order(per_group, threads):
    """`gather_laid` (a depthwise layer's rows, (R, K, G)) against `gather_patches` ((R, C, KH, KW)) transposed,
    and both against NumPy's fancy indexing: as codes (a tap outside the input reads Z) and centred, with
    several input channels a group too, on 1 and 2 threads."""
    rng = np.random.default_rng(5)
    groups, rows, (kh, kw) = 5, 40, (3, 2)
    x = rng.integers(0, 256, (3, 6, 7, groups * per_group)).astype(np.uint8)
    n = np.sort(rng.integers(0, 3, rows)).astype(np.int64)
    ii, jj = rng.integers(0, 6, (rows, kh)).astype(np.int64), rng.integers(0, 7, (rows, kw)).astype(np.int64)
    vi, vj = rng.random((rows, kh)) < 0.8, rng.random((rows, kw)) < 0.8
    taps = x[n[:, None, None], ii[:, :, None], jj[:, None, :]].astype(np.int16) - 37  # (R, KH, KW, C)
    want_patches = np.where((vi[:, :, None] & vj[:, None, :])[..., None], taps, 0).transpose(0, 3, 1, 2)
    patches = np.empty((rows, groups * per_group, kh, kw), np.int16)
    P.gather_patches(x, n, ii, jj, vi, vj, 37, patches)
    np.testing.assert_array_equal(patches, want_patches)
    want = patches.reshape(rows, groups, -1).transpose(0, 2, 1)
    codes = np.empty((rows, per_group * kh * kw, groups), np.uint8)
    P.gather_laid(x, n, ii, jj, vi, vj, 0, 37, codes)
    centred = np.empty(codes.shape, np.int16)
    P.gather_laid(x, n, ii, jj, vi, vj, 37, 0, centred)
    np.testing.assert_array_equal(codes.astype(np.int64) - 37, want)
    np.testing.assert_array_equal(centred, want)
    assert (want == 0).any() and (want != 0).any()
    count, ran = threads
    assert ran == (["_patches_parts", "_laid_parts", "_laid_parts"] if count > 1 else ["_patches", "_laid", "_laid"])


@pytest.mark.parametrize("dtype,span", [(np.int16, 128), (np.int16, 3000), (np.int32, 3000)])
def test_gathered_rows_and_depthwise_products_are_the_reference_bit_for_bit(dtype, span):
    rng = np.random.default_rng(3)
    rows = rng.integers(-span, span, (200, 24, 9)).astype(dtype)  # 8-bit inputs span 256 values: held as uint8
    index = rng.permutation(200)[:70]
    w, grad = rng.normal(0, 1, (24, 1, 9)).astype(F32), rng.normal(0, 1, (70, 24)).astype(F32)
    assert np.array_equal(T.gather(rows, index), rows[index].astype(F32))
    x = T.depthwise_rows(rows)  # as a depthwise layer holds them
    assert x[0].dtype == (np.uint8 if span == 128 else dtype) and x[0].shape == (200, 9, 24)
    assert np.array_equal(x[0].astype(np.int64) + x[1], rows.transpose(0, 2, 1))
    assert np.array_equal(T.depthwise_forward(x, index, w[:, 0, :]), ref_accumulate(rows[index], w))
    assert np.array_equal(T.depthwise_backward(x, index, grad)[:, None, :], ref_weight_grad(rows[index], grad, w.shape))


def test_soft_weights_and_the_rounding_step_are_numpys_bit_for_bit(threads):
    """On 1 and 2 threads, over weights in several of `_by_weights`'s blocks and a part of one."""
    rng = np.random.default_rng(4)
    v = rng.normal(0, 3, (13, 37, 29)).astype(F32)
    v[0, 0, :3] = (-200, 200, 0)  # exp overflows to its limit, h saturates, the middle
    base = rng.integers(-8, 8, v.shape).astype(F32)
    w, gate, dh, t = (np.empty_like(v) for _ in range(4))
    T.soft_weights(v, base, 7, w, gate, dh, t)
    want_h, want_dh = ref_rectified(v)
    raw = base + want_h
    assert np.array_equal(t, 2 * want_h - 1) and np.array_equal(dh, want_dh)
    assert np.array_equal(w, np.clip(raw, -7, 7)) and np.array_equal(gate, want_dh * ((raw > -7) & (raw < 7)))
    gw = rng.normal(0, 1, v.shape).astype(F32)
    beta = 7.3
    want = gw * ((raw > -7) & (raw < 7)) * want_dh + (-0.01 * beta * np.abs(t) ** (beta - 1) * np.sign(t) * 2) * want_dh
    got = gw.copy()
    T.rounding_step(got, gate, dh, t, (-0.01 * beta, beta - 1), None)
    assert np.array_equal(got, want)
    ps, m, s = (np.zeros_like(v) for _ in range(3))
    T.rounding_step(gw.copy(), gate, dh, t, (-0.01 * beta, beta - 1), (ps, m, s, 0.1, 1))
    pr, mr, sr = (np.zeros_like(v) for _ in range(3))
    T.adam_step(pr, got, mr, sr, 0.1, 1)
    assert np.array_equal(ps, pr) and np.array_equal(m, mr) and np.array_equal(s, sr)
    count, ran = threads
    parts = {"_soft_weights_parts", "_rounding_step_parts"}
    assert set(ran) == parts if count > 1 else not ran  # on one thread, no call of `_parallel.run`


@pytest.mark.parametrize("case", list(CASES))
def test_the_checks_prediction_is_the_outputs_bit_for_bit(case):
    """`_Layer.predict` (the losses before and after, the held-out checks) is `output`'s ŷ, soft and rounded."""
    kind, shape, _ = CASES[case]
    p = problem(kind, **shape)
    layer = R._Layer(p)
    layer.delta[:] = np.random.default_rng(1).normal(0, 0.5, layer.delta.shape)
    index = np.arange(len(p.rows))
    for hard in (False, True):
        w = layer.weights(hard)
        want = layer.output(layer.rows(index), w)[2]
        got = layer.predict(layer.rows(index), w)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        assert np.unique(got).size > 10


# ------------------------------------------------------- rows as gathered


def laid(rows: np.ndarray, zero_point: int, dtype: type) -> LaidRows:
    """Centred depthwise rows (R, C, K) as `gather_rows` gathers them: the codes (R, K, C), offset −Z."""
    return LaidRows(np.ascontiguousarray((rows + zero_point).astype(dtype).transpose(0, 2, 1)), -zero_point)


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][0] == "depthwise"])
@pytest.mark.parametrize("zero_point,dtype", [(128, np.uint8), (1000, np.uint16)])
def test_depthwise_rows_gathered_laid_out_learn_what_integer_rows_learn(case, zero_point, dtype):
    """A depthwise layer trained on its `LaidRows` (the step's products, the checks, the bias settled from
    the rows' means) learns what it learns from the same rows as (R, C, K) integers, bit for bit."""
    kind, shape, settings = CASES[case]
    p, config = problem(kind, **shape), replace(BASE, **settings)
    gathered = replace(p, rows=laid(p.rows, zero_point, dtype))
    assert np.array_equal(gathered.rows.centred(), p.rows) and gathered.rows.shape == p.rows.shape
    index = np.arange(0, len(p.rows), 3)
    assert np.array_equal(R._row_means(gathered.rows, index, chunk=7), R._row_means(p.rows, index))
    new, old = R.train(gathered, config), R.train(p, config)
    assert old.kept and new.steps == old.steps
    for field in ("weights", "bias", "scale", "loss_before", "loss_after", "heldout_before", "heldout_after"):
        np.testing.assert_array_equal(getattr(new, field), getattr(old, field), err_msg=field)


# ------------------------------------------------------ a wide layer's step


def test_regulariser_powers_are_numpys_bit_for_bit():
    """`regulariser_powers` (pow skipped where |t| = 1) against NumPy's ``np.abs(t) ** power``, NumPy's own
    exponents (2, 1/2, −1, and those that round to them in float32) among others, with ±0, ±1, NaN, inf."""
    rng = np.random.default_rng(6)
    t = (2 * rng.random(20000) - 1).astype(F32)
    t[:8] = (0.0, -0.0, 1.0, -1.0, np.nan, 2.0 ** -149, np.inf, 3.0)
    t[8:10000] = np.where(rng.random(9992) < 0.5, 1.0, -1.0)  # saturated weights, as the regulariser leaves them
    exponents = [-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 2.0000000001, 0.50000000001, -1.0000000001,
                 18.999] + [float(x) for x in rng.uniform(-3, 20, 12)]
    for power in exponents:
        with np.errstate(all="ignore"):
            want = np.abs(t) ** power
            got = T.regulariser_powers(t.reshape(100, 200), power)
        assert got.dtype == F32 and got.shape == (t.size,)
        np.testing.assert_array_equal(got, want, err_msg=str(power))


def wide(seed: int = 0) -> R.Problem:
    """A dense layer of `R.PAIRED_WEIGHTS` weights or more (64 outputs of 576 taps), 16 images of 16 rows."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(-128, 128, (256, 1, 576)).astype(np.int16)
    weight = rng.normal(0, 0.05, (1, 64, 576))
    scale = np.abs(weight).max(axis=2).reshape(-1) / 7
    clean = 0.02 * (rows[:, 0, :].astype(np.float64) @ weight[0].T)
    target = np.maximum(clean + rng.normal(0, 0.05 * clean.std(), clean.shape), 0)
    return R.Problem(rows=rows, per_image=16, target=target.astype(F32), weight=weight, scale=scale,
                     group_of=np.zeros(64, np.int64), wmax=7, x_scale=0.02, bias=rng.normal(0, 0.05, 64),
                     unit=float(np.abs(clean).max() / 127), pre_range=(0.0, np.inf), out_range=(-np.inf, np.inf))


def test_a_wide_layers_step_on_two_threads_is_the_same_bit_for_bit(monkeypatch):
    """A wide layer's step on two threads (the regulariser's powers beside the products, the update and the
    next soft weights in two parts of the weights) leaves V, Adam's moments and the bias as one thread does,
    bit for bit, whichever count each step takes."""
    if POOL < 2:
        pytest.skip("Numba's pool has one thread (NUMBA_NUM_THREADS or one core)")
    p = wide()
    assert p.weight.size >= R.PAIRED_WEIGHTS
    config = replace(BASE, learn_bias=True, reg_warmup=0.1)
    nu = R._target_power(p)
    rng = np.random.default_rng(1)
    batches = [(rng.permutation(16)[:4, None] * 16 + np.arange(16)).reshape(-1) for _ in range(12)]
    paired, ahead = [], R.ahead
    monkeypatch.setattr(R, "ahead", lambda work: paired.append(work) or ahead(work))
    monkeypatch.setattr(_parallel, "free_cores", lambda: 2)
    monkeypatch.setattr(_parallel, "WORK_PER_THREAD", 1)
    states = []
    for counts in ([1] * 12, [2] * 12, [2, 1, 1, 2, 2, 1, 2, 1, 2, 2, 1, 2]):
        layer = R._Layer(p)
        stepper = R._Stepper(layer, config, nu)
        before = _parallel.set_budget(2)
        try:
            for step, (index, count) in enumerate(zip(batches, counts)):
                monkeypatch.setattr(_parallel, "_pick", lambda site, most, count=count: count)
                stepper.step(index, *R._schedule(step, len(batches), config))
        finally:
            _parallel.set_budget(before)
        states.append([layer.v, layer.delta, *stepper.m, *stepper.s])
    assert len(paired) > 12  # the two-thread steps ran beside a part thread
    for state in states[1:]:
        for got, want in zip(state, states[0]):
            np.testing.assert_array_equal(got, want)
    assert np.any(states[0][0] != R._Layer(p).v)


def test_a_wide_layer_learns_what_the_numpy_step_learns(threads, monkeypatch):
    """`R.train` of a wide layer (its steps on two threads with the `threads` fixture's 2) against the
    NumPy reference: the same weights, bias and losses."""
    p, config = wide(2), replace(BASE, learn_bias=True)
    new = R.train(p, config)
    monkeypatch.setattr(R, "_Stepper", RefStepper)
    old = R.train(p, config)
    assert new.steps == old.steps and new.kept and old.kept and new.best_epoch == old.best_epoch
    np.testing.assert_array_equal(new.weights, old.weights)
    np.testing.assert_allclose(new.bias, old.bias, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(new.loss_after, old.loss_after, rtol=1e-5)


@pytest.mark.parametrize("span,relative", [(128, True), (3000, False)])
def test_the_depthwise_pass_is_its_three_kernels_bit_for_bit(span, relative):
    """`depthwise_l2` (the forward product, the loss gradient and the backward product in one pass over the rows)
    against `depthwise_forward`, `l2_gradient` and `depthwise_backward`, with clips that cut the gradient."""
    rng = np.random.default_rng(7)
    rows = T.depthwise_rows(rng.integers(-span, span, (300, 40, 9)).astype(np.int16))
    index = rng.permutation(300)[:96]
    w = rng.normal(0, 1, (40, 9)).astype(F32)
    target = rng.normal(0, 50, (300, 40)).astype(F32)
    a, b = rng.random(40).astype(F32), rng.normal(0, 20, 40).astype(F32)
    ranges = np.array([-60.0, 80.0, -40.0, np.inf], F32)
    acc = T.depthwise_forward(rows, index, w)
    gacc, sums, moments = T.l2_gradient(acc, target, index, a, b, ranges, 1.7, relative, 0.5)
    want = T.depthwise_backward(rows, index, gacc)
    got = T.depthwise_l2(rows, index, w, target, a, b, ranges, 1.7, relative, 0.5)
    assert (gacc == 0).any() and (gacc != 0).any()
    for g, expected in zip(got, (want, sums, moments)):
        assert g.dtype == F32
        np.testing.assert_array_equal(g, expected)


def test_a_wide_layers_step_leaves_the_core_of_an_aside_work(monkeypatch):
    """While an aside work runs (finetune's check of the start network, on the core the training leaves),
    a wide layer's step and its checks stay on the calling thread; once it is done, they take two."""
    import threading

    from alls.runtime.exec import pool

    if POOL < 2:
        pytest.skip("Numba's pool has one thread (NUMBA_NUM_THREADS or one core)")
    p, config = wide(), replace(BASE, learn_bias=True, reg_warmup=0.1)
    nu = R._target_power(p)
    paired, ahead = [], R.ahead
    monkeypatch.setattr(R, "ahead", lambda work: paired.append(work) or ahead(work))
    monkeypatch.setattr(_parallel, "free_cores", lambda: 2)
    monkeypatch.setattr(_parallel, "WORK_PER_THREAD", 1)
    monkeypatch.setattr(_parallel, "_pick", lambda site, most: most)
    release = threading.Event()
    held = pool.aside(release.wait)
    before = _parallel.set_budget(2)
    try:
        assert pool.aside_running()
        stepper = R._Stepper(R._Layer(p), config, nu)
        for step in range(4):
            stepper.step(np.arange(64), *R._schedule(step, 4, config))
        assert not paired
        release.set()
        held.result()
        for _ in range(100):  # the aside thread's count falls just after its result is set
            if not pool.aside_running():
                break
            threading.Event().wait(0.01)
        assert not pool.aside_running()
        stepper.step(np.arange(64), *R._schedule(3, 4, config))
        assert paired
    finally:
        release.set()
        _parallel.set_budget(before)
