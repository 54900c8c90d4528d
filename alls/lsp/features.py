"""Diagnostics, hover, code actions and formatting for one analysed script.

Pure functions of the text, its `Analysis` and (when the script names one)
the model's `Graph`; the server (`alls.lsp.server`) only routes messages.
Positions in and out are the protocol's: 0-based lines, UTF-16 columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lsprotocol import types as lsp

import alls
from alls.catalogue import COMMANDS, Arg, Command
from alls.formatter import format_statement
from alls.lsp.complete import precision_doc
from alls.lsp.document import Analysis, from_utf16, to_utf16
from alls.recovery import split_statements
from alls.plan import LayerPlan
from alls.selectors import select
from alls.types import Enum, Layers, ListOf

# A quick fix: its title and its edits.
Fix = tuple[str, list[lsp.TextEdit]]

__all__ = ["lsp_diagnostics", "hover", "code_actions", "format_document", "format_range", "node_at"]

_SEVERITY = {
    alls.Severity.ERROR: lsp.DiagnosticSeverity.Error,
    alls.Severity.WARNING: lsp.DiagnosticSeverity.Warning,
    alls.Severity.INFO: lsp.DiagnosticSeverity.Information,
}
_TICKED = re.compile(r"`([^`]+)`")
_LISTED = 24  # layers listed in a selector's hover


# -------------------------------------------------------------- positions


def to_range(lines: list[str], span: alls.Span | None, fallback_line: int = 0) -> lsp.Range:
    """A span as a protocol range; no span: the whole of ``fallback_line``."""
    if span is None:
        line = min(fallback_line, len(lines) - 1)
        return lsp.Range(lsp.Position(line, 0), lsp.Position(line, to_utf16(lines[line], len(lines[line]))))
    return lsp.Range(_position(lines, span.line - 1, span.column - 1),
                     _position(lines, span.end_line - 1, span.end_column - 1))


def _position(lines: list[str], line: int, column: int) -> lsp.Position:
    if line >= len(lines):
        return lsp.Position(len(lines) - 1, to_utf16(lines[-1], len(lines[-1])))
    return lsp.Position(max(line, 0), to_utf16(lines[max(line, 0)], max(column, 0)))


def _contains(span: alls.Span, line: int, column: int) -> bool:
    """Whether 1-based ``line``/``column`` lies in ``span`` (its end included, as editors expect)."""
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


def lsp_diagnostics(analysis: Analysis, lines: list[str], uri: str, fallback_line: int = 0) -> list[lsp.Diagnostic]:
    """Every diagnostic of ``analysis`` as the protocol's, help on a second line."""
    out = []
    for d in analysis.diagnostics:
        related = [lsp.DiagnosticRelatedInformation(lsp.Location(uri, to_range(lines, lab.span)), lab.message)
                   for lab in d.labels if d.span is not None and lab.span.file == d.span.file]
        message = d.message + (f"\nhelp: {d.help}" if d.help else "")
        out.append(lsp.Diagnostic(
            to_range(lines, d.span, fallback_line), message, severity=_SEVERITY[d.severity], code=d.code,
            source="alls", related_information=related or None, data={"label": d.label, "help": d.help},
        ))
    return out


# ------------------------------------------------------------------- hover


def node_at(script: alls.Script, line: int, column: int
            ) -> tuple[alls.Statement, alls.Argument | None, alls.Name | alls.Value | None] | None:
    """(statement, argument or None, node) under 1-based ``line``/``column``, or None."""
    for st in script.statements:
        if not _contains(st.span, line, column):
            continue
        call = st.call
        for name in (call.name, call.receiver, *st.targets):
            if name is not None and _contains(name.span, line, column):
                return st, None, name
        for arg in call.arguments:
            if arg.keyword is not None and _contains(arg.keyword.span, line, column):
                return st, arg, arg.keyword
            if _contains(arg.value.span, line, column):
                items = arg.value.items if isinstance(arg.value, alls.ListValue) else (arg.value,)
                item = next((i for i in items if _contains(i.span, line, column)), arg.value)
                return st, arg, item
        return st, None, None
    return None


