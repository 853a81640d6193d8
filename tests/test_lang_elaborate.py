"""The .cat front end elaborates to the right diagrams: equivalent forms agree
(values and reverse derivatives), against numpy transcriptions and cg.permute."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg

SHAPES = [(2,), (3,), (4,), (5,)]  # distinct shapes: a wrong wiring is a type error


def _rand(rng, ob):
    return [rng.normal(size=t.shape) for t in ob]


def _swaps(perm):
    """Point-free text for cg.permute(dom, perm): a product of adjacent swaps (bubble sort)."""
    n = len(perm)
    cur = list(range(n))  # cur[k] = which input wire sits at position k
    steps = []
    target = list(perm)
    for i in range(n):
        j = cur.index(target[i])
        while j > i:
            steps.append(j - 1)
            cur[j - 1], cur[j] = cur[j], cur[j - 1]
            j -= 1
    if not steps:
        return f"id[{n}]"
    parts = []
    for k in steps:
        left = f"id[{k}] @ " if k else ""
        right = f" @ id[{n - k - 2}]" if n - k - 2 else ""
        parts.append(f"({left}swap{right})")
    return " >> ".join(parts)


def _perm_program(perm):
    n = len(perm)
    names = "abcd"[:n]
    types = [f"f64[{SHAPES[i][0]}]" for i in range(n)]
    dom = "(" + ", ".join(types) + ")"
    cod = "(" + ", ".join(types[p] for p in perm) + ")"
    args = ", ".join(f"{a} : {t}" for a, t in zip(names, types))
    outs = ", ".join(names[p] for p in perm)
    return (
        f"def pointful({args}) -> {cod} = ({outs},)\n"
        f"def pointfree : {dom} -> {cod} = {_swaps(perm)}\n"
        f"def builtin : {dom} -> {cod} = perm[{', '.join(map(str, perm))}]\n"
    )


ALL_PERMS = [p for n in range(1, 5) for p in itertools.permutations(range(n))]


@pytest.mark.parametrize("perm", ALL_PERMS, ids=lambda p: "".join(map(str, p)))
def test_every_permutation_of_up_to_4_wires(perm):
    m = cg.loads(_perm_program(perm))
    dom = cg.Ob(*(cg.f64[s] for s in SHAPES[: len(perm)]))
    ref = cg.permute(dom, list(perm))
    rng = np.random.default_rng(len(perm))
    xs = _rand(rng, dom)
    for name in ("pointful", "pointfree", "builtin"):
        f = m[name]
        assert f == ref, name
        for a, b in zip(cg.evaluate(f, *xs), cg.evaluate(ref, *xs)):
            np.testing.assert_array_equal(a, b)
        dys = _rand(rng, f.cod)
        got = cg.evaluate(cg.R(f), *xs, *dys)
        want = cg.evaluate(cg.R(ref), *xs, *dys)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b)


def test_permutations_with_equal_types_are_still_the_right_ones():
    # all wires f64[3]: only the values tell the wirings apart
    for perm in itertools.permutations(range(4)):
        src = _perm_program(perm).replace("f64[2]", "f64[3]").replace("f64[4]", "f64[3]").replace("f64[5]", "f64[3]")
        m = cg.loads(src)
        xs = [np.full(3, float(i)) for i in range(4)]
        for name in ("pointful", "pointfree", "builtin"):
            out = cg.evaluate(m[name], *xs)
            assert [o[0] for o in out] == [float(p) for p in perm]


EQUIV = """
def f1(x : f64[3], y : f64[3]) -> f64[3] = x * y + sin(x)
def f2 : (f64[3], f64[3]) -> f64[3] = (copy @ id) >> (id @ mul) >> (sin @ id) >> swap >> add
def g1(x : f64[3]) -> (f64[3], f64[3]) {
  let e = exp(x)
  (e, e * x)
}
def g2 : f64[3] -> (f64[3], f64[3]) = copy >> (exp @ id) >> (copy @ id) >> (id @ mul)
def h1(x : f64[3], y : f64[3]) -> f64[3] = tanh(x)
def h2 : (f64[3], f64[3]) -> f64[3] = id @ discard >> tanh
def k1(x : f64[3], y : f64[3]) -> (f64[3], f64[3], f64[3]) = (y, x, y)
def k2 : (f64[3], f64[3]) -> (f64[3], f64[3], f64[3]) = swap >> (copy @ id) >> (id @ swap)
def mixed(x : f64[3], y : f64[3]) -> f64[3] = (x, y) >> f2 >> (copy >> mul)
def mixed_ref(x : f64[3], y : f64[3]) -> f64[3] {
  let z = x * y + sin(x)
  z * z
}
"""


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_pointful_and_pointfree_agree_on_values_and_reverse_derivatives(seed):
    m = cg.loads(EQUIV)
    rng = np.random.default_rng(seed)
    for a, b in [("f1", "f2"), ("g1", "g2"), ("h1", "h2"), ("k1", "k2"), ("mixed", "mixed_ref")]:
        f, g = m[a], m[b]
        assert f.dom == g.dom and f.cod == g.cod
        xs = _rand(rng, f.dom)
        for u, v in zip(cg.evaluate(f, *xs), cg.evaluate(g, *xs)):
            np.testing.assert_allclose(u, v, rtol=1e-12)
        dys = _rand(rng, f.cod)
        for u, v in zip(cg.evaluate(cg.R(f), *xs, *dys), cg.evaluate(cg.R(g), *xs, *dys)):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


def test_reverse_derivative_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    m = cg.loads(EQUIV)
    rng = np.random.default_rng(0)
    x, y, dz = rng.normal(size=(3, 3))
    dx, dy = cg.evaluate(cg.R(m["mixed"]), x, y, dz)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    z = tx * ty + torch.sin(tx)
    (z * z).backward(torch.tensor(dz))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(dy, ty.grad.numpy(), rtol=1e-10)


DENSE = """
import nn
def model = nn.dense[4, 5] >> relu >> nn.dense[5, 3]
def twice(x : f32[B, 4]) -> (f32[B, 3], f32[B, 3]) = (model(x), model(x))
def act_layer = nn.layer[4, 5](tanh)
def inferred(x : f32[7, 4]) = nn.dense[4, 2](x)
"""


def test_dense_mlp_matches_numpy_and_names_params():
    m = cg.loads(DENSE)
    f = m["model"]
    assert isinstance(f, cg.Para)
    assert f.names == ("dense.W", "dense.b", "dense_2.W", "dense_2.b")
    assert f.dom == cg.Ob(cg.f32["B", 4]) and f.cod == cg.Ob(cg.f32["B", 3])
    W1, b1, W2, b2 = f.init(0)
    assert W1.shape == (4, 5) and np.all(b1 == 0)
    lim = np.sqrt(6 / 9)
    assert np.abs(W1).max() <= lim and np.abs(W1).max() > lim / 4  # glorot uniform
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    (y,) = cg.evaluate(f, W1, b1, W2, b2, x)
    want = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    np.testing.assert_allclose(y, want, rtol=1e-5)
    # each use of a parametrised definition gets its own parameters, qualified by use
    t = m["twice"]
    assert t.names == tuple(f"model{s}.{n}" for s in ("", "_2") for n in f.names)


def test_higher_order_argument_is_specialised_away():
    m = cg.loads(DENSE)
    f = m["act_layer"]
    assert f.names == ("layer.dense.W", "layer.dense.b")
    W, b = [np.asarray(a) for a in f.init(3)]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(cg.evaluate(f, W, b, x)[0], np.tanh(x @ W + b), rtol=1e-5)
    # also as an expression instance from Python
    g = m["nn.layer[4, 5](sigmoid)"]
    np.testing.assert_allclose(cg.evaluate(g, W, b, x)[0], 1 / (1 + np.exp(-(x @ W + b))), rtol=1e-5)


def test_dimensions_are_unified_through_uses():
    m = cg.loads(DENSE)
    f = m["inferred"]
    assert f.dom == cg.Ob(cg.f32[7, 4]) and f.cod == cg.Ob(cg.f32[7, 2])
    assert [p.type for p in f.params] == [cg.f32[4, 2], cg.f32[2]]
    src = "def sq(x : f32[B, n]) = x * x\ndef use(y : f32[3, 9]) -> f32[3, 9] = sq(y)\n"
    assert cg.loads(src)["use"].cod == cg.Ob(cg.f32[3, 9])


def test_generic_definition_standalone_keeps_symbolic_dims():
    m = cg.loads("import nn\ndef d = nn.dense\n")
    with pytest.raises(cg.CatgradError):
        m["d"]  # polymorphic alias: no input type on its own
    d = m["nn.dense[3, 2]"]
    assert d.dom == cg.Ob(cg.f32["B", 3])


def test_params_in_order_own_then_callees_and_init_kinds():
    src = """
