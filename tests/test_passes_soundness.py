"""Every compiler pass, alone and in the default pipeline, on random programs full of
constants, negations, repeated subterms, doubled products and reshape chains: the
result is a well-formed program (each value defined once, before it is read; only
live constants kept) computing the same numbers as the unoptimised program, bit for
bit (every pass here is exact in IEEE arithmetic on these inputs)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import compile_numpy, cse, dce, fold_constants, lower, optimize, simplify_scales, \
    simplify_signs
from catgrad.compiler.passes import schedule

O = cg.ops
CONSTS = [0.0, 1.0, -1.0, 2.0, 0.5, -0.5, 3.0]


def build(steps, dtype, symbolic):
    """A program ``x: dtype[B, 2, 3], y: dtype[B, 2, 3] -> (last value, its sum, a reshaped value)``
    grown from ``steps``: each ``(kind, i, j, c)`` appends one value made of earlier
    values ``i``, ``j`` and the constant ``CONSTS[c]``."""
    B = "B" if symbolic else 2
    t = dtype[B, 2, 3]

    @cg.trace(t, t)
    def f(x, y):
        vals = [x, y]
        for kind, i, j, c in steps:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            k = a.const(CONSTS[c % len(CONSTS)])
            new = [
                lambda: a + k, lambda: k + a, lambda: a - k, lambda: k - a, lambda: a * k, lambda: k * a,
                lambda: a + (-b), lambda: (-a) + b, lambda: a - (-b), lambda: (-a) * (-b),
                lambda: b + a * (-k), lambda: -(-a),
                lambda: (a * k) + (a * k), lambda: (k * a) + (k * a),
                lambda: a.reshape(B, 3, 2).reshape(B, 6).reshape(B, 2, 3),
                lambda: a.reshape(B, 6).reshape(B, 3, 2).reshape(B, 2, 3) * b,
                lambda: O.tanh(a) * O.tanh(a) + b,  # a repeated subterm
                lambda: (k + k) * a - k * k,  # constant arithmetic
                lambda: b - a * k,
            ][kind % 19]()
            vals.append(new)
        return vals[-1], vals[-1].sum(), vals[-2].reshape(B, 6)

    return f


def assert_well_formed(p):
    """Single assignment, defined before use, inputs and constants never assigned, only
    constants something reads (or returns) kept, every output defined."""
    defined = set(p.inputs) | set(p.consts)
    assert not set(p.inputs) & set(p.consts)
    read = set(p.outputs)
    for ins in p.instrs:
        for v in ins.ins:
            assert v in defined, f"{ins} reads %{v} before it is defined"
            read.add(v)
        for o in ins.outs:
            assert o not in defined, f"{ins} assigns %{o} again"
            defined.add(o)
    for v in p.outputs:
        assert v in defined
    assert set(p.consts) <= read, "a constant nothing reads is kept"
    for v, c in p.consts.items():
        t = p.types[v]
        assert np.asarray(c).dtype == np.dtype(t.dtype.numpy), (v, np.asarray(c).dtype, t)


def run(prog, *args):
    return compile_numpy(prog, passes=False, reuse=False)(*args)


PASSES = {
    "dce": dce,
    "cse": cse,
    "fold": lambda p: fold_constants(p, {"B": 2}),
    "fold_generic": fold_constants,
    "signs": lambda p: simplify_signs(cse(p)),
    "scales": lambda p: simplify_scales(fold_constants(p, {"B": 2})),
    "schedule": schedule,
    "optimize": lambda p: optimize(p, {"B": 2}),
    "optimize_generic": optimize,
}

STEPS = st.lists(st.tuples(st.integers(0, 18), st.integers(0, 30), st.integers(0, 30), st.integers(0, 6)),
                 min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(STEPS, st.sampled_from([cg.f64, cg.f32]), st.booleans())
def test_every_pass_keeps_the_function_bit_for_bit(steps, dtype, symbolic):
    f = build(steps, dtype, symbolic)
    rng = np.random.default_rng(len(steps))
    nd = np.dtype(dtype.numpy)
    x, y = (rng.uniform(-2, 2, size=(2, 2, 3)).astype(nd) for _ in range(2))
    p = lower(f)
    want = run(p, x, y)
    for name, pass_ in PASSES.items():
        q = pass_(p)
        assert_well_formed(q)
        assert q.inputs == p.inputs and q.dom == p.dom and q.cod == p.cod, name
        got = run(q, x, y)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, name
            np.testing.assert_array_equal(g, w, err_msg=name)


@settings(max_examples=15, deadline=None)
@given(STEPS)
def test_the_pipeline_leaves_no_duplicate_and_no_dead_code(steps):
    """CSE and DCE find nothing more to do on the pipeline's result, and a second
    round of the pipeline never makes a program longer."""
    p = optimize(lower(build(steps, cg.f64, False)))
    assert str(cse(p)) == str(p) and str(dce(p)) == str(p)
    assert len(optimize(p)) <= len(p)


def test_what_simplifying_makes_equal_is_merged():
    """``(-x) * (-x)`` and ``reshape(reshape(x)) * x`` are both ``x * x`` once signs and
    reshapes are simplified; the pipeline computes it once (found by the test above)."""
    p = optimize(lower(build([(9, 0, 0, 0), (15, 0, 0, 0)], cg.f64, False)))
    assert p.op_counts()["mul"] == 1 and str(cse(p)) == str(p)


@pytest.mark.parametrize("dtype", [cg.f32, cg.f64])
def test_folded_constants_keep_the_wire_dtype(dtype):
    """A constant computed at compile time is stored in its wire's dtype (a float32
    program stays float32: numpy would otherwise widen ``k + k`` to float64)."""
    @cg.trace(dtype[3])
    def f(x):
        k = x.const(0.1)
        return x * (k + k), (k * k).sum()

    p = optimize(lower(f))
    assert "constant" not in p.op_counts()
    assert p.consts and all(np.asarray(c).dtype == np.dtype(dtype.numpy) for c in p.consts.values())
    x = np.arange(3, dtype=dtype.numpy)
    a, s = compile_numpy(f)(x)
    ref = cg.evaluate(f, x)
    assert a.dtype == np.dtype(dtype.numpy) and s.dtype == np.dtype(dtype.numpy)
    np.testing.assert_array_equal(a, ref[0])
    np.testing.assert_array_equal(s, ref[1])
