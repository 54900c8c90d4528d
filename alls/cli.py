"""The `alls` command line: a thin layer over the public API.

Exit codes: 0 clean (warnings allowed), 1 errors found (or, for `fmt
--check`, files that would change), 2 the tool could not run (bad usage, a
file that cannot be read or written).
"""

from __future__ import annotations

import argparse
import difflib
import os
import pathlib
import sys
import tempfile
from collections.abc import Sequence

import alls
from alls.render import FORMATS, summary
from alls.tables import explain_layer, layer_row, layer_table, plan_table

EXIT_OK, EXIT_ERRORS, EXIT_FAILURE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_FAILURE
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alls", description="Check, format and run .alls quantization scripts."
    )
    parser.add_argument("--version", action="version", version=f"alls {alls.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    check = commands.add_parser("check", help="report the problems of scripts")
    check.add_argument("files", nargs="+", metavar="FILE", help="scripts to check (`-` reads standard input)")
    check.add_argument("--output-format", choices=FORMATS, default="full", help="how to print diagnostics")
    _model_options(check, required=False)
    check.set_defaults(run=_check)

    fmt = commands.add_parser("fmt", help="rewrite scripts in the canonical form")
    fmt.add_argument("files", nargs="+", metavar="FILE", help="scripts to format (`-` formats standard input to standard output)")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    mode.add_argument("--diff", action="store_true", help="write nothing; print the changes as a diff")
    fmt.set_defaults(run=_fmt)

    layers = commands.add_parser("layers", help="list the layers of an ONNX model, with their Hailo-style names")
    layers.add_argument("model", metavar="MODEL", help="an .onnx file")
    _model_options(layers, positional=True)
    layers.add_argument("--json", action="store_true", help="print the layers as JSON")
    layers.set_defaults(run=_layers)

    plan = commands.add_parser("plan", help="bind a script to a model and print the per-layer plan")
    plan.add_argument("script", metavar="SCRIPT", help="the .alls script (`-` reads standard input)")
    _model_options(plan, required=True)
    plan.add_argument("--explain", metavar="LAYER", help="print the statements that shaped LAYER, in order")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("-o", "--output", metavar="FILE", help="write the JSON plan to FILE")
    plan.set_defaults(run=_plan)

    quantize = commands.add_parser("quantize", help="calibrate and quantize a model by a script")
    quantize.add_argument("model", metavar="MODEL", help="an .onnx file")
    _model_options(quantize, positional=True)
    quantize.add_argument("--script", metavar="SCRIPT", help="the .alls script (default: an empty script, all 8-bit)")
    quantize.add_argument("--calib", metavar="NPY", required=True, help="calibration images, (N, H, W, C) in a .npy")
    quantize.add_argument("-o", "--output", metavar="FILE", required=True, help="the quantized model (.npz)")
    quantize.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    quantize.add_argument("--batch-size", type=int, help="calibration batch size (default: the script's)")
    quantize.add_argument("--calib-num-batch", type=int, help="calibration batches (default: calibset_size / batch)")
    _data_options(quantize, required=False)
    quantize.set_defaults(run=_quantize)

    evaluate = commands.add_parser("eval", help="compare a quantized model's numeric target with its native one")
    evaluate.add_argument("quantized", metavar="QMODEL", help="a quantized model written by `alls quantize`")
    _data_options(evaluate, required=True)
    evaluate.set_defaults(run=_eval)

    analyze = commands.add_parser("analyze", help="find the layers that carry a quantized model's error: "
                                  "a report with plots and advice")
    analyze.add_argument("quantized", metavar="QMODEL", help="a quantized model written by `alls quantize`")
    analyze.add_argument("--data", metavar="NPY", required=True, help="images to analyze on, (N, H, W, C) in a .npy")
    analyze.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="the layout of the .npy images")
    analyze.add_argument("--limit", type=int, metavar="N", help="analyze on the first N images only")
    analyze.add_argument("--worst", type=int, default=3, metavar="K",
                         help="plot and keep in float the K most harmful layers (default 3)")
    analyze.add_argument("--isolation-images", type=int, default=8, metavar="N",
                         help="images for quantizing the layers one at a time, the costly view (default 8)")
    analyze.add_argument("-o", "--output", metavar="DIR", required=True, help="the report folder")
    analyze.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    analyze.add_argument("--json", action="store_true", help="print the analysis as JSON")
    analyze.set_defaults(run=_analyze)

    tune = commands.add_parser("tune", help="run the guide's incremental flow and keep the best script")
    tune.add_argument("model", metavar="MODEL", help="an .onnx file")
    _model_options(tune, positional=True)
    tune.add_argument("--script", metavar="SCRIPT", help="the script to start from (default: an empty one)")
    tune.add_argument("--calib", metavar="NPY", required=True, help="calibration images, (N, H, W, C) in a .npy")
    tune.add_argument("-o", "--output", metavar="FILE", help="where to write the best script (default: MODEL_tuned.alls)")
    tune.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    _data_options(tune, required=True)
    tune.set_defaults(run=_tune)

    _taps_command(commands)

    explain = commands.add_parser("explain", help="explain a diagnostic code")
    explain.add_argument("code", nargs="?", help="a code such as ALS203 (omit to list every code)")
    explain.set_defaults(run=_explain)
    return parser


