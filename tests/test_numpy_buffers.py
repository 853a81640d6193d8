"""Buffer planning in the numpy backend: kernels write into buffers kept across calls
(and, with ``donate``, into the caller's arrays). Checked against the same backend with
planning off, bit for bit (the arithmetic is the same), and for its contract: an output
handed back is never changed by a later call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import prepare
from catgrad.compiler.numpy_backend import compile_numpy
from strategies import cotangents, points, rng_from, smooth_diagrams


def dense(name, i, o, dt, act):
    @cg.trace(dt[i, o], dt[o], dt["B", i])
    def body(W, b, x):
        y = x @ W + b.reshape(1, o).broadcast("B", o)
        return act(y) if act else y

    return cg.Para([cg.Param(f"{name}.W", dt[i, o]), cg.Param(f"{name}.b", dt[o], cg.init.normal(0.1))], body)


def mlp(sizes, dt, act):
    m = dense("l0", sizes[0], sizes[1], dt, act)
    for k, (a, b) in enumerate(zip(sizes[1:], sizes[2:]), 1):
        m = m >> dense(f"l{k}", a, b, dt, act if k < len(sizes) - 2 else None)
    return m


CASES = [
    ((4, 20, 3), cg.f64, cg.ops.sigmoid, "sgd(lr=0.1)", "half_sum"),
    ((8, 16, 16, 4), cg.f32, cg.ops.tanh, "adam(lr=1e-2)", "mean"),
    ((5, 7, 3), cg.f64, cg.ops.relu, "momentum(lr=0.05, gamma=0.9)", "sum"),
]


def _batches(sizes, dt, n, batch=6, seed=0):
    rng = np.random.default_rng(seed)
    npdt = np.dtype(dt.numpy)
    return [(rng.normal(size=(batch, sizes[0])).astype(npdt), rng.normal(size=(batch, sizes[-1])).astype(npdt))
            for _ in range(n)]


def _flat(state, out=None):
    vals = [*state.params.values(), *state.opt_state.values()]
    return vals + ([np.asarray(out.loss), out.pred] if out is not None else [])


@pytest.mark.parametrize("sizes, dt, act, opt, red", CASES)
def test_training_steps_are_bit_identical_with_and_without_buffers(sizes, dt, act, opt, red):
    model = mlp(sizes, dt, act)
    steps = {name: cg.compile(model, loss=cg.loss.mse(reduction=red), optimizer=opt, **kw)
             for name, kw in [("plain", {"reuse": False}), ("reuse", {}), ("donate", {"donate": True})]}
    states = {k: s.init(0) for k, s in steps.items()}
    kept = {k: [] for k in steps}
    for x, y in _batches(sizes, dt, 5) + _batches(sizes, dt, 2, batch=9, seed=1):  # a second shape too
        for k, s in steps.items():
            states[k], out = s(states[k], x, y)
            kept[k].append([np.array(v) for v in _flat(states[k], out)])
        for k in ("reuse", "donate"):
            for a, b in zip(_flat(states["plain"]), _flat(states[k])):
                assert a.dtype == b.dtype and np.array_equal(a, b), k
    # nothing handed back before (losses, predictions; parameters unless donated) changed since
    for k in ("plain", "reuse"):
        assert all(np.array_equal(a, b) for a, b in zip(kept[k][-1], _flat(states[k]))), k


def test_outputs_of_one_call_are_not_overwritten_by_the_next():
    model = mlp((4, 20, 3), cg.f64, cg.ops.sigmoid)
    step = cg.compile(model, loss=cg.loss.mse(), optimizer="sgd(lr=0.1)")
    s0 = step.init(0)
    (x1, y1), (x2, y2) = _batches((4, 20, 3), cg.f64, 2)
    s1, out1 = step(s0, x1, y1)
    saved = [np.array(v) for v in _flat(s1, out1)] + [np.array(v) for v in _flat(s0)]
    s2, out2 = step(s1, x2, y2)
    # call 1's outputs and its inputs are as they were
    assert all(np.array_equal(a, b) for a, b in zip(saved, _flat(s1, out1) + _flat(s0)))
    assert not np.array_equal(out1.pred, out2.pred)
    # and call 2's arrays are distinct from call 1's
    for a, b in zip(_flat(s1, out1), _flat(s2, out2)):
        assert not np.shares_memory(a, b) or a.ndim == 0 and a is b  # a state scalar handed through


def test_predict_outputs_survive_later_calls():
    f = cg.ops.tanh(cg.f64["B", 3]) >> cg.ops.exp(cg.f64["B", 3])
    run = compile_numpy(prepare(f))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    (ya,) = run(a)
    keep = ya.copy()
    (yb,) = run(b)
    assert np.array_equal(ya, keep) and not np.array_equal(ya, yb)


def test_donated_inputs_are_written_in_place_and_others_never():
    model = mlp((4, 20, 3), cg.f64, cg.ops.sigmoid)
    step = cg.compile(model, loss=cg.loss.mse(), optimizer="sgd(lr=0.1)", donate=True)
    s0 = step.init(0)
    (x, y), = _batches((4, 20, 3), cg.f64, 1)
    xc, yc = x.copy(), y.copy()
    s1, out = step(s0, x, y)
    for n in step.param_names:  # the new parameters live in the old arrays
        assert s1.params[n] is s0.params[n]
    assert np.array_equal(x, xc) and np.array_equal(y, yc)


def test_donate_copies_read_only_and_repeated_arrays():
    f = cg.ops.exp(cg.f64[3])
    run = compile_numpy(prepare(f), donate=True)
    a = np.array([0.0, 1.0, 2.0])
    a.flags.writeable = False
    (y,) = run(a)
    assert np.array_equal(a, [0.0, 1.0, 2.0]) and np.array_equal(y, np.exp(a))
    add = cg.ops.add(cg.f64[3], cg.f64[3])
    run2 = compile_numpy(prepare(add >> cg.ops.exp(cg.f64[3])), donate={0: 0})
    b = np.array([0.0, 1.0, 2.0])
    (z,) = run2(b, b)
    assert np.array_equal(b, [0.0, 1.0, 2.0]) and np.array_equal(z, np.exp(2 * b))
    (w,) = run2(b, np.ones(3))
    assert w is b and np.array_equal(w, np.exp(np.array([1.0, 2.0, 3.0])))


def test_donate_copies_only_the_repeated_array_and_makes_c_ordered_copies():
    """A donated array that is passed once is written in place even when some other array
    is passed twice; a donated array that is not C-ordered is copied into a C-ordered one
    (np.dot writes only into those)."""
    @cg.trace(cg.f64[3], cg.f64[3], cg.f64[3])
    def f(a, b, c):
        return a * b + c, b * c

    run = compile_numpy(f, donate={0: 0})
    a, c = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.25, 2.0])
    (y, z) = run(a, c, c)  # (b and c the same array; a only once)
    assert y is a and np.array_equal(y, np.array([1.0, 2.0, 3.0]) * c + c) and np.array_equal(z, c * c)

    @cg.trace(cg.f64[3, 3], cg.f64[3, 3])
    def g(a, b):
        return (b @ b,)  # a is never read: the product is written into its array

    run = compile_numpy(g, donate={0: 0})
    b = np.arange(9.0).reshape(3, 3) + 1
    fortran = np.asfortranarray(np.zeros((3, 3)))
    (p,) = run(fortran, b)
    assert p.flags.c_contiguous and np.array_equal(p, b @ b)
    (q,) = run(np.zeros((3, 3)), b)
    assert np.array_equal(q, b @ b)


def test_donate_with_a_wrong_pair_is_a_clear_error():
    with pytest.raises(cg.CatgradError, match="donate"):
        compile_numpy(prepare(cg.ops.exp(cg.f64[3])), donate={0: 1})
    with pytest.raises(cg.CatgradError, match="donate=True is an option of the numpy and torch backends"):
        cg.compile(mlp((2, 2), cg.f64, None), loss="mse", backend="circuit", donate=True)


@settings(max_examples=25, deadline=None)
@given(d=smooth_diagrams(min_ops=3, max_ops=12), data=st.data())
def test_random_programs_agree_with_and_without_buffers(d, data):
    rng = rng_from(data.draw)
    rd = cg.R(d)
    args = points(rng, d.dom) + cotangents(rng, d.cod)
    plain = compile_numpy(prepare(rd), reuse=False)
    for run in (compile_numpy(prepare(rd)), compile_numpy(prepare(rd), donate=True)):
        want = plain(*[np.array(a) for a in args])
        first = [np.array(v) for v in want]
        got = run(*[np.array(a) for a in args])
        assert all(np.array_equal(a, b) for a, b in zip(want, got))
        again = run(*[np.array(a) * 0.5 for a in args])  # a second call must leave the first's outputs alone
        assert all(np.array_equal(a, b) for a, b in zip(first, got))
        assert len(again) == len(got)


def test_a_donated_input_read_later_is_not_overwritten_early():
    @cg.trace(cg.f64[3], cg.f64[3])
    def f(a, b):
        r = a.reshape(1, 3)  # a view of a, read after a itself is last read
        e = cg.ops.exp(a)
        return e, cg.ops.tanh(r).reshape(3) + b

    run = compile_numpy(prepare(f), donate={0: 0, 1: 0})
    plain = compile_numpy(prepare(f), reuse=False)
    a, b = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    want = plain(a.copy(), b.copy())
    got = run(a.copy(), b.copy())
    assert all(np.array_equal(x, y) for x, y in zip(want, got))


def _addresses(state):
    return [a.__array_interface__["data"][0] for a in state.params.values()]


def test_output_rings_recycle_arrays_the_caller_dropped():
    """A loop that keeps only the latest state gets its parameters written into the
    arrays of two states back: after warm-up no step allocates parameter arrays."""
    model = mlp((8, 16, 16, 4), cg.f32, cg.ops.tanh)
    step = cg.compile(model, loss=cg.loss.mse(), optimizer="adam(lr=1e-2)")
    plain = cg.compile(model, loss=cg.loss.mse(), optimizer="adam(lr=1e-2)", reuse=False)
    s, p = step.init(0), plain.init(0)
    seen = set()
    for k, (x, y) in enumerate(_batches((8, 16, 16, 4), cg.f32, 8)):
        s, _ = step(s, x, y)
        p, _ = plain(p, x, y)
        if k >= 2:
            seen.add(tuple(_addresses(s)))
        for a, b in zip(_flat(s), _flat(p)):
            assert np.array_equal(a, b)
    assert len(seen) == 2  # two sets of arrays, taking turns


def test_output_rings_never_write_an_array_someone_still_holds():
    """Every state kept (a list of states, a numpy view, a memoryview, a torch tensor
    sharing the memory): no later step changes what it holds."""
    torch = pytest.importorskip("torch")
    model = mlp((4, 20, 3), cg.f64, cg.ops.sigmoid)
    step = cg.compile(model, loss=cg.loss.mse(), optimizer="sgd(lr=0.1)")
    batches = _batches((4, 20, 3), cg.f64, 12)
    s = step.init(0)
    held, copies = [], []
    for k, (x, y) in enumerate(batches):
        s, out = step(s, x, y)
        w = s.params["l0.W"]
        if k % 4 == 0:
            held.append(s)  # the whole state
            copies.append([np.array(a) for a in _flat(s, out)] + [out.pred])
        elif k % 4 == 1:
            held.append(w[1:])  # a view: the base array stays referenced
            copies.append([np.array(w[1:])])
        elif k % 4 == 2:
            held.append(memoryview(w))
            copies.append([np.array(w)])
        else:
            held.append(torch.from_numpy(w))
            copies.append([np.array(w)])
    for h, c in zip(held, copies):
        if isinstance(h, cg.TrainState):
            now = list(h.params.values()) + list(h.opt_state.values())
        else:
            now = [np.asarray(h) if not isinstance(h, torch.Tensor) else h.numpy()]
        for a, b in zip(now, c):
            assert np.array_equal(a, b)


def test_schedule_puts_each_update_right_after_its_gradient():
    """Depth first from the outputs: the last layer's update runs before the earlier
    layers' backward products (not after the whole backward pass), every instruction
    still after its operands, nothing lost."""
    from catgrad.compiler.passes import schedule

    step = cg.compile(mlp((8, 16, 16, 16, 4), cg.f64, cg.ops.tanh), loss=cg.loss.mse(), optimizer="sgd(lr=0.1)")
    p = prepare(step.diagram)
    pos = {o: j for j, ins in enumerate(p.instrs) for o in ins.outs}
    first_update = pos[p.outputs[0]]
    products_after = [j for j, ins in enumerate(p.instrs) if ins.op.name == "einsum" and j > first_update]
    assert len(products_after) >= 4  # three earlier layers' backward products at least
    assert sorted(map(id, p.instrs)) == sorted(map(id, schedule(p).instrs))
    for j, ins in enumerate(p.instrs):
        assert all(pos.get(v, -1) < j for v in ins.ins)
