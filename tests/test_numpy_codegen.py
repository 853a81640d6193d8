"""What the numpy backend's generated code says (``NumpyProgram.source``): public numpy
functions called by name with their literal keywords, constants folded to one number
where numpy's broadcasting gives the same result, ``out=`` only where a buffer, a
ring or a donated input was planned, and the notes at the top of the function."""

from __future__ import annotations

import functools
import re

import numpy as np

import catgrad as cg
from catgrad.compiler import compile_numpy
from catgrad.compiler.numpy_backend import _FREE, _inline_call, _literal, _scalar_consts, _writes_out
from catgrad.compiler import lower, optimize


def test_public_numpy_functions_are_called_by_name():
    assert _inline_call(np.tanh) == ("np.tanh", "")
    assert _inline_call(np.add.reduce) is None  # a bound method, not a numpy attribute
    assert _inline_call(functools.partial(np.sum, axis=(1,), keepdims=True)) == ("np.sum", ", axis=(1,), keepdims=True")
    assert _inline_call(functools.partial(np.sum, axis=None, dtype="f8")) == ("np.sum", ", axis=None, dtype='f8'")
    assert _inline_call(functools.partial(np.sum, dtype=np.float32)) is None  # not a literal
    assert _inline_call(functools.partial(np.sum, np.ones(2))) is None  # positional arguments
    assert _inline_call(functools.partial(lambda x: x, k=1)) is None
    assert _inline_call(lambda x: x) is None
    tanh = lambda x: x  # noqa: E731 - a function that only shares a numpy name
    tanh.__name__ = "tanh"
    assert _inline_call(tanh) is None
    assert [_literal(v) for v in (None, 1, True, "a", (1, (2, None)), 1.5, (1, 1.5), np.int64(1))] == \
        [True, True, True, True, True, False, False, False]


def test_kernels_that_write_into_out_are_ufuncs_or_marked():
    def marked(x, out=None):
        return x

    marked.writes_out = True
    truthy = lambda x: x  # noqa: E731
    truthy.writes_out = 1  # only True counts
    assert _writes_out(np.exp) and _writes_out(marked) and _writes_out(functools.partial(marked))
    assert not _writes_out(np.sum) and not _writes_out(truthy) and not _writes_out(functools.partial(np.sum, axis=0))


def test_the_code_of_a_plain_program_calls_numpy_directly():
    f = cg.trace(cg.f64[3], cg.f64[3])(lambda a, b: (cg.ops.exp(a) * b,))
    src = compile_numpy(f, reuse=False).source((3,), (3,))
    assert src.splitlines() == [
        "def run(a0, a1):",
        "    exp_2 = np.exp(a0)",
        "    mul_3 = np.multiply(exp_2, a1)",
        "    return (mul_3,)",
    ]
    src = compile_numpy(f, reuse=False, input_names=["x", "lambda"]).source((3,), (3,))
    assert src.splitlines()[0] == "def run(x, lambda_):" and "np.multiply(exp_2, lambda_)" in src


def test_planned_code_says_where_each_value_goes():
    @cg.trace(cg.f64[3], cg.f64[3])
    def f(a, b):
        return cg.ops.tanh(cg.ops.exp(a) + b) * b, cg.ops.sin(b)

    src = compile_numpy(f).source((3,), (3,))
    lines = src.splitlines()
    assert lines[1] == f"    # 2 output ring(s): an array handed back earlier is reused once nothing else refers to it " \
                       f"(reference count {_FREE})"
    # each elementwise kernel writes over the operand it reads last: one buffer
    assert lines[2] == "    # 1 buffer(s) in one block of 24 bytes kept across calls: _buf0: f64[3]"
    assert "np.exp(a0, out=_buf0)" in src and "np.add(exp_2, a1, out=_buf0)" in src and "np.tanh(add_3, out=_buf0)" in src
    assert src.count(f"_o = _R0[0] if _rc(_R0[0]) == {_FREE} else _R0[1] if _rc(_R0[1]) == {_FREE} else _F0()") == 1
    assert "np.multiply(tanh_4, a1, out=_o)" in src and "np.sin(a1, out=_o)" in src
    donated = compile_numpy(f, donate={1: 1}).source((3,), (3,))
    # the schedule puts the sin after the product, its last reader of b: it may write b
    assert donated.index("np.multiply(tanh_4, a1") < donated.index("np.sin(a1, out=a1)")
    g = cg.trace(cg.f64[3], cg.f64[3])(lambda a, b: (cg.ops.exp(a), cg.ops.sin(b)))
    donated = compile_numpy(g, donate={1: 1}).source((3,), (3,))
    assert "np.sin(a1, out=a1)" in donated and "# 1 output ring(s)" in donated and "_buf" not in donated
    assert "out=" not in compile_numpy(g, reuse=False, donate={1: 1}).source((3,), (3,))


