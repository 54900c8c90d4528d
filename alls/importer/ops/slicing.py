"""Parts of a tensor and tensors joined: Slice (`slice`), Split (one `feature_splitter` per part
that is read) and Concat (`concat`)."""

from __future__ import annotations

from alls.importer.drafts import Draft, aliases_of
from alls.importer.registry import handles


@handles("Slice")
def slice(imp, n, data_in):
    shape = imp.shape(data_in[0]) if len(data_in) == 1 else ()
    starts, ends = imp.const_ints(n, 1, "starts"), imp.const_ints(n, 2, "ends")
    axes, steps = imp.const_ints(n, 3, "axes"), imp.const_ints(n, 4, "steps")
    if len(data_in) != 1 or any(v is False for v in (starts, ends, axes, steps)) or not starts or not ends:
        return "the starts, ends, axes or steps are not constant"
    if not shape:
        return "the input shape is unknown"
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    out, slices = list(shape), []
    for axis, start, end, step in zip(axes, starts, ends, steps):
        axis %= len(shape)
        if step == 0:
            return "a slice step of 0"
        bounds = slice_bounds(start, end, step, shape[axis])
        if axis == 0:  # the whole batch, in order, is no slice (the layer runs on any number of images)
            if bounds[2] != 1 or len(range(*bounds)) != shape[0]:
                return "a slice of the batch axis has no layer"
            continue
        out[axis] = len(range(*bounds))
        slices.append((axis, *bounds))
    if 0 in out:
        return "an empty slice has no layer"
    imp.moved(n, data_in, "slice", tuple(out), {"slices": tuple(slices)})


@handles("Split")
def split(imp, n, data_in):
    shape = imp.shape(data_in[0]) if len(data_in) == 1 else ()
    sizes = imp.const_ints(n, 1, "split")
    if len(data_in) != 1 or sizes is False:
        return "the split sizes are not constant"
    if not shape:
        return "the input shape is unknown"
    axis = int(n.attrs.get("axis", 0)) % len(shape)
    if not sizes:
        parts = int(n.attrs.get("num_outputs", len(n.outputs)))
        step = -(-shape[axis] // parts)
        sizes = [min(step, shape[axis] - i * step) for i in range(parts)]
    if axis == 0 or sum(sizes) != shape[axis] or len(sizes) != len(n.outputs) or min(sizes) <= 0:
        return f"a split of axis {axis} ({shape[axis]}) into {sizes} has no layer"
    start = 0
    for i, (output, size) in enumerate(zip(n.outputs, sizes)):
        if output and imp.consumers[output]:  # one layer per part that is read
            part = list(shape)
            part[axis] = size
            aliases = ([n.name] if i == 0 else []) + [output]
            imp.moved(n, data_in, "feature_splitter", tuple(part),
                        {"slices": ((axis, start, start + size, 1),), "part": i}, output, aliases)
        start += size


@handles("Concat")
def concat(imp, n, data_in):
    if len(data_in) != len([i for i in n.inputs if i]):
        return "a concat of constants and tensors has no layer"
    imp.add(Draft("concat", ["Concat"], data_in, n.outputs[0], aliases_of(n), node_name=n.name,
                  attrs={"axis": int(n.attrs.get("axis", 1))}))


def slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int, int]:
    """ONNX Slice's clamping of (start, end) on an axis of ``dim``: negative indices count from the
    end, and with a negative step the end may be −1 (through index 0), as ``range`` reads it."""
    start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim), step
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step
