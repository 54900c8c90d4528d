"""The `alls` command line: a thin layer over the public API.

Exit codes: 0 clean (warnings allowed), 1 errors found (or, for `fmt
--check`, files that would change), 2 the tool could not run (bad usage, a
file that cannot be read or written).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from collections.abc import Sequence

import alls
from alls.render import FORMATS, summary

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
    check.set_defaults(run=_check)

    fmt = commands.add_parser("fmt", help="rewrite scripts in the canonical form")
    fmt.add_argument("files", nargs="+", metavar="FILE", help="scripts to format (`-` formats standard input to standard output)")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    mode.add_argument("--diff", action="store_true", help="write nothing; print the changes as a diff")
    fmt.set_defaults(run=_fmt)

    explain = commands.add_parser("explain", help="explain a diagnostic code")
    explain.add_argument("code", nargs="?", help="a code such as ALS203 (omit to list every code)")
    explain.set_defaults(run=_explain)
    return parser


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
    for path in args.files:
        script, diagnostics = _read(path)
        failed |= _unreadable(diagnostics)
        diagnostics = sorted(diagnostics + alls.check(script), key=alls.Diagnostic.sort_key)
        found.extend(diagnostics)
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


def _write_atomically(path: str, text: str) -> None:
    """Write next to ``path`` and rename over it: never a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
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
