"""cg.hvp, cg.gnvp, cg.grad, cg.jvp, cg.vjp against independent references.

The references run f itself with the torch kernels (which know nothing of our
derivative rules) and ask torch for the second-order product three ways:
torch.autograd.functional.hvp (reverse over reverse), torch.func.jvp of
torch.func.grad (forward over reverse), and central finite differences of torch's
gradient. The Gauss-Newton product is checked against the explicit matrices
J^T H J from torch.func.jacrev and torch.func.hessian.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import catgrad as cg
import models
import strategies as S


def to_scalar(f: cg.Diagram) -> cg.Diagram:
    """``f`` followed by ``sum_k sum(sin(y_k) * y_k)``: a scalar with curvature of its own."""
    def body(b, ins):
        total = None
        for y in ins:
            t = (cg.ops.sin(y) * y).sum()
            total = t if total is None else total + t
        return [total]

    return f >> cg.build(f.cod, body)


def torch_fn(f):
    return lambda *ts: cg.evaluate(f, *ts, backend="torch")[0]


def rel_err(actual, expected) -> float:
    a = np.concatenate([np.ravel(x) for x in actual] + [np.zeros(0)])
    e = np.concatenate([np.ravel(x) for x in expected] + [np.zeros(0)])
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-4))


def references(f, xs, vs):
    """H v three ways: autograd.functional.hvp, func.jvp(func.grad), finite differences."""
    tx = tuple(torch.tensor(x) for x in xs)
    tv = tuple(torch.tensor(v) for v in vs)
    fn = torch_fn(f)
    _, h1 = torch.autograd.functional.hvp(fn, tx, tv)
    argnums = tuple(range(len(xs)))
    _, h2 = torch.func.jvp(lambda *a: torch.func.grad(fn, argnums=argnums)(*a), tx, tv)

    def g(t):
        ts = [torch.tensor(x + t * v, requires_grad=True) for x, v in zip(xs, vs)]
        gs = torch.autograd.grad(fn(*ts), ts, allow_unused=True)
        return [np.zeros_like(x) if d is None else d.numpy() for x, d in zip(xs, gs)]

    eps = 1e-4  # central differences: O(eps^2) truncation
    gp, gm = g(eps), g(-eps)
    h3 = [(a - b) / (2 * eps) for a, b in zip(gp, gm)]
    return [t.numpy() for t in h1], [t.numpy() for t in h2], h3


@settings(max_examples=25, deadline=None)
@given(S.smooth_diagrams(max_ops=8), st.data())
def test_hvp_matches_torch_on_random_diagrams(f, data):
    f = to_scalar(f)
    rng = S.rng_from(data.draw)
    xs, vs = S.points(rng, f.dom), S.cotangents(rng, f.dom)
    ours = cg.evaluate(cg.hvp(f), *xs, *vs)
    assert len(ours) == len(xs) and all(np.shape(o) == x.shape for o, x in zip(ours, xs))
    h1, h2, h3 = references(f, xs, vs)
    assert rel_err(ours, h1) <= 1e-9
    assert rel_err(ours, h2) <= 1e-9
    # finite differences: truncation O(eps^2 f''') and rounding; a diagram with large third
    # derivatives reached 1.07e-5 once, so the exact references above carry the tight check
    assert rel_err(ours, h3) <= 1e-4


def mlp_loss(batch=5):
    model = models.mlp([4, 6, 3], act="tanh", last=None, batch=batch)
    loss = cg.loss.softmax_cross_entropy(cg.f64[batch, 3])
    return model, loss


def test_hvp_on_mlp_with_softmax_cross_entropy():
    model, loss = mlp_loss()
    f = (model >> loss).diagram  # (label, l1.W, l1.b, l0.W, l0.b, x) -> scalar
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(t.shape) for t in f.dom]
    xs[0] = rng.dirichlet(np.ones(3), size=5)  # probability targets
    vs = [rng.standard_normal(t.shape) for t in f.dom]
    ours = cg.evaluate(cg.hvp(f), *xs, *vs)
    h1, h2, h3 = references(f, xs, vs)
    assert rel_err(ours, h1) <= 1e-10
    assert rel_err(ours, h2) <= 1e-10
    assert rel_err(ours, h3) <= 1e-6
    # the same diagram on the torch backend
    on_torch = cg.evaluate(cg.hvp(f), *(torch.tensor(a) for a in xs + vs), backend="torch")
    assert rel_err([t.numpy() for t in on_torch], h1) <= 1e-10


def test_hvp_is_symmetric_and_linear_in_v():
    """<H v, w> = <v, H w> and H(2v + w) = 2 Hv + Hw: laws any Hessian obeys."""
    f = to_scalar(cg.ops.tanh(cg.f64[3]) >> cg.ops.exp(cg.f64[3]))
    h = cg.hvp(f)
    rng = np.random.default_rng(1)
    x, v, w = (rng.standard_normal(3) for _ in range(3))
    hv, hw = cg.evaluate(h, x, v)[0], cg.evaluate(h, x, w)[0]
    assert abs(hv @ w - v @ hw) <= 1e-12 * (1 + abs(hv @ w))
    np.testing.assert_allclose(cg.evaluate(h, x, 2 * v + w)[0], 2 * hv + hw, rtol=1e-12, atol=1e-12)


def test_gnvp_matches_explicit_jacobian_and_loss_hessian():
    """J^T H_loss J v on the MLP's parameters, against torch.func.jacrev / hessian."""
    B = 5
    model, loss = mlp_loss(B)
    md, ld = model.diagram, loss.diagram  # md: (params..., x) -> pred; ld: (label, pred) -> scalar
    n = len(model.params)
    X, T = md.dom[n], ld.dom[0]

    def passthrough(b, ins):  # (params, x, label) -> (label, pred)
        return [ins[-1], *b.call(md, ins[:-1])]

    f = cg.build(md.dom @ cg.Ob(T), passthrough)
    g = cg.gnvp(f, ld)
    rng = np.random.default_rng(2)
    ps = [rng.standard_normal(t.shape) for t in md.dom[:n]]
    x, label = rng.standard_normal(X.shape), rng.dirichlet(np.ones(3), size=B)
    vs = [rng.standard_normal(t.shape) for t in md.dom[:n]]
    ours = cg.evaluate(g, *ps, x, label, *vs, np.zeros(X.shape), np.zeros(T.shape))[:n]

    tp = tuple(torch.tensor(p) for p in ps)
    tx, tl = torch.tensor(x), torch.tensor(label)
    pred = lambda *p: cg.evaluate(md, *p, tx, backend="torch")[0]
    J = torch.func.jacrev(pred, argnums=tuple(range(n)))(*tp)  # blocks [B, 3, *p.shape]
    H = torch.func.hessian(lambda y: cg.evaluate(ld, tl, y, backend="torch")[0])(pred(*tp))  # [B,3,B,3]
    Jm = torch.cat([j.reshape(B * 3, -1) for j in J], dim=1)
    v = torch.cat([torch.tensor(u).reshape(-1) for u in vs])
    gv = Jm.T @ (H.reshape(B * 3, B * 3) @ (Jm @ v))
    theirs, k = [], 0
    for p in ps:
        theirs.append(gv[k : k + p.size].reshape(p.shape).numpy())
        k += p.size
    assert rel_err(ours, theirs) <= 1e-10
    # GGN differs from the full Hessian (the model's own curvature is dropped)
    full = cg.evaluate(cg.hvp((model >> loss).diagram), label, *ps, x, np.zeros(T.shape), *vs, np.zeros(X.shape))
    assert rel_err(full[1 : n + 1], theirs) > 1e-3


