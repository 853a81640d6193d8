"""Learners (Backprop as Functor): the category Learn and the functor L_{eps,e} : Para -> Learn.

Laws are checked by evaluation on random Para morphisms (hypothesis); the functor itself
against hand-computed numbers (MATH.md sections 3 and 4) and against torch.autograd.
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import catgrad as cg
from strategies import assert_close
from catgrad.calculus.learner import Error, Learner, gradient, learner, optimized

f64 = cg.f64

# -- small random smooth diagrams (self-contained helpers, also used by test_poly) -------------

SHAPES = [(), (2,), (3,), (2, 3)]


def float_types(max_wires: int = 2):
    return st.lists(st.sampled_from(SHAPES), min_size=1, max_size=max_wires).map(
        lambda shapes: cg.Ob(*(f64[s] for s in shapes))
    )


@st.composite
def smooth_diagrams(draw, dom, cod, max_ops=5):
    """A random smooth float64 diagram ``dom -> cod``. Every output reads a nonlinear
    summary of every wire, so every input matters."""

    def body(b, ins):
        pool = list(ins)
        for _ in range(draw(st.integers(1, max_ops))):
            x = pool[draw(st.integers(0, len(pool) - 1))]
            kind = draw(st.sampled_from(["sin", "tanh", "sigmoid", "mul", "add", "sum", "square"]))
            if kind in ("mul", "add"):
                same = [w for w in pool if w.shape == x.shape]
                y = same[draw(st.integers(0, len(same) - 1))]
                pool.append(x * y if kind == "mul" else x + y)
            elif kind == "sum":
                pool.append(x.sum())
            elif kind == "square":
                pool.append(x * x)
            else:
                pool.append(getattr(cg.ops, kind)(x))
        total = None
        for w in pool:
            term = cg.ops.sin(w).sum()
            total = term if total is None else total + term
        outs = []
        for t in cod:
            same = [w for w in pool if w.shape == t.shape]
            mix = cg.ops.tanh(total)
            if same:
                outs.append(same[draw(st.integers(0, len(same) - 1))] + mix)
            else:
                outs.append(mix.broadcast(t.shape))
        return outs

    return cg.build(dom, body)


def rng_from(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def points(rng, ob) -> list:
    return [rng.uniform(-1.0, 1.0, size=t.shape) for t in cg.Ob(*ob)]


def dot_model():
    """f(p, a) = p . a, the worked example of MATH.md section 3."""
    body = cg.trace(f64[2], f64[2])(lambda p, a: (p * a).sum())
    return cg.Para([cg.Param("w", f64[2])], body)


def sin_model():
    """g(v, x) = sin(v x)."""
    return cg.Para([cg.Param("v", f64[()])], cg.trace(f64[()], f64[()])(lambda v, x: cg.ops.sin(v * x)))


@st.composite
def paras(draw, dom=None, cod=None, max_ops=5):
    """A random smooth Para morphism dom -> cod with 1-2 parameter wires."""
    P = draw(float_types(2))
    dom = draw(float_types(2)) if dom is None else dom
    cod = draw(float_types(2)) if cod is None else cod
    body = draw(smooth_diagrams(dom=P @ dom, cod=cod, max_ops=max_ops))
    params = [cg.Param(f"w{i}", t) for i, t in enumerate(P)]
    return cg.Para(params, body)


def swap_blocks(n_first: int, n_second: int) -> list:
    """The permutation taking (P, Q) to (Q, P)."""
    return [*range(n_first, n_first + n_second), *range(n_first)]


def eval_all(L: Learner, p, a, b):
    return L.forward(p, a), L.updated(p, a, b), L.requested(p, a, b)


# -- worked numbers -----------------------------------------------------------------------


def test_worked_numbers_math_section_3():
    # f(p, a) = p . a, p = (0.5, -1), a = (2, 1), b = 1, eps = 0.1: new p = (0.7, -0.9)
    L = learner(dot_model(), eps=0.1)
    p, a, b = [np.array([0.5, -1.0])], np.array([2.0, 1.0]), np.array(1.0)
    assert_close(L.forward(p, a), [0.0], rtol=1e-15)
    assert_close(L.updated(p, a, b), [np.array([0.7, -0.9])], rtol=1e-15)
    # r = a - grad_a E = a - (f - b) p = (2, 1) - (-1)(0.5, -1) = (2.5, 0)
    assert_close(L.requested(p, a, b), [np.array([2.5, 0.0])], rtol=1e-15)


def test_functoriality_worked_by_hand():
    # f(w, a) = w . a then g(v, x) = sin(v x); w = (0.5, -1), v = 0.7, a = (2, 3), c = 0.3, eps = 0.1
    f, g = dot_model(), sin_model()
    w, v, a, c, eps = np.array([0.5, -1.0]), 0.7, np.array([2.0, 3.0]), 0.3, 0.1
    x = w @ a  # -2
    y = np.sin(v * x)
    dy = y - c  # dE/dy for the quadratic error
    dx = np.cos(v * x) * v * dy
    new_v = v - eps * np.cos(v * x) * x * dy
    new_w = w - eps * dx * a
    req_a = a - dx * w
    composite = learner(f, eps) >> learner(g, eps)  # parameters (w, v)
    assert composite.names == ("w", "v")
    p = [w, np.array(v)]
    assert_close(composite.forward(p, a), [y], rtol=1e-14)
    assert_close(composite.updated(p, a, np.array(c)), [new_w, new_v], rtol=1e-14)
    assert_close(composite.requested(p, a, np.array(c)), [req_a], rtol=1e-14)
    # the image of the Para composite has parameters (v, w): the same learner up to the swap
    image = learner(f >> g, eps)
    assert image.names == ("v", "w")
    q = [np.array(v), w]
    assert_close(image.updated(q, a, np.array(c)), [new_v, new_w], rtol=1e-14)
    assert_close(image.requested(q, a, np.array(c)), [req_a], rtol=1e-14)


def test_functor_against_torch_autograd():
    # a two-layer tanh network, quadratic error, one update and one request vs torch.autograd
    W1, W2 = f64[3, 4], f64[4, 2]
    body = cg.trace(W1, W2, f64[3])(lambda w1, w2, a: cg.ops.tanh(cg.ops.tanh(a @ w1) @ w2))
    f = cg.Para([cg.Param("W1", W1), cg.Param("W2", W2)], body)
    rng = np.random.default_rng(0)
    p = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    a, b, eps = rng.normal(size=3), rng.normal(size=2), 0.05
    L = learner(f, eps)
    tp = [torch.tensor(x, requires_grad=True) for x in p]
    ta = torch.tensor(a, requires_grad=True)
    out = torch.tanh(torch.tanh(ta @ tp[0]) @ tp[1])
    E = 0.5 * ((out - torch.tensor(b)) ** 2).sum()
    E.backward()
    assert_close(L.updated(p, a, b), [x.detach().numpy() - eps * x.grad.numpy() for x in tp], rtol=1e-12)
    assert_close(L.requested(p, a, b), [a - ta.grad.numpy()], rtol=1e-12)


# -- the category Learn -------------------------------------------------------------------


def test_identity_learner():
    A = cg.Ob(f64[2], f64[()])
    I = Learner.id(A)
    a, b = [np.array([1.0, 2.0]), np.array(3.0)], [np.array([4.0, 5.0]), np.array(6.0)]
    assert I.P == cg.Ob()
    assert_close(I.forward([], a), a)
    assert I.updated([], a, b) == []
    assert_close(I.requested([], a, b), b)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=15)
@given(data=st.data())
def test_identity_laws(data):
    f = data.draw(paras())
    rng = rng_from(data.draw)
    L = learner(f, eps=0.1)
    p, a, b = points(rng, f.P), points(rng, f.dom), points(rng, f.cod)
    ref = eval_all(L, p, a, b)
    for M in (Learner.id(f.dom) >> L, L >> Learner.id(f.cod)):
        assert M.names == L.names
        for got, want in zip(eval_all(M, p, a, b), ref):
            assert_close(got, want, rtol=1e-12)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=12)
@given(data=st.data())
def test_composition_associative(data):
    A, B, C, D = (data.draw(float_types(2)) for _ in range(4))
    f, g, h = data.draw(paras(A, B, 3)), data.draw(paras(B, C, 3)), data.draw(paras(C, D, 3))
    Lf, Lg, Lh = (learner(x, eps=0.2) for x in (f, g, h))
    left, right = (Lf >> Lg) >> Lh, Lf >> (Lg >> Lh)
    assert left.P == right.P == f.P @ g.P @ h.P  # same flat layout however bracketed
    rng = rng_from(data.draw)
    p, a, d = points(rng, left.P), points(rng, A), points(rng, D)
    for got, want in zip(eval_all(left, p, a, d), eval_all(right, p, a, d)):
        assert_close(got, want, rtol=1e-10)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=15)
@given(data=st.data(), eps=st.floats(0.01, 1.0))
def test_functoriality_on_random_paras(data, eps):
    """L(f >> g) = L(f) >> L(g) up to the parameter swap Q x P ~ P x Q."""
    A, B, C = (data.draw(float_types(2)) for _ in range(3))
    f, g = data.draw(paras(A, B)), data.draw(paras(B, C))
    image = learner(f >> g, eps)  # parameters Q x P (Para's order)
    composite = (learner(f, eps) >> learner(g, eps)).permute_params(swap_blocks(len(f.P), len(g.P)))
    assert image.P == composite.P
    rng = rng_from(data.draw)
    p, a, c = points(rng, image.P), points(rng, A), points(rng, C)
    for got, want in zip(eval_all(composite, p, a, c), eval_all(image, p, a, c)):
        assert_close(got, want, rtol=1e-10)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=15)
@given(data=st.data())
def test_functor_preserves_tensor(data):
    f, g = data.draw(paras()), data.draw(paras())
    image, product = learner(f @ g, 0.3), learner(f, 0.3) @ learner(g, 0.3)
    assert image.P == product.P and image.dom == product.dom and image.cod == product.cod
    rng = rng_from(data.draw)
    p, a, b = points(rng, image.P), points(rng, image.dom), points(rng, image.cod)
    for got, want in zip(eval_all(product, p, a, b), eval_all(image, p, a, b)):
        assert_close(got, want, rtol=1e-12)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=10)
@given(data=st.data())
def test_interchange(data):
    """(L1 @ L2) >> (L3 @ L4) = (L1 >> L3) @ (L2 >> L4), up to the parameter shuffle."""
    A, B, C, D, E, F = (data.draw(float_types(1)) for _ in range(6))
    f1, f2 = data.draw(paras(A, B, 3)), data.draw(paras(D, E, 3))
    f3, f4 = data.draw(paras(B, C, 3)), data.draw(paras(E, F, 3))
    L1, L2, L3, L4 = (learner(x, 0.1) for x in (f1, f2, f3, f4))
    left = (L1 @ L2) >> (L3 @ L4)  # params P1 P2 P3 P4
    n1, n2, n3, n4 = (len(x.P) for x in (f1, f2, f3, f4))
    # (L1 >> L3) @ (L2 >> L4) has P1 P3 P2 P4; bring it to P1 P2 P3 P4
    perm = [*range(n1), *range(n1 + n3, n1 + n3 + n2), *range(n1, n1 + n3), *range(n1 + n3 + n2, n1 + n2 + n3 + n4)]
    right = ((L1 >> L3) @ (L2 >> L4)).permute_params(perm)
    assert left.P == right.P
    rng = rng_from(data.draw)
    p, a, c = points(rng, left.P), points(rng, left.dom), points(rng, left.cod)
    for got, want in zip(eval_all(left, p, a, c), eval_all(right, p, a, c)):
        assert_close(got, want, rtol=1e-10)


def test_permute_params_roundtrip_and_errors():
    L = learner(dot_model() >> sin_model(), 0.1)  # (v, w)
    M = L.permute_params([1, 0]).permute_params([1, 0])
    p, a, c = [np.array(0.3), np.array([1.0, 2.0])], np.array([0.5, -0.5]), np.array(0.2)
    for got, want in zip(eval_all(M, p, a, c), eval_all(L, p, a, c)):
        assert_close(got, want, rtol=1e-15)
    with pytest.raises(cg.CatgradTypeError, match="permutation"):
        L.permute_params([0, 0])


def test_composition_type_errors():
    with pytest.raises(cg.CatgradTypeError, match="cannot compose learners"):
        learner(dot_model(), 0.1) >> learner(dot_model(), 0.1)
    with pytest.raises(cg.CatgradTypeError, match="update must be"):
        Learner([f64[()]], cg.ops.mul(f64[()], f64[()]), cg.id(f64[()]), cg.id(f64[()]))
    bits = cg.Para([cg.Param("k", cg.bit[2])], cg.ops.mul(cg.bit[2], cg.bit[2]))
    with pytest.raises(cg.CatgradTypeError, match="float"):
        learner(bits, 0.1)


# -- pluggable error functions ------------------------------------------------------------


def _softplus_error():
    """e(x, y) = log(1 + exp(x)) - x y (logistic loss on a logit x): de/dx = sigmoid(x) - y,
    whose inverse in y is y = sigmoid(x) - z."""

    def loss(t):
        return cg.build(cg.Ob(t, t), lambda b, ins: [(cg.ops.log(1.0 + cg.ops.exp(ins[1])) - ins[1] * ins[0]).sum()])

    return Error("logistic", loss, inverse=lambda x, z: cg.ops.sigmoid(x) - z)


def test_pluggable_error_matches_numpy():
    f = dot_model()
    L = learner(f, 0.5, error=_softplus_error())
    w, a, y = np.array([0.3, -0.2]), np.array([1.0, 2.0]), np.array(1.0)
    x = w @ a
    s = 1 / (1 + np.exp(-x))
    assert_close(L.updated([w], a, y), [w - 0.5 * (s - y) * a], rtol=1e-13)
    # request: r = sigmoid(a) - grad_a E, per input wire entry
    assert_close(L.requested([w], a, y), [1 / (1 + np.exp(-a)) - (s - y) * w], rtol=1e-13)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=10)
@given(data=st.data())
def test_functoriality_with_a_nonquadratic_error(data):
    """With the request e_a^{-1}(grad_a E) functoriality holds for any e whose
    derivative is invertible in y (here the logistic error)."""
    A, B, C = (data.draw(float_types(1)) for _ in range(3))
    f, g = data.draw(paras(A, B, 4)), data.draw(paras(B, C, 4))
    err = _softplus_error()
    image = learner(f >> g, 0.2, err)
    composite = (learner(f, 0.2, err) >> learner(g, 0.2, err)).permute_params(swap_blocks(len(f.P), len(g.P)))
    rng = rng_from(data.draw)
    p, a, c = points(rng, image.P), points(rng, A), points(rng, C)
    for got, want in zip(eval_all(composite, p, a, c), eval_all(image, p, a, c)):
        assert_close(got, want, rtol=1e-9)


def test_error_from_a_loss_constructor():
    """A learning-layer style loss (a Para whose parameter is the label) plugs in as e."""

    def half_sq(t):
        body = cg.build(cg.Ob(t, t), lambda b, ins: [((ins[1] - ins[0]) * (ins[1] - ins[0])).sum() * 0.5])
        return cg.Para([cg.Param("label", t)], body)

    f = dot_model()
    p, a, b = [np.array([0.5, -1.0])], np.array([2.0, 1.0]), np.array(1.0)
    assert_close(learner(f, 0.1, error=half_sq).updated(p, a, b), [np.array([0.7, -0.9])], rtol=1e-15)
    with pytest.raises(cg.CatgradTypeError, match="scalar"):
        learner(f, 0.1, error=lambda t: cg.id(t, t)).updated(p, a, b)


def test_gradient_diagram_is_R_of_the_error():
    f = dot_model()
    G = gradient(f)
    assert G.dom == f.P @ f.dom @ f.cod and G.cod == f.P @ f.dom
    w, a, b = np.array([0.5, -1.0]), np.array([2.0, 1.0]), np.array(1.0)
    r = w @ a - b
    assert_close(cg.evaluate(G, w, a, b), [r * a, r * w], rtol=1e-15)


# -- learners trained by an optimizer lens --------------------------------------------------


def sgd_lens(P, eps):
    """Plain gradient update as an optimizer lens (P, P) -> (P, P'), put(p, p') = p + eps p'."""
    n = len(P)
    return cg.Lens(cg.id(P), cg.build(P @ P, lambda b, ins: [p + eps * d for p, d in zip(ins[:n], ins[n:])]))


