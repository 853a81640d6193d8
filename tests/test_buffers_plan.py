"""The buffer plan (:func:`catgrad.compiler.buffers.plan`) against its contract,
restated here independently of the planner:

- safety: a buffer is written again only after every read of its previous value and
  of every view derived from it; nothing that escapes (an output, or a view of one)
  lives in a buffer; a donated input is written only when nothing reads it (or a view
  of it) later, or when its last reader is the elementwise kernel writing it;
- completeness: every value the contract allows to be planned is planned;
- economy: buffers of one type are shared greedily in program order, which for
  liveness intervals is optimal, so their number is the largest number of values of
  that type alive at once.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import Instr, Program, lower, prepare
from catgrad.compiler.buffers import plan
from catgrad.compiler.numpy_backend import _writes_out
from catgrad.core.primitive import bind
from strategies import smooth_diagrams


def kernels_of(prog):
    return [bind(ins.op, "numpy", {}) for ins in prog.instrs]


def predicates(prog):
    ks = kernels_of(prog)
    fresh = lambda j: _writes_out(ks[j])  # noqa: E731
    inplace = lambda j: prog.instrs[j].op.prim.elementwise and fresh(j)  # noqa: E731
    return fresh, inplace


def contract(prog, fresh, inplace, donate, rings):
    """For each instruction: what the contract allows, the value's alias set and its
    liveness end; computed by brute force."""
    n = len(prog.instrs)
    producer = {o: j for j, ins in enumerate(prog.instrs) for o in ins.outs}
    last = {}
    for j, ins in enumerate(prog.instrs):
        for v in ins.ins:
            last[v] = j

    def aliases(v):  # v and every value a non-fresh instruction derives from it, transitively
        out, todo = {v}, [v]
        while todo:
            u = todo.pop()
            for j, ins in enumerate(prog.instrs):
                if u in ins.ins and not fresh(j):
                    for o in ins.outs:
                        if o not in out:
                            out.add(o)
                            todo.append(o)
        return out

    def end(v):
        return max([last.get(a, -1) for a in aliases(v)])

    def escapes(v):
        return bool(aliases(v) & set(prog.outputs))

    del producer, n
    return aliases, end, escapes, last


def check(prog, fresh, inplace, donate=None, rings=False):
    pl = plan(prog, fresh, inplace, donate, rings=rings)
    aliases, end, escapes, last = contract(prog, fresh, inplace, donate, rings)
    donors = {prog.outputs[p]: prog.inputs[i] for p, i in (donate or {}).items()}
    seen_inputs, ring_seen = set(), []
    live = {}  # buffer k -> list of (write index, end)
    for j, ins in enumerate(prog.instrs):
        where = pl.target.get(j)
        eligible = fresh(j) and len(ins.outs) == 1 and prog.types[ins.outs[0]].rank > 0 \
            and all(prog.types[v].dtype == prog.types[ins.outs[0]].dtype for v in ins.ins)
        if not eligible:
            assert where is None, (j, ins, where)
            continue
        o = ins.outs[0]
        t = prog.types[o]
        if escapes(o):
            u = donors.get(o)
            can_donate = (u is not None and u not in seen_inputs and prog.types[u] == t and not escapes(u)
                          and max([last.get(a, -1) for a in aliases(u) - {u}] + [-1]) < j
                          and (last.get(u, -1) < j or (last[u] == j and inplace(j))))
            if can_donate:
                assert where == ("in", prog.inputs.index(u)), (j, ins, where)
                seen_inputs.add(u)
            elif rings:
                assert where == ("ring", len(ring_seen)), (j, ins, where)
                ring_seen.append(t)
            else:
                assert where is None, (j, ins, where)
            continue
        assert where is not None and where[0] == "buf", (j, ins, where)
        k = where[1]
        assert pl.buffers[k] == t
        live.setdefault(k, []).append((j, max(end(o), j)))
    assert pl.rings == ring_seen
    for k, spans in live.items():  # written again only after the previous value's last read
        for (j1, e1), (j2, _) in zip(spans, spans[1:]):
            assert j2 > e1, (k, spans)
    # economy: as many buffers of a type as values of that type alive at once, at most
    for t in set(pl.buffers):
        spans = [s for k, ss in live.items() if pl.buffers[k] == t for s in ss]
        most = max(sum(1 for a, e in spans if a <= x <= e) for x in range(len(prog.instrs)))
        assert pl.buffers.count(t) == most, (t, pl.buffers, spans)
    assert len(live) == len(pl.buffers)  # no buffer left unused
    return pl


@settings(max_examples=30, deadline=None)
@given(d=smooth_diagrams(min_ops=3, max_ops=12), rings=st.booleans(), data=st.data())
def test_plans_of_random_programs_keep_the_contract(d, rings, data):
    prog = prepare(cg.R(d))
    fresh, inplace = predicates(prog)
    n_out, n_in = len(prog.outputs), len(prog.inputs)
    donate = data.draw(st.dictionaries(st.integers(0, n_out - 1), st.integers(0, n_in - 1), max_size=3))
    donate = {o: i for o, i in donate.items() if prog.types[prog.outputs[o]] == prog.types[prog.inputs[i]]}
    check(prog, fresh, inplace, donate, rings)


def test_a_chain_of_kernels_takes_turns_in_two_buffers():
    @cg.trace(cg.f64[4])
    def f(x):
        for _ in range(5):
            x = cg.ops.tanh(cg.ops.exp(x))
        return x

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace)
    assert pl.buffers == [cg.f64[4]] * 2
    assert [pl.target.get(j) for j in range(10)] == [("buf", j % 2) for j in range(9)] + [None]
    pl = check(prog, fresh, inplace, rings=True)
    assert pl.target[9] == ("ring", 0) and pl.rings == [cg.f64[4]]


def test_a_value_read_by_the_kernel_writing_the_next_never_shares_its_buffer():
    """``y = exp(x); z = tanh(y); w = z + y``: y is read at the add, so z may not use
    y's buffer; the value after the add may reuse the first one."""
    @cg.trace(cg.f64[3])
    def f(x):
        y = cg.ops.exp(x)
        z = cg.ops.tanh(y)
        w = z + y
        return cg.ops.sin(cg.ops.exp(w))

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace)
    assert [pl.target.get(j) for j in range(5)] == [("buf", 0), ("buf", 1), ("buf", 2), ("buf", 0), None]


