"""The buffer plan (:func:`catgrad.compiler.buffers.plan`) against its contract,
restated here independently of the planner:

- safety: a buffer (or a donated input's array) is written again only after every read
  of its previous value and of every view derived from it, or by the elementwise
  kernel that reads that value itself for the last time; nothing that escapes (an
  output, or a view of one) lives in a buffer; the last value written into a donated
  input's array is the output donated into it; a buffer's span covers the life of
  every value written into it;
- completeness: every value the contract allows to be planned is planned;
- economy: an elementwise kernel that reads an operand of its output's type in a
  buffer for the last time writes over it (no buffer is used for nothing).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import Instr, Program, lower, prepare
from catgrad.compiler.buffers import plan
from catgrad.compiler.numpy_backend import _writes_out, compile_numpy
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
    donors = {}  # input -> the outputs donated into it, in program order of their writers
    for p_, i in sorted((donate or {}).items()):
        donors.setdefault(prog.inputs[i], []).append(prog.outputs[p_])

    def may_overwrite(w, j, t):
        """kernel j may write a value of type t over w: it reads w itself (no view of w)
        for the last time, is elementwise, and w has type t."""
        return (prog.types[w] == t and last.get(w) == j and inplace(j)
                and max([last.get(a, -1) for a in aliases(w) - {w}] + [-1]) < j)

    # storage -> the values written there, in order; a donated input's array starts with it
    held = {("in", prog.inputs.index(u)): [(u, -1)] for u in donors}
    loc = {u: w for w, [(u, _)] in held.items()}  # where each value planned so far lives
    ring_seen = []
    writer = {o: j for j, ins in enumerate(prog.instrs) for o in ins.outs}
    for j, ins in enumerate(prog.instrs):
        where = pl.target.get(j)
        eligible = fresh(j) and len(ins.outs) == 1 \
            and all(prog.types[v].dtype == prog.types[ins.outs[0]].dtype for v in ins.ins)
        if not eligible:
            assert where is None, (j, ins, where)
            continue
        o = ins.outs[0]
        t = prog.types[o]
        if escapes(o):
            # donated: the first output into u whose writer runs after every read of u's
            # views, and after every read of u itself unless it may write over u
            u = next((u for u, os in donors.items() if o in os), None)
            first = None
            if u is not None and prog.types[u] == t and not escapes(u):
                ok = [x for x in donors[u] if writer.get(x) is not None and prog.types[x] == prog.types[u]
                      and fresh(writer[x]) and len(prog.instrs[writer[x]].outs) == 1
                      and all(prog.types[v].dtype == prog.types[x].dtype for v in prog.instrs[writer[x]].ins)
                      and max([last.get(a, -1) for a in aliases(u) - {u}] + [-1]) < writer[x]
                      and (last.get(u, -1) < writer[x] or may_overwrite(u, writer[x], prog.types[u]))]
                first = min(ok, key=writer.get, default=None)
            if first == o:
                assert where == ("in", prog.inputs.index(u)), (j, ins, where)
            elif rings:
                assert where == ("ring", len(ring_seen)), (j, ins, where)
                ring_seen.append(t)
            else:
                assert where is None, (j, ins, where)
            if where is not None and where[0] == "in":
                held[where].append((o, j))
            continue
        # completeness: planned, in a buffer of its type or in a donated input's array
        assert where is not None and where[0] in ("buf", "in"), (j, ins, where)
        if where[0] == "buf":
            assert pl.buffers[where[1]] == t
            a, b = pl.spans[where[1]]
            assert a <= j and max(end(o), j) <= b, (j, pl.spans[where[1]])  # its span covers its life
        held.setdefault(where, []).append((o, j))
        # economy: written over an operand of its type in a buffer, read here for the last time
        over = [loc[w] for w in ins.ins if w in loc and may_overwrite(w, j, t)]
        if any(h[0] == "buf" for h in over):
            assert where in over, (j, ins, where)
        loc[o] = where
    assert pl.rings == ring_seen
    # safety: a storage is written again only after the last read of its previous value
    # and of its views, or by an elementwise kernel reading that value itself last
    for where, vals in held.items():
        for (v1, _), (v2, j2) in zip(vals, vals[1:]):
            assert end(v1) < j2 or may_overwrite(v1, j2, prog.types[v2]), (where, vals)
        if where[0] == "in":  # the donated output is the last value written there
            assert len(vals) == 1 or escapes(vals[-1][0]), (where, vals)
            assert all(not escapes(v) for v, _ in vals[1:-1])
    assert sorted(k for w, k in held if w == "buf") == list(range(len(pl.buffers)))  # no buffer left unused
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


def test_a_chain_of_elementwise_kernels_runs_in_one_buffer():
    """Each kernel reads its operand for the last time and writes over it."""
    @cg.trace(cg.f64[4])
    def f(x):
        for _ in range(5):
            x = cg.ops.tanh(cg.ops.exp(x))
        return x

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace)
    assert pl.buffers == [cg.f64[4]] and pl.spans == [(0, 9)]
    assert [pl.target.get(j) for j in range(10)] == [("buf", 0)] * 9 + [None]
    pl = check(prog, fresh, inplace, rings=True)
    assert pl.target[9] == ("ring", 0) and pl.rings == [cg.f64[4]]

    # a kernel that is not elementwise may not: each product gets a buffer of its own
    # (which the arena lays over the buffers whose spans are over)
    @cg.trace(cg.f64[3, 3])
    def g(a):
        for _ in range(4):
            a = a @ a
        return cg.ops.exp(a)

    prog = lower(g)
    pl = check(prog, *predicates(prog))
    assert [pl.target.get(j) for j in range(5)] == [("buf", 0), ("buf", 1), ("buf", 2), ("buf", 3), None]
    assert pl.spans == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_a_value_read_by_the_kernel_writing_the_next_never_shares_its_buffer():
    """``y = exp(x); z = tanh(y); w = z + y``: y is read at the add, so z may not use
    y's buffer; the add reads both for the last time and writes over the first, z."""
    @cg.trace(cg.f64[3])
    def f(x):
        y = cg.ops.exp(x)
        z = cg.ops.tanh(y)
        w = z + y
        return cg.ops.sin(cg.ops.exp(w))

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace)
    assert [pl.target.get(j) for j in range(5)] == [("buf", 0), ("buf", 1), ("buf", 1), ("buf", 1), None]
    assert pl.spans == [(0, 2), (1, 4)]


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


