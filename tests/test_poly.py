"""Poly: finite polynomials and their lenses (laws checked exhaustively or by hypothesis),
monomials on catgrad objects, dynamical systems, wiring, and learners as systems."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_learner import assert_close, float_types, momentum_lens, points, rng_from, smooth_diagrams

import catgrad as cg
from catgrad.calculus.learner import learner, optimized
from catgrad.calculus.poly import (
    BoundLens,
    FinLens,
    FinPoly,
    Hom,
    Monomial,
    PolyMap,
    System,
    curry,
    hom_compose,
    hom_eval,
    learner_lens,
    stream,
    uncurry,
)

f64 = cg.f64

# -- finite polynomials ---------------------------------------------------------------------

# small polynomials, used exhaustively: y^0, y, y^2, 2y, y + 1, y^2 + y, ...
SMALL = [
    FinPoly({0: []}),
    FinPoly.y(),
    FinPoly({0: ["a", "b"]}),
    FinPoly({0: ["a"], 1: ["b"]}),
    FinPoly({0: ["a"], 1: []}),
    FinPoly({"x": ["a", "b"], "y": ["c"]}),
]


@st.composite
def fin_polys(draw, max_positions=3, max_dirs=2):
    n = draw(st.integers(1, max_positions))
    return FinPoly({i: [f"d{k}" for k in range(draw(st.integers(0, max_dirs)))] for i in range(n)})


@st.composite
def fin_lenses(draw, dom, cod):
    all_ = dom.lenses(cod)
    assume(all_)
    return all_[draw(st.integers(0, len(all_) - 1))]


def test_number_of_lenses():
    # |Lens(p, q)| = prod_i sum_j |p[i]|^|q[j]|
    for p, q in itertools.product(SMALL, repeat=2):
        expected = math.prod(sum(len(p[i]) ** len(q[j]) for j in q.positions) for i in p.positions)
        lenses = p.lenses(q)
        assert len(lenses) == expected
        assert len(set(lenses)) == expected  # all distinct


def test_composition_laws_exhaustive():
    ps = SMALL[1:4]
    for p, q, r, s in itertools.product(ps, repeat=4):
        for f in p.lenses(q):
            assert FinLens.id(p) >> f == f == f >> FinLens.id(q)
            for g in q.lenses(r)[:4]:
                for h in r.lenses(s)[:4]:
                    assert (f >> g) >> h == f >> (g >> h)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(data=st.data())
def test_composition_laws_random(data):
    p, q, r, s = (data.draw(fin_polys()) for _ in range(4))
    f, g, h = data.draw(fin_lenses(p, q)), data.draw(fin_lenses(q, r)), data.draw(fin_lenses(r, s))
    assert (f >> g) >> h == f >> (g >> h)
    assert FinLens.id(p) >> f == f and f >> FinLens.id(q) == f


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(data=st.data())
def test_parallel_product_is_a_bifunctor(data):
    p, q, r, p2, q2, r2 = (data.draw(fin_polys(2, 2)) for _ in range(6))
    f, g = data.draw(fin_lenses(p, q)), data.draw(fin_lenses(q, r))
    f2, g2 = data.draw(fin_lenses(p2, q2)), data.draw(fin_lenses(q2, r2))
    assert (f @ f2) >> (g @ g2) == (f >> g) @ (f2 >> g2)
    assert FinLens.id(p) @ FinLens.id(p2) == FinLens.id(p @ p2)


def test_parallel_product_sizes():
    # positions multiply, directions at (i, j) are p[i] x q[j]; y is the unit
    for p, q in itertools.product(SMALL, repeat=2):
        pq = p @ q
        assert len(pq.positions) == len(p.positions) * len(q.positions)
        for i, j in pq.positions:
            assert len(pq[(i, j)]) == len(p[i]) * len(q[j])
        yp = FinPoly.y() @ p
        assert sorted(len(yp[k]) for k in yp.positions) == sorted(len(p[i]) for i in p.positions)


def test_sum_and_product():
    p, q = SMALL[5], SMALL[4]
    assert (p + q).size() == (len(p.positions) + len(q.positions), p.size()[1] + q.size()[1])
    pq = p * q
    for i, j in pq.positions:
        assert len(pq[(i, j)]) == len(p[i]) + len(q[j])


def test_internal_hom_currying_exhaustive():
    """Lens(r (x) p, q) ~ Lens(r, [p, q]), with the evaluation map as counit:
    phi = (curry(phi) (x) id_p) >> ev."""
    small = SMALL[:5]
    for r, p, q in itertools.product(small[:4], small, small):
        H = p.hom(q)
        assert set(H.positions) == set(p.lenses(q))
        ev = uncurry(FinLens.id(H), p, q)  # [p, q] (x) p -> q
        left, right = (r @ p).lenses(q), r.lenses(H)
        assert len(left) == len(right)
        curried = [curry(phi, r, p) for phi in left]
        assert len(set(curried)) == len(right) and set(curried) <= set(right)
        for phi, psi in zip(left, curried):
            assert uncurry(psi, p, q) == phi
            assert (psi @ FinLens.id(p)) >> ev == phi


def test_fin_lens_errors():
    p, q = FinPoly({0: ["a"]}), FinPoly({"x": ["u", "v"]})
    with pytest.raises(cg.CatgradError, match="every position"):
        FinLens(p, q, {}, {})
    with pytest.raises(cg.CatgradError, match="not a position"):
        FinLens(p, q, {0: "z"}, {})
    with pytest.raises(cg.CatgradError, match="no direction"):
        FinLens(p, q, {0: "x"}, {(0, "u"): "a"})
    with pytest.raises(cg.CatgradError, match="not a direction"):
        FinLens(p, q, {0: "x"}, {(0, "u"): "a", (0, "v"): "b"})
    with pytest.raises(cg.CatgradError, match="not a position"):
        p["nope"]
    with pytest.raises(cg.CatgradTypeError, match="cannot compose"):
        FinLens.id(p) >> FinLens.id(q)


# -- finite dynamical systems -----------------------------------------------------------------


def counter(n):
    """States 0..n-1; reads out whether at n-1; input 0/1 adds to the count mod n."""
    S = list(range(n))
    iface = FinPoly.monomial(["lo", "hi"], [0, 1])
    return System.finite(
        FinLens.of(FinPoly.monomial(S, S), iface, lambda s: "hi" if s == n - 1 else "lo", lambda s, d: (s + d) % n)
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=30)
@given(inputs=st.lists(st.integers(0, 1), max_size=20), n=st.integers(1, 4))
def test_finite_moore_machine_runs(inputs, n):
    outs, final = counter(n).run(0, inputs)
    s, expected = 0, []
    for d in inputs:
        expected.append("hi" if s == n - 1 else "lo")
        s = (s + d) % n
    assert outs == expected and final == s


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=30)
@given(inputs=st.lists(st.integers(0, 1), max_size=20))
def test_finite_series_wiring(inputs):
    """Two counters in series: the first's readout (hi = 1) is the second's input."""
    c2, c3 = counter(2), counter(3)
    iface = FinPoly.monomial(["lo", "hi"], [0, 1])
    both = iface @ iface
    # (o1, o2) y^{(d1, d2)} -> O y^{d}: output o2; input d goes to the first, o1 to the second
    wiring = FinLens.of(both, iface, lambda o: o[1], lambda o, d: (d, 1 if o[0] == "hi" else 0))
    system = (c2 @ c3).wire(wiring)
    outs, (s1, s2) = system.run((0, 0), inputs)
    a, b, expected = 0, 0, []
    for d in inputs:
        expected.append("hi" if b == 2 else "lo")
        a, b = (a + d) % 2, (b + (a == 1)) % 3
    assert outs == expected and (s1, s2) == (a, b)


def test_finite_system_domain_check():
    p = FinPoly({0: ["x"], 1: ["x"]})  # directions are not the states
    with pytest.raises(cg.CatgradError, match="S y\\^S"):
        System.finite(FinLens.id(p))


# -- monomials on catgrad objects ----------------------------------------------------------------


@st.composite
def mono_lenses(draw, p: Monomial, q: Monomial):
    get = draw(smooth_diagrams(dom=p.A, cod=q.A, max_ops=4))
    put = draw(smooth_diagrams(dom=p.A @ q.B, cod=p.B, max_ops=4))
    return p.lens(q, get, put)


def eval_lens(lens, a, d):
    return list(cg.evaluate(lens.get, *a)), list(cg.evaluate(lens.put, *a, *d))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=12)
@given(data=st.data())
def test_monomial_lens_laws(data):
    p, q, r, s = (Monomial(data.draw(float_types(1)), data.draw(float_types(1))) for _ in range(4))
    f, g, h = data.draw(mono_lenses(p, q)), data.draw(mono_lenses(q, r)), data.draw(mono_lenses(r, s))
    rng = rng_from(data.draw)
    a, d = points(rng, p.A), points(rng, s.B)
    for got, want in zip(eval_lens((f >> g) >> h, a, d), eval_lens(f >> (g >> h), a, d)):
        assert_close(got, want, rtol=1e-12)
    dq = points(rng, q.B)
    for got, want in zip(eval_lens(p.id() >> f, a, dq), eval_lens(f, a, dq)):
        assert_close(got, want, rtol=1e-12)
    for got, want in zip(eval_lens(f >> q.id(), a, dq), eval_lens(f, a, dq)):
        assert_close(got, want, rtol=1e-12)
    # the runtime view composes the same way
    m = PolyMap.from_lens(f) >> PolyMap.from_lens(g)
    assert_close(m.on_pos(a), cg.evaluate(f.get >> g.get, *a), rtol=1e-12)
    dr = points(rng, r.B)
    assert_close(m.on_dir(a, dr), eval_lens(f >> g, a, dr)[1], rtol=1e-12)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=10)
@given(data=st.data())
def test_monomial_parallel_product(data):
    p, q, p2, q2 = (Monomial(data.draw(float_types(1)), data.draw(float_types(1))) for _ in range(4))
    f, f2 = data.draw(mono_lenses(p, q)), data.draw(mono_lenses(p2, q2))
    t = f @ f2
    assert (t.dom, t.cod) == (((p @ p2).A, (p @ p2).B), ((q @ q2).A, (q @ q2).B))
    rng = rng_from(data.draw)
    a, a2, d, d2 = points(rng, p.A), points(rng, p2.A), points(rng, q.B), points(rng, q2.B)
    got_get, got_put = eval_lens(t, a + a2, d + d2)
    assert_close(got_get, eval_lens(f, a, d)[0] + eval_lens(f2, a2, d2)[0], rtol=1e-14)
    assert_close(got_put, eval_lens(f, a, d)[1] + eval_lens(f2, a2, d2)[1], rtol=1e-14)


def test_monomial_lens_type_check():
    p, q = Monomial(f64[2]), Monomial(f64[3], f64[()])
    with pytest.raises(cg.CatgradTypeError, match="needs get"):
        p.lens(q, cg.id(f64[2]), cg.id(f64[2]))
    assert Monomial(f64[2]) @ Monomial(f64[3], f64[()]) == Monomial(f64[2] @ f64[3], f64[2] @ f64[()])


def test_hom_evaluation_and_composition():
    """ev : [p, q] (x) p -> q applies the lens; hom_compose composes the positions."""
    p, q, r = Monomial(f64[2]), Monomial(f64[()]), Monomial(f64[()])
    get = cg.trace(f64[2])(lambda a: (a * a).sum())
    put = cg.trace(f64[2], f64[()])(lambda a, d: a * d)
    phi = p.lens(q, get, put)
    psi = q.lens(r, cg.ops.sin(f64[()]), cg.trace(f64[()], f64[()])(lambda b, d: cg.ops.cos(b) * d))
    assert Hom(p, q).directions == f64[2] @ f64[()]
    a, c = [np.array([1.0, 2.0])], [np.array(0.5)]
    ev = hom_eval(p, q)
    bl = BoundLens.of(phi)
    assert_close(ev.on_pos((bl, a)), [5.0])
    (a_back, d_back), a_req = ev.on_dir((bl, a), c)
    assert_close(a_back, a)
    assert_close(a_req, [np.array([0.5, 1.0])])
    comp = hom_compose(p, q, r)
    chain = comp.on_pos((bl, BoundLens.of(psi)))
    assert_close(chain.get(a), [np.sin(5.0)], rtol=1e-15)
    assert_close(chain.put(a, c), [a[0] * np.cos(5.0) * 0.5], rtol=1e-15)
    (a1, b1_), (b2, c2) = comp.on_dir((bl, BoundLens.of(psi)), (a, c))
    assert_close(a1, a)
    assert_close(b1_, [np.cos(5.0) * 0.5])
    assert_close(b2, [5.0])
    assert_close(c2, c)


# -- dynamical systems on catgrad objects ---------------------------------------------------------


def accumulator():
    """S = f64[2]: readout the running sum's total, update s + x."""
    readout = cg.trace(f64[2])(lambda s: s.sum())
    update = cg.trace(f64[2], f64[2])(lambda s, x: s + x)
    return System.moore(readout, update)


