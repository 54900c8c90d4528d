"""Peak memory and time of the guide's default finetune on CenterFace 320x320, images streamed.

The scenes (`datasets.face_scenes`, drawn 64 at a time with seeds 0, 64, 128 ...; (N, 320, 320, 3)
float32) are written once to a `.npy` in the test-model cache; each measured run is a child process that memory-maps it
(`np.load(mmap_mode="r")`) and calls `Runner.quantize(images, finetune=True)` with the script
`post_quantization_optimization(finetune, policy=enabled, dataset_size=N[, epochs=E])` (the default
calibration: 64 images in batches of 8), within ``--memory-limit``. The peak resident set is the
child's own ``ru_maxrss`` (`os.wait4`), images included; the time of
training the layers (the report's per-layer ``seconds``, rows gathered and checkpoints included) is
given beside the whole, and so are the bytes the run's stores wrote to disk (`Store.spilled`, summed
over every `Store` the child makes) and those they computed again from their inputs instead
(`Store.recomputed`).

    python tests/bench/bench_memory.py [--images 2048] [--epochs E] [--memory-limit 4GiB]

Without ``--epochs`` the epochs are the default (`finetune_epochs`: 1024 steps a layer). Skipped
when CenterFace or scikit-image is unavailable; prints figures and exits 0. ``--before REV`` also
runs git revision REV's sources (extracted to a temporary folder, their Numba kernels compiled by a
first small run that is not counted), alternating with the working tree's ``--repeat`` times, so
that both share the machine's load; each run's peak and CPU time (user and system, steadier than
the wall time on a shared machine) are its own child's (`os.wait4`), and the medians are printed:

    python tests/bench/bench_memory.py --images 128 --epochs 1 --before main --repeat 3

``--analyze`` measures `alls analyze` instead: a small network on large images (`patch_model`:
256x256x3, 0.75 MiB each, little arithmetic per byte), quantized on the first 64, on ``--images``
uniform random images written to a `.npy` in a temporary folder,
``python -m alls analyze q.npz --data x.npy -o report/ --json`` in a
child process, whose peak resident set is its own ``ru_maxrss`` (`os.wait4`). ``--before REV`` also
runs the same command on the sources of git revision REV (extracted to a temporary folder, without
``--memory-limit`` if that revision's command does not take it), in the same process, so the two
figures share the machine's load:

    python tests/bench/bench_memory.py --analyze --images 512 [--memory-limit 4GiB] [--before REV]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

CHILD = """
import json, sys, time
import numpy as np
from alls.runtime import Runner
from alls.runtime.exec import stream
stores = []  # every store of the run, to sum what they spilled to disk
made = stream.Store.__init__
def counted(self, *args, **kwargs):
    made(self, *args, **kwargs)
    stores.append(self)
stream.Store.__init__ = counted
model, images, script, limit = sys.argv[1:5]
runner = Runner(model, input_shapes=(1, 3, 320, 320), progress=False, memory_limit=limit)
runner.load_script(script)
data = np.load(images, mmap_mode="r")
started = time.perf_counter()
qmodel = runner.quantize(data, finetune=True)
seconds = time.perf_counter() - started
trained = qmodel.report["finetune"]
print(json.dumps({"seconds": seconds, "layers": len(trained), "kept": sum(r["kept"] for r in trained),
                  "training": sum(r["seconds"] for r in trained), "steps": sum(r["steps"] for r in trained),
                  "spilled": sum(s.spilled for s in stores),
                  "recomputed": sum(getattr(s, "recomputed", 0) for s in stores),
                  "stores": [[s.budget, s.spilled, getattr(s, "recomputed", 0)] for s in stores]}))
