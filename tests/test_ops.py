"""Each primitive: numpy and torch kernels agree, its reverse derivative matches
torch.autograd on its own, Z2 ops have the right truth tables, and every declared
primitive is complete (type rule + numpy kernel)."""

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.core.primitive import PRIMITIVES
from test_rd_references import rel_err, torch_vjp

O = cg.ops
T23 = cg.f64[2, 3]

# one diagram per op, on inputs where the op is smooth at random points in [0.5, 1.5]
CASES = {
    "add": O.add(T23, T23), "sub": O.sub(T23, T23), "mul": O.mul(T23, T23), "div": O.div(T23, T23),
    "neg": O.neg(T23), "pow": O.pow(T23, p=2.5), "maximum": O.maximum(T23, T23), "minimum": O.minimum(T23, T23),
    "exp": O.exp(T23), "log": O.log(T23), "sin": O.sin(T23), "cos": O.cos(T23), "tanh": O.tanh(T23),
    "sigmoid": O.sigmoid(T23), "sqrt": O.sqrt(T23), "relu": O.relu(T23), "abs": O.abs(T23),
    "matmul": O.matmul(T23, cg.f64[3, 4]), "einsum": O.einsum(T23, cg.f64[3], spec="ij,j->i"),
    "transpose": O.transpose(T23), "reshape": O.reshape(T23, shape=(3, 2)),
    "broadcast": O.broadcast(cg.f64[3], shape=(2, 3)),
    "sum": O.sum(T23, axes=(1,)), "max": O.max(T23, axes=(0,)), "logsumexp": O.logsumexp(T23, axes=(1,)),
    "softmax": O.softmax(T23, axis=0), "cast": O.cast(T23, dtype=cg.f64),
    "slice": O.slice(T23, axis=1, start=1, stop=3), "pad": O.pad(T23, axis=0, before=1, after=2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_and_rd_against_torch(name):
    f = CASES[name]
    rng = np.random.default_rng(len(name))
    xs = [rng.uniform(0.5, 1.5, size=t.shape) for t in f.dom]
    vs = [rng.standard_normal(size=t.shape) for t in f.cod]
    ours = cg.evaluate(f, *xs)
    theirs = cg.evaluate(f, *[torch.tensor(x) for x in xs], backend="torch")
    assert rel_err(ours, [t.numpy() for t in theirs]) <= 1e-13
    assert rel_err(cg.evaluate(cg.R(f), *xs, *vs), torch_vjp(f, xs, vs)) <= 1e-12


def test_locally_constant_ops_have_zero_derivative():
    for f in (O.sign(T23), O.heaviside(T23), O.ge(T23, T23), O.gt(T23, T23), O.eq(T23, T23)):
        xs = [np.random.default_rng(0).uniform(-1, 1, size=t.shape) for t in f.dom]
        out = cg.evaluate(cg.R(f), *xs, np.ones((2, 3)))
        assert all(np.all(o == 0) for o in out)


def test_max_splits_the_cotangent_among_ties():
    f = O.max(cg.f64[3], axes=(0,))
    (g,) = cg.evaluate(cg.R(f), np.array([1.0, 2.0, 2.0]), np.float64(1.0))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])


B2 = cg.bit[4]
A = np.array([0, 0, 1, 1], dtype=bool)
Bv = np.array([0, 1, 0, 1], dtype=bool)


@pytest.mark.parametrize(
    "f, table",
    [
        (O.add(B2, B2), [0, 1, 1, 0]), (O.xor(B2, B2), [0, 1, 1, 0]), (O.mul(B2, B2), [0, 0, 0, 1]),
        (O.and_(B2, B2), [0, 0, 0, 1]), (O.or_(B2, B2), [0, 1, 1, 1]), (O.sub(B2, B2), [0, 1, 1, 0]),
    ],
)
def test_z2_truth_tables(f, table):
    (out,) = cg.evaluate(f, A, Bv)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, np.array(table, dtype=bool))
    (tout,) = cg.evaluate(f, torch.tensor(A), torch.tensor(Bv), backend="torch")
    np.testing.assert_array_equal(tout.numpy(), out)


def test_z2_not_and_parity():
    np.testing.assert_array_equal(cg.evaluate(O.not_(B2), A)[0], ~A)
    assert cg.evaluate(O.sum(B2), np.array([1, 1, 1, 0], dtype=bool))[0] == True  # noqa: E712
    m = cg.evaluate(O.matmul(cg.bit[2, 2], cg.bit[2]), np.ones((2, 2), bool), np.ones(2, bool))[0]
    np.testing.assert_array_equal(m, [False, False])  # 1 + 1 = 0 mod 2


def test_or_formal_derivative():
    """R[or]((x, y), d) = ((1 + y) d, (1 + x) d)."""
    dx, dy = cg.evaluate(cg.R(O.or_(B2, B2)), A, Bv, np.ones(4, bool))
    np.testing.assert_array_equal(dx, ~Bv)
    np.testing.assert_array_equal(dy, ~A)


def test_slice_and_pad_are_adjoint():
    """<slice x, y> = <x, pad y>: pad is the transpose of slice, so each is the other's R."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 2))
    (sx,) = cg.evaluate(O.slice(cg.f64[4, 5], axis=-1, start=1, stop=3), x)
    (py,) = cg.evaluate(O.pad(cg.f64[4, 2], axis=1, before=1, after=2), y)
    assert np.isclose(np.sum(sx * y), np.sum(x * py))
    assert cg.R(cg.R(O.slice(cg.f64[4, 5], axis=1, start=1, stop=3))) is not None
    bits = np.array([[True, False, True]])
    (out,) = cg.evaluate(O.pad(cg.bit[1, 3], axis=1, before=0, after=1), bits)
    assert out.dtype == bool and out.tolist() == [[True, False, True, False]]
    with pytest.raises(cg.CatgradTypeError, match="symbolic size"):
        O.slice(cg.f64["B", 3], axis=0, start=0, stop=1)
    with pytest.raises(cg.CatgradTypeError, match="start <= stop"):
        O.slice(cg.f64[3], axis=0, start=2, stop=1)


def test_every_primitive_is_complete():
    from catgrad.core.primitive import KINDS, RULES

    for name, prim in PRIMITIVES.items():
        assert callable(prim.type_rule) and prim.kind in KINDS, name
        for backend in ("numpy", "torch"):
            rule = RULES[backend].lookup(prim)
            assert rule is not None, f"{name} has no {backend} rule"
            fns = rule.fn.values() if isinstance(rule.fn, dict) else [rule.fn]
            assert fns and all(map(callable, fns)), (name, backend)
        assert prim.doc, f"{name} has no docstring"
        assert prim.samples(), f"{name} declares no samples for the conformance suite"


def test_symbolic_batch_broadcast_and_constants():
    f = cg.trace(cg.f64["B", 3], cg.f64[3])(lambda x, b: x + b.broadcast("B", 3) + 1.0)
    out = cg.evaluate(f, np.zeros((5, 3)), np.arange(3.0))[0]
    np.testing.assert_array_equal(out, np.tile(np.arange(3.0) + 1, (5, 1)))