def test_views_extend_the_life_of_what_they_see():
    """A reshape hands back a view: the buffer under it stays taken until the view's
    last read, and a view of an output escapes with it."""
    @cg.trace(cg.f64[6])
    def f(x):
        a = cg.ops.exp(x)
        v = a.reshape(2, 3)
        b = cg.ops.tanh(x)  # may not reuse a's buffer: v is read after it
        c = cg.ops.sin(v) + b.reshape(2, 3)
        e = cg.ops.exp(x)
        return c, e.reshape(3, 2)

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace)
    names = [i.op.name for i in prog.instrs]
    ja, jb, je = names.index("exp"), names.index("tanh"), len(names) - 2
    assert pl.target[ja] != pl.target[jb]
    assert je not in pl.target  # its view is an output
    assert check(prog, fresh, inplace, rings=True).target[je] == ("ring", 1)


def test_no_plan_for_scalars_casts_or_several_outputs():
    t = cg.f64[3]

    @cg.trace(t, cg.f64[()])
    def f(x, s):
        return cg.ops.exp(cg.ops.exp(s)).broadcast(3) * cg.ops.exp(x), cg.ops.cast(cg.ops.exp(x), dtype=cg.f32)

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace)
    for j, ins in enumerate(prog.instrs):
        if prog.types[ins.outs[0]].rank == 0 or ins.op.name == "cast":
            assert j not in pl.target

    class Two:
        name, attrs = "pair", ()

    p2 = Program([t, t, t, t], [0], [3], [Instr(Two(), (0,), (1, 2)), Instr(lower(cg.ops.add(t, t)).instrs[0].op,
                                                                              (1, 2), (3,))])
    pl = plan(p2, lambda j: True, lambda j: False)
    assert 0 not in pl.target


@pytest.mark.parametrize("late_reader", [False, True])
def test_donation_waits_for_the_last_reader_of_the_input(late_reader):
    """``out = exp(a)`` donated into ``a``: allowed when nothing reads ``a`` afterwards;
    when ``a`` is read later, the output goes to a ring instead."""
    @cg.trace(cg.f64[3], cg.f64[3])
    def f(a, b):
        e = cg.ops.exp(a)
        return e, (cg.ops.tanh(a) if late_reader else cg.ops.tanh(b))

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace, donate={0: 0, 1: 1}, rings=True)
    assert pl.target[0] == (("ring", 0) if late_reader else ("in", 0))
    assert pl.target[1] == ("in", 1)


def test_an_elementwise_kernel_may_overwrite_the_input_it_reads_last_and_nothing_else_may():
    @cg.trace(cg.f64[2, 2], cg.f64[2, 2])
    def f(a, b):
        return cg.ops.tanh(a), a @ b

    prog = lower(f)
    fresh, inplace = predicates(prog)
    names = [i.op.name for i in prog.instrs]
    jt = names.index("tanh")
    pl = check(prog, fresh, inplace, donate={0: 0, 1: 1})
    assert pl.target.get(jt) is None  # a is read by the product after tanh
    prog2 = Program(prog.types, prog.inputs, prog.outputs[::-1],
                    [prog.instrs[j] for j in range(len(prog.instrs)) if j != jt] + [prog.instrs[jt]])
    pl2 = check(prog2, *predicates(prog2), donate={1: 0})
    assert pl2.target[len(prog2.instrs) - 1] == ("in", 0)  # tanh reads a last and writes it
    # one input is donated to one output only
    @cg.trace(cg.f64[3])
    def g(a):
        return cg.ops.exp(a), cg.ops.sin(a)

    pg = lower(g)
    pl3 = check(pg, *predicates(pg), donate={0: 0, 1: 0}, rings=True)
    assert sorted(pl3.target.values()) == [("in", 0), ("ring", 0)]


def test_an_output_that_is_an_input_is_never_donated_into():
    @cg.trace(cg.f64[3])
    def f(a):
        return cg.ops.exp(a), a

    prog = lower(f)
    pl = check(prog, *predicates(prog), donate={0: 0}, rings=True)
    assert pl.target[0] == ("ring", 0)
