"""The parser: statement forms, values, spans, layout, and syntax errors."""

from __future__ import annotations

import pytest

import alls
from alls import Boolean, Glob, ListValue, Null, Number, String, Word


def one(text: str) -> alls.Statement:
    script = alls.parse(text, "t.alls")
    assert len(script.statements) == 1
    return script.statements[0]


def values(text: str):
    return [a.value for a in one(f"cmd({text})\n").call.arguments]


# ------------------------------------------------------------ statement forms


def test_call_without_arguments():
    st = one("set_input_mask_to_softmax()")
    assert st.command == "set_input_mask_to_softmax" and st.call.arguments == () and st.targets == ()


def test_single_and_multiple_targets():
    st = one("a, b-1, net/c = defuse(conv1, 2)")
    assert [t.text for t in st.targets] == ["a", "b-1", "net/c"]
    assert st.command == "defuse"


def test_scoped_and_brace_targets():
    assert one("yolo/normalization1 = normalization([0], [1])").targets[0].text == "yolo/normalization1"
    assert one("{} = defuse_block(matmul1, defuse_count=4)").targets[0].text == "{}"


def test_method_call_splits_receiver_and_name():
    call = one("yolov11m_context_0.place(1, [conv3, conv4])").call
    assert call.receiver.text == "yolov11m_context_0" and call.name.text == "place"
    assert call.name.span.column == len("yolov11m_context_0.") + 1


def test_keywords_and_positionals():
    call = one("quantization_param({conv*}, precision_mode=a16_w16)").call
    assert [a.keyword.text if a.keyword else None for a in call.arguments] == [None, "precision_mode"]


def test_spaces_around_equals_and_before_commas():
    call = one("post_quantization_optimization(finetune , policy = enabled , epochs = 4)").call
    assert [a.keyword.text for a in call.keywords] == ["policy", "epochs"]


def test_statement_over_several_lines_inside_brackets():
    text = "post_quantization_optimization(finetune,\n    loss_types = [l2rel,\n  ce],\n    epochs=4\n)\nnext()\n"
    script = alls.parse(text)
    assert [s.command for s in script.statements] == ["post_quantization_optimization", "next"]
    assert script.statements[0].span.end_line == 5


# --------------------------------------------------------------------- values


def test_numbers_keep_type_and_spelling():
    got = values("1, -2, 0.5, -1.5e-3, 1e-5, 1E+3, .5, 25m, 3x3")
    assert [type(v) for v in got] == [Number, Number, Number, Number, Number, Number, Number, Word, Word]
    assert [v.value for v in got[:7]] == [1, -2, 0.5, -1.5e-3, 1e-5, 1e3, 0.5]
    assert isinstance(got[0].value, int) and isinstance(got[2].value, float)
    assert got[4].text == "1e-5"


def test_constants():
    got = values("True, False, true, false, None, null")
    assert [type(v) for v in got] == [Boolean] * 4 + [Null] * 2
    assert [v.value for v in got[:4]] == [True, False, True, False]
    assert got[0] == got[2]  # `true` and `True` are the same value


def test_strings_and_names_with_dashes_and_slashes():
    got = values('"../cfg/nms.json", conv5_d0-1, net/conv3, Qwen2-1_5B/block0__conv1')
    assert isinstance(got[0], String) and got[0].value == "../cfg/nms.json"
    assert [v.text for v in got[1:]] == ["conv5_d0-1", "net/conv3", "Qwen2-1_5B/block0__conv1"]


@pytest.mark.parametrize(
    "glob, pattern",
    [("{*}", "*"), ("{conv*}", "conv*"), ("{net/ew_add*}", "net/ew_add*"), ("{conv[0-9]*}", "conv[0-9]*"),
     ("{conv_feature_splitter[0-9]*_[1-3]}", "conv_feature_splitter[0-9]*_[1-3]")],
)
def test_globs_alone_in_lists_and_as_keyword_values(glob, pattern):
    alone, listed, keyword = values(f"{glob}, [{glob}, conv1], layers={glob}")
    assert isinstance(alone, Glob) and alone.pattern == pattern
    assert isinstance(listed, ListValue) and isinstance(listed.items[0], Glob)
    assert isinstance(keyword, Glob)


def test_flat_list_over_several_lines_mixing_ints_and_floats():
    (lst,) = values("[1,\n 2.5,\n\n -3]")
    assert [i.value for i in lst.items] == [1, 2.5, -3]


def test_trailing_commas_are_accepted():
    assert len(values("a, [1, 2,],")) == 2


# --------------------------------------------------------------------- layout


def test_empty_and_comment_only_files():
    assert alls.parse("").statements == ()
    script = alls.parse("# only a comment\n\n# another")
    assert script.statements == () and [c.text for c in script.comments] == ["# only a comment", "# another"]


def test_crlf_and_no_final_newline():
    script = alls.parse("a(1)\r\n\r\n# c\r\nb(2)")
    assert [s.command for s in script.statements] == ["a", "b"]
    assert script.statements[1].span.line == 4
    assert script.comments[0].text == "# c"


