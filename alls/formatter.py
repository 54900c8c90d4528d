"""Format a script into its one canonical form.

The canonical form:

- one statement per line: ``targets = command(arg, key=value)``, with ``, ``
  between arguments, list items and targets, no spaces around a keyword's
  ``=``, and `` = `` after the targets;
- values keep their spelling (``1e-5`` stays ``1e-5``), except the constants,
  which become ``True``, ``False`` and ``None``;
- whole-line comments keep their text, without indentation or trailing
  blanks; a comment after a statement stays after it, two spaces away; a
  comment inside a multi-line statement moves to the line above it;
- each run of blank lines becomes one blank line; none at the start;
- ``\\n`` line endings, and one newline at the end of a non-empty file.

Formatting never changes what a script means: ``parse(format(x)) ==
parse(x)`` for every script that parses, and formatting is idempotent.
"""

from __future__ import annotations

from alls.nodes import Boolean, Call, Comment, Glob, ListValue, Null, Number, Script, Statement, String, Value, Word

__all__ = ["format_script", "format_value", "format_statement"]


def format_value(value: Value) -> str:
    """The canonical spelling of a value."""
    if type(value) is Word or type(value) is Glob or type(value) is Number:
        return value.text
    if type(value) is ListValue:
        return "[" + ", ".join(format_value(v) for v in value.items) + "]"
    if type(value) is String:
        return f'"{value.value}"'
    if type(value) is Boolean:
        return "True" if value.value else "False"
    if type(value) is Null:
        return "None"
    raise TypeError(f"not a value: {value!r}")


def format_call(call: Call) -> str:
    args = ", ".join(
        (f"{a.keyword.text}={format_value(a.value)}" if a.keyword is not None else format_value(a.value))
        for a in call.arguments
    )
    name = f"{call.receiver.text}.{call.name.text}" if call.receiver is not None else call.name.text
    return f"{name}({args})"


def format_statement(statement: Statement) -> str:
    """One statement on one line, without comments."""
    call = format_call(statement.call)
    if statement.targets:
        return ", ".join(t.text for t in statement.targets) + " = " + call
    return call


def format_script(script: Script) -> str:
    """The canonical text of ``script`` (which must have parsed cleanly)."""
    items = _layout(script)
    out: list[str] = []
    previous_end = None
    for start, end, text in items:
        if previous_end is not None and start - previous_end > 1:
            out.append("")
        out.append(text)
        previous_end = end
    return "\n".join(out) + "\n" if out else ""


def _layout(script: Script) -> list[tuple[int, int, str]]:
    """(first line, last line, text) of every output line, in source order."""
    comments = sorted(script.comments, key=lambda c: (c.span.line, c.span.column))
    statements = sorted(script.statements, key=lambda s: (s.span.line, s.span.column))
    items: list[tuple[int, int, str]] = []
    ci = 0
    for st in statements:
        first, last = st.span.line, st.span.end_line
        while ci < len(comments) and comments[ci].span.line < first:
            c = comments[ci]
            items.append((c.span.line, c.span.line, c.text))
            ci += 1
        hoisted: list[Comment] = []
        trailing: Comment | None = None
        while ci < len(comments) and comments[ci].span.line <= last:
            c = comments[ci]
            if c.span.line == last and c.span.column >= st.span.end_column:
                trailing = c
            else:
                hoisted.append(c)
            ci += 1
        for c in hoisted:
            items.append((first, first, c.text))
        text = format_statement(st)
        if trailing is not None:
            text += "  " + trailing.text
        items.append((first, last, text))
    for c in comments[ci:]:
        items.append((c.span.line, c.span.line, c.text))
    return items
