"""The `alls` command line: a thin layer over the public API.

Exit codes: 0 clean (warnings allowed), 1 errors found (or, for `fmt
--check`, files that would change), 2 the tool could not run (bad usage, a
file that cannot be read or written).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace

import alls
from alls import files, progress
from alls.render import FORMATS, printable, summary
from alls.tables import (algorithm_summary, explain_layer, figures_table, layer_row, layer_table, plan_table,
                         precision_summary)

EXIT_OK, EXIT_ERRORS, EXIT_FAILURE = 0, 1, 2
REPORT_HINT = "please report it with the command and `alls --version`; rerun with --debug for the traceback"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; every failure ends in a coded diagnostic, never in a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    progress.configure("--quiet" not in argv and "-q" not in argv)
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return EXIT_FAILURE
        return args.run(args)
    except alls.AllsError as error:
        _report(error.diagnostics)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing was written\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except SystemExit:
        raise
    except Exception as exc:  # the one place that turns a bug into a coded message
        if debug:
            traceback.print_exc()
        _report([alls.Diagnostic("ALS000", alls.Severity.ERROR,
                                 f"internal error in alls {alls.__version__}: {exc.__class__.__name__}: {exc}",
                                 help=REPORT_HINT)])
        return EXIT_FAILURE
    finally:
        progress.configure(True)


# --------------------------------------------------------------------- parser

EXAMPLES = {
    "check": ("alls check samples/four_bit_finetune.alls\n  alls check samples/digits/digits.alls "
              "--model samples/digits/digits_cnn.onnx --output-format concise"),
    "fmt": "alls fmt --diff samples/ugly.alls\n  alls fmt --check samples/digits/digits.alls",
    "layers": "alls layers samples/digits/digits_cnn.onnx",
    "plan": "alls plan samples/digits/digits.alls --model samples/digits/digits_cnn.onnx --explain conv1",
    "quantize": ("alls quantize samples/digits/digits_cnn.onnx --script samples/digits/digits.alls "
                 "--calib samples/digits/calib.npy -o digits_q.npz --force --data samples/digits/test_x.npy "
                 "--labels samples/digits/test_y.npy"),
    "eval": "alls eval digits_q.npz --data samples/digits/test_x.npy --labels samples/digits/test_y.npy",
    "analyze": "alls analyze digits_q.npz --data samples/digits/test_x.npy -o report/ --force",
    "tune": ("alls tune samples/digits/digits_cnn.onnx --calib samples/digits/calib.npy "
             "--data samples/digits/test_x.npy --labels samples/digits/test_y.npy -o digits_tuned.alls --force"),
    "taps": "alls taps digits_q.npz --data samples/digits/test_x.npy --layers '{conv*}' --target native "
            "--target numeric -o taps/ --force",
    "explain": "alls explain ALS311",
    "lsp": "alls lsp < /dev/null  # an editor starts it and speaks LSP on stdin/stdout (docs/editors.md)",
}


def _command(commands, name: str, help: str, run, description: str = "") -> argparse.ArgumentParser:
    """A subcommand with its example in --help, and the options every command takes."""
    epilog = f"example:\n  {EXAMPLES[name]}"
    parser = commands.add_parser(name, help=help, description=(description or help[:1].upper() + help[1:] + "."),
                                 epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress and no advice on standard error")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an internal error (ALS000)")
    if name != "explain":
        _limit_options(parser)
    parser.set_defaults(run=run)
    return parser


def _limit_options(parser: argparse.ArgumentParser) -> None:
    """A ``--max-...`` option for each of `alls.Limits` (docs/untrusted-inputs.md)."""
    import dataclasses

    from alls.limits import describe

    limits = parser.add_argument_group("limits on untrusted inputs (docs/untrusted-inputs.md)")
    for field in dataclasses.fields(alls.Limits):
        code, option, what = describe(field.name)
        kind = float if isinstance(field.default, float) else int
        limits.add_argument(option, dest=f"limit_{field.name}", type=_positive(kind), metavar="N",
                            help=f"most {what} (default {field.default:,}; {code} beyond)")


def _positive(kind):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, not `{text}`") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, not `{text}`")
        return value
    return convert


def _limits(args) -> alls.Limits:
    given = {key[len("limit_"):]: value for key, value in vars(args).items()
             if key.startswith("limit_") and value is not None}
    return alls.Limits(**given)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alls", description="Check, format and run .alls quantization scripts.",
        epilog="run `alls COMMAND --help` for a command's options and an example",
    )
    parser.add_argument("--version", action="version", version=f"alls {alls.__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an internal error (ALS000)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    check = _command(commands, "check", "report the problems of scripts", _check)
    check.add_argument("files", nargs="+", metavar="FILE", help="scripts to check (`-` reads standard input)")
    check.add_argument("--output-format", choices=FORMATS, default="full", help="how to print diagnostics")
    _model_options(check, required=False)

    fmt = _command(commands, "fmt", "rewrite scripts in the canonical form", _fmt,
                   "Rewrite scripts in the canonical form, in place (a symbolic link: the file it points to).")
    fmt.add_argument("files", nargs="+", metavar="FILE", help="scripts to format (`-` formats standard input to standard output)")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    mode.add_argument("--diff", action="store_true", help="write nothing; print the changes as a diff")

    layers = _command(commands, "layers", "list the layers of an ONNX model, with their Hailo-style names", _layers)
    layers.add_argument("model", metavar="MODEL", help="an .onnx file")
    _model_options(layers, positional=True)
    layers.add_argument("--json", action="store_true", help="print the layers as JSON")

    plan = _command(commands, "plan", "bind a script to a model and print the per-layer plan", _plan)
    plan.add_argument("script", metavar="SCRIPT", help="the .alls script (`-` reads standard input)")
    _model_options(plan, required=True)
    plan.add_argument("--explain", metavar="LAYER", help="print the statements that shaped LAYER, in order")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("-o", "--output", metavar="FILE", help="write the JSON plan to FILE")
    plan.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    quantize = _command(commands, "quantize", "calibrate and quantize a model by a script", _quantize,
                        "Calibrate and quantize a model by a script, write the quantized model (.npz), and "
                        "with --data compare it with the float model.")
    quantize.add_argument("model", metavar="MODEL", help="an .onnx file")
    _model_options(quantize, positional=True)
    quantize.add_argument("--script", metavar="SCRIPT", help="the .alls script (default: an empty script, all 8-bit)")
    quantize.add_argument("--calib", metavar="NPY", required=True, help="calibration images, (N, H, W, C) in a .npy")
    quantize.add_argument("-o", "--output", metavar="FILE", required=True, help="the quantized model (.npz)")
    quantize.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    quantize.add_argument("--batch-size", type=int, help="calibration batch size (default: the script's)")
    quantize.add_argument("--calib-num-batch", type=int, help="calibration batches (default: calibset_size / batch)")
    for flag, what in (("equalize", "equalization"), ("ibc", "iterative bias correction"),
                       ("finetune", "finetune (QFT)")):
        quantize.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None,
                              help=f"turn {what} on or off, whatever the script says (default: as it says)")
    _data_options(quantize, required=False)

    evaluate = _command(commands, "eval", "compare a quantized model's numeric target with its native one", _eval)
    evaluate.add_argument("quantized", metavar="QMODEL", help="a quantized model written by `alls quantize`")
    _data_options(evaluate, required=True)
    _cut_options(evaluate)

    analyze = _command(commands, "analyze", "find the layers that carry a quantized model's error: "
                       "a report with plots and advice", _analyze)
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
    _cut_options(analyze)

    from alls.runtime import describe_tune

    tune = _command(commands, "tune", "run the guide's incremental flow and keep the best script", _tune,
                    "Run the incremental flow of Hailo's guide, quantizing once per step, and write the script\n"
                    "of the best step (by the SNR of the outputs against the float model):\n\n" + describe_tune())
    tune.add_argument("model", metavar="MODEL", help="an .onnx file")
    _model_options(tune, positional=True)
    tune.add_argument("--script", metavar="SCRIPT", help="the script to start from (default: an empty one)")
    tune.add_argument("--calib", metavar="NPY", required=True, help="calibration images, (N, H, W, C) in a .npy")
    tune.add_argument("-o", "--output", metavar="FILE", help="where to write the best script (default: MODEL_tuned.alls)")
    tune.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    _data_options(tune, required=True)

    _taps_command(commands)
    _add_lsp(commands)

    explain = _command(commands, "explain", "explain a diagnostic code", _explain)
    explain.add_argument("code", nargs="?", help="a code such as ALS203 (omit to list every code)")
    return parser


def _model_options(parser: argparse.ArgumentParser, required: bool = False, positional: bool = False) -> None:
    if not positional:
        parser.add_argument("--model", metavar="MODEL", required=required,
                            help="an .onnx model to bind the script to" + ("" if required else " (checks selectors too)"))
    parser.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]N,C,H,W",
                        help="override a fixed input shape (repeat for several inputs)")
    parser.add_argument("--name", help="the network scope of the layer names (default: the model file's stem)")
    _cut_options(parser)


def _cut_options(parser: argparse.ArgumentParser) -> None:
    """--start-nodes/--end-nodes/--zoo-config: where Hailo's parser cuts the graph."""
    parser.add_argument("--start-nodes", metavar="A[,B...]", default="",
                        help="ONNX nodes where the network starts (their inputs become its inputs)")
    parser.add_argument("--end-nodes", metavar="X[,Y...]", default="",
                        help="ONNX nodes where the network ends (their outputs become its outputs)")
    parser.add_argument("--zoo-config", metavar="YAML",
                        help="a Hailo model-zoo network config: its parser.nodes and input shape")


