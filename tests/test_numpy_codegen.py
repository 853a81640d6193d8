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
from catgrad.compiler.numpy_backend import _inline_call, _literal, _scalar_consts, _writes_out
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
    assert lines[1] == "    # 2 output ring(s) (_F0()...): an array handed back earlier is reused once nothing else " \
                       "refers to it"
    # each elementwise kernel writes over the operand it reads last: one buffer
    assert lines[2] == "    # 1 buffer(s) in one block of 24 bytes kept across calls: _buf0: f64[3]"
    assert "np.exp(a0, out=_buf0)" in src and "np.add(exp_2, a1, out=_buf0)" in src and "np.tanh(add_3, out=_buf0)" in src
    assert src.count("_o = _F0()") == 1 and src.count("_o = _F1()") == 1
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


def _dense_step(donate):
    def dense(name, i, o):
        @cg.trace(cg.f64[i, o], cg.f64[o], cg.f64["B", i])
        def body(W, b, x):
            return cg.ops.sigmoid(x @ W + b.reshape(1, o).broadcast("B", o))

        return cg.Para([cg.Param(f"{name}.W", cg.f64[i, o]), cg.Param(f"{name}.b", cg.f64[o])], body)

    return cg.compile(dense("l0", 4, 3) >> dense("l1", 3, 2), loss=cg.loss.mse(reduction="half_sum"),
                      optimizer="sgd(lr=0.1)", donate=donate)


def test_views_of_buffered_values_are_made_once_and_views_of_kept_inputs_kept():
    """``.T`` and ``.reshape`` make a new Python object per call. Of a value in a planned
    buffer the view is made once, when the code is generated; of an input that a donating
    step gets again on the next call (its state, its batch) it is kept with the array."""
    shapes = ((3, 2), (2,), (4, 3), (3,), (), (), (), (), (6, 4), (6, 2))
    for donate in (False, True):
        step = _dense_step(donate)
        src = step.program.source(*shapes)
        env = step.program.specialise(shapes).__globals__
        hoisted = [k for k, v in env.items() if re.fullmatch(r"_h\d+", k) and isinstance(v, np.ndarray)]
        assert hoisted and all(any(np.shares_memory(env[h], env[b]) for b in env if b.startswith("_buf"))
                               for h in hoisted)
        assert ", p_l0_b)" in src and ", p_l1_b)" in src and "reshape" not in src  # b's row: numpy broadcasts it
        per_call = re.findall(r"\b(\w+)\.T\b", src)
        kept = re.findall(r"(_h\d+) = \1_c\[1\] if \1_c\[0\] is (\w+) else _keep_view", src)
        if donate:
            assert per_call == [] and sorted(a for _, a in kept) == ["p_l1_W", "x"]
        else:
            assert sorted(per_call) == ["p_l1_W", "x"] and kept == []


def test_a_reshape_that_moves_axes_of_length_one_is_still_made():
    @cg.trace(cg.f64[3], cg.f64[3, 4])
    def f(b, x):
        return (x + b.reshape(3, 1).broadcast(3, 4),)

    run = compile_numpy(f)
    assert "a0.reshape((3, 1))" in run.source((3,), (3, 4))
    b, x = np.arange(3.0), np.ones((3, 4))
    np.testing.assert_array_equal(run(b, x)[0], x + b[:, None])


def test_kept_views_follow_the_array_that_comes_in():
    @cg.trace(cg.f64[3, 2], cg.f64[5, 3], cg.f64[5, 2])
    def f(w, x, y):
        return (w - x.T @ y,)

    run = compile_numpy(f, donate={0: 0})
    assert "_keep_view(" in run.source((3, 2), (5, 3), (5, 2))
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2))
    y = rng.normal(size=(5, 2))
    for x in (rng.normal(size=(5, 3)), rng.normal(size=(5, 3))):
        want = w - x.T @ y
        (w,) = run(w, x, y)
        np.testing.assert_allclose(w, want, rtol=1e-15, atol=0)
    x *= 2.0  # the same array, changed in place: the kept view sees it
    want = w - x.T @ y
    (w,) = run(w, x, y)
    np.testing.assert_allclose(w, want, rtol=1e-15, atol=0)


