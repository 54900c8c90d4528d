"""The analysis report's figures, drawn with matplotlib (headless, Agg) as PNG bytes.

matplotlib is the optional extra ``alls[report]``; `require` names it with
ALS011 when it is missing, and the report checks that before any work.
Every figure has a title, labelled axes with ticks, and a legend where
colours mean channels:

- `scatter`: a layer's float values against its quantized ones, by channel;
- `histograms`: one small histogram per channel, with the range its
  encoding represents marked;
- `recovery`: an output against native, everything quantized beside the
  blamed layers in float;
- `snr_by_layer`: each layer's harm (only it quantized) and its own SNR
  with everything quantized.

Colours: ``PALETTE[k]`` for the k-th highlighted channel, ``OTHER`` for the rest (index -1).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from alls.diagnostics import AllsError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PALETTE", "OTHER", "hex_colour", "padded", "require", "scatter", "histograms", "recovery",
           "snr_by_layer"]

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207), (188, 189, 34))
OTHER = (185, 185, 185)
DPI = 100

Range = tuple[float, float]


def hex_colour(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def padded(lo: float, hi: float, margin: float = 0.03) -> Range:
    """``[lo, hi]`` widened by ``margin`` of its width on each side (a point becomes a unit interval)."""
    lo, hi = float(lo), float(hi)
    width = hi - lo
    if width <= 0:
        return lo - 0.5, hi + 0.5
    return lo - margin * width, hi + margin * width


def require() -> ModuleType:
    """matplotlib's pyplot on the Agg backend; ALS011 when the ``report`` extra is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise AllsError.of("ALS011", "the analysis report draws its figures with matplotlib, which is not installed",
                           "install the report extra: pip install 'alls[report]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colours(index: np.ndarray) -> np.ndarray:
    table = np.array([*PALETTE, OTHER], np.float64) / 255.0
    return table[np.where(index < 0, len(PALETTE), index % len(PALETTE))]


def _png(fig: Figure) -> bytes:
    plt = require()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return out.getvalue()


def _scatter_axes(ax: Axes, x: np.ndarray, y: np.ndarray, index: np.ndarray, limits: Range) -> None:
    """Guides (zero lines, y = x), then the points: other channels first, the widest channel on top."""
    ax.axhline(0.0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0.0, color="0.85", lw=0.8, zorder=0)
    ax.plot(limits, limits, color="0.7", lw=0.8, ls="--", zorder=0, label="y = x")
    order = np.argsort(np.where(index < 0, np.iinfo(np.int64).max, index.astype(np.int64)), kind="stable")[::-1]
    ax.scatter(x[order], y[order], c=_colours(index[order]), s=4, linewidths=0, rasterized=True)
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    ax.set_aspect("equal")
    ax.grid(True, lw=0.3, alpha=0.5)


def _legend(ax: Axes, labels: Sequence[str], others: str | None) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=hex_colour(PALETTE[k]), label=label)
               for k, label in enumerate(labels)]
    if others:
        handles.append(Line2D([], [], ls="", marker="o", color=hex_colour(OTHER), label=others))
    ax.legend(handles=handles, fontsize=7, loc="upper left", framealpha=0.8)


def scatter(title: str, quantized: np.ndarray, reference: np.ndarray, index: np.ndarray, limits: Range,
            labels: Sequence[str], others: str | None) -> bytes:
    """Float values (y) against quantized ones (x), coloured by channel."""
    plt = require()
    fig, ax = plt.subplots(figsize=(5.6, 5.4), layout="constrained")
    _scatter_axes(ax, quantized, reference, index, limits)
    ax.set_xlabel("quantized value (numeric target)")
    ax.set_ylabel("float value (fp_optimized target)")
    ax.set_title(title, fontsize=10)
    _legend(ax, labels, others)
    return _png(fig)


def _finite(values: Iterable[float]) -> np.ndarray:
    """``values`` with the infinities as NaN (no bar)."""
    return np.array([x if np.isfinite(x) else np.nan for x in values], np.float64)


def histograms(title: str, edges: np.ndarray, counts: np.ndarray, index: Sequence[int], bounds: Range,
               labels: Sequence[str], columns: int = 2) -> bytes:
    """One histogram per row of ``counts`` over the shared ``edges`` (log counts), the encoding's range dashed."""
    plt = require()
    rows = -(-len(counts) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 1.7 * rows + 0.6), squeeze=False,
                             sharex=True, layout="constrained")
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    for k, ax in enumerate(axes.flat):
        if k >= len(counts):
            ax.set_visible(False)
            continue
        colour = _colours(np.array([index[k]]))[0]
        ax.bar(centres, counts[k], width=widths, color=colour, linewidth=0)
        ax.set_yscale("symlog", linthresh=1)
        for bound in bounds:
            ax.axvline(bound, color="black", ls="--", lw=0.9)
        ax.axvline(0.0, color="0.7", lw=0.6)
        ax.set_title(labels[k], fontsize=8)
        ax.set_ylabel("count", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("float value", fontsize=8)
    fig.suptitle(f"{title}\n(dashed: the range its encoding represents, [{bounds[0]:.4g}, {bounds[1]:.4g}])",
                 fontsize=9)
    return _png(fig)


def recovery(title: str, reference: np.ndarray, before: np.ndarray, after: np.ndarray, index: np.ndarray,
             limits: Range, kept: str, labels: Sequence[str], others: str | None) -> bytes:
    """Native (y) against everything quantized (left) and with the blamed layers in float (right)."""
    plt = require()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), layout="constrained")
    for ax, values, name in ((axes[0], before, "everything quantized"), (axes[1], after, f"{kept} in float")):
        _scatter_axes(ax, values, reference, index, limits)
        ax.set_xlabel(f"output value, {name}")
        ax.set_ylabel("native value")
        ax.set_title(name, fontsize=9)
    _legend(axes[0], labels, others)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def snr_by_layer(title: str, names: Sequence[str], alone: Sequence[float], at_layer: Sequence[float]) -> bytes:
    """Two bars per layer: the worst output's SNR with only it quantized, and its own SNR with all quantized."""
    plt = require()
    n = len(names)
    fig, ax = plt.subplots(figsize=(7, 0.28 * n + 1.4), layout="constrained")
    y = np.arange(n)
    ax.barh(y - 0.2, _finite(alone), height=0.4, color=hex_colour(PALETTE[3]), label="only this layer quantized: "
            "worst output SNR")
    ax.barh(y + 0.2, _finite(at_layer), height=0.4, color=hex_colour(PALETTE[0]), label="everything quantized: "
            "SNR at the layer")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("SNR (dB), higher is better")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", lw=0.3)
    fig.legend(fontsize=7, loc="outside lower center", ncols=2)
    return _png(fig)
