"""Diagrams form a symmetric monoidal category with a copy/discard comonoid on
every object: each law is checked as structural equality (``==``) and by evaluation.
Also: the printed form round-trips (``eval(repr(d)) == d``).
"""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import catgrad as cg
import strategies as S

LAWS = settings(max_examples=30)


def same(f, g, rng):
    """f == g structurally and as functions at a random point."""
    assert f.dom == g.dom and f.cod == g.cod
    assert f == g
    xs = S.points(rng, f.dom)
    S.assert_close(cg.evaluate(f, *xs), cg.evaluate(g, *xs), rtol=0, what="evaluation")


def chain(draw):
    f = draw(S.smooth_diagrams(max_ops=4))
    g = draw(S.smooth_diagrams(dom=f.cod, max_ops=4))
    h = draw(S.smooth_diagrams(dom=g.cod, max_ops=4))
    return f, g, h


@LAWS
@given(st.data())
def test_associativity(data):
    f, g, h = chain(data.draw)
    same((f >> g) >> h, f >> (g >> h), S.rng_from(data.draw))
    same((f @ g) @ h, f @ (g @ h), S.rng_from(data.draw))


@LAWS
@given(S.smooth_diagrams(max_ops=4), st.data())
def test_unit_laws(f, data):
    rng = S.rng_from(data.draw)
    same(cg.id(f.dom) >> f, f, rng)
    same(f >> cg.id(f.cod), f, rng)
    same(cg.id() @ f, f, rng)
    same(f @ cg.id(), f, rng)


@LAWS
@given(st.data())
def test_interchange(data):
    f = data.draw(S.smooth_diagrams(max_ops=3))
    g = data.draw(S.smooth_diagrams(dom=f.cod, max_ops=3))
    h = data.draw(S.smooth_diagrams(max_ops=3))
    k = data.draw(S.smooth_diagrams(dom=h.cod, max_ops=3))
    same((f @ h) >> (g @ k), (f >> g) @ (h >> k), S.rng_from(data.draw))


@LAWS
@given(st.data())
def test_swap_involution_and_naturality(data):
    f = data.draw(S.smooth_diagrams(max_ops=3))
    g = data.draw(S.smooth_diagrams(max_ops=3))
    rng = S.rng_from(data.draw)
    A, B = f.dom, g.dom
    same(cg.swap(A, B) >> cg.swap(B, A), cg.id(A @ B), rng)
    # naturality: (f @ g) ; swap = swap ; (g @ f)
    same((f @ g) >> cg.swap(f.cod, g.cod), cg.swap(A, B) >> (g @ f), rng)
    # hexagon: swap(A, B @ C) = (swap(A, B) @ id C) ; (id B @ swap(A, C))
    C = f.cod
    same(cg.swap(A, B @ C), (cg.swap(A, B) @ cg.id(C)) >> (cg.id(B) @ cg.swap(A, C)), rng)


@LAWS
@given(S.float_types(), st.data())
def test_copy_discard_comonoid(A, data):
    rng = S.rng_from(data.draw)
    c, d, i = cg.copy(A), cg.discard(A), cg.id(A)
    same(c >> (d @ i), i, rng)  # counit
    same(c >> (i @ d), i, rng)
    same(c >> (c @ i), c >> (i @ c), rng)  # coassociativity
    same(c >> cg.swap(A, A), c, rng)  # cocommutativity
    assert cg.copy(A, 3) == c >> (c @ i)


@LAWS
@given(S.smooth_diagrams(max_ops=4), st.data())
def test_cartesian_naturality(f, data):
    """Copy and discard are natural (f is a function): f ; copy = copy ; (f @ f), f ; ! = !."""
    rng = S.rng_from(data.draw)
    xs = S.points(rng, f.dom)
    lhs = cg.evaluate(f >> cg.copy(f.cod), *xs)
    rhs = cg.evaluate(cg.copy(f.dom) >> (f @ f), *xs)
    S.assert_close(lhs, rhs, rtol=0)
    assert f >> cg.discard(f.cod) == cg.discard(f.dom)  # dead boxes are dropped


def test_equality_can_fail():
    t = cg.f64[3]
    assert cg.ops.sin(t) != cg.ops.cos(t)
    assert cg.ops.sin(t) >> cg.ops.exp(t) != cg.ops.exp(t) >> cg.ops.sin(t)
    assert cg.swap(t, t) != cg.id(t @ t)
    assert cg.copy(t) != cg.copy(t) >> cg.swap(t, t) >> (cg.ops.sin(t) @ cg.id(t))
    assert cg.ops.sum(cg.f64[2, 3], axes=(0,)) != cg.ops.sum(cg.f64[2, 3], axes=(1,))


def test_equality_ignores_box_order_and_wire_names():
    t = cg.f64[3]

    @cg.trace(t, t)
    def f(x, y):
        a = cg.ops.sin(x)
        b = cg.ops.exp(y)
        return a * b

    @cg.trace(t, t)
    def g(x, y):
        b = cg.ops.exp(y)
        a = cg.ops.sin(x)
        return a * b

    assert f == g
    assert f != cg.trace(t, t)(lambda x, y: cg.ops.exp(y) * cg.ops.sin(x))  # mul's inputs swapped


# -- printing ---------------------------------------------------------------------------------

T = cg.f64[3]
REPRS = [
    cg.ops.exp(T) >> cg.ops.sin(T),
    cg.copy(T) >> (cg.id(T) @ cg.ops.exp(T)) >> cg.swap(T, T),
    cg.ops.matmul(cg.f32["B", 4], cg.f32[4, 3]),
    cg.ops.sum(cg.f64[3, 4], axes=(1,), keepdims=True),
    cg.ops.constant(type=T, value=1.0) >> cg.ops.tanh(T),
    cg.id(cg.f64[3] @ cg.bit[2]) >> (cg.discard(cg.f64[3]) @ cg.ops.not_(cg.bit[2])),
    cg.permute(T @ cg.bit[2] @ cg.f64[()], [2, 0, 1]),
    cg.copy(T @ cg.bit[2], 3),
    cg.ops.cast(T, dtype=cg.f32) @ cg.ops.softmax(cg.f64[2, 5], axis=0),
    cg.id(),
]


@pytest.mark.parametrize("d", REPRS, ids=range(len(REPRS)))
def test_repr_round_trips(d):
    again = eval(repr(d), {"cg": cg})
    assert again == d
    assert repr(again) == repr(d)


def test_str_lists_boxes():
    s = str(cg.ops.exp(T) >> cg.ops.sin(T))
    assert "exp(%0)" in s and "sin(%1)" in s and "return %2" in s


def test_deep_composites_flatten_and_print():
    """A 2000-deep chain alternating >> and @ (as Para builds) is beyond Python's recursion limit."""
    t = cg.f64[2]
    d = cg.ops.sin(t)
    for _ in range(2000):
        d = (cg.id(cg.Ob()) @ d) >> cg.ops.sin(t)
    assert len(d.graph) == 2001
    assert repr(d).count("cg.ops.sin") == 2001
    x = np.array([0.3, -0.2])
    ref = x
    for _ in range(2001):
        ref = np.sin(ref)
    np.testing.assert_allclose(cg.evaluate(d, x)[0], ref)
