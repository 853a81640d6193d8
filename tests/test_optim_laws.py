"""Laws of optimizer composition (hypothesis), per-parameter assignment and parsing.
The pool mixes per-parameter and whole-model stages: the laws hold for both."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.optim.base import Chain

O = cg.optim
POOL = [
    lambda: O.clip_norm(1.0), lambda: O.clip_value(0.5), lambda: O.weight_decay(0.01), lambda: O.adam(1e-2),
    lambda: O.momentum(0.1, 0.9), lambda: O.sgd(0.1), lambda: O.lion(1e-3), lambda: O.identity(),
    lambda: O.scale_by_schedule(cg.schedule.exponential(1.0, 0.9)), lambda: O.rmsprop(1e-2),
    # whole-model stages, and a schedule inside a stage
    lambda: O.lamb(1e-2), lambda: O.lars(0.1), lambda: O.clip_norm_per_tensor(1.0),
    lambda: O.nesterov(lr=cg.schedule.cosine(0.1, 10)),
]
PARAMS = [("W", cg.f64[3, 2]), ("b", cg.f64[2])]


def check_same(x, y, params=PARAMS, seed=0):
    """Same flat state keys and order, equal lens diagrams, equal values on random input."""
    lx, ly = x.lens(params), y.lens(params)
    assert lx.keys == ly.keys
    assert lx.lens.get == ly.lens.get and lx.lens.put == ly.lens.put
    rng = np.random.default_rng(seed)
    ps = [rng.normal(size=t.shape) for _, t in params]
    state = list(lx.init(ps).values())
    gs = [rng.normal(size=t.shape) for _, t in params]
    for a, b in zip(cg.evaluate(lx.lens.put, *ps, *state, *gs), cg.evaluate(ly.lens.put, *ps, *state, *gs)):
        np.testing.assert_array_equal(a, b)
    return lx


picks = st.lists(st.integers(0, len(POOL) - 1), min_size=3, max_size=5)


@settings(max_examples=15, deadline=None)
@given(picks, st.data())
def test_associativity_state_layout_independent_of_bracketing(idx, data):
    ops = [POOL[i]() for i in idx]
    left = ops[0]
    for o in ops[1:]:
        left = left >> o
    right = ops[-1]
    for o in reversed(ops[:-1]):
        right = o >> right
    cut = data.draw(st.integers(1, len(ops) - 1))
    mid = Chain(*ops[:cut]) >> Chain(*ops[cut:])
    lx = check_same(left, right)
    check_same(left, mid)
    # the keys name the stages, not the bracketing
    assert all("/" in k for k in lx.keys)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, len(POOL) - 1))
def test_identity_is_a_unit(i):
    a = POOL[i]()
    check_same(O.identity() >> a, a)
    check_same(a >> O.identity(), a)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, len(POOL) - 1), min_size=4, max_size=4))
def test_interchange(idx):
    a, b, c, d = (POOL[i]() for i in idx)
    check_same((a @ b) >> (c @ d), (a >> c) @ (b >> d))


@settings(max_examples=10, deadline=None)
@given(picks)
def test_assign_all_is_the_optimizer_itself(idx):
    """One rule matching every wire resolves the optimizer once on all of them, so its
    whole-model stages span the same wires as without assign."""
    ops = [POOL[i]() for i in idx]
    opt = Chain(*ops)
    check_same(O.assign({"*": opt}), opt)


def test_tensor_is_per_parameter_and_assign_by_name():
    t = O.adam(1e-2) @ O.sgd(0.1)
    L = t.lens(PARAMS)
    assert [k for k in L.keys if k.startswith("W/")][0].startswith("W/adam.")
    assert [k for k in L.keys if k.startswith("b/")] == ["b/sgd.lr"]
    byname = O.assign({"W": O.adam(1e-2)}, default=O.sgd(0.1))
    check_same(byname, t)
    glob = O.assign({"*.W": O.adam(1e-2)}, default=O.sgd(0.1))
    L2 = glob.lens([("l1.W", cg.f64[2, 2]), ("l1.b", cg.f64[2])])
    assert any(k.startswith("l1.W/adam.") for k in L2.keys) and "l1.b/sgd.lr" in L2.keys
    with pytest.raises(cg.CatgradError, match="needs exactly 2 parameter wires"):
        (O.adam() @ O.sgd()).lens([("W", cg.f64[2])])
    with pytest.raises(cg.CatgradError, match="no optimizer is assigned to parameter 'b'"):
        O.assign({"W": O.adam()}).lens(PARAMS)


def test_assign_in_a_compiled_step_trains_each_wire_with_its_optimizer():
    @cg.trace(cg.f64[2, 1], cg.f64[1], cg.f64["B", 2])
    def body(W, b, x):
        return x @ W + b.reshape(1, 1).broadcast("B", 1)

    model = cg.Para([cg.Param("W", cg.f64[2, 1]), cg.Param("b", cg.f64[1])], body)
    step = cg.compile(model, loss="mse", optimizer=O.assign({"W": O.sgd(0.0)}, default=O.sgd(0.5)))
    s = step.init(0)
    s2, _ = step(s, np.ones((3, 2)), np.ones((3, 1)))
    np.testing.assert_array_equal(s2.params["W"], s.params["W"])  # lr 0 on W
    assert not np.array_equal(s2.params["b"], s.params["b"])


def test_parse_round_trip_and_errors():
    p = O.parse("clip_norm(1.0) >> adam(lr=1e-2, b1=0.8)")
    check_same(p, O.clip_norm(1.0) >> O.adam(1e-2, b1=0.8))
    check_same(O.parse("adam(lr=cosine(0.1, 100))"), O.adam(lr=cg.schedule.cosine(0.1, 100)))
    check_same(O.parse("lookahead(sgd(0.1), k=3)"), O.lookahead(O.sgd(0.1), k=3))
    with pytest.raises(cg.CatgradError, match="unknown optimizer 'adma'.*did you mean.*'adam'"):
        O.parse("adma(lr=1)")
    with pytest.raises(cg.CatgradError, match="adam\\(\\) has no argument 'beta1'"):
        O.parse("adam(beta1=0.9)")
    with pytest.raises(cg.CatgradError, match="not a number"):
        O.parse("adam(lr='x')")
    with pytest.raises(cg.CatgradError, match="cannot parse"):
        O.parse("adam(lr=")
    with pytest.raises(cg.CatgradError, match="unknown optimizer '__import__'"):
        O.parse("adam(lr=__import__('os'))")
    with pytest.raises(cg.CatgradError):
        O.parse("")
    with pytest.raises(cg.CatgradError, match="hyperparameter lr must be a number"):
        O.sgd(lr="fast")


def test_bit_parameters_only_for_sgd():
    with pytest.raises(cg.CatgradTypeError, match="adam optimizer needs float parameters"):
        O.adam().lens([("t", cg.bit[3])])
    with pytest.raises(cg.CatgradTypeError, match="lr 0 or 1"):
        O.sgd(0.5).lens([("t", cg.bit[3])])


@pytest.mark.parametrize("name", ["adam", "nadam", "radam", "adamax", "adadelta", "adagrad", "rmsprop"])
def test_coupled_weight_decay_is_a_stage_in_front(name):
    """torch's ``weight_decay`` on these optimizers *is* ``weight_decay(wd) >> opt``: the
    same lens, the same state keys (so one implementation of L2 decay serves them all)."""
    make = getattr(cg.optim, name)
    t = cg.f64[3]
    built = make(weight_decay=0.1).lens([("w", t)])
    composed = (cg.optim.weight_decay(0.1) >> make()).lens([("w", t)])
    assert built.keys == composed.keys and any(k.startswith("w/weight_decay") for k in built.keys)
    assert built.lens.get == composed.lens.get and built.lens.put == composed.lens.put
