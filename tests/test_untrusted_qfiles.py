"""Quantized files as a format: a manifest with a checksum of every member, strict dtypes on load,
external weights embedded at save time; anything else is ALS509."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from hostile import assert_refused, conv_weight, model, run_isolated, snapshot
from onnx import TensorProto, helper

import alls
from alls.runtime import Runner, load
from alls.runtime.session.model import _digest

SCRIPT = "model_optimization_config(calibration, batch_size=4, calibset_size=8)\n"


def _proto():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    return model(nodes, {"w": conv_weight()})


def _calib(n=8):
    return np.random.default_rng(1).uniform(0, 1, (n, 8, 8, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q")
    runner = Runner(_proto())
    runner.load_script(SCRIPT)
    runner.quantize(_calib(), progress=False)
    runner.save(folder / "q.npz")
    return folder / "q.npz"


def _members(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _rewrite(path, out, change, manifest: bool = False):
    """``path``'s members changed by ``change(members)``, written to ``out``; with ``manifest`` the
    manifest is brought in line too (a careful forger)."""
    members = _members(path)
    change(members)
    if manifest:
        meta = json.loads(members["meta.json"].tobytes())
        meta["manifest"] = {k: _digest(v) for k, v in members.items() if k != "meta.json"}
        members["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(out, **members)
    return out


def _refused(path) -> alls.Diagnostic:
    with pytest.raises(alls.AllsError) as error:
        load(path)
    assert [d.code for d in error.value.diagnostics] == ["ALS509"], error.value
    return error.value.diagnostics[0]


def test_a_good_file_loads_and_runs_alike(saved):
    assert np.array_equal(load(saved).run(_calib(2)).output, load(saved).run(_calib(2)).output)


def test_an_edited_script_is_refused(saved, tmp_path):
    def edit(m):
        m["script.alls"] = np.frombuffer(b"quantization_param({conv*}, precision_mode=a16_w16)\n", np.uint8)

    found = _refused(_rewrite(saved, tmp_path / "edited.npz", edit))
    assert "script.alls" in found.message and "checksum" in found.message
    found = _refused(_rewrite(saved, tmp_path / "forged.npz", edit, manifest=True))
    assert "plan" in found.message


@pytest.mark.parametrize("what", ["missing", "extra"])
def test_a_missing_or_extra_member_is_refused(saved, tmp_path, what):
    def edit(m):
        if what == "missing":
            del m["plan.json"]
        else:
            m["payload"] = np.zeros(3)

    assert ("plan.json" if what == "missing" else "payload") in _refused(_rewrite(saved, tmp_path / "x.npz", edit)).message


def test_a_member_of_the_wrong_dtype_is_refused_even_with_a_matching_manifest(saved, tmp_path):
    def edit(m):
        key = next(k for k in m if k.endswith("|weights"))
        m[key] = m[key].astype(np.float64)

    assert "not an integer" in _refused(_rewrite(saved, tmp_path / "x.npz", edit, manifest=True)).message


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"format": "alls-quantized-model", "version": 2}'])
def test_a_bad_meta_json_is_refused(saved, tmp_path, payload):
    def edit(m):
        m["meta.json"] = np.frombuffer(payload, np.uint8)

    _refused(_rewrite(saved, tmp_path / "x.npz", edit))


def test_bad_info_json_with_a_matching_manifest_is_als509(saved, tmp_path):
    def edit(m):
        info = json.loads(m["info.json"].tobytes())
        first = next(iter(info["layers"]))
        info["layers"][first]["out"] = "garbage"
        m["info.json"] = np.frombuffer(json.dumps(info).encode(), np.uint8)

    _refused(_rewrite(saved, tmp_path / "x.npz", edit, manifest=True))


def test_cli_eval_of_a_tampered_file_is_a_coded_error(saved, tmp_path):
    _rewrite(saved, tmp_path / "bad.npz", lambda m: m.pop("info.json"))
    np.save(tmp_path / "x.npy", _calib(2))
    before = snapshot(tmp_path)
    assert_refused(run_isolated(["eval", "bad.npz", "--data", "x.npy"], tmp_path, timeout=300), {"ALS509"})
    assert snapshot(tmp_path) == before


def test_external_weights_are_embedded_at_save_time(tmp_path, monkeypatch):
    from onnx.external_data_helper import set_external_data

    proto = _proto()
    w = onnx.numpy_helper.to_array(proto.graph.initializer[0])
    src = tmp_path / "model"
    src.mkdir()
    (src / "weights.bin").write_bytes(w.tobytes())
    tensor = proto.graph.initializer[0]
    set_external_data(tensor, location="weights.bin", length=w.nbytes)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    onnx.save(proto, src / "m.onnx")
    runner = Runner(src / "m.onnx")
    runner.load_script(SCRIPT)
    runner.quantize(_calib(), progress=False)
    runner.save(tmp_path / "q.npz")
    expected = runner.infer(_calib(2)).output
    (src / "weights.bin").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "weights.bin").write_bytes((w * 7).tobytes())  # a planted file in the working folder
    monkeypatch.chdir(elsewhere)
    np.testing.assert_array_equal(load(tmp_path / "q.npz").run(_calib(2)).output, expected)


@pytest.mark.parametrize("bad", [123, None, b"model.onnx"])
def test_runner_and_load_type_check_their_arguments(bad):
    with pytest.raises(TypeError, match="not"):
        Runner(bad)
    with pytest.raises(TypeError, match="not"):
        load(bad)
