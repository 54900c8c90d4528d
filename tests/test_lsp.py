"""The language server driven over stdio by pygls' client, as an editor drives
it: open, change, completion, hover, code actions, formatting, bad input."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import sys
import time

import pytest

import alls
from conftest import ROOT

pytest.importorskip("pygls", reason="pygls (the lsp extra) is not installed")
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

MODEL = ROOT / "samples" / "digits" / "digits_cnn.onnx"
TIMEOUT = 60


class Session:
    """One server process and the client talking to it."""

    def __init__(self, folder: pathlib.Path, options: dict | None = None):
        self.folder = folder
        self.options = options
        self.client = LanguageClient("alls-tests", "1")
        self.diagnostics: dict[str, list[lsp.PublishDiagnosticsParams]] = {}
        self.logs: list[str] = []
        self.changed = asyncio.Event()
        self.versions: dict[str, int] = {}

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _published(params: lsp.PublishDiagnosticsParams):
            self.diagnostics.setdefault(params.uri, []).append(params)
            self.changed.set()

        @self.client.feature(lsp.WINDOW_LOG_MESSAGE)
        def _logged(params: lsp.LogMessageParams):
            self.logs.append(params.message)
            self.changed.set()

    async def __aenter__(self):
        await self.client.start_io(sys.executable, "-m", "alls", "lsp")
        await self.client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), root_uri=self.folder.as_uri(),
            initialization_options=self.options))
        self.client.initialized(lsp.InitializedParams())
        return self

    async def __aexit__(self, *exc):
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    def open(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        self.versions[uri] = 1
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri, "alls", 1, text)))
        return uri

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.versions[uri] += 1
        change = lsp.TextDocumentContentChangePartial(
            lsp.Range(lsp.Position(*start), lsp.Position(*end)), text)
        self.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(version=self.versions[uri], uri=uri), [change]))

    async def wait(self, test, what: str):
        """Wait until ``test()`` holds (it is retried on every message from the server)."""
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not test():
            self.changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; logs: {self.logs}")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def published(self, uri: str, version: int | None = None, test=lambda ds: True) -> list[lsp.Diagnostic]:
        def ready():
            last = self.diagnostics.get(uri, [])
            return bool(last) and (version is None or last[-1].version == version) and test(last[-1].diagnostics)
        await self.wait(ready, f"diagnostics of {uri} (version {version})")
        return self.diagnostics[uri][-1].diagnostics


def run(coroutine):
    return asyncio.run(coroutine)


def codes(diagnostics) -> list[str]:
    return [d.code for d in diagnostics]


TYPO = "quantization_param({conv*}, precison_mode=a16_w16)\n"


def test_diagnostics_on_open_and_change_match_alls_check(tmp_path):
    text = TYPO + "quantization_param(conv1, use_16bit_bias=True)\nmodel_optimization_config(calibration, batch_size=eight)\n"

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("demo.alls", text)
            found = await s.published(uri, 1)
            expected = alls.check(text, str(tmp_path / "demo.alls"))
            assert codes(found) == [d.code for d in expected] == ["ALS203", "ALS209", "ALS302"]
            first = found[0]
            assert first.range == lsp.Range(lsp.Position(0, 28), lsp.Position(0, 41))
            assert first.severity == lsp.DiagnosticSeverity.Error and first.source == "alls"
            assert first.message == "`quantization_param` has no keyword `precison_mode`\nhelp: did you mean `precision_mode`?"
            assert found[1].severity == lsp.DiagnosticSeverity.Warning
            # fix the typo: the error goes; break line 3 further: a syntax error appears
            s.change(uri, (0, 28), (0, 36), "precision")
            s.change(uri, (2, 50), (2, 55), "8)")
            fixed = await s.published(uri, 3)
            assert codes(fixed) == ["ALS209", "ALS103"]
            assert fixed[1].range.start == lsp.Position(2, 52)
    run(scenario())


def test_bursts_of_changes_are_checked_once(tmp_path):
    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("burst.alls", "")
            await s.published(uri, 1)
            word = "quantization_param(conv1, precision_mode=a8_w9)"
            for i, ch in enumerate(word):
                s.change(uri, (0, i), (0, i), ch)
            found = await s.published(uri, len(word) + 1)
            assert codes(found) == ["ALS301"]
            assert len(s.diagnostics[uri]) < len(word) // 2  # debounced: far fewer than one per keystroke
    run(scenario())


def test_completion_commands_keywords_values_and_layers(tmp_path):
    shutil.copy(MODEL, tmp_path / "digits_cnn.onnx")
    text = ("# alls: model=digits_cnn.onnx\n"
            "quan\n"
            "quantization_param({conv*}, precision_mode=a16_w16)\n"
            "quantization_param(\n")

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("net.alls", text)
            await s.wait(lambda: any("loaded" in m for m in s.logs), "the model to load")

            async def labels(line, character):
                result = await s.client.text_document_completion_async(lsp.CompletionParams(
                    lsp.TextDocumentIdentifier(uri), lsp.Position(line, character)))
                return {item.label: item for item in result.items}

            commands = await labels(1, 4)
            assert "quantization_param" in commands and "post_quantization_optimization" in commands
            assert commands["quantization_param"].text_edit.range == lsp.Range(lsp.Position(1, 0), lsp.Position(1, 4))
            assert "Per-layer quantization" in commands["quantization_param"].documentation.value
            keywords = await labels(2, 30)
            assert "bias_mode" in keywords and "use_16bit_bias" not in keywords
            assert keywords["bias_mode"].text_edit.new_text == "bias_mode="
            values = await labels(2, 50)
            assert set(values) == set(alls.catalogue.PRECISION_MODES)
            assert "16-bit input activations, 16-bit weights" in values["a16_w16"].documentation.value
            layers = await labels(3, 19)
            assert {"conv1", "dw1", "conv2", "conv3", "fc1"} <= set(layers)
            assert "{conv*}" in layers and layers["{conv*}"].detail == "3 layers"
    run(scenario())


def test_hover_command_value_selector_and_layer_provenance(tmp_path):
    shutil.copy(MODEL, tmp_path / "digits_cnn.onnx")
    text = ("# alls: model=digits_cnn.onnx\n"
            "quantization_param({conv*}, precision_mode=a16_w16)\n"
            "quantization_param(conv1, bias_mode=double_scale_initialization)\n")

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("net.alls", text)
            await s.published(uri, 1, lambda ds: True)
            await s.wait(lambda: any("loaded" in m for m in s.logs), "the model to load")

            async def hover(line, character):
                result = await s.client.text_document_hover_async(lsp.HoverParams(
                    lsp.TextDocumentIdentifier(uri), lsp.Position(line, character)))
                return result.contents.value if result else None

            assert "Per-layer quantization" in await hover(1, 3)
            assert "**precision_mode**" in await hover(1, 30)
            value = await hover(1, 45)
            assert "16-bit input activations" in value and "value of `precision_mode`" in value
            selector = await hover(1, 21)
            assert "matches 3 layers" in selector and "`conv1` (conv a16_w16)" in selector
            row = await hover(2, 20)
            assert "**digits_cnn/conv1**" in row
            assert "| precision_mode | `a16_w16` | line 2: `quantization_param({conv*}, precision_mode=a16_w16)` |" in row
            assert "| bias_mode | `double_scale_initialization` | line 3:" in row
    run(scenario())


def test_model_line_problems_and_selector_errors(tmp_path):
    shutil.copy(MODEL, tmp_path / "digits_cnn.onnx")

    async def scenario():
        async with Session(tmp_path) as s:
            missing = s.open("a.alls", "# alls: model=nowhere.onnx inptu_shape=1,1,8,8\nquantization_param({conv*}, precision_mode=a8_w8)\n")
            found = await s.published(missing, 1, lambda ds: "ALS402" in codes(ds))
            assert codes(found)[:2] == ["ALS050", "ALS402"]
            assert "did you mean `input_shape`?" in found[0].message
            uri = s.open("b.alls", "# alls: model=digits_cnn.onnx\nquantization_param({cnv*}, precision_mode=a8_w8)\n")
            found = await s.published(uri, 1, lambda ds: "ALS201" in codes(ds))
            assert found[0].range.start == lsp.Position(1, 19)
    run(scenario())


def test_workspace_setting_names_the_model(tmp_path):
    shutil.copy(MODEL, tmp_path / "digits_cnn.onnx")

    async def scenario():
        async with Session(tmp_path, {"model": "digits_cnn.onnx"}) as s:
            uri = s.open("c.alls", "quantization_param({cnv*}, precision_mode=a8_w8)\n")
            found = await s.published(uri, 1, lambda ds: "ALS201" in codes(ds))
            assert "did you mean" in found[0].message
    run(scenario())


def test_a_model_written_anew_is_loaded_anew(tmp_path):
    path = tmp_path / "digits_cnn.onnx"
    shutil.copy(MODEL, path)

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("m.alls", "# alls: model=digits_cnn.onnx\nquantization_param({cnv*}, precision_mode=a8_w8)\n")
            await s.published(uri, 1, lambda ds: "ALS201" in codes(ds))
            path.write_bytes(b"not a model")
            os.utime(path, (time.time() + 5, time.time() + 5))
            s.change(uri, (1, 0), (1, 0), " ")
            found = await s.published(uri, 2, lambda ds: "ALS402" in codes(ds))
            assert found[0].range.start.line == 0 and "ALS201" not in codes(found)
    run(scenario())


def test_configuration_change_names_the_model(tmp_path):
    shutil.copy(MODEL, tmp_path / "digits_cnn.onnx")

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("c.alls", "quantization_param({cnv*}, precision_mode=a8_w8)\n")
            assert codes(await s.published(uri, 1)) == []
            s.client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(
                settings={"alls": {"model": "digits_cnn.onnx"}}))
            found = await s.published(uri, 1, lambda ds: "ALS201" in codes(ds))
            assert found[0].range.start == lsp.Position(0, 19)
            assert any("loading" in m and "digits_cnn.onnx" in m for m in s.logs)
    run(scenario())


def test_code_actions_did_you_mean_current_form_and_advice(tmp_path):
    shutil.copy(MODEL, tmp_path / "digits_cnn.onnx")
    text = ("# alls: model=digits_cnn.onnx\n"
            "quantization_param({conv*}, precison_mode=a8_w4)\n"
            "quantization_param(conv1, use_16bit_bias=True)\n"
            "quantization_param({fc*}, weights_clipping_mode=manual, weights_clipping_values=[-2.0, 2.0], precision_mode=a8_w4)\n")

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("d.alls", text)
            found = await s.published(uri, 1, lambda ds: "ALS311" in codes(ds))

            async def actions(line):
                result = await s.client.text_document_code_action_async(lsp.CodeActionParams(
                    lsp.TextDocumentIdentifier(uri), lsp.Range(lsp.Position(line, 0), lsp.Position(line, 200)),
                    lsp.CodeActionContext(diagnostics=[d for d in found if d.range.start.line == line])))
                return {a.title: list(a.edit.changes[uri]) for a in result}

            typo = await actions(1)
            assert typo["Replace with `precision_mode`"] == [
                lsp.TextEdit(lsp.Range(lsp.Position(1, 28), lsp.Position(1, 41)), "precision_mode")]
            old = await actions(2)
            assert old["Write `bias_mode=double_scale_initialization`"] == [
                lsp.TextEdit(lsp.Range(lsp.Position(2, 26), lsp.Position(2, 45)), "bias_mode=double_scale_initialization")]
            clip = await actions(3)
            title = next(t for t in clip if t.startswith("Write `pre_quantization_optimization(weights_clipping"))
            assert clip[title][0].new_text == (
                "quantization_param({fc*}, precision_mode=a8_w4)\n"
                "pre_quantization_optimization(weights_clipping, layers={fc*}, mode=manual, clipping_values=[-2.0, 2.0])")
            advice = [t for t in clip if t.startswith("Add `post_quantization_optimization(finetune")]
            assert len(advice) == 1, clip
            fixed = _apply(text, clip[advice[0]])
            added = fixed[len(text):]
            assert added.startswith("post_quantization_optimization(finetune, policy=enabled") and added.endswith(")\n")
            assert all(alls.parse(line).statements for line in added.splitlines())
            after = alls.resolve(fixed.split("\n", 1)[1], alls.load_model(MODEL)).diagnostics
            assert "ALS311" not in [d.code for d in after]
    run(scenario())


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start = sum(len(x) + 1 for x in lines[:edit.range.start.line]) + edit.range.start.character
        end = sum(len(x) + 1 for x in lines[:edit.range.end.line]) + edit.range.end.character
        text = text[:start] + edit.new_text + text[end:]
        lines = text.split("\n")
    return text


def test_formatting_and_range_formatting(tmp_path):
    ugly = "quantization_param( {conv*} ,precision_mode = a16_w16 )   # 16-bit\n\n\n\npost_quantization_optimization(finetune,\n    policy=enabled,\n    epochs=4)"

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("u.alls", ugly)
            await s.published(uri, 1)
            options = lsp.FormattingOptions(tab_size=4, insert_spaces=True)
            edits = await s.client.text_document_formatting_async(
                lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri), options))
            assert _apply(ugly, edits) == alls.format_text(ugly)
            ranged = await s.client.text_document_range_formatting_async(lsp.DocumentRangeFormattingParams(
                lsp.TextDocumentIdentifier(uri), lsp.Range(lsp.Position(5, 2), lsp.Position(5, 4)), options))
            assert _apply(ugly, ranged) == ugly.split("post_")[0] + "post_quantization_optimization(finetune, policy=enabled, epochs=4)"
            broken = s.open("broken.alls", "quantization_param({conv*}, precision_mode=a16_w16\n")
            await s.published(broken, 1)
            none = await s.client.text_document_formatting_async(
                lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(broken), options))
            assert none is None
            await s.wait(lambda: any("not formatted" in m for m in s.logs), "the log line")
    run(scenario())


def test_bad_input_never_stops_the_server(tmp_path):
    junk = "\x00\ufffd((((]]] \u201cquoted\u201d\n" + "x" * 20000 + "(\n" + "\U0001F600 = a(b=)\n"

    async def scenario():
        async with Session(tmp_path) as s:
            uri = s.open("junk.alls", junk)
            found = await s.published(uri, 1)
            _, expected = alls.read_script(junk.encode("utf-8"), str(tmp_path / "junk.alls"))
            assert codes(found)[:len(expected)] == [d.code for d in expected]
            for line, character in ((0, 0), (0, 3), (2, 1), (2, 3), (50, 50), (1, 999999)):
                position = lsp.Position(line, character)
                ident = lsp.TextDocumentIdentifier(uri)
                await s.client.text_document_completion_async(lsp.CompletionParams(ident, position))
                await s.client.text_document_hover_async(lsp.HoverParams(ident, position))
            # an unknown document: the handler's error goes to the log, and the server answers
            result = await s.client.text_document_hover_async(lsp.HoverParams(
                lsp.TextDocumentIdentifier((tmp_path / "never-opened.alls").as_uri()), lsp.Position(0, 0)))
            assert result is None
            good = s.open("good.alls", TYPO)
            assert codes(await s.published(good, 1)) == ["ALS203"]
    run(scenario())


def test_without_pygls_lsp_says_how_to_install(tmp_path):
    import subprocess

    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "pygls.py").write_text("raise ImportError('blocked for the test')\n")
    env = {"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "alls", "lsp"], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "error[ALS011]" in done.stderr and "pip install 'alls[lsp]'" in done.stderr