def test_scalars_are_written_into_buffers_and_rings_and_come_back_as_arrays():
    @cg.trace(cg.f64[3])
    def f(x):
        return ((x * x).sum() * 0.5,)

    run = compile_numpy(f)
    src = run.source((3,))
    # np.dot hands back a new numpy scalar: the sum is named after its buffer; a ufunc hands back out=
    assert "_asarray" not in src and re.search(r"out=_buf\d+\); sum_\d+ = _buf\d+", src)
    assert re.search(r"mul_\d+ = np\.multiply\(sum_\d+, \w+, out=_o\)", src), src
    first = run(np.array([1.0, 2.0, 3.0]))[0]
    second = run(np.array([2.0, 2.0, 2.0]))[0]  # the first one is held: a ring's other array
    assert type(first) is np.ndarray and first.shape == () and first == 7.0 and second == 6.0


def test_an_update_of_one_entry_in_place_goes_through_a_scratch_array():
    """numpy copies an operand that overlaps ``out=`` when the arrays have one entry (about
    1 kB allocated per call): such an update is written next to it and copied over."""
    f = cg.trace(cg.f32[()], cg.f32[2])(lambda t, v: (t + 1.0, v * 2.0))
    run = compile_numpy(f, donate=True)
    src = run.source((), (2,))
    assert re.search(r"np\.add\(a0, \w+, out=_one\d+\); np\.copyto\(a0, _one\d+\); add_\d+ = a0", src), src
    assert re.search(r"np\.multiply\(a1, \w+, out=a1\)", src)  # (two entries: numpy writes over it)
    t, v = np.zeros((), np.float32), np.ones(2, np.float32)
    for k in range(3):
        t2, v2 = run(t, v)
        assert t2 is t and v2 is v and t == k + 1 and v.tolist() == [2.0 ** (k + 1)] * 2
    # a chain: the second update reads what the first wrote into t's array
    g = cg.trace(cg.f64[1])(lambda t: ((t + 1.0) * 3.0,))
    run = compile_numpy(g, donate=True)
    src = run.source((1,))
    assert len(re.findall(r"np\.copyto\(a0, _one\d+\)", src)) == 2, src
    t = np.zeros(1)
    for k in range(2):
        assert run(t)[0] is t
    assert t.tolist() == [12.0]


def test_a_view_of_a_view_of_a_buffered_value_is_made_once_too():
    @cg.trace(cg.f64[2, 3], cg.f64[3, 4])
    def f(x, y):
        return (cg.ops.exp(x).reshape(3, 2).transpose() @ cg.ops.exp(y),)

    run = compile_numpy(f)
    src = run.source((2, 3), (3, 4))
    assert ".T" not in src and "reshape" not in src and "transpose" not in src, src
    x, y = np.arange(6.0).reshape(2, 3) / 6, np.arange(12.0).reshape(3, 4) / 12
    for _ in range(2):
        np.testing.assert_allclose(run(x, y)[0], np.exp(x).reshape(3, 2).T @ np.exp(y), rtol=1e-15)


