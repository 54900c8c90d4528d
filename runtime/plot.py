"""A small rasterizer for the analysis figures: points, lines and bars into an RGB array.

No text is drawn: titles, axis ranges and legends belong to the page around
the image. A `Panel` maps data coordinates to the pixels of one box of a
`Canvas` (y grows upwards); the figure functions at the end compose panels
into the three figures of the analysis report and return (H, W, 3) uint8
arrays for `alls.runtime.png`.

Colours: ``PALETTE[k]`` for the k-th highlighted channel, ``OTHER`` for the
rest; a colour index of -1 means "other".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PALETTE", "OTHER", "Canvas", "Panel", "scatter_figure", "histogram_figure", "recovery_figure",
           "hex_colour", "padded"]

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207), (188, 189, 34))
OTHER = (185, 185, 185)
INK = (60, 60, 60)
GUIDE = (225, 225, 225)
LIMIT = (0, 0, 0)
WHITE = (255, 255, 255)

Range = tuple[float, float]


def hex_colour(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def padded(lo: float, hi: float, margin: float = 0.03) -> Range:
    """``[lo, hi]`` widened by ``margin`` of its width on each side (a point becomes a unit interval)."""
    lo, hi = float(lo), float(hi)
    width = hi - lo
    if not np.isfinite(width) or width <= 0:
        half = max(abs(lo) * 0.05, 0.5)
        return lo - half, lo + half
    return lo - margin * width, hi + margin * width


class Canvas:
    """A white RGB image."""

    def __init__(self, width: int, height: int):
        self.pixels = np.full((height, width, 3), 255, np.uint8)

    def panel(self, left: int, top: int, width: int, height: int, x_range: Range, y_range: Range) -> Panel:
        return Panel(self, (left, top, width, height), x_range, y_range)


class Panel:
    """One plotting box of a canvas, in data coordinates."""

    def __init__(self, canvas: Canvas, box: tuple[int, int, int, int], x_range: Range, y_range: Range):
        self.pixels = canvas.pixels
        self.left, self.top, self.width, self.height = box
        self.x_range, self.y_range = x_range, y_range

    def columns(self, x) -> np.ndarray:
        lo, hi = self.x_range
        return self.left + np.rint((np.asarray(x, np.float64) - lo) / (hi - lo) * (self.width - 1)).astype(np.int64)

    def rows(self, y) -> np.ndarray:
        lo, hi = self.y_range
        up = np.rint((np.asarray(y, np.float64) - lo) / (hi - lo) * (self.height - 1)).astype(np.int64)
        return self.top + self.height - 1 - up

    def _plot(self, rows: np.ndarray, cols: np.ndarray, colours: np.ndarray) -> None:
        inside = ((rows >= self.top) & (rows < self.top + self.height) &
                  (cols >= self.left) & (cols < self.left + self.width))
        self.pixels[rows[inside], cols[inside]] = colours[inside]

    def points(self, x, y, colours, size: int = 2) -> None:
        """A ``size`` x ``size`` square per point; ``colours`` is (n, 3) or one RGB triple."""
        rows, cols = self.rows(y), self.columns(x)
        colours = np.broadcast_to(np.asarray(colours, np.uint8), (rows.size, 3))
        for dr in range(size):
            for dc in range(size):
                self._plot(rows + dr, cols + dc, colours)

    def segment(self, x0: float, y0: float, x1: float, y1: float, colour, dash: int = 0) -> None:
        """A straight line between two data points; ``dash`` > 0 draws dashes of that many pixels."""
        (r0, r1), (c0, c1) = self.rows([y0, y1]), self.columns([x0, x1])
        n = int(max(abs(r1 - r0), abs(c1 - c0))) + 1
        rows = np.rint(np.linspace(r0, r1, n)).astype(np.int64)
        cols = np.rint(np.linspace(c0, c1, n)).astype(np.int64)
        keep = (np.arange(n) // dash) % 2 == 0 if dash else np.ones(n, bool)
        self._plot(rows[keep], cols[keep], np.broadcast_to(np.asarray(colour, np.uint8), (n, 3))[keep])

    def vertical(self, x: float, colour, dash: int = 0) -> None:
        if self.x_range[0] <= x <= self.x_range[1]:
            self.segment(x, self.y_range[0], x, self.y_range[1], colour, dash)

    def horizontal(self, y: float, colour, dash: int = 0) -> None:
        if self.y_range[0] <= y <= self.y_range[1]:
            self.segment(self.x_range[0], y, self.x_range[1], y, colour, dash)

    def bars(self, edges: np.ndarray, heights: np.ndarray, colour) -> None:
        """One bar per bin; ``heights`` are fractions (0..1) of the panel's height."""
        cols = self.columns(edges)
        bottom = self.top + self.height
        for i, h in enumerate(np.clip(heights, 0.0, 1.0)):
            if h <= 0:
                continue
            top = bottom - max(1, int(round(h * self.height)))
            self.pixels[top:bottom, cols[i]:max(cols[i + 1], cols[i] + 1)] = colour

    def frame(self, colour=INK) -> None:
        l, t, w, h = self.left, self.top, self.width, self.height
        self.pixels[t, l:l + w] = self.pixels[t + h - 1, l:l + w] = colour
        self.pixels[t:t + h, l] = self.pixels[t:t + h, l + w - 1] = colour


