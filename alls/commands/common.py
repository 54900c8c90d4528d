"""What the commands share: exit codes, the limits, scripts and models read from the options, and
diagnostics rendered for the command line."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace

import alls
from alls import files, progress
from alls.tables import figures_table

EXIT_OK, EXIT_ERRORS, EXIT_FAILURE = 0, 1, 2

# Help written for the Python API, as the command line spells it.
_CLI_TERMS = ((re.compile(r'layout="(\w+)"'), r"--layout \1"),
              (re.compile(r"input_shapes=\((N, )?([\d, ]+)\)"),
               lambda m: "--input-shape " + ("N," if m.group(1) else "") + m.group(2).replace(" ", "")),
              (re.compile(r"call runner\.quantize\(calib\) first"), "quantize it first with `alls quantize`"))


def for_cli(d: alls.Diagnostic) -> alls.Diagnostic:
    """``d`` with its help spelled in the command line's options (`_CLI_TERMS`)."""
    text = d.help
    for pattern, repl in _CLI_TERMS:
        text = pattern.sub(repl, text)
    return d if text == d.help else replace(d, help=text)


def report(diagnostics, sources=None, stream=None) -> None:
    """Render ``diagnostics`` (to standard error unless ``stream``), with their sources where known."""
    found = [for_cli(d) for d in diagnostics]
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


def read(path: str, args) -> tuple[alls.Script, list[alls.Diagnostic]]:
    """The script at ``path`` (`-`: standard input) and its diagnostics, under the options' limits."""
    if path == "-":
        return alls.read_script(sys.stdin.buffer, "<stdin>", limits=limits_of(args))
    return alls.read_script(path, limits=limits_of(args))


def read_or_fail(path: str, args) -> alls.Script:
    """A script that parsed without errors, or AllsError with the errors (ALS001, ALS108, syntax)."""
    script, diagnostics = read(path, args)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise alls.AllsError(errors)
    return script


def unreadable(diagnostics: Sequence[alls.Diagnostic]) -> bool:
    """Whether a file could not be read at all (ALS001): the tool could not run, exit 2."""
    return any(d.code == "ALS001" for d in diagnostics)


def check_output(path: str, force: bool, what: str) -> None:
    """Refuse an output that cannot be written before the work starts; report stale temporary files."""
    if not progress.enabled():
        files.check_output(path, force, what=what)
        return
    report(files.check_output(path, force, what=what))


def limits_of(args) -> alls.Limits:
    given = {key[len("limit_"):]: value for key, value in vars(args).items()
             if key.startswith("limit_") and value is not None}
    return alls.Limits(**given)


def requested_cut(args) -> dict:
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


def shapes_and_cut(args) -> tuple:
    """(input shapes, start nodes, end nodes) from the model options."""
    cut = requested_cut(args)
    return cut.get("input_shapes", parse_input_shapes(args.input_shape)), cut["start_nodes"], cut["end_nodes"]


def parse_input_shapes(specs: Sequence[str]):
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


def model_file(path: str) -> str:
    """``path``, refused (ALS007) when it is a NumPy file; the importer names other problems (ALS402)."""
    if os.path.exists(path):
        files.expect_kind(path, ("onnx", "binary", "text", "empty"), "model", "pass the .onnx file")
    return path


def load_graph(args):
    """The model of the options as a `Graph`, cut and shaped as they ask."""
    shapes, start, end = shapes_and_cut(args)
    return alls.load_model(model_file(args.model), shapes, args.name, start, end, limits=limits_of(args))


def evaluation_data(args):
    """The evaluation images and labels, read and checked before any work."""
    from alls.runtime import check_labels, load_array

    if args.limit is not None and args.limit < 1:
        raise alls.AllsError.of("ALS512", f"--limit must be at least 1, not {args.limit}")
    data = load_array(args.data, "data", limits=limits_of(args))
    labels = load_array(args.labels, "labels", limits=limits_of(args)) if args.labels else None
    if args.limit is not None and data.ndim:
        data = data[: args.limit]
        labels = labels[: args.limit] if labels is not None and labels.ndim else labels
    if labels is not None:
        labels = check_labels(labels, len(data) if data.ndim else 0)
    return data, labels


def print_evaluation(qmodel, args, data, labels) -> int:
    from alls.runtime import evaluate

    result = evaluate(qmodel, data, labels, args.layout)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(figures_table(result))
    return EXIT_OK
