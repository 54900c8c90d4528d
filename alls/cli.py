"""The `alls` command line: a thin layer over the public API.

This module holds `main` (the one place an error becomes a coded diagnostic, ALS000 for a bug) and
the argument parser: every command's options are wired here. Each command's body is the `run`
function of its module in `alls.commands` (`alls/commands/check.py` for `alls check`, ...), with
what they share in `alls.commands.common`.

Exit codes: 0 clean (warnings allowed), 1 errors found (or, for `fmt
--check`, files that would change), 2 the tool could not run (bad usage, a
file that cannot be read or written).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TypeAlias

import alls
from alls import progress
# each command's body, one module per command; its options are wired in _parser below
from alls.commands.analyze import run as _analyze
from alls.commands.check import run as _check
from alls.commands.common import EXIT_FAILURE, EXIT_OK, report as _report
from alls.commands.evaluate import run as _eval
from alls.commands.explain import run as _explain
from alls.commands.fmt import run as _fmt
from alls.commands.layers import run as _layers
from alls.commands.lsp import run as _lsp
from alls.commands.plan import run as _plan
from alls.commands.quantize import run as _quantize
from alls.commands.taps import run as _taps
from alls.commands.tune import run as _tune
from alls.render import FORMATS

# What a command's module gives the parser: its body, called with the parsed options, returning the exit code.
Run: TypeAlias = Callable[[argparse.Namespace], int]
# The subcommands' registry that `add_subparsers` returns.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

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
        return _run(args)
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


def _command(commands: Commands, name: str, help: str, run: Run, description: str = "") -> argparse.ArgumentParser:
    """A subcommand with its example in --help, and the options every command takes."""
    epilog = f"example:\n  {EXAMPLES[name]}"
    parser = commands.add_parser(name, help=help, description=(description or help[:1].upper() + help[1:] + "."),
                                 epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress and no advice on standard error")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an internal error (ALS000)")
    if name != "explain":
        _limit_options(parser)
    if name in RUNTIME_COMMANDS:
        _thread_option(parser)
    parser.set_defaults(run=run)
    return parser


RUNTIME_COMMANDS = ("quantize", "eval", "analyze", "tune", "taps")  # the commands that run the model


def _thread_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help="run on at most N threads (default: every core; docs/performance.md)")


def _run(args: argparse.Namespace) -> int:
    """The command, its runtime calls on ``--threads`` threads when given."""
    run: Run = args.run
    if getattr(args, "threads", None) is None:
        return run(args)
    from alls.runtime import using_threads

    with using_threads(args.threads):
        return run(args)


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


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse ``type`` that reads ``text`` with ``kind`` and refuses a value not above 0."""
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, not `{text}`") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, not `{text}`")
        return value
    return convert


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
    quantize.add_argument("--calib", metavar="NPY", required=True,
                          help="calibration images, (N, H, W, C) in a .npy or a folder of .npy files")
    quantize.add_argument("-o", "--output", metavar="FILE", required=True, help="the quantized model (.npz)")
    quantize.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    quantize.add_argument("--batch-size", type=int, help="calibration batch size (default: the script's)")
    quantize.add_argument("--calib-num-batch", type=int, help="calibration batches (default: calibset_size / batch)")
    for flag, what in (("equalize", "equalization"), ("ibc", "iterative bias correction"),
                       ("finetune", "finetune (QFT)")):
        quantize.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None,
                              help=f"turn {what} on or off, whatever the script says (default: as it says)")
    _data_options(quantize, required=False)
    _memory_option(quantize)

    evaluate = _command(commands, "eval", "compare a quantized model's numeric target with its native one", _eval)
    evaluate.add_argument("quantized", metavar="QMODEL", help="a quantized model written by `alls quantize`")
    _data_options(evaluate, required=True)
    _cut_options(evaluate)
    _memory_option(evaluate)

    analyze = _command(commands, "analyze", "find the layers that carry a quantized model's error: "
                       "a report with plots and advice", _analyze)
    analyze.add_argument("quantized", metavar="QMODEL", help="a quantized model written by `alls quantize`")
    analyze.add_argument("--data", metavar="NPY", required=True,
                         help="images to analyze on, (N, H, W, C) in a .npy or a folder of them")
    analyze.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="the layout of the .npy images")
    analyze.add_argument("--limit", type=int, metavar="N", help="analyze on the first N images only")
    analyze.add_argument("--worst", type=int, default=3, metavar="K",
                         help="plot and keep in float the K most harmful layers (default 3)")
    analyze.add_argument("--isolation-images", type=int, default=8, metavar="N",
                         help="images for quantizing the layers one at a time, the costly view (default 8)")
    analyze.add_argument("-o", "--output", metavar="DIR", required=True, help="the report folder")
    analyze.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    analyze.add_argument("--json", action="store_true", help="print the analysis as JSON")
    _memory_option(analyze)
    _cut_options(analyze)

    from alls.runtime import describe_tune

    tune = _command(commands, "tune", "run the guide's incremental flow and keep the best script", _tune,
                    "Run the incremental flow of Hailo's guide, quantizing once per step, and write the script\n"
                    "of the best step (by the SNR of the outputs against the float model):\n\n" + describe_tune())
    tune.add_argument("model", metavar="MODEL", help="an .onnx file")
    _model_options(tune, positional=True)
    tune.add_argument("--script", metavar="SCRIPT", help="the script to start from (default: an empty one)")
    tune.add_argument("--calib", metavar="NPY", required=True,
                      help="calibration images, (N, H, W, C) in a .npy or a folder of .npy files")
    tune.add_argument("-o", "--output", metavar="FILE", help="where to write the best script (default: MODEL_tuned.alls)")
    tune.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    _data_options(tune, required=True)
    _memory_option(tune)

    _taps_command(commands)
    _add_lsp(commands)

    explain = _command(commands, "explain", "explain a diagnostic code", _explain)
    explain.add_argument("code", nargs="?", help="a code such as ALS203 (omit to list every code)")
    return parser


