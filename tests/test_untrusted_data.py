"""Hostile arrays: .npy/.npz sizes read from the headers before anything is allocated (ALS027,
ALS028, ALS505), and a memory check that honours the process's and the cgroup's limits (ALS507)."""

from __future__ import annotations

import io
import textwrap
import zipfile

import numpy as np
import pytest
from hostile import assert_refused, run_isolated, snapshot

import alls
from alls.arrays import load_array, load_npz
from alls.memory import cgroup_available


def npy_header(shape, dtype="<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def codes_of(call) -> list[str]:
    with pytest.raises(alls.AllsError) as error:
        call()
    return [d.code for d in error.value.diagnostics]


def test_a_header_claiming_terabytes_is_refused_before_allocation(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_header((1 << 20, 1 << 20, 3)) + b"\0" * 64)
    assert path.stat().st_size < 200
    assert codes_of(lambda: load_array(path)) == ["ALS027"]


def test_a_sparse_file_over_the_limit_is_refused_without_reading(tmp_path):
    path = tmp_path / "sparse.npy"
    header = npy_header((17 << 30,), "|u1")  # 17 GiB of bytes, as a sparse file
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + (17 << 30))
    assert codes_of(lambda: load_array(path)) == ["ALS027"]


def test_a_truncated_file_is_als505(tmp_path):
    path = tmp_path / "short.npy"
    path.write_bytes(npy_header((100, 100)) + b"\0" * 400)
    assert codes_of(lambda: load_array(path)) == ["ALS505"]


def test_a_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert codes_of(lambda: load_array(path)) == ["ALS505"]


def test_a_device_is_not_an_array(tmp_path):
    assert codes_of(lambda: load_array("/dev/zero")) == ["ALS505"]


def test_the_array_limit_can_be_raised(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((10, 10), np.float32))
    assert codes_of(lambda: load_array(path, limits=alls.Limits(max_array_bytes=100))) == ["ALS027"]
    assert load_array(path).shape == (10, 10)


def test_an_npz_member_claiming_a_terabyte_is_refused(tmp_path):
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", npy_header((1 << 40,), "|u1") + b"\0" * 16)
    assert codes_of(lambda: load_npz(path)) == ["ALS027"]


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros(64 << 20, np.uint8))
    assert path.stat().st_size < 1 << 20
    assert codes_of(lambda: load_npz(path)) == ["ALS028"]
    assert load_npz(path, limits=alls.Limits(max_compression_ratio=10**6))["x"].size == 64 << 20


def test_an_npz_member_that_lies_about_its_size_is_als509(tmp_path):
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", npy_header((1000,), "|u1") + b"\0" * 10)
    assert codes_of(lambda: load_npz(path)) == ["ALS509"]


def test_cli_eval_of_a_zip_bomb_is_a_coded_error(tmp_path):
    np.savez_compressed(tmp_path / "bomb.npz", x=np.zeros(64 << 20, np.uint8))
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 3), np.float32))
    before = snapshot(tmp_path)
    assert_refused(run_isolated(["eval", "bomb.npz", "--data", "x.npy"], tmp_path, timeout=120), {"ALS028"})
    assert snapshot(tmp_path) == before


def test_cli_data_from_a_header_claiming_terabytes_is_a_coded_error(tmp_path):
    from hostile import conv_weight, model
    from onnx import helper, save

    save(model([helper.make_node("Conv", ["x", "w"], ["y"])], {"w": conv_weight()}), tmp_path / "m.onnx")
    (tmp_path / "calib.npy").write_bytes(npy_header((1 << 20, 1 << 20, 3)))
    before = snapshot(tmp_path)
    outcome = run_isolated(["quantize", "m.onnx", "--calib", "calib.npy", "-o", "q.npz"], tmp_path, timeout=120)
    assert_refused(outcome, {"ALS027"})
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ memory


def test_the_memory_check_honours_rlimit_as(tmp_path):
    program = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from alls.memory import available_memory
        import numpy as np
        from alls.arrays import load_array
        assert available_memory() < 3 << 30, available_memory()
        header = b""
        import io
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": (4 << 30,)})
        with open("big.npy", "wb") as f:
            f.write(buffer.getvalue())
            f.truncate(len(buffer.getvalue()) + (4 << 30))
        try:
            load_array("big.npy")
        except Exception as exc:
            print(type(exc).__name__, [d.code for d in exc.diagnostics])
    """)
    outcome = run_isolated([program], tmp_path, timeout=60, memory=8 << 30, python=True)
    assert outcome.returncode == 0 and "AllsError ['ALS507']" in outcome.stdout, outcome.text


def test_the_memory_check_reads_cgroup_v2_limits(tmp_path):
    group = tmp_path / "cg" / "jobs" / "job1"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("max\n")
    (group / "memory.current").write_text("100\n")
    (group.parent / "memory.max").write_text(str(1 << 30) + "\n")
    (group.parent / "memory.current").write_text(str(1 << 28) + "\n")
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/jobs/job1\n")
    assert cgroup_available(str(cgroup), str(tmp_path / "cg")) == (1 << 30) - (1 << 28)


def test_the_memory_check_reads_cgroup_v1_limits(tmp_path):
    group = tmp_path / "cg" / "memory" / "job"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text(str(2 << 30))
    (group / "memory.usage_in_bytes").write_text(str(1 << 30))
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("5:cpu:/x\n4:memory:/job\n")
    assert cgroup_available(str(cgroup), str(tmp_path / "cg")) == 1 << 30
