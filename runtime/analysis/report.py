"""The analysis as files: a page (index.html), its figures (PNG) and report.json; and a text summary.

    folder = prepare_folder("report", force=False)    # refuses a non-empty folder before anything runs
    analysis = analyze(qmodel, images)
    write_report(analysis, folder)
    print(summary(analysis, folder))

The figures are drawn with matplotlib (the ``alls[report]`` extra; `prepare_folder`
says ALS011 before any work when it is missing), with titles, labelled axes and
legends; the page repeats them beside each figure (and report.json under ``figures``).
"""

from __future__ import annotations

import html
import json
import os
import pathlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alls.diagnostics import AllsError
from alls.files import check_folder, write_file
from alls.runtime.analysis.analyze import Analysis, LayerSample, OutputSample
from alls.runtime.analysis.metrics import Agreement
from alls.runtime.analysis.rules import ADVICE
from alls.runtime.analysis import figures as draw
from alls.runtime.analysis.figures import OTHER, PALETTE, hex_colour, padded

__all__ = ["Figure", "figures", "prepare_folder", "write_report", "render_html", "summary", "TOP_LAYERS"]

TOP_LAYERS = 5  # layers the text summary lists
ADVICE_LAYERS = 10  # the summary prints the advice of this many layers of the table's top
SNR_LAYERS = 40  # layers in the SNR chart
NEGATIVE_RECOVERY = ("A negative share means the output got worse with these layers in float: their quantization "
                     "errors were partly cancelling the errors of other layers, so removing them alone uncovers the "
                     "rest. The error is spread over many layers; quantize more of the network at higher precision, "
                     "or improve the calibration, rather than these layers alone.")



def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _db(x: float) -> str:
    return f"{x:.2f}" if np.isfinite(x) else ("inf" if x > 0 else "-inf")


# ------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Figure:
    """One PNG and what the page says around it."""

    file: str
    title: str
    x_label: str
    x_range: tuple[float, float]
    y_label: str
    y_range: tuple[float, float]
    legend: tuple[tuple[str, str], ...]  # (colour "#rrggbb", label)
    notes: str
    png: bytes

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in pixels, from the PNG's header."""
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "title": self.title, "x": {"label": self.x_label, "range": list(self.x_range)},
                "y": {"label": self.y_label, "range": list(self.y_range)},
                "legend": [{"colour": c, "label": l} for c, l in self.legend], "notes": self.notes,
                "width": self.size[0], "height": self.size[1]}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", _short(name))


def _channel_legend(sample: LayerSample) -> tuple[tuple[str, str], ...]:
    items = [(hex_colour(PALETTE[k]), f"channel {c}: [{lo:.4g}, {hi:.4g}]")
             for k, (c, (lo, hi)) in enumerate(zip(sample.channels, sample.channel_ranges))]
    rest = sample.total_channels - len(sample.channels)
    if rest > 0:
        items.append((hex_colour(OTHER), f"the other {rest} channel{'s' if rest > 1 else ''}"))
    return tuple(items)


def _labels(legend: Sequence[tuple[str, str]]) -> tuple[list[str], str | None]:
    labels = [label for colour, label in legend if colour != hex_colour(OTHER)]
    others = next((label for colour, label in legend if colour == hex_colour(OTHER)), None)
    return labels, others


def _layer_figures(rank: int, sample: LayerSample) -> list[Figure]:
    stem, name = f"{rank:02d}_{_slug(sample.layer)}", _short(sample.layer)
    limits = padded(*sample.limits)
    legend = _channel_legend(sample)
    labels, others = _labels(legend)
    title = f"{name}: float against quantized, every layer quantized"
    scatter = Figure(
        f"{stem}_scatter.png", title, "quantized value (numeric target)", limits,
        "float value (fp_optimized target)", limits, legend,
        f"{sample.reference.size:,} points (a seeded sample and each batch's largest values and errors); dashed "
        "line: y = x; channels ranked by range, the widest on top",
        draw.scatter(title, sample.quantized, sample.reference, sample.colour, limits, labels, others))
    edges = sample.edges
    lo, hi = sample.encoding_range
    panels = len(sample.counts)
    title = f"{name}: histogram of each channel's float values"
    histograms = Figure(
        f"{stem}_histograms.png", title, "float value", (float(edges[0]), float(edges[-1])), "count (log scale)",
        (0.0, float(sample.counts.max())), legend,
        f"{panels} panels, in the legend's order, {len(edges) - 1} bins each; dashed black lines: the range its "
        f"output encoding represents [{lo:.4g}, {hi:.4g}]; grey line: zero",
        draw.histograms(title, edges, sample.counts, [*range(len(sample.channels)), -1][:panels], (lo, hi),
                        (labels + [others or "other channels"])[:panels]))
    return [scatter, histograms]


