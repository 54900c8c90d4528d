"""Property tests: no input breaks the front end, and formatting is lossless."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alls

# ------------------------------------------------------- arbitrary text

_ALPHABET = st.sampled_from(list(string.printable) + ["\u201c", "\u2019", "\x00", "\ufffd", "é", "{", "}", "\r"])
_NOISE = st.text(_ALPHABET, max_size=200)
_LINES = st.lists(
    st.sampled_from([
        "quantization_param({conv*}, precision_mode=a16_w16)", "a(", ")", "[", "]", "x = ", "b(1, k=[2, 3])",
        '"str', "# comment", "", "pre_quantization_optimization(equalization, policy=enabled)", "c(k=1, 2)",
    ]) | _NOISE,
    max_size=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_NOISE, _LINES.map("\n".join)))
def test_arbitrary_text_raises_nothing_but_alls_error(text):
    try:
        script = alls.parse(text, "fuzz.alls")
    except alls.AllsError as error:
        assert error.diagnostics and all(d.code.startswith("ALS1") for d in error.diagnostics)
    else:
        assert alls.parse(alls.format_script(script), "fuzz.alls") == script
    diagnostics = alls.check(text, "fuzz.alls")
    for d in diagnostics:
        assert d.code in alls.CODES
        assert d.span is None or d.span.line >= 1
    for fmt in ("full", "concise", "json"):
        alls.render(diagnostics, {"fuzz.alls": text}, fmt)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_raise(data):
    script, diagnostics = alls.read_script(data, "bytes.alls")
    assert isinstance(script, alls.Script)
    alls.check(script)


# ------------------------------------------------ generated valid scripts

_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_\-]{0,6})?", fullmatch=True).filter(
    lambda s: s not in ("true", "false", "null")
)
_NUMBER = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["1e-5", "-1.5E+3", ".5", "0.00001"]),
)
_GLOB = st.sampled_from(["{*}", "{conv*}", "{net/ew_add*}", "{conv[0-9]*}", "{}", "{scope}/input_layer1"])
_SCALAR = st.one_of(_NAME, _NUMBER, _GLOB, st.sampled_from(["True", "false", "None", "null", '"a b.json"']))
_VALUE = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
                      max_leaves=8)
_SEP = st.sampled_from([", ", ",", " , ", ",\n    "])


@st.composite
def _statement(draw):
    positional = draw(st.lists(_VALUE, max_size=3))
    keywords = draw(st.lists(st.tuples(_NAME, _VALUE), max_size=3))
    args = positional + [f"{k}{draw(st.sampled_from(['=', ' = ']))}{v}" for k, v in keywords]
    sep = draw(_SEP)
    call = f"{draw(_NAME)}({sep.join(args)})"
    if draw(st.booleans()):
        call = draw(st.sampled_from(["t = ", "a, b = ", "{} = ", "ctx_0."])) + call
    comment = draw(st.sampled_from(["", "  # note", " #x"]))
    return call + comment


@st.composite
def _script(draw):
    lines = draw(st.lists(st.one_of(_statement(), st.sampled_from(["", "# heading", "   # indented"])), max_size=10))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    end = draw(st.sampled_from(["", newline]))
    return newline.join(lines) + end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_script())
def test_generated_scripts_round_trip_through_the_formatter(text):
    script = alls.parse(text, "gen.alls")
    formatted = alls.format_script(script)
    again = alls.parse(formatted, "gen.alls")
    assert again == script
    assert alls.format_script(again) == formatted
    assert len(again.comments) == len(script.comments)
