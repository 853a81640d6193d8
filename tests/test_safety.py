"""Nothing lost, nothing hangs: output paths, bounded reads, and one located error line
(exit 1, never "internal error") for each kind of bad input a careless or hostile user can give."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from catgrad import files
from catgrad.train import checkpoint as ckpt
from catgrad.cli import main
from catgrad.errors import CatgradError
from catgrad.train import checkpoint as ckpt

MODELS = """\
import nn

def mlp = nn.dense[4, 8] >> tanh >> nn.dense[8, 3]

def reg(x : f32[B, 4]) -> f32[B, 1] {
  param W : f32[4, 1] ~ glorot
  x @ W
}
"""


@pytest.fixture
def cat(tmp_path):
    p = tmp_path / "models.cat"
    p.write_text(MODELS)
    return str(p)


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "internal error" not in err and "Traceback" not in err
    return rc, out, err


def train(capsys, cat, *extra, model="mlp", data="iris", epochs=1):
    return run(capsys, "train", cat, "--model", model, "--data", data, "--epochs", epochs, "--quiet", *extra)


def iris_csv(path, header=True, label_names=False):
    from sklearn.datasets import load_iris

    b = load_iris()
    names = ["setosa", "versicolor", "virginica"]
    with open(path, "w") as f:
        if header:
            f.write("a,b,c,d,y\n")
        for x, y in zip(b.data, b.target):
            f.write(",".join(map(str, x)) + "," + (names[y] if label_names else str(y)) + "\n")
    return str(path)


# -- 1. never destroy what the user had ----------------------------------------------------------


@pytest.mark.parametrize("flag", ["--checkpoint", "compile -o"])
def test_a_file_catgrad_did_not_write_is_kept(cat, tmp_path, capsys, flag):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    if flag == "--checkpoint":
        rc, _, err = train(capsys, cat, "--checkpoint", notes)
    else:
        rc, _, err = run(capsys, "compile", cat, "--model", "mlp", "-o", notes)
    assert rc == 1 and "was not written by catgrad" in err and "--force" in err
    assert notes.read_text() == "my notes\n"
    assert sorted(os.listdir(tmp_path)) == ["models.cat", "notes.txt"]


def test_force_replaces_a_regular_file_but_never_the_runs_inputs(cat, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    rc, _, _ = train(capsys, cat, "--checkpoint", notes, "--force")
    assert rc == 0 and ckpt.is_checkpoint(notes)
    data = iris_csv(tmp_path / "d.csv")
    before = open(data).read()
    for target in (cat, data):
        rc, _, err = train(capsys, cat, "--checkpoint", target, "--force", data=data)
        assert rc == 1 and "an input of this run" in err
    assert open(data).read() == before and open(cat).read() == MODELS
    rc, _, err = run(capsys, "compile", cat, "--model", "mlp", "-o", cat, "--force")
    assert rc == 1 and "an input of this run" in err and open(cat).read() == MODELS


def test_a_checkpoint_or_earlier_output_is_replaced(cat, tmp_path, capsys):
    ck = tmp_path / "c.npz"
    assert train(capsys, cat, "--checkpoint", ck)[0] == 0
    assert train(capsys, cat, "--checkpoint", ck, epochs=2)[0] == 0
    assert int(ckpt.load(ck)[0]["step"]) == 8
    out = tmp_path / "step.txt"
    for emit in ("program", "python", "dot"):
        assert run(capsys, "compile", cat, "--model", "mlp", "--loss", "mse", "--emit", emit, "-o", out)[0] == 0
    assert out.read_text().startswith("digraph")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")  # nothing to lose
    assert train(capsys, cat, "--checkpoint", empty)[0] == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_never_a_fifo_directory_device_or_link(cat, tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    link = tmp_path / "link.npz"
    link.symlink_to(notes)
    for target, what in ((fifo, "FIFO"), (tmp_path / "dir", "directory"), ("/dev/null", "device"), (link, "symbolic link")):
        rc, _, err = train(capsys, cat, "--checkpoint", target, *(["--force"] if what != "symbolic link" else []))
        assert rc == 1 and what in err, (target, err)
    assert notes.read_text() == "x" and os.path.islink(link)


def test_checked_before_training_starts(cat, tmp_path, capsys, monkeypatch):
    from catgrad.train import loop

    calls = []
    monkeypatch.setattr(loop, "epoch_order", lambda *a: calls.append(a))
    notes = tmp_path / "n.npz"
    notes.write_text("not a checkpoint")
    rc, _, _ = train(capsys, cat, "--checkpoint", notes)
    assert rc == 1 and calls == []


def test_stale_temporaries_of_the_same_path_are_removed(tmp_path):
    p = tmp_path / "c.npz"
    stale = tmp_path / ".c.npz.abc123.tmp"
    stale.write_bytes(b"x" * 1000)
    other = tmp_path / ".d.npz.abc123.tmp"  # another file's: not ours to remove
    other.write_bytes(b"y")
    ckpt.save(p, {"param/w": np.zeros(2)}, {"k": 1})
    assert sorted(os.listdir(tmp_path)) == [".d.npz.abc123.tmp", "c.npz"]


def test_sigterm_exits_143_and_keeps_the_last_checkpoint(cat, tmp_path):
    ck = tmp_path / "c.npz"
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-m", "catgrad", "train", cat, "--model", "mlp", "--data", "iris",
                          "--epochs", "1000000", "--batch", "4", "--checkpoint", ck, "--checkpoint-every", "3", "--quiet"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.time() + 60
    while not ck.exists() and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 143, err
    assert err.strip() == f"catgrad: terminated; the last good checkpoint {ck} is kept"
    flat, meta = ckpt.load(ck)
    assert int(flat["step"]) > 0 and sorted(os.listdir(tmp_path)) == ["c.npz", "models.cat"]


def test_nan_stop_says_kept_only_when_a_checkpoint_exists(cat, tmp_path, capsys):
    data = tmp_path / "d.csv"
    rows = ["a,b,c,d,y"] + [f"{i},{i + 1},{-i},{i * 2},{i + 0.5}" for i in range(30)]
    data.write_text("\n".join(rows) + "\n")
    with np.errstate(all="ignore"):
        rc, _, err = train(capsys, cat, "--checkpoint", tmp_path / "c.npz", "--optimizer", "sgd(lr=1e30)",
                           "--loss", "mse", "--batch", "2", model="reg", data=data)
    assert rc == 1 and "at step 2 " in err and "no checkpoint was written yet" in err and "learning rate" in err
    assert "is kept" not in err and not (tmp_path / "c.npz").exists()


# -- 2. bounded time and memory ---------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_only_regular_files_are_read(cat, tmp_path, capsys):
    fifo = tmp_path / "f.csv"
    os.mkfifo(fifo)
    for args, what in (([cat, "--data", fifo], "FIFO"), ([cat, "--data", "/dev/zero"], "device"),
                       ([cat, "--data", "iris", "--resume", fifo], "FIFO"), ([fifo, "--data", "iris"], "FIFO")):
        rc, _, err = run(capsys, "train", *args[:1], "--model", "mlp", *args[1:], "--quiet")
        assert rc == 1 and what in err, err


def test_huge_models_are_refused_with_the_size_needed(tmp_path, capsys):
    p = tmp_path / "big.cat"
    p.write_text("import nn\ndef a = nn.dense[4, 100000000000] >> nn.dense[100000000000, 3]\n"
                 "def b = nn.dense[4, 100000] >> nn.dense[100000, 3]\n")
    rc, _, err = run(capsys, "train", p, "--model", "a", "--data", "iris", "--quiet")
    assert rc == 1 and "parameters need 2.9 TiB" in err and "limit" in err
    rc, _, err = run(capsys, "compile", p, "--model", "a")
    assert rc == 1 and "TiB" in err
    rc, _, err = run(capsys, "train", p, "--model", "b", "--data", "iris", "--quiet", "--batch", "10000000")
    assert rc == 1 and "--batch 10000000 needs about" in err


def _npz_with_header(path, name, shape, dtype="<f8"):
    """An .npz whose member claims ``shape`` in its header but holds almost nothing."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name + ".npy", buf.getvalue() + b"\0" * 64)


