"""Parse throughput of `alls.parse` against lark's own LALR parse.

What it measures, single-threaded, in one process:

1. A deterministic synthetic script (``--lines``, default 20,000) mixing the
   statements real scripts hold: quantization_param with globs and layer
   lists, activation clipping, finetune, calibration, normalization,
   comments, blank lines and compiler commands. ``alls.parse`` (full AST with
   spans) and a plain ``lark.Lark(..., parser="lalr")`` parse of the same
   text with the same grammar file (a lark ``Tree``) each run ``--repeat``
   times; the median is reported as lines/s, with the ratio alls/lark.
2. Error recovery: the same script with one syntax error on its first
   line (an unclosed bracket), so that every statement is parsed on its
   own, against the clean script, both with ``alls.parse_partial``; the
   ratio shows that recovery costs about a clean parse, whatever the size
   (it was quadratic: a 20,000-line script with one error took minutes).
3. The corpus of real scripts (every ``*.alls`` under ``../shared/corpus``
   relative to the repository root), parsed once per repeat by each parser;
   the median total time is reported. Skipped with a note if absent.

Run from anywhere:

    python tests/bench/bench_parse.py [--lines N] [--repeat K]

It prints figures only and always exits 0: there are no timing assertions.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from importlib import resources
from pathlib import Path

import lark

import alls

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"


def _layers(rng: random.Random) -> str:
    """A layer selector: a name, a glob or a list of names, Hailo style."""
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(["{conv*}", "{dw*}", "{output_layer*}", "{ew_add*}", "{net/conv*}"])
    names = [f"{rng.choice(['conv', 'dw', 'fc', 'ew_add'])}{rng.randint(1, 120)}" for _ in range(rng.randint(1, 6))]
    return names[0] if kind < 0.45 else "[" + ", ".join(names) + "]"


def _statement(rng: random.Random) -> str:
    """One line of the synthetic script (a statement, a comment or blank)."""
    r = rng.random()
    n = rng.randint(1, 120)
    if r < 0.30:
        mode = rng.choice(["a8_w8", "a8_w4", "a16_w16", "a16_w8", "a8_w8_a16"])
        bias = rng.choice(["", ", bias_mode=double_scale_initialization", ", bias_mode=single_scale_decomposition"])
        return f"quantization_param({_layers(rng)}, precision_mode={mode}{bias})"
    if r < 0.55:
        lo, hi = -rng.uniform(0.1, 40.0), rng.uniform(1.0, 60.0)
        return (f"pre_quantization_optimization(activation_clipping, layers=[conv{n}], mode=manual, "
                f"clipping_values=[{lo:.3f}, {hi:.3f}])")
    if r < 0.60:
        return ("post_quantization_optimization(finetune, policy=enabled, learning_rate=0.0001, epochs=4, "
                f"dataset_size=4000, loss_layer_names=[conv{n}, output_layer1], loss_types=[l2rel, ce], "
                "loss_factors=[1.0, 2.5])")
    if r < 0.64:
        return "model_optimization_config(calibration, batch_size=8, calibset_size=64)"
    if r < 0.67:
        return f"normalization{n % 3 + 1} = normalization([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])"
    if r < 0.69:
        return f"model_optimization_flavor(optimization_level={n % 5}, compression_level={n % 6})"
    if r < 0.74:
        return f"compilation_param(conv{n}, resources_allocation_strategy=manual_scs_selection)"
    if r < 0.77:
        return f"buffers(conv{n}, conv{n + 1}, {rng.choice([2, 4, 8])})"
    if r < 0.80:
        return f"conv{n}_d0, conv{n}_d1 = defuse(conv{n}, 2)"
    if r < 0.83:
        return f"ctx_{n % 4}.place({n % 8}, [conv{n}, conv{n + 1}])"
    if r < 0.92:
        return rng.choice(["# per-layer overrides", "# --- optimization ---", "# TODO: retune clipping"])
    return ""


def synthetic(lines: int, seed: int = 20240501) -> str:
    """A deterministic script of exactly ``lines`` lines."""
    rng = random.Random(seed)
    return "\n".join(_statement(rng) for _ in range(lines)) + "\n"


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()  # start each run from the same heap; the collector stays on while timing
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=20_000, help="lines of the synthetic script (default 20000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement; the median is kept (default 5)")
    args = ap.parse_args()

    grammar = resources.files("alls.grammar").joinpath("alls.lark").read_text(encoding="utf-8")
    plain = lark.Lark(grammar, parser="lalr", start="script", maybe_placeholders=False)
    alls.parse("model_optimization_flavor(optimization_level=2)\n")  # build alls' parser outside the timing

    text = synthetic(args.lines)
    n_lines = text.count("\n")
    statements = len(alls.parse(text, "<bench>").statements)
    t_alls = median_seconds(lambda: alls.parse(text, "<bench>"), args.repeat)
    t_lark = median_seconds(lambda: plain.parse(text), args.repeat)

    rows = [("synthetic", "alls.parse", 1, n_lines, len(text), t_alls),
            ("synthetic", "lark (Tree)", 1, n_lines, len(text), t_lark)]
    broken = "quantization_param(conv0, precision_mode=a8_w8\n" + text
    assert [d.code for d in alls.parse_partial(broken, "<bench>")[1]] == ["ALS102"]
    t_clean = median_seconds(lambda: alls.parse_partial(text, "<bench>"), args.repeat)
    t_broken = median_seconds(lambda: alls.parse_partial(broken, "<bench>"), args.repeat)
    print(f"lark {lark.__version__}, median of {args.repeat} runs; synthetic script: "
          f"{n_lines} lines, {statements} statements, {len(text)} chars")

    files = sorted(CORPUS.rglob("*.alls")) if CORPUS.is_dir() else []
    if files:
        sources = [(str(f), f.read_bytes().decode("utf-8", errors="replace")) for f in files]
        corpus_lines = sum(len(s.splitlines()) for _, s in sources)
        chars = sum(len(s) for _, s in sources)

        def run_alls():
            for name, source in sources:
                alls.parse(source, name)

        def run_lark():
            for _, source in sources:
                plain.parse(source)

        rows.append(("corpus", "alls.parse", len(files), corpus_lines, chars, median_seconds(run_alls, args.repeat)))
        rows.append(("corpus", "lark (Tree)", len(files), corpus_lines, chars, median_seconds(run_lark, args.repeat)))
    else:
        print(f"note: no corpus at {CORPUS}; corpus rows skipped")

    # Corpus lines are long (some hold lists of thousands of items), so MB/s is shown too.
    print(f"\n{'input':<10} {'parser':<12} {'files':>6} {'lines':>8} {'seconds':>9} {'lines/s':>10} {'MB/s':>6}")
    for source, parser, nfiles, lines, chars, secs in rows:
        print(f"{source:<10} {parser:<12} {nfiles:>6} {lines:>8} {secs:>9.4f} {lines / secs:>10,.0f} "
              f"{chars / secs / 1e6:>6.2f}")
    print(f"recovery: {len(broken) / 1e6:.2f} MB with one error {t_broken:.3f} s, clean {t_clean:.3f} s, "
          f"ratio {t_broken / t_clean:.2f}")
    for i in range(0, len(rows), 2):
        print(f"{rows[i][0]}: alls/lark throughput ratio {rows[i + 1][-1] / rows[i][-1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
