"""`alls lsp`: the language server on standard input and output."""

from __future__ import annotations

from alls.commands import common


def run(args) -> int:
    from alls.lsp import serve

    serve()  # raises AllsError (ALS011) without pygls; main reports it
    return common.EXIT_OK
