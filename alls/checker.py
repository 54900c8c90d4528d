"""Check a parsed script against the catalogue: names, keywords and values.

`check` takes a `Script` (or text) and returns every diagnostic it finds,
sorted by position. It knows nothing of models: selectors are checked for
shape here and bound to layers by the resolver.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

from alls.catalogue import COMMANDS, Arg, Command
from alls.diagnostics import Diagnostic, Label, Severity, suggestion
from alls.nodes import Argument, ListValue, Number, Script, Statement, Word
from alls.types import show

__all__ = ["check_script"]

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO

_SEVERITY = {"ALS305": W}


def check_script(script: Script) -> list[Diagnostic]:
    """Every catalogue diagnostic of ``script``, in source order."""
    out: list[Diagnostic] = []
    not_applied: dict[str, list[Statement]] = {}
    for statement in script.statements:
        out.extend(_check_statement(statement, not_applied))
    for key, statements in not_applied.items():
        first = statements[0]
        more = f" ({len(statements)} statements)" if len(statements) > 1 else ""
        out.append(Diagnostic(
            "ALS208", I, f"`{key}` is not applied by the emulator{more}", first.call.name.span,
            "not emulated", "it is kept for the compiler; `alls quantize` does not model it",
        ))
    out.sort(key=Diagnostic.sort_key)
    return out


def _check_statement(st: Statement, not_applied: dict[str, list[Statement]]) -> Iterator[Diagnostic]:
    call = st.call
    name = call.name.text
    spec = COMMANDS.get(name)
    if spec is None:
        yield _unknown_command(st)
        return
    lo, hi = spec.targets
    if st.targets and hi is not None and len(st.targets) > hi:
        message = (f"`{name}` adds no layer, so it takes no assignment target" if hi == 0
                   else f"`{name}` takes at most {hi} assignment targets")
        yield Diagnostic(
            "ALS210", E, message, st.targets[0].span, "unexpected target",
            f"remove `{', '.join(t.text for t in st.targets)} =`",
        )
    positional = list(call.positional)
    if spec.subcommands is not None:
        sub = yield from _subcommand(st, spec, positional)
        if sub is None:
            return
        key, spec = f"{name}({sub.name})", sub
        positional = positional[1:]
    else:
        key = name
    if not spec.interpreted:
        not_applied.setdefault(key, []).append(st)
    yield from _check_keywords(st, spec, key)
    yield from _check_positional(st, spec, positional, key)
    for validator in spec.validators:
        yield from _VALIDATORS[validator](st, spec)


def _unknown_command(st: Statement) -> Diagnostic:
    name = st.call.name.text
    hint = suggestion(name, COMMANDS)
    if hint:
        return Diagnostic("ALS202", E, f"unknown command `{name}`", st.call.name.span, "not a known command", hint)
    return Diagnostic(
        "ALS212", W, f"unknown command `{name}`; the emulator ignores it", st.call.name.span,
        "not in the catalogue", "check the spelling; `alls explain ALS212` says more",
    )


def _subcommand(st: Statement, spec: Command, positional: list[Argument]) -> Generator[Diagnostic, None, Command | None]:
    assert spec.subcommands is not None, "called for a command with sub-commands"
    if not positional:
        choices = ", ".join(spec.subcommands)
        yield Diagnostic(
            "ALS206", E, f"`{spec.name}` needs a sub-command as its first argument", st.call.span,
            "no sub-command", f"one of: {choices}",
        )
        return None
    first = positional[0].value
    if not isinstance(first, Word):
        yield Diagnostic(
            "ALS302", E, f"expected a sub-command name, found `{show(first)}`", first.span,
            "not a sub-command", "one of: " + ", ".join(spec.subcommands),
        )
        return None
    sub = spec.subcommands.get(first.text)
    if sub is None:
        hint = suggestion(first.text, spec.subcommands)
        choices = "one of: " + ", ".join(spec.subcommands)
        yield Diagnostic(
            "ALS204", E, f"unknown sub-command `{first.text}` of `{spec.name}`", first.span,
            "not a known sub-command", hint or choices,
        )
        return None
    return sub


def _check_keywords(st: Statement, spec: Command, key: str) -> Iterator[Diagnostic]:
    seen: dict[str, Argument] = {}
    for arg in st.call.keywords:
        word = arg.key.text
        if word in seen:
            yield Diagnostic(
                "ALS205", E, f"keyword `{word}` is given twice", arg.key.span, "repeated here",
                "keep one of them", (Label(seen[word].key.span, "first given here"),),
            )
            continue
        seen[word] = arg
        known = spec.keyword(word)
        if known is None:
            if spec.keywords or not spec.open:
                yield _unknown_keyword(arg, spec, key)
            continue
        if known.deprecated is not None and not _reported_with_its_pair(word, seen):
            yield _deprecated(st, arg, known)
        yield from _value_problems(arg, known)


def _reported_with_its_pair(word: str, seen: dict[str, Argument]) -> bool:
    """An old ``*_clipping_values`` is reported with its ``*_clipping_mode``."""
    return word.endswith("_clipping_values") and word.replace("_values", "_mode") in seen


def _unknown_keyword(arg: Argument, spec: Command, key: str) -> Diagnostic:
    word = arg.key.text
    hint = suggestion(word, [k for k, a in spec.keywords.items() if a.deprecated is None])
    listed = ", ".join(k for k, a in spec.keywords.items() if a.deprecated is None)
    help_text = hint or f"known keywords: {listed}"
    if spec.open:
        return Diagnostic(
            "ALS203", W, f"`{key}` has no keyword `{word}` in the catalogue; it is passed on unchecked",
            arg.key.span, "unknown keyword", help_text,
        )
    return Diagnostic("ALS203", E, f"`{key}` has no keyword `{word}`", arg.key.span, "unknown keyword", help_text)


def _deprecated(st: Statement, arg: Argument, known: Arg) -> Diagnostic:
    assert known.deprecated is not None, "called for a deprecated keyword"
    replacement = known.deprecated.replacement
    word = arg.key.text
    if word == "use_16bit_bias":
        mode = "double_scale_initialization" if getattr(arg.value, "value", True) else "single_scale_decomposition"
        replacement = f"bias_mode={mode}"
    elif word.endswith(("_clipping_mode", "_clipping_values")):
        replacement = _clipping_replacement(st, word.split("_clipping")[0])
    return Diagnostic(
        "ALS209", W, f"`{word}` is deprecated", arg.key.span, "old spelling", f"write `{replacement}`",
    )


def _clipping_replacement(st: Statement, kind: str) -> str:
    values = {a.key.text: show(a.value) for a in st.call.keywords}
    layers = show(st.call.positional[0].value) if st.call.positional else "..."
    mode = values.get(f"{kind}_clipping_mode", "manual")
    clip = values.get(f"{kind}_clipping_values", "[lo, hi]")
    return f"pre_quantization_optimization({kind}_clipping, layers={layers}, mode={mode}, clipping_values={clip})"


def _value_problems(arg: Argument, known: Arg) -> Iterator[Diagnostic]:
    name = arg.key.text if arg.keyword is not None else known.name
    for code, span, message, help_text in known.type.check(arg.value):
        if not help_text and code in ("ALS302", "ALS303"):
            help_text = f"`{name}` takes {known.type.describe()}"
        yield Diagnostic(code, _SEVERITY.get(code, E), message, span, f"`{name}`", help_text)


def _check_positional(st: Statement, spec: Command, positional: list[Argument], key: str) -> Iterator[Diagnostic]:
    if spec.open and not spec.positional:
        return
    slots = spec.bind(len(positional))
    for arg, slot in zip(positional, slots):
        yield from _value_problems(arg, slot)
    if len(positional) > len(spec.positional):
        extra = positional[len(spec.positional)]
        takes = len(spec.positional)
        yield Diagnostic(
            "ALS207", E, f"`{key}` takes {takes} positional argument{'s' if takes != 1 else ''}, found {len(positional)}",
            extra.span, "extra argument",
            "put several layers in one list: `[conv1, conv2]`" if takes and spec.positional[0].name == "layers" else "",
        )
    bound = {slot.name for slot in slots}
    for slot in spec.positional:
        if slot.required and slot.name not in bound:
            yield Diagnostic(
                "ALS206", E, f"`{key}` needs its `{slot.name}` argument", st.call.span, f"no `{slot.name}`",
                f"`{slot.name}`: {slot.doc}",
            )


# ---------------------------------------------------- cross-argument checks


def _keyword_values(st: Statement) -> dict[str, Argument]:
    out: dict[str, Argument] = {}
    for arg in st.call.keywords:
        out.setdefault(arg.key.text, arg)
    return out


def _check_clipping(st: Statement, spec: Command) -> Iterator[Diagnostic]:
    kw = _keyword_values(st)
    mode_arg, values = kw.get("mode"), kw.get("clipping_values")
    mode = mode_arg.value.text if mode_arg is not None and isinstance(mode_arg.value, Word) else None
    if mode_arg is not None and mode in ("manual", "percentile", "percentile_force") and values is None:
        yield Diagnostic(
            "ALS306", E, f"`mode={mode}` needs `clipping_values=[lo, hi]`", mode_arg.span, "no clipping_values",
            "for example `clipping_values=[0.01, 99.99]`" if mode != "manual" else "for example `clipping_values=[-4.0, 6.0]`",
        )
    if mode in ("percentile", "percentile_force") and values is not None and isinstance(values.value, ListValue):
        items = values.value.items
        if len(items) == 2 and isinstance(items[0], Number) and isinstance(items[1], Number):
            lo, hi = items[0].value, items[1].value
            if lo < hi and (lo < 0 or hi > 100):
                yield Diagnostic(
                    "ALS304", E, f"percentiles `{show(values.value)}` must lie within 0..100", values.value.span,
                    f"`mode={mode}`", "for example `clipping_values=[0.01, 99.99]`",
                )


def _check_loss_lists(st: Statement, spec: Command) -> Iterator[Diagnostic]:
    kw = _keyword_values(st)
    lists = {k: kw[k] for k in ("loss_layer_names", "loss_types", "loss_factors") if k in kw}
    lengths = {k: len(a.value.items) for k, a in lists.items() if isinstance(a.value, ListValue)}
    if len(set(lengths.values())) > 1:
        first, *rest = lengths
        for k in rest:
            if lengths[k] != lengths[first]:
                yield Diagnostic(
                    "ALS306", E, f"`{k}` has {lengths[k]} items but `{first}` has {lengths[first]}", lists[k].value.span,
                    "length differs", "give one loss type and one factor per loss layer",
                    (Label(lists[first].value.span, f"{lengths[first]} items"),),
                )


def _check_normalization(st: Statement, spec: Command) -> Iterator[Diagnostic]:
    pos = st.call.positional
    if len(pos) >= 2 and isinstance(pos[0].value, ListValue) and isinstance(pos[1].value, ListValue):
        mean, std = pos[0].value, pos[1].value
        if len(mean.items) != len(std.items):
            yield Diagnostic(
                "ALS306", E, f"mean has {len(mean.items)} values but std has {len(std.items)}", std.span,
                "length differs", "give one mean and one std per input channel", (Label(mean.span, "mean"),),
            )


def _check_old_spellings(st: Statement, spec: Command) -> Iterator[Diagnostic]:
    """Old and new spellings of one setting must not contradict each other."""
    kw = _keyword_values(st)
    old, new = kw.get("use_16bit_bias"), kw.get("bias_mode")
    if old is not None and new is not None:
        yield Diagnostic(
            "ALS306", E, "`use_16bit_bias` and `bias_mode` set the same thing", old.key.span, "old spelling",
            "keep `bias_mode` alone", (Label(new.key.span, "current spelling"),),
        )
    for kind in ("activation", "weights"):
        mode = kw.get(f"{kind}_clipping_mode")
        if mode is not None and isinstance(mode.value, Word) and mode.value.text != "disabled" \
                and mode.value.text != "mmse" and mode.value.text != "mmse_if4b" \
                and f"{kind}_clipping_values" not in kw:
            yield Diagnostic(
                "ALS306", E, f"`{kind}_clipping_mode={mode.value.text}` needs `{kind}_clipping_values=[lo, hi]`",
                mode.span, "no clipping values", f"write `{_clipping_replacement(st, kind)}`",
            )


_VALIDATORS = {
    "old_spellings": _check_old_spellings,
    "clipping": _check_clipping,
    "loss_lists": _check_loss_lists,
    "normalization": _check_normalization,
}