def test_npz_sizes_are_checked_from_headers_before_decompressing(tmp_path):
    from catgrad import data

    _npz_with_header(tmp_path / "h.npz", "x", (10**6, 10**6))
    with pytest.raises(data.DataError, match="claims shape .*limit"):
        data.load(tmp_path / "h.npz")
    with pytest.raises(ckpt.CheckpointError, match="claims shape"):
        ckpt.load(tmp_path / "h.npz")
    _npz_with_header(tmp_path / "n.npz", "x", (-3,))
    with pytest.raises(data.DataError, match="negative shape"):
        data.load(tmp_path / "n.npz")
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("x.txt", "hello")
    for load, err in ((data.load, data.DataError), (ckpt.load, ckpt.CheckpointError)):
        with pytest.raises(err, match="'x.txt' is not a .npy array"):
            load(tmp_path / "z.npz")


def test_memory_limit_can_be_set(monkeypatch, tmp_path):
    from catgrad import data

    monkeypatch.setenv("CATGRAD_MAX_BYTES", "1000")
    np.savez(tmp_path / "d.npz", x=np.zeros((100, 2)), y=np.zeros(100, int))
    with pytest.raises(data.DataError, match="limit of 1000 B"):
        data.load(tmp_path / "d.npz")
    p = iris_csv(tmp_path / "i.csv")
    with pytest.raises(data.DataError, match="larger than the limit for CSV files"):
        data.load(p)