def _cut(args) -> dict:
    """The cut the options ask for, as `alls.load_model` keywords (``input_shapes`` from a zoo
    config only where --input-shape is not given)."""
    start = tuple(n for n in args.start_nodes.split(",") if n)
    end = tuple(n for n in args.end_nodes.split(",") if n)
    shapes = None
    if args.zoo_config:
        network = alls.read_zoo_network(args.zoo_config)
        start, end, shapes = start or network.start_nodes, end or network.end_nodes, network.input_shape
    cut = {"start_nodes": start, "end_nodes": end}
    if shapes is not None and not getattr(args, "input_shape", None):
        cut["input_shapes"] = shapes
    return cut


def _shapes_and_cut(args) -> tuple:
    """(input shapes, start nodes, end nodes) from the model options."""
    cut = _cut(args)
    return cut.get("input_shapes", _input_shapes(args.input_shape)), cut["start_nodes"], cut["end_nodes"]


def _data_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--data", metavar="NPY", required=required,
                        help="images to evaluate on, (N, H, W, C) in a .npy" + ("" if required else " (evaluates after quantizing)"))
    parser.add_argument("--labels", metavar="NPY", help="their class labels, for top-1 accuracy")
    parser.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="the layout of the .npy images")
    parser.add_argument("--limit", type=int, help="evaluate on the first N images only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


# ------------------------------------------------------------------- helpers

# Help written for the Python API, as the command line spells it.
_CLI_TERMS = ((re.compile(r'layout="(\w+)"'), r"--layout \1"),
              (re.compile(r"input_shapes=\((N, )?([\d, ]+)\)"),
               lambda m: "--input-shape " + ("N," if m.group(1) else "") + m.group(2).replace(" ", "")),
              (re.compile(r"call runner\.quantize\(calib\) first"), "quantize it first with `alls quantize`"))


def _for_cli(d: alls.Diagnostic) -> alls.Diagnostic:
    text = d.help
    for pattern, repl in _CLI_TERMS:
        text = pattern.sub(repl, text)
    return d if text == d.help else replace(d, help=text)


def _report(diagnostics, sources=None, stream=None) -> None:
    """Render ``diagnostics`` (to standard error unless ``stream``), with their sources where known."""
    found = [_for_cli(d) for d in diagnostics]
    if found:
        (stream or sys.stderr).write(alls.render(found, sources if sources is not None else _sources(found)))


def _sources(diagnostics) -> dict[str, str]:
    out = {}
    for d in diagnostics:
        if d.span is not None and d.span.file not in out and os.path.isfile(d.span.file):
            try:
                with open(d.span.file, "rb") as f:
                    out[d.span.file] = f.read(1 << 22).decode("utf-8", errors="replace")
            except OSError:
                pass
    return out


def _read(path: str, args) -> tuple[alls.Script, list[alls.Diagnostic]]:
    if path == "-":
        return alls.read_script(sys.stdin.buffer, "<stdin>", limits=_limits(args))
    return alls.read_script(path, limits=_limits(args))


def _read_or_fail(path: str, args) -> alls.Script:
    """A script that parsed without errors, or AllsError with the errors (ALS001, ALS108, syntax)."""
    script, diagnostics = _read(path, args)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise alls.AllsError(errors)
    return script


def _unreadable(diagnostics: Sequence[alls.Diagnostic]) -> bool:
    return any(d.code == "ALS001" for d in diagnostics)


def _check_output(path: str, force: bool, what: str) -> None:
    """Refuse an output that cannot be written before the work starts; report stale temporary files."""
    if not progress.enabled():
        files.check_output(path, force, what=what)
        return
    _report(files.check_output(path, force, what=what))


# -------------------------------------------------------------------- commands


def _check(args) -> int:
    found: list[alls.Diagnostic] = []
    sources: dict[str, str] = {}
    failed = False
    graph = None
    if args.model is not None:
        graph = _load_graph(args)
        found.extend(graph.diagnostics)
    for path in args.files:
        script, diagnostics = _read(path, args)
        failed |= _unreadable(diagnostics)
        if graph is not None:
            checked = list(alls.resolve(script, graph).diagnostics)
            checked = [d for d in checked if d not in graph.diagnostics]
        else:
            checked = alls.check(script)
        found.extend(sorted(diagnostics + checked, key=alls.Diagnostic.sort_key))
        sources[script.filename] = script.source
    out = alls.render([_for_cli(d) for d in found], sources, args.output_format)
    if args.output_format == "full":
        out += ("\n" if found else "") + summary(found, len(args.files)) + "\n"
    sys.stdout.write(out)
    if failed:
        return EXIT_FAILURE
    return EXIT_ERRORS if any(d.is_error for d in found) else EXIT_OK


def _fmt(args) -> int:
    status = EXIT_OK
    for path in args.files:
        script, diagnostics = _read(path, args)
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            _report(errors, {script.filename: script.source})
            _report([alls.Diagnostic(errors[0].code, alls.Severity.ERROR,
                                     f"`{script.filename}` not formatted: fix the errors above first")])
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
                files.write_file(path, formatted, what="script", follow_links=True)
            except alls.AllsError as error:
                _report(error.diagnostics)
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


def _model_file(path: str) -> str:
    """``path``, refused (ALS007) when it is a NumPy file; the importer names other problems (ALS402)."""
    if os.path.exists(path):
        files.expect_kind(path, ("onnx", "binary", "text", "empty"), "model", "pass the .onnx file")
    return path


def _load_graph(args):
    shapes, start, end = _shapes_and_cut(args)
    return alls.load_model(_model_file(args.model), shapes, args.name, start, end, limits=_limits(args))


def _layers(args) -> int:
    graph = _load_graph(args)
    if args.json:
        rows = [layer_row(layer) for layer in graph]
        doc = {"network": graph.name, "opset": graph.opset, "layers": rows, "tie_numbered": sorted(graph.tie_numbered),
               "order_disputed": sorted(graph.order_disputed),
               "start_nodes": list(graph.start_nodes), "end_nodes": list(graph.end_nodes),
               "diagnostics": json.loads(alls.render(list(graph.diagnostics), fmt="json"))}
        print(json.dumps(doc, indent=2))
    else:
        print(printable(layer_table(graph)))
        if graph.diagnostics:
            sys.stdout.write("\n")
            _report(graph.diagnostics, stream=sys.stdout)
    return EXIT_ERRORS if any(d.is_error for d in graph.diagnostics) else EXIT_OK


def _plan(args) -> int:
    if args.output:
        _check_output(args.output, args.force, "plan")
    graph = _load_graph(args)
    script, diagnostics = _read(args.script, args)
    if _unreadable(diagnostics):
        raise alls.AllsError(diagnostics)
    plan = alls.resolve(script, graph)
    found = sorted(diagnostics + list(plan.diagnostics), key=alls.Diagnostic.sort_key)
    sources = {script.filename: script.source}
    if args.explain is not None:
        layer = graph.get(args.explain)
        if layer is None:
            hint = alls.diagnostics.suggestion(args.explain, [l.short_name for l in graph])
            raise alls.AllsError.of("ALS201", f"no layer `{args.explain}` in `{graph.name}`", hint)
        print(printable(explain_layer(plan, layer.name)))
    elif args.json or args.output:
        doc = plan.as_dict()
        doc["diagnostics"] = json.loads(alls.render(found, fmt="json"))
        text = json.dumps(doc, indent=2) + "\n"
        if args.output:
            files.write_file(args.output, text, what="plan")
        if args.json:
            sys.stdout.write(text)
    else:
        print(printable(plan_table(plan)))
    if found and args.explain is not None:
        sys.stdout.write(f"\n{summary(found, 1)} (run without --explain to see them)\n")
    elif found and not args.json:
        sys.stdout.write("\n")
        _report(found, sources, stream=sys.stdout)
        sys.stdout.write("\n" + summary(found, 1) + "\n")
    return EXIT_ERRORS if any(d.is_error for d in found) else EXIT_OK


def _quantize(args) -> int:
    from alls.runtime import Runner, load_array

    _check_output(args.output, args.force, "quantized model")
    shapes, start, end = _shapes_and_cut(args)
    runner = Runner(_model_file(args.model), shapes, args.name, start_nodes=start, end_nodes=end, limits=_limits(args))
    if args.script:
        runner.load_script(_read_or_fail(args.script, args))
    calib = load_array(args.calib, "calibration images", limits=_limits(args))
    data = _evaluation_data(args) if args.data else None
    qmodel = runner.quantize(calib, args.batch_size, args.calib_num_batch, args.layout,
                             equalize=args.equalize, ibc=args.ibc, finetune=args.finetune)
    runner.save(args.output)
    report = qmodel.report
    print(f"calibrated `{runner.graph.name}` on {report['calibration_images']} images "
          f"({report['calib_num_batch']} batches of {report['batch_size']})")
    print(precision_summary(qmodel.plan))
    for line in algorithm_summary(report):
        print(line)
    _report(runner.warnings, stream=sys.stdout)
    print(f"wrote {args.output}")
    if data is not None:
        return _evaluate(qmodel, args, *data)
    return EXIT_OK


def _evaluation_data(args):
    """The evaluation images and labels, read and checked before any work."""
    from alls.runtime import check_labels, load_array

    if args.limit is not None and args.limit < 1:
        raise alls.AllsError.of("ALS512", f"--limit must be at least 1, not {args.limit}")
    data = load_array(args.data, "data", limits=_limits(args))
    labels = load_array(args.labels, "labels", limits=_limits(args)) if args.labels else None
    if args.limit is not None and data.ndim:
        data = data[: args.limit]
        labels = labels[: args.limit] if labels is not None and labels.ndim else labels
    if labels is not None:
        labels = check_labels(labels, len(data) if data.ndim else 0)
    return data, labels


def _eval(args) -> int:
    from alls.runtime import load

    data, labels = _evaluation_data(args)
    cut = _cut(args)
    return _evaluate(load(args.quantized, cut["start_nodes"], cut["end_nodes"], limits=_limits(args)), args, data, labels)


def _evaluate(qmodel, args, data, labels) -> int:
    from alls.runtime import evaluate

    result = evaluate(qmodel, data, labels, args.layout)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(figures_table(result))
    return EXIT_OK


def _analyze(args) -> int:
    from alls.runtime import analyze, load, load_array, prepare_folder, report_summary, write_report

    folder = prepare_folder(args.output, args.force)
    if args.limit is not None and args.limit < 1:
        raise alls.AllsError.of("ALS512", f"--limit must be at least 1, not {args.limit}")
    cut = _cut(args)
    qmodel = load(args.quantized, cut["start_nodes"], cut["end_nodes"], limits=_limits(args))
    data = load_array(args.data, "data", limits=_limits(args))
    if args.limit is not None and data.ndim:
        data = data[: args.limit]
    result = analyze(qmodel, data, args.layout, args.worst, args.isolation_images)
    write_report(result, folder, force=args.force)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return EXIT_OK
    print(report_summary(result, folder))
    _report(result.diagnostics, stream=sys.stdout)
    return EXIT_OK


def _tune(args) -> int:
    from alls.runtime import Runner, best, load_array, tune

    output = args.output or f"{os.path.splitext(os.path.basename(args.model))[0]}_tuned.alls"
    _check_output(output, args.force, "tuned script")
    shapes, start, end = _shapes_and_cut(args)
    _model_file(args.model)
    base = _read_or_fail(args.script, args) if args.script else ""
    calib = load_array(args.calib, "calibration images", limits=_limits(args))
    data, labels = _evaluation_data(args)
    widths = [max(len(n) for n, _ in _tune_steps()), 7, 8, 7, 7]
    row = lambda cells: print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip(), flush=True)
    header = [("step", "SNR dB", "cosine", "top-1" if labels is not None else "", "seconds")]

    def show(step) -> None:
        if args.json:
            return
        while header:
            row(header.pop())
        if step.error:
            print(f"{step.name}: failed: {step.error}", flush=True)
            return
        accuracy = f"{100 * step.accuracy:.2f}%" if step.accuracy is not None else ""
        row((step.name, f"{step.snr_db:.2f}", f"{step.cosine:.5f}", accuracy, f"{step.seconds:.1f}"))

    done = tune(lambda: Runner(args.model, shapes, args.name, start_nodes=start, end_nodes=end,
                                  limits=_limits(args)), calib, data, labels, base, args.layout, show)
    chosen = best(done)
    files.write_file(output, alls.format_text(chosen.script), what="tuned script")
    if args.json:
        print(json.dumps({"best": chosen.name, "output": output, "steps": [s.as_dict() for s in done]}, indent=2))
    else:
        if chosen.layers:
            print(f"16-bit on the layers the analysis blames: {', '.join(n.rsplit('/', 1)[-1] for n in chosen.layers)}")
        print(f"best: {chosen.name} ({chosen.snr_db:.2f} dB); wrote {output}")
    return EXIT_OK