def layer(x : f64[2, 3]) -> f64[2, 3] {
  param a : f64[3] ~ normal(0.5)
  param b : f64[3] ~ uniform(-2, -1)
  param c : f64[3] ~ ones
  param d : f64[3] ~ he
  x * a + b * c + d
}
def outer(x : f64[2, 3]) -> f64[2, 3] {
  param s : f64[] ~ zeros
  layer(layer(x)) * s
}
"""
    m = cg.loads(src)
    o = m["outer"]
    assert o.names == ("s", "layer.a", "layer.b", "layer.c", "layer.d", "layer_2.a", "layer_2.b", "layer_2.c", "layer_2.d")
    vals = o.init(0)
    assert vals[0].shape == () and vals[0] == 0
    assert np.all((vals[2] >= -2) & (vals[2] < -1)) and np.all(vals[3] == 1)


def test_z2_circuits_compute_the_truth_tables():
    m = cg.load("examples/circuits.cat")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 16, size=64)
    b = rng.integers(0, 16, size=64)
    bits_a = [((a >> i) & 1).astype(bool) for i in range(4)]
    bits_b = [((b >> i) & 1).astype(bool) for i in range(4)]
    out = cg.evaluate(m["add4"], *bits_a, *bits_b)
    total = sum(o.astype(int) << i for i, o in enumerate(out))
    np.testing.assert_array_equal(total, a + b)
    eq = cg.evaluate(m["equal4"], *bits_a, *bits_b)[0]
    np.testing.assert_array_equal(eq, a == b)
    x = rng.integers(0, 2, size=(10, 8)).astype(bool)
    np.testing.assert_array_equal(cg.evaluate(m["parity8"], x)[0], x.sum(1) % 2 == 1)


def test_z2_reverse_derivative_is_formal():
    # R[x & x] = 0 while R[x] = id: polynomials, not truth tables
    m = cg.loads("def sq(x : bit[4]) = x & x\ndef one(x : bit[4]) = x\n")
    x = np.array([1, 0, 1, 1], bool)
    d = np.array([1, 1, 0, 1], bool)
    np.testing.assert_array_equal(cg.evaluate(m["sq"], x)[0], x)
    assert not cg.evaluate(cg.R(m["sq"]), x, d)[0].any()
    np.testing.assert_array_equal(cg.evaluate(cg.R(m["one"]), x, d)[0], d)


def test_losses_in_the_prelude_match_numpy():
    m = cg.loads("import loss\ndef ce = loss.softmax_cross_entropy\ndef mse = loss.mse\n"
                 "def ce2(y : f32[4, 3], p : f32[4, 3]) = loss.softmax_cross_entropy(y, p)\n"
                 "def mse2(y : f32[4, 3], p : f32[4, 3]) = loss.mse(y, p)\n")
    rng = np.random.default_rng(0)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 4)]
    p = rng.normal(size=(4, 3)).astype(np.float32)
    lse = np.log(np.exp(p).sum(1))
    np.testing.assert_allclose(cg.evaluate(m["ce2"], y, p)[0], np.mean(lse - (y * p).sum(1)), rtol=1e-5)
    np.testing.assert_allclose(cg.evaluate(m["mse2"], y, p)[0], np.mean((p - y) ** 2), rtol=1e-5)


def test_imports_relative_and_qualified(tmp_path):
    (tmp_path / "lib.cat").write_text("def twice(x : f64[3]) = x + x\n")
    (tmp_path / "main.cat").write_text('import "./lib.cat" as lib\ndef f(x : f64[3]) = lib.twice(lib.twice(x))\n')
    m = cg.load(tmp_path / "main.cat")
    np.testing.assert_allclose(m["f"](np.ones(3))[0], 4 * np.ones(3))


def test_module_mapping_api():
    m = cg.load("examples/iris.cat")
    assert "mlp" in m and list(m) == m.names() and len(m) == 3
    assert "4 -> 16" in m.doc("mlp")
    with pytest.raises(cg.CatgradError, match="did you mean 'mlp'"):
        m["mpl"]
    assert m["mlp"] is m["mlp"]
    assert m.signature("mlp") == "f32[B, 4] -> f32[B, 3]"
    assert m.has_params("mlp")


def test_digits_mlp_shape():
    f = cg.load("examples/digits.cat")["mlp"]
    assert f.dom == cg.Ob(cg.f32["B", 64]) and f.cod == cg.Ob(cg.f32["B", 10])
    xs = f.init(0)
    assert cg.evaluate(f, *xs, np.zeros((2, 64), np.float32))[0].shape == (2, 10)


def test_ops_with_attributes_and_constants():
    src = """
