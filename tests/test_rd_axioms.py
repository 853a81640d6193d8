"""The reverse-derivative axioms RD.1-RD.7 (docs/mathematics.md section 1) as properties of cg.R.

Each axiom is checked on randomly generated diagrams twice over:

- smooth float64 diagrams, by evaluation at random points (relative error 1e-8);
- Z2 circuits on batched bit wires, exactly, over *every* assignment of the
  quantified variables at once (the batch axis runs over all of them).

``f + g`` and ``0`` on diagrams are the left-additive structure of
:mod:`strategies` (copy >> (f @ g) >> add, discard >> zeros).
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import catgrad as cg
import strategies as S

SMOOTH = settings(max_examples=40)
SMALL = settings(max_examples=25)


def ev(f, *args):
    return cg.evaluate(f, *args)


def split(xs, n):
    xs = list(xs)
    return xs[:n], xs[n:]


# -- smooth ---------------------------------------------------------------------------------


@st.composite
def parallel_pair(draw, gen=S.smooth_diagrams, **kw):
    """Two random maps with the same domain and codomain."""
    f = draw(gen(**kw))
    g = draw(gen(dom=f.dom, cod=f.cod, **kw))
    return f, g


@SMOOTH
@given(parallel_pair(), st.data())
def test_rd1_additive_smooth(fg, data):
    f, g = fg
    rng = S.rng_from(data.draw)
    a, b = S.points(rng, f.dom), S.cotangents(rng, f.cod)
    lhs = ev(cg.R(S.add_maps(f, g)), *a, *b)
    rhs = S.add_values(ev(cg.R(f), *a, *b), ev(cg.R(g), *a, *b))
    S.assert_close(lhs, rhs, what="R[f + g] = R[f] + R[g]")
    # and the diagram-level sum R[f] + R[g] : A x B -> A agrees too
    S.assert_close(ev(S.add_maps(cg.R(f), cg.R(g)), *a, *b), rhs, what="(R[f] + R[g]) as a diagram")


@SMOOTH
@given(S.float_types(), S.float_types(), st.data())
def test_rd1_zero_smooth(A, B, data):
    rng = S.rng_from(data.draw)
    out = ev(cg.R(S.zero_map(A, B)), *S.points(rng, A), *S.cotangents(rng, B))
    S.assert_close(out, S.zeros_like(A), what="R[0] = 0")
    assert all(np.all(o == 0) for o in out)


@SMOOTH
@given(S.smooth_diagrams(), st.data())
def test_rd2_linear_in_cotangent_smooth(f, data):
    rng = S.rng_from(data.draw)
    a = S.points(rng, f.dom)
    b, c = S.cotangents(rng, f.cod), S.cotangents(rng, f.cod)
    Rf = cg.R(f)
    lhs = ev(Rf, *a, *S.add_values(b, c))
    S.assert_close(lhs, S.add_values(ev(Rf, *a, *b), ev(Rf, *a, *c)), what="R[f](a, b + c)")
    for z in ev(Rf, *a, *S.zeros_like(f.cod)):
        assert np.all(z == 0), "R[f](a, 0) must be exactly 0"


@SMOOTH
@given(S.float_types(), S.float_types(), st.data())
def test_rd3_structural_maps(A, B, data):
    rng = S.rng_from(data.draw)
    a, b = S.points(rng, A), S.points(rng, B)
    da, db = S.cotangents(rng, A), S.cotangents(rng, B)
    # R[id](a, b) = b, exactly (no arithmetic happens)
    for x, y in zip(ev(cg.R(cg.id(A)), *a, *da), da):
        np.testing.assert_array_equal(x, y)
    # R[pi0]((a, b), c) = (c, 0);  R[pi1]((a, b), c) = (0, c)
    out0 = ev(cg.R(S.projection(A, B, 0)), *a, *b, *da)
    out1 = ev(cg.R(S.projection(A, B, 1)), *a, *b, *db)
    for x, y in zip(out0, da + S.zeros_like(B)):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(out1, S.zeros_like(A) + db):
        np.testing.assert_array_equal(x, y)


@SMOOTH
@given(S.smooth_diagrams(), st.data())
def test_rd4_pairing_smooth(f, data):
    g = data.draw(S.smooth_diagrams(dom=f.dom))
    rng = S.rng_from(data.draw)
    a, b, c = S.points(rng, f.dom), S.cotangents(rng, f.cod), S.cotangents(rng, g.cod)
    pair = cg.copy(f.dom) >> (f @ g)  # <f, g>
    lhs = ev(cg.R(pair), *a, *b, *c)
    S.assert_close(lhs, S.add_values(ev(cg.R(f), *a, *b), ev(cg.R(g), *a, *c)), what="R[<f, g>]")
    # R[!] = 0
    out = ev(cg.R(cg.discard(f.dom)), *a)
    assert all(np.all(o == 0) for o in out) and len(out) == len(f.dom)


@SMOOTH
@given(S.smooth_diagrams(), st.data())
def test_rd5_chain_rule_smooth(f, data):
    g = data.draw(S.smooth_diagrams(dom=f.cod))
    rng = S.rng_from(data.draw)
    a, c = S.points(rng, f.dom), S.cotangents(rng, g.cod)
    lhs = ev(cg.R(f >> g), *a, *c)
    fa = ev(f, *a)
    rhs = ev(cg.R(f), *a, *ev(cg.R(g), *fa, *c))
    S.assert_close(lhs, rhs, what="chain rule")


@SMALL
@given(S.smooth_diagrams(max_ops=6), st.data())
def test_rd6_smooth(f, data):
    """pi1 R[R[R[f]]](((a, b), 0), (0, c)) = R[f](a, c)."""
    rng = S.rng_from(data.draw)
    A, B = f.dom, f.cod
    a, b, c = S.points(rng, A), S.cotangents(rng, B), S.cotangents(rng, B)
    R3 = cg.R(cg.R(cg.R(f)))
    out = ev(R3, *a, *b, *S.zeros_like(A), *S.zeros_like(A), *c)
    assert len(out) == 2 * len(A) + len(B)
    S.assert_close(out[len(A) + len(B):], ev(cg.R(f), *a, *c), what="RD.6")


@SMALL
@given(S.smooth_diagrams(max_ops=4), st.data())
def test_rd7_mixed_partials_smooth(f, data):
    """D[D[f]]((a, b), (c, d)) = D[D[f]]((a, c), (b, d))."""
    rng = S.rng_from(data.draw)
    A = f.dom
    a, b, c, d = (S.points(rng, A) for _ in range(4))
    DD = cg.D(cg.D(f))
    S.assert_close(ev(DD, *a, *b, *c, *d), ev(DD, *a, *c, *b, *d), what="RD.7")


@SMALL
@given(S.smooth_diagrams(max_ops=6), st.data())
def test_d_is_jacobian_vector_product(f, data):
    """D[f](a, v) = J(a) v, checked against R by the adjoint identity
    <D[f](a, v), w> = <v, R[f](a, w)> (both sides are the bilinear form w^T J v)."""
    rng = S.rng_from(data.draw)
    a, v, w = S.points(rng, f.dom), S.cotangents(rng, f.dom), S.cotangents(rng, f.cod)
    jv = ev(cg.D(f), *a, *v)
    jtw = ev(cg.R(f), *a, *w)
    lhs = sum(float(np.sum(x * y)) for x, y in zip(jv, w))
    rhs = sum(float(np.sum(x * y)) for x, y in zip(v, jtw))
    assert abs(lhs - rhs) <= 1e-8 * (abs(lhs) + abs(rhs)) + 1e-12


# -- Z2: exhaustive over all inputs -----------------------------------------------------------

Z2 = settings(max_examples=30)


@Z2
@given(st.data())
def test_rd1_additive_z2(data):
    f = data.draw(S.z2_diagrams())
    g = data.draw(S.z2_diagrams(dom=f.dom, cod=f.cod))
    (a, b) = S.all_bits(f.dom, f.cod)
    lhs = ev(cg.R(S.add_maps(f, g)), *a, *b)
    S.assert_equal_bits(lhs, S.add_values(ev(cg.R(f), *a, *b), ev(cg.R(g), *a, *b)), "RD.1 over Z2")
    z = ev(cg.R(S.zero_map(f.dom, f.cod)), *a, *b)
    S.assert_equal_bits(z, [np.zeros_like(x) for x in a], "R[0] = 0 over Z2")


@Z2
@given(S.z2_diagrams())
def test_rd2_linear_in_cotangent_z2(f):
    a, b, c = S.all_bits(f.dom, f.cod, f.cod)
    Rf = cg.R(f)
    S.assert_equal_bits(ev(Rf, *a, *S.add_values(b, c)), S.add_values(ev(Rf, *a, *b), ev(Rf, *a, *c)), "RD.2")
    S.assert_equal_bits(ev(Rf, *a, *[np.zeros_like(x) for x in b]), [np.zeros_like(x) for x in a], "R[f](a, 0)")


@Z2
@given(S.z2_types(), S.z2_types())
def test_rd3_structural_maps_z2(A, B):
    a, b, c = S.all_bits(A, B, A)
    S.assert_equal_bits(ev(cg.R(cg.id(A)), *a, *c), c, "R[id]")
    S.assert_equal_bits(
        ev(cg.R(S.projection(A, B, 0)), *a, *b, *c), c + [np.zeros_like(x) for x in b], "R[pi0]"
    )


@Z2
@given(st.data())
def test_rd4_pairing_z2(data):
    f = data.draw(S.z2_diagrams())
    g = data.draw(S.z2_diagrams(dom=f.dom))
    a, b, c = S.all_bits(f.dom, f.cod, g.cod)
    lhs = ev(cg.R(cg.copy(f.dom) >> (f @ g)), *a, *b, *c)
    S.assert_equal_bits(lhs, S.add_values(ev(cg.R(f), *a, *b), ev(cg.R(g), *a, *c)), "RD.4 over Z2")


@Z2
@given(st.data())
def test_rd5_chain_rule_z2(data):
    f = data.draw(S.z2_diagrams())
    g = data.draw(S.z2_diagrams(dom=f.cod))
    a, c = S.all_bits(f.dom, g.cod)
    lhs = ev(cg.R(f >> g), *a, *c)
    rhs = ev(cg.R(f), *a, *ev(cg.R(g), *ev(f, *a), *c))
    S.assert_equal_bits(lhs, rhs, "chain rule over Z2")


@Z2
@given(S.z2_diagrams(max_ops=5))
def test_rd6_z2(f):
    A, B = f.dom, f.cod
    a, b, c = S.all_bits(A, B, B)
    zA = [np.zeros_like(x) for x in a]
    out = ev(cg.R(cg.R(cg.R(f))), *a, *b, *zA, *zA, *c)
    S.assert_equal_bits(out[len(A) + len(B):], ev(cg.R(f), *a, *c), "RD.6 over Z2")


@settings(max_examples=20)
@given(S.z2_diagrams(dom=(cg.bit["N"],), max_ops=4))
def test_rd7_z2(f):
    A = f.dom
    a, b, c, d = S.all_bits(A, A, A, A)
    DD = cg.D(cg.D(f))
    S.assert_equal_bits(ev(DD, *a, *b, *c, *d), ev(DD, *a, *c, *b, *d), "RD.7 over Z2")


def test_z2_formal_derivative_is_not_a_truth_table():
    """x*x and x have the same truth table, but R[x*x] = 0 and R[x] = id (docs/mathematics.md, a pitfall)."""
    t = cg.bit["N"]
    sq = cg.trace(t)(lambda x: x * x)
    (x,), (d,) = S.all_bits(cg.Ob(t), cg.Ob(t))
    np.testing.assert_array_equal(ev(sq, x)[0], ev(cg.id(t), x)[0])
    np.testing.assert_array_equal(ev(cg.R(sq), x, d)[0], np.zeros_like(x))
    np.testing.assert_array_equal(ev(cg.R(cg.id(t)), x, d)[0], d)