def _colours(index: np.ndarray) -> np.ndarray:
    table = np.array([*PALETTE, OTHER], np.uint8)
    return table[np.where(index < 0, len(PALETTE), index % len(PALETTE))]


def _scatter(panel: Panel, x: np.ndarray, y: np.ndarray, index: np.ndarray) -> None:
    """Guides (zero lines, the diagonal y = x), then the points: others first, channel 0 on top."""
    panel.horizontal(0.0, GUIDE)
    panel.vertical(0.0, GUIDE)
    lo, hi = max(panel.x_range[0], panel.y_range[0]), min(panel.x_range[1], panel.y_range[1])
    if lo < hi:
        panel.segment(lo, lo, hi, hi, GUIDE)
    order = np.argsort(np.where(index < 0, np.iinfo(np.int64).max, index.astype(np.int64)), kind="stable")[::-1]
    panel.points(x[order], y[order], _colours(index[order]))
    panel.frame()


def scatter_figure(quantized: np.ndarray, reference: np.ndarray, index: np.ndarray, limits: Range,
                   size: int = 480) -> np.ndarray:
    """Float values (y) against quantized ones (x) on the same range, coloured by channel index."""
    canvas = Canvas(size, size)
    _scatter(canvas.panel(4, 4, size - 8, size - 8, limits, limits), quantized, reference, index)
    return canvas.pixels


def histogram_figure(edges: np.ndarray, counts: np.ndarray, index: Sequence[int], bounds: Range,
                     columns: int = 2, panel_size: tuple[int, int] = (300, 72)) -> np.ndarray:
    """Small multiples: one histogram per row of ``counts`` over the shared ``edges``.

    Bar height is log(1 + count) relative to the panel's largest bin, so rare
    values stay visible; dashed black lines mark ``bounds`` (the range the
    tensor's encoding represents), a grey line marks zero.
    """
    width, height = panel_size
    rows = -(-len(counts) // columns)
    gap = 8
    canvas = Canvas(columns * (width + gap) + gap, rows * (height + gap) + gap)
    x_range = (float(edges[0]), float(edges[-1]))
    for k, (row, colour_index) in enumerate(zip(counts, index)):
        top, left = gap + (k // columns) * (height + gap), gap + (k % columns) * (width + gap)
        panel = canvas.panel(left, top, width, height, x_range, (0.0, 1.0))
        scale = np.log1p(row.max()) if row.max() > 0 else 1.0
        panel.bars(edges, np.log1p(row) / scale, _colours(np.array([colour_index]))[0])
        panel.vertical(0.0, GUIDE)
        for bound in bounds:
            panel.vertical(bound, LIMIT, dash=3)
        panel.frame()
    return canvas.pixels


def recovery_figure(reference: np.ndarray, before: np.ndarray, after: np.ndarray, index: np.ndarray,
                    limits: Range, size: int = 360) -> np.ndarray:
    """Two scatters side by side: reference (y) against everything quantized (left) and with the
    blamed layers in float (right)."""
    gap = 16
    canvas = Canvas(2 * size + gap, size)
    for k, values in enumerate((before, after)):
        panel = canvas.panel(4 + k * (size + gap - 4), 4, size - 8, size - 8, limits, limits)
        _scatter(panel, values, reference, index)
    return canvas.pixels