def test_moore_machine_on_arrays():
    sys_ = accumulator()
    assert sys_.state == cg.Ob(f64[2]) and sys_.interface == Monomial(f64[()], f64[2])
    xs = [[np.array([1.0, 2.0])], [np.array([3.0, -1.0])], [np.array([0.5, 0.5])]]
    outs, final = sys_.run([np.zeros(2)], xs)
    assert_close([o[0] for o in outs], [0.0, 3.0, 5.0])
    assert_close(final, [np.array([4.5, 1.5])])
    assert len(sys_.states([np.zeros(2)], xs)) == 4


def sq_model():
    """f(w, a) = w . a, a linear regression model."""
    return cg.Para([cg.Param("w", f64[3])], cg.trace(f64[3], f64[3])(lambda w, a: (w * a).sum()))


def test_model_and_schedule_wired_into_one_diagram():
    """A model system P y^(A x B x L) (gradient step with the rate as input) and an exponential
    schedule T y^T -> L y^1, wired so the schedule drives the model's rate: one catgrad lens."""
    from catgrad.calculus.learner import gradient

    f = sq_model()
    P, A, B, L = f.P, f.dom, f.cod, cg.Ob(f64[()])
    grad = gradient(f)
    model = System.moore(
        cg.id(P), cg.build(P @ A @ B @ L, lambda b, ins: [ins[0] - ins[3] * b.call(grad, ins[:3])[0]])
    )
    eps0, decay = 0.2, 0.9
    schedule = System.moore(
        cg.trace(f64[()])(lambda t: cg.ops.exp(t * math.log(decay)) * eps0),
        cg.trace(f64[()])(lambda t: t + 1.0),
    )
    # (P x L) y^((A x B x L) x 1) -> P y^(A x B): show p, feed (a, b) and the rate
    wiring = cg.Lens(cg.wiring(P @ L, [0]), cg.wiring(P @ L @ A @ B, [2, 3, 1]))
    trainer = (model @ schedule).wire(wiring)
    assert trainer.lens is not None and trainer.state == P @ cg.Ob(f64[()])  # one lens, state (p, t)
    rng = np.random.default_rng(3)
    data = [(rng.normal(size=3), np.array(rng.normal())) for _ in range(30)]
    outs, final = trainer.run([np.zeros(3), np.array(0.0)], [[a, b] for a, b in data])
    w = np.zeros(3)
    for t, (a, b) in enumerate(data):
        assert_close(outs[t], [w], rtol=1e-12)
        w = w - eps0 * decay**t * (w @ a - b) * a
    assert_close(final, [w, np.array(30.0)], rtol=1e-12)


