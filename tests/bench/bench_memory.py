"""Peak memory and time of the guide's default finetune on CenterFace 320x320, images streamed.

The scenes (`datasets.face_scenes`, drawn 64 at a time with seeds 0, 64, 128 ...; (N, 320, 320, 3)
float32) are written once to a `.npy` in the test-model cache; each measured run is a child process that memory-maps it
(`np.load(mmap_mode="r")`) and calls `Runner.quantize(images, finetune=True)` with the script
`post_quantization_optimization(finetune, policy=enabled, dataset_size=N[, epochs=E])` (the default
calibration: 64 images in batches of 8), within ``--memory-limit``. The peak resident set is the
child's ``ru_maxrss`` (`resource.getrusage(RUSAGE_CHILDREN)`), images included; the time of
training the layers (the report's per-layer ``seconds``, rows gathered and checkpoints included) is
given beside the whole.

    python tests/bench/bench_memory.py [--images 2048] [--epochs E] [--memory-limit 4GiB]

Without ``--epochs`` the epochs are the default (`finetune_epochs`: 1024 steps a layer). Skipped
when CenterFace or scikit-image is unavailable; prints figures and exits 0.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

CHILD = """
import json, sys, time
import numpy as np
from alls.runtime import Runner
model, images, script, limit = sys.argv[1:5]
runner = Runner(model, input_shapes=(1, 3, 320, 320), progress=False, memory_limit=limit)
runner.load_script(script)
data = np.load(images, mmap_mode="r")
started = time.perf_counter()
qmodel = runner.quantize(data, finetune=True)
seconds = time.perf_counter() - started
trained = qmodel.report["finetune"]
print(json.dumps({"seconds": seconds, "layers": len(trained), "kept": sum(r["kept"] for r in trained),
                  "training": sum(r["seconds"] for r in trained), "steps": sum(r["steps"] for r in trained)}))
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


def measure(model: Path, images: Path, count: int, epochs: int | None, limit: str) -> dict:
    """One child run: its figures, its peak resident set (bytes) and the load average before it."""
    script = (f"post_quantization_optimization(finetune, policy=enabled, dataset_size={count}"
              f"{f', epochs={epochs}' if epochs else ''})\n")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), str(images), script, limit],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the run failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return {**figures, "peak_bytes": peak, "wall": wall, "load": load}


def main() -> None:
    import datasets
    import models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, help="finetune epochs (default: the script's default)")
    parser.add_argument("--memory-limit", default="4GiB")
    args = parser.parse_args()
    try:
        model = models.centerface()
        images = scenes(args.images)
    except (models.Unavailable, datasets.Unavailable) as exc:
        print(f"centerface: skipped ({exc})")
        return
    size = args.images * 320 * 320 * 3 * 4
    result = measure(model, images, args.images, args.epochs, args.memory_limit)
    print(f"CenterFace 320x320, finetune on {args.images} images ({size / 2**30:.2f} GiB memory-mapped), "
          f"epochs {args.epochs or 'default'}, memory limit {args.memory_limit}:")
    print(f"  quantize {result['seconds']:.0f} s (child wall {result['wall']:.0f} s), peak RSS "
          f"{result['peak_bytes'] / 2**30:.2f} GiB, {result['layers']} layers trained ({result['kept']} kept), "
          f"load average {result['load']:.2f} before the run, {os.getloadavg()[0]:.2f} after")
    print(f"  of which training the layers {result['training']:.0f} s ({result['steps']} steps, "
          f"{1e3 * result['training'] / max(result['steps'], 1):.1f} ms a step; the rest is calibration, the "
          "integer pass and the float targets)")


if __name__ == "__main__":
    main()