def test_csv_is_read_in_blocks(tmp_path, monkeypatch):
    from catgrad import data

    monkeypatch.setattr(data, "_CSV_BLOCK", 7)  # many blocks, a partial last one
    ds = data.load(iris_csv(tmp_path / "i.csv"))
    ref = data.load("iris")
    np.testing.assert_array_equal(ds.x, ref.x)
    np.testing.assert_array_equal(ds.y, ref.y)


def test_long_optimizer_chains_and_sign_runs(capsys):
    from catgrad.optim.parse import parse

    opt = parse(" >> ".join(["clip_norm(1)"] * 200) + " >> sgd(lr=0.1)")
    assert repr(opt).count("clip_norm") == 200
    t = time.time()
    with pytest.raises(CatgradError, match="combines more than 256 optimizers"):  # was a RecursionError
        parse(" >> ".join(["clip_norm(1)"] * 8000) + " >> sgd(lr=0.1)")
    assert time.time() - t < 2
    with pytest.raises(CatgradError, match="lr must be >= 0"):
        parse("adam(lr=" + "-" * 5001 + "1)")
    with pytest.raises(CatgradError, match="nested more than 64 deep at column"):
        parse("adam(lr=" + "(" * 100 + "1" + ")" * 100 + ")")


def _check(tmp_path, capsys, src, name="p.cat"):
    p = tmp_path / name
    p.write_text(src)
    t = time.time()
    rc, _, err = run(capsys, "check", p)
    return rc, err, time.time() - t


def test_frontend_long_pipelines_check_and_huge_ones_fail_fast_with_a_location(tmp_path, capsys):
    rc, err, _ = _check(tmp_path, capsys, "def a : f32[3] -> f32[3] = " + " >> ".join(["relu"] * 20000) + "\n")
    assert rc == 0, err
    rc, err, _ = _check(tmp_path, capsys, "def a : f32[3] -> f32[3] = " + "(" * 5000 + "relu" + ")" * 5000 + "\n")
    assert rc == 0, err
    rc, err, secs = _check(tmp_path, capsys, "def x = relu\n\ndef a : f32[3] -> f32[3] = " + " >> ".join(["relu"] * 160000) + "\n")
    assert rc == 1 and "p.cat:3:1: error: 'a' is too large to check" in err and secs < 10
    assert max(map(len, err.splitlines())) < 400  # the long line is shown as a window


def test_did_you_mean_stays_linear(tmp_path, capsys):
    src = "".join(f"def name{i} = nme{i}\n" for i in range(3000))
    rc, err, _ = _check(tmp_path, capsys, src)
    assert rc == 1 and "3000 errors" in err
    assert err.count("did you mean") == 20


# -- 3. every user error is a user error ------------------------------------------------------------


def test_each_bad_input_is_one_located_error(cat, tmp_path, capsys):
    np.savez(tmp_path / "ok.npz", x=np.zeros((9, 4)), y=np.arange(9) % 3)
    iris = iris_csv(tmp_path / "iris.csv")
    cases = [
        (["--seed", "-1"], "--seed must be"),
        (["--data", iris, "--label", "9"], "label column 9 is out of range"),
        (["--data", iris, "--label", "-6"], "label column -6 is out of range"),
        (["--data", iris_csv(tmp_path / "nohead.csv", header=False, label_names=True)], "line 1 looks like data"),
        (["--optimizer", "adam(lr=-1)"], "lr must be >= 0"),
        (["--optimizer", "sgd(lr=1e39)"], "float32"),
        (["--optimizer", "adam(lr=---------1)"], "lr must be >= 0"),
        (["--optimizer", "adam(b1=1.5)"], "b1 must lie in [0, 1]"),
        (["--optimizer", "adam(eps=nan)"], "unknown name 'nan'"),
    ]
    for extra, msg in cases:
        rc, _, err = train(capsys, cat, *extra)
        assert rc == 1 and msg in err, (extra, err)
        assert len(err.strip().splitlines()) == 1


def test_bad_source_files_are_located(tmp_path, capsys):
    rc, err, _ = _check(tmp_path, capsys, "def a : f32[" + "9" * 5000 + "] -> f32[3] = relu\n")
    assert rc == 1 and "p.cat:1:13: error: the integer 99999999999999999999... is too large" in err
    rc, err, _ = _check(tmp_path, capsys, 'import "/etc/passwd" as p\n')
    assert rc == 1 and "only .cat files can be imported" in err and "root:" not in err
    os.symlink(tmp_path / "l2.cat", tmp_path / "l1.cat")
    os.symlink(tmp_path / "l1.cat", tmp_path / "l2.cat")
    rc, err, _ = _check(tmp_path, capsys, 'import "l1.cat" as p\n')
    assert rc == 1 and "p.cat:1:1: error: cannot import \"l1.cat\": a loop of symbolic links" in err