def test_a_reshape_read_elsewhere_too_or_handed_back_is_still_made():
    """The reshape before a broadcast is skipped only when broadcasts are all that read it."""
    @cg.trace(cg.f64[3], cg.f64[2, 3])
    def f(b, x):
        row = b.reshape(1, 3)
        return row, x + row.broadcast(2, 3), row * 2.0

    run = compile_numpy(f)
    b, x = np.array([1.0, 2.0, 3.0]), np.ones((2, 3))
    for _ in range(2):
        row, s, twice = run(b, x)
        assert row.shape == (1, 3) and twice.shape == (1, 3)
        np.testing.assert_array_equal(s, x + b)
        np.testing.assert_array_equal(twice, 2.0 * b[None])

    @cg.trace(cg.f64[3], cg.f64[2, 3])
    def g(b, x):
        row = b.reshape(1, 3)
        return x + row.broadcast(2, 3), row * 2.0

    @cg.trace(cg.f64[3], cg.f64[2, 3])
    def h(b, x):
        row = b.reshape(1, 3)
        return row, x + row.broadcast(2, 3)

    row, s = compile_numpy(h)(b, x)
    assert row.shape == (1, 3) and np.array_equal(s, x + b)
    run = compile_numpy(g)
    assert "a0.reshape((1, 3))" in run.source((3,), (2, 3))
    s, twice = run(b, x)
    assert twice.shape == (1, 3) and np.array_equal(twice, 2.0 * b[None]) and np.array_equal(s, x + b)


def test_each_kept_view_is_taken_once_per_call_and_views_of_it_kept_too():
    """A donating program reads the transpose of ``x``'s reshape twice: one kept view of
    each (one ``_keep_view`` line), none made per call."""
    @cg.trace(cg.f64[3, 2], cg.f64[3, 2], cg.f64[15], cg.f64[5, 2])
    def f(w, v, x, y):
        x2 = x.reshape(5, 3)
        return w - x2.T @ y, v - x2.T @ cg.ops.exp(y)

    run = compile_numpy(f, donate={0: 0, 1: 1})
    src = run.source((3, 2), (3, 2), (15,), (5, 2))
    assert src.count("_keep_view(") == 2 and ".T" not in src and "reshape" not in src, src
    rng = np.random.default_rng(1)
    w, v, y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(5, 2))
    for x in (rng.normal(size=15), rng.normal(size=15)):
        want = (w - x.reshape(5, 3).T @ y, v - x.reshape(5, 3).T @ np.exp(y))
        w, v = run(w, v, x, y)
        np.testing.assert_allclose(w, want[0], rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(v, want[1], rtol=1e-15, atol=1e-15)


def test_an_input_whose_new_value_comes_in_a_new_array_is_not_kept():
    """A donated input whose output cannot be written into its array comes back in another
    array every step: a view kept of it would hold the old one (and keep the ring from
    reusing it), so its views are made per call."""
    @cg.trace(cg.f64[3, 3], cg.f64[3, 3])
    def f(w, x):
        w2 = w * 2.0
        return w2, w2 @ w.T, x @ x.T  # (w.T is read after w2 is made: w2 cannot go into w's array)

    run = compile_numpy(f, donate={0: 0})
    src = run.source((3, 3), (3, 3))
    assert "a0.T" in src and "out=a0" not in src and re.findall(r"_keep_view\(\w+, (\w+),", src) == ["a1"], src
    w, x = np.arange(9.0).reshape(3, 3), np.eye(3)
    for _ in range(3):
        w2, p, q = run(w, x)
        np.testing.assert_array_equal(w2, 2 * w)
        np.testing.assert_array_equal(p, 2 * w @ w.T)
        w = w2


def test_two_products_with_the_same_transposed_operand_share_one_kept_view():
    @cg.trace(cg.f64[3, 2], cg.f64[3, 2], cg.f64[5, 3], cg.f64[5, 2])
    def f(w, v, x, y):
        return (w - cg.ops.einsum(x, y, spec="ba,bc->ac"),
                v - cg.ops.einsum(x, cg.ops.exp(y), spec="ba,bc->ac"))

    run = compile_numpy(f, donate={0: 0, 1: 1})
    src = run.source((3, 2), (3, 2), (5, 3), (5, 2))
    assert src.count("_keep_view(") == 1 and src.count("np.dot(_h0, ") == 2, src
    rng = np.random.default_rng(2)
    w, v, x, y = (rng.normal(size=s) for s in ((3, 2), (3, 2), (5, 3), (5, 2)))
    want = (w - x.T @ y, v - x.T @ np.exp(y))
    got = run(w, v, x, y)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-15, atol=1e-15)