def test_rings_hand_back_an_array_only_the_ring_holds():
    f = cg.trace(cg.f64[3])(lambda a: (cg.ops.exp(a),))
    run = compile_numpy(f)
    x = np.array([0.0, 1.0, 2.0])
    first = run(x)[0]
    addr = first.__array_interface__["data"][0]
    del first
    second = run(x)[0]  # the ring's other slot (never used yet) or the first array
    third = run(x + 1.0)[0]  # `second` is held: not this one
    assert not np.shares_memory(second, third)
    np.testing.assert_array_equal(second, np.exp(x))
    np.testing.assert_array_equal(third, np.exp(x + 1.0))
    del second, third
    seen = {run(x)[0].__array_interface__["data"][0] for _ in range(4)}
    assert addr in seen or len(seen) <= 2  # dropped arrays are reused, not reallocated each call


def test_equal_entry_constants_become_one_number_only_where_broadcasting_is_the_same():
    @cg.trace(cg.f64[2, 3], cg.f64[3])
    def f(x, v):
        c = x.const(2.0)
        return x * c, c, v.broadcast(2, 3) * x.const(3.0), x + x.const(0.5).sum(axes=(1,)).reshape(2, 1).broadcast(2, 3)

    p = optimize(lower(f))
    scal = _scalar_consts(p)
    by_value = {float(np.asarray(p.consts[v]).reshape(-1)[0]): v for v in p.consts}
    # 2.0 is an output too, 3.0 meets only a broadcast: both stay whole arrays
    assert by_value[2.0] not in scal and by_value[3.0] not in scal
    src = compile_numpy(f).source((2, 3), (3,))
    assert re.search(r"# const_\d+ = array of shape \(2, 3\) \(float64\)", src)
    got = compile_numpy(f)(np.ones((2, 3)), np.arange(3.0))
    for g, w in zip(got, cg.evaluate(f, np.ones((2, 3)), np.arange(3.0))):
        np.testing.assert_array_equal(g, w)
    assert got[1].shape == (2, 3)

    @cg.trace(cg.f64[2, 3])
    def g(x):
        return x * 0.25 + x,

    p = optimize(lower(g))
    (v,) = p.consts
    assert set(_scalar_consts(p)) == {v} and _scalar_consts(p)[v].shape == () and _scalar_consts(p)[v].dtype == np.float64
    src = compile_numpy(g).source((2, 3))
    assert "# const_1 = 0.25 (float64)" in src


def test_constants_with_different_entries_or_nan_are_kept_whole():
    from catgrad.compiler import Instr, Program

    t = cg.f64[3]
    mul = lower(cg.ops.mul(t, t)).instrs[0].op
    for c in (np.array([1.0, 2.0, 2.0]), np.array([np.nan] * 3), np.zeros(0)):
        tt = cg.f64[len(c)]
        m = lower(cg.ops.mul(tt, tt)).instrs[0].op if len(c) != 3 else mul
        p = Program([tt, tt, tt], [0], [2], [Instr(m, (0, 1), (2,))], {1: c})
        assert _scalar_consts(p) == {}
    one = Program([t, t, t], [0], [2], [Instr(mul, (0, 1), (2,))], {1: np.full(3, 4.0)})
    assert set(_scalar_consts(one)) == {1}
    unread = Program([t, t, t], [0], [0], [], {1: np.full(3, 4.0)})
    assert _scalar_consts(unread) == {}
    two_consts = Program([t, t, t], [0], [2], [Instr(mul, (1, 1), (2,))], {1: np.full(3, 4.0)})
    assert _scalar_consts(two_consts) == {}  # its reader has no full-shape operand of its own