def hover(text: str, analysis: Analysis, line: int, character: int, graph: alls.Graph | None) -> lsp.Hover | None:
    """The catalogue doc of a command, keyword or value; a selector's layers; a layer's plan row."""
    lines = text.split("\n")
    if line >= len(lines):
        return None
    found = node_at(analysis.script, line + 1, from_utf16(lines[line], character) + 1)
    if found is None:
        return None
    st, arg, node = found
    if node is None:
        return None
    spec, sub = _specs(st)
    if node is st.call.name:
        body = _command_doc(spec) if spec else None
    elif isinstance(node, alls.Name) and arg is not None:
        owner = sub or spec
        known = owner.keyword(node.text) if owner else None
        body = _keyword_doc(known) if known else None
    elif arg is not None:
        body = _value_doc(st, arg, node, spec, sub, analysis, graph)
    else:
        body = None
    if not body:
        return None
    return lsp.Hover(contents=lsp.MarkupContent(lsp.MarkupKind.Markdown, body), range=to_range(lines, node.span))


def _specs(st: alls.Statement) -> tuple[Command | None, Command | None]:
    spec = COMMANDS.get(st.command)
    if spec is None or spec.subcommands is None:
        return spec, None
    first = st.call.positional[0].value if st.call.positional else None
    return spec, spec.subcommands.get(first.text) if isinstance(first, alls.Word) else None


def _command_doc(c: Command) -> str:
    kind = "quantization command" if c.interpreted else "compiler command, not applied by the emulator"
    out = [f"**{c.name}** ({kind})", "", c.doc]
    if c.positional:
        out += ["", "positional: " + ", ".join(f"`{a.name}`" for a in c.positional)]
    if c.subcommands:
        out += ["", "sub-commands: " + ", ".join(f"`{s}`" for s in c.subcommands)]
    keywords = [k for k, a in c.keywords.items() if a.deprecated is None]
    if keywords:
        out += ["", "keywords: " + ", ".join(f"`{k}`" for k in keywords)]
    return "\n".join(out)


def _keyword_doc(a: Arg) -> str:
    text = f"**{a.name}**: {a.doc}\n\ntakes {a.type.describe()}"
    if a.default is not None:
        text += f"; default `{a.default}`"
    if a.deprecated is not None:
        text += f"\n\ndeprecated: write `{a.deprecated.replacement}`"
    return text


def _value_doc(st: alls.Statement, arg: alls.Argument, node: alls.Name | alls.Value | None, spec: Command | None,
               sub: Command | None, analysis: Analysis, graph: alls.Graph | None) -> str | None:
    if arg.keyword is None and spec is not None and spec.subcommands and arg is st.call.positional[0]:
        return _command_doc(sub) if sub else None
    slot = _slot(st, arg, sub or spec)
    if slot is None:
        return None
    kind = slot.type.item if isinstance(slot.type, ListOf) else slot.type
    if isinstance(kind, Layers):
        if graph is None:
            return f"`{slot.name}`: {slot.doc}\n\nname the model on the first line to see the layers it selects: " \
                   "`# alls: model=path/to/model.onnx`"
        return _selector_doc(node, graph, analysis.plan)
    if isinstance(kind, Enum) and isinstance(node, alls.Word):
        words = precision_doc(node.text) if slot.name == "precision_mode" else ""
        head = f"**{node.text}**" + (f": {words}" if words else "")
        default = " (the default)" if slot.default == node.text else ""
        return f"{head}{default}\n\nvalue of `{slot.name}`: {slot.doc}\n\n{kind.describe()}"
    return f"`{slot.name}`: {slot.doc}"


