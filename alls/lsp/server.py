"""`alls lsp`: the language server, on stdio, over pygls.

It routes the protocol's messages to `alls.lsp.features` and
`alls.lsp.complete`, and keeps three things the features do not: the parse
cache of each open script (`Document`), a debounce timer per script (a
burst of keystrokes is checked once, ``debounce`` seconds after the last),
and the models, imported on a worker thread so that diagnostics never wait
for one: until the model is in, a script is checked as `alls check` checks
it alone, then again as `alls check --model` does.

Every handler is guarded: an exception is logged to the client (the
editor's output panel) and answered with nothing, and the server goes on.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

import alls
from alls.lsp import complete, features, model
from alls.lsp.document import Analysis, Document, from_utf16

__all__ = ["AllsServer", "serve"]

DEBOUNCE_S = 0.05

# A loaded model's key: its setting and the file's modification time.
ModelKey = tuple[model.ModelSetting, float | None]
_Params = TypeVar("_Params")
_Result = TypeVar("_Result")
# A protocol handler: (server, the message's params) -> its answer.
Handler = Callable[["AllsServer", _Params], _Result]


class AllsServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("alls", alls.__version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.documents: dict[str, Document] = {}
        self.analyses: dict[str, tuple[str, alls.Graph | None, Analysis]] = {}  # uri -> text, graph, analysis
        self.graphs: dict[ModelKey, alls.Graph | alls.AllsError | None] = {}  # (setting, file mtime) -> graph
        self.settings: dict[str, Any] = {}
        self.root = os.getcwd()
        self.debounce = DEBOUNCE_S
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------- logging

    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Info) -> None:
        self.window_log_message(lsp.LogMessageParams(kind, message))

    # ---------------------------------------------------------- analysis

    def text(self, uri: str) -> str:
        return self.workspace.get_text_document(uri).source

    def analysis(self, uri: str) -> tuple[str, Analysis, alls.Graph | None, list[alls.Diagnostic]]:
        """The current analysis of ``uri`` (re-made if the text or the model changed)."""
        text = self.text(uri)
        path = _path(uri)
        setting, problems = model.read_directive(text, path, os.path.dirname(path))
        setting = setting or model.from_settings(self.settings, self.root)
        graph, model_problems = self.graph(setting)
        cached = self.analyses.get(uri)
        if cached is not None and cached[0] == text and cached[1] is graph:
            return text, cached[2], graph, problems + model_problems
        document = self.documents.setdefault(uri, Document(path))
        result = document.analyse(text, graph)
        self.analyses[uri] = (text, graph, result)
        return text, result, graph, problems + model_problems

    def graph(self, setting: model.ModelSetting | None) -> tuple[alls.Graph | None, list[alls.Diagnostic]]:
        """The model's graph if it is loaded; else start loading it and return None."""
        if setting is None:
            return None, []
        key = (setting, _mtime(setting.path))  # a model written anew is loaded anew
        if key not in self.graphs:
            self.graphs[key] = None
            self.log(f"loading `{setting.path}`")
            threading.Thread(target=self._load, args=(key,), daemon=True).start()
        found = self.graphs[key]
        if isinstance(found, alls.AllsError):
            return None, list(found.diagnostics)
        if found is None:
            return None, []
        return found, list(found.diagnostics)

    def _load(self, key: ModelKey) -> None:
        setting = key[0]
        started = time.perf_counter()
        found: alls.Graph | alls.AllsError
        try:
            graph = found = model.load(setting)
            note = f"loaded `{setting.path}`: {len(graph)} layers in {time.perf_counter() - started:.2f} s"
        except alls.AllsError as error:
            found, note = error, f"cannot load `{setting.path}`: {error}"
        except Exception as exc:  # an importer bug must not take the server down
            found = alls.AllsError.of("ALS402", f"cannot import `{setting.path}`: {exc}")
            note = "model import failed:\n" + traceback.format_exc()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._model_ready, key, found, note)

    def _model_ready(self, key: ModelKey, found: alls.Graph | alls.AllsError, note: str) -> None:
        for old in [k for k in self.graphs if k[0] == key[0] and k != key]:
            del self.graphs[old]  # an earlier version of the same file
        self.graphs[key] = found
        self.log(note, lsp.MessageType.Info if isinstance(found, alls.Graph) else lsp.MessageType.Warning)
        for uri in list(self.analyses):
            self.publish(uri)

    def publish(self, uri: str) -> None:
        self._timers.pop(uri, None)
        try:
            document = self.workspace.get_text_document(uri)
            text, result, _, problems = self.analysis(uri)
            lines = text.split("\n")
            extra = Analysis(result.script, (), tuple(problems), None)
            found = features.lsp_diagnostics(extra, lines, uri) + features.lsp_diagnostics(result, lines, uri)
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=found, version=document.version))
        except Exception:  # never let one script stop the server
            self.log(f"checking {uri} failed:\n{traceback.format_exc()}", lsp.MessageType.Error)

    def schedule(self, uri: str, delay: float) -> None:
        self._loop = self._loop or asyncio.get_event_loop()
        pending = self._timers.pop(uri, None)
        if pending is not None:
            pending.cancel()
        if delay <= 0:
            self.publish(uri)
        else:
            self._timers[uri] = self._loop.call_later(delay, self.publish, uri)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _guarded(default: list[Any] | None = None
             ) -> Callable[[Handler[_Params, _Result]], Handler[_Params, _Result | list[Any] | None]]:
    """Log a handler's exception to the client and answer ``default``."""
    def wrap(handler: Handler[_Params, _Result]) -> Handler[_Params, _Result | list[Any] | None]:
        @functools.wraps(handler)
        def run(ls: AllsServer, params: _Params) -> _Result | list[Any] | None:
            try:
                return handler(ls, params)
            except Exception:
                ls.log(f"{handler.__name__} failed:\n{traceback.format_exc()}", lsp.MessageType.Error)
                return default
        return run
    return wrap


