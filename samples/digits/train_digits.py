#!/usr/bin/env python3
"""Train the tiny ``digits_cnn.onnx`` fixture on scikit-learn's digits data set.

This script is the provenance of every other file in ``samples/digits/``.  It
trains a small CNN with plain NumPy (forward and backward passes written out by
hand, Adam optimiser, float64 arithmetic), builds the ONNX graph directly with
``onnx.helper`` and writes:

* ``digits_cnn.onnx`` -- opset 13, input ``input`` [N,1,8,8] float32 (NCHW),
  output ``logits`` [N,10] float32 (no softmax).
* ``calib.npy``      -- 64 training images, float32, NHWC (64,8,8,1).
* ``test_x.npy``     -- held-out test images, float32, NHWC (360,8,8,1).
* ``test_y.npy``     -- their labels, int64 (360,).

Pixels are scaled to [0, 1] by dividing the raw 0..16 values by 16, for the
model input and for all ``.npy`` files alike.

Graph, in order (BatchNormalization is deliberately *not* folded into the
convolutions, so a consumer has to fold it itself)::

    input [N,1,8,8]
    Conv 3x3 pad 1, 1->16
    BatchNormalization
    Relu
    Conv 3x3 pad 1, group=16 (depthwise)
    BatchNormalization
    Clip(0, 6)                       (ReLU6)
    Conv 1x1, 16->32
    Relu
    MaxPool 2x2 stride 2             -> [N,32,4,4]
    Conv 3x3 pad 1, 32->32
    Relu
    GlobalAveragePool                -> [N,32,1,1]
    Flatten                          -> [N,32]
    Gemm 32->10 (transB=1)           -> logits [N,10]

Determinism: the split (``train_test_split(test_size=0.2, random_state=0,
stratify=y)``), the weight initialisation, the mini-batch order and the
augmentation all come from fixed seeds, so rerunning the script rewrites
identical files (on the same NumPy/BLAS build; the ONNX file is serialised
deterministically).

Usage (from the repository root)::

    python samples/digits/train_digits.py            # train, write, verify
    python samples/digits/train_digits.py --no-verify

Needs ``numpy``, ``scikit-learn`` and ``onnx``; verification additionally
needs ``onnxruntime``.  None of these is a dependency of the ``alls`` package.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

SPLIT_SEED = 0       # train/test split
INIT_SEED = 1234     # weight initialisation
SHUFFLE_SEED = 5678  # mini-batch order and augmentation
EPOCHS = 40
BATCH = 32
LR = 3e-3
WEIGHT_DECAY = 1e-4
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
N_CALIB = 64


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def load_data():
    """Return (x_train, y_train, x_test, y_test); x is NCHW float64 in [0,1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float64) / 16.0)[:, None, :, :]  # N,1,8,8
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, random_state=SPLIT_SEED, stratify=y)
    return x_tr, y_tr, x_te, y_te


def augment(x, rng):
    """Random shift of each image by -1..1 pixels in each axis (zero fill)."""
    n = x.shape[0]
    out = np.zeros_like(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dy = rng.integers(-1, 2, size=n)
    dx = rng.integers(-1, 2, size=n)
    for i in range(n):
        out[i] = xp[i, :, 1 + dy[i]:9 + dy[i], 1 + dx[i]:9 + dx[i]]
    return out


# --------------------------------------------------------------------------
# Layers: forward returns (out, cache); backward returns grads
# --------------------------------------------------------------------------

def conv3x3_fwd(x, w, b):
    """Dense 3x3 conv, stride 1, pad 1. x: N,C,H,W; w: O,C,3,3."""
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    # cols[n, c, ki, kj, h, w] = xp[n, c, h+ki, w+kj]
    cols = np.stack([np.stack([xp[:, :, i:i + h, j:j + wd] for j in range(3)], 2)
                     for i in range(3)], 2)
    cols = cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * wd, c * 9)
    o = w.shape[0]
    out = cols @ w.reshape(o, -1).T + b
    out = out.reshape(n, h, wd, o).transpose(0, 3, 1, 2)
    return out, (x.shape, cols, w)