def test_trailing_comment_is_kept_and_hash_inside_string_is_not_a_comment():
    script = alls.parse('nms_postprocess("a#b.json")  # note\n')
    assert script.statements[0].call.arguments[0].value.value == "a#b.json"
    assert [c.text for c in script.comments] == ["# note"]


def test_a_58_kb_line():
    names = ", ".join(f"net/block{i}__conv{i % 9}" for i in range(3000))
    text = f"quantization_param([{names}], precision_mode=a8_w4)\n"
    assert len(text) > 58_000
    lst = one(text).call.arguments[0].value
    assert len(lst.items) == 3000 and lst.items[-1].span.end_column == len(text) - len("], precision_mode=a8_w4)\n") + 1


# ---------------------------------------------------------------------- spans


def test_spans_are_one_based_with_exclusive_end():
    st = one("x = quantization_param({conv*}, precision_mode=a16_w16)")
    glob = st.call.arguments[0].value
    kw = st.call.arguments[1]
    assert (glob.span.line, glob.span.column, glob.span.end_column) == (1, 24, 31)
    assert (kw.keyword.span.column, kw.value.span.column, kw.span.end_column) == (33, 48, 55)
    assert (st.span.column, st.span.end_column) == (1, 56)
    assert st.span.file == "t.alls"


def test_nodes_compare_without_spans():
    a = alls.parse("a(1, b=[x])\n")
    b = alls.parse("\n\n   a( 1 ,b = [ x ] )")
    assert a == b
    assert a.statements[0].span != b.statements[0].span


# --------------------------------------------------------------- syntax errors


def codes_at(text: str):
    _, diagnostics = alls.parse_partial(text, "bad.alls")
    return [(d.code, d.span.line, d.span.column) for d in diagnostics]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("quantization_param({conv*}, precision_mode=a16_w16\nnext(1)\n", [("ALS102", 1, 19)]),
        ("a(1))\n", [("ALS103", 1, 5)]),
        ("a(1 2)\n", [("ALS104", 1, 5)]),
        ("a([1 2])\n", [("ALS104", 1, 6)]),
        ('a("open)\n', [("ALS105", 1, 3)]),
        ("a('x')\n", [("ALS105", 1, 3)]),
        ("a(\u201cx\u201d)\n", [("ALS106", 1, 3)]),
        ("a(k=1, 2)\n", [("ALS107", 1, 8)]),
        ("quantization_param\n", [("ALS110", 1, 19)]),
        ("x = y\n", [("ALS110", 1, 6)]),
        ("a({conv*)\n", [("ALS111", 1, 3)]),
        ("a(b; c)\n", [("ALS101", 1, 4)]),
        ("a(k=)\n", [("ALS100", 1, 5)]),
        ("a(k=1}\n", [("ALS103", 1, 6)]),
    ],
)
def test_each_syntax_error_has_its_code_and_position(text, expected):
    assert codes_at(text) == expected


def test_a_syntax_error_does_not_hide_later_errors_or_statements():
    text = "a(1 2)\nok(1)\nb(\u201cx\u201d)\nc(k=1, 2)\nlast()\n"
    script, diagnostics = alls.parse_partial(text)
    assert [(d.code, d.span.line) for d in diagnostics] == [("ALS104", 1), ("ALS106", 3), ("ALS107", 4)]
    assert [s.command for s in script.statements] == ["ok", "c", "last"]


def test_unclosed_bracket_stops_at_the_next_statement():
    text = "a(1,\n  2,\nb(3)\n"
    script, diagnostics = alls.parse_partial(text)
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [("ALS102", 1, 2)]
    assert [s.command for s in script.statements] == ["b"]


def test_parse_raises_alls_error_with_every_syntax_error():
    with pytest.raises(alls.AllsError) as info:
        alls.parse("a(1 2)\nb(\n")
    assert [d.code for d in info.value.diagnostics] == ["ALS104", "ALS102"]
    assert "bad" not in str(info.value) and "ALS104" in str(info.value)


def test_bad_bytes_and_nul_bytes(tmp_path):
    path = tmp_path / "bytes.alls"
    path.write_bytes(b"a(1)\nb(caf\xe9)\nc(\x00)\nd(2)\n")
    script, diagnostics = alls.read_script(path)
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [("ALS108", 2, 6), ("ALS109", 3, 3)]
    assert [s.command for s in script.statements] == ["a", "c", "d"]


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.alls"
    path.write_bytes(b"\xef\xbb\xbfa(1)\n")
    script, diagnostics = alls.read_script(path)
    assert diagnostics == [] and script.statements[0].span.column == 1


def test_unreadable_file_is_a_diagnostic(tmp_path):
    script, diagnostics = alls.read_script(tmp_path / "missing.alls")
    assert [d.code for d in diagnostics] == ["ALS001"] and script.statements == ()
    with pytest.raises(alls.AllsError):
        alls.parse_file(tmp_path / "missing.alls")