@pytest.mark.skipif(not hasattr(cg, "schedule"), reason="cg.schedule not available yet")
@pytest.mark.parametrize("name, args, rate", [
    ("exponential", (0.2, 0.9), lambda t: 0.2 * 0.9**t),
    ("warmup_linear", (0.3, 5), lambda t: 0.3 * min(1.0, (t + 1) / 5)),
])
def test_model_wired_to_a_learning_layer_schedule(name, args, rate):
    """The learning layer's schedules are Moore machines S y^S -> L y^1; wired to the model
    system they drive its rate, and the whole trainer is again one lens."""
    from catgrad.calculus.learner import gradient

    f = sq_model()
    P, A, B, L = f.P, f.dom, f.cod, cg.Ob(f64[()])
    grad = gradient(f)
    model = System.moore(
        cg.id(P), cg.build(P @ A @ B @ L, lambda b, ins: [ins[0] - ins[3] * b.call(grad, ins[:3])[0]])
    )
    sched = getattr(cg.schedule, name)(*args)
    schedule = System.moore(*sched.moore())
    assert schedule.interface == Monomial(L, cg.Ob())
    wiring = cg.Lens(cg.wiring(P @ L, [0]), cg.wiring(P @ L @ A @ B, [2, 3, 1]))
    trainer = (model @ schedule).wire(wiring)
    s0 = [np.zeros(3)] + [np.asarray(v, dtype=np.float64) for v in sched.state_values().values()]
    rng = np.random.default_rng(8)
    data = [(rng.normal(size=3), np.array(rng.normal())) for _ in range(12)]
    _, final = trainer.run(s0, [[a, b] for a, b in data])
    w = np.zeros(3)
    for t, (a, b) in enumerate(data):
        w = w - rate(t) * (w @ a - b) * a
    assert_close(final[:1], [w], rtol=1e-12)


