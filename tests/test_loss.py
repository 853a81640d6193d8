"""Losses: values and reverse derivatives against torch.autograd, docs/mathematics.md's formulas,
reductions, stability, and bad input. Also the ops added for them (where, floor, softplus)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import catgrad as cg

T = cg.f64["B", 3]


def value_and_grad(para, label, pred, alpha=1.0):
    v = cg.evaluate(para, label, pred)[0]
    dl, dp = cg.evaluate(cg.R(para), label, pred, np.asarray(alpha))
    return v, dl, dp


def torch_ref(fn, label, pred):
    tp = torch.tensor(pred, requires_grad=True)
    tl = torch.tensor(label, requires_grad=True)
    out = fn(tl, tp)
    out.backward()
    return out.item(), tl.grad.numpy(), tp.grad.numpy()


floats = arrays(np.float64, (4, 3), elements=st.floats(-30, 30))


@settings(max_examples=25, deadline=None)
@given(floats, floats)
def test_mse_matches_torch_and_math(label, pred):
    # the default is torch's mse_loss: the mean over every entry
    v, dl, dp = value_and_grad(cg.loss.mse(T), label, pred, alpha=-0.1)
    rv, rl, rp = torch_ref(lambda t, p: torch.nn.functional.mse_loss(p, t), label, pred)
    assert v == pytest.approx(rv, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(dp, -0.1 * rp, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dl, -0.1 * rl, rtol=1e-12, atol=1e-12)
    v, _, dp = value_and_grad(cg.loss.mse(T, reduction="sum"), label, pred, alpha=-0.1)
    rv, _, rp = torch_ref(lambda t, p: torch.nn.functional.mse_loss(p, t, reduction="sum"), label, pred)
    assert v == pytest.approx(rv, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(dp, -0.1 * rp, rtol=1e-12, atol=1e-12)
    # the CFGBL protocol, asked for by name: 1/2 sum, whose R is alpha (pred - label)
    v, dl, dp = value_and_grad(cg.loss.mse(T, reduction="half_sum"), label, pred, alpha=-0.1)
    rv, rl, rp = torch_ref(lambda t, p: 0.5 * ((p - t) ** 2).sum(), label, pred)
    assert v == pytest.approx(rv, rel=1e-12)
    # docs/mathematics.md: R[loss](b_t, b_p, alpha) = (alpha (b_t - b_p), alpha (b_p - b_t))
    np.testing.assert_allclose(dp, -0.1 * (pred - label), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dl, -0.1 * (label - pred), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dp, -0.1 * rp, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(floats, st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_softmax_cross_entropy_matches_torch(pred, classes):
    label = np.eye(3)[classes]
    v, _, dp = value_and_grad(cg.loss.softmax_cross_entropy(T, reduction="sum"), label, pred)
    rv, _, rp = torch_ref(lambda t, p: torch.nn.functional.cross_entropy(p, t, reduction="sum"), label, pred)
    assert v == pytest.approx(rv, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(dp, rp, rtol=1e-9, atol=1e-12)
    # d/d pred = softmax(pred) - label
    sm = np.exp(pred - pred.max(1, keepdims=True))
    np.testing.assert_allclose(dp, sm / sm.sum(1, keepdims=True) - label, rtol=1e-9, atol=1e-12)


def test_softmax_cross_entropy_is_stable():
    pred = np.array([[1000.0, -1000.0, 0.0]])
    v, _, dp = value_and_grad(cg.loss.softmax_cross_entropy(T), np.array([[0.0, 1.0, 0.0]]), pred)
    assert v == pytest.approx(2000.0) and np.all(np.isfinite(dp))


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, (4, 3), elements=st.floats(-500, 500)), arrays(np.float64, (4, 3), elements=st.floats(0, 1)))
def test_binary_cross_entropy_from_logits_matches_torch(pred, label):
    v, dl, dp = value_and_grad(cg.loss.binary_cross_entropy(T), label, pred)
    rv, rl, rp = torch_ref(
        lambda t, p: torch.nn.functional.binary_cross_entropy_with_logits(p, t), label, pred)
    assert v == pytest.approx(rv, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(dp, rp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dl, rl, rtol=1e-9, atol=1e-12)


def test_binary_cross_entropy_from_probabilities():
    pred = np.array([[0.2, 0.9, 0.5]])
    label = np.array([[0.0, 1.0, 1.0]])
    v, _, dp = value_and_grad(cg.loss.binary_cross_entropy(T, from_logits=False), label, pred)
    rv, _, rp = torch_ref(lambda t, p: torch.nn.functional.binary_cross_entropy(p, t), label, pred)
    assert v == pytest.approx(rv, rel=1e-12)
    np.testing.assert_allclose(dp, rp, rtol=1e-9)
    # probabilities 0 and 1 give a finite loss (clipped)
    v, _, dp = value_and_grad(cg.loss.binary_cross_entropy(T, from_logits=False), label, np.array([[1.0, 0.0, 1.0]]))
    assert np.isfinite(v) and v > 10 / 3 and np.all(np.isfinite(dp))


def test_xor_loss_is_z2():
    t = cg.bit[4]
    label = np.array([1, 0, 1, 0], bool)
    pred = np.array([1, 1, 0, 0], bool)
    v, dl, dp = value_and_grad(cg.loss.xor(t), label, pred, alpha=np.ones(4, bool))
    np.testing.assert_array_equal(v, [0, 1, 1, 0])
    # R = (alpha, alpha)
    np.testing.assert_array_equal(dp, np.ones(4, bool))
    np.testing.assert_array_equal(dl, np.ones(4, bool))


def test_dot_loss():
    label, pred = np.array([[1.0, 2.0, 3.0]]), np.array([[4.0, 5.0, 6.0]])
    v, dl, dp = value_and_grad(cg.loss.dot(T, reduction="sum"), label, pred)
    assert v == 32.0
    np.testing.assert_array_equal(dp, label)
    np.testing.assert_array_equal(dl, pred)


def test_mean_reduction_divides_by_symbolic_batch():
    rng = np.random.default_rng(0)
    label, pred = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    s = cg.evaluate(cg.loss.mse(T, reduction="sum"), label, pred)[0]
    m = cg.evaluate(cg.loss.mse(T), label, pred)[0]
    assert m == pytest.approx(s / 15)  # every entry of the 5 x 3 batch
    assert cg.evaluate(cg.loss.mse(T, reduction="half_sum"), label, pred)[0] == pytest.approx(s / 2)
    _, _, dp = value_and_grad(cg.loss.softmax_cross_entropy(T, reduction="mean"), np.eye(3)[[0] * 5], pred)
    rv, _, rp = torch_ref(lambda t, p: torch.nn.functional.cross_entropy(p, t), np.eye(3)[[0] * 5], pred)
    np.testing.assert_allclose(dp, rp, rtol=1e-10)


def test_loss_contract_and_errors():
    loss = cg.loss.mse(T)
    assert loss.names == ("label",) and loss.P == cg.Ob(T) and loss.cod == cg.Ob(cg.f64[()])
    assert cg.loss.get("mse") is cg.loss.mse
    with pytest.raises(cg.CatgradError, match="unknown loss 'crossentropy'.*did you mean"):
        cg.loss.get("crossentropy")
    with pytest.raises(cg.CatgradError, match="unknown reduction 'avg'"):
        cg.loss.mse(T, reduction="avg")
    with pytest.raises(cg.CatgradTypeError, match="xor loss is defined on bits"):
        cg.loss.xor(T)
    with pytest.raises(cg.CatgradTypeError, match="float prediction"):
        cg.loss.mse(cg.bit[3])


# -- the ops added for losses, optimizers and schedules, against torch.autograd ------------------


@settings(max_examples=20, deadline=None)
@given(arrays(np.float64, 5, elements=st.floats(-50, 50)), arrays(np.float64, 5, elements=st.floats(-3, 3)))
def test_softplus_and_floor_against_torch(x, d):
    sp = cg.ops.softplus(cg.f64[5])
    np.testing.assert_allclose(cg.evaluate(sp, x)[0], torch.nn.functional.softplus(torch.tensor(x), threshold=100).numpy(),
                               rtol=1e-12)
    tx = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.softplus(tx, threshold=100) * torch.tensor(d)).sum().backward()
    np.testing.assert_allclose(cg.evaluate(cg.R(sp), x, d)[0], tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    fl = cg.ops.floor(cg.f64[5])
    np.testing.assert_array_equal(cg.evaluate(fl, x)[0], np.floor(x))
    np.testing.assert_array_equal(cg.evaluate(cg.R(fl), x, d)[0], np.zeros(5))
    assert torch.equal(cg.evaluate(sp, torch.tensor(x), backend="torch")[0],
                       torch.logaddexp(torch.tensor(x), torch.zeros(())))


@settings(max_examples=20, deadline=None)
@given(arrays(np.float64, 4, elements=st.sampled_from([0.0, 1.0])), arrays(np.float64, 4, elements=st.floats(-5, 5)),
       arrays(np.float64, 4, elements=st.floats(-5, 5)), arrays(np.float64, 4, elements=st.floats(-5, 5)))
def test_where_against_torch(c, x, y, d):
    w = cg.ops.where(cg.f64[4], cg.f64[4], cg.f64[4])
    np.testing.assert_array_equal(cg.evaluate(w, c, x, y)[0], np.where(c != 0, x, y))
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    (torch.where(torch.tensor(c) != 0, tx, ty) * torch.tensor(d)).sum().backward()
    dc, dx, dy = cg.evaluate(cg.R(w), c, x, y, d)
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    np.testing.assert_array_equal(dy, ty.grad.numpy())
    np.testing.assert_array_equal(dc, np.zeros(4))
    # the branch not taken never leaks a NaN
    assert np.isfinite(cg.evaluate(w, np.ones(4), x, np.full(4, np.nan))[0]).all()


def test_constructors_take_options_before_the_type():
    """``cg.loss.mse(reduction="mean")`` fixes the options; the type comes later."""
    t = cg.f64["B", 3]
    configured = cg.loss.softmax_cross_entropy(reduction="mean")
    assert configured(t).body == cg.loss.softmax_cross_entropy(t, reduction="mean").body
    label, pred = np.eye(3)[[0, 2]], np.array([[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]])
    (mean,) = cg.evaluate(configured(t), label, pred)
    (total,) = cg.evaluate(cg.loss.softmax_cross_entropy(t, reduction="sum"), label, pred)
    assert np.isclose(mean, total / 2)
    W = cg.Param("W", cg.f64[3, 3], cg.init.constant(0.1))
    model = cg.Para([W], cg.trace(cg.f64[3, 3], t)(lambda w, x: x @ w))
    step = cg.compile(model, loss=configured, optimizer="sgd(lr=0.1)")
    _, out = step(step.init(), pred, label)
    assert np.isclose(out.loss, cg.evaluate(configured(t), label, pred @ np.full((3, 3), 0.1))[0])