def test_jvp_and_vjp_are_D_and_R():
    f = cg.ops.sin(cg.f64[3]) >> cg.ops.exp(cg.f64[3])
    assert cg.jvp(f) == cg.D(f) and cg.vjp(f) == cg.R(f)
    x, v = np.array([0.1, -0.4, 0.9]), np.array([1.0, 2.0, -1.0])
    _, jv = torch.func.jvp(lambda t: torch.exp(torch.sin(t)), (torch.tensor(x),), (torch.tensor(v),))
    np.testing.assert_allclose(cg.evaluate(cg.jvp(f), x, v)[0], jv.numpy(), rtol=1e-14)


def test_grad_matches_torch():
    f = to_scalar(cg.ops.tanh(cg.f64[2, 3]))
    x = np.random.default_rng(3).standard_normal((2, 3))
    t = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(torch_fn(f)(t), [t])
    np.testing.assert_allclose(cg.evaluate(cg.grad(f), x)[0], g.numpy(), rtol=1e-13)


def test_non_scalar_output_is_a_clear_error():
    f = cg.ops.sin(cg.f64[3])
    for make in (cg.hvp, cg.grad):
        with pytest.raises(cg.CatgradTypeError, match="one float scalar output"):
            make(f)
    with pytest.raises(cg.CatgradTypeError, match="not the loss's input type"):
        cg.gnvp(f, to_scalar(cg.id(cg.f64[2])))
