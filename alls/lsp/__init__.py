"""The language server of `.alls` scripts (`alls lsp`; the `lsp` extra installs pygls).

``alls.lsp.document``, ``complete`` and ``features`` hold its logic, as
functions of a script's text over the public API; ``server`` routes the
protocol's messages to them.
"""

from __future__ import annotations

import alls

__all__ = ["serve"]


def serve() -> None:
    """Serve the protocol on standard input and output.

    Raises `AllsError` (ALS011) when pygls is not installed.
    """
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError:
        raise alls.AllsError.of(
            "ALS011", "`alls lsp` needs pygls, which is not installed",
            "install the language server's extra: pip install 'alls[lsp]'") from None
    from alls.lsp.server import serve as _serve

    _serve()
