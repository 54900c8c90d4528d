"""The editor packages: the VS Code extension (its TextMate grammar against
every corpus script, its manifest, packing it) and Neovim's built-in client,
headless, reading a typo's diagnostic from `alls lsp`."""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys

import pytest

import alls
from conftest import ROOT, corpus_files

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "alls.tmLanguage.json"


# ------------------------------------------------------------- the grammar


def load_grammar() -> list[tuple[re.Pattern, dict]]:
    doc = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    assert doc["scopeName"] == "source.alls"
    return [(re.compile(p["match"]), p) for p in doc["patterns"]]


def scopes_of_line(line: str, patterns) -> list[str | None]:
    """The scope of each character, as a TextMate engine assigns them with a
    grammar of `match` rules: at each point the rule whose match starts first
    wins (the earlier rule on a tie), then scanning goes on after it."""
    out: list[str | None] = [None] * len(line)
    pos = 0
    ahead: list = [None] * len(patterns)  # each rule's next match, kept while it lies ahead
    while pos < len(line):
        best = None
        for i, (regex, rule) in enumerate(patterns):
            m = ahead[i]
            if m is None or (m and m.start() < pos):
                m = ahead[i] = regex.search(line, pos) or False
            if m and (best is None or m.start() < best[0].start()):
                best = (m, rule)
        if best is None:
            break
        m, rule = best
        if "name" in rule:
            out[m.start():m.end()] = [rule["name"]] * (m.end() - m.start())
        for group, capture in rule.get("captures", {}).items():
            if m.group(int(group)) is not None:
                a, b = m.span(int(group))
                out[a:b] = [capture["name"]] * (b - a)
        pos = m.end() if m.end() > pos else pos + 1
    return out


def scopes_of(text: str, patterns) -> list[list[str | None]]:
    return [scopes_of_line(line, patterns) for line in text.split("\n")]


def test_grammar_is_json_and_up_to_date_with_the_catalogue():
    built = runpy.run_path(str(VSCODE / "build_grammar.py"))["text"]()
    assert GRAMMAR.read_text(encoding="utf-8") == built, "run python editors/vscode/build_grammar.py"
    for _regex, rule in load_grammar():
        assert "name" in rule or "captures" in rule


def _span_scopes(scopes, span: alls.Span) -> set:
    if span.line != span.end_line:
        return set()
    return set(scopes[span.line - 1][span.column - 1:span.end_column - 1])


def _expected_scopes(script: alls.Script):
    """(span, allowed scope prefixes) of the tokens the parser sees."""
    for st in script.statements:
        yield st.call.name.span, ("support.function.", "entity.name.function.")
        for target in st.targets:
            yield target.span, ("variable.other.target.",)
        for arg in st.call.arguments:
            if arg.keyword is not None:
                yield arg.keyword.span, ("variable.parameter.",)
            items = arg.value.items if isinstance(arg.value, alls.ListValue) else (arg.value,)
            for item in items:
                allowed = {
                    alls.String: ("string.quoted.",), alls.Glob: ("string.regexp.glob.",),
                    alls.Boolean: ("constant.language.",), alls.Null: ("constant.language.",),
                    alls.Number: ("constant.numeric.",),
                    alls.Word: ("variable.other.layer.", "support.constant.value.", "support.type.subcommand."),
                }.get(type(item))
                if allowed:
                    yield item.span, allowed
    for comment in script.comments:
        yield comment.span, ("comment.line.",)


def test_grammar_scopes_cover_every_token_of_every_corpus_script():
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus is not present")
    patterns = load_grammar()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        scopes = scopes_of(text, patterns)
        script, problems = alls.read_script(path)
        clean = not any(d.is_error and d.code.startswith("ALS1") for d in problems)
        for line_no, (line, line_scopes) in enumerate(zip(text.split("\n"), scopes), 1):
            for col, (ch, scope) in enumerate(zip(line, line_scopes), 1):
                if not ch.isspace():
                    assert scope is not None, f"{path}:{line_no}:{col}: `{ch}` has no scope"
                    if clean:
                        assert not scope.startswith("invalid."), f"{path}:{line_no}:{col}: `{ch}` is {scope}"
        for span, allowed in _expected_scopes(script):
            found = _span_scopes(scopes, span)
            assert found and all(s and s.startswith(allowed) for s in found), f"{span}: {found}, expected {allowed}"


def test_grammar_tells_the_kinds_of_words_apart():
    line = 'x = normalization([0.0], [255.0])  # in'
    patterns = load_grammar()
    scopes = scopes_of_line(line, patterns)
    assert scopes[0] == "variable.other.target.alls" and scopes[4].startswith("support.function.quantization")
    assert scopes[line.index("#")] == "comment.line.number-sign.alls"
    line = "pre_quantization_optimization(equalization, layers={conv*}, policy=enabled, x=1e-5, y=True)"
    scopes = scopes_of_line(line, patterns)
    at = lambda word: scopes[line.index(word)]
    assert at("equalization,") == "support.type.subcommand.alls"
    assert at("layers") == "variable.parameter.alls" and at("{conv*}") == "string.regexp.glob.alls"
    assert at("enabled") == "support.constant.value.alls" and at("1e-5") == "constant.numeric.alls"
    assert at("True") == "constant.language.alls"
    assert scopes_of_line("buffers(a, b)", patterns)[0] == "support.function.compiler.alls"
    assert scopes_of_line("quantization_param(conv1; x)", patterns)[24] == "invalid.illegal.character.alls"


