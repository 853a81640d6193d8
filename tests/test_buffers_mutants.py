"""Cases the mutation run of 2026-12-01 found untested in ``catgrad/compiler/buffers.py``
(docs/testing.md lists the mutants each test kills)."""

from __future__ import annotations

import numpy as np

import catgrad as cg
from catgrad.compiler import compile_numpy, lower
from test_buffers_order import _order

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
