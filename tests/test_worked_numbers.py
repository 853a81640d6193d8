"""Every worked number in docs/mathematics.md sections 1-2, computed through catgrad."""

import numpy as np
import pytest

import catgrad as cg

S0 = cg.f64[()]
B = cg.bit[()]


def ev(f, *xs):
    return [np.asarray(y) for y in cg.evaluate(f, *xs)]


def sc(*xs):
    return [np.float64(x) for x in xs]


def bits(*xs):
    return [np.bool_(x) for x in xs]


# -- section 1 --------------------------------------------------------------------------------


@cg.trace(S0, S0)
def smooth_f(x1, x2):
    """f(x1, x2) = (x1^3 + 2 x1 x2, x2, sin x1)."""
    return x1**3 + 2.0 * x1 * x2, x2 * 1.0, cg.ops.sin(x1)


@pytest.mark.parametrize(
    "x, v, expected",
    [((1, 2), (1, 1, 1), (7.5403023, 3.0)), ((0, 0), (1, 2, 3), (3.0, 2.0))],
)
def test_smooth_f(x, v, expected):
    out = ev(cg.R(smooth_f), *sc(*x), *sc(*v))
    np.testing.assert_allclose([float(o) for o in out], expected, atol=5e-8)


def test_smooth_f_formula():
    """R[f](x, v) = ((3 x1^2 + 2 x2) v1 + cos(x1) v3, 2 x1 v1 + v2) at a generic point."""
    x1, x2, v1, v2, v3 = 0.7, -1.3, 0.4, 2.5, -0.9
    out = ev(cg.R(smooth_f), *sc(x1, x2, v1, v2, v3))
    np.testing.assert_allclose(
        [float(o) for o in out], [(3 * x1**2 + 2 * x2) * v1 + np.cos(x1) * v3, 2 * x1 * v1 + v2], rtol=1e-14
    )


def test_chain_rule_number():
    f = cg.trace(S0)(lambda x: x * x)
    g = cg.ops.sin(S0)
    (out,) = ev(cg.R(f >> g), *sc(1, 1))
    assert out == pytest.approx(1.0806046, abs=5e-8)
    assert out == pytest.approx(2 * np.cos(1.0), rel=1e-15)


def test_z2_square_vs_identity():
    sq = cg.trace(B)(lambda x: x * x)
    for x in (0, 1):
        assert ev(sq, *bits(x))[0] == bool(x)  # same truth table as the identity
        for d in (0, 1):
            assert ev(cg.R(sq), *bits(x, d))[0] == False  # noqa: E712  2 x d = 0
            assert ev(cg.R(cg.id(B)), *bits(x, d))[0] == bool(d)


ALL2 = [(a, b) for a in (0, 1) for b in (0, 1)]


def test_generator_copy():  # (x, (d1, d2)) -> d1 + d2
    for x in (0, 1):
        for d1, d2 in ALL2:
            assert ev(cg.R(cg.copy(B)), *bits(x, d1, d2)) == [np.bool_(d1 ^ d2)]


def test_generator_discard():  # -> 0
    for x in (0, 1):
        assert ev(cg.R(cg.discard(B)), *bits(x)) == [np.bool_(False)]


def test_generator_add():  # ((x1, x2), d) -> (d, d)
    for x1, x2 in ALL2:
        for d in (0, 1):
            assert ev(cg.R(cg.ops.add(B, B)), *bits(x1, x2, d)) == bits(d, d)
    assert [ev(cg.ops.add(B, B), *bits(a, b))[0] for a, b in ALL2] == bits(0, 1, 1, 0)  # XOR


def test_generator_zero_and_one():  # () -> 0 / 1, R: -> ()
    assert ev(cg.ops.zero(B)) == bits(0)
    assert ev(cg.ops.one(B)) == bits(1)
    assert cg.R(cg.ops.zero(B)).cod == cg.Ob() and ev(cg.R(cg.ops.zero(B)), *bits(1)) == []
    assert cg.R(cg.ops.one(B)).cod == cg.Ob() and ev(cg.R(cg.ops.one(B)), *bits(0)) == []


def test_generator_mul():  # ((x1, x2), d) -> (x2 d, x1 d)
    for x1, x2 in ALL2:
        for d in (0, 1):
            assert ev(cg.R(cg.ops.mul(B, B)), *bits(x1, x2, d)) == bits(x2 & d, x1 & d)
    assert [ev(cg.ops.mul(B, B), *bits(a, b))[0] for a, b in ALL2] == bits(0, 0, 0, 1)  # AND


