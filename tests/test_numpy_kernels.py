"""The numpy backend's faster kernels and cheaper compile, against plain numpy and
against the code they replace: matrix products through ``np.dot`` (the same BLAS call
as ``np.matmul``, so the same bits), sums over leading axes as ``1^T X``, vector
broadcasts copied into planned buffers (nothing allocated per call), ops looked up by
type instead of re-typed, and the schedule pass against the algorithm it replaced."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import prepare
from catgrad.compiler.numpy_backend import compile_numpy
from catgrad.compiler.passes import schedule
from catgrad.core.primitive import bind, lookup
from strategies import cotangents, points, rng_from, smooth_diagrams
from test_numpy_buffers import mlp


def _einsum_kernel(spec, a, b):
    t = {np.float32: cg.f32, np.float64: cg.f64}[a.dtype.type]
    op = lookup("einsum").op([t[a.shape], t[b.shape]], spec=spec)
    return bind(op, "numpy", {})


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 40), dt=st.sampled_from([np.float32, np.float64]),
       form=st.sampled_from(["ij,jk->ik", "ji,jk->ik", "ij,kj->ik", "ji,kj->ik", "j,jk->k", "ij,j->i"]),
       seed=st.integers(0, 2**16))
def test_plain_matrix_products_are_bit_identical_to_matmul(m, k, n, dt, form, seed):
    rng = np.random.default_rng(seed)
    x, y = form.split("->")[0].split(",")
    size = {"i": m, "j": k, "k": n}
    a = rng.normal(size=[size[c] for c in x]).astype(dt)
    b = rng.normal(size=[size[c] for c in y]).astype(dt)
    kernel = _einsum_kernel(form, a, b)
    want = np.matmul(a.T if x == "ji" else a, b.T if y == "kj" else b)
    got = kernel(a, b)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    out = np.empty_like(want)  # C-contiguous: np.dot writes it
    assert kernel(a, b, out=out) is out and out.tobytes() == want.tobytes()
    if want.ndim == 2:  # a strided out: np.matmul writes it
        big = np.zeros((want.shape[0], 2 * want.shape[1]), dt)
        view = big[:, ::2]
        kernel(a, b, out=view)
        assert np.array_equal(view, want) and not big[:, 1::2].any()


def _sum_kernel(shape, axes, keepdims=False, dt=cg.f64):
    op = lookup("sum").op([dt[shape]], axes=axes, keepdims=keepdims)
    return bind(op, "numpy", {})


@pytest.mark.parametrize("shape, axes, keepdims", [((150, 20), 0, False), ((150, 3), (0,), True),
                                                    ((4, 5, 6), (0, 1), False), ((4, 5, 6), 0, False),
                                                    ((0, 3), 0, False), ((7, 1), 0, True)])
def test_sums_over_leading_axes_are_ones_times_the_matrix(shape, axes, keepdims):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape)
    kernel = _sum_kernel(shape, axes, keepdims)
    nl = len(axes) if isinstance(axes, tuple) else 1
    n, m = int(np.prod(shape[:nl])), int(np.prod(shape[nl:]))
    want = (np.ones(n) @ x.reshape(n, m)).reshape(np.sum(x, axis=axes, keepdims=keepdims).shape)
    got = kernel(x)
    assert got.shape == want.shape and got.tobytes() == want.tobytes()
    np.testing.assert_allclose(got, np.sum(x, axis=axes, keepdims=keepdims), rtol=1e-13, atol=1e-13)
    for x2 in (np.asfortranarray(x), x[::-1]):  # strided inputs: the same sums
        np.testing.assert_allclose(kernel(x2), np.sum(x2, axis=axes, keepdims=keepdims), rtol=1e-13, atol=1e-13)
    out = np.full(want.shape, np.nan)
    assert kernel(x, out=out) is out and out.tobytes() == want.tobytes()
    if want.ndim:  # a strided out
        big = np.full(want.shape + (2,), np.nan)
        assert np.array_equal(kernel(x, out=big[..., 0]), want) and np.isnan(big[..., 1]).all()


@pytest.mark.parametrize("shape, axes, keepdims", [((8, 4096), 0, False), ((2, 4, 4096), (0, 1), False),
                                                    ((8, 4096), 0, True), ((4096, 8), 0, False)])
def test_a_sum_over_leading_axes_writes_straight_into_a_contiguous_out(shape, axes, keepdims):
    """Given a C-contiguous ``out`` of its dtype, the product ``1^T X`` is written into it:
    no result-sized temporary is made and copied (the reason the kernel takes ``out``), and
    the vector of ones is made once, not on every call (32 kB at 4096 rows)."""
    x = np.random.default_rng(5).normal(size=shape)
    kernel = _sum_kernel(shape, axes, keepdims)
    out = np.empty(np.sum(x, axis=axes, keepdims=keepdims).shape)
    assert kernel(x, out=out) is out
    np.testing.assert_allclose(out, np.sum(x, axis=axes, keepdims=keepdims), rtol=1e-13, atol=1e-13)
    assert _allocated(lambda: kernel(x, out=out)) < 4096


def test_a_bias_gradient_is_the_same_compiled_and_interpreted():
    """One kernel per primitive: the compiled sum over the batch (written out as
    ``np.dot``) and ``cg.evaluate`` give the same bits."""

    @cg.trace(cg.f32["B", 20])
    def f(g):
        return cg.ops.sum(g, axes=0)

    x = np.random.default_rng(2).normal(size=(150, 20)).astype(np.float32)
    run = compile_numpy(prepare(f))
    assert "np.dot(" in run.source((150, 20))
    assert run(x)[0].tobytes() == np.asarray(cg.evaluate(f, x)).tobytes()


@pytest.mark.parametrize("shape", [(150, 3), (450,), (2, 3, 4), (0, 3), (1,), ()])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dt", [cg.f32, cg.f64])
def test_a_sum_of_every_entry_is_the_dot_product_with_ones(shape, keepdims, dt):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(dt.numpy)
    kernel = _sum_kernel(shape, tuple(range(len(shape))) or None, keepdims, dt)
    want_shape = np.sum(x, keepdims=keepdims).shape
    if shape:
        want = np.reshape(np.dot(x.reshape(-1), np.ones(x.size, x.dtype)), want_shape)
    else:  # no axes to sum: the operand itself
        want = x
    got = np.asarray(kernel(x))
    assert got.shape == want_shape and got.dtype == x.dtype and got.tobytes() == np.asarray(want).tobytes()
    tol = 1e-13 if dt is cg.f64 else 1e-5
    np.testing.assert_allclose(got, np.sum(x.astype(np.float64), keepdims=keepdims), rtol=tol, atol=tol)
    if len(shape) == 2:  # a strided operand: the same entries in the same order, the same bits
        assert np.asarray(kernel(np.asfortranarray(x))).tobytes() == got.tobytes()
        out = np.full(want_shape, np.nan, x.dtype)
        assert kernel(x, out=out) is out and out.tobytes() == got.tobytes()


def test_a_loss_summed_to_a_number_is_the_same_compiled_and_interpreted_and_allocates_no_iterator():
    """The loss's sum over every entry is written out as ``np.dot`` with ones: numpy's
    reduction would allocate its iterator (about 0.9 kB) on every call."""

    @cg.trace(cg.f64["B", 3])
    def f(e):
        return cg.ops.sum(e * e)

    x = np.random.default_rng(4).normal(size=(150, 3))
    run = compile_numpy(prepare(f))
    src = run.source((150, 3))
    assert "np.dot(" in src and "reduce" not in src
    assert run(x)[0].tobytes() == np.asarray(cg.evaluate(f, x)).tobytes()
    code = run.specialise(((150, 3),))  # the generated function itself (no argument checks around it)
    assert _allocated(lambda: np.add.reduce(x, axis=(0, 1))) > 512  # what the old kernel cost
    assert _allocated(lambda: code(x)) < 512


def _allocated(fn):
    fn()
    fn()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def test_a_compiled_step_allocates_next_to_nothing_per_call():
    """The bias broadcast is copied into a planned buffer: a ufunc reading a broadcast
    vector would allocate its iteration buffer (about 30 kB at this size) on every call."""
    step = cg.compile(mlp((64, 256, 10), cg.f32, cg.ops.tanh), loss="mse", optimizer="sgd(lr=0.01)")
    state = step.init(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(128, 64)).astype(np.float32), rng.normal(size=(128, 10)).astype(np.float32)
    args = [state.params[n] for n in step.param_names] + [state.opt_state[k] for k in step.opt_keys] + [x, y]
    box = [None]

    def call():
        box[0] = None
        box[0] = step.program(*args)

    assert "np.copyto(" in step.program.source(*(a.shape for a in args))
    assert _allocated(call) < 2048
    want = cg.evaluate(step.diagram, *args)
    for a, b in zip(step.program(*args), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_donated_strided_arrays_are_copied_first():
    model = mlp((3, 4, 2), cg.f64, cg.ops.tanh)
    plain = cg.compile(model, loss="mse", optimizer="sgd(lr=0.1)")
    donating = cg.compile(model, loss="mse", optimizer="sgd(lr=0.1)", donate=True)
    s0 = plain.init(0)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    want, _ = plain(s0, x, y)
    strided = cg.TrainState({k: np.asfortranarray(v) if v.ndim == 2 else v.copy() for k, v in s0.params.items()},
                            dict(s0.opt_state), 0, {})
    kept = {k: v.copy() for k, v in strided.params.items()}
    got, _ = donating(strided, x, y)
    for k in want.params:
        assert np.array_equal(want.params[k], got.params[k]), k
        if strided.params[k].ndim == 2:  # not C-contiguous: copied, left as it was
            assert np.array_equal(strided.params[k], kept[k]), k


def test_ops_are_looked_up_not_retyped_and_attributes_keep_their_types():
    mul = lookup("mul")
    t = cg.f32[3]
    assert mul.op([t, t]) is mul.op([t, t])
    bc = lookup("broadcast")
    assert bc.op([cg.f32[1]], shape=(4,)) is bc.op([cg.f32[1]], shape=(4,))
    const = lookup("constant")
    ops = [const.op([], type=cg.f64[()], value=v) for v in (1, 1.0, 0.0, -0.0)]
    assert len({id(o) for o in ops}) == 4
    assert [type(o.kwargs["value"]) for o in ops[:2]] == [int, float]
    assert np.signbit(ops[3].kwargs["value"]) and not np.signbit(ops[2].kwargs["value"])
    with pytest.raises(cg.CatgradTypeError, match="must be a number"):  # True == 1, yet it is still checked
        const.op([], type=cg.f64[()], value=True)
    with pytest.raises(cg.CatgradTypeError):  # errors are not remembered as ops
        mul.op([t, cg.f32[4]])
    with pytest.raises(cg.CatgradTypeError):
        mul.op([t, cg.f32[4]])


def test_wire_types_pickle_and_hash_as_values():
    t = cg.f32["B", 3]
    u = pickle.loads(pickle.dumps(t))
    assert u == t and hash(u) == hash(t) and u is not t
    assert t != cg.f64["B", 3] and t != cg.f32["B", 4] and t != ("f32", ("B", 3))


def _schedule_reference(p):
    """The schedule pass as first written (a rescan of the waiting updates after every
    instruction), to check the linear-time version against."""
    producer = {o: j for j, ins in enumerate(p.instrs) for o in ins.outs}
    read = {v for ins in p.instrs for v in ins.ins}
    inputs = set(p.inputs)
    in_readers: dict = {}
    for j, ins in enumerate(p.instrs):
        for v in set(ins.ins) & inputs:
            in_readers.setdefault(v, []).append(j)
    sink = [not any(o in read for o in ins.outs) for ins in p.instrs]
    needs = [sorted({producer[v] for v in ins.ins if v in producer}) for ins in p.instrs]
    done, seen, order, waiting = [False] * len(p.instrs), [False] * len(p.instrs), [], []

    def ready(j):
        return all(done[r] for v in set(p.instrs[j].ins) & inputs for r in in_readers[v] if r != j)

    def emit(j):
        done[j] = True
        order.append(j)
        while True:
            go = next((w for w in waiting if ready(w)), None)
            if go is None:
                return
            waiting.remove(go)
            done[go] = True
            order.append(go)

    for v in p.outputs:
        if v not in producer or seen[producer[v]]:
            continue
        stack = [(producer[v], 0)]
        while stack:
            j, k = stack.pop()
            deps = needs[j]
            while k < len(deps) and seen[deps[k]]:
                k += 1
            if k < len(deps):
                stack.append((j, k + 1))
                stack.append((deps[k], 0))
            elif not seen[j]:
                seen[j] = True
                if sink[j] and not ready(j):
                    waiting.append(j)
                else:
                    emit(j)
    return [p.instrs[j] for j in order + waiting]


@settings(max_examples=40, deadline=None)
@given(d=smooth_diagrams(min_ops=3, max_ops=14), data=st.data())
def test_schedule_matches_the_first_algorithm_on_random_programs(d, data):
    p = prepare(cg.R(d), passes=False)
    assert schedule(p).instrs == _schedule_reference(p)


@pytest.mark.parametrize("opt", ["sgd(lr=0.1)", "adam(lr=1e-2)", "momentum(lr=0.05, gamma=0.9)"])
def test_schedule_matches_the_first_algorithm_on_training_steps(opt):
    step = cg.compile(mlp((5, 8, 8, 3), cg.f64, cg.ops.tanh), loss="mse", optimizer=opt)
    for p in (prepare(step.diagram, passes=False), prepare(step.diagram)):
        assert schedule(p).instrs == _schedule_reference(p)


@settings(max_examples=25, deadline=None)
@given(d=smooth_diagrams(min_ops=3, max_ops=12), data=st.data())
def test_random_programs_agree_with_the_interpreter(d, data):
    rng = rng_from(data.draw)
    rd = cg.R(d)
    args = points(rng, d.dom) + cotangents(rng, d.cod)
    want = cg.evaluate(rd, *args)
    want = want if isinstance(want, tuple) else (want,)
    got = compile_numpy(prepare(rd))(*[np.array(a) for a in args])
    tol = 1e-5 if any(t.dtype.name == "f32" for t in (*rd.dom, *rd.cod)) else 1e-12
    assert len(got) == len(want)
    for a, b in zip(got, want):
        b = np.asarray(b)
        scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def test_a_kernel_takes_out_exactly_when_it_is_marked_so():
    """The buffer planner hands ``out=`` only to kernels marked ``writes_out`` (or ufuncs):
    a kernel that accepts ``out`` but is not marked would allocate on every call, and one
    marked but without ``out`` would fail. Checked for every primitive at every sample."""
    import functools
    import inspect

    from catgrad.compiler.numpy_backend import _writes_out
    from catgrad.core.primitive import PRIMITIVES, bind

    seen = 0
    for name, prim in sorted(PRIMITIVES.items()):
        for sample in prim.samples():
            k = bind(prim.op(sample.dom, **sample.attrs), "numpy", {"B": 2})
            f = k.func if isinstance(k, functools.partial) else k
            if isinstance(f, np.ufunc):
                continue
            takes_out = "out" in inspect.signature(f).parameters
            assert takes_out == _writes_out(k), (name, sample, f)
            seen += takes_out
    assert seen >= 40  # (a guard: the rule tables do mark their out-writing kernels)


@pytest.mark.parametrize("shape,axes,fast", [((6, 4, 3), (1, 2), True), ((6, 4, 3), (2,), True), ((6, 8), (1,), True), ((6, 40), (1,), False),
                                             ((6, 4, 3), (0, 1), False), (("B", 4), (1,), True)])
def test_a_sum_over_a_few_trailing_entries_is_a_matrix_vector_product(shape, axes, fast):
    """Summing 2-32 trailing entries (pooling windows) binds the matrix-vector kernel, which
    numpy's reduction loop is several times slower than on short inner axes; results agree."""
    from catgrad.core.primitive import PRIMITIVES, bind

    t = cg.f64[shape]
    k = bind(PRIMITIVES["sum"].op(t, axes=axes), "numpy", {"B": 5})
    assert (getattr(k, "__name__", "") == "windows") == fast
    x = np.random.default_rng(0).standard_normal(tuple(5 if d == "B" else d for d in shape))
    want = x.sum(axis=axes)
    np.testing.assert_allclose(k(x), want, rtol=1e-14, atol=1e-14)
    # into a given out=: contiguous, every other entry of a larger array, rows of a wider one
    for out in _outs_like(want):
        assert k(x, out=out) is out
        np.testing.assert_allclose(out, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("shape,axes", [((4, 3, 5, 2), (0, 2, 3)), ((4, 2, 3, 5), (0, 1, 3)), ((3, 4, 5), (0, 2))])
def test_a_sum_over_leading_and_trailing_axes_is_two_matrix_vector_products(shape, axes):
    """The bias gradient of a conv (``[N, C, H, W] -> [C]``) and its kind bind the kernel that
    sums the leading rows and then the trailing columns as products with ones."""
    from catgrad.core.primitive import PRIMITIVES, bind

    k = bind(PRIMITIVES["sum"].op(cg.f64[shape], axes=axes), "numpy", {})
    assert k.__name__ == "outer_and_inner"
    x = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_allclose(k(x), x.sum(axis=axes), rtol=1e-14, atol=1e-14)


def _outs_like(a):
    """Arrays of ``a``'s shape and dtype to write into: a contiguous one, every other entry
    of a larger array, and the rows of a wider array (no single stride walks those)."""
    wide = a.shape[:-1] + (2 * a.shape[-1],)
    return [np.empty_like(a), np.empty(wide, a.dtype)[..., ::2], np.empty(a.shape[:-1] + (a.shape[-1] + 1,), a.dtype)[..., :-1]]


def test_a_kernel_writes_into_any_out_it_is_given_contiguous_or_not():
    """Every kernel that takes ``out=`` writes its result there, whether ``out`` is a
    contiguous array or a strided view (:func:`_outs_like`): the same numbers as without
    ``out``, in ``out``. Checked for every primitive at every sample."""
    from catgrad.compiler.numpy_backend import _writes_out
    from catgrad.core.primitive import PRIMITIVES, bind
    from test_conformance import _values

    seen = 0
    for name, prim in sorted(PRIMITIVES.items()):
        for k, sample in enumerate(prim.samples()):
            op = prim.op(sample.dom, **sample.attrs)
            kernel = bind(op, "numpy", {"B": 3})
            if isinstance(kernel, np.ufunc) or not _writes_out(kernel) or len(op.cod) != 1:
                continue
            rng = np.random.default_rng(k)
            xs = [_values(rng, t, sample.domain) for t in op.dom]
            want = np.asarray(kernel(*xs))
            if want.ndim == 0:
                continue
            for out in _outs_like(want):
                got = kernel(*xs, out=out)
                assert got is out or np.shares_memory(got, out), (name, k)
                np.testing.assert_array_equal(out, want, err_msg=f"{name} sample {k}")
            seen += 1
    assert seen >= 30
