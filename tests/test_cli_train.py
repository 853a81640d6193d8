"""``catgrad train`` end to end: JSON result, progress on stderr, checkpoints and resume,
and one clear error line (exit 1, no traceback, no partial file) for each kind of bad input."""

import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file
import pytest

from catgrad.cli import main

MODELS = """\
import nn

## 4 -> 8 (tanh) -> 3 logits, batched.
def mlp = nn.dense[4, 8] >> tanh >> nn.dense[8, 3]

## The same widths, f64.
def wide(x : f64[B, 4]) -> f64[B, 3] {
  param W : f64[4, 3] ~ glorot
  x @ W
}

## Wine: 13 features, 3 classes.
def wine(x : f64[B, 13]) -> f64[B, 3] {
  param W : f64[13, 3] ~ glorot
  param b : f64[3] ~ zeros
  x @ W + b
}

## One example at a time.
def single(x : f64[4]) -> f64[3] {
  param W : f64[4, 3] ~ glorot
  sigmoid(x @ W)
}
"""


@pytest.fixture
def cat(tmp_path):
    p = tmp_path / "models.cat"
    p.write_text(MODELS)
    return str(p)


def _train(capsys, *args):
    rc = main(["train", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_result_and_progress_on_stderr(cat, capsys):
    rc, out, err = _train(capsys, cat, "--model", "mlp", "--data", "iris", "--optimizer", "sgd(lr=0.2)",
                          "--epochs", "15", "--batch", "16", "--seed", "1", "--json")
    assert rc == 0
    res = json.loads(out.strip().splitlines()[-1])
    for k in ("train_accuracy", "test_accuracy", "train_loss", "epochs"):
        assert k in res
    assert res["epochs"] == 15 and res["steps"] == 15 * 8 and res["n_train"] == 120 and res["n_test"] == 30
    assert res["train_accuracy"] > 0.85 and res["test_accuracy"] > 0.8 and res["train_loss"] < 0.5
    assert "epoch 15: loss" in err and "epoch 1:" not in out and len(out.strip().splitlines()) == 1


def test_runs_as_a_subprocess(cat, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "catgrad", "train", cat, "--model", "single", "--data", "iris", "--optimizer",
         "sgd(lr=0.05)", "--loss", "mse", "--epochs", "2", "--batch", "1", "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["steps"] == 240 and res["loss"] == "mse" and res["train_accuracy"] is not None
    assert "epoch 2" in proc.stderr


def test_default_batch_follows_the_model(cat, capsys):
    rc, out, err = _train(capsys, cat, "--model", "single", "--data", "iris", "--loss", "mse", "--epochs", "1", "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["steps"] == 120  # per example
    rc, out, err = _train(capsys, cat, "--model", "mlp", "--data", "iris", "--epochs", "1", "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["steps"] == 4  # ceil(120 / 32)


def test_checkpoint_resume_continues_the_same_run(cat, tmp_path, capsys):
    common = [cat, "--model", "wine", "--data", "wine", "--optimizer", "momentum(lr=0.05)", "--batch", "10",
              "--seed", "3", "--json", "--quiet"]
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    rc, out_a, _ = _train(capsys, *common, "--epochs", "4", "--checkpoint", a)
    assert rc == 0
    rc, _, _ = _train(capsys, *common, "--epochs", "2", "--checkpoint", b)  # stop after 2 epochs ...
    assert rc == 0
    rc, out_b, _ = _train(capsys, *common, "--epochs", "4", "--resume", b, "--checkpoint", b)  # ... go on to 4
    assert rc == 0
    ja, jb = json.loads(out_a.splitlines()[-1]), json.loads(out_b.splitlines()[-1])
    for k in ("train_loss", "train_accuracy", "test_accuracy", "steps", "epochs"):
        assert ja[k] == jb[k], k
    za, zb = load_file(a), load_file(b)  # checkpoints are plain safetensors files
    assert za and sorted(za) == sorted(zb)
    for k in za:
        assert za[k].tobytes() == zb[k].tobytes(), k  # bitwise
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz", "models.cat"]


def test_checkpoint_from_a_different_model(cat, tmp_path, capsys):
    ck = tmp_path / "c.npz"
    assert _train(capsys, cat, "--model", "mlp", "--data", "iris", "--epochs", "1", "--checkpoint", ck, "--quiet")[0] == 0
    before = ck.read_bytes()
    rc, out, err = _train(capsys, cat, "--model", "wide", "--data", "iris", "--epochs", "2", "--resume", ck,
                          "--checkpoint", ck, "--quiet")
    assert rc == 1 and "different model" in err and "Traceback" not in err
    assert ck.read_bytes() == before


def test_non_finite_loss_names_the_step_and_keeps_last_checkpoint(cat, tmp_path, capsys):
    ck = tmp_path / "c.npz"
    with np.errstate(all="ignore"):
        rc, out, err = _train(capsys, cat, "--model", "wide", "--data", "iris", "--optimizer", "sgd(lr=1e30)",
                              "--loss", "mse", "--epochs", "3", "--batch", "8", "--checkpoint", ck,
                              "--checkpoint-every", "1", "--quiet")
    assert rc == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("catgrad: error: the loss became") and "at step" in line and "last good checkpoint" in line
    bad_step = int(line.split("at step ")[1].split()[0])
    z = load_file(ck)
    assert int(z["step"]) == bad_step - 1 and all(np.isfinite(z[k]).all() for k in z if k.startswith("param/"))
    assert sorted(os.listdir(tmp_path)) == ["c.npz", "models.cat"]


def test_csv_data_with_named_label(cat, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = np.argmax(x[:, :3], 1)
    lines = ["kind,a,b,c,d"] + [f"{'abc'[k]},{r[0]},{r[1]},{r[2]},{r[3]}" for k, r in zip(y, x)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    rc, out, err = _train(capsys, cat, "--model", "wide", "--data", tmp_path / "d.csv", "--label", "kind",
                          "--optimizer", "sgd(lr=0.5)", "--epochs", "30", "--batch", "8", "--json", "--quiet")
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["train_accuracy"] > 0.9


BAD = [
    (["--optimizer", "adan(lr=1)"], "unknown optimizer 'adan'"),
    (["--optimizer", "sgd(lrr=1)"], "no argument 'lrr'"),
    (["--optimizer", "__import__('os').system('true')"], "optimizer"),
    (["--model", "mlpp"], "no model named 'mlpp' (did you mean 'mlp'?)"),
    (["--data", "digits"], "takes inputs of width 4 (f32[B, 4]) but digits has 64 features"),
    (["--data", "breast_cancer", "--model", "wide", "--no-standardize"], "takes inputs of width 4"),
    (["--data", "BADCSV"], "line 3, column 2 ('b'): 'x' is not a number"),
    (["--data", "RAGGED"], "line 3 has 3 cells but the header has 5 columns"),
    (["--data", "BINARY"], "labels do not fit model mlp: it outputs f32[B, 3] but"),
    (["--data", "missing.csv"], "missing.csv: no such file"),
    (["--data", "WRONGKEYS"], "no array named 'x' or 'y'"),
    (["--resume", "missing.npz"], "missing.npz: no such checkpoint file"),
    (["--loss", "msee"], "unknown loss 'msee' (did you mean 'mse'?)"),
    (["--model", "single", "--batch", "4"], "use --batch 1"),
    (["--epochs", "-1"], "--epochs must be >= 0"),
    (["--checkpoint", "nodir/c.npz"], "does not exist"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_input_is_one_clear_error(cat, tmp_path, capsys, extra, message):
    (tmp_path / "bad.csv").write_text("a,b,c,d,y\n1,2,3,4,0\n1,x,3,4,1\n")
    (tmp_path / "ragged.csv").write_text("a,b,c,d,y\n1,2,3,4,0\n1,2,3\n")
    (tmp_path / "binary.csv").write_text("a,b,c,d,y\n1,2,3,4,0\n1,2,3,5,1\n2,2,3,4,0\n1,3,3,5,1\n")
    np.savez(tmp_path / "keys.npz", features=np.zeros((4, 4)), labels=np.zeros(4, int))
    subst = {"BADCSV": "bad.csv", "RAGGED": "ragged.csv", "BINARY": "binary.csv", "WRONGKEYS": "keys.npz"}
    extra = [str(tmp_path / subst[e]) if e in subst else e for e in extra]
    extra = [str(tmp_path / e) if e.startswith(("missing", "nodir")) else e for e in extra]
    before = sorted(os.listdir(tmp_path))
    # later options override earlier ones (argparse), so the defaults come first
    rc, out, err = _train(capsys, cat, "--model", "mlp", "--data", "iris", "--epochs", "1",
                          "--checkpoint", tmp_path / "out.npz", *extra, "--quiet")
    assert rc == 1
    assert message in err, err
    assert err.count("\n") <= 3 and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before  # no checkpoint, no temporary file left behind


def test_missing_cat_file(tmp_path, capsys):
    rc, out, err = _train(capsys, tmp_path / "nope.cat", "--model", "m", "--data", "iris")
    assert rc == 1 and "nope.cat: no such file" in err