# -- learners as dynamical systems -----------------------------------------------------------------


def mlp():
    W1, W2 = f64[3, 4], f64[4, 2]
    body = cg.trace(W1, W2, f64[3])(lambda w1, w2, a: cg.ops.tanh(cg.ops.tanh(a @ w1) @ w2))
    return cg.Para([cg.Param("W1", W1), cg.Param("W2", W2)], body)


def test_learner_system_is_the_training_loop():
    f = mlp()
    L = learner(f, 0.05)
    sys_ = L.system()
    assert sys_.interface == Hom(Monomial(f.dom), Monomial(f.cod))
    rng = np.random.default_rng(4)
    data = [(rng.normal(size=3), rng.normal(size=2)) for _ in range(25)]
    p0 = f.init(0)
    outs, final = sys_.run(p0, stream(data, f.dom, f.cod))
    p = p0
    for t, (a, b) in enumerate(data):
        # readout: the current lens (I(p, -), r(p, -, -))
        assert_close(outs[t].get([a]), L.forward(p, a), rtol=1e-14)
        assert_close(outs[t].put([a], [b]), L.requested(p, a, b), rtol=1e-14)
        p = L.updated(p, a, b)
    assert_close(final, p, rtol=1e-14)


def test_learner_lens_is_the_uncurried_system():
    """The learner as a lens P y^P (x) A y^A -> B y^B: get = I, put = (U, r)."""
    L = learner(sq_model(), 0.1)
    lens = learner_lens(L)
    w, a, b = np.array([0.1, 0.2, 0.3]), np.array([1.0, -1.0, 2.0]), np.array(0.5)
    put = cg.evaluate(lens.put, w, a, b)
    assert_close(put, L.updated([w], a, b) + L.requested([w], a, b), rtol=1e-15)