def _slot(st: alls.Statement, arg: alls.Argument, spec: Command | None) -> Arg | None:
    if spec is None:
        return None
    if arg.keyword is not None:
        return spec.keyword(arg.keyword.text)
    positional = list(st.call.positional)
    if COMMANDS.get(st.command) is not spec:  # a sub-command: the first positional names it
        positional = positional[1:]
    slots = spec.bind(len(positional))
    return next((slot for a, slot in zip(positional, slots) if a is arg), None)


def _selector_doc(node: object, graph: alls.Graph, plan: alls.Plan | None) -> str | None:
    if not isinstance(node, (alls.Word, alls.Glob)):
        return None
    matches, _ = select(node, graph)
    layers = [layer for m in matches for layer in m.layers]
    if not layers:
        return f"`{node.text}` matches no layer of `{graph.name}`"
    if isinstance(node, alls.Word) and len(layers) == 1 and plan is not None:
        return plan_row(plan, layers[0].name)
    rows = [f"`{node.text}` matches {len(layers)} layer{'s' if len(layers) != 1 else ''} of `{graph.name}`:", ""]
    for layer in layers[:_LISTED]:
        bits = f" {plan[layer.name].precision_mode}" if plan is not None else ""
        rows.append(f"- `{layer.short_name}` ({layer.kind}{bits})")
    if len(layers) > _LISTED:
        rows.append(f"- and {len(layers) - _LISTED} more")
    return "\n".join(rows)


def plan_row(plan: alls.Plan, name: str) -> str:
    """A layer's plan as a table: each field, its value, and the line that set it."""
    layer = plan[name]
    rows = [f"**{layer.name}** ({layer.kind})", "", "| field | value | set by |", "|---|---|---|"]
    for field in LayerPlan.FIELDS:
        source = layer.source(field)
        where = source.where() + (f": `{_short(source.text)}`" if source.span is not None else "")
        rows.append(f"| {field} | `{_value(getattr(layer, field))}` | {where} |")
    return "\n".join(rows)


