"""Checkpoint files: exact round trip, atomic replacement, no pickles, model mismatch."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from catgrad.train import checkpoint as ckpt
from catgrad.train.checkpoint import CheckpointError

floats = hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=64))


@settings(max_examples=25)
@given(st.dictionaries(st.from_regex(r"(param|opt)/[a-z][a-z0-9_.]{0,8}", fullmatch=True), floats, max_size=5),
       st.integers(0, 2**62))
def test_round_trip_is_bitwise(tmp_path_factory, arrays, step):
    path = tmp_path_factory.mktemp("c") / "run.ckpt.npz"
    flat = dict(arrays, step=np.int64(step))
    meta = {"signature": {"params": [["W", "f64[4, 3]"]]}, "position": {"epoch": 1, "batch": 2}, "running": {"loss": 0.1}}
    ckpt.save(path, flat, meta)
    back, m = ckpt.load(path)
    assert set(back) == set(flat)
    for k, v in flat.items():
        v = np.asarray(v)
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert back[k].tobytes() == v.tobytes()  # bitwise, NaN payloads included
    assert m["position"] == {"epoch": 1, "batch": 2} and m["running"]["loss"] == 0.1 and m["format"] == ckpt.FORMAT
    assert os.listdir(path.parent) == ["run.ckpt.npz"]  # no temporary file left behind


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "c.npz"
    ckpt.save(path, {"param/W": np.ones(3)}, {})
    before = path.read_bytes()

    def boom(fh):
        fh.write(b"partial bytes")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        ckpt.atomic_write(path, boom)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


def test_atomic_write_uses_rename_in_same_directory(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.dirname(dst), os.path.exists(src)))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ckpt.save(tmp_path / "c.npz", {"step": np.int64(1)}, {})
    assert seen == [(str(tmp_path), str(tmp_path), True)]


def test_missing_directory_and_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.save(tmp_path / "nope" / "c.npz", {"step": np.int64(0)}, {})
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        ckpt.load(tmp_path / "absent.npz")


def test_refuses_pickles_and_foreign_files(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"code": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="refusing to load"):
        ckpt.load(tmp_path / "obj.npz")
    (tmp_path / "p.npz").write_bytes(b"\x80\x04K\x01.")  # a pickle, neither zip nor safetensors
    with pytest.raises(CheckpointError, match="not a catgrad checkpoint"):
        ckpt.load(tmp_path / "p.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(2))
    with pytest.raises(CheckpointError, match="without the catgrad-checkpoint/1 tag"):
        ckpt.load(tmp_path / "plain.npz")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a catgrad checkpoint"):
        ckpt.load(tmp_path / "plain.safetensors")
    (tmp_path / "torn.ckpt").write_bytes((tmp_path / "plain.safetensors").read_bytes()[:-3])
    with pytest.raises(CheckpointError, match="not a catgrad checkpoint"):
        ckpt.load(tmp_path / "torn.ckpt")


def test_a_checkpoint_is_a_safetensors_file_torch_reads(tmp_path):
    """Parameters and metadata open with the safetensors library alone (here: into torch)."""
    import safetensors
    import safetensors.torch
    import torch

    W = np.arange(6.0).reshape(2, 3)
    ckpt.save(tmp_path / "c.ckpt", {"param/W": W, "step": np.int64(3)}, {"a": [1, 2]})
    tensors = safetensors.torch.load_file(str(tmp_path / "c.ckpt"))
    assert torch.equal(tensors["param/W"], torch.tensor(W)) and int(tensors["step"]) == 3
    with safetensors.safe_open(str(tmp_path / "c.ckpt"), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == ckpt.FORMAT and json.loads(meta["catgrad"])["a"] == [1, 2]


def test_first_format_npz_checkpoints_still_load(tmp_path):
    """A checkpoint written by catgrad's first format (.npz + JSON bytes) reads back as before."""
    doc = json.dumps({"format": ckpt.FORMAT_NPZ, "position": {"epoch": 2, "batch": 0}}).encode()
    np.savez(tmp_path / "old.npz", **{"param/W": np.ones(3), "step": np.int64(7),
                                      ckpt.META: np.frombuffer(doc, dtype=np.uint8)})
    flat, meta = ckpt.load(tmp_path / "old.npz")
    assert set(flat) == {"param/W", "step"} and int(flat["step"]) == 7 and meta["position"]["epoch"] == 2


def test_signature_mismatch_names_the_difference():
    sig = {"params": [["W", "f64[4, 3]"]], "opt": ["m/W"]}
    ckpt.check_signature("c.npz", sig, json.loads(json.dumps(sig)))  # equal: silent
    with pytest.raises(CheckpointError, match=r"c.npz: .*different model.*params: checkpoint has .*f64\[4, 3\]"):
        ckpt.check_signature("c.npz", sig, {"params": [["W", "f64[64, 10]"]], "opt": ["m/W"]})


def test_array_template_check():
    tmpl = {"param/W": np.zeros((4, 3)), "step": np.int64(0)}
    ckpt.check_arrays("c", {"param/W": np.ones((4, 3)), "step": np.int64(5)}, tmpl)
    with pytest.raises(CheckpointError, match="missing param/W"):
        ckpt.check_arrays("c", {"step": np.int64(5)}, tmpl)
    with pytest.raises(CheckpointError, match=r"'param/W' is float64\[3, 4\]"):
        ckpt.check_arrays("c", {"param/W": np.ones((3, 4)), "step": np.int64(5)}, tmpl)