def test_scalars_are_planned_and_casts_or_several_outputs_are_not():
    t = cg.f64[3]

    @cg.trace(t, cg.f64[()])
    def f(x, s):
        return cg.ops.exp(cg.ops.exp(s)).broadcast(3) * cg.ops.exp(x), cg.ops.cast(cg.ops.exp(x), dtype=cg.f32)

    prog = lower(f)
    fresh, inplace = predicates(prog)
    pl = check(prog, fresh, inplace)
    scalars = [j for j, ins in enumerate(prog.instrs) if prog.types[ins.outs[0]].rank == 0]
    assert len(scalars) == 2 and pl.target[scalars[0]] == pl.target[scalars[1]]  # exp(exp(s)) in one 0-d buffer
    assert pl.buffers[pl.target[scalars[0]][1]].rank == 0
    for j, ins in enumerate(prog.instrs):
        if ins.op.name == "cast":
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


def test_a_donated_array_holds_values_before_its_output_only_while_they_are_not_needed_after():
    """``w = exp(a)`` reads the donated ``a`` last and may be written over it, but only
    if ``w`` is dead (or read last, elementwise, by the kernel writing ``a``'s output)
    when that output is written there."""
    @cg.trace(cg.f64[3], cg.f64[3])
    def late(a, b):
        w = cg.ops.exp(a)
        return cg.ops.sin(b), w * b  # w is read after sin(b) is written into a

    @cg.trace(cg.f64[3], cg.f64[3])
    def chain(a, b):
        w = cg.ops.exp(a)
        return cg.ops.tanh(w), cg.ops.sin(b)  # tanh reads w last and writes a's output

    prog = lower(late)
    pl = check(prog, *predicates(prog), donate={0: 0}, rings=True)
    assert [pl.target.get(j) for j in range(3)] == [("buf", 0), ("in", 0), ("ring", 0)]
    a, b = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    want = compile_numpy(prog, passes=False, reuse=False)(a.copy(), b.copy())
    got = compile_numpy(prog, passes=False, donate={0: 0})(a.copy(), b.copy())
    assert all(np.array_equal(x, y) for x, y in zip(want, got))
    prog = lower(chain)
    pl = check(prog, *predicates(prog), donate={0: 0}, rings=True)
    assert [pl.target.get(j) for j in range(3)] == [("in", 0), ("in", 0), ("ring", 0)] and pl.buffers == []
    want = compile_numpy(prog, passes=False, reuse=False)(a.copy(), b.copy())
    got = compile_numpy(prog, passes=False, donate={0: 0})(a.copy(), b.copy())
    assert all(np.array_equal(x, y) for x, y in zip(want, got))