def _model_options(parser: argparse.ArgumentParser, required: bool = False, positional: bool = False) -> None:
    if not positional:
        parser.add_argument("--model", metavar="MODEL", required=required,
                            help="an .onnx model to bind the script to" + ("" if required else " (checks selectors too)"))
    parser.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]N,C,H,W",
                        help="override a fixed input shape (repeat for several inputs)")
    parser.add_argument("--name", help="the network scope of the layer names (default: the model file's stem)")


def _data_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--data", metavar="NPY", required=required,
                        help="images to evaluate on, (N, H, W, C) in a .npy" + ("" if required else " (evaluates after quantizing)"))
    parser.add_argument("--labels", metavar="NPY", help="their class labels, for top-1 accuracy")
    parser.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="the layout of the .npy images")
    parser.add_argument("--limit", type=int, help="evaluate on the first N images only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _read(path: str) -> tuple[alls.Script, list[alls.Diagnostic]]:
    if path == "-":
        return alls.read_script(sys.stdin.buffer.read(), "<stdin>")
    return alls.read_script(path)


def _unreadable(diagnostics: Sequence[alls.Diagnostic]) -> bool:
    return any(d.code == "ALS001" for d in diagnostics)


def _check(args) -> int:
    found: list[alls.Diagnostic] = []
    sources: dict[str, str] = {}
    failed = False
    graph = None
    if args.model is not None:
        try:
            graph = _load_graph(args)
        except alls.AllsError as error:
            sys.stderr.write(alls.render(error.diagnostics))
            return EXIT_FAILURE
        found.extend(graph.diagnostics)
    for path in args.files:
        script, diagnostics = _read(path)
        failed |= _unreadable(diagnostics)
        if graph is not None:
            checked = list(alls.resolve(script, graph).diagnostics)
            checked = [d for d in checked if d not in graph.diagnostics]
        else:
            checked = alls.check(script)
        found.extend(sorted(diagnostics + checked, key=alls.Diagnostic.sort_key))
        sources[script.filename] = script.source
    out = alls.render(found, sources, args.output_format)
    if args.output_format == "full":
        out += ("\n" if found else "") + summary(found, len(args.files)) + "\n"
    sys.stdout.write(out)
    if failed:
        return EXIT_FAILURE
    return EXIT_ERRORS if any(d.is_error for d in found) else EXIT_OK


def _fmt(args) -> int:
    status = EXIT_OK
    for path in args.files:
        script, diagnostics = _read(path)
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            sys.stderr.write(alls.render(errors, {script.filename: script.source}))
            sys.stderr.write(f"{script.filename}: not formatted: fix the errors above first\n")
            status = max(status, EXIT_FAILURE if _unreadable(errors) else EXIT_ERRORS)
            continue
        formatted = alls.format_script(script)
        if path == "-":
            sys.stdout.write(formatted)
            continue
        if formatted == script.source:
            continue
        if args.diff:
            sys.stdout.write(_diff(script.source, formatted, path))
            status = max(status, EXIT_ERRORS)
        elif args.check:
            print(f"would reformat {path}")
            status = max(status, EXIT_ERRORS)
        else:
            try:
                _write_atomically(path, formatted)
            except OSError as exc:
                sys.stderr.write(f"error[ALS001]: cannot write `{path}`: {exc.strerror or exc}\n")
                status = EXIT_FAILURE
                continue
            print(f"reformatted {path}")
    return status


def _diff(before: str, after: str, path: str) -> str:
    """A unified diff that marks a missing final newline as `diff` does."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"{path} (original)", tofile=f"{path} (formatted)",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _write_atomically(path: str, text: str, new: bool = False) -> None:
    """Write next to ``path`` and rename over it: never a half-written file.

    ``new``: the file may not exist yet (it then gets the default mode).
    """
    folder = os.path.dirname(os.path.abspath(path))
    if new and not os.path.exists(path):
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    else:
        mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".alls-fmt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _input_shapes(specs: Sequence[str]):
    """``["1,3,320,320"]`` or ``["input.1=1,3,320,320", ...]`` as load_model takes them."""
    if not specs:
        return None
    shapes = {}
    for spec in specs:
        name, _, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError:
            raise alls.AllsError([alls.Diagnostic("ALS405", alls.Severity.ERROR, f"bad input shape `{spec}`",
                                                  help="write N,C,H,W, for example 1,3,320,320")]) from None
        shapes[name] = shape
    if list(shapes) == [""]:
        return shapes[""]
    if "" in shapes:
        raise alls.AllsError([alls.Diagnostic("ALS405", alls.Severity.ERROR,
                                              "with several --input-shape, name each input: NAME=N,C,H,W")])
    return shapes


def _load_graph(args):
    return alls.load_model(args.model, _input_shapes(args.input_shape), args.name)


def _layers(args) -> int:
    try:
        graph = _load_graph(args)
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics))
        return EXIT_FAILURE
    if args.json:
        import json

        rows = [layer_row(layer) for layer in graph]
        doc = {"network": graph.name, "opset": graph.opset, "layers": rows,
               "diagnostics": json.loads(alls.render(list(graph.diagnostics), fmt="json"))}
        print(json.dumps(doc, indent=2))
    else:
        print(layer_table(graph))
        if graph.diagnostics:
            sys.stdout.write("\n" + alls.render(list(graph.diagnostics)))
    return EXIT_ERRORS if any(d.is_error for d in graph.diagnostics) else EXIT_OK


def _plan(args) -> int:
    try:
        graph = _load_graph(args)
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics))
        return EXIT_FAILURE
    script, diagnostics = _read(args.script)
    if _unreadable(diagnostics):
        sys.stderr.write(alls.render(diagnostics))
        return EXIT_FAILURE
    plan = alls.resolve(script, graph)
    found = sorted(diagnostics + list(plan.diagnostics), key=alls.Diagnostic.sort_key)
    sources = {script.filename: script.source}
    if args.explain is not None:
        layer = graph.get(args.explain)
        if layer is None:
            hint = alls.diagnostics.suggestion(args.explain, [l.short_name for l in graph])
            sys.stderr.write(f"error[ALS201]: no layer `{args.explain}` in `{graph.name}`"
                             + (f"; {hint}" if hint else "") + "\n")
            return EXIT_FAILURE
        print(explain_layer(plan, layer.name))
    elif args.json or args.output:
        import json

        doc = plan.as_dict()
        doc["diagnostics"] = json.loads(alls.render(found, fmt="json"))
        text = json.dumps(doc, indent=2) + "\n"
        if args.output:
            try:
                _write_atomically(args.output, text, new=True)
            except OSError as exc:
                sys.stderr.write(f"error[ALS001]: cannot write `{args.output}`: {exc.strerror or exc}\n")
                return EXIT_FAILURE
        if args.json:
            sys.stdout.write(text)
    else:
        print(plan_table(plan))
    if found and args.explain is not None:
        sys.stdout.write(f"\n{summary(found, 1)} (run without --explain to see them)\n")
    elif found and not args.json:
        sys.stdout.write("\n" + alls.render(found, sources) + "\n" + summary(found, 1) + "\n")
    return EXIT_ERRORS if any(d.is_error for d in found) else EXIT_OK


def _load_npy(path: str, what: str):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise alls.AllsError([alls.Diagnostic("ALS001", alls.Severity.ERROR, f"cannot read {what} `{path}`: no such file")]) from None
    except (ValueError, OSError) as exc:
        raise alls.AllsError([alls.Diagnostic("ALS505", alls.Severity.ERROR, f"`{path}` is not a .npy array ({exc})",
                                              help=f"save the {what} with numpy.save")]) from None


def _quantize(args) -> int:
    from alls.runtime.runner import Runner

    if os.path.exists(args.output) and not args.force:
        sys.stderr.write(f"error[ALS001]: `{args.output}` exists; pass --force to overwrite it\n")
        return EXIT_FAILURE
    try:
        runner = Runner(args.model, _input_shapes(args.input_shape), args.name)
        if args.script:
            runner.load_script(pathlib.Path(args.script))
        calib = _load_npy(args.calib, "calibration data")
        qmodel = runner.quantize(calib, args.batch_size, args.calib_num_batch, args.layout)
        runner.save(args.output)
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics, _sources(error.diagnostics)))
        return EXIT_FAILURE
    report = qmodel.report
    print(f"calibrated `{runner.graph.name}` on {report['calibration_images']} images "
          f"({report['calib_num_batch']} batches of {report['batch_size']})")
    print(_precision_summary(qmodel))
    for line in _algorithm_summary(report):
        print(line)
    for d in runner.warnings:
        sys.stdout.write(alls.render([d]))
    print(f"wrote {args.output}")
    if args.data:
        return _evaluate(qmodel, args)
    return EXIT_OK


def _algorithm_summary(report: dict) -> list[str]:
    """One line per algorithm that ran, with what it achieved."""
    lines = []
    if report.get("equalization"):
        tensors = report["equalization"]
        lines.append(f"equalized {len(tensors)} tensor{'s' if len(tensors) != 1 else ''} between layers")
    corrected = report.get("bias_correction") or []
    if corrected:
        import statistics

        removed = statistics.median(r["removed"] for r in corrected)
        lost = sum(r["channels_lost"] for r in corrected)
        channels = sum(r["channels"] for r in corrected)
        line = (f"bias correction on {len(corrected)} layers: median {100 * removed:.0f}% of the mean channel error "
                f"removed")
        flipped = sum(r.get("channels_flipped", 0) for r in corrected)
        if flipped:
            line += f"; {flipped} channels finished by rounding one weight the other way"
        if lost:
            line += f"; {lost} of {channels} channel corrections were below half a bias step and lost"
            if any(r["channels_lost"] and r["bias_mode"] != "double_scale_initialization" for r in corrected):
                line += " (bias_mode=double_scale_initialization keeps most of them)"
        lines.append(line)
    for algo in ("finetune", "adaround"):
        trained = report.get(algo) or []
        if trained:
            lines.append(f"{algo} trained {len(trained)} layer{'s' if len(trained) != 1 else ''} against the float network")
    return lines


def _sources(diagnostics) -> dict[str, str]:
    out = {}
    for d in diagnostics:
        if d.span is not None and d.span.file not in out and os.path.isfile(d.span.file):
            out[d.span.file] = pathlib.Path(d.span.file).read_text(encoding="utf-8", errors="replace")
    return out


def _precision_summary(qmodel) -> str:
    counts: dict[str, int] = {}
    for layer in qmodel.plan:
        if layer.weight_bits is not None:
            key = f"a{layer.input_bits[0] if layer.input_bits else 8}_w{layer.weight_bits}_a{layer.output_bits}"
            counts[key] = counts.get(key, 0) + 1
    modes = ", ".join(f"{n} at {k}" for k, n in sorted(counts.items()))
    return f"quantized {len(qmodel.plan)} layers ({modes or 'no weighted layers'})"


def _eval(args) -> int:
    from alls.runtime.model import load

    try:
        qmodel = load(args.quantized)
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics))
        return EXIT_FAILURE
    return _evaluate(qmodel, args)


def _evaluate(qmodel, args) -> int:
    import json

    from alls.runtime.metrics import compare

    try:
        data = _load_npy(args.data, "data")
        labels = _load_npy(args.labels, "labels") if args.labels else None
        if args.limit:
            data = data[: args.limit]
            labels = labels[: args.limit] if labels is not None else None
        native = qmodel.run(data, target="native", layout=args.layout).outputs
        numeric = qmodel.run(data, target="numeric", layout=args.layout).outputs
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics))
        return EXIT_FAILURE
    figures = {name: compare(native[name], numeric[name], labels) for name in native}
    if args.json:
        print(json.dumps({"images": len(data), "outputs": figures}, indent=2))
        return EXIT_OK
    print(f"numeric against native on {len(data)} images:")
    header = ("output", "cosine", "SNR dB", "max abs err", "range", "top-1 agree", "acc native", "acc numeric")
    rows = []
    for name, f in figures.items():
        pct = lambda key: f"{100 * f[key]:.2f}%" if key in f else "-"
        rows.append((name.rsplit("/", 1)[-1], f"{f['cosine']:.5f}", f"{f['snr_db']:.2f}", f"{f['max_abs_error']:.4g}",
                     f"{f['range']:.4g}", pct("top1_agreement"), pct("native_accuracy"), pct("numeric_accuracy")))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return EXIT_OK


def _analyze(args) -> int:
    import json

    from alls.runtime.analysis import analyze
    from alls.runtime.model import load
    from alls.runtime.report import prepare_folder, summary, write_report

    try:
        folder = prepare_folder(args.output, args.force)
        if args.limit is not None and args.limit < 1:
            raise alls.AllsError([alls.Diagnostic("ALS512", alls.Severity.ERROR,
                                                  f"--limit must be at least 1, not {args.limit}")])
        qmodel = load(args.quantized)
        data = _load_npy(args.data, "data")
        if args.limit is not None and data.ndim:
            data = data[: args.limit]
        result = analyze(qmodel, data, args.layout, args.worst, args.isolation_images)
        write_report(result, folder, force=args.force)
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics))
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return EXIT_OK
    print(summary(result, folder))
    if result.diagnostics:
        sys.stdout.write(alls.render(list(result.diagnostics)))
    return EXIT_OK


def _tune(args) -> int:
    from alls.runtime.runner import Runner
    from alls.runtime.tune import best, tune

    output = args.output or f"{pathlib.Path(args.model).stem}_tuned.alls"
    if os.path.exists(output) and not args.force:
        sys.stderr.write(f"error[ALS001]: `{output}` exists; pass --force to overwrite it\n")
        return EXIT_FAILURE
    shapes = _input_shapes(args.input_shape)
    try:
        base = pathlib.Path(args.script).read_text(encoding="utf-8") if args.script else ""
        calib = _load_npy(args.calib, "calibration data")
        data = _load_npy(args.data, "data")
        labels = _load_npy(args.labels, "labels") if args.labels else None
        if args.limit:
            data, labels = data[: args.limit], (labels[: args.limit] if labels is not None else None)
        metric = "top-1 accuracy" if labels is not None else "mean output cosine"
        print(f"{'step':<20} {metric:>18}  {'cosine':>8}  {'seconds':>7}")

        def show(step) -> None:
            if step.error:
                print(f"{step.name:<20} {'failed':>18}  {step.error}")
            else:
                value = f"{100 * step.metric:.2f}%" if labels is not None else f"{step.metric:.5f}"
                print(f"{step.name:<20} {value:>18}  {step.cosine:8.5f}  {step.seconds:7.1f}", flush=True)

        done = tune(lambda: Runner(args.model, shapes, args.name), calib, data, labels, base, args.layout, show)
    except OSError as exc:
        sys.stderr.write(f"error[ALS001]: cannot read `{args.script}`: {exc.strerror or exc}\n")
        return EXIT_FAILURE
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics, _sources(error.diagnostics)))
        return EXIT_FAILURE
    if not any(step.metric is not None for step in done):
        sys.stderr.write(f"error[{done[0].error.split(':', 1)[0]}]: no step of the flow could run; "
                         "each step's error is above\n")
        return EXIT_FAILURE
    chosen = best(done)
    _write_atomically(output, alls.format_text(chosen.script), new=True)
    print(f"best: {chosen.name}; wrote {output}")
    return EXIT_OK


def _taps_command(commands) -> None:
    taps = commands.add_parser("taps", help="write the tensors of a quantized model's layers, one .npy per layer "
                               "and target, with an index")
    taps.add_argument("quantized", metavar="QMODEL", help="a quantized model written by `alls quantize`")
    taps.add_argument("--data", metavar="NPY", required=True, help="images to run, (N, H, W, C) in a .npy")
    taps.add_argument("--layers", metavar="SELECTOR", help="the layers, as a script selects them: `{conv*}`, "
                      "`conv1`, `[conv1, {dw*}]` (default: every layer)")
    taps.add_argument("--target", action="append", choices=("native", "fp_optimized", "numeric"),
                      help="the emulation target (repeat for several; default: numeric)")
    taps.add_argument("--raw", action="store_true", help="numeric tensors as integer codes (encodings in the index)")
    taps.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="the layout of the .npy images")
    taps.add_argument("--limit", type=int, metavar="N", help="run the first N images only")
    taps.add_argument("-o", "--output", metavar="DIR", required=True, help="the folder to write")
    taps.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    taps.set_defaults(run=_taps)


def _taps(args) -> int:
    from alls.runtime.model import load
    from alls.runtime.taps import INDEX, write_taps

    try:
        qmodel = load(args.quantized)
        data = _load_npy(args.data, "data")
        if args.limit is not None:
            data = data[: max(args.limit, 0)]
        index = write_taps(qmodel, data, args.output, args.layers, args.target or ["numeric"], args.layout,
                           args.force, args.raw)
    except alls.AllsError as error:
        sys.stderr.write(alls.render(error.diagnostics))
        return EXIT_FAILURE
    targets = sorted({entry["target"] for entry in index["taps"]})
    layers = len({entry["layer"] for entry in index["taps"]})
    print(f"wrote {len(index['taps'])} tensors ({layers} layers x {', '.join(targets)}) on {index['images']} images "
          f"to {args.output}; index in {os.path.join(args.output, INDEX)}")
    return EXIT_OK


def _explain(args) -> int:
    if args.code is None:
        for doc in alls.CODES.values():
            print(f"{doc.code}  {str(doc.severity):8} {doc.title}")
        return EXIT_OK
    code = args.code.upper()
    if code not in alls.CODES:
        hint = alls.diagnostics.suggestion(code, alls.CODES)
        sys.stderr.write(f"error: unknown code `{args.code}`" + (f"; {hint}" if hint else "") + "\n")
        sys.stderr.write("run `alls explain` to list every code\n")
        return EXIT_FAILURE
    print(alls.explain(code), end="")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