def test_generator_swap():  # ((a, b), (d1, d2)) -> (d2, d1)
    for a, b in ALL2:
        for d1, d2 in ALL2:
            assert ev(cg.R(cg.swap(B, B)), *bits(a, b, d1, d2)) == bits(d2, d1)


# -- section 2 --------------------------------------------------------------------------------


def test_lens_composite_and_identity():
    """get = f ; g, put(a, c') = f*(a, g*(f(a), c')); identity (id, pi1)."""
    f = cg.trace(S0)(lambda x: x * x)  # f(a) = a^2, f*(a, b') = 2 a b'
    g = cg.ops.sin(S0)  # g*(b, c') = cos(b) c'
    lf, lg = cg.lens(f), cg.lens(g)
    comp = lf >> lg
    a, c = 0.8, 1.7
    assert float(ev(comp.get, *sc(a))[0]) == pytest.approx(np.sin(a * a), rel=1e-15)
    expected = 2 * a * (np.cos(a * a) * c)
    assert float(ev(comp.put, *sc(a, c))[0]) == pytest.approx(expected, rel=1e-15)
    ident = cg.Lens.id(S0)
    assert float(ev(ident.get, *sc(a))[0]) == a
    assert float(ev(ident.put, *sc(a, c))[0]) == c


def p_mul():
    """(P, f) with f(p, a) = p * a."""
    return cg.Para([cg.Param("p", S0)], cg.ops.mul(S0, S0))


def p_add():
    """(Q, g) with g(q, b) = q + b."""
    return cg.Para([cg.Param("q", S0)], cg.ops.add(S0, S0))


def test_para_composite():
    """(P, f) >> (Q, g) = (Q x P, (q, p, a) |-> g(q, f(p, a)))."""
    h = p_mul() >> p_add()
    assert h.names == ("q", "p")
    q, p, a = 0.5, 3.0, -2.0
    assert float(ev(h.body, *sc(q, p, a))[0]) == q + p * a
    # its gradient: d/dq = c, d/dp = a c, d/da = p c
    c = 1.5
    assert [float(x) for x in ev(cg.R(h), *sc(q, p, a, c))] == [c, a * c, p * c]


def test_para_reparametrisation():
    """Along alpha : Q -> P, (Q, (q, a) |-> f(alpha(q), a)); here alpha(q) = q^2."""
    alpha = cg.trace(S0)(lambda q: q * q)
    r = p_mul().reparam(alpha, [cg.Param("q", S0)])
    q, a, c = 1.5, 2.0, 1.0
    assert float(ev(r.body, *sc(q, a))[0]) == q * q * a
    # chain rule through alpha: d/dq = 2 q a c
    assert [float(x) for x in ev(cg.R(r), *sc(q, a, c))] == [2 * q * a * c, q * q * c]


def test_weight_tying_adds_gradients():
    """f(w1, w2, a) = w1 * a + w2 * a^2 tied (w1 = w2 = w): the gradient of w is the sum."""
    t = S0
    body = cg.trace(t, t, t)(lambda w1, w2, a: w1 * a + w2 * a * a)
    f = cg.Para([cg.Param("w1", t), cg.Param("w2", t)], body)
    tied = f.tie("w1", "w2")
    assert tied.names == ("w1",)
    w, a, c = 0.3, 2.0, 1.0
    g_untied = [float(x) for x in ev(cg.R(f), *sc(w, w, a, c))]
    g_tied = [float(x) for x in ev(cg.R(tied), *sc(w, a, c))]
    assert g_untied[:2] == [a * c, a * a * c]
    assert g_tied[0] == g_untied[0] + g_untied[1] == 6.0
    assert g_tied[1] == g_untied[2]


def test_parametric_lens_composite():
    """put: b = f(p, a); (q', b') = g*(q, b, c'); (p', a') = f*(p, a, b'); return ((q', p'), a')."""
    F, G = cg.ParaLens.of(p_mul()), cg.ParaLens.of(p_add())
    H = F >> G
    q, p, a, c = 0.5, 3.0, -2.0, 1.5
    b = p * a
    q_, b_ = c, c  # g*(q, b, c') for g = q + b
    p_, a_ = a * b_, p * b_  # f*(p, a, b') for f = p * a
    assert float(ev(H.get, *sc(q, p, a))[0]) == q + b
    assert [float(x) for x in ev(H.put, *sc(q, p, a, c))] == [q_, p_, a_]
    # and it is the parametric lens of the composite
    direct = cg.ParaLens.of(p_mul() >> p_add())
    assert ev(direct.put, *sc(q, p, a, c)) == ev(H.put, *sc(q, p, a, c))