def _recovery_figure(sample: OutputSample, layers: tuple[str, ...]) -> Figure:
    limits = padded(*sample.limits)
    legend = [(hex_colour(PALETTE[c]), f"channel {c}") for c in range(min(sample.channels, len(PALETTE)))]
    if sample.channels > len(PALETTE):
        first, last = len(PALETTE), sample.channels - 1
        legend.append((hex_colour(OTHER), f"channel {first}" if first == last else f"channels {first} to {last}"))
    kept = ", ".join(_short(n) for n in layers)
    title = f"{_short(sample.output)}: native against quantized; left everything quantized, right {kept} in float"
    labels, others = _labels(legend)
    return Figure(f"recovery_{_slug(sample.output)}.png", title,
                  "output value", limits, "native value", limits, tuple(legend),
                  f"{sample.reference.size:,} points per panel; dashed line: y = x",
                  draw.recovery(f"{_short(sample.output)}: native against quantized", sample.reference,
                                sample.numeric, sample.recovered, sample.colour, limits, kept, labels, others))


def _snr_figure(analysis: Analysis) -> Figure:
    rows = analysis.layers[:SNR_LAYERS]
    names = [_short(r.name) for r in rows]
    alone = [r.alone_snr_db for r in rows]
    at_layer = [r.at_layer.snr_db for r in rows]
    values = [v for v in alone + at_layer if np.isfinite(v)] or [0.0]
    title = f"SNR per layer, the {len(rows)} most harmful first"
    return Figure("snr_by_layer.png", title, "SNR (dB)", (min(values), max(values)), "layer", (0, len(rows)),
                  ((hex_colour(PALETTE[3]), "only this layer quantized: worst output SNR"),
                   (hex_colour(PALETTE[0]), "everything quantized: SNR at the layer")),
                  "a layer whose red bar is short harms the outputs most; an infinite SNR (an exact layer) has no bar",
                  draw.snr_by_layer(title, names, alone, at_layer))


def figures(analysis: Analysis) -> list[Figure]:
    """Every figure of the report: SNR per layer, two per worst layer, one per output for the recovery."""
    out = [_snr_figure(analysis)] if analysis.layers else []
    for rank, sample in enumerate(analysis.samples, 1):
        out += _layer_figures(rank, sample)
    out += [_recovery_figure(s, analysis.recovery.layers) for s in analysis.recovery.samples]
    return out


# -------------------------------------------------------------------- files


def prepare_folder(path: str | os.PathLike[str], force: bool = False) -> pathlib.Path:
    """The report folder, checked before anything runs: its parent must exist and be writable (ALS002,
    ALS003); it must be a directory (ALS005), not a link (ALS006), and empty unless ``force`` (ALS004);
    and matplotlib must be installed (ALS011)."""
    folder = pathlib.Path(path)
    if folder.is_symlink():
        raise AllsError.of("ALS006", f"report folder `{folder}` is a symbolic link",
                           "name the folder it points to, or another one")
    if folder.exists() and not folder.is_dir():
        raise AllsError.of("ALS005", f"report folder `{folder}` exists and is not a directory",
                           "name a new folder, or an existing one")
    if not folder.exists():
        check_folder(folder, "report folder")
    elif any(folder.iterdir()) and not force:
        raise AllsError.of("ALS004", f"report folder `{folder}` exists and is not empty",
                           "pass --force to write the report into it")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise AllsError.of("ALS003", f"report folder `{folder}` is not writable")
    draw.require()  # ALS011 without matplotlib, before the analysis runs
    return folder


def write_report(analysis: Analysis, path: str | os.PathLike[str], force: bool = False) -> list[pathlib.Path]:
    """Write index.html, report.json and the figures into ``path``; the paths written."""
    folder = prepare_folder(path, force)
    made = figures(analysis)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise AllsError.of("ALS003", f"cannot create the report folder `{folder}`: {exc.strerror or exc}") from None
    written = []
    for figure in made:
        write_file(folder / figure.file, figure.png, what="figure")
        written.append(folder / figure.file)
    doc = analysis.as_dict()
    doc["figures"] = [f.as_dict() for f in made]
    write_file(folder / "report.json", json.dumps(doc, indent=2) + "\n", what="report")
    write_file(folder / "index.html", render_html(analysis, made), what="report")
    return [folder / "index.html", folder / "report.json", *written]


