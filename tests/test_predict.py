"""Using a trained model: predict / evaluate from the shell, cg.load_checkpoint, fit's data forms,
validation and early stopping, losses written in .cat, and the old checkpoint format."""

import csv
import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.preprocessing import StandardScaler

import catgrad as cg
from catgrad import data
from catgrad.cli import main
from catgrad.train import checkpoint as ckpt
from catgrad.train import fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IRIS = os.path.join(ROOT, "examples", "iris.cat")
PRELUDE_LOSS = os.path.join(ROOT, "lang", "prelude", "loss.cat")


def _cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One CLI training run of the README's iris model, with a checkpoint."""
    d = tmp_path_factory.mktemp("run")
    ck = d / "iris.ckpt"
    rc = main(["train", IRIS, "--model", "mlp", "--data", "iris", "--optimizer", "adam(lr=1e-2)", "--epochs", "30",
               "--seed", "0", "--checkpoint", str(ck), "--json", "--quiet"])
    assert rc == 0
    return d, ck


def _numpy_logits(ck, x_raw, train_rows):
    """The iris mlp written out in numpy from the checkpoint's tensors, scaled by an independently
    fitted scikit-learn scaler: tanh(x W0 + b0) W1 + b1."""
    t = load_file(ck)
    Ws = sorted(k for k in t if k.startswith("param/") and k.endswith(".W"))
    (W0, W1), (b0, b1) = [t[k] for k in Ws], [t[k[:-2] + ".b"] for k in Ws]
    x = StandardScaler().fit(train_rows).transform(x_raw).astype(np.float32)
    return np.tanh(x @ W0 + b0) @ W1 + b1


def test_evaluate_reports_the_held_out_split_and_matches_train(trained, capsys):
    d, ck = trained
    rc, out, err = _cli(capsys, "train", IRIS, "--model", "mlp", "--data", "iris", "--optimizer", "adam(lr=1e-2)",
                        "--epochs", "30", "--seed", "0", "--json", "--quiet")
    assert rc == 0
    summary = json.loads(out.splitlines()[-1])
    rc, out, err = _cli(capsys, "evaluate", "--checkpoint", ck, "--data", "iris", "--json")
    assert rc == 0, err
    m = json.loads(out.splitlines()[-1])
    assert m["n"] == 30 and "held-out" in m["rows"]
    assert m["accuracy"] == summary["test_accuracy"]
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == 30 and cm.trace() / 30 == m["accuracy"] and cm.sum(1).tolist() == [10, 10, 10]
    # the same through the .cat file, and in words
    rc, out, _ = _cli(capsys, "evaluate", IRIS, "--checkpoint", ck, "--data", "iris")
    assert rc == 0 and out.startswith("iris (the held-out 0.2 of iris (seed 0), 30 rows): accuracy")


def test_evaluate_does_not_guess_the_held_out_rows_of_an_older_split_rule(trained, tmp_path, capsys):
    """A checkpoint whose split was made by another rule (no ``rule`` recorded, as before the split
    was scikit-learn's) is evaluated on all rows, and says so, rather than on rows it trained on."""
    _, ck = trained
    flat, meta = ckpt.load(ck)
    assert meta["preprocess"]["split"]["rule"] == data.SPLIT_RULE
    del meta["preprocess"]["split"]["rule"]
    ckpt.save(tmp_path / "old.ckpt", flat, meta)
    rc, out, err = _cli(capsys, "evaluate", "--checkpoint", tmp_path / "old.ckpt", "--data", "iris", "--json")
    assert rc == 0, err
    m = json.loads(out.splitlines()[-1])
    assert m["n"] == 150 and m["rows"].startswith("all rows (the checkpoint's train/test split rule")