def momentum_lens(P, eps, gamma):
    """(P x S, P x S) -> (P, P'): s' = gamma s + p', p_new = p + eps s' (S = P)."""
    n = len(P)

    def put(b, ins):
        p, s, d = ins[:n], ins[n : 2 * n], ins[2 * n :]
        s2 = [gamma * si + di for si, di in zip(s, d)]
        return [pi + eps * si for pi, si in zip(p, s2)] + s2

    return cg.Lens(cg.wiring(P @ P, range(n)), cg.build(P @ P @ P, put))


def test_optimized_with_sgd_is_L():
    f = dot_model() >> sin_model()
    A = optimized(f, sgd_lens(f.P, 0.1))
    B = learner(f, 0.1)
    rng = np.random.default_rng(1)
    p, a, c = points(rng, f.P), points(rng, f.dom), points(rng, f.cod)
    for got, want in zip(eval_all(A, p, a, c), eval_all(B, p, a, c)):
        assert_close(got, want, rtol=1e-14)


def test_optimized_momentum_against_numpy():
    f = dot_model()
    L = optimized(f, momentum_lens(f.P, 0.1, 0.9))
    assert L.names == ("w", "opt/s0") and L.P == f64[2] @ f64[2]
    w, s = np.array([0.5, -1.0]), np.zeros(2)
    rng = np.random.default_rng(2)
    state = [w, s]
    for _ in range(20):
        a, b = rng.normal(size=2), rng.normal()
        g = (w @ a - b) * a
        s = 0.9 * s - g
        w = w + 0.1 * s
        state = L.updated(state, a, np.array(b))
    assert_close(state, [w, s], rtol=1e-13)