"""


def scenes(count: int) -> Path:
    """The ``count`` scenes as a .npy in the cache (made once)."""
    import datasets
    import models

    folder = models.cache_dir() / "face-scenes"
    made = sorted((int(p.name.split("-")[1]), p) for p in folder.glob("scenes-*-seed0.npy")) if folder.is_dir() else []
    larger = [p for n, p in made if n >= count]
    if larger:  # the first scenes of a larger set are the same scenes
        return larger[0]
    path = folder / f"scenes-{count}-seed0.npy"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        out = np.lib.format.open_memmap(partial, "w+", np.float32, (count, 320, 320, 3))
        for start in range(0, count, 64):
            out[start:start + 64] = datasets.face_scenes(min(64, count - start), seed=start)
        out.flush()
        del out
        os.replace(partial, path)
    return path


def measure(model: Path, images: Path, count: int, epochs: int | None, limit: str,
            env: dict[str, str] | None = None, cwd: Path = ROOT) -> dict:
    """One child run (in ``cwd``, with ``env``): its figures, its own peak resident set (bytes) and the
    load average before it."""
    import tempfile

    script = (f"post_quantization_optimization(finetune, policy=enabled, dataset_size={count}"
              f"{f', epochs={epochs}' if epochs else ''})\n")
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(model), str(images), script, limit],
                                 stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the run failed:\n{err.read().decode(errors='replace')[-3000:]}")
        figures = json.loads(out.read().decode().strip().splitlines()[-1])
    return {**figures, "peak_bytes": usage.ru_maxrss * 1024, "wall": wall, "load": load,
            "cpu": usage.ru_utime + usage.ru_stime}


def compare(model: Path, images: Path, args: argparse.Namespace) -> None:
    """The working tree and revision ``args.before``, alternating, ``args.repeat`` runs each: every run and the medians."""
    import statistics
    import tempfile

    with tempfile.TemporaryDirectory(prefix="alls-bench-finetune-") as tmp:
        tree = source_tree(args.before, Path(tmp))
        trees = [("now", None, ROOT), (args.before, {**os.environ, "PYTHONPATH": str(tree)}, tree)]
        for _, env, cwd in trees:  # compile each tree's kernels once, uncounted
            measure(model, images, 16, 1, args.memory_limit, env, cwd)
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in trees}
        print(f"CenterFace 320x320, finetune on {args.images} images, epochs {args.epochs or 'default'}, "
              f"memory limit {args.memory_limit}:")
        for _ in range(args.repeat):
            for name, env, cwd in trees:
                result = measure(model, images, args.images, args.epochs, args.memory_limit, env, cwd)
                runs[name].append(result)
                print(f"  {name:>10}: quantize {result['seconds']:.0f} s (training the layers "
                      f"{result['training']:.0f} s), child CPU {result['cpu']:.0f} s, peak RSS "
                      f"{result['peak_bytes'] / 2**30:.2f} GiB, spilled {result['spilled'] / 2**30:.2f} GiB, "
                      f"load average {result['load']:.1f} before", flush=True)
        for name, results in runs.items():
            print(f"  median {name:>10}: quantize {statistics.median(r['seconds'] for r in results):.0f} s, "
                  f"training {statistics.median(r['training'] for r in results):.0f} s, the rest "
                  f"{statistics.median(r['seconds'] - r['training'] for r in results):.0f} s, child CPU "
                  f"{statistics.median(r['cpu'] for r in results):.0f} s, peak RSS "
                  f"{statistics.median(r['peak_bytes'] for r in results) / 2**30:.2f} GiB")
        print(f"  load average {os.getloadavg()[0]:.1f} after")


def child_peak(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[int, float, str]:
    """Run ``argv`` in ``cwd``: its own peak resident set (bytes), its wall time and its standard error's tail."""
    import tempfile

    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        err.seek(0)
        tail = err.read().decode(errors="replace")[-3000:]
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed:\n{tail}")
    return usage.ru_maxrss * 1024, wall, tail


def source_tree(revision: str, folder: Path) -> Path:
    """The sources of ``revision`` laid out as the package installs (``alls.runtime`` is ``runtime/``)."""
    tree = folder / "src"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (tree / "alls" / "runtime").symlink_to(tree / "runtime", target_is_directory=True)
    return tree


def patch_model(size: int) -> Any:
    """A small network on large images: (N, 3, size, size) -> 8x8 convolution of stride 8 (8 channels) -> ReLU
    -> 3x3 convolution (8) -> output: little arithmetic per byte of image, so the images dominate memory."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(0, 0.1, (8, 3, 8, 8)), "b1": np.zeros(8), "w2": rng.normal(0, 0.3, (8, 8, 3, 3)),
             "b2": np.zeros(8)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"], strides=[8, 8]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "patches", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                ("N", 3, size, size))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


PREPARE = """
import sys
import numpy as np
import onnx
sys.path.insert(0, sys.argv[1])
from bench_memory import patch_model
from alls.runtime import Runner
folder, count, size, output = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
shape = (count, size, size, 3)
if output == "q.npz":
    onnx.save(patch_model(size), f"{folder}/patches.onnx")
    with open(f"{folder}/x.npy", "wb") as f:  # written a part at a time: never resident whole
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        for start in range(0, count, 64):
            part = np.random.default_rng(start).uniform(0, 1, (min(64, count - start), *shape[1:]))
            f.write(part.astype(np.float32).tobytes())
