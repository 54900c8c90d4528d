"""The language server's logic without a client: incremental parsing gives
what `alls check` gives, positions in UTF-16, the model line, the cursor."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys

import pytest

import alls
from conftest import corpus_files

pytest.importorskip("lsprotocol", reason="lsprotocol (the lsp extra, with pygls) is not installed")
from alls.lsp.complete import cursor_context
from alls.lsp.document import Document, from_utf16, to_utf16
from alls.lsp.model import ModelSetting, read_directive


def spans(node) -> list:
    """Every span in a tree of nodes (nodes compare without their spans)."""
    if isinstance(node, alls.Span):
        return [node]
    if isinstance(node, tuple):
        return [s for item in node for s in spans(item)]
    if dataclasses.is_dataclass(node):
        return [s for f in dataclasses.fields(node) for s in spans(getattr(node, f.name))]
    return []


def assert_same_as_check(document: Document, text: str) -> None:
    script, found = document.parse(text)
    expected_script, expected = alls.read_script(text.encode("utf-8"), document.filename)
    assert script.statements == expected_script.statements
    assert spans(script.statements) == spans(expected_script.statements)
    assert spans(script.comments) == spans(expected_script.comments)
    assert [(d.code, d.span, d.message, d.help) for d in found] == [(d.code, d.span, d.message, d.help) for d in expected]
    analysis = document.analyse(text)
    everything = sorted(expected + alls.check(expected_script), key=alls.Diagnostic.sort_key)
    assert [(d.code, d.span) for d in analysis.diagnostics] == [(d.code, d.span) for d in everything]


def test_incremental_parse_matches_check_on_the_corpus():
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus is not present")
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert_same_as_check(Document(str(path)), text)


MUTATIONS = ["(", ")", "[", "]", ",", "=", "\n", '"', "#", "{", "}", "x", " ", "\n\n"]


def test_incremental_parse_matches_check_through_random_edits():
    """A document edited again and again (cached chunks reused, moved, dropped)
    still gives what a fresh `alls check` gives, after every edit."""
    files = corpus_files()
    base = files[0].read_text(encoding="utf-8", errors="replace") if files else ""
    with open(__file__.replace("test_lsp_document.py", "../samples/detector_16bit_outputs.alls"), encoding="utf-8") as f:
        text = f.read() + base
    rng = random.Random(17)
    document = Document("edited.alls")
    for _ in range(150):
        at = rng.randrange(len(text) + 1)
        if rng.random() < 0.3 and at < len(text):
            text = text[:at] + text[at + rng.randint(1, 12):]
        else:
            text = text[:at] + rng.choice(MUTATIONS) + text[at:]
        assert_same_as_check(document, text)


def test_bad_bytes_take_the_whole_file_path():
    document = Document("bad.alls")
    for text in ("quantization_param(conv1\x00, precision_mode=a8_w8)\n", "a(\ufffd)\n", "a(\udc80)\n"):
        script, found = document.parse(text)
        _, expected = alls.read_script(text.encode("utf-8", "surrogatepass"), "bad.alls")
        assert [d.code for d in found] == [d.code for d in expected] and found


def test_utf16_columns():
    line = "a(\U0001F600, é)"
    assert to_utf16(line, 3) == 4 and to_utf16(line, 5) == 6
    assert from_utf16(line, 4) == 3 and from_utf16(line, 6) == 5
    assert from_utf16("abc", 99) == 3 and to_utf16("abc", 2) == 2


def test_model_line():
    setting, problems = read_directive(
        "# alls: model=m/net.onnx input_shape=1,3,32,32 end_nodes=Conv_1,Conv_2 name=yolo\nx()\n", "s.alls", "/w")
    assert problems == []
    assert setting == ModelSetting("/w/m/net.onnx", (("", (1, 3, 32, 32)),), ("Conv_1", "Conv_2"), "yolo")
    assert setting.shapes() == (1, 3, 32, 32)
    setting, problems = read_directive("# alls: model=a.onnx input_shape=x=1,2 input_shape=y=3,4\n", "s.alls", "/w")
    assert setting.shapes() == {"x": (1, 2), "y": (3, 4)} and problems == []
    setting, problems = read_directive("# alls: modle=a.onnx input_shape=1,a\n", "s.alls", "/w")
    assert setting is None and [d.code for d in problems] == ["ALS050", "ALS050"]
    assert problems[0].help == "did you mean `model`?" and problems[0].span == alls.Span("s.alls", 1, 9, 1, 21)
    _, problems = read_directive("# alls: model=a.onnx input_shape=1,0,3\n", "s.alls", "/w")
    assert [d.message for d in problems] == ["bad input shape `1,0,3`"]
    assert read_directive("# an ordinary comment\n", "s.alls", "/w") == (None, [])


def test_end_nodes_cut_the_model(tmp_path):
    from alls.lsp import model
    from conftest import ROOT

    path = str(ROOT / "samples" / "digits" / "digits_cnn.onnx")
    whole = model.load(ModelSetting(path))
    onnx = pytest.importorskip("onnx")
    nodes = [n.name for n in onnx.load(path).graph.node]
    conv2 = next(layer for layer in whole if layer.short_name == "conv2")
    end = next(alias for alias in conv2.aliases if alias in nodes)
    cut = model.load(ModelSetting(path, end_nodes=(end,)))
    assert [layer.short_name for layer in cut][:4] == ["input_layer1", "conv1", "dw1", "conv2"]
    assert "fc1" in [layer.short_name for layer in whole] and "fc1" not in [layer.short_name for layer in cut]
    with pytest.raises(alls.AllsError) as error:
        model.load(ModelSetting(path, end_nodes=(end + "x",)))
    assert error.value.diagnostics[0].code == "ALS406" and end in str(error.value.diagnostics[0].help)


@pytest.mark.parametrize("text, command, keyword, prefix, in_list", [
    ("quan", None, None, "quan", False),
    ("x = normalization(", "normalization", None, "", False),
    ("quantization_param({conv*}, precision_mode=a16", "quantization_param", "precision_mode", "a16", False),
    ("post_quantization_optimization(finetune, loss_types=[l2, ", "post_quantization_optimization", "loss_types", "", True),
    ('nms_postprocess("a,(b", ', "nms_postprocess", None, "", False),
    ("quantization_param(conv1)\nquantization_param({co", "quantization_param", None, "{co", False),
])
def test_cursor_context(text, command, keyword, prefix, in_list):
    line = text.count("\n")
    ctx = cursor_context(text, line, len(text.split("\n")[-1]))
    assert (ctx.command, ctx.keyword, ctx.prefix, ctx.in_list) == (command, keyword, prefix, in_list)


def test_cursor_context_in_a_comment_and_argument_counts():
    assert cursor_context("quantization_param(conv1)  # quan", 0, 33).in_comment
    ctx = cursor_context("pre_quantization_optimization(equalization, policy=enabled, ", 0, 61)
    assert ctx.previous == ((None, "equalization"), ("policy", "enabled")) and ctx.positional_index == 1
    assert ctx.given == {"policy"}


def test_import_alls_and_check_load_no_server_libraries(tmp_path):
    path = tmp_path / "s.alls"
    path.write_text("quantization_param({conv*}, precision_mode=a16_w16)\n")
    probe = (
        "import sys, alls\n"
        "from alls.cli import main\n"
        f"main(['check', '--output-format', 'sarif', {str(path)!r}])\n"
        "main(['check', '--output-format', 'github', {0!r}])\n".format(str(path)) +
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numba', 'onnx', 'pygls', 'lsprotocol', 'jsonschema', 'alls.lsp'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
