"""What each compiler pass rewrites, exactly: the program it leaves on small cases
(and the numbers it computes, against evaluation of the diagram)."""

from __future__ import annotations

import numpy as np
import pytest

import catgrad as cg
from catgrad.compiler import Instr, Program, compile_numpy, cse, dce, fold_constants, lower, optimize, \
    simplify_scales, simplify_signs
from catgrad.compiler import prepare
from catgrad.compiler.passes import schedule

O = cg.ops


def same_numbers(prog, f, *args):
    for got, want in zip(compile_numpy(prog, passes=False, reuse=False)(*args), cg.evaluate(f, *args)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


class Pair:  # a stand-in two-output op, its own type; equal to any other Pair
    name, attrs = "pair", ()

    def __eq__(self, other):
        return isinstance(other, Pair)

    def __hash__(self):
        return 1


# -- dce --------------------------------------------------------------------------------------------


def test_dce_keeps_an_instruction_for_any_live_output_and_drops_dead_constants():
    t = cg.f64[2]
    add = lower(O.add(t, t)).instrs[0].op
    p = Program([t] * 7, [0], [2], [Instr(Pair(), (0,), (1, 2)), Instr(add, (1, 3), (4,)), Instr(add, (0, 5), (6,))],
                {3: np.ones(2), 5: np.ones(2)})
    q = dce(p)
    assert [i.outs for i in q.instrs] == [(1, 2)] and q.consts == {}
    assert p.instrs[1:] and 3 in p.consts  # the input program is left alone
    p.outputs = [4]
    q = dce(p)
    assert [i.outs for i in q.instrs] == [(1, 2), (4,)] and list(q.consts) == [3]
    p.outputs = [3, 0]  # an output that is a constant keeps it
    q = dce(p)
    assert q.instrs == [] and list(q.consts) == [3]


# -- cse --------------------------------------------------------------------------------------------


def test_cse_merges_chains_of_duplicates_and_renames_the_outputs():
    @cg.trace(cg.f64[3])
    def f(x):
        return O.tanh(O.sin(x)), O.tanh(O.sin(x)), x.sum(axes=(0,)), x.sum()

    p = lower(f)
    q = cse(p)
    assert q.op_counts() == {"sin": 1, "tanh": 1, "sum": 2}  # different attributes are different ops
    assert q.outputs[0] == q.outputs[1] == p.outputs[0] and q.outputs[2:] == p.outputs[2:]
    assert len(p.instrs) == 6  # left alone
    same_numbers(q, f, np.array([0.5, -1.0, 2.0]))


# -- constant folding --------------------------------------------------------------------------------


def test_folding_evaluates_whatever_is_known_and_only_that():
    @cg.trace(cg.f64["B", 3])
    def f(x):
        k = x.const(1.0) * x.const(3.0)
        return x * 2.0, k.sum(), x + k

    p = lower(f)
    q = fold_constants(p, {"B": 2})
    assert q.op_counts() == {"mul": 1, "add": 1}
    consts = {v: np.asarray(c) for v, c in q.consts.items()}
    assert sorted((c.shape, float(c.reshape(-1)[0])) for c in consts.values()) == [((), 9.0 * 2), ((2, 3), 2.0),
                                                                                    ((2, 3), 3.0)]
    assert consts[q.outputs[1]].shape == () and float(consts[q.outputs[1]]) == 18.0
    same_numbers(q, f, np.arange(6.0).reshape(2, 3))
    # no binding: each symbolic-shape constant is a scalar broadcast at run time, nothing
    # of unknown shape is folded
    g = fold_constants(p)
    assert g.op_counts() == {"broadcast": 3, "mul": 2, "sum": 1, "add": 1}
    assert sorted(float(c) for c in g.consts.values()) == [1.0, 2.0, 3.0]
    assert all(np.asarray(c).shape == () and np.asarray(c).dtype == np.float64 for c in g.consts.values())
    for ins in g.instrs:
        if ins.op.name == "broadcast":
            assert dict(ins.op.attrs)["shape"] == ("B", 3) and g.types[ins.ins[0]] == cg.f64[()]
    same_numbers(g, f, np.arange(6.0).reshape(2, 3))
    assert fold_constants(p, None).consts.keys() == g.consts.keys()


def test_identities_fold_on_the_side_they_are_identities():
    @cg.trace(cg.f64[3])
    def f(x):
        z, one = x.const(0.0), x.const(1.0)
        return x + z, z + x, x - z, z - x, x * one, one * x, one - x, x.reshape(3)

    q = optimize(lower(f))
    p_in = q.inputs[0]
    assert q.outputs[:3] == [p_in] * 3 and q.outputs[4:6] == [p_in] * 2 and q.outputs[7] == p_in
    assert q.outputs[3] != p_in and q.outputs[6] != p_in
    assert sorted(i.op.name for i in q.instrs) in (["neg", "sub"], ["sub", "sub"])
    same_numbers(q, f, np.array([1.5, -0.0, 2.0]))


@pytest.mark.parametrize("dtype,one,zero", [(cg.i64, 1, 0), (cg.bit, 1, 0)])
def test_integer_and_bit_programs_fold_only_additive_identities(dtype, one, zero):
    """``x + 0`` and ``x - 0`` vanish for every dtype; ``x * 1`` only for floats."""
    @cg.trace(dtype[3])
    def f(x):
        return x * x.const(one), x + x.const(zero)

    q = optimize(lower(f))
    assert q.op_counts() == {"mul": 1} and q.outputs[1] == q.inputs[0]


# -- sign simplification -----------------------------------------------------------------------------


def _shape(prog):
    """The instructions with inputs named 0, 1 and other values by the instruction making them."""
    made = {o: 2 + j for j, i in enumerate(prog.instrs) for o in i.outs}
    pos = {v: k for k, v in enumerate(prog.inputs)}
    return [(i.op.name, tuple(pos[v] if v in pos else made[v] for v in i.ins)) for i in prog.instrs]


def test_each_sign_rule_gives_the_program_it_promises():
    t = cg.f64[4]
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(4), rng.standard_normal(4)
    cases = [
        (lambda a, b: a + (-b), [("sub", (0, 1))]),
        (lambda a, b: (-a) + b, [("sub", (1, 0))]),
        (lambda a, b: a - (-b), [("add", (0, 1))]),
        (lambda a, b: (-a) * (-b), [("mul", (0, 1))]),
        (lambda a, b: -(-a) * b, [("mul", (0, 1))]),
        (lambda a, b: (-a) - b, [("neg", (0,)), ("sub", (2, 1))]),  # no rule: kept
        (lambda a, b: a * (-b), [("neg", (1,)), ("mul", (0, 2))]),  # the product is an output: kept
        (lambda a, b: b + a * (-b), [("mul", (0, 1)), ("sub", (1, 2))]),
        (lambda a, b: b + (-b) * a, [("mul", (1, 0)), ("sub", (1, 2))]),
        (lambda a, b: b - (-a) * b, [("mul", (0, 1)), ("add", (1, 2))]),
        (lambda a, b: -((-a) * b), [("mul", (0, 1))]),
    ]
    for body, want in cases:
        f = cg.trace(t, t)(body)
        q = simplify_signs(lower(f))
        assert _shape(q) == want, (want, str(q))
        same_numbers(q, f, x, y)


def test_a_negated_product_keeps_its_neg_when_any_reader_cannot_take_it():
    t = cg.f64[3]
    for body, kept in [
        (lambda a, b: (b - a * (-b), (a * (-b)) - a), True),  # subtracted from: a reader that cannot
        (lambda a, b: (b + a * (-b), O.tanh(a * (-b))), True),
        (lambda a, b: (b + a * (-b), -(a * (-b))), False),
        (lambda a, b: ((a * (-b)) - (a * (-b)),), True),  # subtracted from itself
    ]:
        f = cg.trace(t, t)(body)
        q = simplify_signs(cse(lower(f)))
        negs = [i for i in q.instrs if i.op.name == "neg"]
        assert bool(negs and negs[0].ins == (1,)) == kept, str(q)
        same_numbers(q, f, np.array([0.5, -2.0, 3.0]), np.array([1.5, 0.25, -1.0]))


def test_a_negated_product_nothing_reads_is_dropped():
    t = cg.f64[3]
    p = lower(cg.trace(t, t)(lambda a, b: (a * (-b), b)))
    p.outputs = [p.inputs[1]]  # the product is dead now
    q = simplify_signs(p)
    assert q.instrs == [] and q.outputs == [p.inputs[1]]


# -- scale simplification ----------------------------------------------------------------------------


def test_doubling_a_scaled_value_folds_into_its_constant():
    t = cg.f64[3]
    for body, names, factor in [
        (lambda b: (b * 0.25) + (b * 0.25), ["mul"], 0.5),
        (lambda b: (0.25 * b) + (0.25 * b), ["mul"], 0.5),
        (lambda b: (b * -0.5) + (b * -0.5), ["neg"], None),
        (lambda b: (-0.5 * b) + (-0.5 * b), ["neg"], None),
    ]:
        f = cg.trace(t)(body)
        q = simplify_scales(cse(fold_constants(cse(lower(f)))))
        assert [i.op.name for i in q.instrs] == names, str(q)
        if factor is not None:
            (c,) = q.consts.values()
            np.testing.assert_array_equal(c, [factor] * 3)
            assert np.asarray(c).dtype == np.float64
            assert q.instrs[0].ins[q.instrs[0].ins.index(q.inputs[0])] == q.inputs[0]
        else:
            assert q.consts == {} and q.instrs[0].ins == (q.inputs[0],)
        same_numbers(q, f, np.array([0.5, -3.0, 7.0]))


def test_doubling_folds_for_scalars_one_element_and_empty_tensors():
    for t in (cg.f64[()], cg.f64[1], cg.f32[2, 1]):
        f = cg.trace(t)(lambda b: (b * 0.75) + (b * 0.75))
        q = simplify_scales(cse(fold_constants(cse(lower(f)))))
        assert [i.op.name for i in q.instrs] == ["mul"], str(q)
        (c,) = q.consts.values()
        assert np.asarray(c).shape == t.shape and np.all(np.asarray(c) == 1.5)
        x = np.full(t.shape, 3.0, t.dtype.numpy)
        same_numbers(q, f, x)
    t = cg.f64[2, 0]  # nothing to double: the program is left as it is, and still runs
    f = cg.trace(t)(lambda b: (b * 0.75) + (b * 0.75))
    p = cse(fold_constants(cse(lower(f))))
    q = simplify_scales(p)
    assert [i.op.name for i in q.instrs] == ["mul", "add"]
    same_numbers(q, f, np.zeros((2, 0)))


def test_doubling_is_left_alone_unless_the_constant_is_one_float_value():
    t = cg.f64[3]

    @cg.trace(t)
    def uneven(b):
        k = O.pad(O.slice(b.const(2.0), axis=0, start=0, stop=2), axis=0, before=1, after=0)  # [0, 2, 2]
        a = b * k
        return a + a

    @cg.trace(cg.f64[2, 3])
    def uneven_rows_alike(b):  # every row [0, 2, 2]: still not one value
        k = O.pad(O.slice(b.const(2.0), axis=1, start=0, stop=2), axis=1, before=1, after=0)
        a = b * k
        return a + a

    @cg.trace(t, t)
    def two_values(b, c):
        a = b * c
        return a + a

    @cg.trace(cg.i64[3])
    def ints(b):
        a = b * 3
        return a + a

    for f in (uneven, uneven_rows_alike, two_values, ints):
        p = cse(fold_constants(cse(lower(f))))
        assert str(simplify_scales(p)) == str(p)


def test_reshape_chains_collapse_to_one_reshape_or_none():
    @cg.trace(cg.f64[2, 3])
    def f(x):
        return x.reshape(3, 2).reshape(6).reshape(1, 6), x.reshape(6).reshape(2, 3), O.tanh(x).reshape(6)

    q = simplify_scales(lower(f))
    rs = [i for i in q.instrs if i.op.name == "reshape"]
    assert len(rs) == 2 and rs[0].ins == (0,) and q.types[rs[0].outs[0]] == cg.f64[1, 6]
    assert q.outputs[1] == q.inputs[0]
    same_numbers(q, f, np.arange(6.0).reshape(2, 3))


# -- schedule --------------------------------------------------------------------------------------


def test_schedule_is_depth_first_from_the_outputs_in_output_order():
    @cg.trace(cg.f64[3], cg.f64[3])
    def f(x, y):
        a = O.sin(x)
        b = O.cos(y)
        c = O.exp(a)
        return b * 2.0, c, O.tanh(a)

    p = lower(f)
    q = schedule(p)
    assert [i.op.name for i in q.instrs] == ["cos", "constant", "mul", "sin", "exp", "tanh"]
    assert sorted(map(id, q.instrs)) == sorted(map(id, p.instrs)) and q.outputs == p.outputs
    assert [i.op.name for i in p.instrs][:2] == ["sin", "cos"]  # left alone


def test_an_update_that_reads_an_input_waits_for_the_other_readers_of_that_input():
    """``new_w = w - g`` with ``w`` still read by a later output's computation (the
    tanh): the update is put after that reader, so ``w`` could be written in place."""
    @cg.trace(cg.f64[3], cg.f64[3])
    def f(w, x):
        g = O.sin(x)
        return w - g, O.tanh(w) * x, O.exp(x)

    q = schedule(lower(f))
    names = [i.op.name for i in q.instrs]
    assert names == ["sin", "tanh", "sub", "mul", "exp"], names  # not sin, sub, tanh
    pos = {o: j for j, i in enumerate(q.instrs) for o in i.outs}
    for j, ins in enumerate(q.instrs):
        assert all(pos.get(v, -1) < j for v in ins.ins)


def test_doubling_reads_the_product_operand_as_rewritten():
    """``add(m, m)`` with ``m = mul(r, c)``, where ``r`` is a chain of reshapes back to the
    input's own shape (so ``r`` is the input): the doubled product reads the input, not
    the removed ``r`` (found by hypothesis: the program read a value it no longer defined)."""
    @cg.trace(cg.f64[2, 2, 3])
    def f(x):
        r = x.reshape(2, 3, 2).reshape(2, 6).reshape(2, 2, 3)
        return r * 0.25 + r * 0.25

    q = simplify_scales(cse(fold_constants(cse(lower(f)))))
    defined = set(q.inputs) | set(q.consts)
    for ins in q.instrs:
        assert set(ins.ins) <= defined, ins
        defined |= set(ins.outs)
    (ins,) = q.instrs
    assert ins.op.name == "mul" and q.inputs[0] in ins.ins
    same_numbers(q, f, np.random.default_rng(0).standard_normal((2, 2, 3)))


def test_a_one_entry_constant_of_one_is_an_identity_too():
    """``sin(x) * 1.0`` for a 0-d ``x``: the constant has one entry, and the product goes."""
    prog = prepare(cg.trace(cg.f64[()])(lambda x: cg.ops.sin(x) * 1.0))
    assert [i.op.name for i in prog.instrs] == ["sin"]


def test_the_schedule_keeps_the_order_of_independent_operands():
    """Three independent operands of one instruction keep their order in the program
    (the schedule reorders only what it must)."""
    g = cg.trace(cg.f64[3])(lambda x: cg.ops.concat(cg.ops.sin(x), cg.ops.cos(x), cg.ops.tanh(x), axis=0))
    p = lower(g)
    for perm in ((0, 1, 2, 3), (2, 0, 1, 3)):
        p.instrs = [lower(g).instrs[j] for j in perm]
        assert schedule(p).instrs == p.instrs


def test_doubling_keeps_a_sum_whose_product_is_needed_elsewhere():
    """``a = b * 0.25``, doubled, and also returned (and read by sin): ``a`` is needed
    anyway, so ``a + a`` stays a sum rather than becoming a second product."""
    def f(b):
        a = b * 0.25
        return a, cg.ops.sin(a), a + a

    f = cg.trace(cg.f64[3])(f)
    q = simplify_scales(cse(fold_constants(cse(lower(f)))))
    assert sorted(i.op.name for i in q.instrs) == ["add", "mul", "sin"], str(q)
    same_numbers(q, f, np.array([0.5, -3.0, 7.0]))


@pytest.mark.parametrize("case", ["square", "sum of two"])
def test_only_a_sum_of_a_product_with_itself_is_doubling(case):
    """``a * a`` and ``a + b`` (``a = b * 0.25``, read elsewhere too) are no ``a + a``."""
    def f(b):
        a = b * 0.25
        return (a * a,) if case == "square" else (a + b, cg.ops.sin(a))

    f = cg.trace(cg.f64[3])(f)
    q = simplify_scales(cse(fold_constants(cse(lower(f)))))
    same_numbers(q, f, np.array([0.5, -3.0, 7.0]))


def test_folding_an_op_of_several_outputs_gives_each_its_constant():
    """``split`` of a constant folds into one constant per part."""
    def f(x):
        parts = cg.ops.split(x.const(2.0) * cg.ops.exp(x.const(1.0)), axis=0, sizes=(1, 2))
        return tuple(p + q for p, q in zip(parts, cg.ops.split(x, axis=0, sizes=(1, 2))))

    f = cg.trace(cg.f64[3])(f)
    q = fold_constants(lower(f))
    assert "split" in [i.op.name for i in q.instrs] and len(q.instrs) == 3  # (x's split and the two sums)
    same_numbers(q, f, np.array([0.5, -3.0, 7.0]))


def test_a_broadcast_or_reshape_to_its_own_type_is_dropped_and_the_rest_kept():
    t = cg.f64[3]
    f = cg.trace(t)(lambda x: cg.ops.sin(cg.ops.reshape(x, shape=(3,))) * 2.0)
    q = fold_constants(lower(f))
    assert [i.op.name for i in q.instrs] == ["sin", "mul"], str(q)
    same_numbers(q, f, np.array([0.5, -3.0, 7.0]))
    # (tracing writes no broadcast to the same shape: built by hand)
    p = Program([t, t, t], [0], [2], [Instr(cg.ops.broadcast.prim.op(cg.Ob(t), shape=(3,)), (0,), (1,)),
                                      Instr(cg.ops.sin.prim.op(cg.Ob(t)), (1,), (2,))])
    assert [i.op.name for i in fold_constants(p).instrs] == ["sin"]