def test_higher_order_nesting_is_not_recursion(tmp_path, capsys):
    src = ("import nn\n"
           "def a = nn.layer[4, 4](nn.layer[4, 4](relu))\n"
           "def tw(f)(x : f32[B, n]) -> f32[B, n] = f(f(x))\n"
           "def b = tw(tw(sin))\n"
           "def c : f32[2, 3] -> f32[2, 3] = b\n"
           "def d : f32[5, 4] -> f32[5, 4] = a\n")
    rc, err, _ = _check(tmp_path, capsys, src)
    assert rc == 0, err
    from catgrad.frontend.module import loads

    m = loads(src)
    x = np.linspace(-1, 1, 6).reshape(2, 3).astype(np.float32)
    np.testing.assert_allclose(np.asarray(m["c"](x)[0]), np.sin(np.sin(np.sin(np.sin(x)))), rtol=1e-6)
    assert len(m["d"].params) == 4  # two dense layers: W and b each


@pytest.mark.parametrize("src, where", [
    ("def f : f32[3] -> f32[3] = g\ndef g : f32[3] -> f32[3] = relu >> f\n", "p.cat:2:36"),
    ("def f(g) = f(f(g))\ndef h : f32[3] -> f32[3] = f(relu)\n", "p.cat:1:"),
    ("def f(x : f32[3]) -> f32[3] = f(x)\n", "p.cat:1:31"),
])
def test_real_recursion_is_still_an_error(tmp_path, capsys, src, where):
    rc, err, _ = _check(tmp_path, capsys, src)
    assert rc == 1 and "is recursive" in err and where in err


def test_resume_refuses_a_different_loss_and_damaged_metadata(cat, tmp_path, capsys):
    ck = tmp_path / "c.npz"
    assert train(capsys, cat, "--checkpoint", ck)[0] == 0
    rc, _, err = train(capsys, cat, "--resume", ck, "--loss", "mse", epochs=2)
    assert rc == 1 and "loss 'softmax_cross_entropy', now 'mse'" in err
    flat, meta = ckpt.load(ck)

    def tampered(name, change_meta=None, change_flat=None):
        m = json.loads(json.dumps(meta))
        f = dict(flat)
        if change_meta:
            change_meta(m)
        if change_flat:
            change_flat(f)
        p = tmp_path / name
        ckpt.save(p, f, {k: v for k, v in m.items() if k != "format"})
        return p

    cases = [
        (tampered("neg.npz", change_flat=lambda f: f.update(step=np.int64(-5))), "step counter is [-5]"),
        (tampered("pos.npz", lambda m: m["position"].update(epoch=-1)), "position.epoch must be a whole number"),
        (tampered("nopos.npz", lambda m: m.pop("position")), "'position' is missing"),
        (tampered("bs.npz", lambda m: m["loop"].update(batch_size=0)), "loop.batch_size"),
        (tampered("run.npz", lambda m: m["running"].update(loss="x")), "running.loss must be a number"),
        (tampered("batch.npz", lambda m: m["position"].update(batch=99)), "an epoch has 4 batches"),
        (tampered("sig.npz", lambda m: m.update(signature=None)), "different model or optimizer"),
    ]
    for p, msg in cases:
        rc, _, err = train(capsys, cat, "--resume", p, "--checkpoint", tmp_path / "out.npz", epochs=3)
        assert rc == 1 and msg in err, (p, err)


def test_data_beyond_the_models_dtype_is_refused_by_name(cat, tmp_path, capsys):
    from sklearn.datasets import load_iris

    b = load_iris()
    p = tmp_path / "big.csv"
    p.write_text("a,b,c,d,y\n" + "".join(f"{x[0] * 1e307},{x[1]},{x[2]},{x[3]},{y}\n" for x, y in zip(b.data, b.target)))
    rc, _, err = train(capsys, cat, "--no-standardize", data=p)
    assert rc == 1 and "feature 'a' of row 1" in err and "float32" in err
    rc, out, err = train(capsys, cat, data=p)  # standardised first: fine
    assert rc == 0, err


def test_standardizer_is_exact_and_does_not_overflow():
    from catgrad.data import Standardizer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * [1.0, 1e300, 1e-300]
    s = Standardizer.fit(x)
    assert np.all(np.isfinite(s.mean)) and np.all(np.isfinite(s.std))
    np.testing.assert_allclose(s.mean[0], x[:, 0].mean(), rtol=1e-13)
    np.testing.assert_allclose(s.std[0], x[:, 0].std(), rtol=1e-13)
    np.testing.assert_allclose(s.std[1] / 1e300, (x[:, 1] / 1e300).std(), rtol=1e-13)
