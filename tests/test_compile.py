"""Program lowering, passes and the numpy backend: every pass preserves the function
(checked against cg.evaluate on random diagrams), and the passes do their job."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import Program, compile_numpy, cse, dce, lower, optimize

UNARY = [cg.ops.sin, cg.ops.tanh, cg.ops.exp, cg.ops.sigmoid]


def random_diagram(choices):
    """A diagram f64[B, 3] x f64[3, 3] -> f64[B, 3], f64[()] with repeated subterms."""

    @cg.trace(cg.f64["B", 3], cg.f64[3, 3])
    def f(x, W):
        vals = [x, x @ W]
        for c in choices:
            a, b = vals[c % len(vals)], vals[(c // 7) % len(vals)]
            k = c % 5
            if k == 0:
                vals.append(a + b)
            elif k == 1:
                vals.append(a * b * 0.5)
            elif k == 2:
                vals.append(UNARY[c % 4](a) * 1.0 + 0.0)
            elif k == 3:
                vals.append(a @ W - cg.ops.tanh(a @ W))  # a duplicated subterm
            else:
                vals.append(a - b.const(2.0) * b)
        return vals[-1], vals[-1].sum()

    return f


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=12), st.integers(1, 4))
def test_numpy_backend_equals_evaluate(choices, batch):
    f = random_diagram(choices)
    rng = np.random.default_rng(len(choices))
    x, W = rng.normal(size=(batch, 3)), rng.normal(size=(3, 3)) * 0.5
    ref = cg.evaluate(f, x, W)
    for passes in (False, True):
        got = compile_numpy(f, passes=passes)(x, W)
        for a, b in zip(ref, got):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # and of its reverse derivative
    rf = cg.R(f)
    args = (x, W, rng.normal(size=(batch, 3)), np.float64(1.5))
    for a, b in zip(cg.evaluate(rf, *args), compile_numpy(rf)(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_cse_merges_duplicates_and_dce_drops_dead_code():
    @cg.trace(cg.f64[3])
    def f(x):
        return cg.ops.sin(x) + cg.ops.sin(x)

    p = lower(f)
    assert p.op_counts()["sin"] == 2
    q = cse(p)
    assert q.op_counts()["sin"] == 1
    r = Program(q.types, q.inputs, q.outputs[:0] + [q.inputs[0]], q.instrs)
    assert len(dce(r)) == 0


def test_constant_folding_with_symbolic_shapes():
    @cg.trace(cg.f64["B", 2])
    def f(x):
        ones = x.const(1.0)
        return x * ones + x.const(0.0) + (ones + ones)

    p = lower(f)
    folded = optimize(p, {"B": 4})
    assert "constant" not in folded.op_counts()
    assert folded.op_counts().get("mul", 0) == 0  # x * 1 -> x
    assert folded.op_counts() == {"add": 1}
    # without a binding a symbolic-shaped constant is a folded scalar, broadcast at run time
    generic = optimize(p)
    assert "constant" not in generic.op_counts() and "broadcast" in generic.op_counts()
    assert all(np.ndim(c) == 0 for c in generic.consts.values())
    x = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(compile_numpy(f)(x)[0], x + 2)


def test_specialised_per_shape_and_checks_inputs():
    f = cg.trace(cg.f64["B", 3])(lambda x: cg.ops.exp(x))
    prog = compile_numpy(f)
    prog(np.zeros((2, 3)))
    prog(np.zeros((5, 3)))
    prog(np.zeros((2, 3)))
    assert len(prog._cache) == 2
    with pytest.raises(cg.ShapeError, match="input 0"):
        prog(np.zeros((2, 4)))
    with pytest.raises(cg.ShapeError, match="dtype"):
        prog(np.zeros((2, 3), np.float32))
    assert "def run" in prog.source((2, 3))


def test_bit_programs():
    f = cg.trace(cg.bit[4], cg.bit[4])(lambda a, b: (a & b) ^ ~a)
    a, b = np.array([1, 0, 1, 0], bool), np.array([1, 1, 0, 0], bool)
    np.testing.assert_array_equal(compile_numpy(f)(a, b)[0], cg.evaluate(f, a, b)[0])


def test_einsum_plans_match_numpy():
    from catgrad.ops.linalg import _einsum2

    rng = np.random.default_rng(0)
    for spec, sa, sb in [("ab,bc->ac", (2, 3), (3, 4)), ("ac,bc->ab", (2, 4), (3, 4)), ("ab,ac->bc", (2, 3), (2, 4)),
                         ("ab,b->a", (2, 3), (3,)), ("xab,xbc->xac", (5, 2, 3), (5, 3, 4)),
                         ("abc,cd->abd", (2, 3, 4), (4, 5)), ("ab,cb->ca", (2, 3), (4, 3))]:
        a, b = rng.normal(size=sa), rng.normal(size=sb)
        np.testing.assert_allclose(_einsum2(spec, sa, sb)(a, b), np.einsum(spec, a, b), rtol=1e-12)


def test_backends_plug_in_through_the_registry():
    """A backend is a factory program -> run; cg.compile hands it the step, lowered and optimized once."""
    from catgrad.compiler import BACKENDS, register_backend

    seen = []

    def recording(program, **options):
        seen.append(program)
        return compile_numpy(program, **options)

    register_backend("recording", recording)
    try:
        W = cg.Param("W", cg.f64[2, 1], cg.init.constant(0.5))
        model = cg.Para([W], cg.trace(cg.f64[2, 1], cg.f64["B", 2])(lambda w, x: x @ w))
        step = cg.compile(model, loss="mse", optimizer="sgd(lr=0.1)", backend="recording")
        state, out = step(step.init(), np.ones((3, 2)), np.zeros((3, 1)))
    finally:
        del BACKENDS["recording"]
    # the step program, then the forward-only one, both already optimized
    assert isinstance(seen[0], Program) and seen[0].dom == step.diagram.dom and seen[0].cod == step.diagram.cod
    assert str(seen[0]) == str(optimize(lower(step.diagram)))
    assert len(seen) == 1  # the forward-only program is built on first use
    step.predict(state, np.ones((3, 2)))
    assert seen[1].dom == model.body.dom
    assert out.loss == pytest.approx(1.0)  # mse is the mean of (1 - 0)^2 over the 3 x 1 entries
    with pytest.raises(cg.CatgradError, match="unknown backend 'recording'"):
        cg.compile(model, backend="recording")


def test_broadcasts_left_to_numpy_only_where_safe():
    @cg.trace(cg.f64[()], cg.f64[()], cg.f64[3])
    def f(a, b, x):
        both = a.broadcast(3) * b.broadcast(3)  # neither side has the full shape by itself
        return both, both * x, x + a

    a, b, x = np.float64(2.0), np.float64(3.0), np.arange(3.0)
    got = compile_numpy(f)(a, b, x)
    assert got[0].shape == (3,)
    for r, g in zip(cg.evaluate(f, a, b, x), got):
        np.testing.assert_array_equal(r, g)


def test_sign_simplification_keeps_every_bit():
    """x + (-y) -> x - y, (-x) + y -> y - x, x - (-y) -> x + y, (-x)(-y) -> xy, -(-x) -> x:
    IEEE gives the same bits, so the optimized program equals evaluation exactly."""
    from catgrad.compiler import simplify_signs

    @cg.trace(cg.f64[5], cg.f64[5], cg.f64[5])
    def f(x, y, z):
        return x + (-y), (-x) + z, x - (-z), (-x) * (-y), -(-(x * z))

    p = lower(f)
    q = simplify_signs(p)
    assert q.op_counts().get("neg", 0) == 0 and q.op_counts()["sub"] == 2
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(5) for _ in range(3)]
    for got, want in zip(compile_numpy(q)(*args), cg.evaluate(f, *args)):
        np.testing.assert_array_equal(got, want)


def test_scale_simplification_doubles_exactly_and_collapses_reshapes():
    """(b c) + (b c) -> b (2c), with -1 for 2c giving neg(b); reshape(reshape(x)) -> one
    reshape, or none when it comes back to x's type. Doubling is exact, so the result
    equals evaluation bit for bit (away from subnormal numbers)."""
    from catgrad.compiler import fold_constants, simplify_scales

    @cg.trace(cg.f64[2, 3], cg.f64[2, 3])
    def f(b, x):
        a = b * -0.5
        c = x * 0.25
        r = x.reshape(3, 2).reshape(6).reshape(1, 6)
        return a + a, c + c, r, b.reshape(6).reshape(2, 3) * x

    p = fold_constants(lower(f))
    q = simplify_scales(p)
    counts = q.op_counts()
    assert counts.get("add", 0) == 0 and counts["neg"] == 1 and counts["reshape"] == 1
    rng = np.random.default_rng(0)
    for _ in range(5):
        args = [rng.standard_normal((2, 3)) * 10.0 ** rng.integers(-100, 100) for _ in range(2)]
        for got, want in zip(compile_numpy(q, passes=False)(*args), cg.evaluate(f, *args)):
            np.testing.assert_array_equal(got, want)


def test_scale_simplification_leaves_a_product_read_elsewhere():
    from catgrad.compiler import fold_constants, simplify_scales

    @cg.trace(cg.f64[3])
    def f(b):
        a = b * 3.0
        return a + a, a

    q = simplify_scales(fold_constants(lower(f)))
    assert q.op_counts() == fold_constants(lower(f)).op_counts()


def test_a_negation_moves_through_a_product_to_the_add_that_reads_it():
    """z + x (-y) -> z - x y where every reader of the product takes the negation; a
    product that is handed back keeps its form. Bit for bit as evaluation."""
    from catgrad.compiler import simplify_signs

    @cg.trace(cg.f64[5], cg.f64[5], cg.f64[5])
    def f(x, y, z):
        g = -y
        return z + x * g, z * g

    q = simplify_signs(cse(lower(f)))
    assert q.op_counts() == {"sub": 1, "mul": 2, "neg": 1}  # the neg left feeds z * g only
    assert [i.op.name for i in q.instrs if i.ins == (1,)] == ["neg"]
    rng = np.random.default_rng(1)
    args = [rng.standard_normal(5) for _ in range(3)]
    for got, want in zip(compile_numpy(q)(*args), cg.evaluate(f, *args)):
        np.testing.assert_array_equal(got, want)
