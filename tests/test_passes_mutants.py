"""Cases the mutation run of 2026-12-01 found untested in ``catgrad/compiler/passes.py``:
the program each pass leaves (and its numbers, against the unoptimised program) where a
guard or an operand order was not pinned before. docs/testing.md lists the mutants each
test kills."""

from __future__ import annotations

import numpy as np

import catgrad as cg
from catgrad.core.primitive import lookup
from catgrad.compiler import Instr, Program, compile_numpy, cse, fold_constants, lower, simplify_scales, simplify_signs
from catgrad.compiler.passes import schedule

O = cg.ops


def same_numbers(prog, f, *args):
    """``prog`` (run without passes) computes what evaluating the diagram ``f`` does, bit for bit."""
    got = compile_numpy(prog, passes=False, reuse=False)(*args)
    want = cg.evaluate(f, *args)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def _prepared(f):
    """What the default pipeline hands to the scale pass."""
    return cse(fold_constants(cse(lower(f))))


# -- a pass with nothing to substitute shares the instructions it keeps ----------------------------


def test_a_pass_with_nothing_to_rewrite_keeps_the_very_instructions():
    """No duplicate, no constant, no identity, no negation, no doubling, no reshape chain:
    every pass hands back the same instruction objects (no copy per instruction)."""
    t = cg.f64[3]
    f = cg.trace(t, t)(lambda x, y: (O.tanh(x) * y, O.sin(y) + x))
    p = lower(f)
    assert len(p.instrs) == 4
    for pass_ in (cse, fold_constants, simplify_signs, simplify_scales):
        q = pass_(p)
        assert len(q.instrs) == len(p.instrs), pass_.__name__
        assert all(a is b for a, b in zip(q.instrs, p.instrs)), pass_.__name__
        same_numbers(q, f, np.array([0.5, -1.0, 2.0]), np.array([3.0, 0.25, -0.75]))


# -- folding an instruction with two outputs ------------------------------------------------------


def test_folding_binds_each_output_of_a_two_output_instruction():
    t = cg.f64[3]

    @cg.trace(t)
    def f(x):
        a, b = O.all_reduce(x.const(1.5), x.const(-2.0))
        return x * a + b, b

    q = fold_constants(lower(f))
    assert q.op_counts() == {"mul": 1, "add": 1}, str(q)
    folded = sorted((np.asarray(c).shape, float(np.asarray(c).flat[0])) for c in q.consts.values())
    assert folded == [((3,), -2.0), ((3,), 1.5)]
    assert q.outputs[1] in q.consts
    same_numbers(q, f, np.array([0.5, -1.0, 2.0]))


# -- doubling: which adds, and which side the constant stays on -----------------------------------


def test_doubling_keeps_the_constant_on_its_side_of_the_product():
    t = cg.f64[3]
    for body, const_at in [(lambda b: (b * 0.25) + (b * 0.25), 1), (lambda b: (0.25 * b) + (0.25 * b), 0)]:
        f = cg.trace(t)(body)
        q = simplify_scales(_prepared(f))
        ((ins,),) = [q.instrs]
        assert ins.op.name == "mul", str(q)
        assert ins.ins[const_at] in q.consts and ins.ins[1 - const_at] == q.inputs[0], str(q)
        np.testing.assert_array_equal(q.consts[ins.ins[const_at]], [0.5] * 3)
        same_numbers(q, f, np.array([0.5, -3.0, 7.0]))


def test_only_an_add_of_a_value_to_itself_is_doubled():
    """A sub or mul of the product by itself, or an add of the product to another value,
    is no doubling: the program is left as it is."""
    t = cg.f64[3]

    def with_product(g):
        return lambda b, y: g(b * 0.25, y)

    cases = [
        with_product(lambda m, y: (m - m,)),
        with_product(lambda m, y: (m * m,)),
        with_product(lambda m, y: (m + y, m)),  # the product is read twice: once by the add, once as output
        with_product(lambda m, y: (y + m, m)),
    ]
    for body in cases:
        f = cg.trace(t, t)(body)
        p = _prepared(f)
        q = simplify_scales(p)
        assert str(q) == str(p)
        same_numbers(q, f, np.array([0.5, -3.0, 7.0]), np.array([1.0, 2.0, -0.5]))


