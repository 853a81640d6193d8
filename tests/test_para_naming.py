"""Para's renaming, tying, reparametrisation and printing, Learner.init and Lens
equality: small operations that no law test reached (survivors of the mutation run,
docs/testing.md)."""

import re

import numpy as np
import pytest

import catgrad as cg
from catgrad.calculus.learner import learner

f64 = cg.f64
t = f64[2]


def two_param_map():
    body = cg.trace(t, t, t)(lambda u, v, x: u * x + v)
    return cg.Para([cg.Param("u", t), cg.Param("v", t)], body)


def test_renaming_and_prefixing_keep_the_body_and_types():
    f = two_param_map()
    g = f.with_params(u="enc.u")
    assert g.names == ("enc.u", "v") and g.body is f.body and g.P == f.P
    h = f.prefixed("layer1")
    # the same body, its boxes scoped under the prefix (scopes only group drawings)
    assert h.names == ("layer1.u", "layer1.v") and h.body == f.body and h.P == f.P
    assert {bx.scope for bx in h.body.boxes} == {("layer1",)} != {bx.scope for bx in f.body.boxes}
    assert repr(f) == f"Para([u: {t}, v: {t}], {t} -> {t})"


def test_a_plain_diagram_on_the_left_is_lifted():
    f = two_param_map()
    sin = cg.ops.sin(t)
    x, u, v = np.array([0.3, -0.2]), np.array([2.0, 3.0]), np.array([1.0, -1.0])
    left = sin >> f
    assert left.names == ("u", "v") and left.dom == cg.Ob(t)
    assert np.allclose(cg.evaluate(left.body, u, v, x)[0], u * np.sin(x) + v, rtol=1e-15)
    par = sin @ f
    assert par.names == ("u", "v") and par.dom == t @ t and par.cod == t @ t
    got = cg.evaluate(par.body, u, v, x, x)
    assert np.allclose(got[0], np.sin(x)) and np.allclose(got[1], u * x + v)


def test_tying_keeps_the_first_name_and_checks_types():
    body = cg.trace(t, t, t, t)(lambda a, b, c, x: a * x + b * x + c)
    f = cg.Para([cg.Param("a", t), cg.Param("b", t), cg.Param("c", t)], body)
    g = f.tie("b", "a")  # b is kept; a becomes b
    assert g.names == ("b", "c")
    b, c, x = np.array([2.0, 3.0]), np.array([1.0, 1.0]), np.array([0.5, 4.0])
    assert np.allclose(cg.evaluate(g.body, b, c, x)[0], 2 * b * x + c, rtol=1e-15)
    three = f.tie("a", "b", "c")
    assert three.names == ("a",)
    assert np.allclose(cg.evaluate(three.body, b, x)[0], 2 * b * x + b, rtol=1e-15)
    mixed = cg.Para([cg.Param("a", t), cg.Param("s", f64[()])], cg.trace(t, f64[()], t)(lambda a, s, x: a * x * s))
    with pytest.raises(cg.CatgradTypeError, match="^" + re.escape(f"cannot tie a : {t} to s : {f64[()]}")):
        mixed.tie("a", "s")


def test_reparametrisation_checks_both_ends():
    f = two_param_map()
    params = [cg.Param("w", t)]
    assert f.reparam(cg.copy(t), params).names == ("w",)
    with pytest.raises(cg.CatgradTypeError, match="^a reparametrisation must map"):
        f.reparam(cg.id(t), params)  # right domain, wrong codomain
    with pytest.raises(cg.CatgradTypeError, match="^a reparametrisation must map"):
        f.reparam(cg.copy(t), [cg.Param("w", f64[3])])  # right codomain, wrong domain


def test_learner_init_uses_the_seed_or_the_generator():
    f = cg.Para([cg.Param("w", t)], cg.ops.mul(t, t))  # the default initialiser draws from rng
    L = learner(f, 0.1)
    assert np.array_equal(L.init()[0], f.params[0].initial(np.random.default_rng(0)))
    assert np.array_equal(L.init(3)[0], f.params[0].initial(np.random.default_rng(3)))
    rng = np.random.default_rng(5)
    assert np.array_equal(L.init(np.random.default_rng(5))[0], f.params[0].initial(rng))
    assert repr(L) == f"Learner([w: {t}], {t} -> {t})"
    assert repr(learner(two_param_map(), 0.1)) == f"Learner([u: {t}, v: {t}], {t} -> {t})"


def test_lens_equality_compares_get_and_put():
    a = cg.lens(cg.ops.sin(t))
    assert a == cg.Lens(a.get, a.put)
    assert a != cg.Lens(cg.ops.cos(t), a.put) and a != cg.Lens(a.get, cg.lens(cg.ops.cos(t)).put)
    assert a != "lens"
