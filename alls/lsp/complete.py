"""Completion: what can be written at the cursor, from the catalogue and the model.

`cursor_context` reads the text before the cursor (within its statement)
and says where the cursor stands: at a command name, at a sub-command, at
an argument (a keyword or a positional value), or at the value of a
keyword. `complete` turns that into items: commands, sub-commands and
keywords with their catalogue docs, enum values, and, when the script is
bound to a model, its layer names and glob suggestions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsprotocol import types as lsp

import alls
from alls.catalogue import COMMANDS, Arg, Command
from alls.lsp.document import to_utf16
from alls.recovery import split_statements
from alls.types import Bool, Enum, Layers, ListOf

__all__ = ["Context", "cursor_context", "complete", "layer_globs", "precision_doc"]

_WORD_TAIL = re.compile(r"[\w./*?{}\-]*\Z")
_KEYWORD = re.compile(r"\s*([A-Za-z_]\w*)\s*=")
_CALLEE = re.compile(r"([A-Za-z_][\w.]*)\s*\Z")
_PRECISION = re.compile(r"a(\d+)_w(\d+)(?:_a(\d+))?\Z")


@dataclass(frozen=True)
class Context:
    """Where the cursor stands, as completion needs it.

    ``command`` is the call the cursor is inside (None at statement level);
    ``previous`` the arguments before the current one, as (keyword or None,
    text); ``keyword`` the keyword whose value is being written; ``prefix``
    the partial word before the cursor, which starts at column ``start``.
    """

    command: str | None
    previous: tuple[tuple[str | None, str], ...]
    keyword: str | None
    prefix: str
    start: int
    in_comment: bool = False
    in_list: bool = False

    @property
    def positional_index(self) -> int:
        return sum(1 for key, _ in self.previous if key is None)

    @property
    def given(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.previous if key is not None)


def cursor_context(text: str, line: int, column: int) -> Context:
    """The context at 0-based ``line`` and character ``column`` of ``text``."""
    lines = text.split("\n")
    line = min(max(line, 0), len(lines) - 1)
    column = min(max(column, 0), len(lines[line]))
    offset = sum(len(x) + 1 for x in lines[:line]) + column
    start = offset - column
    for _, chunk_start, chunk_end in _chunks(text):
        if chunk_start <= offset <= chunk_end:
            start = chunk_start
            break
    before = text[start:offset]
    tail = _WORD_TAIL.search(before)
    assert tail is not None, "the pattern matches the empty tail at least"
    prefix = tail.group()
    word_start = column - len(prefix)
    call, arguments, in_comment, in_list = _scan(before)
    if in_comment:
        return Context(None, (), None, "", column, True)
    if call is None:
        return Context(None, (), None, prefix, word_start)
    callee = _CALLEE.search(before[:call])
    command = callee.group(1).rsplit(".", 1)[-1] if callee else None
    *done, current = arguments
    previous = tuple(_argument(before[a:b]) for a, b in done)
    key = _KEYWORD.match(before[current[0]:current[1]])
    return Context(command, previous, key.group(1) if key else None, prefix, word_start, in_list=in_list)


def _scan(before: str) -> tuple[int | None, list[tuple[int, ...]], bool, bool]:
    """(offset of the call's `(` or None, the argument slices of the call,
    whether the cursor is in a comment, whether it is inside a list)."""
    stack: list[int] = []
    call = None
    args: list[list[int]] = []
    in_string = in_comment = False
    for i, ch in enumerate(before):
        if in_comment:
            in_comment = ch != "\n"
        elif ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "#":
            in_comment = True
        elif ch in "([":
            stack.append(i)
            if ch == "(" and len(stack) == 1:
                call, args = i, [[i + 1, len(before)]]
        elif ch in ")]" and stack:
            stack.pop()
            if not stack:
                call, args = None, []
        elif ch == "," and len(stack) == 1 and call is not None:
            args[-1][1] = i
            args.append([i + 1, len(before)])
    return call, [tuple(a) for a in args], in_comment, len(stack) > 1


def _argument(text: str) -> tuple[str | None, str]:
    key = _KEYWORD.match(text)
    if key is not None:
        return key.group(1), text[key.end():].strip()
    return None, text.strip()


# ------------------------------------------------------------------- items


def complete(text: str, line: int, column: int, graph: alls.Graph | None) -> list[lsp.CompletionItem]:
    """The completion items at 0-based ``line`` and character ``column``."""
    ctx = cursor_context(text, line, column)
    if ctx.in_comment:
        return []
    line_text = text.split("\n")[line] if line < text.count("\n") + 1 else ""
    edit_range = lsp.Range(lsp.Position(line, to_utf16(line_text, ctx.start)),
                           lsp.Position(line, to_utf16(line_text, ctx.start + len(ctx.prefix))))
    items = _items(ctx, graph)
    for item in items:
        item.text_edit = lsp.TextEdit(edit_range, item.insert_text or item.label)
        item.insert_text = None
    return items


def _items(ctx: Context, graph: alls.Graph | None) -> list[lsp.CompletionItem]:
    if ctx.command is None:
        return [_command_item(c) for c in COMMANDS.values()]
    spec = COMMANDS.get(ctx.command)
    if spec is None:
        return []
    if spec.subcommands is not None:
        if ctx.positional_index == 0 and ctx.keyword is None:
            return [_command_item(c, lsp.CompletionItemKind.Module) for c in spec.subcommands.values()]
        first = next((value for key, value in ctx.previous if key is None), "")
        spec = spec.subcommands.get(first)
        if spec is None:
            return []
        index = ctx.positional_index - 1
    else:
        index = ctx.positional_index
    if ctx.keyword is not None:
        arg = spec.keyword(ctx.keyword)
        return _value_items(arg, graph) if arg is not None else []
    items = [] if ctx.in_list else [
        _keyword_item(a) for a in spec.keywords.values() if a.deprecated is None and a.name not in ctx.given]
    if index < len(spec.positional) and not ctx.given:
        slots = list(spec.positional[index:index + 1])
        if index == 0 and not slots[0].required and len(spec.positional) > 1:
            slots.append(spec.positional[1])  # an optional leading argument may be left out
        items = [item for slot in slots for item in _value_items(slot, graph)] + items
    return items


def _command_item(c: Command, kind: lsp.CompletionItemKind = lsp.CompletionItemKind.Function) -> lsp.CompletionItem:
    detail = "sub-command" if kind is lsp.CompletionItemKind.Module else (
        "quantization command" if c.interpreted else "compiler command (not applied by the emulator)")
    return lsp.CompletionItem(c.name, kind=kind, detail=detail, documentation=_markdown(c.doc))


def _keyword_item(a: Arg) -> lsp.CompletionItem:
    default = f"\n\ndefault: `{_show(a.default)}`" if a.default is not None else ""
    return lsp.CompletionItem(
        a.name, kind=lsp.CompletionItemKind.Property, detail=a.type.describe().replace("`", ""),
        documentation=_markdown(a.doc + default), insert_text=f"{a.name}=",
    )


def _value_items(arg: Arg, graph: alls.Graph | None) -> list[lsp.CompletionItem]:
    kind = arg.type.item if isinstance(arg.type, ListOf) else arg.type
    if isinstance(kind, Enum):
        return [_enum_item(arg, value) for value in kind.values]
    if isinstance(kind, Bool):
        return [_enum_item(arg, value) for value in ("True", "False")]
    if isinstance(kind, Layers) and graph is not None:
        return layer_items(graph)
    return []


def _enum_item(arg: Arg, value: str) -> lsp.CompletionItem:
    is_default = _show(arg.default) == value
    doc = precision_doc(value) if arg.name == "precision_mode" else ""
    text = (doc + "\n\n" if doc else "") + f"`{arg.name}`: {arg.doc}" + ("\n\nthe default" if is_default else "")
    return lsp.CompletionItem(value, kind=lsp.CompletionItemKind.EnumMember,
                              detail=f"{arg.name}" + (" (default)" if is_default else ""),
                              documentation=_markdown(text), sort_text=("0" if is_default else "1") + value)


def precision_doc(mode: str) -> str:
    """``a16_w8`` as words: the bits of input activations, weights and outputs."""
    m = _PRECISION.match(mode)
    if m is None:
        return ""
    a, w, out = m.groups()
    return f"{a}-bit input activations, {w}-bit weights, {out or a}-bit output activations"


def layer_items(graph: alls.Graph) -> list[lsp.CompletionItem]:
    """The layers of ``graph`` by short name, then glob suggestions by kind."""
    items = []
    for layer in graph:
        shape = "x".join(str(d) for d in layer.output_shape)
        items.append(lsp.CompletionItem(
            layer.short_name, kind=lsp.CompletionItemKind.Variable, detail=f"{layer.kind} {shape}",
            documentation=_markdown(f"`{layer.name}`: {layer.op}, output {shape}"),
            sort_text="2" + layer.short_name))
    for pattern, names in layer_globs(graph):
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        items.append(lsp.CompletionItem(
            pattern, kind=lsp.CompletionItemKind.Constant, detail=f"{len(names)} layers",
            documentation=_markdown(f"matches {shown}"), sort_text="3" + pattern, filter_text=pattern))
    return items


def layer_globs(graph: alls.Graph) -> list[tuple[str, list[str]]]:
    """``{conv*}``-style globs, one per layer kind prefix with two or more layers, and ``{*}``."""
    groups: dict[str, list[str]] = {}
    for layer in graph:
        stem = layer.short_name.rstrip("0123456789")
        if stem and stem != layer.short_name:
            groups.setdefault(stem, []).append(layer.short_name)
    out = [(f"{{{stem}*}}", names) for stem, names in groups.items() if len(names) > 1]
    out.append(("{*}", [layer.short_name for layer in graph]))
    return out


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return "" if value is None else str(value)


def _markdown(text: str) -> lsp.MarkupContent:
    return lsp.MarkupContent(lsp.MarkupKind.Markdown, text)


def _chunks(text: str) -> list[tuple[int, int, int]]:
    """(first line, start, end) of each statement chunk, cut as error recovery cuts them."""
    return [(first, start, end) for first, start, end, _ in split_statements(text)]
