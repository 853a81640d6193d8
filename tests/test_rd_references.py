"""cg.R against independent references.

- torch.autograd: run f itself with the torch kernels (which know nothing of our
  reverse-derivative rules), ask autograd for the vector-Jacobian product, and
  compare with ``cg.evaluate(cg.R(f), x, v)`` on random diagrams of 50+ ops.
- sympy: evaluate f and R(f) on symbols and check R(f)(x, v) - J_f(x)^T v
  simplifies to 0.
"""

import numpy as np
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import catgrad as cg
import strategies as S


def torch_vjp(f, xs, vs):
    """J_f(x)^T v by torch.autograd on f evaluated with the torch kernels."""
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    outs = cg.evaluate(f, *ts, backend="torch")
    grads = torch.autograd.grad(
        outs, ts, [torch.tensor(v, dtype=torch.float64) for v in vs], allow_unused=True
    )
    return [np.zeros_like(x) if g is None else g.detach().numpy(force=True) for x, g in zip(xs, grads)]


def rel_err(actual, expected) -> float:
    """||a - e|| / ||e||, with ||e|| floored at 1e-4: when the true gradient is
    (numerically) zero, the two sides are rounding noise of order 1e-17 and their
    ratio means nothing, so the check becomes an absolute one at the 1e-13 level."""
    a = np.concatenate([np.ravel(x) for x in actual] + [np.zeros(0)])
    e = np.concatenate([np.ravel(x) for x in expected] + [np.zeros(0)])
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-4))


@settings(max_examples=30)
@given(S.smooth_diagrams(min_ops=50, max_ops=70, all_sinks=True), st.data())
def test_R_matches_torch_autograd_on_large_random_diagrams(f, data):
    assert len(f.boxes) >= 50
    rng = S.rng_from(data.draw)
    xs, vs = S.points(rng, f.dom), S.cotangents(rng, f.cod)
    ours = cg.evaluate(cg.R(f), *xs, *vs)
    theirs = torch_vjp(f, xs, vs)
    assert rel_err(ours, theirs) <= 1e-9


@settings(max_examples=20)
@given(S.smooth_diagrams(max_ops=8), st.data())
def test_R_of_R_matches_torch_double_backward(f, data):
    """Second order: R(R(f)) against torch's double backward, i.e. the vjp of the
    function (x, v) |-> J_f(x)^T v that torch computes with create_graph=True."""
    rng = S.rng_from(data.draw)
    xs, vs = S.points(rng, f.dom), S.cotangents(rng, f.cod)
    ws = S.cotangents(rng, f.dom)
    ours = cg.evaluate(cg.R(cg.R(f)), *xs, *vs, *ws)

    tx = [torch.tensor(x, requires_grad=True) for x in xs]
    tv = [torch.tensor(v, requires_grad=True) for v in vs]
    outs = cg.evaluate(f, *tx, backend="torch")
    g1 = torch.autograd.grad(outs, tx, tv, create_graph=True, allow_unused=True)
    g1 = [torch.zeros_like(x) if g is None else g for x, g in zip(tx, g1)]
    live = [(g, torch.tensor(w)) for g, w in zip(g1, ws) if g.requires_grad]
    if not live:  # R(f) does not depend on (x, v) at all
        return
    g2 = torch.autograd.grad([g for g, _ in live], tx + tv, [w for _, w in live], allow_unused=True)
    theirs = [np.zeros(t.shape) if g is None else g.detach().numpy(force=True) for t, g in zip(tx + tv, g2)]
    assert rel_err(ours, theirs) <= 1e-9


@settings(max_examples=20)
@given(S.smooth_diagrams(max_ops=8), st.data())
def test_D_matches_torch_jvp(f, data):
    rng = S.rng_from(data.draw)
    xs, vs = S.points(rng, f.dom), S.cotangents(rng, f.dom)
    ours = cg.evaluate(cg.D(f), *xs, *vs)
    _, jv = torch.autograd.functional.jvp(
        lambda *ts: tuple(cg.evaluate(f, *ts, backend="torch")),
        tuple(torch.tensor(x) for x in xs),
        tuple(torch.tensor(v) for v in vs),
    )
    assert rel_err(ours, [t.numpy() for t in jv]) <= 1e-9


def test_torch_reference_is_not_vacuous():
    """A wrong vjp (sign flipped) fails the comparison: the check has teeth."""
    f = cg.ops.sin(cg.f64[3]) >> cg.ops.exp(cg.f64[3])
    x, v = np.array([0.1, -0.4, 0.9]), np.array([1.0, 2.0, -1.0])
    theirs = torch_vjp(f, [x], [v])
    assert rel_err(cg.evaluate(cg.R(f), x, v), theirs) <= 1e-12
    assert rel_err([-theirs[0]], theirs) > 1


# -- sympy -----------------------------------------------------------------------------------


def symbols_for(ob, prefix):
    out = []
    for k, t in enumerate(ob):
        n = int(np.prod(t.shape)) if t.shape else 1
        syms = sp.symbols(f"{prefix}{k}_0:{n}", real=True)
        out.append(np.array(syms, dtype=object).reshape(t.shape))
    return out


def flat(arrays):
    return [sp.sympify(e) for a in arrays for e in np.ravel(np.asarray(a, dtype=object))]


def exact(e):
    """Turn float literals (2.0, 1.0) into rationals so simplify can cancel them."""
    return sp.nsimplify(e, rational=True)


@settings(max_examples=20)
@given(S.smooth_diagrams(max_ops=5, ops=S.SYMPY_OPS))
def test_R_matches_sympy_jacobian(f):
    xs, vs = symbols_for(f.dom, "x"), symbols_for(f.cod, "v")
    ys = flat(cg.evaluate(f, *xs, backend="sympy"))
    xvars, vvars = flat(xs), flat(vs)
    J = sp.Matrix([[sp.diff(y, x) for x in xvars] for y in ys])
    expected = J.T * sp.Matrix(vvars)
    ours = flat(cg.evaluate(cg.R(f), *xs, *vs, backend="sympy"))
    assert len(ours) == len(xvars)
    for o, e in zip(ours, expected):
        diff = exact(o) - exact(e)
        assert sp.expand(diff) == 0 or sp.simplify(diff) == 0, (o, e)


def test_sympy_smooth_worked_example():
    """docs/mathematics.md's smooth f, symbolically: R[f](x, v) = J^T v exactly."""
    t = cg.f64[()]

    @cg.trace(t, t)
    def f(x1, x2):
        return x1**3 + 2.0 * x1 * x2, x2 + 0.0, cg.ops.sin(x1)

    x1, x2, v1, v2, v3 = sp.symbols("x1 x2 v1 v2 v3", real=True)
    obj = lambda s: np.array(s, dtype=object)  # noqa: E731
    r = cg.evaluate(cg.R(f), obj(x1), obj(x2), obj(v1), obj(v2), obj(v3), backend="sympy")
    assert sp.simplify(exact(np.asarray(r[0]).item()) - ((3 * x1**2 + 2 * x2) * v1 + sp.cos(x1) * v3)) == 0
    assert sp.simplify(exact(np.asarray(r[1]).item()) - (2 * x1 * v1 + v2)) == 0
