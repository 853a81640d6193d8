"""Calling a compiled numpy program: argument conversion and its located errors, the
cache of specialisations, what comes back (0-d arrays of the declared dtype, inputs
handed back as they are), and donation (which pairs, which arrays are copied first)."""

from __future__ import annotations

import numpy as np
import pytest

import catgrad as cg
from catgrad.compiler import compile_numpy, prepare


@cg.trace(cg.f64["B", 3], cg.f64[3])
def F(x, b):
    return cg.ops.tanh(x + b.broadcast("B", 3)), (x * x).sum(), b


def test_arguments_are_converted_to_the_declared_dtypes_or_refused_by_name():
    run = compile_numpy(F)
    got = run([[1.0, 2.0, 3.0]], (0.5, 0.5, 0.5))
    want = cg.evaluate(F, np.array([[1.0, 2.0, 3.0]]), np.full(3, 0.5))
    for g, w in zip(got, want):
        assert type(g) is np.ndarray and g.dtype == np.float64
        np.testing.assert_array_equal(g, w)
    with pytest.raises(cg.ShapeError, match=r"^the program takes 2 input\(s\) of types \(f64\[B, 3\], f64\[3\]\), got 1$"):
        run(np.zeros((1, 3)))
    with pytest.raises(cg.ShapeError, match=r"^input 1: expected f64\[3\] but got an array of dtype float32"):
        run(np.zeros((1, 3)), np.zeros(3, np.float32))
    named = compile_numpy(F, input_names=["x", "bias"])
    with pytest.raises(cg.ShapeError, match=r"^input bias: expected f64\[3\] but got an array of dtype int64"):
        named(np.zeros((1, 3)), np.zeros(3, np.int64))
    with pytest.raises(cg.ShapeError, match=r"^input x: expected an array of type f64\[B, 3\], got str$"):
        named("no", np.zeros(3))
    with pytest.raises(cg.ShapeError, match="input 1"):
        run(np.zeros((2, 3)), np.zeros(4))


def test_one_specialisation_per_tuple_of_shapes():
    run = compile_numpy(F)
    x2, x5, b = np.ones((2, 3)), np.ones((5, 3)), np.ones(3)
    run(x2, b)
    run(x2.tolist(), b)  # converted arguments use the same key
    run(x5, b)
    assert sorted(run._cache) == [((2, 3), (3,)), ((5, 3), (3,))]
    fn = run._cache[((2, 3), (3,))]
    assert fn.program.types[fn.program.inputs[0]] == cg.f64["B", 3]
    assert "def run(" in run.source((2, 3), (3,)) and "def run(" in fn.source


def test_scalars_come_back_as_arrays_and_inputs_as_themselves():
    @cg.trace(cg.f64[3], cg.f64[()])
    def f(x, s):
        return x.sum(), s, s * 2.0, x

    for reuse in (True, False):
        run = compile_numpy(f, reuse=reuse)
        x, s = np.array([1.0, 2.0, 4.0]), np.array(3.0)
        total, s_out, twice, x_out = run(x, s)
        assert type(total) is np.ndarray and total.shape == () and total.dtype == np.float64 and total == 7.0
        assert type(twice) is np.ndarray and twice.shape == () and twice == 6.0
        assert s_out is s and x_out is x


def test_donate_true_pairs_each_output_with_the_input_at_its_position_where_types_agree():
    t3, t2 = cg.f64[3], cg.f64[2]
    f = cg.trace(t3, t2, t3, t3)(lambda a, b, c, d: (cg.ops.exp(a), cg.ops.exp(c), cg.ops.exp(c)))
    assert compile_numpy(f, donate=True).donate == {0: 0, 2: 2}
    g = cg.trace(t3, t3)(lambda a, b: (cg.ops.exp(a), cg.ops.exp(b), cg.ops.sin(b)))
    assert compile_numpy(g, donate=True).donate == {0: 0, 1: 1}
    assert compile_numpy(g, donate={2: 1}).donate == {2: 1}
    assert compile_numpy(g).donate == {} and compile_numpy(g, donate=None)._donated == []
    assert compile_numpy(g, donate={0: 1, 2: 1, 1: 0})._donated == [0, 1]


@pytest.mark.parametrize("pairs", [{0: 1}, {-1: 0}, {0: -1}, {1: 0}, {0: 2}])
def test_donating_a_pair_that_does_not_exist_or_differs_is_refused(pairs):
    f = cg.trace(cg.f64[3], cg.f64[2])(lambda a, b: (cg.ops.exp(a),))
    with pytest.raises(cg.CatgradError, match=r"^donate: output/input pairs \[" + r"\(" + str(list(pairs)[0])
                       + ", " + str(list(pairs.values())[0]) + r"\)\] do not exist or differ in type$"):
        compile_numpy(prepare(f), donate=pairs)