def _tune_steps():
    from alls.runtime import STEPS

    return STEPS


def _taps_command(commands) -> None:
    taps = _command(commands, "taps", "write the tensors of a quantized model's layers, one .npy per layer and "
                    "target, with an index", _taps)
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


def _taps(args) -> int:
    from alls.runtime import TAPS_INDEX, load, load_array, prepare_taps_folder, write_taps

    prepare_taps_folder(args.output, args.force)
    if args.limit is not None and args.limit < 1:
        raise alls.AllsError.of("ALS512", f"--limit must be at least 1, not {args.limit}")
    qmodel = load(args.quantized)
    data = load_array(args.data, "data")
    if args.limit is not None and data.ndim:
        data = data[: args.limit]
    index = write_taps(qmodel, data, args.output, args.layers, args.target or ["numeric"], args.layout, args.force,
                       args.raw)
    targets = sorted({entry["target"] for entry in index["taps"]})
    layers = len({entry["layer"] for entry in index["taps"]})
    print(f"wrote {len(index['taps'])} tensors ({layers} layers x {', '.join(targets)}) on {index['images']} images "
          f"to {args.output}; index in {os.path.join(args.output, TAPS_INDEX)}")
    return EXIT_OK


def _add_lsp(commands) -> None:
    _command(commands, "lsp", "serve the language server protocol on stdio (for editors)", _lsp,
             "The language server for editors: diagnostics, completion, hover, quick fixes and formatting "
             "(docs/editors.md). Needs the lsp extra: pip install 'alls[lsp]'.")


def _lsp(args) -> int:
    from alls.lsp import serve

    serve()  # raises AllsError (ALS011) without pygls; main reports it
    return EXIT_OK


def _explain(args) -> int:
    if args.code is None:
        for doc in alls.CODES.values():
            print(f"{doc.code}  {str(doc.severity):8} {doc.title}")
        return EXIT_OK
    code = args.code.upper()
    if code not in alls.CODES:
        digits = code[:3] + code[3:].translate(str.maketrans("OIL", "011"))  # a letter typed for a digit
        hint = f"did you mean `{digits}`?" if digits in alls.CODES else alls.diagnostics.suggestion(code, alls.CODES)
        raise alls.AllsError.of("ALS009", f"unknown code `{args.code}`",
                                (hint + " " if hint else "") + "run `alls explain` to list every code")
    print(alls.explain(code), end="")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
