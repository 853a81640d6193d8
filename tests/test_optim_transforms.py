"""The direction transforms (clip_value, clip_norm, clip_norm_per_tensor, weight_decay,
scale, scale_by_schedule), plain SGD on bits and the wrappers' checks: against torch
(clamp, clip_grad_norm_) in float64, over hypothesis-drawn directions, with the exact
messages for bad arguments."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import catgrad as cg

O = cg.optim
SHAPES = [(3, 2), (4,), ()]


def directions(opt, grads, params=None):
    """One put at ``params`` (zeros by default) with incoming directions ``grads``:
    the outgoing directions (p_new - p) and the new state."""
    L = opt.lens([(f"p{i}", cg.f64[np.shape(g)]) for i, g in enumerate(grads)])
    ps = [np.zeros(np.shape(g)) for g in grads] if params is None else [np.asarray(p, dtype=float) for p in params]
    outs = cg.evaluate(L.lens.put, *ps, *L.init(ps).values(), *grads)
    n = len(grads)
    return [o - p for o, p in zip(outs[:n], ps)], dict(zip(L.keys, outs[n:]))


arrays = st.tuples(*[st.lists(st.floats(-10, 10), min_size=int(np.prod(s)), max_size=int(np.prod(s))) for s in SHAPES])


def as_grads(vals):
    return [np.array(v, dtype=np.float64).reshape(s) for v, s in zip(vals, SHAPES)]


@settings(max_examples=15, deadline=None)
@given(arrays, st.floats(0.1, 5.0))
def test_clip_value_is_torch_clamp(vals, c):
    gs = as_grads(vals)
    got, state = directions(O.clip_value(c), gs)
    for x, g in zip(got, gs):
        np.testing.assert_array_equal(x, torch.clamp(torch.tensor(g), -c, c).numpy())
    assert [float(v) for v in state.values()] == [c] * 3


@settings(max_examples=15, deadline=None)
@given(arrays, st.floats(0.1, 20.0), st.sampled_from([1e-6, 1e-3, 0.5]))
def test_clip_norms_are_torch_clip_grad_norm(vals, c, eps):
    gs = as_grads(vals)
    total = np.sqrt(sum(np.sum(g * g) for g in gs))
    got, state = directions(O.clip_norm(c, eps), gs)
    for x, g in zip(got, gs):
        np.testing.assert_allclose(x, g * min(1.0, c / (total + eps)), rtol=1e-14, atol=1e-300)
    assert list(state) == ["p0/clip_norm.max_norm", "p0/clip_norm.eps"]
    assert [float(v) for v in state.values()] == [c, eps]
    if eps == 1e-6:  # torch's own eps
        ts = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
        for t, g in zip(ts, gs):
            t.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_norm_(ts, c)
        for x, t in zip(got, ts):
            np.testing.assert_allclose(x, t.grad.numpy(), rtol=1e-14, atol=1e-300)
    per, state = directions(O.clip_norm_per_tensor(c, eps), gs)
    for x, g in zip(per, gs):
        np.testing.assert_allclose(x, g * min(1.0, c / (np.linalg.norm(g) + eps)), rtol=1e-14, atol=1e-300)
    assert len(state) == 6


def test_clip_norm_leaves_a_small_direction_alone():
    gs = [np.array([[0.3, 0.0], [0.0, 0.0], [0.0, 0.0]]), np.array([0.0, 0.4, 0.0, 0.0]), np.array(0.0)]
    got, _ = directions(O.clip_norm(1.0, eps=0.0), gs)
    for x, g in zip(got, gs):
        np.testing.assert_array_equal(x, g)
    got, _ = directions(O.clip_norm(0.25, eps=0.0), gs)  # the norm is 0.5: halved
    for x, g in zip(got, gs):
        np.testing.assert_allclose(x, g / 2, rtol=1e-15)


def test_weight_decay_and_scale():
    p = [np.array([[1.0, -2.0], [3.0, 0.5], [0.0, 4.0]]), np.array([1.0, 2.0, 3.0, 4.0]), np.array(2.0)]
    gs = [np.full((3, 2), 0.5), np.ones(4), np.array(-1.0)]
    got, state = directions(O.weight_decay(0.25), gs, p)
    for x, g, q in zip(got, gs, p):
        np.testing.assert_allclose(x, g - 0.25 * q, rtol=1e-15)
    assert [float(v) for v in state.values()] == [0.25] * 3
    got, _ = directions(O.scale(-3.0), gs, p)
    for x, g in zip(got, gs):
        np.testing.assert_allclose(x, -3.0 * g, rtol=1e-15)
    got, _ = directions(O.weight_decay(), gs, p)  # default rate 0
    for x, g in zip(got, gs):
        np.testing.assert_array_equal(x, g)
    got, _ = directions(O.scale(), gs, p)  # default factor 1
    for x, g in zip(got, gs):
        np.testing.assert_array_equal(x, g)


def test_scale_by_schedule_steps_once_per_update():
    sched = cg.schedule.exponential(2.0, 0.5)
    L = O.scale_by_schedule(sched).lens([("w", cg.f64[2])])
    p, s = np.zeros(2), L.init([np.zeros(2)])
    factors = []
    for _ in range(3):
        outs = cg.evaluate(L.lens.put, p, *s.values(), np.ones(2))
        factors.append(float(outs[0][0] - p[0]))
        p, s = outs[0], dict(zip(L.keys, outs[1:]))
    np.testing.assert_allclose(factors, [2.0, 1.0, 0.5], rtol=1e-15)


def test_defaults_of_the_transforms():
    assert repr(O.clip_value()) == "clip_value(max_value=1)"
    assert repr(O.clip_norm()) == "clip_norm(max_norm=1, eps=1e-06)"
    assert repr(O.clip_norm_per_tensor()) == "clip_norm_per_tensor(max_norm=1, eps=1e-06)"
    assert repr(O.weight_decay()) == "weight_decay(rate=0)"
    assert repr(O.scale()) == "scale(factor=1)"
    # a zero coupled decay adds no stage
    assert repr(O.sgd(0.1, weight_decay=0.0)) == "sgd(lr=0.1)"


@pytest.mark.parametrize("make,message", [
    (lambda: O.clip_value(-1), "clip_value needs a positive bound, got -1"),
    (lambda: O.clip_value(0), "clip_value needs a positive bound, got 0"),
    (lambda: O.clip_norm(0), "clip_norm needs a positive bound, got 0"),
    (lambda: O.clip_norm_per_tensor(-2), "clip_norm_per_tensor needs a positive bound, got -2"),
    (lambda: O.scale_by_schedule(0.5), "scale_by_schedule needs a schedule (cg.schedule.*), got 0.5"),
    (lambda: O.lookahead(3), "lookahead(3, k=5, alpha=0.5) wraps an optimizer, got 3"),
    (lambda: O.lookahead(O.sgd(), k=0), "lookahead needs k >= 1 and 0 < alpha <= 1, got k=0, alpha=0.5"),
    (lambda: O.lookahead(O.sgd(), alpha=1.5), "lookahead needs k >= 1 and 0 < alpha <= 1, got k=5, alpha=1.5"),
    (lambda: O.cautious(O.clip_norm() >> O.adam()).lens([("w", cg.f64[2])]),
     "cautious(clip_norm(max_norm=1, eps=1e-06) >> adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08)): the wrapped "
     "optimizer must be per-parameter, but clip_norm is a whole-model stage; put it outside, e.g. clip_norm(1) >> "
     "cautious(adam())"),
    (lambda: O.sgd(nesterov=True), "sgd: nesterov needs momentum > 0 and zero dampening (as in torch)"),
    (lambda: O.sgd(momentum=0.5, nesterov=True, dampening=0.1),
     "sgd: nesterov needs momentum > 0 and zero dampening (as in torch)"),
    (lambda: O.sgd(0.5).lens([("t", cg.bit[3])]), "sgd on bit parameters needs lr 0 or 1 (a bit), got 0.5"),
    (lambda: O.sgd(cg.schedule.cosine(1.0, 10)).lens([("t", cg.bit[3])]),
     "sgd on bit parameters needs lr 0 or 1 (a bit), got cosine(peak=1, decay_steps=10, final=0, warmup_steps=0)"),
    (lambda: O.sgd(0.5).lens([("t", cg.i64[3])]), "sgd needs float or bit parameters, got i64[3]"),
    (lambda: O.lookahead(O.sgd()).lens([("t", cg.bit[3])]), "the lookahead optimizer needs float parameters, got bit[3]"),
    (lambda: O.cautious(O.identity() >> O.adam()).lens([("t", cg.bit[3])]),
     "the cautious optimizer needs float parameters, got bit[3]"),
])
def test_bad_arguments_have_exact_messages(make, message):
    with pytest.raises(cg.CatgradError) as e:
        make()
    assert str(e.value) == message


def test_sgd_on_bits_is_xor():
    L = O.sgd(1.0).lens([("t", cg.bit[4])])
    p = np.array([True, False, True, False])
    u = np.array([True, True, False, False])
    outs = cg.evaluate(L.lens.put, p, *L.init([p]).values(), u)
    np.testing.assert_array_equal(outs[0], p ^ u)
    L0 = O.sgd(0.0).lens([("t", cg.bit[4])])
    outs = cg.evaluate(L0.lens.put, p, *L0.init([p]).values(), u)
    np.testing.assert_array_equal(outs[0], p)
    assert repr(O.gradient_update()) == "sgd(lr=1)"


def test_paper_sign_momentum_and_nesterov_get():
    L = O.momentum(0.5, 0.25, paper_sign=True).lens([("w", cg.f64[2])])
    p = np.array([1.0, 2.0])
    s = L.init([p])
    s["w/momentum.s"] = np.array([4.0, -4.0])
    outs = cg.evaluate(L.lens.put, p, *s.values(), np.array([1.0, 1.0]))
    np.testing.assert_array_equal(outs[-1], [0.0, 2.0])  # s' = -0.25 s + u
    np.testing.assert_array_equal(outs[0], [1.0, 3.0])  # p + 0.5 s'
    N = O.nesterov(0.5, 0.25).lens([("w", cg.f64[2])])
    sn = N.init([p])
    sn["w/nesterov.s"] = np.array([4.0, -4.0])
    np.testing.assert_array_equal(cg.evaluate(N.lens.get, p, *sn.values())[0], p + 0.5 * 0.25 * np.array([4.0, -4.0]))
    M = O.momentum(0.5, 0.25).lens([("w", cg.f64[2])])
    np.testing.assert_array_equal(cg.evaluate(M.lens.get, p, *M.init([p]).values())[0], p)
    assert list(N.keys) == ["w/nesterov.lr", "w/nesterov.gamma", "w/nesterov.dampening", "w/nesterov.s"]