def _memory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memory-limit", metavar="SIZE", help="the memory the data may take (4GiB by default): "
                        "images beyond it are read a batch at a time, tensors beyond it go to temporary files")


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


def _data_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--data", metavar="NPY", required=required,
                        help="images to evaluate on, (N, H, W, C) in a .npy" + ("" if required else " (evaluates after quantizing)"))
    parser.add_argument("--labels", metavar="NPY", help="their class labels, for top-1 accuracy")
    parser.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="the layout of the .npy images")
    parser.add_argument("--limit", type=int, help="evaluate on the first N images only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _taps_command(commands: Commands) -> None:
    taps = _command(commands, "taps", "write the tensors of a quantized model's layers, one .npy per layer and "
                    "target, with an index", _taps)
    taps.add_argument("quantized", metavar="QMODEL", help="a quantized model written by `alls quantize`")
    taps.add_argument("--data", metavar="NPY", required=True,
                      help="images to run, (N, H, W, C) in a .npy or a folder of them")
    taps.add_argument("--layers", metavar="SELECTOR", help="the layers, as a script selects them: `{conv*}`, "
                      "`conv1`, `[conv1, {dw*}]` (default: every layer)")
    taps.add_argument("--target", action="append", choices=("native", "fp_optimized", "numeric"),
                      help="the emulation target (repeat for several; default: numeric)")
    taps.add_argument("--raw", action="store_true", help="numeric tensors as integer codes (encodings in the index)")
    taps.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="the layout of the .npy images")
    taps.add_argument("--limit", type=int, metavar="N", help="run the first N images only")
    taps.add_argument("-o", "--output", metavar="DIR", required=True, help="the folder to write")
    taps.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    _memory_option(taps)


def _add_lsp(commands: Commands) -> None:
    _command(commands, "lsp", "serve the language server protocol on stdio (for editors)", _lsp,
             "The language server for editors: diagnostics, completion, hover, quick fixes and formatting "
             "(docs/editors.md). Needs the lsp extra: pip install 'alls[lsp]'.")


if __name__ == "__main__":
    sys.exit(main())