def conv3x3_bwd(dout, cache):
    (n, c, h, wd), cols, w = cache
    o = w.shape[0]
    d = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d.T @ cols).reshape(w.shape)
    db = d.sum(0)
    dcols = (d @ w.reshape(o, -1)).reshape(n, h, wd, c, 3, 3)
    dxp = np.zeros((n, c, h + 2, wd + 2))
    for i in range(3):
        for j in range(3):
            dxp[:, :, i:i + h, j:j + wd] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1], dw, db


def dwconv3x3_fwd(x, w, b):
    """Depthwise 3x3 conv, stride 1, pad 1. x: N,C,H,W; w: C,1,3,3."""
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            out += xp[:, :, i:i + h, j:j + wd] * w[None, :, 0, i, j, None, None]
    out += b[None, :, None, None]
    return out, (xp, w)


def dwconv3x3_bwd(dout, cache):
    xp, w = cache
    n, c, h, wd = dout.shape
    dw = np.zeros_like(w)
    dxp = np.zeros_like(xp)
    for i in range(3):
        for j in range(3):
            dw[:, 0, i, j] = (dout * xp[:, :, i:i + h, j:j + wd]).sum((0, 2, 3))
            dxp[:, :, i:i + h, j:j + wd] += dout * w[None, :, 0, i, j, None, None]
    db = dout.sum((0, 2, 3))
    return dxp[:, :, 1:-1, 1:-1], dw, db


def conv1x1_fwd(x, w, b):
    """Pointwise conv. x: N,C,H,W; w: O,C,1,1."""
    out = np.einsum("nchw,oc->nohw", x, w[:, :, 0, 0]) + b[None, :, None, None]
    return out, (x, w)


def conv1x1_bwd(dout, cache):
    x, w = cache
    dw = np.einsum("nohw,nchw->oc", dout, x)[:, :, None, None]
    db = dout.sum((0, 2, 3))
    dx = np.einsum("nohw,oc->nchw", dout, w[:, :, 0, 0])
    return dx, dw, db


def bn_train_fwd(x, gamma, beta, state):
    """BatchNorm with batch statistics; updates running stats in `state`."""
    mu = x.mean((0, 2, 3))
    var = x.var((0, 2, 3))
    m = x.shape[0] * x.shape[2] * x.shape[3]
    state["mean"] = (1 - BN_MOMENTUM) * state["mean"] + BN_MOMENTUM * mu
    state["var"] = (1 - BN_MOMENTUM) * state["var"] + BN_MOMENTUM * var * m / (m - 1)
    inv = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (x - mu[None, :, None, None]) * inv[None, :, None, None]
    out = xhat * gamma[None, :, None, None] + beta[None, :, None, None]
    return out, (xhat, inv, gamma)


def bn_train_bwd(dout, cache):
    xhat, inv, gamma = cache
    m = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dgamma = (dout * xhat).sum((0, 2, 3))
    dbeta = dout.sum((0, 2, 3))
    dxhat = dout * gamma[None, :, None, None]
    dx = (inv[None, :, None, None] / m) * (
        m * dxhat - dxhat.sum((0, 2, 3))[None, :, None, None]
        - xhat * (dxhat * xhat).sum((0, 2, 3))[None, :, None, None])
    return dx, dgamma, dbeta


def bn_eval(x, gamma, beta, mean, var):
    """ONNX BatchNormalization (inference): (x-mean)/sqrt(var+eps)*scale+B."""
    sh = (None, slice(None), None, None)
    return (x - mean[sh]) / np.sqrt(var[sh] + BN_EPS) * gamma[sh] + beta[sh]


