"""RDA on the bit-parallel evaluator, the bit encoders, and ``catgrad train`` on bit models."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import catgrad as cg
from catgrad.circuit import Evaluator, aiger, blif, tools
from catgrad.circuit.rda import RDATrainer
from catgrad.circuit.readout import votes
from catgrad.data import DataError
from catgrad.train.circuit import netlist_of
from catgrad.train.encode import parse
from circuit_models import ROOT

RDA_IRIS = cg.load(ROOT / "examples" / "rda_iris.cat")
RDA = cg.load(ROOT / "examples" / "rda.cat")


def compiled_trajectory(model, x, y):
    step = cg.compile(model, loss="xor", optimizer="gradient_update()")
    state, out = step.init(0), []
    for xi, yi in zip(x, y):
        state, _ = step(state, xi, yi)
        out.append(np.concatenate([np.ravel(v) for v in state.params.values()]))
    return out


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 10).flatmap(lambda n: st.tuples(arrays(np.bool_, (n, 8)), arrays(np.bool_, (n, 3)))))
def test_one_example_per_step_is_the_compiled_rda_step(data):
    x, y = data
    for model, xs, ys in ((RDA_IRIS["or_neuron"], x[:, :4], y[:, 0]), (RDA_IRIS["polynomial"], x[:, 4:], y[:, 1]),
                          (RDA["iris3"], x, y)):
        tr = RDATrainer(model)
        theta = tr.flatten(model.init(0))
        want = compiled_trajectory(model, xs, ys)
        for xi, yi, w in zip(xs, ys, want):
            theta, _ = tr.update(theta, xi[None], np.reshape(yi, (1, -1)))
            np.testing.assert_array_equal(theta, w)


def _per_example_updates(model, theta, x, y, dy=None):
    """pi_P R[f]((theta, x_b), dy_b) for each example, with cg.evaluate (the reference)."""
    params = RDATrainer(model).unflatten(theta)
    rf = cg.R(model.body)
    out = []
    for xi, yi in zip(x, y):
        pred = cg.evaluate(model.body, *params, xi)[0]
        d = (pred ^ yi.reshape(pred.shape)) if dy is None else np.ones(pred.shape, bool)
        grads = cg.evaluate(rf, *params, xi, d)[: len(params)]
        out.append(np.concatenate([np.ravel(g) for g in grads]))
    return np.array(out)


def _balanced_reference(model, theta, x, y):
    """The balanced vote written out: each example's cotangent split by target value, pulled
    back with cg.evaluate, counted and weighted by the inverse frequency of that value."""
    params = RDATrainer(model).unflatten(theta)
    rf = cg.R(model.body)
    w1, w0 = 1 / y.sum(), 1 / (~y).sum()
    asks, matters = 0.0, 0.0
    for xi, yi in zip(x, y):
        pred = cg.evaluate(model.body, *params, xi)[0]
        wrong = pred ^ yi

        def pull(d):
            return np.concatenate([np.ravel(g) for g in cg.evaluate(rf, *params, xi, d)[: len(params)]]).astype(int)

        asks = asks + w1 * pull(wrong & yi) + w0 * pull(wrong & ~yi)
        matters = matters + w1 * pull(yi) + w0 * pull(~yi)
    return theta ^ (2 * asks > matters)


@pytest.mark.parametrize("combine", ["parity", "vote", "balanced"])
def test_batched_updates_combine_the_per_example_updates(combine):
    rng = np.random.default_rng(3)
    model = RDA["iris3"]
    tr = RDATrainer(model, combine)
    theta = rng.random(tr.n_p) < 0.5
    x, y = rng.random((40, 8)) < 0.5, np.eye(3, dtype=bool)[rng.integers(0, 3, 40)]
    g = _per_example_updates(model, theta, x, y)
    if combine == "parity":
        want = theta ^ np.logical_xor.reduce(g, axis=0)
    elif combine == "balanced":
        want = _balanced_reference(model, theta, x, y)
    else:
        h = _per_example_updates(model, theta, x, y, dy="ones")
        want = theta ^ (2 * g.sum(0) > h.sum(0))
    got, m = tr.update(theta, x, y)
    np.testing.assert_array_equal(got, want)
    assert m == int(np.any(tr.predict(theta, x) != y, axis=1).sum())


def test_vote_sets_a_table_entry_to_the_majority_label_of_the_batch():
    model = RDA["iris3"]
    tr = RDATrainer(model, "vote")
    theta = tr.flatten(model.init(0))
    x = np.zeros((5, 8), bool)
    y = np.eye(3, dtype=bool)[[1, 1, 1, 2, 2]]  # one cell; label 1 three times, then 2 twice
    theta, _ = tr.update(theta, x, y)
    np.testing.assert_array_equal(tr.predict(theta, x[:1])[0], [0, 1, 0])
    last = RDATrainer(model, "parity")
    t1 = last.flatten(model.init(0))
    for i in range(5):  # one example per step: the last label wins
        t1, _ = last.update(t1, x[i:i + 1], y[i:i + 1])
    np.testing.assert_array_equal(last.predict(t1, x[:1])[0], [0, 0, 1])


def test_the_balanced_vote_sets_entries_by_class_frequency_not_majority():
    # one cell, ten examples: class 1 four times, class 2 six times. Plain vote sets only the
    # majority's bit. Balanced, with w1 = 1/10 (ten target 1s) and w0 = 1/20: class 1's bit has
    # asks 4 w1 = 0.4 against matters 4 w1 + 6 w0 = 0.7, and 2 * 0.4 > 0.7 flips it.
    model = RDA["iris3"]
    x = np.zeros((10, 8), bool)
    y = np.eye(3, dtype=bool)[[1] * 4 + [2] * 6]
    got = {}
    for combine in ("vote", "balanced"):
        tr = RDATrainer(model, combine)
        theta, _ = tr.update(tr.flatten(model.init(0)), x, y)
        got[combine] = tr.predict(theta, x[:1])[0].tolist()
    # balanced, class 1's bit: asks 4 w1 = 0.4, matters 4 w1 + 6 w0 = 0.7 -> flips; class 0's: 0 asks
    assert got == {"vote": [False, False, True], "balanced": [False, True, True]}


def test_encoders_are_fitted_on_the_training_rows():
    train = np.array([[0.0, 10.0], [4.0, 20.0], [2.0, 15.0]])
    test = np.array([[5.0, 0.0], [1.9, 14.0]])
    enc = parse("threshold").fit(train)
    np.testing.assert_array_equal(enc(test), [[1, 0], [0, 0]])
    np.testing.assert_array_equal(enc(train), (train - [0, 10]) / [4, 10] >= 0.5)
    np.testing.assert_array_equal(parse("thermometer:2").fit(train)(test), enc(test))
    t4 = parse("thermometer:4").fit(train)
    codes = t4(np.array([[0.0, 10.0], [1.0, 12.6], [2.0, 15.0], [3.0, 17.6], [4.0, 20.0]]))
    assert codes.shape == (5, 6)
    np.testing.assert_array_equal(codes[:, :3].sum(1), [0, 1, 2, 3, 3])  # levels, bits below set
    assert all(np.all(np.diff(c[:3].astype(int)) <= 0) for c in codes)
    g = parse("threshold", "global").fit(np.array([[0.0, 16.0], [0.0, 8.0]]))
    np.testing.assert_array_equal(g(np.array([[8.0, 7.0]])), [[1, 0]])


@pytest.mark.parametrize("spec,x,msg", [
    ("threshold", [[1.0, 2.0], [1.0, 3.0]], "feature 0 is constant"),
    ("thermometer:1", [[1.0], [2.0]], "K >= 2"),
    ("thermometer:x", [[1.0], [2.0]], "integer K"),
    ("onehot", [[1.0], [2.0]], "unknown encoding"),
    ("threshold", [[1.0], [np.nan]], "finite"),
    ("threshold", np.array([["a"], ["b"]]), "numbers"),
])
def test_data_that_cannot_be_binarised_is_a_clear_error(spec, x, msg):
    with pytest.raises(DataError, match=msg):
        parse(spec).fit(np.asarray(x))


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "catgrad", *args], capture_output=True, text=True)
    assert "Traceback" not in r.stderr
    return r


def test_two_class_iris_from_the_command_line(tmp_path):
    r = cli("train", str(ROOT / "examples" / "rda_iris.cat"), "--model", "or_neuron", "--data", "iris",
            "--classes", "0,1", "--encode", "threshold", "--test-fraction", "0.5", "--epochs", "5", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    assert res["test_accuracy"] >= 0.98 and res["optimizer"] == "gradient_update()" and res["n_train"] == 50


def test_three_class_iris_trains_checkpoints_and_compiles_to_the_same_circuit(tmp_path):
    ck = tmp_path / "iris3.npz"
    r = cli("train", str(ROOT / "examples" / "rda.cat"), "--model", "iris3", "--data", "iris", "--encode",
            "thermometer:3", "--epochs", "10", "--checkpoint", str(ck), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    assert res["test_accuracy"] >= 0.9 and res["n_test"] == 30
    # the checkpoint's circuit predicts what training measured
    from catgrad.data import load
    from catgrad.train.checkpoint import load as load_ck

    nl, prog = netlist_of(str(ROOT / "examples" / "rda.cat"), "iris3", str(ck))
    assert len(nl.gates) == res["gates"]
    flat, meta = load_ck(ck)
    enc = parse(meta["encoder"]["encoder"])
    enc.lo, enc.hi = np.array(meta["encoder"]["lo"]), np.array(meta["encoder"]["hi"])
    ds = load("iris")
    _, test = ds.split(test_fraction=0.2, seed=0)
    pred = Evaluator(nl)(enc(test.x))  # the circuit ends in the vote readout: it outputs the class index
    assert nl.output_names() == ["class[0]", "class[1]"]
    cls = pred[:, 0] + 2 * pred[:, 1]
    assert np.mean(cls == test.y) == res["test_accuracy"]
    model = RDA["iris3"]
    params = [flat[f"param/{p.name}"] for p in model.params]
    ref = np.array([cg.evaluate(model, *params, xi)[0] for xi in enc(test.x)])
    np.testing.assert_array_equal(cls, votes(ref, 3))
    for target, suffix in (("verilog", "v"), ("aiger", "aig"), ("blif", "blif")):
        out = tmp_path / f"iris3.{suffix}"
        r = cli("compile", str(ROOT / "examples" / "rda.cat"), "--model", "iris3", "--checkpoint", str(ck),
                "--target", target, "-o", str(out))
        assert r.returncode == 0, r.stderr
    if tools.which(*tools.ABC):
        assert tools.cec(str(tmp_path / "iris3.blif"), str(tmp_path / "iris3.aig"))
    if tools.which("iverilog"):
        np.testing.assert_array_equal(tools.simulate(nl, enc(test.x), "iris3"), pred)


@pytest.mark.parametrize("args,msg", [
    (["--optimizer", "adam(lr=0.1)"], "Reverse Derivative Ascent"),
    (["--encode", "thermometer:3"], "takes 4 input bits"),
    (["--encode", "thermometer:0"], "K >= 2"),
    (["--classes", "0,7"], "not a class"),
    (["--loss", "mse"], "xor loss"),
])
def test_bad_bit_training_arguments_are_clear_errors(args, msg):
    classes = [] if "--classes" in args else ["--classes", "0,1"]
    r = cli("train", str(ROOT / "examples" / "rda_iris.cat"), "--model", "or_neuron", "--data", "iris", *classes, *args,
            "--quiet")
    assert r.returncode == 1 and msg in r.stderr, r.stderr


def test_a_csv_with_a_constant_column_is_refused(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c,d,label\n" + "\n".join(f"{i},{i % 3},{1},{i * 2},{i % 2}" for i in range(20)) + "\n")
    r = cli("train", str(ROOT / "examples" / "rda_iris.cat"), "--model", "or_neuron", "--data", str(csv), "--quiet")
    assert r.returncode == 1 and "feature 2 is constant" in r.stderr


def test_the_checkpoint_never_replaces_the_model_file(tmp_path):
    src = tmp_path / "m.cat"
    src.write_text((ROOT / "examples" / "rda_iris.cat").read_text())
    before = src.read_text()
    r = cli("train", str(src), "--model", "or_neuron", "--data", "iris", "--classes", "0,1", "--checkpoint", str(src),
            "--quiet")
    assert r.returncode == 1 and "refusing" in r.stderr and src.read_text() == before


def test_the_whole_rda_step_compiles_to_one_circuit():
    """cg.compile(..., backend="circuit"): the closed step (model, xor loss, gradient update) is
    itself a boolean circuit; its trajectory equals the numpy backend's."""
    model = RDA["iris3"]
    s1 = cg.compile(model, loss="xor", optimizer="gradient_update()")
    s2 = cg.compile(model, loss="xor", optimizer="gradient_update()", backend="circuit")
    a, b = s1.init(0), s2.init(0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        x, y = rng.random(8) < 0.5, np.eye(3, dtype=bool)[rng.integers(3)]
        a, oa = s1(a, x, y)
        b, ob = s2(b, x, y)
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
        np.testing.assert_array_equal(oa.pred, ob.pred)
        assert oa.loss == ob.loss
    assert [p.width for p in s2.program.netlist.in_ports] == [48, 1, 8, 3]  # table, the bit lr (1), x, y