def test_a_doubled_product_that_is_also_read_elsewhere_is_left_alone():
    """``m + m`` with ``m = b c`` also read by another instruction and an output: folding
    would keep ``m`` and save nothing, so the add stays."""
    t = cg.f64[3]
    f = cg.trace(t)(lambda b: ((b * 0.25) + (b * 0.25), O.tanh(b * 0.25), b * 0.25))
    p = _prepared(f)
    assert p.op_counts() == {"mul": 1, "add": 1, "tanh": 1}
    q = simplify_scales(p)
    assert str(q) == str(p)
    same_numbers(q, f, np.array([0.5, -3.0, 7.0]))


def test_doubling_a_product_of_a_reshaped_round_trip_reads_the_renamed_value():
    """``r = reshape(reshape(x))`` back to ``x``'s type is ``x``; ``r c + r c`` becomes
    ``x (2c)``, reading ``x`` (not ``r``, which is no longer defined). Found by the
    soundness property test on 2026-12-01."""
    @cg.trace(cg.f64[2, 3])
    def f(x):
        r = x.reshape(6).reshape(2, 3)
        m = r * 0.25
        return m + m

    q = simplify_scales(_prepared(f))
    assert [i.op.name for i in q.instrs] == ["mul"], str(q)
    (ins,) = q.instrs
    assert ins.ins[0] == q.inputs[0] and ins.ins[1] in q.consts, str(q)
    np.testing.assert_array_equal(q.consts[ins.ins[1]], np.full((2, 3), 0.5))
    same_numbers(q, f, np.arange(6.0).reshape(2, 3) - 2.5)


def test_folding_drops_a_broadcast_to_its_own_shape_and_keeps_what_follows():
    """(Tracing drops such a broadcast already; a program built by hand may hold one.)"""
    t = cg.f64[2, 3]
    f = cg.trace(t)(lambda x: O.tanh(x) * x)
    g = lower(f)
    bc = lookup("broadcast").op([t], shape=(2, 3))
    (tanh, mul) = g.instrs
    p = Program([t] * 4, [0], [3], [Instr(bc, (0,), (1,)), Instr(tanh.op, (1,), (2,)), Instr(mul.op, (2, 0), (3,))], {})
    q = fold_constants(p)
    assert q.op_counts() == {"tanh": 1, "mul": 1}, str(q)
    tanh, mul = q.instrs
    assert tanh.ins == (0,) and mul.ins == (tanh.outs[0], 0) and q.outputs == [mul.outs[0]], str(q)
    same_numbers(q, f, np.arange(6.0).reshape(2, 3) - 2.5)


# -- schedule ---------------------------------------------------------------------------------------


def test_schedule_keeps_the_order_of_three_operands_made_in_order():
    """An instruction with three operand producers: each is emitted in program order
    (what needs no reordering keeps its order)."""
    f = cg.trace(cg.f64[2])(lambda x: O.concat(O.tanh(x), O.sin(x), O.exp(x), axis=0))
    p = lower(f)
    q = schedule(p)
    assert [i.op.name for i in q.instrs] == ["tanh", "sin", "exp", "concat"], str(q)
    assert all(a is b for a, b in zip(q.instrs, p.instrs))
    same_numbers(q, f, np.array([0.5, -1.0]))


def test_updates_held_up_by_a_dead_reader_come_last_in_output_order():
    """Two outputs that read an input also read by dead code wait for a reader that never
    runs; they go at the end, in the order of the outputs (not of the program)."""
    t = cg.f64[3]
    f = cg.trace(t)(lambda x: (O.sin(x), O.neg(x)))
    g = lower(f)
    sin, neg = g.instrs
    tanh = lower(cg.trace(t)(O.tanh)).instrs[0]
    p = Program([t] * 4, [0], [3, 2], [Instr(tanh.op, (0,), (1,)), Instr(neg.op, (0,), (2,)), Instr(sin.op, (0,), (3,))], {})
    q = schedule(p)
    assert [i.op.name for i in q.instrs] == ["sin", "neg"], str(q)  # output order; the dead tanh is dropped
