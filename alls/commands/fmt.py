"""`alls fmt`: scripts rewritten in the canonical form, in place, or checked or diffed."""

from __future__ import annotations

import difflib
import sys

import alls
from alls import files
from alls.commands import common


def run(args) -> int:
    status = common.EXIT_OK
    for path in args.files:
        script, diagnostics = common.read(path, args)
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            common.report(errors, {script.filename: script.source})
            common.report([alls.Diagnostic(errors[0].code, alls.Severity.ERROR,
                                           f"`{script.filename}` not formatted: fix the errors above first")])
            status = max(status, common.EXIT_FAILURE if common.unreadable(errors) else common.EXIT_ERRORS)
            continue
        formatted = alls.format_script(script)
        if path == "-":
            sys.stdout.write(formatted)
            continue
        if formatted == script.source:
            continue
        if args.diff:
            sys.stdout.write(_diff(script.source, formatted, path))
            status = max(status, common.EXIT_ERRORS)
        elif args.check:
            print(f"would reformat {path}")
            status = max(status, common.EXIT_ERRORS)
        else:
            try:
                files.write_file(path, formatted, what="script", follow_links=True)
            except alls.AllsError as error:
                common.report(error.diagnostics)
                status = common.EXIT_FAILURE
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
