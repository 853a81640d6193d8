"""Cases the mutation run of 2026-12-01 found untested in ``catgrad/compiler/buffers.py``
(docs/testing.md lists the mutants each test kills)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import compile_numpy, lower
from catgrad.compiler.buffers import held_at_once, plan
from test_buffers_order import _order
from test_buffers_plan import check, predicates

O = cg.ops


def test_an_update_waits_for_the_readers_of_a_view_of_its_donated_input():
    """``w - sin(x)`` donated into ``w``, and ``tanh`` reading a reshape of ``w`` (a view,
    the same storage): the update runs after the tanh, not just after the reshape (without the view
    it would run as soon as ``sin(x)`` is computed, to free it)."""
    @cg.trace(cg.f64[2, 3], cg.f64[2, 3])
    def f(w, x):
        return w - O.sin(x), O.tanh(w.reshape(6)) * 2.0

    p = lower(f)
    perm = _order(p, {0: 0})
    assert [p.instrs[j].op.name for j in perm] == ["reshape", "constant", "sin", "tanh", "sub", "mul"]
    w, x = np.arange(6.0).reshape(2, 3), np.linspace(-1, 1, 6).reshape(2, 3)
    want = cg.evaluate(f, w, x)
    got = compile_numpy(p, donate={0: 0})(w.copy(), x)
    for g, v in zip(got, want):
        np.testing.assert_array_equal(g, v)


def test_a_value_written_over_a_donated_input_it_reads_last_costs_nothing():
    """``t = tanh(w)`` with ``w`` donated and read by nothing else may be written into
    ``w``'s array: it adds no bytes, so it runs before ``sin(x)`` (which needs a new
    buffer), though ``sin`` comes first in the program."""
    @cg.trace(cg.f64[2, 3], cg.f64[2, 3])
    def f(w, x):
        s = O.sin(x)
        return O.exp(O.tanh(w)), O.exp(s)

    p = lower(f)
    assert [i.op.name for i in p.instrs] == ["sin", "tanh", "exp", "exp"]
    perm = _order(p, {0: 0})
    assert [p.instrs[j].op.name for j in perm] == ["tanh", "sin", "exp", "exp"]
    assert [p.instrs[j].op.name for j in _order(p, {})] == ["sin", "exp", "tanh", "exp"]  # nothing donated
    w, x = np.arange(6.0).reshape(2, 3) / 6, np.linspace(-1, 1, 6).reshape(2, 3)
    want = cg.evaluate(f, w, x)
    got = compile_numpy(p, donate={0: 0})(w.copy(), x)
    for g, v in zip(got, want):
        np.testing.assert_array_equal(g, v)


def _donated_equals_undonated(prog, donate):
    """The program with ``donate`` computes what it computes without buffers or donation."""
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(tuple(prog.types[v].shape)) for v in prog.inputs]
    want = compile_numpy(prog, passes=False, reuse=False)(*[a.copy() for a in args])
    got = compile_numpy(prog, passes=False, donate=donate)(*[a.copy() for a in args])
    for g, v in zip(got, want):
        np.testing.assert_array_equal(g, v)


def test_no_output_goes_into_a_donated_input_whose_view_is_read_after_it():
    """``r = reshape(w)`` is made first, ``exp(x)`` (donated into ``w``) next, and ``tanh(r)``
    last: writing ``exp(x)`` into ``w`` would change what ``tanh`` reads through the view."""
    @cg.trace(cg.f64[2, 3], cg.f64[2, 3])
    def f(w, x):
        r = w.reshape(6)
        e = O.exp(x)
        return e, O.tanh(r)

    prog = lower(f)
    assert [i.op.name for i in prog.instrs] == ["reshape", "exp", "tanh"]
    pl = check(prog, *predicates(prog), donate={0: 0}, rings=True)
    assert pl.target[1] == ("ring", 0)
    _donated_equals_undonated(prog, {0: 0})


def test_no_output_goes_into_a_donated_input_its_own_kernel_reads_through_a_view():
    """``transpose(w) + x`` donated into ``w``: the sum reads w's entries in another order
    than it writes them, so it cannot write into ``w``."""
    @cg.trace(cg.f64[3, 3], cg.f64[3, 3])
    def f(w, x):
        return (O.transpose(w) + x,)

    prog = lower(f)
    pl = check(prog, *predicates(prog), donate={0: 0}, rings=True)
    assert pl.target[1] == ("ring", 0)
    _donated_equals_undonated(prog, {0: 0})


def test_a_value_in_a_donated_array_is_not_read_by_the_kernel_writing_that_array_unless_elementwise():
    """``exp(w)`` may be written over the donated ``w``, but ``exp(w) @ x`` (donated into
    ``w`` too) reads it as it writes: a product is no elementwise kernel, so exp(w) gets
    a buffer of its own."""
    @cg.trace(cg.f64[3, 3], cg.f64[3, 3])
    def f(w, x):
        return (O.exp(w) @ x,)

    prog = lower(f)
    pl = check(prog, *predicates(prog), donate={0: 0})
    assert pl.target == {0: ("buf", 0), 1: ("in", 0)}
    _donated_equals_undonated(prog, {0: 0})


def test_a_plan_gives_no_rings_unless_asked():
    @cg.trace(cg.f64[3])
    def f(a):
        return (O.exp(a),)

    prog = lower(f)
    assert plan(prog, *predicates(prog)).target == {}
    assert plan(prog, *predicates(prog), rings=True).target == {0: ("ring", 0)}


def test_an_output_seen_through_views_of_a_computed_value_is_never_written_again():
    """``transpose(reshape(sin(x)))`` returned: sin's value escapes through two views, so
    it is never put in a buffer that the next call writes again."""
    @cg.trace(cg.f64[2, 3])
    def f(x):
        return (O.transpose(O.sin(x).reshape(3, 2)),)

    prog = lower(f)
    assert [i.op.name for i in prog.instrs] == ["sin", "reshape", "transpose"]
    pl = check(prog, *predicates(prog), rings=True)
    assert pl.target == {0: ("ring", 0)}
    run = compile_numpy(prog, passes=False)
    x = np.arange(6.0).reshape(2, 3)
    first = run(x)[0]
    kept = first.copy()
    run(x + 1.0)
    np.testing.assert_array_equal(first, kept)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(1, 100)), max_size=8))
def test_held_at_once_is_the_most_bytes_of_spans_that_meet_one_instruction(buffers):
    spans = [(min(a, b), max(a, b)) for a, b, _ in buffers]
    sizes = [s for _, _, s in buffers]
    most = max([sum(s for (a, b), s in zip(spans, sizes) if a <= j <= b) for j in range(8)], default=0)
    assert held_at_once(spans, sizes) == most