# ---------------------------------------------------------- the extension


def test_extension_manifest_names_files_that_exist():
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    assert (VSCODE / manifest["main"]).is_file()
    language = manifest["contributes"]["languages"][0]
    assert language["id"] == "alls" and language["extensions"] == [".alls"]
    config = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"]["lineComment"] == "#"
    grammar = manifest["contributes"]["grammars"][0]
    assert (VSCODE / grammar["path"]).resolve() == GRAMMAR and grammar["scopeName"] == "source.alls"
    client = (VSCODE / "extension.js").read_text(encoding="utf-8")
    assert 'args: ["lsp"]' in client and "vscode-languageclient/node" in client
    assert "vscode-languageclient" in manifest["dependencies"]
    settings = manifest["contributes"]["configuration"]["properties"]
    assert {"alls.server.path", "alls.model", "alls.inputShape", "alls.endNodes", "alls.name"} == set(settings)


def test_extension_packs(tmp_path):
    """`vsce package` on a copy of the extension (run where npm and its
    registry are reachable; ALLS_SKIP_VSCE=1 leaves it out)."""
    if os.environ.get("ALLS_SKIP_VSCE"):
        pytest.skip("ALLS_SKIP_VSCE is set")
    npm, npx = shutil.which("npm"), shutil.which("npx")
    if not npm or not npx:
        pytest.skip("npm and npx (Node.js) are not installed")
    work = tmp_path / "vscode"
    shutil.copytree(VSCODE, work, ignore=shutil.ignore_patterns("node_modules", "*.vsix"))
    install = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=work, capture_output=True,
                             text=True, timeout=600)
    if install.returncode != 0:
        pytest.skip(f"npm install failed (no registry?): {install.stderr[-300:]}")
    packed = subprocess.run([npx, "--yes", "@vscode/vsce@3", "package", "--allow-missing-repository",
                             "--out", str(tmp_path / "alls.vsix")], cwd=work, capture_output=True, text=True,
                            timeout=600)
    if packed.returncode != 0 and "ENOTFOUND" in packed.stderr + packed.stdout:
        pytest.skip("the npm registry is not reachable for @vscode/vsce")
    assert packed.returncode == 0, packed.stdout[-2000:] + packed.stderr[-2000:]
    import zipfile

    names = zipfile.ZipFile(tmp_path / "alls.vsix").namelist()
    for wanted in ("extension/package.json", "extension/extension.js", "extension/syntaxes/alls.tmLanguage.json",
                   "extension/language-configuration.json"):
        assert wanted in names
    assert "extension/build_grammar.py" not in names
    assert any(n.startswith("extension/node_modules/vscode-languageclient/") for n in names)


# ---------------------------------------------------------------- Neovim


def neovim_config() -> str:
    """The Lua block of docs/editors.md, the one users copy."""
    doc = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- neovim-config:[^>]*-->\s*```lua\n(.*?)```", doc, re.S)
    assert block, "docs/editors.md lost its Neovim block"
    return block.group(1)


CHECK = """
local ok = vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local out = {}
for _, d in ipairs(vim.diagnostic.get(0)) do
  table.insert(out, { code = d.code, lnum = d.lnum, col = d.col, end_col = d.end_col,
                      severity = d.severity, message = d.message, source = d.source })
end
local f = io.open(vim.env.ALLS_NVIM_OUT, "w")
f:write(vim.fn.json_encode({ ok = ok, diagnostics = out }))
f:close()
vim.cmd("qa!")
"""


def test_neovim_shows_the_typo_through_its_lsp_client(tmp_path):
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip("Neovim is not installed (Debian package `neovim`; CI installs it)")
    pytest.importorskip("pygls", reason="pygls (the lsp extra) is not installed")
    config = neovim_config()
    server = json.dumps([sys.executable, "-m", "alls", "lsp"]).replace("[", "{ ").replace("]", " }")
    assert '{ "alls", "lsp" }' in config
    (tmp_path / "init.lua").write_text(config.replace('{ "alls", "lsp" }', server), encoding="utf-8")
    (tmp_path / "check.lua").write_text(CHECK, encoding="utf-8")
    (tmp_path / "typo.alls").write_text("quantization_param({conv*}, precison_mode=a16_w16)\n", encoding="utf-8")
    out = tmp_path / "out.json"
    env = {**os.environ, "ALLS_NVIM_OUT": str(out), "PYTHONPATH": str(ROOT)}
    subprocess.run([nvim, "--headless", "--clean", "-u", "init.lua", "-c", "luafile check.lua", "typo.alls"],
                   cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["ok"], result
    [diagnostic] = result["diagnostics"]
    assert diagnostic["code"] == "ALS203" and diagnostic["source"] == "alls"
    assert (diagnostic["lnum"], diagnostic["col"], diagnostic["end_col"]) == (0, 28, 41)
    assert diagnostic["severity"] == 1  # vim.diagnostic.severity.ERROR
    assert "did you mean `precision_mode`?" in diagnostic["message"]