runner = Runner(f"{folder}/patches.onnx", progress=False)
runner.quantize(np.array(np.load(f"{folder}/x.npy", mmap_mode="r")[:64])).save(f"{folder}/{output}")
"""


def analyze_memory(count: int, limit: str, before: str | None, size: int = 256) -> None:
    """Peak RSS of `alls analyze` on ``count`` memory-mapped images, now and (with ``before``) at a revision.
    The model and images are made in a child too: a child's ``ru_maxrss`` starts from its parent's peak at
    the fork, so this process stays small."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="alls-bench-analyze-") as tmp:
        folder = Path(tmp)
        prepare = [sys.executable, "-c", PREPARE, str(Path(__file__).parent), tmp, str(count), str(size)]
        subprocess.run([*prepare, "q.npz"], check=True, cwd=ROOT)
        command = ["-m", "alls", "analyze", str(folder / "q.npz"), "--data", str(folder / "x.npy"), "--json",
                   "--quiet", "--force"]
        print(f"alls analyze, 8x8/8 conv -> 3x3 conv on {count} images of {size}x{size}x3 "
              f"({count * size * size * 12 / 2**20:.0f} MiB memory-mapped), load average {os.getloadavg()[0]:.1f} before:")
        runs = [("now", [sys.executable, *command, "-o", str(folder / "now"), "--memory-limit", limit], None, ROOT)]
        if before:  # run from its tree: `python -m` puts the working folder first on the path
            tree = source_tree(before, folder)
            env = {**os.environ, "PYTHONPATH": str(tree)}
            help_text = subprocess.run([sys.executable, "-m", "alls", "analyze", "--help"], capture_output=True,
                                       text=True, cwd=tree, env=env).stdout
            extra = ["--memory-limit", limit] if "--memory-limit" in help_text else []
            subprocess.run([*prepare, "q-before.npz"], check=True, cwd=tree, env=env)  # its own model format
            old = [str(folder / "q-before.npz") if a.endswith("q.npz") else a for a in command]
            runs.append((before, [sys.executable, *old, "-o", str(folder / "before"), *extra], env, tree))
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"  (this process's own peak, the floor of each child's: {own / 2**20:.0f} MiB)")
        for name, argv, env, cwd in runs:
            peak, wall, _ = child_peak(argv, env, cwd)
            print(f"  {name:>10}: peak RSS {peak / 2**20:.0f} MiB, {wall:.0f} s, "
                  f"load average {os.getloadavg()[0]:.1f} after")


def main() -> None:
    import datasets
    import models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, help="finetune epochs (default: the script's default)")
    parser.add_argument("--memory-limit", default="4GiB")
    parser.add_argument("--analyze", action="store_true", help="measure `alls analyze` on the digits CNN instead")
    parser.add_argument("--before", metavar="REV", help="also run git revision REV's sources, alternating")
    parser.add_argument("--repeat", type=int, default=1, help="with --before: runs of each (default 1)")
    args = parser.parse_args()
    if args.analyze:
        analyze_memory(args.images, args.memory_limit, args.before)
        return
    try:
        model = models.centerface()
        images = scenes(args.images)
    except (models.Unavailable, datasets.Unavailable) as exc:
        print(f"centerface: skipped ({exc})")
        return
    if args.before:
        compare(model, images, args)
        return
    size = args.images * 320 * 320 * 3 * 4
    result = measure(model, images, args.images, args.epochs, args.memory_limit)
    print(f"CenterFace 320x320, finetune on {args.images} images ({size / 2**30:.2f} GiB memory-mapped), "
          f"epochs {args.epochs or 'default'}, memory limit {args.memory_limit}:")
    print(f"  quantize {result['seconds']:.0f} s (child wall {result['wall']:.0f} s, CPU {result['cpu']:.0f} s), peak RSS "
          f"{result['peak_bytes'] / 2**30:.2f} GiB, {result['layers']} layers trained ({result['kept']} kept), "
          f"load average {result['load']:.2f} before the run, {os.getloadavg()[0]:.2f} after")
    print(f"  spilled to disk {result['spilled'] / 2**30:.2f} GiB, computed again instead "
          f"{result['recomputed'] / 2**30:.2f} GiB; by store (budget: spilled, computed again): " + ", ".join(
              f"{b / 2**20:.0f} MiB: {s / 2**30:.2f}, {r / 2**30:.2f} GiB" for b, s, r in result["stores"] if s or r))
    print(f"  of which training the layers {result['training']:.0f} s ({result['steps']} steps, "
          f"{1e3 * result['training'] / max(result['steps'], 1):.1f} ms a step; the rest is calibration, the "
          "integer pass and the float targets)")


if __name__ == "__main__":
    main()