def maxpool2_fwd(x):
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    r = r.reshape(n, c, h // 2, w // 2, 4)
    idx = r.argmax(-1)
    out = np.take_along_axis(r, idx[..., None], -1)[..., 0]
    return out, (x.shape, idx)


def maxpool2_bwd(dout, cache):
    (n, c, h, w), idx = cache
    d = np.zeros((n, c, h // 2, w // 2, 4))
    np.put_along_axis(d, idx[..., None], dout[..., None], -1)
    d = d.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return d.reshape(n, c, h, w)


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

def init_params(rng):
    def he(shape, fan_in):
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)

    p = {
        "conv1_w": he((16, 1, 3, 3), 9), "conv1_b": np.zeros(16),
        "bn1_g": np.ones(16), "bn1_b": np.zeros(16),
        "dw_w": he((16, 1, 3, 3), 9), "dw_b": np.zeros(16),
        "bn2_g": np.ones(16), "bn2_b": np.zeros(16),
        "pw_w": he((32, 16, 1, 1), 16), "pw_b": np.zeros(32),
        "conv3_w": he((32, 32, 3, 3), 32 * 9), "conv3_b": np.zeros(32),
        "fc_w": rng.standard_normal((10, 32)) * np.sqrt(1.0 / 32), "fc_b": np.zeros(10),
    }
    bn = {"bn1": {"mean": np.zeros(16), "var": np.ones(16)},
          "bn2": {"mean": np.zeros(16), "var": np.ones(16)}}
    return p, bn


def forward_train(p, bn, x):
    c = {}
    h, c["conv1"] = conv3x3_fwd(x, p["conv1_w"], p["conv1_b"])
    h, c["bn1"] = bn_train_fwd(h, p["bn1_g"], p["bn1_b"], bn["bn1"])
    c["relu1"] = h > 0
    h = h * c["relu1"]
    h, c["dw"] = dwconv3x3_fwd(h, p["dw_w"], p["dw_b"])
    h, c["bn2"] = bn_train_fwd(h, p["bn2_g"], p["bn2_b"], bn["bn2"])
    c["relu6"] = (h > 0) & (h < 6)
    h = np.clip(h, 0.0, 6.0)
    h, c["pw"] = conv1x1_fwd(h, p["pw_w"], p["pw_b"])
    c["relu2"] = h > 0
    h = h * c["relu2"]
    h, c["pool"] = maxpool2_fwd(h)
    h, c["conv3"] = conv3x3_fwd(h, p["conv3_w"], p["conv3_b"])
    c["relu3"] = h > 0
    h = h * c["relu3"]
    c["gap_shape"] = h.shape
    g = h.mean((2, 3))
    c["fc_in"] = g
    logits = g @ p["fc_w"].T + p["fc_b"]
    return logits, c


def backward(p, c, dlogits):
    g = {}
    g["fc_w"] = dlogits.T @ c["fc_in"]
    g["fc_b"] = dlogits.sum(0)
    dg = dlogits @ p["fc_w"]
    n, ch, hh, ww = c["gap_shape"]
    d = np.broadcast_to(dg[:, :, None, None] / (hh * ww), c["gap_shape"]).copy()
    d = d * c["relu3"]
    d, g["conv3_w"], g["conv3_b"] = conv3x3_bwd(d, c["conv3"])
    d = maxpool2_bwd(d, c["pool"])
    d = d * c["relu2"]
    d, g["pw_w"], g["pw_b"] = conv1x1_bwd(d, c["pw"])
    d = d * c["relu6"]
    d, g["bn2_g"], g["bn2_b"] = bn_train_bwd(d, c["bn2"])
    d, g["dw_w"], g["dw_b"] = dwconv3x3_bwd(d, c["dw"])
    d = d * c["relu1"]
    d, g["bn1_g"], g["bn1_b"] = bn_train_bwd(d, c["bn1"])
    _, g["conv1_w"], g["conv1_b"] = conv3x3_bwd(d, c["conv1"])
    return g


def forward_eval(p, bn, x):
    """Inference forward pass, the exact computation the ONNX graph encodes."""
    h, _ = conv3x3_fwd(x, p["conv1_w"], p["conv1_b"])
    h = bn_eval(h, p["bn1_g"], p["bn1_b"], bn["bn1"]["mean"], bn["bn1"]["var"])
    h = np.maximum(h, 0)
    h, _ = dwconv3x3_fwd(h, p["dw_w"], p["dw_b"])
    h = bn_eval(h, p["bn2_g"], p["bn2_b"], bn["bn2"]["mean"], bn["bn2"]["var"])
    h = np.clip(h, 0, 6)
    h, _ = conv1x1_fwd(h, p["pw_w"], p["pw_b"])
    h = np.maximum(h, 0)
    h, _ = maxpool2_fwd(h)
    h, _ = conv3x3_fwd(h, p["conv3_w"], p["conv3_b"])
    h = np.maximum(h, 0)
    g = h.mean((2, 3))
    return g @ p["fc_w"].T + p["fc_b"]


def softmax_xent(logits, y):
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    prob = e / e.sum(1, keepdims=True)
    n = logits.shape[0]
    loss = -np.log(prob[np.arange(n), y] + 1e-12).mean()
    d = prob.copy()
    d[np.arange(n), y] -= 1.0
    return loss, d / n


def recalibrate_bn(p, bn, x):
    """Replace running BN statistics with exact full-training-set statistics.

    BN1 is computed first; BN2's input depends on BN1 in inference mode.
    Uses the population variance as the inference-time variance.
    """
    h, _ = conv3x3_fwd(x, p["conv1_w"], p["conv1_b"])
    bn["bn1"]["mean"] = h.mean((0, 2, 3))
    bn["bn1"]["var"] = h.var((0, 2, 3))
    h = np.maximum(bn_eval(h, p["bn1_g"], p["bn1_b"], bn["bn1"]["mean"], bn["bn1"]["var"]), 0)
    h, _ = dwconv3x3_fwd(h, p["dw_w"], p["dw_b"])
    bn["bn2"]["mean"] = h.mean((0, 2, 3))
    bn["bn2"]["var"] = h.var((0, 2, 3))


def train(x_tr, y_tr, log=print):
    rng_init = np.random.default_rng(INIT_SEED)
    rng = np.random.default_rng(SHUFFLE_SEED)
    p, bn = init_params(rng_init)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, step = 0.9, 0.999, 0
    n = x_tr.shape[0]
    for epoch in range(EPOCHS):
        lr = LR * 0.5 * (1 + np.cos(np.pi * epoch / EPOCHS))  # cosine decay
        order = rng.permutation(n)
        xa = augment(x_tr, rng)
        tot, correct = 0.0, 0
        for s in range(0, n, BATCH):
            idx = order[s:s + BATCH]
            if idx.size < 2:
                continue
            logits, cache = forward_train(p, bn, xa[idx])
            loss, dl = softmax_xent(logits, y_tr[idx])
            tot += loss * idx.size
            correct += int((logits.argmax(1) == y_tr[idx]).sum())
            grads = backward(p, cache, dl)
            step += 1
            for k in p:
                gk = grads[k]
                if k.endswith("_w"):
                    gk = gk + WEIGHT_DECAY * p[k]
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                mh = m[k] / (1 - b1 ** step)
                vh = v[k] / (1 - b2 ** step)
                p[k] = p[k] - lr * mh / (np.sqrt(vh) + 1e-8)
        if epoch % 5 == 0 or epoch == EPOCHS - 1:
            log(f"epoch {epoch:3d}  lr {lr:.5f}  loss {tot / n:.4f}  "
                f"train-acc(aug) {correct / n:.4f}")
    recalibrate_bn(p, bn, x_tr)
    return p, bn


# --------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------

def build_onnx(p, bn):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    inits = []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=f32), name))
        return name

    nodes = [
        helper.make_node("Conv", ["input", init("conv1.weight", p["conv1_w"]),
                                  init("conv1.bias", p["conv1_b"])], ["conv1_out"],
                         name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1], dilations=[1, 1], group=1),
        helper.make_node("BatchNormalization",
                         ["conv1_out", init("bn1.scale", p["bn1_g"]), init("bn1.bias", p["bn1_b"]),
                          init("bn1.mean", bn["bn1"]["mean"]), init("bn1.var", bn["bn1"]["var"])],
                         ["bn1_out"], name="bn1", epsilon=BN_EPS, momentum=1.0 - BN_MOMENTUM),
        helper.make_node("Relu", ["bn1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("Conv", ["relu1_out", init("dw.weight", p["dw_w"]),
                                  init("dw.bias", p["dw_b"])], ["dw_out"],
                         name="dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1], dilations=[1, 1], group=16),
        helper.make_node("BatchNormalization",
                         ["dw_out", init("bn2.scale", p["bn2_g"]), init("bn2.bias", p["bn2_b"]),
                          init("bn2.mean", bn["bn2"]["mean"]), init("bn2.var", bn["bn2"]["var"])],
                         ["bn2_out"], name="bn2", epsilon=BN_EPS, momentum=1.0 - BN_MOMENTUM),
        helper.make_node("Clip", ["bn2_out", init("clip.min", np.array(0.0)),
                                  init("clip.max", np.array(6.0))], ["relu6_out"], name="relu6"),
        helper.make_node("Conv", ["relu6_out", init("pw.weight", p["pw_w"]),
                                  init("pw.bias", p["pw_b"])], ["pw_out"],
                         name="pw", kernel_shape=[1, 1], pads=[0, 0, 0, 0],
                         strides=[1, 1], dilations=[1, 1], group=1),
        helper.make_node("Relu", ["pw_out"], ["relu2_out"], name="relu2"),
        helper.make_node("MaxPool", ["relu2_out"], ["pool_out"], name="pool",
                         kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
        helper.make_node("Conv", ["pool_out", init("conv3.weight", p["conv3_w"]),
                                  init("conv3.bias", p["conv3_b"])], ["conv3_out"],
                         name="conv3", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1], dilations=[1, 1], group=1),
        helper.make_node("Relu", ["conv3_out"], ["relu3_out"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["relu3_out"], ["gap_out"], name="gap"),
        helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", init("fc.weight", p["fc_w"]),
                                  init("fc.bias", p["fc_b"])], ["logits"],
                         name="fc", alpha=1.0, beta=1.0, transA=0, transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
        doc_string="Tiny CNN for sklearn digits (8x8, pixels/16). "
                   "Made by samples/digits/train_digits.py.")
    model = helper.make_model(graph, producer_name="alls-samples-train_digits",
                              producer_version="1",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=HERE, help="output directory (default: this folder)")
    ap.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    args = ap.parse_args(argv)

    x_tr, y_tr, x_te, y_te = load_data()
    print(f"train {x_tr.shape[0]} images, test {x_te.shape[0]} images")

    t0 = time.perf_counter()
    p, bn = train(x_tr, y_tr)
    t_train = time.perf_counter() - t0
    print(f"training took {t_train:.1f} s")

    # Export in float32; the reference forward pass below uses these exact values.
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    bn32 = {k: {s: a.astype(np.float32) for s, a in d.items()} for k, d in bn.items()}
    model = build_onnx(p32, bn32)

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "digits_cnn.onnx")
    with open(onnx_path, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))

    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1).astype(np.float32))
    np.save(os.path.join(args.out, "calib.npy"), nhwc(x_tr[:N_CALIB]))
    np.save(os.path.join(args.out, "test_x.npy"), nhwc(x_te))
    np.save(os.path.join(args.out, "test_y.npy"), y_te.astype(np.int64))

    x_te32 = x_te.astype(np.float32)
    ref = forward_eval(p32, bn32, x_te32).astype(np.float32)
    print(f"numpy float32 test accuracy: {(ref.argmax(1) == y_te).mean():.4f}")
    print(f"nodes: {[n.op_type for n in model.graph.node]}")

    if args.no_verify:
        return
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed; skipping verification")
        return
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    tx = np.load(os.path.join(args.out, "test_x.npy")).transpose(0, 3, 1, 2)
    ty = np.load(os.path.join(args.out, "test_y.npy"))
    out = sess.run(["logits"], {"input": np.ascontiguousarray(tx)})[0]
    acc = float((out.argmax(1) == ty).mean())
    diff = float(np.abs(out - ref).max())
    print(f"onnxruntime test accuracy: {acc:.4f} ({int((out.argmax(1) == ty).sum())}/{ty.size})")
    print(f"max |numpy - onnxruntime| on test logits: {diff:.2e}")
    assert diff < 1e-4, diff
    assert acc >= 0.95, acc


if __name__ == "__main__":
    main()