# --------------------------------------------------------------------- page

_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}code,pre{font:13px ui-monospace,monospace}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto}figure{display:inline-block;vertical-align:top;margin:0 1em 1.5em 0}
figcaption{max-width:520px;font-size:13px}.sw{display:inline-block;width:.9em;height:.9em;margin-right:.3em;
vertical-align:middle;border:1px solid #888}.bad{color:#b00}ul.legend{list-style:none;padding-left:0;margin:.3em 0}"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    cls: Callable[[int], str] = lambda i: ' class="l"' if i < left else ""
    head = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _agreement_cells(a: Agreement) -> list[str]:
    return [_db(a.snr_db), f"{a.cosine:.5f}", f"{100 * a.relative_error:.2f}%", f"{a.max_abs_error:.4g}"]


def _outputs_html(analysis: Analysis) -> str:
    rows = [[f"<code>{_e(_short(o))}</code>", *_agreement_cells(a)] for o, a in analysis.outputs.items()]
    return _table(["output", "SNR dB", "cosine", "relative error", "max abs error"], rows)


def _layers_html(analysis: Analysis) -> str:
    rows = []
    for rank, r in enumerate(analysis.layers, 1):
        bits = f"w{r.weight_bits or '-'} a{r.output_bits}"
        a = r.at_layer
        rows.append([str(rank), f"<code>{_e(_short(r.name))}</code>", _e(r.kind), bits, _db(r.alone_snr_db),
                     _e(_short(r.alone_output)), _db(r.alone_mean_snr_db), _db(a.snr_db), f"{a.cosine:.5f}",
                     f"{a.mse:.3g}", f"{a.max_abs_error:.3g}", f"[{r.low:.4g}, {r.high:.4g}]",
                     f"{100 * r.beyond:.2g}%", _e(", ".join(r.advice)) or "-"])
    header = ["#", "layer", "kind", "bits", "alone: worst SNR dB", "at output", "alone: mean SNR dB",
              "all quantized: SNR dB", "cosine", "MSE", "max abs error", "float range", "beyond encoding", "advice"]
    return _table(header, rows, left=3)


def _advice_html(analysis: Analysis) -> str:
    if not analysis.advice:
        return "<p>No rule of the guide fires on these layers.</p>"
    fired = {a.key for a in analysis.advice}
    keys = "".join(f"<li><code>{k}</code>: {_e(v)}</li>" for k, v in ADVICE.items() if k in fired)
    items = []
    for a in analysis.advice:
        lines = "\n".join(a.lines) or "(no script line: the fix is in the model)"
        items.append(f"<h3><code>{_e(_short(a.layer))}</code>: <code>{a.key}</code></h3><p>{_e(a.reason)}</p>"
                     f"<pre>{_e(lines)}</pre>")
    return f"<ul>{keys}</ul>" + "".join(items)


def _recovery_html(analysis: Analysis) -> str:
    rec = analysis.recovery
    rows = []
    for o in rec.numeric:
        for label, figures_of in (("everything quantized", rec.numeric), ("these layers in float", rec.recovered),
                                  ("these layers keep_native (integer graph)", rec.keep_native)):
            removed = "" if figures_of is rec.numeric else \
                f"{100 * rec.removed(o, 'recovered' if figures_of is rec.recovered else 'keep_native'):.0f}%"
            rows.append([f"<code>{_e(_short(o))}</code>", _e(label), *_agreement_cells(figures_of[o]), removed])
    kept = ", ".join(f"<code>{_e(_short(n))}</code>" for n in rec.layers)
    worse = [o for o in rec.numeric if rec.removed(o) < 0]
    note = f"<p>{_e(NEGATIVE_RECOVERY)}</p>" if worse else ""
    return note + (f"<p>The {len(rec.layers)} worst layers ({kept}) in float, everything else quantized. Hailo's guide: the "
            "error should then be minimal (a relative error of 1-2%). <code>keep_native</code> runs them in float "
            "inside the integer graph but still writes their outputs at their integer encodings, so it removes "
            "their kernels' error and not their tensors' rounding.</p>"
            + _table(["output", "run", "SNR dB", "cosine", "relative error", "max abs error", "error removed"], rows,
                     left=2))


def _figure_html(f: Figure) -> str:
    legend = "".join(f'<li><span class="sw" style="background:{c}"></span>{_e(label)}</li>' for c, label in f.legend)
    return (f'<figure><img src="{_e(f.file)}" width="{f.size[0]}" height="{f.size[1]}" '
            f'alt="{_e(f.title)}"><figcaption><b>{_e(f.title)}</b><br>x: {_e(f.x_label)}, '
            f"[{f.x_range[0]:.4g}, {f.x_range[1]:.4g}]<br>y: {_e(f.y_label)}, [{f.y_range[0]:.4g}, "
            f'{f.y_range[1]:.4g}]<ul class="legend">{legend}</ul>{_e(f.notes)}</figcaption></figure>')


def render_html(analysis: Analysis, made: list[Figure]) -> str:
    """The report page: outputs, diagnostics, the layer table, advice, recovery and figures."""
    diags = "".join(f"<li><code>{d.severity}[{d.code}]</code> {_e(d.message)}"
                    + (f" ({_e(d.help)})" if d.help else "") + "</li>" for d in analysis.diagnostics)
    recovery = [f for f in made if f.file.startswith("recovery_")]
    chart = [f for f in made if f.file == "snr_by_layer.png"]
    layers = [f for f in made if f not in recovery and f not in chart]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Layer analysis of {_e(analysis.network)}</title>
<style>{_STYLE}</style></head><body>
<h1>Layer analysis of <code>{_e(analysis.network)}</code></h1>
<p>{analysis.images} images; each layer alone on the first {analysis.isolation_images}.</p>
<h2>Outputs: numeric against native</h2>{_outputs_html(analysis)}
{f"<h2>Diagnostics</h2><ul>{diags}</ul>" if diags else ""}
<h2>Layers, by harm</h2>
<p><b>alone</b>: only this layer quantized (its integer kernel on its inputs quantized with their encodings, its
output dequantized; every other layer in float), SNR of each output against native on the first
{analysis.isolation_images} images: the worst output and the mean over outputs. Sorted by the worst.
<b>all quantized</b>: everything quantized, this layer's tensor against the float graph the integer layers were made
from (fp_optimized), on all {analysis.images} images. <b>beyond encoding</b>: the share of the float values outside
the range the layer's output encoding represents (they saturate; the calibration set did not reach them).</p>
{_layers_html(analysis)}
{"".join(_figure_html(f) for f in chart)}
<h2>Advice</h2>{_advice_html(analysis)}
<h2>Recovery</h2>{_recovery_html(analysis)}
{"".join(_figure_html(f) for f in recovery)}
<h2>The worst layers</h2>
{"".join(_figure_html(f) for f in layers)}
</body></html>
"""


# --------------------------------------------------------------------- text


def summary(analysis: Analysis, folder: str | os.PathLike[str] | None = None) -> str:
    """A few lines for the terminal: the outputs, the top layers, their advice, the recovery."""
    lines = [f"analyzed `{analysis.network}` on {analysis.images} images "
             f"(each layer alone on the first {analysis.isolation_images})",
             "numeric against native: " + ", ".join(f"{_short(o)} {_db(a.snr_db)} dB"
                                                    for o, a in analysis.outputs.items()),
             "layers that harm the outputs most (only that layer quantized: worst output SNR):"]
    top = analysis.layers[:TOP_LAYERS]
    width = max(len(_short(r.name)) for r in top) if top else 0
    for rank, r in enumerate(top, 1):
        lines.append(f"  {rank}. {_short(r.name):{width}}  {_db(r.alone_snr_db):>6} dB at {_short(r.alone_output)}"
                     f"   (all quantized: {_db(r.at_layer.snr_db)} dB at the layer)")
    advised = {r.name for r in analysis.layers[:ADVICE_LAYERS]}
    shown = [a for a in analysis.advice if a.layer in advised]
    if shown:
        lines.append("advice:")
        for a in shown:
            lines.append(f"  {_short(a.layer)} [{a.key}]: {a.reason}")
            lines += [f"    {line}" for line in a.lines]
    if len(analysis.advice) > len(shown):
        lines.append(f"  ... {len(analysis.advice) - len(shown)} more in the report")
    rec = analysis.recovery
    changes = ", ".join(f"{_short(o)} {_db(rec.numeric[o].snr_db)} -> {_db(rec.recovered[o].snr_db)} dB "
                        f"({100 * rec.removed(o):.0f}% of the error removed)" for o in rec.numeric)
    lines.append(f"recovery with {', '.join(_short(n) for n in rec.layers)} in float: {changes}")
    if any(rec.removed(o) < 0 for o in rec.numeric):
        lines.append(f"  ({NEGATIVE_RECOVERY})")
    if folder is not None:
        lines.append(f"wrote {pathlib.Path(folder) / 'index.html'}")
    return "\n".join(lines)
