"""Render diagnostics for people (`full`, `concise`) and for tools (`json`,
`sarif` for code-scanning services, `github` for workflow annotations).

The full form shows the source line with a caret under the span::

    error[ALS203]: `quantization_param` has no keyword `precison_mode`
     --> net.alls:3:28
      |
    3 | quantization_param({conv*}, precison_mode=a16_w16)
      |                             ^^^^^^^^^^^^^ unknown keyword
      = help: did you mean `precision_mode`?
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from alls.diagnostics import Diagnostic, Severity
from alls.nodes import Span

__all__ = ["render", "summary", "FORMATS"]

FORMATS = ("full", "concise", "json", "sarif", "github")
_WINDOW = 120  # characters of a long source line shown around the span


def render(diagnostics: Sequence[Diagnostic], sources: Mapping[str, str] | None = None, fmt: str = "full") -> str:
    """Render ``diagnostics``; ``sources`` maps a file name to its text."""
    sources = sources or {}
    if fmt == "json":
        return json.dumps([_as_dict(d) for d in diagnostics], indent=2) + "\n"
    if fmt == "concise":
        return printable("".join(_concise(d) + "\n" for d in diagnostics))
    if fmt == "sarif":
        return json.dumps(_sarif(diagnostics), indent=2) + "\n"
    if fmt == "github":
        return printable("".join(_github(d) + "\n" for d in diagnostics))
    if fmt != "full":
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    lines: dict[str, list[str]] = {}
    out = []
    for d in diagnostics:
        if d.span is not None and d.span.file not in lines and d.span.file in sources:
            lines[d.span.file] = sources[d.span.file].split("\n")
        out.append(_full(d, lines.get(d.span.file) if d.span else None))
    return printable("\n".join(out))


# Control characters (a terminal's escape sequences among them) from a script's comments, a model's node
# names or a file name are shown as their Unicode pictures (ESC as ␛), one character for one, so that
# carets stay aligned and nothing reaches the terminal as a command. Tabs and newlines stay.
_PICTURES = str.maketrans({**{c: 0x2400 + c for c in range(32) if c not in (9, 10)}, 127: 0x2421,
                           **{c: 0xFFFD for c in range(0x80, 0xA0)}})


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline shown as a visible character."""
    return text.translate(_PICTURES)


def _concise(d: Diagnostic) -> str:
    where = f"{d.span}: " if d.span else ""
    extra = f" ({d.help})" if d.help else ""
    return f"{where}{d.severity}[{d.code}] {d.message}{extra}"


def _as_dict(d: Diagnostic) -> dict[str, Any]:
    out: dict[str, Any] = {"code": d.code, "severity": str(d.severity), "message": d.message}
    if d.span is not None:
        out.update(_span_dict(d.span))
    out["label"] = d.label
    out["help"] = d.help
    out["labels"] = [{"message": lab.message, **_span_dict(lab.span)} for lab in d.labels]
    return out


def _span_dict(span: Span) -> dict[str, Any]:
    return {
        "file": span.file,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
    }


# ------------------------------------------------------------------ SARIF

_SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _sarif(diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one run, a rule per code used, a result per diagnostic."""
    from alls import __version__
    from alls.codes import CODES

    used = list(dict.fromkeys(d.code for d in diagnostics))
    rules = []
    for code in used:
        rule: dict[str, Any] = {"id": code}
        doc = CODES.get(code)
        if doc is not None:
            rule.update({
                "shortDescription": {"text": doc.title},
                "fullDescription": {"text": f"{doc.what} {doc.why}"},
                "help": {"text": f"{doc.fix} Example: {doc.example}"},
                "defaultConfiguration": {"level": _SARIF_LEVEL[doc.severity]},
            })
        rules.append(rule)
    driver = {"name": "alls", "version": __version__, "rules": rules}
    results = [_sarif_result(d, used.index(d.code)) for d in diagnostics]
    return {"$schema": _SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}]}


def _sarif_result(d: Diagnostic, rule_index: int) -> dict[str, Any]:
    text = d.message + (f"\nhelp: {d.help}" if d.help else "")
    result: dict[str, Any] = {"ruleId": d.code, "ruleIndex": rule_index, "level": _SARIF_LEVEL[d.severity],
                    "message": {"text": text}}
    if d.span is not None:
        result["locations"] = [_sarif_location(d.span, d.label)]
    if d.labels:
        result["relatedLocations"] = [{"id": i, **_sarif_location(lab.span, lab.message)}
                                      for i, lab in enumerate(d.labels)]
    return result


def _sarif_location(span: Span, message: str) -> dict[str, Any]:
    region = {"startLine": span.line, "startColumn": span.column,
              "endLine": span.end_line, "endColumn": max(span.end_column, 1)}
    out: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": _uri(span.file)}, "region": region}}
    if message:
        out["message"] = {"text": message}
    return out


def _uri(file: str) -> str:
    """A relative path as a URI reference, an absolute one as a ``file:`` URI."""
    if os.path.isabs(file):
        return pathlib.Path(file).as_uri()
    return quote(file.replace(os.sep, "/"))


# ------------------------------------------------ GitHub workflow commands

_GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _github(d: Diagnostic) -> str:
    """``::error file=net.alls,line=3,col=28,endLine=3,endColumn=40,title=ALS203::message``.

    GitHub's end column is inclusive; a span's is exclusive.
    """
    props = {}
    if d.span is not None:
        s = d.span
        props = {"file": s.file, "line": s.line, "col": s.column, "endLine": s.end_line,
                 "endColumn": max(s.end_column - 1, s.column if s.end_line == s.line else 1)}
    props["title"] = d.code
    head = ",".join(f"{k}={_github_escape(str(v), True)}" for k, v in props.items())
    text = d.message + (f"\nhelp: {d.help}" if d.help else "")
    return f"::{_GITHUB_COMMAND[d.severity]} {head}::{_github_escape(text)}"


def _github_escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def _full(d: Diagnostic, lines: list[str] | None) -> str:
    head = f"{d.severity}[{d.code}]: {d.message}"
    if d.span is None:
        return head + (f"\n  = help: {d.help}" if d.help else "") + "\n"
    gutter = len(str(max([d.span.line] + [lab.span.line for lab in d.labels])))
    pad = " " * gutter
    out = [head, f"{pad}--> {d.span}"]
    if lines is not None and 0 < d.span.line <= len(lines):
        out.append(f"{pad} |")
        out.extend(_snippet(lines, d.span, d.label, "^", gutter))
        for lab in d.labels:
            if 0 < lab.span.line <= len(lines) and lab.span.file == d.span.file:
                same = lab.span.line == d.span.line
                snippet = _snippet(lines, lab.span, lab.message, "-", gutter, d.span.column if same else None)
                out.extend(snippet[1:] if lab.span.line == d.span.line else snippet)
    if d.help:
        out.append(f"{pad} = help: {d.help}")
    return "\n".join(out) + "\n"


def _snippet(lines: list[str], span: Span, label: str, mark: str, gutter: int, anchor: int | None = None) -> list[str]:
    """The source line of ``span`` and the marks under it; a line too long
    to show whole is cut to a window around ``anchor`` (default: the span)."""
    text = lines[span.line - 1].rstrip("\r").replace("\t", " ")
    start = span.column - 1
    centre = (anchor or span.column) - 1
    end = span.end_column - 1 if span.end_line == span.line else len(text)
    end = max(end, start + 1)
    shift = 0
    if len(text) > _WINDOW:
        shift = max(0, min(centre - 20, len(text) - _WINDOW))
        shown = text[shift : shift + _WINDOW]
        text = ("…" if shift else "") + shown + ("…" if shift + _WINDOW < len(lines[span.line - 1]) else "")
        shift -= 1 if shift else 0
    caret_start = max(0, start - shift)
    caret_len = max(1, min(end, shift + _WINDOW + 1) - max(start, shift))
    marks = " " * caret_start + mark * caret_len + (f" {label}" if label else "")
    return [f"{str(span.line).rjust(gutter)} | {text}", f"{' ' * gutter} | {marks}"]


def summary(diagnostics: Sequence[Diagnostic], files: int) -> str:
    """``found 2 errors, 1 warning in 3 files (4 notes)``; notes are infos."""
    counts: dict[str, int] = {}
    for d in diagnostics:
        counts[str(d.severity)] = counts.get(str(d.severity), 0) + 1
    parts = [f"{counts[k]} {k}{'s' if counts[k] != 1 else ''}" for k in ("error", "warning") if k in counts]
    noun = f"{files} file{'s' if files != 1 else ''}"
    notes = counts.get("info", 0)
    tail = f" ({notes} note{'s' if notes != 1 else ''})" if notes else ""
    if not parts:
        return f"no problems in {noun}{tail}"
    return f"found {', '.join(parts)} in {noun}{tail}"