def test_donated_arrays_are_written_in_place_unless_they_cannot_be():
    f = cg.trace(cg.f64[3], cg.f64[3])(lambda a, b: (cg.ops.exp(a) * 2.0, cg.ops.tanh(b)))
    run = compile_numpy(f, donate=True)
    a, b = np.array([0.0, 1.0, 2.0]), np.array([0.5, -0.5, 1.0])
    want = [np.exp(a) * 2.0, np.tanh(b)]
    ea, tb = run(a, b)
    assert ea is a and tb is b  # written into the caller's arrays
    np.testing.assert_array_equal(ea, want[0])
    np.testing.assert_array_equal(tb, want[1])
    # a list, a read-only array and one array passed twice are copied first
    c = np.array([0.5, -0.5, 1.0])
    c.flags.writeable = False
    for args in ([[0.0, 1.0, 2.0], c], [c, c]):
        before = [np.array(x) for x in args]
        out = run(*args)
        for x, y in zip(args, before):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(out[0], np.exp(before[0]) * 2.0)
        np.testing.assert_array_equal(out[1], np.tanh(before[1]))
    d = np.array([0.5, -0.5, 1.0])
    e = d.copy()
    out = run(d, e)  # two distinct arrays with equal contents are both written
    assert out[0] is d and out[1] is e
    f32 = compile_numpy(cg.trace(cg.f32[2])(lambda a: (cg.ops.exp(a),)), donate=True)
    src = [0.0, 1.0]
    (y,) = f32(src)
    assert y.dtype == np.float32 and src == [0.0, 1.0]


def test_a_donated_scalar_or_an_undonated_program_never_writes_its_inputs():
    f = cg.trace(cg.f64[3], cg.f64[3])(lambda a, b: (cg.ops.exp(a), cg.ops.tanh(b)))
    run = compile_numpy(f)
    a, b = np.array([0.0, 1.0, 2.0]), np.array([0.5, -0.5, 1.0])
    ea, tb = run(a, b)
    assert ea is not a and tb is not b and a.tolist() == [0.0, 1.0, 2.0]
    assert not np.shares_memory(ea, a) and not np.shares_memory(tb, b)



def test_a_call_like_the_last_one_skips_the_checks_and_any_other_takes_them():
    """``fits`` (made when a function is called twice in a row): the arguments of the last
    call's shapes and dtypes (and, donated, the very arrays the checks passed) go straight
    to the generated function; others are converted, copied or refused as on a first call."""
    run = compile_numpy(F)
    x, b = np.ones((2, 3)), np.full(3, 0.5)
    run(x, b)
    fn = run._hot
    assert not fn.fits(x, b)  # (made on the second call)
    run(x, b)
    assert fn.fits(x, b) and fn.fits(np.zeros((2, 3)), b)
    assert not fn.fits(x.astype(np.float32), b) and not fn.fits(np.ones((5, 3)), b) and not fn.fits(x.tolist(), b)
    with pytest.raises(cg.ShapeError, match=r"^input 0: expected f64\[B, 3\] but got an array of dtype float32"):
        run(x.astype(np.float32), b)  # (a float32 out= would take the float64 results silently)
    rows = [[1.5, 2.5, 3.5], [0.0, 1.0, 2.0]]
    for g, w in zip(run(rows, b), cg.evaluate(F, np.array(rows), b)):
        np.testing.assert_array_equal(g, w)
    assert run._hot is fn  # (the same shapes: the same function)
    with pytest.raises(cg.ShapeError, match="input 1"):
        run(x, np.zeros(4))
    with pytest.raises(cg.ShapeError, match=r"^the program takes 2 input\(s\)"):
        run(x)


def test_a_donated_array_passed_again_elsewhere_or_made_read_only_is_not_written():
    """After a call that wrote into ``a``, the same ``a`` in a second place of its shape (not
    donated, read after the output is written) or ``a`` made read-only takes the checks:
    it is copied first."""
    f = cg.trace(cg.f64[3], cg.f64[3])(lambda a, b: (cg.ops.exp(a), cg.ops.exp(a) + b))
    run = compile_numpy(f, donate={0: 0})
    a, c = np.array([-3.0, -2.0, -1.0]), np.array([0.5, -0.5, 1.0])  # (exp is applied to a three times: no overflow)
    (ea, _) = run(a, c)
    (ea, _) = run(a, c)
    assert ea is a and run._hot.fits(a, c) and not run._hot.fits(a, a)
    before = a.copy()
    e, s = run(a, a)
    np.testing.assert_array_equal(a, before)
    np.testing.assert_array_equal(e, np.exp(before))
    np.testing.assert_array_equal(s, np.exp(before) + before)
    run(a, c)  # (a is the donated array the checks passed again)
    before = a.copy()
    assert run._hot.fits(a, c)
    a.flags.writeable = False
    assert not run._hot.fits(a, c)
    e, s = run(a, c)
    assert e is not a
    np.testing.assert_array_equal(a, before)
    np.testing.assert_array_equal(s, np.exp(before) + c)


def test_another_donated_array_takes_the_checks_even_of_the_same_shape():
    """Only the very array the checks passed skips them: a Fortran-ordered one of the same
    shape (np.dot writes only into C-ordered arrays) is copied first."""
    @cg.trace(cg.f64[3, 3], cg.f64[3, 3])
    def g(a, b):
        return (b @ b,)

    run = compile_numpy(g, donate={0: 0})
    b = np.arange(9.0).reshape(3, 3) + 1
    a = np.zeros((3, 3))
    for _ in range(2):
        (a,) = run(a, b)
    fortran = np.asfortranarray(np.zeros((3, 3)))
    assert run._hot.fits(a, b) and not run._hot.fits(fortran, b)
    (p,) = run(fortran, b)
    assert p.flags.c_contiguous and np.array_equal(p, b @ b)
