"""Tests for the classes of planted bugs a mutation run of the suite let through (issue 12,
section 5): each test fails when the corresponding small, realistic bug is planted.

Reverse derivatives (ties, non-involutive permutations, broadcasts that stretch middle
axes), losses (mean of dot, label types), compiler passes (folding 0 - x, partially zero
constants, CSE of multi-output instructions, passes vs evaluation on random programs with
constants), data and training (standardisation from training rows only, batch-size weighted
epoch loss, checkpoint dtypes) and the front end (dtype and dimension unification of
arguments, swap[a, b], copy[n], one definition used at two types)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import compile_numpy, cse, lower, optimize
from test_rd_references import rel_err, torch_vjp

O = cg.ops


# -- reverse derivatives ------------------------------------------------------------------------


def test_maximum_and_minimum_send_a_tie_to_the_first_argument():
    """The documented convention: R(maximum) sends d to x where x >= y (ties included)."""
    x = np.array([1.0, 2.0, 3.0, -1.0])
    y = np.array([1.0, 1.0, 4.0, -1.0])
    d = np.array([10.0, 20.0, 30.0, 40.0])
    dx, dy = cg.evaluate(cg.R(O.maximum(cg.f64[4], cg.f64[4])), x, y, d)
    np.testing.assert_array_equal(dx, [10.0, 20.0, 0.0, 40.0])
    np.testing.assert_array_equal(dy, [0.0, 0.0, 30.0, 0.0])
    dx, dy = cg.evaluate(cg.R(O.minimum(cg.f64[4], cg.f64[4])), x, y, d)
    np.testing.assert_array_equal(dx, [10.0, 0.0, 30.0, 40.0])
    np.testing.assert_array_equal(dy, [0.0, 20.0, 0.0, 0.0])


@pytest.mark.parametrize("perm", [(1, 2, 0), (2, 0, 1), (0, 2, 1), (3, 0, 2, 1)])
def test_transpose_rd_with_permutations_that_are_not_their_own_inverse(perm):
    shape = (2, 3, 4, 5)[: len(perm)]
    f = O.transpose(cg.f64[shape], perm=perm)
    rng = np.random.default_rng(len(perm))
    x = rng.normal(size=shape)
    v = rng.normal(size=f.cod[0].shape)
    np.testing.assert_array_equal(cg.evaluate(f, x)[0], np.transpose(x, perm))
    assert rel_err(cg.evaluate(cg.R(f), x, v), torch_vjp(f, [x], [v])) == 0.0


@pytest.mark.parametrize("src, shape", [((2, 1, 3), (4, 2, 5, 3)), ((3, 1), (2, 3, 4)), ((1, 1), (3, 2, 4)),
                                        ((2, 1, 1), (2, 3, 4))])
def test_broadcast_rd_into_higher_rank_with_stretched_middle_axes(src, shape):
    f = O.broadcast(cg.f64[src], shape=shape)
    rng = np.random.default_rng(0)
    x, v = rng.normal(size=src), rng.normal(size=shape)
    np.testing.assert_array_equal(cg.evaluate(f, x)[0], np.broadcast_to(x, shape))
    (g,) = cg.evaluate(cg.R(f), x, v)
    assert g.shape == src
    assert rel_err([g], torch_vjp(f, [x], [v])) <= 1e-15


# -- losses ------------------------------------------------------------------------------------------


def test_dot_loss_mean_is_the_mean_over_entries():
    T = cg.f64["B", 3]
    label, pred = np.arange(6.0).reshape(2, 3), np.linspace(-1, 1, 6).reshape(2, 3)
    s = cg.evaluate(cg.loss.dot(T, reduction="sum"), label, pred)[0]
    m = cg.evaluate(cg.loss.dot(T, reduction="mean"), label, pred)[0]
    assert s == pytest.approx(np.sum(label * pred), rel=1e-15)
    assert m == pytest.approx(np.mean(label * pred), rel=1e-15)  # as torch's mean reductions: over every entry
    dl, dp = cg.evaluate(cg.R(cg.loss.dot(T, reduction="mean")), label, pred, np.float64(1.0))
    np.testing.assert_allclose(dp, label / label.size, rtol=1e-15)


def test_a_step_checks_the_label_type_against_the_prediction():
    model = cg.Para([cg.Param("W", cg.f64[2, 3])], cg.trace(cg.f64[2, 3], cg.f64["B", 2])(lambda W, x: x @ W))
    step = cg.compile(model, loss="mse", optimizer="sgd(lr=0.1)")
    s = step.init(0)
    x = np.ones((4, 2))
    step(s, x, np.ones((4, 3)))
    for bad in (np.ones((4, 2)), np.ones((4, 3), np.float32), np.ones((5, 3))):
        with pytest.raises(cg.CatgradError):
            step(s, x, bad)


# -- compiler passes ---------------------------------------------------------------------------------


def test_folding_zero_minus_x_is_negation():
    @cg.trace(cg.f64[3])
    def f(x):
        return x.const(0.0) - x, x - x.const(0.0), x.const(0.0) + x

    x = np.array([1.0, -2.0, 3.5])
    a, b, c = compile_numpy(f)(x)
    np.testing.assert_array_equal(a, -x)
    np.testing.assert_array_equal(b, x)
    np.testing.assert_array_equal(c, x)
    assert optimize(lower(f)).op_counts().get("neg", 0) + optimize(lower(f)).op_counts().get("sub", 0) == 1


def test_folding_keeps_constants_with_only_some_zero_or_one_entries():
    @cg.trace(cg.f64[3])
    def f(x):
        part = O.pad(O.slice(x.const(1.0), axis=0, start=0, stop=2), axis=0, before=1, after=0)  # [0, 1, 1]
        return x + part, x * part, part - x

    x = np.array([5.0, 6.0, 7.0])
    a, b, c = compile_numpy(f)(x)
    np.testing.assert_array_equal(a, x + [0, 1, 1])
    np.testing.assert_array_equal(b, x * [0, 1, 1])
    np.testing.assert_array_equal(c, [0, 1, 1] - x)


def test_cse_merges_every_output_of_a_multi_output_instruction():
    from catgrad.compiler.program import Instr, Program

    class Op:  # a stand-in for a two-output primitive: CSE compares ops by equality only
        name = "pair"

        def __eq__(self, other):
            return isinstance(other, Op)

        def __hash__(self):
            return 1

    t = cg.f64[2]
    p = Program([t] * 5, [0], [3, 4], [Instr(Op(), (0,), (1, 2)), Instr(Op(), (0,), (3, 4))])
    q = cse(p)
    assert len(q.instrs) == 1 and q.outputs == [1, 2]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 50), st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5])),
                min_size=1, max_size=10), st.integers(1, 3))
def test_passes_preserve_random_programs_with_constants(ops, batch):
    @cg.trace(cg.f64["B", 3])
    def f(x):
        vals = [x]
        for k, i, c in ops:
            a = vals[i % len(vals)]
            b = vals[(i // 3) % len(vals)]
            cst = a.const(c)
            vals.append([a + cst, cst + a, a - cst, cst - a, a * cst, cst * b, a * b - cst,
                         O.maximum(a, cst), O.tanh(a) * cst + b, (cst + cst) * a][k])
        return vals[-1], vals[-1].sum()

    rng = np.random.default_rng(batch)
    x = rng.normal(size=(batch, 3))
    ref = cg.evaluate(f, x)
    for passes in (False, True):
        for a, b in zip(ref, compile_numpy(f, passes=passes)(x)):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)
    folded = compile_numpy(f)
    for a, b in zip(ref, folded(x)):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)


# -- data and training ---------------------------------------------------------------------------------


def test_standardisation_uses_training_rows_only():
    from catgrad import data

    train, test = data.prepare("wine", test_fraction=0.3, seed=1)
    raw_train, raw_test = data.load("wine").split(0.3, 1)
    mu, sd = raw_train.x.mean(0), raw_train.x.std(0)
    np.testing.assert_allclose(train.x, (raw_train.x - mu) / sd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(test.x, (raw_test.x - mu) / sd, rtol=1e-12, atol=1e-12)
    assert np.abs(train.x.mean(0)).max() < 1e-12 and np.abs(test.x.mean(0)).max() > 1e-3


def test_epoch_loss_is_weighted_by_batch_size():
    from catgrad import data
    from catgrad.train import fit
    from catgrad.train.loop import epoch_order

    ds = data.Dataset("t", np.arange(14.0).reshape(7, 2) / 10, np.arange(7.0).reshape(7, 1) / 7)
    model = cg.Para([cg.Param("W", cg.f64[2, 1])], cg.trace(cg.f64[2, 1], cg.f64["B", 2])(lambda W, x: x @ W))
    step = cg.compile(model, loss=cg.loss.mse(cg.f64["B", 1], reduction="mean"), optimizer="sgd(lr=0.1)")
    res = fit(step, ds, epochs=1, batch_size=3, seed=5)
    s, total = step.init(5), 0.0
    order = epoch_order(5, 0, 7)
    for b in range(3):  # batches of 3, 3 and 1 rows
        rows = order[b * 3:(b + 1) * 3]
        s, out = step(s, ds.x[rows], ds.y[rows])
        total += float(out.loss) * len(rows)
    assert res.history[0]["train_loss"] == pytest.approx(total / 7, rel=1e-14)


def test_a_checkpoint_with_other_dtypes_is_refused(tmp_path):
    from catgrad.train import checkpoint as ckpt

    template = {"param/W": np.zeros((2, 3), np.float32), "step": np.int64(0)}
    ok = {"param/W": np.zeros((2, 3), np.float32), "step": np.int64(4)}
    ckpt.check_arrays("c.npz", ok, template)
    for bad in ({"param/W": np.zeros((2, 3), np.float64), "step": np.int64(4)},
                {"param/W": np.zeros((2, 3), np.float32), "step": np.int32(4)},
                {"param/W": np.zeros((3, 2), np.float32), "step": np.int64(4)}):
        with pytest.raises(ckpt.CheckpointError, match="but this model needs"):
            ckpt.check_arrays("c.npz", bad, template)


# -- front end -------------------------------------------------------------------------------------------

SRC = """
def s : (f32[2], f32[3], f32[4]) -> (f32[3], f32[4], f32[2]) = swap[1, 2]
def s2 : (f32[2], f32[3], f32[4]) -> (f32[4], f32[2], f32[3]) = swap[2, 1]
def c : f32[2] -> (f32[2], f32[2], f32[2]) = copy[3]
def g(x : f32[n]) -> f32[n] = exp(x) + x
def two(a : f32[2], b : f32[5]) -> (f32[2], f32[5]) = (g(a), g(b))
def h(x : f32[n], y : f32[n]) -> f32[n] = x * y
"""


def test_swap_and_copy_move_the_right_wires():
    m = cg.loads(SRC)
    a, b, c = np.ones(2, np.float32), np.full(3, 2, np.float32), np.full(4, 3, np.float32)
    out = cg.evaluate(m["s"], a, b, c)
    assert [o.tolist() for o in out] == [b.tolist(), c.tolist(), a.tolist()]
    out = cg.evaluate(m["s2"], a, b, c)
    assert [o.tolist() for o in out] == [c.tolist(), a.tolist(), b.tolist()]
    out = cg.evaluate(m["c"], np.array([1, 2], np.float32))
    assert len(out) == 3 and all(o.tolist() == [1, 2] for o in out)


def test_a_definition_used_at_two_types():
    m = cg.loads(SRC)
    a, b = np.linspace(0, 1, 2).astype(np.float32), np.linspace(-1, 1, 5).astype(np.float32)
    ga, gb = cg.evaluate(m["two"], a, b)
    np.testing.assert_allclose(ga, np.exp(a) + a, rtol=1e-6)
    np.testing.assert_allclose(gb, np.exp(b) + b, rtol=1e-6)
    assert str(m["two"].cod) == "f32[2] ⊗ f32[5]" or ga.shape == (2,) and gb.shape == (5,)


@pytest.mark.parametrize("call, msg", [
    ("h(a, b)", "expects f32[2] but the argument has type f32[3]"),
    ("h(a, d)", "expects f32[2] but the argument has type f64[2]"),
    ("h(d, a)", "expects f32[n] but the argument has type f64[2]"),
])
def test_arguments_unify_dtypes_and_dimensions(call, msg):
    src = SRC + f"def bad(a : f32[2], b : f32[3], d : f64[2]) -> f32[2] = {call}\n"
    with pytest.raises(cg.CatgradError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        cg.loads(src)