def test_two_learners_in_series():
    """Wiring the systems of L(f) and L(g) along [A y^A, B y^B] (x) [B y^B, C y^C] -> [A y^A, C y^C]
    is the system of the composite learner L(f) >> L(g)."""
    f = mlp()
    g = cg.Para([cg.Param("v", f64[2])], cg.trace(f64[2], f64[2])(lambda v, x: cg.ops.sin(v * x)))
    Lf, Lg = learner(f, 0.1), learner(g, 0.1)
    wired = (Lf.system() @ Lg.system()).wire(hom_compose(Monomial(f.dom), Monomial(f.cod), Monomial(g.cod)))
    direct = (Lf >> Lg).system()
    rng = np.random.default_rng(5)
    data = [(rng.normal(size=3), rng.normal(size=2)) for _ in range(20)]
    p0, q0 = f.init(1), [np.array([0.5, -0.3])]
    outs_w, (pf, pg) = wired.run((p0, q0), stream(data, f.dom, g.cod))
    outs_d, final = direct.run(p0 + q0, stream(data, f.dom, g.cod))
    assert_close(pf + pg, final, rtol=1e-13)
    a, c = [data[0][0]], [data[0][1]]
    for ow, od in zip(outs_w[::5], outs_d[::5]):
        assert_close(ow.get(a), od.get(a), rtol=1e-13)
        assert_close(ow.put(a, c), od.put(a, c), rtol=1e-13)
    # and the parameters actually moved
    assert np.linalg.norm(final[0] - p0[0]) > 1e-3


