"""BatchNormalization: folded into the conv or dense layer before it, else a `batch_norm` layer."""

from __future__ import annotations

import numpy as np

from alls.importer.drafts import Draft, aliases_of
from alls.importer.ops.weighted import scale_outputs
from alls.importer.registry import handles


@handles("BatchNormalization")
def batch_normalization(imp, n, data_in):
    if n.attrs.get("training_mode", 0) or any(imp.consumers[o] for o in n.outputs[1:] if o):
        return "BatchNormalization in training mode (batch statistics) has no layer"
    scale, bias, mean, var = (imp.consts.get(imp.resolve(i)) for i in n.inputs[1:5])
    if any(a is None for a in (scale, bias, mean, var)):
        return "the statistics are not constant"
    a = scale / np.sqrt(var + float(n.attrs.get("epsilon", 1e-5)))
    b = bias - mean * a
    draft = imp.single_consumer_producer(data_in[0], ("conv", "dw", "deconv", "fc"))
    if draft is not None and draft.kind == "fc" and len(imp.shape(data_in[0])) != 2:
        draft = None  # BN normalizes axis 1; an fc's features are its last axis
    if draft is not None and draft.activation is None:
        scale_outputs(draft, a)
        draft.params["bias"] = (draft.params["bias"] + b).astype(np.float32)
        imp.fold_into(draft, n)
        return None
    draft = Draft("batch_norm", ["BatchNormalization"], data_in, n.outputs[0], aliases_of(n), node_name=n.name)
    draft.params["scale"], draft.params["shift"] = a.astype(np.float32), b.astype(np.float32)
    imp.add(draft)