def test_optimized_by_sam_takes_the_gradient_at_the_perturbed_point():
    """An optimizer from the learning layer that evaluates the gradient twice (SAM over SGD)
    trains the learner as the SAM algorithm does, written here in numpy."""
    f = dot_model()
    L = optimized(f, cg.optim.sam(cg.optim.sgd(0.1), rho=0.3).lens(f.params))
    assert L.names == ("w", "opt/w/sam.rho", "opt/w/sgd.lr")
    w = np.array([0.5, -1.0])
    state = [w, np.array(0.3), np.array(0.1)]
    rng = np.random.default_rng(3)
    for _ in range(10):
        a, b = rng.normal(size=2), rng.normal()
        g = (w @ a - b) * a
        e = 0.3 * g / (np.linalg.norm(g) + 1e-12)
        w = w - 0.1 * ((w + e) @ a - b) * a
        state = L.updated(state, a, np.array(b))
    assert_close(state[0], w, rtol=1e-13)


def test_optimized_rejects_mismatched_lens():
    with pytest.raises(cg.CatgradTypeError, match="optimizer lens"):
        optimized(dot_model(), sgd_lens(cg.Ob(f64[3]), 0.1))


def test_bad_arrays_give_shape_errors():
    L = learner(dot_model(), 0.1)
    with pytest.raises(cg.ShapeError, match="parameters"):
        L.updated([np.zeros(2), np.zeros(2)], np.zeros(2), np.array(1.0))
    with pytest.raises(cg.ShapeError):
        L.forward([np.zeros(3)], np.zeros(2))
