"""Write syntaxes/alls.tmLanguage.json, the TextMate grammar, from alls' catalogue.

The lexical rules follow grammar/alls.lark (comments, strings, globs,
numbers, constants, names); the command, sub-command and value lists come
from `alls.catalogue`. Run it after the catalogue changes:

    python editors/vscode/build_grammar.py

tests/test_editors.py fails while the committed grammar differs from what
this writes.
"""

from __future__ import annotations

import json
import pathlib
import re

from alls.catalogue import COMMANDS
from alls.types import Enum, ListOf

HERE = pathlib.Path(__file__).resolve().parent
TARGET = HERE / "syntaxes" / "alls.tmLanguage.json"


def _words(words) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


def _enum_values() -> set[str]:
    values = set()
    for command in COMMANDS.values():
        specs = [command, *(command.subcommands or {}).values()]
        for spec in specs:
            for arg in (*spec.positional, *spec.keywords.values()):
                kind = arg.type.item if isinstance(arg.type, ListOf) else arg.type
                if isinstance(kind, Enum):
                    values.update(kind.values)
    return values


def grammar() -> dict:
    quantization = [c.name for c in COMMANDS.values() if c.interpreted]
    compiler = [c.name for c in COMMANDS.values() if not c.interpreted]
    subcommands = {s for c in COMMANDS.values() for s in (c.subcommands or {})}
    # Each name-like rule starts only where a token starts (the lookbehind), so a
    # scan never re-reads a long layer name from each of its characters.
    edge = r"(?<![A-Za-z0-9_\-./*?])"
    name = r"[A-Za-z_][A-Za-z0-9_\-./]*"
    target = r"[A-Za-z0-9_{}][A-Za-z0-9_\-./{}*?]*"  # assignment targets may be globs: {} = defuse_block(...)
    patterns = [
        {"name": "comment.line.number-sign.alls", "match": r"#.*$"},
        {"name": "string.quoted.double.alls", "match": r'"[^"\n]*"'},
        {"name": "invalid.illegal.string.alls", "match": r"\"[^\"\n]*$|'[^'\n]*'?"},
        {"name": "support.function.quantization.alls", "match": rf"\b(?:{_words(quantization)})\b(?=\s*\()"},
        {"name": "support.function.compiler.alls", "match": rf"\b(?:{_words(compiler)})\b(?=\s*\()"},
        {"name": "entity.name.function.alls", "match": rf"{edge}{name}(?=\s*\()"},
        {"match": rf"^\s*((?:{target}\s*,\s*)*{target})\s*(=)(?=\s*{name}\s*\()",
         "captures": {"1": {"name": "variable.other.target.alls"}, "2": {"name": "keyword.operator.assignment.alls"}}},
        {"match": rf"{edge}({name})\s*(=)",
         "captures": {"1": {"name": "variable.parameter.alls"}, "2": {"name": "keyword.operator.assignment.alls"}}},
        {"name": "support.type.subcommand.alls", "match": rf"(?<=\()\s*(?:{_words(subcommands)})\b(?=\s*[,)])"},
        {"name": "constant.language.alls", "match": r"\b(?:True|False|None|true|false|null)\b"},
        {"name": "support.constant.value.alls", "match": rf"\b(?:{_words(_enum_values())})\b(?![\w\-./])"},
        {"name": "constant.numeric.alls", "match": r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])"},
        {"name": "string.regexp.glob.alls", "match": rf"{edge}[A-Za-z0-9_\-./*?\[\]]*\{{[^}}\s]*\}}[A-Za-z0-9_\-./*?{{}}\[\]]*"},
        {"name": "variable.other.layer.alls", "match": rf"{edge}[A-Za-z0-9_\-./*?]+"},
        {"name": "punctuation.section.parens.alls", "match": r"[()]"},
        {"name": "punctuation.section.brackets.alls", "match": r"[\[\]]"},
        {"name": "punctuation.separator.comma.alls", "match": r","},
        {"name": "keyword.operator.assignment.alls", "match": r"="},
        {"name": "invalid.illegal.character.alls", "match": r"\S"},
    ]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "alls",
        "scopeName": "source.alls",
        "fileTypes": ["alls"],
        "comment": "Written by editors/vscode/build_grammar.py from alls' catalogue; do not edit by hand.",
        "patterns": patterns,
    }


def text() -> str:
    return json.dumps(grammar(), indent=2) + "\n"


if __name__ == "__main__":
    TARGET.write_text(text(), encoding="utf-8")
    print(f"wrote {TARGET}")
