"""The memory-minded instruction order (:func:`catgrad.compiler.buffers.order`): a
permutation that keeps every dependency, puts a donated output's writer after the other
readers of the input it is written into, and changes no result; and, on a training step
that donates its state, a block of planned buffers no bigger than what torch's eager
Adam holds besides parameters and moments (gradients and one temporary: twice the
parameters)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import prepare
from catgrad.compiler.buffers import order
from catgrad.compiler.numpy_backend import _nbytes, _writes_out, compile_numpy
from catgrad.core.primitive import bind
from strategies import cotangents, points, rng_from, smooth_diagrams
from test_numpy_buffers import mlp


def _order(prog, donate):
    ks = [bind(ins.op, "numpy", {}) for ins in prog.instrs]
    return order(prog, lambda j: _writes_out(ks[j]),
                 lambda j: prog.instrs[j].op.prim.elementwise and _writes_out(ks[j]),
                 lambda v: _nbytes(prog.types[v], {}), donate)


@settings(max_examples=40, deadline=None)
@given(d=smooth_diagrams(min_ops=3, max_ops=12), data=st.data())
def test_the_order_keeps_dependencies_and_results(d, data):
    prog = prepare(cg.R(d))
    n_out, n_in = len(prog.outputs), len(prog.inputs)
    donate = data.draw(st.dictionaries(st.integers(0, n_out - 1), st.integers(0, n_in - 1), max_size=3))
    donate = {o: i for o, i in donate.items() if prog.types[prog.outputs[o]] == prog.types[prog.inputs[i]]}
    perm = _order(prog, donate)
    assert sorted(perm) == list(range(len(prog.instrs)))
    at = {j: k for k, j in enumerate(perm)}
    producer = {o: j for j, ins in enumerate(prog.instrs) for o in ins.outs}
    for j, ins in enumerate(prog.instrs):
        assert all(at[producer[v]] < at[j] for v in ins.ins if v in producer)
    # a sink writing a donated output runs after the other direct readers of that input
    # (unless two such sinks read each other's inputs: then one of them goes first)
    read = {v for ins in prog.instrs for v in ins.ins}
    sinks = {}
    for p, i in donate.items():
        j = producer.get(prog.outputs[p])
        if j is not None and not any(o in read for o in prog.instrs[j].outs):
            sinks[j] = prog.inputs[i]
    for j, u in sinks.items():
        late = [r for r, ins in enumerate(prog.instrs) if u in ins.ins and r != j and at[r] > at[j]]
        assert all(r in sinks for r in late), (j, late)
    # the program run in that order computes the same, bit for bit
    reordered = prog.copy()
    reordered.instrs = [prog.instrs[j] for j in perm]
    rng = rng_from(data.draw)
    args = points(rng, d.dom) + cotangents(rng, d.cod)
    want = compile_numpy(prog, passes=False, reuse=False)(*[np.array(a) for a in args])
    for kw in ({}, {"donate": donate}, {"reuse": False}):
        got = compile_numpy(reordered, passes=False, **kw)(*[np.array(a) for a in args])
        assert all(np.array_equal(a, b) for a, b in zip(want, got)), kw


def _block_bytes(run, shapes) -> int:
    g = run.specialise(shapes).__globals__
    blocks = {id(b): b for b in (g[k].base for k in g if k.startswith("_buf")) if b is not None}
    roots = {}
    for b in blocks.values():
        while b.base is not None:
            b = b.base
        roots[id(b)] = b.nbytes
    return sum(roots.values())


def test_a_donated_adam_step_holds_less_than_twice_its_parameters_in_buffers():
    """64 -> 256 -> 256 -> 10 relu MLP, batch 128, Adam, softmax cross-entropy: torch's
    eager step holds the gradients (the parameters' bytes) and one temporary of the
    parameters' size at its peak besides parameters and moments; the donated numpy step's
    planned buffers hold less (one gradient at a time, the update written over it)."""
    step = cg.compile(mlp((64, 256, 256, 10), cg.f32, cg.ops.relu), loss="softmax_cross_entropy",
                      optimizer="adam(lr=1e-3)", donate=True)
    state = step.init(0)
    args = step._args(state.params, state.opt_state, {}, np.zeros((128, 64)), np.zeros((128, 10)))
    shapes = tuple(np.shape(a) for a in args)
    params = sum(np.asarray(v).nbytes for v in state.params.values())
    held = _block_bytes(step.program, shapes)
    assert held <= 2 * params - 64 * 1024, (held, params)
    # and the order made for memory is the one chosen: less than in the given order
    plain = cg.compile(mlp((64, 256, 256, 10), cg.f32, cg.ops.relu), loss="softmax_cross_entropy",
                       optimizer="adam(lr=1e-3)", donate=True)
    from catgrad.compiler import numpy_backend

    real = numpy_backend.order
    numpy_backend.order = lambda prog, *a: list(range(len(prog.instrs)))  # the given order only
    try:
        given_order = _block_bytes(plain.program, shapes)
    finally:
        numpy_backend.order = real
    assert held < given_order


def test_outputs_donated_crosswise_are_ordered_and_computed_right():
    """Each output is written into the other input's array, so each writer waits for the
    other's read: no instruction is ready at the start, and the first waiting one goes."""
    @cg.trace(cg.f64[3], cg.f64[3])
    def f(a, b):
        return b * 2.0, a * 3.0

    prog = prepare(f)
    donate = {0: 0, 1: 1}
    assert sorted(_order(prog, donate)) == list(range(len(prog.instrs)))
    run = compile_numpy(f, donate=donate)
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    x, y = run(a, b)
    assert np.array_equal(x, [8.0, 10.0, 12.0]) and np.array_equal(y, [3.0, 6.0, 9.0])
    assert y is b  # (the second writer ran last, into b's array, once b had been read)


def test_crosswise_sinks_wait_after_other_work_and_their_own_operands():
    """The same deadlock of two writers, reached only after other instructions have run
    (one ready from the start, and a writer's own operand): the first waiting writer whose
    operands are all computed goes, once (no instruction runs twice), so the other one,
    last, writes into its donated array."""
    @cg.trace(cg.f64[3], cg.f64[3], cg.f64[3])
    def f(c, a, b):
        return c + 1.0, b * 2.0 + b, a * 5.0

    prog = prepare(f)
    assert [ins.op.name for ins in prog.instrs] == ["add", "mul", "add", "mul"]
    donate = {1: 1, 2: 2}  # what is made of b goes into a's array, a * 5 into b's
    perm = _order(prog, donate)
    assert sorted(perm) == list(range(len(prog.instrs)))
    assert perm[2:] == [2, 3]  # (of the two waiting writers, the first with its operand computed goes)
    run = compile_numpy(f, donate=donate)
    c, a, b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    want = (c + 1.0, b * 2.0 + b, a * 5.0)
    z, x, y = run(c, a, b)
    assert all(np.array_equal(g, w) for g, w in zip((z, x, y), want))
    assert y is b and x is not a  # (b * 2 + b went first: a was still to be read)