def test_training_system_with_optimizer_state():
    """State = parameters + optimizer state (momentum velocity), against numpy."""
    f = sq_model()
    sys_ = optimized(f, momentum_lens(f.P, 0.05, 0.9)).system()
    rng = np.random.default_rng(6)
    data = [(rng.normal(size=3), np.array(rng.normal())) for _ in range(40)]
    _, final = sys_.run([np.zeros(3), np.zeros(3)], stream(data, f.dom, f.cod))
    w, v = np.zeros(3), np.zeros(3)
    for a, b in data:
        v = 0.9 * v - (w @ a - b) * a
        w = w + 0.05 * v
    assert_close(final, [w, v], rtol=1e-12)


# -- the Poly training loop agrees with the compiled step ------------------------------------------

needs_compile = pytest.mark.skipif(
    not (hasattr(cg, "compile") and hasattr(cg, "optim") and hasattr(cg.optim, "sgd")),
    reason="cg.compile / cg.optim not available yet",
)


def dense_sigmoid(n_in=4, n_out=3):
    body = cg.trace(f64[n_in, n_out], f64[n_out], f64["B", n_in])(
        lambda W, c, x: cg.ops.sigmoid(x @ W + c.broadcast(x.shape[0], n_out))
    )
    return cg.Para([cg.Param("W", f64[n_in, n_out]), cg.Param("c", f64[n_out])], body)


def _iris_like(n=60, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = np.eye(3)[rng.integers(0, 3, size=n)]
    return x, y


@needs_compile
def test_poly_training_loop_equals_compiled_sgd_step():
    """Plain SGD, mse (1/2 sum): the learner L_{eps,e}(f) stepped as a Poly system on a
    stream of one-example batches gives the compiled step's parameters to ~1e-12."""
    f = dense_sigmoid()
    eps = 0.1
    step = cg.compile(f, loss=cg.loss.mse(reduction="half_sum"), optimizer=cg.optim.sgd(lr=eps), backend="numpy")
    state = step.init(seed=0)
    p0 = [state.params[n] for n in f.names]
    x, y = _iris_like()
    pairs = [(x[i : i + 1], y[i : i + 1]) for i in range(len(x))] * 3  # 180 steps
    for a, b in pairs:
        state, _ = step(state, a, b)
    _, final = learner(f, eps).system().run(p0, stream(pairs, f.dom, f.cod))
    for name, got in zip(f.names, final):
        np.testing.assert_allclose(got, state.params[name], rtol=0, atol=1e-12)
    assert np.abs(final[0] - p0[0]).max() > 1e-2  # training did something


@needs_compile
@pytest.mark.parametrize("make_opt", ["momentum", "nesterov", "adam"])
def test_poly_training_loop_equals_compiled_step_with_optimizer_state(make_opt):
    """With a stateful optimizer the system's state is parameters + optimizer state."""
    factory = getattr(cg.optim, make_opt, None)
    if factory is None:
        pytest.skip(f"cg.optim.{make_opt} not available yet")
    f = dense_sigmoid()
    opt = factory(lr=0.05)
    step = cg.compile(f, loss=cg.loss.mse(reduction="half_sum"), optimizer=opt, backend="numpy")
    state = step.init(seed=0)
    olens = opt.lens(f.params)
    sys_ = optimized(f, olens).system()
    s0 = [state.params[n] for n in f.names] + [state.opt_state[k] for k in olens.keys]
    x, y = _iris_like(40)
    pairs = [(x[i : i + 1], y[i : i + 1]) for i in range(len(x))] * 2
    for a, b in pairs:
        state, _ = step(state, a, b)
    _, final = sys_.run(s0, stream(pairs, f.dom, f.cod))
    expected = [state.params[n] for n in f.names] + [state.opt_state[k] for k in olens.keys]
    assert len(final) == len(expected)
    for got, want in zip(final, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
