"""Laws of lenses, Para and parametric lenses, checked by evaluating get and put
on random diagrams at random points; R : C -> Lens(C) and ParaLens.of are functors."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import catgrad as cg
import strategies as S

LAWS = settings(max_examples=25)


def lens_same(l1: cg.Lens, l2: cg.Lens, rng):
    """Equal as lenses: same types, and get and put agree at a random point."""
    assert l1.dom == l2.dom and l1.cod == l2.cod
    a, b_ = S.points(rng, l1.A), S.cotangents(rng, l1.B_)
    S.assert_close(cg.evaluate(l1.get, *a), cg.evaluate(l2.get, *a), what="get")
    S.assert_close(cg.evaluate(l1.put, *a, *b_), cg.evaluate(l2.put, *a, *b_), what="put")


def lenses(draw, n):
    """n composable lenses (f, R[f]) of random diagrams."""
    out, dom = [], None
    for _ in range(n):
        f = draw(S.smooth_diagrams(dom=dom, max_ops=4))
        out.append(cg.lens(f))
        dom = f.cod
    return out


@LAWS
@given(st.data())
def test_lens_associativity(data):
    f, g, h = lenses(data.draw, 3)
    lens_same((f >> g) >> h, f >> (g >> h), S.rng_from(data.draw))


@LAWS
@given(st.data())
def test_lens_identity(data):
    (f,) = lenses(data.draw, 1)
    rng = S.rng_from(data.draw)
    lens_same(cg.Lens.id(f.A) >> f, f, rng)
    lens_same(f >> cg.Lens.id(f.B), f, rng)


@LAWS
@given(st.data())
def test_lens_interchange(data):
    f, g = lenses(data.draw, 2)
    h, k = lenses(data.draw, 2)
    lens_same((f @ h) >> (g @ k), (f >> g) @ (h >> k), S.rng_from(data.draw))


@LAWS
@given(st.data())
def test_R_is_a_functor_into_lenses(data):
    f = data.draw(S.smooth_diagrams(max_ops=5))
    g = data.draw(S.smooth_diagrams(dom=f.cod, max_ops=5))
    h = data.draw(S.smooth_diagrams(max_ops=5))
    rng = S.rng_from(data.draw)
    lens_same(cg.lens(f >> g), cg.lens(f) >> cg.lens(g), rng)
    lens_same(cg.lens(f @ h), cg.lens(f) @ cg.lens(h), rng)
    lens_same(cg.lens(cg.id(f.dom)), cg.Lens.id(f.dom), rng)


def test_lens_law_check_can_fail():
    t = cg.f64[3]
    wrong = cg.Lens(cg.ops.sin(t), cg.R(cg.ops.cos(t)))
    try:
        lens_same(wrong, cg.lens(cg.ops.sin(t)), np.random.default_rng(0))
    except AssertionError:
        return
    raise AssertionError("a wrong put went unnoticed")


# -- Para ---------------------------------------------------------------------------------------


@st.composite
def paras(draw, dom=None, prefix="p"):
    """A random Para: a random diagram whose first 1-2 inputs are parameters."""
    P = draw(S.float_types(max_inputs=2))
    A = draw(S.float_types(max_inputs=2)) if dom is None else cg.Ob(*dom)
    body = draw(S.smooth_diagrams(dom=P @ A, max_ops=4))
    names = [f"{prefix}{k}" for k in range(len(P))]
    return cg.Para([cg.Param(n, t) for n, t in zip(names, P)], body)


def para_same(f: cg.Para, g: cg.Para, rng):
    assert f.P == g.P and f.dom == g.dom and f.cod == g.cod
    assert f.names == g.names
    xs = S.points(rng, f.P @ f.dom)
    S.assert_close(cg.evaluate(f.body, *xs), cg.evaluate(g.body, *xs), what="Para body")
    assert f.body == g.body  # also structurally


def chain(draw):
    f = draw(paras(prefix="W"))
    g = draw(paras(dom=f.cod, prefix="W"))
    h = draw(paras(dom=g.cod, prefix="W"))
    return f, g, h


@LAWS
@given(st.data())
def test_para_associativity_with_identical_layout(data):
    f, g, h = chain(data.draw)
    left, right = (f >> g) >> h, f >> (g >> h)
    para_same(left, right, S.rng_from(data.draw))
    # the later map's parameters come first, in the same layout either way
    assert left.P == h.P @ g.P @ f.P


@LAWS
@given(st.data())
def test_para_identity(data):
    f = data.draw(paras())
    rng = S.rng_from(data.draw)
    para_same(cg.Para.lift(cg.id(f.dom)) >> f, f, rng)
    para_same(f >> cg.Para.lift(cg.id(f.cod)), f, rng)


@LAWS
@given(st.data())
def test_para_interchange(data):
    f = data.draw(paras(prefix="a"))
    g = data.draw(paras(dom=f.cod, prefix="b"))
    h = data.draw(paras(prefix="c"))
    k = data.draw(paras(dom=h.cod, prefix="d"))
    lhs, rhs = (f @ h) >> (g @ k), (f >> g) @ (h >> k)
    # same function up to the order of the parameter list: compare through the names
    assert sorted(lhs.names) == sorted(rhs.names)
    rng = S.rng_from(data.draw)
    vals = {n: x for n, x in zip(lhs.names, S.points(rng, lhs.P))}
    xs = S.points(rng, lhs.dom)
    out_l = cg.evaluate(lhs.body, *[vals[n] for n in lhs.names], *xs)
    out_r = cg.evaluate(rhs.body, *[vals[n] for n in rhs.names], *xs)
    S.assert_close(out_l, out_r, what="interchange")


def test_para_names_do_not_depend_on_bracketing():
    t = cg.f64[2]
    layer = cg.Para([cg.Param("W", t)], cg.ops.mul(t, t))
    chains = [((layer >> layer) >> layer) >> layer, layer >> (layer >> (layer >> layer)),
              (layer >> layer) >> (layer >> layer)]
    assert {c.names for c in chains} == {("W", "W_2", "W_3", "W_4")}
    assert (layer @ layer).names == ("W", "W_2")


@LAWS
@given(st.data())
def test_paralens_of_is_a_functor(data):
    f = data.draw(paras(prefix="f"))
    g = data.draw(paras(dom=f.cod, prefix="g"))
    rng = S.rng_from(data.draw)
    direct, composed = cg.ParaLens.of(f >> g), cg.ParaLens.of(f) >> cg.ParaLens.of(g)
    assert direct.P == composed.P and [p.name for p in direct.params] == [p.name for p in composed.params]
    xs = S.points(rng, direct.P @ direct.A)
    c = S.cotangents(rng, direct.B_)
    S.assert_close(cg.evaluate(direct.get, *xs), cg.evaluate(composed.get, *xs), what="get")
    S.assert_close(cg.evaluate(direct.put, *xs, *c), cg.evaluate(composed.put, *xs, *c), what="put")


@LAWS
@given(paras(), st.data())
def test_tying_is_reparametrisation_by_copy(f, data):
    """Tying two parameters of one type gives the sum of their gradients."""
    t = f.P[0]
    body = cg.build(cg.Ob(t, t) @ f.P[1:] @ f.dom, lambda b, ins: b.call(f.body, [ins[0] + ins[1], *ins[2:]]))
    g = cg.Para([cg.Param("u", t), cg.Param("v", t), *f.params[1:]], body)
    tied = g.tie("u", "v")
    rng = S.rng_from(data.draw)
    w, rest, xs = S.points(rng, [t])[0], S.points(rng, f.P[1:]), S.points(rng, f.dom)
    c = S.cotangents(rng, f.cod)
    full = cg.evaluate(cg.R(g), w, w, *rest, *xs, *c)
    one = cg.evaluate(cg.R(tied), w, *rest, *xs, *c)
    S.assert_close([one[0]], [full[0] + full[1]], what="tied gradient")
    S.assert_close(one[1:], full[2:], what="other gradients")