def test_predict_csv_matches_a_numpy_transcription(trained, capsys):
    d, ck = trained
    iris = data.load("iris")
    train, _ = iris.split(0.2, 0)
    cols = list(iris.feature_names)
    src = d / "new.csv"
    with open(src, "w", newline="") as fh:  # columns in another order, plus a column the model ignores
        w = csv.writer(fh)
        w.writerow(["note"] + cols[::-1])
        for r in iris.x[::7]:
            w.writerow(["x"] + list(r[::-1]))
    out_path = d / "preds.csv"
    rc, out, err = _cli(capsys, "predict", "--checkpoint", ck, "--data", src, "-o", out_path)
    assert rc == 0, err
    rows = list(csv.reader(open(out_path)))
    assert rows[0] == ["predicted", "p_setosa", "p_versicolor", "p_virginica"]
    logits = _numpy_logits(ck, iris.x[::7], train.x)
    want = [iris.classes[k] for k in np.argmax(logits, 1)]
    assert [r[0] for r in rows[1:]] == want
    p = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_load_checkpoint_in_python(trained):
    d, ck = trained
    iris = data.load("iris")
    train, _ = iris.split(0.2, 0)
    model = cg.load_checkpoint(ck)
    assert isinstance(model, cg.Trained) and model.classes == ("setosa", "versicolor", "virginica")
    np.testing.assert_allclose(model.outputs(iris.x), _numpy_logits(ck, iris.x, train.x), rtol=1e-5, atol=1e-5)
    assert model.predict(iris.x[:2]) == ["setosa", "setosa"]
    assert model.evaluate(iris)["accuracy"] > 0.9


def test_model_checked_against_the_checkpoint(trained, tmp_path, capsys):
    d, ck = trained
    other = tmp_path / "other.cat"
    other.write_text("import nn\ndef mlp = nn.dense[4, 8] >> tanh >> nn.dense[8, 3]\n")
    rc, out, err = _cli(capsys, "predict", other, "--checkpoint", ck, "--data", "iris")
    assert rc == 1 and "does not match the one this checkpoint was trained for" in err and out == ""
    # comments and layout do not change the model
    same = tmp_path / "same.cat"
    same.write_text("# reformatted\nimport nn\n\ndef mlp =\n  nn.dense[4, 16] >> tanh\n  >> nn.dense[16, 3]\n")
    rc, out, err = _cli(capsys, "predict", same, "--checkpoint", ck, "--data", "iris")
    assert rc == 0 and len(out.splitlines()) == 151
    rc, _, err = _cli(capsys, "evaluate", "--checkpoint", tmp_path / "none.ckpt", "--data", "iris")
    assert rc == 1 and "no such checkpoint file" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    rc, _, err = _cli(capsys, "predict", "--checkpoint", ck, "--data", bad)
    assert rc == 1 and "this file lacks sepal length (cm)" in err


def test_python_fit_checkpoint_needs_the_model_to_load(tmp_path):
    model = cg.load(IRIS)["mlp"]
    step = cg.compile(model, loss="cross_entropy", optimizer="adam(lr=1e-2)")
    tr, te = data.prepare("iris")
    fit(step, (tr.x, tr.y), epochs=2, batch_size=16, checkpoint=tmp_path / "c.ckpt")
    with pytest.raises(ckpt.CheckpointError, match=r"holds no model source.*model=\.\.\."):
        cg.load_checkpoint(tmp_path / "c.ckpt")
    t = cg.load_checkpoint(tmp_path / "c.ckpt", model=model)
    assert t.step == 16 and t.classes is None
    with pytest.raises(ckpt.CheckpointError, match="does not match"):
        cg.load_checkpoint(tmp_path / "c.ckpt", model=cg.load(IRIS)["mlp"] >> cg.ops.tanh(cg.f32["B", 3]))


def test_fit_takes_tuples_integer_labels_and_float64(tmp_path):
    """(x, y) with integer labels trains exactly like the Dataset with one-hot targets."""
    model = cg.load(IRIS)["mlp"]  # f32: float64 inputs are cast
    tr, _ = data.prepare("iris")
    step = cg.compile(model, loss="cross_entropy", optimizer="adam(lr=1e-2)")
    a = fit(step, tr, epochs=2, batch_size=16)
    b = fit(step, (tr.x, tr.y), epochs=2, batch_size=16)
    c = fit(step, (tr.x, np.eye(3)[tr.y]), epochs=2, batch_size=16)
    for r in (b, c):
        for k in a.state.params:
            assert a.state.params[k].tobytes() == r.state.params[k].tobytes()
    assert b.train_accuracy == a.train_accuracy
    with pytest.raises(cg.CatgradError, match=r"class labels must lie in \[0, 3\)"):
        fit(step, (tr.x, tr.y + 1), epochs=1)
    with pytest.raises(cg.CatgradError, match="x must hold numbers"):
        fit(step, (tr.x.astype(str), tr.y), epochs=1)
    with pytest.raises(cg.CatgradError, match="x has 120 rows but y has 119"):
        fit(step, (tr.x, tr.y[1:]), epochs=1)
    with pytest.raises(cg.CatgradError, match=r"y holds floats.*astype\(int\)"):
        fit(step, (tr.x, tr.y.astype(float)), epochs=1)
    with pytest.raises(cg.CatgradError, match="Dataset or a tuple"):
        fit(step, tr.x, epochs=1)