def _value(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------ code actions


def code_actions(text: str, analysis: Analysis, uri: str, wanted: lsp.Range) -> list[lsp.CodeAction]:
    """Quick fixes for the diagnostics that touch ``wanted``: did-you-mean,
    the current form of a deprecated spelling, and the advice's lines."""
    lines = text.split("\n")
    out: list[lsp.CodeAction] = []
    for d, protocol in zip(analysis.diagnostics, lsp_diagnostics(analysis, lines, uri)):
        if not _overlaps(protocol.range, wanted):
            continue
        for title, edits in _fixes(d, analysis.script, lines):
            out.append(lsp.CodeAction(
                title, kind=lsp.CodeActionKind.QuickFix, diagnostics=[protocol],
                is_preferred=not out, edit=lsp.WorkspaceEdit(changes={uri: edits})))
    return out


def _overlaps(a: lsp.Range, b: lsp.Range) -> bool:
    def key(p: lsp.Position) -> tuple[int, int]:
        return p.line, p.character
    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def _fixes(d: alls.Diagnostic, script: alls.Script, lines: list[str]) -> Iterator[Fix]:
    if d.span is not None:
        hit = re.search(r"did you mean (.+)\?", d.help)
        if hit is not None:
            for word in _TICKED.findall(hit.group(1)):
                yield f"Replace with `{word}`", [lsp.TextEdit(to_range(lines, d.span), word)]
    if d.code == "ALS209" and d.span is not None:
        fix = _current_form(d, script, lines)
        if fix is not None:
            yield fix
    if d.code.startswith("ALS31"):
        added = [t for t in _TICKED.findall(d.help) if _is_statement(t)]
        if added:
            yield _add_lines(added, d, script, lines)


def _current_form(d: alls.Diagnostic, script: alls.Script, lines: list[str]) -> Fix | None:
    """``use_16bit_bias=True`` -> ``bias_mode=...``; an old clipping pair -> its own statement."""
    if d.span is None:
        return None
    found = node_at(script, d.span.line, d.span.column)
    if found is None or found[1] is None:
        return None
    st, arg, _ = found
    assert arg is not None and arg.keyword is not None, "ALS209 points at a keyword argument"
    replacement = _TICKED.search(d.help)
    if replacement is None:
        return None
    new = replacement.group(1)
    if "=" in new and "(" not in new:
        return f"Write `{new}`", [lsp.TextEdit(to_range(lines, arg.span), new)]
    kind = arg.keyword.text.split("_clipping")[0]
    old = {f"{kind}_clipping_mode", f"{kind}_clipping_values"}
    kept = tuple(a for a in st.call.arguments if a.keyword is None or a.keyword.text not in old)
    call = alls.Call(st.call.name, kept, st.call.receiver, st.call.span)
    statement = alls.Statement(st.targets, call, st.span)
    text = (format_statement(statement) + "\n" if any(a.keyword for a in kept) else "") + new
    return f"Write `{_short(new, 60)}`", [lsp.TextEdit(to_range(lines, st.span), text)]


def _is_statement(text: str) -> bool:
    try:
        script = alls.parse(text)
    except alls.AllsError:
        return False
    return len(script.statements) == 1 and script.statements[0].command in COMMANDS


def _add_lines(added: list[str], d: alls.Diagnostic, script: alls.Script, lines: list[str]) -> Fix:
    """Insert the advice's statements after the statement the advice points at (or at the end)."""
    after = None
    if d.span is not None:
        found = node_at(script, d.span.line, d.span.column)
        after = found[0].span.end_line if found else d.span.end_line
    if after is None or after >= len(lines):
        last = len(lines) - 1
        prefix = "\n" if lines[last] else ""
        at = lsp.Position(last, to_utf16(lines[last], len(lines[last])))
        edit = lsp.TextEdit(lsp.Range(at, at), prefix + "\n".join(added) + ("\n" if not prefix else ""))
    else:
        at = lsp.Position(after, 0)
        edit = lsp.TextEdit(lsp.Range(at, at), "\n".join(added) + "\n")
    title = "Add " + " and ".join(f"`{_short(a, 60)}`" for a in added)
    return title, [edit]


# --------------------------------------------------------------- formatting


def format_document(text: str, analysis: Analysis) -> list[lsp.TextEdit] | None:
    """One edit that replaces the text with its canonical form; None when it
    has syntax errors (nothing is rewritten), [] when it is already canonical."""
    if not analysis.clean:
        return None
    formatted = alls.format_script(analysis.script)
    if formatted == text:
        return []
    lines = text.split("\n")
    end = lsp.Position(len(lines) - 1, to_utf16(lines[-1], len(lines[-1])))
    return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), formatted)]


def format_range(text: str, wanted: lsp.Range) -> list[lsp.TextEdit] | None:
    """Format the whole lines of the statements ``wanted`` touches; None on syntax errors."""
    lines = text.split("\n")
    first, last = wanted.start.line, max(wanted.end.line, wanted.start.line)
    if wanted.end.character == 0 and last > first:
        last -= 1
    for line_no, start, end in _chunks(text):
        chunk_last = line_no + text.count("\n", start, end) - 1
        if line_no - 1 <= last and chunk_last >= first:
            first, last = min(first, line_no - 1), max(last, chunk_last)
    last = min(last, len(lines) - 1)
    segment = "\n".join(lines[first:last + 1])
    try:
        formatted = alls.format_text(segment)
    except alls.AllsError:
        return None
    formatted = formatted.rstrip("\n")
    if formatted == segment:
        return []
    last_end = lsp.Position(last, to_utf16(lines[last], len(lines[last])))
    return [lsp.TextEdit(lsp.Range(lsp.Position(first, 0), last_end), formatted)]


def _chunks(text: str) -> list[tuple[int, int, int]]:
    """(first line, start, end) of each statement chunk, cut as error recovery cuts them."""
    return [(first, start, end) for first, start, end, _ in split_statements(text)]