server = AllsServer()


@server.feature(lsp.INITIALIZE)
@_guarded()
def initialize(ls: AllsServer, params: lsp.InitializeParams) -> None:
    ls._loop = asyncio.get_event_loop()
    if params.root_uri:
        ls.root = _path(params.root_uri)
    options = params.initialization_options
    if isinstance(options, dict):
        ls.settings = options.get("alls", options)
        debounce = ls.settings.get("debounceMs")
        if isinstance(debounce, (int, float)) and 0 <= debounce <= 5000:
            ls.debounce = debounce / 1000


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
@_guarded()
def did_change_configuration(ls: AllsServer, params: lsp.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if isinstance(settings, dict) and isinstance(settings.get("alls"), dict):
        ls.settings = settings["alls"]
        for uri in list(ls.analyses):
            ls.publish(uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
@_guarded()
def did_open(ls: AllsServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
@_guarded()
def did_change(ls: AllsServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, ls.debounce)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
@_guarded()
def did_close(ls: AllsServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    pending = ls._timers.pop(uri, None)
    if pending is not None:
        pending.cancel()
    ls.analyses.pop(uri, None)
    ls.documents.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, []))


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                lsp.CompletionOptions(trigger_characters=["(", ",", "=", "{", "[", " "]))
@_guarded(default=[])
def completion(ls: AllsServer, params: lsp.CompletionParams) -> lsp.CompletionList | list[lsp.CompletionItem]:
    uri, pos = params.text_document.uri, params.position
    text, _, graph, _ = ls.analysis(uri)
    lines = text.split("\n")
    if pos.line >= len(lines):
        return []
    column = from_utf16(lines[pos.line], pos.character)
    return lsp.CompletionList(is_incomplete=False, items=complete.complete(text, pos.line, column, graph))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
@_guarded()
def hover(ls: AllsServer, params: lsp.HoverParams) -> lsp.Hover | None:
    text, result, graph, _ = ls.analysis(params.text_document.uri)
    return features.hover(text, result, params.position.line, params.position.character, graph)


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
@_guarded(default=[])
def code_action(ls: AllsServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    text, result, _, _ = ls.analysis(params.text_document.uri)
    return features.code_actions(text, result, params.text_document.uri, params.range)


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
@_guarded()
def formatting(ls: AllsServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    text, result, _, _ = ls.analysis(params.text_document.uri)
    edits = features.format_document(text, result)
    if edits is None:
        ls.log(f"{params.text_document.uri}: not formatted: it has syntax errors", lsp.MessageType.Warning)
    return edits


@server.feature(lsp.TEXT_DOCUMENT_RANGE_FORMATTING)
@_guarded()
def range_formatting(ls: AllsServer, params: lsp.DocumentRangeFormattingParams) -> list[lsp.TextEdit] | None:
    edits = features.format_range(ls.text(params.text_document.uri), params.range)
    if edits is None:
        ls.log(f"{params.text_document.uri}: the range was not formatted: it has syntax errors",
               lsp.MessageType.Warning)
    return edits


def serve() -> None:
    """Serve on standard input and output until the client says exit."""
    server.start_io()