def test_validation_history_and_early_stopping():
    model = cg.load(IRIS)["mlp"]
    tr, te = data.prepare("iris")
    step = cg.compile(model, loss="cross_entropy", optimizer="adam(lr=5e-2)")
    res = fit(step, tr, validation=(te.x, te.y), epochs=200, batch_size=16, patience=4)
    assert res.stopped_early and res.best_epoch is not None
    vals = [h["val_loss"] for h in res.history]
    assert len(vals) == res.best_epoch + 4 and min(vals) == vals[res.best_epoch - 1]
    # the validation loss is the mean cross-entropy, written out in numpy at the returned (best) state
    logits = step.predict(res.state, te.x.astype(np.float32)).astype(np.float64)
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    assert vals[res.best_epoch - 1] == pytest.approx(np.mean(lse - logits[np.arange(len(te)), te.y]), rel=1e-5)
    assert res.history[res.best_epoch - 1]["val_accuracy"] == np.mean(np.argmax(logits, 1) == te.y)
    with pytest.raises(cg.CatgradError, match="needs validation data"):
        fit(step, tr, epochs=3, patience=2)


def test_a_loss_written_in_cat_trains_like_the_builtin(capsys):
    common = ["train", IRIS, "--model", "mlp", "--data", "iris", "--optimizer", "sgd(lr=0.1)", "--epochs", "3",
              "--json", "--quiet"]
    rc, out, err = _cli(capsys, *common, "--loss", f"{PRELUDE_LOSS}:softmax_cross_entropy")
    assert rc == 0, err
    rc, out2, err = _cli(capsys, *common, "--loss", "cross_entropy")
    a, b = json.loads(out.splitlines()[-1]), json.loads(out2.splitlines()[-1])
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5) and a["test_accuracy"] == b["test_accuracy"]
    rc, _, err = _cli(capsys, *common, "--loss", f"{PRELUDE_LOSS}:nope")
    assert rc == 1 and "has no definition 'nope'" in err


def test_compile_asks_for_a_loss_instead_of_guessing(capsys):
    model = cg.load(IRIS)["mlp"]
    with pytest.raises(cg.CatgradError, match="which loss\\?.*cross_entropy"):
        cg.compile(model)
    bits = cg.Para([cg.Param("t", cg.bit[1])], cg.trace(cg.bit[1], cg.bit[1])(lambda t, a: t & a))
    assert cg.compile(bits, optimizer="gradient_update()").loss.body == cg.loss.xor(cg.bit[1]).body
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"catgrad {cg.__version__}"


def test_first_format_checkpoint_resumes(tmp_path):
    """A run checkpointed in the .npz format of catgrad 0.1 continues bit for bit."""
    model = cg.load(IRIS)["mlp"]
    tr, _ = data.prepare("iris")
    step = cg.compile(model, loss="cross_entropy", optimizer="adam(lr=1e-2)")
    full = fit(step, tr, epochs=4, batch_size=16)
    fit(step, tr, epochs=2, batch_size=16, checkpoint=tmp_path / "new.ckpt")
    flat, meta = ckpt.load(tmp_path / "new.ckpt")
    doc = json.dumps(dict(meta, format=ckpt.FORMAT_NPZ)).encode()
    np.savez(tmp_path / "old.npz", **flat, **{ckpt.META: np.frombuffer(doc, dtype=np.uint8)})
    resumed = fit(step, tr, epochs=4, batch_size=16, resume=tmp_path / "old.npz")
    for k in full.state.params:
        assert full.state.params[k].tobytes() == resumed.state.params[k].tobytes()
