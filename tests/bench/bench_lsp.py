"""How long the language server takes to show diagnostics after an edit.

What it measures, on a 1,000-line script (the first 1,000 lines of the real
scripts under ``../shared/corpus``, or the shipped samples repeated when the
corpus is absent):

1. In process, against ``alls.check`` of the whole text (what `alls check`
   does, the reference): `Document.analyse` after typing one character on a
   line in the middle (one statement parsed again), after inserting a line
   at the top (every statement moved, none parsed again), and with a fresh
   cache (everything parsed). Median of ``--repeat`` runs each, and the
   ratio to ``alls.check``.
2. End to end over stdio: ``alls lsp`` in a subprocess, driven by pygls'
   client, debounce off; the time from sending ``didChange`` (one
   character) to receiving its ``publishDiagnostics``. Median of
   ``--repeat`` edits. The target is 100 ms.

Run from anywhere:

    python tests/bench/bench_lsp.py [--lines N] [--repeat K]

It prints figures and the machine's load; it always exits 0: there are no
timing assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import alls
from alls.lsp.document import Document

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"


def script(lines: int) -> str:
    files = sorted(CORPUS.rglob("*.alls")) if CORPUS.is_dir() else sorted((ROOT / "samples").rglob("*.alls"))
    text = []
    while len(text) < lines:
        for path in files:
            text.extend(path.read_text(encoding="utf-8", errors="replace").split("\n"))
    return "\n".join(text[:lines]) + "\n"


def timed(run, repeat: int) -> float:
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(text: str, repeat: int) -> None:
    lines = text.split("\n")
    middle = len(lines) // 2
    reference = timed(lambda i: alls.check(text, "bench.alls"), repeat)

    document = Document("bench.alls")
    document.analyse(text)

    def edit(i: int) -> None:
        changed = list(lines)
        changed[middle] = changed[middle] + " " * (i + 1)
        document.analyse("\n".join(changed))

    def insert(i: int) -> None:
        document.analyse("\n" * (i + 1) + text)

    typing = timed(edit, repeat)
    shifted = timed(insert, repeat)
    fresh = timed(lambda i: Document("bench.alls").analyse(text), repeat)
    print(f"in process, {len(lines) - 1} lines (median of {repeat}):")
    print(f"  alls.check, whole text (reference)   {1000 * reference:7.1f} ms")
    for label, seconds in (("one character typed mid-script", typing), ("a line inserted at the top", shifted),
                           ("fresh cache", fresh)):
        print(f"  {label:<37}{1000 * seconds:7.1f} ms  ({seconds / reference:.2f} x alls.check)")


async def end_to_end(text: str, repeat: int) -> None:
    from lsprotocol import types as lsp
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("bench", "1")
    received: dict[int, float] = {}
    arrived = asyncio.Event()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: lsp.PublishDiagnosticsParams):
        received[params.version] = time.perf_counter()
        arrived.set()

    await client.start_io(sys.executable, "-m", "alls", "lsp")
    await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(),
                                                       initialization_options={"debounceMs": 0}))
    client.initialized(lsp.InitializedParams())
    with tempfile.TemporaryDirectory() as folder:
        uri = Path(folder, "bench.alls").as_uri()
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "alls", 1, text)))
        await _wait(received, 1, arrived)
        middle = text.count("\n") // 2
        latencies = []
        for version in range(2, repeat + 2):
            change = lsp.TextDocumentContentChangePartial(
                lsp.Range(lsp.Position(middle, 0), lsp.Position(middle, 0)), " ")
            sent = time.perf_counter()
            client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version=version, uri=uri), [change]))
            await _wait(received, version, arrived)
            latencies.append(received[version] - sent)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    print(f"end to end over stdio, one character typed (median of {repeat}): "
          f"{1000 * statistics.median(latencies):.1f} ms (min {1000 * min(latencies):.1f}, "
          f"max {1000 * max(latencies):.1f}); target 100 ms")


async def _wait(received: dict, version: int, arrived: asyncio.Event) -> None:
    while version not in received:
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    text = script(args.lines)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    in_process(text, args.repeat)
    asyncio.run(end_to_end(text, args.repeat))
    print(f"load average {os.getloadavg()[0]:.2f} afterwards")


if __name__ == "__main__":
    main()