def f(x : f64[2, 3]) -> f64[3, 2] = transpose(x)
def g(x : f64[2, 3]) -> f64[2] = sum(x, axes=[1])
def h(x : f64[2, 3]) -> f64[6] = reshape(x, shape=[6])
def k(x : f64[2, 3]) -> f32[2, 3] = cast(x, dtype=f32)
def c(x : f64[2]) -> f64[2] = x + constant(type=f64[2], value=3)
def pf : f64[2, 3] -> f64[2] = sum(axes=1) >> exp
def e(a : f64[2, 3], b : f64[3, 4]) -> f64[2, 4] = einsum(a, b, spec="ij,jk->ik")
def p(x : f64[3]) = x ** 2 - -x / 2.0
"""
    m = cg.loads(src)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(m["f"](x)[0], x.T)
    np.testing.assert_array_equal(m["g"](x)[0], x.sum(1))
    np.testing.assert_array_equal(m["h"](x)[0], x.ravel())
    assert m["k"](x)[0].dtype == np.float32
    np.testing.assert_array_equal(m["c"](np.ones(2))[0], 4 * np.ones(2))
    np.testing.assert_allclose(m["pf"](x)[0], np.exp(x.sum(1)))
    b = np.ones((3, 4))
    np.testing.assert_allclose(m["e"](x, b)[0], x @ b)
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(m["p"](v)[0], v**2 + v / 2)


def test_ast_nodes_get_types():
    from catgrad.frontend.loader import check_text

    session, scope = check_text("def f(x : f32[B, 3]) {\n  let y = x * x\n  sum(y, axes=1)\n}\n")
    assert not session.diagnostics
    d = scope.defs["f"]
    assert d.stmts[0].value.type == cg.Ob(cg.f32["B", 3])
    assert d.result.type == cg.Ob(cg.f32["B"])


def test_arity_comes_from_the_primitive():
    """The checker reads each op's arity from its primitive: where takes three wires."""
    src = ("def f(c : f32[3], x : f32[3], y : f32[3], z : f32[2]) -> (f32[3], f32[2]) = (where @ id)(c, x, y, z)\n"
           "def g(a : f32[2], b : f32[2]) -> f32[2] = (maximum >> neg)(a, b)\n")
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.cat")
        with open(path, "w") as fh:
            fh.write(src)
        mod = cg.load(path)
    f, g = mod["f"], mod["g"]
    assert f.dom == cg.Ob(cg.f32[3], cg.f32[3], cg.f32[3], cg.f32[2]) and f.cod == cg.Ob(cg.f32[3], cg.f32[2])
    c = np.array([1, 0, 2], np.float32)
    out = cg.evaluate(f, c, np.ones(3, np.float32), np.zeros(3, np.float32), np.full(2, 5, np.float32))
    np.testing.assert_array_equal(out[0], [1, 0, 1])
    np.testing.assert_array_equal(out[1], [5, 5])
    np.testing.assert_array_equal(cg.evaluate(g, np.array([1, -3], np.float32), np.array([0, -4], np.float32))[0],
                                  [-1, 3])


def test_expression_queries_never_share_a_cache_entry():
    """``module["expr"]`` elaborates a short-lived wrapper definition, and the checker's
    cache keys a definition by ``id``. Every definition a key names must stay alive, or a
    later query with the same input type could reuse its id and get the earlier answer
    (``nn.layer[4, 8](relu)`` came back with ``nn.dense[4, 2]``'s parameter names)."""
    import gc

    from catgrad.frontend import ast as A

    mod = cg.load("examples/iris.cat")
    for k in range(6):
        assert mod[f"nn.dense[4, {k + 2}]"].names == ("dense.W", "dense.b")
        assert mod[f"nn.layer[4, {k + 2}](relu)"].names == ("layer.dense.W", "layer.dense.b")
    gc.collect()
    live = {id(o) for o in gc.get_objects() if isinstance(o, A.Def)}
    keyed = {key[0][1] for key in mod._session.checker.cache if key[0][0] == "def"}
    assert keyed and keyed <= live
