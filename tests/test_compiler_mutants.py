"""Cases a mutation run of ``catgrad/compiler`` found untested (mutmut 3, a random sample of
400 mutants, 2026-12-01; each survivor re-run in a fresh process, since a forked mutant
reuses the torch modules its parent process had already built and cached).

Grouped by what they pin down: the torch fusion patterns taken only where they are exact
(hand-written programs that look like a pattern but are not one, fused against unfused
torch and numpy, float64); donation on torch; the names the source writer gives values;
the torch program's options; the numpy backend's fast path, its source and buffer plan;
the step's handling of key-taking models and of labels numpy cannot read; export.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.compiler import Instr, Program, compile_numpy, lower, numpy_backend, prepare, torch_backend, torch_export, torch_fusion
from catgrad.compiler.numpy_backend import NumpyProgram
from catgrad.ops.convolution import geometry
from test_buffers_order import _block_bytes, _order
from test_buffers_plan import check, predicates
from test_torch_backend import _dense_relu_dense

O = cg.ops
F64 = cg.f64


def _run(gm_or_mod, args):
    """The module's outputs on fresh copies of ``args`` (float64 tensors), as numpy arrays."""
    return [o.numpy() for o in gm_or_mod(*[torch.as_tensor(np.array(a)) for a in args])]


def _assert_same(got, want, rtol=1e-13, atol=1e-14):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


def _fx_code(mod) -> str:
    """The torch.fx code of a module either writer made (the source writer's names its
    globals after them, so its own source does not say ``torch.ops.aten...``)."""
    return mod.graph_module.code if isinstance(mod, torch_backend.ProgramModule) else mod.code


def _fused_names(prog, **kw) -> list:
    return sorted(repr(i.op) for i in torch_fusion.fuse(prog, **kw).instrs if isinstance(i.op, torch_fusion.FusedOp))


# -- Adam written out by hand -------------------------------------------------------------------

S = F64[()]
SHAPE = (4, 3)
HYPER = dict(t1=3.0, lr=0.1, b1=0.8, b2=0.99, eps=1e-6)


def _adam(grad, extra=None, z_shape=(2,) + SHAPE, shape=SHAPE, weight=lambda b1: 1.0 - b1):
    """One Adam update of a parameter (of ``shape``) written out term by term, as the
    optimizer builds it (``grad(x)`` the gradient it uses for the first moment; the second
    moment always reads ``x * x``); ``extra(p, m, v, z)``, if given, gives further outputs
    (one value or a tuple) computed before the update. ``weight(b1)``: the gradient's weight in
    the first moment (Adam's is ``1 - b1``)."""
    t = F64[shape]

    def bc(s):
        return s.broadcast(*shape)

    @cg.trace(t, t, t, t, F64[z_shape], S, S, S, S, S)
    def f(p, m, v, x, z, t1, lr, b1, b2, eps):
        more = () if extra is None else extra(p, m, v, z)
        outs = list(more) if isinstance(more, tuple) else [more]
        m1 = bc(b1) * m + bc(weight(b1)) * grad(x)
        v1 = bc(b2) * v + bc(1.0 - b2) * (x * x)
        c1 = 1.0 - O.exp(t1 * O.log(b1))
        c2 = O.sqrt(1.0 - O.exp(t1 * O.log(b2)))
        p1 = p - bc(lr / c1) * m1 / (O.sqrt(v1) / bc(c2) + bc(eps))
        return (p1, m1, v1, *outs)

    return f


WRITERS = [torch_backend.program_module, torch_backend.graph_module]


def _adam_args(seed=0, z_shape=(2,) + SHAPE, shape=SHAPE):
    rng = np.random.default_rng(seed)
    p, m, x = (rng.standard_normal(shape) for _ in range(3))
    v = rng.random(shape)
    z = rng.standard_normal(z_shape)
    return [p, m, v, x, z] + [np.array(h) for h in HYPER.values()]


def _adam_by_hand(p, m, v, g, t1, lr, b1, b2, eps, weight=lambda b1: 1.0 - b1):
    m1 = b1 * m + weight(b1) * g
    v1 = b2 * v + (1 - b2) * g * g
    return p - lr / (1 - b1 ** t1) * m1 / (np.sqrt(v1) / np.sqrt(1 - b2 ** t1) + eps), m1, v1


@pytest.mark.parametrize("grad, sign", [(lambda x: x, 1.0), (lambda x: -x, -1.0)])
def test_a_hand_written_adam_update_is_one_fused_kernel_on_both_writers(grad, sign):
    """Adam written term by term is recognised (``_fused_adam``; with ``g = -x`` as
    ``maximize``) by the source writer and by the torch.fx builder alike, and both equal
    the unfused graph, numpy and the update computed by hand (float64)."""
    prog = prepare(_adam(grad))
    assert _fused_names(prog) == ["fused:adam"]
    # not in place unless asked (donate=True)
    assert [i.op.overwrites for i in torch_fusion.fuse(prog).instrs if isinstance(i.op, torch_fusion.FusedOp)] == [()]
    args = _adam_args()
    p, m, v, x, z, *h = args
    want = _adam_by_hand(p, m, v, sign * x, *h)
    ref = compile_numpy(prog)(*args)
    _assert_same(ref, want)
    plain = torch_backend.program_module(prog, fused=False)
    assert "_fused_adam" not in _fx_code(plain)
    for mod in (torch_backend.program_module(prog), torch_backend.graph_module(prog)):
        assert "_fused_adam.default(" in _fx_code(mod)
        _assert_same(_run(mod, args), want)
    _assert_same(_run(plain, args), want)


def test_a_first_moment_of_another_function_of_the_gradient_is_not_fused():
    """``m' = b1 m + (1 - b1) exp(x)`` with ``v'`` of ``x * x`` is not Adam of ``x`` (nor of
    ``-x``): it stays as written and computes what numpy computes."""
    prog = prepare(_adam(O.exp))
    assert _fused_names(prog) == []
    args = _adam_args(1)
    p, m, v, x, z, *h = args
    p1, m1, _ = _adam_by_hand(p, m, v, np.exp(x), *h)
    b2 = HYPER["b2"]
    v1 = b2 * v + (1 - b2) * x * x  # (the second moment of x, not of exp(x))
    p1 = p - HYPER["lr"] / (1 - HYPER["b1"] ** 3) * m1 / (np.sqrt(v1) / np.sqrt(1 - b2 ** 3) + HYPER["eps"])
    _assert_same(_run(torch_backend.program_module(prog), args), [p1, m1, v1])
    _assert_same(compile_numpy(prog)(*args), [p1, m1, v1])


@pytest.mark.parametrize("weight, fused", [(lambda b1: 1.0 - b1, True), (lambda b1: 2.0 - b1, False),
                                       (lambda b1: b1 - 1.0, False)], ids=["1-b1", "2-b1", "b1-1"])
def test_adam_is_fused_only_with_its_own_constants_in_their_own_order(weight, fused):
    """The first moment ``b1 m + w x`` is Adam's for ``w = 1 - b1`` only: not with another
    constant (2 - b1), nor with the operands of the (non-commutative) subtraction swapped."""
    prog = prepare(_adam(lambda x: x, weight=weight))
    assert _fused_names(prog) == (["fused:adam"] if fused else [])
    args = _adam_args(5)
    p, m, v, x, z, *h = args
    want = _adam_by_hand(p, m, v, x, *h, weight=weight)
    for writer in WRITERS:
        _assert_same(_run(writer(prog), args), want)


def test_adam_of_a_scalar_parameter_is_fused():
    """A 0-d parameter: nothing is broadcast (the pattern's broadcasts match the values
    themselves), and the update is still the one fused kernel."""
    prog = prepare(_adam(lambda x: x, shape=()))
    assert "broadcast" not in [i.op.name for i in prog.instrs]
    assert _fused_names(prog) == ["fused:adam"]
    args = _adam_args(6, shape=())
    p, m, v, x, z, *h = args
    for writer in WRITERS:
        mod = writer(prog)
        assert "_fused_adam.default(" in _fx_code(mod)
        _assert_same(_run(mod, args), _adam_by_hand(p, m, v, x, *h))


def test_a_fused_instructions_op_has_the_types_of_its_outputs():
    prog = prepare(cg.R(_dense_relu_dense()))
    for p in (torch_fusion.fuse(prog), torch_fusion.fuse(prepare(_adam(lambda x: x)), donate=True)):
        fused = [i for i in p.instrs if isinstance(i.op, torch_fusion.FusedOp)]
        assert fused and all(tuple(i.op.cod) == tuple(p.types[o] for o in i.outs) for i in fused)


@pytest.mark.parametrize("writer", WRITERS)
def test_an_update_whose_moment_is_read_before_the_update_ends_is_not_fused(writer):
    """m' is made early in the update; a reader of m' placed before the update's last
    instruction would find no value if the update became one instruction there."""
    prog = prepare(_adam(lambda x: x))
    _last_update_last(prog)
    m1, s = prog.outputs[1], len(prog.types)
    prog.types.append(prog.types[m1])
    prog.instrs.insert(len(prog.instrs) - 1, Instr(O.sin.prim.op(cg.Ob(prog.types[m1])), (m1,), (s,)))
    prog.outputs.append(s)
    assert _fused_names(prog) == []
    args = _adam_args(7)
    p, m, v, x, z, *h = args
    want = _adam_by_hand(p, m, v, x, *h)
    _assert_same(_run(writer(prog), args), [*want, np.sin(want[1])])


@pytest.mark.parametrize("writer", WRITERS)
def test_a_product_of_three_plus_a_bias_is_not_a_dense_layer(writer):
    """``x W U + b`` as one three-operand einsum has the shape of ``x @ W + b`` but is not it."""
    @cg.trace(F64[(5, 4)], F64[(4, 3)], F64[(3, 2)], F64[(2,)])
    def f(x, w, u, b):
        return O.einsum(x, w, u, spec="ab,bc,cd->ad") + b.broadcast(5, 2)

    prog = prepare(f)
    assert _fused_names(prog) == _fused_names(prog, cpu=True) == []
    rng = np.random.default_rng(8)
    args = [rng.standard_normal(s) for s in ((5, 4), (4, 3), (3, 2), (2,))]
    _assert_same(_run(writer(prog), args), [args[0] @ args[1] @ args[2] + args[3]])


def _deep(z):
    return O.sin(O.tanh(O.sin(O.tanh(z))))


def _deep_np(z):
    return np.sin(np.tanh(np.sin(np.tanh(z))))


def _last_update_last(prog):
    """The update's last instruction (p - ...) moved to the end of the program, after
    every reader of p, m and v, as the step has it: only then may it write into them."""
    k = next(j for j, ins in enumerate(prog.instrs) if ins.outs[0] == prog.outputs[0])
    prog.instrs = prog.instrs[:k] + prog.instrs[k + 1:] + [prog.instrs[k]]


def _check_donated(prog, writer, args, want):
    mod = writer(prog, donate=True)
    assert "_fused_adam_(" in _fx_code(mod) and "_fused_adam_(" not in _fx_code(writer(prog))
    ts = [torch.as_tensor(np.array(a)) for a in args]
    got = mod(*ts)
    _assert_same([o.numpy() for o in got], want)
    for k in range(3):  # p, m and v hold p', m' and v'
        assert torch.equal(ts[k], got[k])


#: How the deep reader reads the value: (the shape of z, the value as read in catgrad, in numpy).
#: All but "itself" go through what torch gives as a view: an implicit broadcast (no node of
#: its own), two broadcasts (the first one a node), a transpose, a reshape.
READS = {
    "itself": (SHAPE, lambda s: s, lambda s: s),
    "implicit broadcast": ((2,) + SHAPE, lambda s: s.broadcast(2, *SHAPE), lambda s: s),
    "broadcast of a broadcast": ((2, 2) + SHAPE, lambda s: s.broadcast(2, *SHAPE).broadcast(2, 2, *SHAPE), lambda s: s),
    "transpose": (SHAPE[::-1], lambda s: O.transpose(s), lambda s: s.T),
    "reshape": ((12,), lambda s: O.reshape(s, shape=(12,)), lambda s: s.reshape(12)),
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("how", list(READS))
def test_a_donated_adam_runs_after_a_deep_reader_of_what_it_overwrites(writer, which, how):
    """donate=True: the fused Adam writes p', m' and v' into p, m and v (``_fused_adam_``),
    on both writers; it is scheduled after every reader of each of them: here
    ``sin(tanh(sin(tanh(z)))) + s`` for ``s`` one of p, m and v, read directly or through a
    view, at depth 5 or more (the update itself reads only inputs, so by its depth alone it
    would run first and the add would read the updated value)."""
    z_shape, read, read_np = READS[how]
    prog = prepare(_adam(lambda x: x, extra=lambda *pmvz: _deep(pmvz[3]) + read(pmvz[which]), z_shape=z_shape))
    _last_update_last(prog)
    args = _adam_args(2, z_shape)
    p, m, v, x, z, *h = args
    _check_donated(prog, writer, args, [*_adam_by_hand(p, m, v, x, *h), _deep_np(z) + read_np(args[which])])


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("how", ["transpose", "reshape", "broadcast of a broadcast"])
def test_a_donated_adam_does_not_overwrite_a_parameter_whose_view_is_returned(writer, how):
    """A view of p among the outputs would show p' once p is overwritten: the update is
    then made out of place, and the output is the view of p as it was."""
    _, read, read_np = READS[how]
    prog = prepare(_adam(lambda x: x, extra=lambda p, m, v, z: read(p)))
    _last_update_last(prog)
    mod = writer(prog, donate=True)
    assert "_fused_adam.default(" in _fx_code(mod) and "_fused_adam_(" not in _fx_code(mod)
    args = _adam_args(4)
    p, m, v, x, z, *h = args
    got = mod(*[torch.as_tensor(np.array(a)) for a in args])
    _assert_same([o.numpy() for o in got], [*_adam_by_hand(p, m, v, x, *h), np.broadcast_to(read_np(p), got[3].shape)])


@pytest.mark.parametrize("writer", WRITERS)
def test_a_donated_adam_waits_for_the_deepest_reader_not_the_last_one(writer):
    """m has two readers before the update: a deep one (depth 5) first in the program and a
    shallow one (``3 m``, depth 1) after it. The update waits for the deeper, wherever it
    stands in the program."""
    prog = prepare(_adam(lambda x: x, extra=lambda p, m, v, z: (_deep(z) + m, 3.0 * m), z_shape=SHAPE))
    _last_update_last(prog)
    # the shallow reader just before the update: after the deep one in program order
    k = next(j for j, ins in enumerate(prog.instrs) if ins.outs[0] == prog.outputs[4])
    prog.instrs = prog.instrs[:k] + prog.instrs[k + 1:-1] + [prog.instrs[k], prog.instrs[-1]]
    deep_at = next(j for j, ins in enumerate(prog.instrs) if ins.outs[0] == prog.outputs[3])
    assert deep_at < len(prog.instrs) - 2
    args = _adam_args(3, SHAPE)
    p, m, v, x, z, *h = args
    _check_donated(prog, writer, args, [*_adam_by_hand(p, m, v, x, *h), _deep_np(z) + m, 3.0 * m])


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("rows", [2, "B"])
def test_the_torch_writers_group_same_depth_ops_only_where_torch_has_a_multi_tensor_form(writer, rows):
    """A program as lowered (no passes): the constant 2.0 is an instruction with no inputs
    (depth 0 in the schedule; made once as a buffer, or per call where its shape is the
    batch's). sin(a) and sin(b) are independent, at one depth: one ``_foreach_sin`` call.
    relu(a) and relu(b) are too, but relu has no multi-tensor form: two calls. All equal
    numpy's numbers."""
    @cg.trace(F64[(rows, 3)], F64[(rows, 3)])
    def f(a, b):
        return O.relu(a) * 2.0, O.relu(b), O.sin(a), O.sin(b)

    prog = lower(f)
    assert "constant" in [i.op.name for i in prog.instrs]
    mod = writer(prog)
    code = _fx_code(mod)
    assert code.count("_foreach_sin(") == 1 and code.count("relu(") == 2, code
    args = [np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(2, -3, 6).reshape(2, 3)]
    _assert_same(_run(mod, args), cg.evaluate(f, *args))


# -- the other fusion patterns, and programs that only look like them ----------------------------


def _pool_rd(count_of):
    """R of 2x2 max pooling of x : [B, 2, 4, 6] written out as the op's R writes it, with
    the number of ties in each window taken as ``count_of(mask, u)`` summed over the
    window (``u = dy^2 + 1`` lifted to the windows' shape)."""
    x_t = F64["B", 2, 4, 6]
    K, s, p, d, *_ = geometry("maxpool", x_t, 2, None, 0, 1)
    geo = dict(kernel=K, stride=s, padding=p, dilation=d)

    @cg.trace(x_t, F64["B", 2, 2, 3])
    def f(x, dy):
        y = O.maxpool(x, kernel=2)
        full = dy.shape + K
        lift = lambda w: w.reshape(w.shape + (1, 1)).broadcast(*full)  # noqa: E731
        win = O.unfold(x, fill=float("-inf"), **geo)
        mask = O.eq(win, lift(y))
        return O.fold(mask * lift(dy / count_of(mask, lift(dy * dy + 1.0)).sum(axes=(4, 5))), size=(4, 6), **geo)

    return f


def _pool_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4, 6))
    x[0, 0, :2, :2] = 5.0  # a four-way tie
    return x, rng.standard_normal((3, 2, 2, 3))


@pytest.mark.parametrize("count_of, fused", [(lambda m, u: m, True), (lambda m, u: m * 2.0, False),
                                             (lambda m, u: u, False)])
def test_max_pool_rd_is_fused_only_where_the_count_is_the_masks_own(count_of, fused):
    """``fold(mask * dy / sum(mask))`` is R of max pooling (one fused kernel); with
    ``sum(2 mask)`` or a sum of something else over the window as the count it is not,
    and stays as written: each equals numpy."""
    prog = prepare(_pool_rd(count_of))
    assert _fused_names(prog) == (["fused:maxpool_rd"] if fused else [])
    args = _pool_inputs()
    want = compile_numpy(prog)(*args)
    if fused:  # (and numpy's is R of max pooling: the tie split four ways)
        assert want[0][0, 0, 0, 0] == args[1][0, 0, 0, 0] / 4
    _assert_same(_run(torch_backend.graph_module(prog), args), want)


def _conv_dw(x_shape, dy_shape, cut=None, **attrs):
    """The weight gradient of a convolution as R writes it, ``conv(x^T, dy^T)^T`` (the
    batch as channels, ``attrs`` of that convolution), optionally ``cut`` by a slice of
    the correlation first."""
    swap = (1, 0, 2, 3)

    @cg.trace(F64[x_shape], F64[dy_shape])
    def f(x, dy):
        r = O.conv(x.transpose(swap), dy.transpose(swap), **attrs)
        if cut is not None:
            r = O.slice(r, **cut)
        return r.transpose(swap)

    return f


# x : [4, 2, 10, 8] by a 3x2 kernel with stride 2 gives dy : [4, 4, 4, 4]; R's correlation
# (dilation 2) is 4 long on the first spatial axis, and R cuts it to the kernel's 3
STRIDED = ((4, 2, 10, 8), (4, 4, 4, 4))


@pytest.mark.parametrize("shapes, cut, attrs, fused", [
    pytest.param(STRIDED, dict(axis=2, start=0, stop=3), dict(dilation=2), True, id="Rs-cut"),  # fused
    pytest.param(STRIDED, dict(axis=2, start=1, stop=4), dict(dilation=2), False, id="cut-from-1"),
    pytest.param(STRIDED, dict(axis=1, start=0, stop=3), dict(dilation=2), False, id="channel-cut"),
    pytest.param(((4, 2, 9, 8), (4, 4, 3, 2)), dict(axis=2, start=0, stop=5), {}, False, id="misfit-kernel"),
    pytest.param(((4, 2, 9, 8), (2, 4, 3, 2)), None, dict(groups=2), False, id="groups"),
])
def test_conv_weight_grad_is_fused_only_where_it_is_a_weight_gradient(shapes, cut, attrs, fused):
    """``conv(x^T, dy^T)^T``, cut from 0 on spatial axes to a kernel whose forward
    convolution of x has dy's size, is one convolution_backward; a slice from elsewhere,
    of another axis, to a kernel that does not give dy's size, or groups make a program
    that is no weight gradient, left as written: each equals numpy (float64)."""
    prog = prepare(_conv_dw(*shapes, cut, **attrs))
    assert _fused_names(prog) == (["fused:conv_weight_grad"] if fused else [])
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(t.shape) for t in prog.dom]
    _assert_same(_run(torch_backend.graph_module(prog), args), compile_numpy(prog)(*args), rtol=1e-12, atol=1e-12)


def test_a_dense_layer_whose_product_is_read_elsewhere_is_not_fused():
    """``x @ W + b`` with ``x @ W`` also read by a tanh: the product is needed, so it is
    not folded into an addmm; the program equals numpy."""
    @cg.trace(F64[5, 7], F64[7], F64["B", 5])
    def f(W, b, x):
        xw = x @ W
        return xw + b.broadcast("B", 7), O.tanh(xw)

    prog = prepare(f)
    assert _fused_names(prog) == [] and _fused_names(prepare(_dense_relu_dense())) == ["fused:affine"] * 2
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in ((5, 7), (7,), (6, 5))]
    _assert_same(_run(torch_backend.graph_module(prog), args), compile_numpy(prog)(*args))


#: Sums that look like ``x @ W + b`` but are not a dense layer: (the program, its inputs' shapes, numpy).
NOT_DENSE = {
    "a bias of one entry": (lambda x, w, b: x @ w + b.broadcast(20, 3), ((20, 4), (4, 3), (1,)),
                            lambda x, w, b: x @ w + b),
    "a full square addend": (lambda x, w, c: c + x @ w, ((5, 4), (4, 5), (5, 5)), lambda x, w, c: c + x @ w),
    "a full addend first": (lambda x, w, c: c + x @ w, ((20, 4), (4, 3), (20, 3)), lambda x, w, c: c + x @ w),
    "a transposed weight": (lambda x, w, b: O.einsum(x, w, spec="ab,cb->ac") + b.broadcast(20, 3),
                            ((20, 4), (3, 4), (3,)), lambda x, w, b: x @ w.T + b),
}


@pytest.mark.parametrize("dtype", [cg.f32, F64])
@pytest.mark.parametrize("case", list(NOT_DENSE))
def test_sums_that_are_not_a_dense_layer_are_not_fused_as_one(case, dtype):
    """Not ``affine``, on CPU (the oneDNN and transposed kernels, which take only a
    bias of the output's width) or elsewhere; the numbers are numpy's."""
    fn, shapes, ref = NOT_DENSE[case]
    prog = prepare(cg.trace(*(dtype[s] for s in shapes))(fn))
    assert "fused:affine" not in _fused_names(prog) + _fused_names(prog, cpu=True)
    rng = np.random.default_rng(9)
    args = [rng.standard_normal(s).astype(dtype.numpy) for s in shapes]
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == cg.f32 else {}
    for mod in (torch_backend.program_module(prog), torch_backend.program_module(prog, cpu=True)):
        got = mod(*[torch.as_tensor(a) for a in args])
        _assert_same([got[0].numpy()], [ref(*args)], **tol)


@pytest.mark.parametrize("relu_first", [True, False])
def test_r_of_relu_reads_the_forwards_relu_where_it_is_made_before(relu_first):
    """The fused R of relu reads ``relu(z)`` instead of ``z`` when the forward pass made it
    before (as torch's autograd does, so that ``z`` is free once relu has read it), and
    ``z`` when relu(z) comes only after the fused instruction's place."""
    step = prepare(cg.R(_dense_relu_dense()))  # (relu is scheduled after R of relu)
    k = next(j for j, ins in enumerate(step.instrs) if ins.op.name == "relu")
    relu = step.instrs[k]
    mul = next(j for j, ins in enumerate(step.instrs) if ins.op.name == "mul")
    assert mul < k
    if relu_first:
        z_at = next(j for j, ins in enumerate(step.instrs) if ins.outs[0] == relu.ins[0])
        step.instrs.insert(z_at + 1, step.instrs.pop(k))
    fused = torch_fusion.fuse(step)
    made_by = {o: ins for ins in fused.instrs for o in ins.outs}
    (rd,) = [i for i in fused.instrs if repr(i.op) == "fused:relu_rd"]
    assert rd.ins[1] == (relu.outs[0] if relu_first else relu.ins[0])
    rng = np.random.default_rng(10)
    args = [rng.standard_normal(s) for s in ((5, 7), (7,), (7, 3), (3,), (6, 5), (6, 3))]
    _assert_same(_run(torch_backend.program_module(step), args), compile_numpy(step)(*args))


@pytest.mark.parametrize("rows, cols, narrow", [(20, 2, True), (20, 15, True), (20, 16, False), (20, 1, False),
                                              (16, 4, True), (15, 4, False)])
def test_narrow_products_have_two_to_fifteen_columns(rows, cols, narrow):
    """On CPU a float64 product ``[rows, 30] @ [30, cols]`` runs transposed exactly for
    ``2 <= cols < 16`` and at least 16 rows (``fused:narrow_matmul``), and equals numpy
    either way."""
    f = O.einsum(F64[rows, 30], F64[30, cols], spec="ab,bc->ac")
    prog = prepare(f)
    assert _fused_names(prog, cpu=True) == (["fused:narrow_matmul"] if narrow else [])
    rng = np.random.default_rng(cols)
    args = [rng.standard_normal((rows, 30)), rng.standard_normal((30, cols))]
    _assert_same(_run(torch_backend.graph_module(prog, cpu=True), args), [args[0] @ args[1]])


@pytest.mark.skipif(not torch_fusion._ONEDNN, reason="this torch has no oneDNN kernels")
def test_a_wide_float32_product_is_named_for_onednn():
    f = O.einsum(cg.f32["B", 30], cg.f32[30, 40], spec="ab,bc->ac")
    assert _fused_names(prepare(f), cpu=True) == ["fused:onednn_matmul"]


# -- the torch module's source and options --------------------------------------------------------


def test_the_source_writer_names_each_value_after_what_made_it():
    """Values are named after the function, method or attribute that made them
    (``tanh_1``, ``sum_3``, ``T_4``), an index after ``getitem``, and ``v`` where the
    callable's name says nothing (no ``__name__``, or only underscores)."""
    import functools

    src = torch_backend._Source()
    x = torch_backend._Var(src, "x")

    def _(a):
        return a

    torch.tanh(x), x[0], x.sum(0), x.T
    src.call(functools.partial(torch.add, other=1.0), [x])
    src.call(_, [x])
    assert [ln.split(" = ")[0].strip() for ln in src.lines] == ["tanh_1", "getitem_2", "sum_3", "T_4", "v_5", "v_6"]


def test_the_source_writer_names_non_finite_numbers_and_objects_it_cannot_write_as_literals():
    """Infinities, NaN and torch dtypes in a rule's arguments go into the module's
    globals by name (``inf`` is no Python literal); the source computes what the rule
    does, NaN and infinities included."""
    def rule(x):
        return [torch.where(x > 0, x, float("-inf")), torch.nan_to_num(x, nan=float("inf")),
                torch.full_like(x, float("nan")), x.to(torch.float32)]

    src = torch_backend._Source()
    outs = rule(torch_backend._Var(src, "x"))
    scope = dict(src.globals)
    exec("def f(x):\n" + "\n".join(src.lines) + f"\n    return {src.ref(outs)}\n", scope)
    x = torch.tensor([1.5, -2.0, float("nan"), 0.0], dtype=torch.float64)
    for got, want in zip(scope["f"](x), rule(x)):
        assert got.dtype == want.dtype and torch.equal(got.isnan(), want.isnan())
        assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(want))


def test_the_source_writer_names_its_globals_after_what_they_are():
    """A global is named after the object's ``__name__`` or, without one, its type, in
    letters, digits and inner underscores (``g`` when nothing is left), numbered."""
    def ___():
        pass

    def _X_ray_():
        pass

    src = torch_backend._Source()
    objs = [torch.float32, float("inf"), torch.add, lambda: 0, ___, _X_ray_]
    assert [src.glob(o) for o in objs] == ["dtype_g0", "float_g1", "add_g2", "lambda_g3", "g_g4", "X_ray_g5"]
    assert src.glob(torch.add) == "add_g2" and src.globals["lambda_g3"] is objs[3]


def test_the_recorder_writes_down_calls_attributes_and_keyword_arguments():
    """A recorded value: its dunder lookups fail as on any object without them (numpy and
    hasattr probe those); a torch function given it only by keyword is still written down;
    an attribute torch tensors do not have (a field of a returned tuple, say) is read."""
    src = torch_backend._Source()
    x = torch_backend._Var(src, "x")
    with pytest.raises(AttributeError) as e:
        x.__array_interface__
    assert str(e.value) == "__array_interface__"
    assert not hasattr(x, "__array__")
    y = torch.add(torch.ones(3, dtype=torch.float64), other=x)
    field = y.some_field
    assert src.lines[-1] == f"    {field._name} = {y._name}.some_field"
    scope = dict(src.globals)
    exec("def f(x):\n" + "\n".join(src.lines[:-1]) + f"\n    return {y._name}\n", scope)
    assert torch.equal(scope["f"](torch.arange(3.0, dtype=torch.float64)), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_the_source_writer_writes_plain_values_as_literals():
    """Arguments are written as Python literals where they are ones: numbers, strings,
    None, booleans, lists, tuples (one-element ones with their comma) and dicts; a
    recorded value by its name; anything else by a global's name."""
    src = torch_backend._Source()
    x = torch_backend._Var(src, "x")
    assert src.ref([x, 2, 1.5, None, True, "s", (3,), (4, 5), {"k": x, 1: -0.5}]) == \
        "[x, 2, 1.5, None, True, 's', (3,), (4, 5), {'k': x, 1: -0.5}]"
    assert src.ref((x,)) == "(x,)" and src.ref(float("inf")) == "float_g0"


def test_a_name_nothing_reads_is_freed_where_it_is_made():
    lines = ["    a = f(x)", "    b = g(x)", "    c = h(a)"]
    assert torch_backend._free_after_last_use(lines, "c") == [
        "    a = f(x)", "    b = g(x)", "    del b", "    c = h(a)", "    del a"]


def test_freeing_reads_only_the_right_hand_side_of_each_line():
    """``del`` goes after the last line reading a name, found in the expression after the
    first `` = `` (an expression may hold `` = `` itself, in a string)."""
    lines = ["    a = f(x)", "    b = g(a, s=' = c')", "    c = h(b)"]
    assert torch_backend._free_after_last_use(lines, "c") == [
        "    a = f(x)", "    b = g(a, s=' = c')", "    del a", "    c = h(b)", "    del b"]


def test_input_names_reach_both_writers_lower_cased():
    """The module's arguments are the given input names, lower-cased (as fx keeps them),
    in the source writer's ``forward`` and in the fx graph's placeholders."""
    prog = prepare(_dense_relu_dense())
    names = ["W1", "b1", "W2", "b2", "X"]
    mod = torch_backend.program_module(prog, input_names=names)
    assert mod.code.startswith("def forward(self, w1, b1, w2, b2, x):\n")
    gm = torch_backend.graph_module(prog, input_names=names)
    assert [n.name for n in gm.graph.nodes if n.op == "placeholder"] == ["w1", "b1", "w2", "b2", "x"]


def _through_fx(monkeypatch, prim: str, prog, **options):
    """``program_module(prog, **options)`` where ``prim``'s rule branches on its traced
    input, which the source writer cannot record: the module fx traces instead."""
    real_bind = torch_backend.bind

    def branching_bind(op, backend, binding):
        rule = real_bind(op, backend, binding)
        if op.name != prim:
            return rule
        return lambda x: rule(x) if isinstance(x, torch.fx.Proxy) or bool(x.new_ones(())) else None

    monkeypatch.setattr(torch_backend, "bind", branching_bind)
    fallback = torch_backend.program_module(prog, **options)
    monkeypatch.undo()
    assert isinstance(fallback, torch.fx.GraphModule)
    return fallback


def test_the_fx_fallback_keeps_the_cpu_kernel_choices(monkeypatch):
    """Where the source writer cannot record a rule, the module is traced by fx instead,
    with the same options: on CPU the narrow output layer ([B, 3]) is still a transposed
    addmm, and the results equal those of the written source."""
    prog = prepare(_dense_relu_dense())
    fallback = _through_fx(monkeypatch, "relu", prog, cpu=True)
    assert "torch.unsqueeze(" in fallback.code
    written = torch_backend.program_module(prog, cpu=True)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in ((5, 7), (7,), (7, 3), (3,), (6, 5))]
    _assert_same(_run(fallback, args), _run(written, args), rtol=0, atol=0)


def test_the_fx_fallback_keeps_the_input_names_the_groups_and_donation(monkeypatch):
    """The fallback gets every option the writer was given: the input names, grouping
    independent ops of one kind (the two exps), in-place updates (donate=True)."""
    prog = prepare(_adam(lambda x: x, extra=lambda p, m, v, z: (O.exp(O.sin(z)), O.exp(O.cos(z)))))
    _last_update_last(prog)
    names = ["P", "M", "V", "X", "Z", "T1", "LR", "B1", "B2", "EPS"]
    fallback = _through_fx(monkeypatch, "cos", prog, input_names=names, donate=True)
    assert fallback.code.lstrip().startswith("def forward(self, p, m, v, x, z, t1, lr, b1, b2, eps):")
    assert "_foreach_exp(" in fallback.code and "_fused_adam_(" in fallback.code
    args = _adam_args(12)
    p, m, v, x, z, *h = args
    _assert_same(_run(fallback, args), [*_adam_by_hand(p, m, v, x, *h), np.exp(np.sin(z)), np.exp(np.cos(z))])


@pytest.mark.parametrize("writer", WRITERS)
def test_a_rule_may_give_its_outputs_as_one_traced_value(writer, monkeypatch):
    """A rule of several outputs may hand back one traced value (``torch.split``'s tuple,
    recorded as one value or one fx proxy): the writers index it once per output."""
    prog = prepare(cg.trace(F64[3])(lambda x: O.split(x, axis=0, sizes=(1, 2))))
    real_bind = torch_backend.bind

    def bind(op, backend, binding):
        return (lambda x: torch.split(x, [1, 2], dim=0)) if op.name == "split" else real_bind(op, backend, binding)

    monkeypatch.setattr(torch_backend, "bind", bind)
    mod = writer(prog)
    monkeypatch.undo()
    assert [g.tolist() for g in _run(mod, [np.arange(3.0)])] == [[0.0], [1.0, 2.0]]


def test_the_torch_program_on_cpu_runs_narrow_products_transposed():
    f = O.einsum(F64["B", 30], F64[30, 10], spec="ab,bc->ac")
    run = torch_backend.compile_torch(f)
    assert "torch.mm(" in run.code and "torch.t(" in run.code
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((20, 30)), rng.standard_normal((30, 10))
    _assert_same([run(a, b)[0].numpy()], [a @ b])


def test_torch_compile_given_a_backend_name_uses_that_backend():
    """``torch_compile="name"`` compiles with that ``torch.compile`` backend (here one
    registered by the test, which counts the graphs it is given and runs them as they are)."""
    from torch._dynamo import register_backend

    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    import uuid

    name = f"catgrad_test_counting_{uuid.uuid4().hex}"  # (a name is registered once per process)
    register_backend(counting, name=name)
    f = O.einsum(F64["B", 30], F64[30, 40], spec="ab,bc->ac")
    run = torch_backend.compile_torch(f, torch_compile=name)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 30)), rng.standard_normal((30, 40))
    _assert_same([run(a, b)[0].numpy()], [a @ b])
    assert len(graphs) == 1


# -- the numpy backend: its fast path, its source, its buffer plan -----------------------------------


def test_arrays_of_the_declared_dtypes_are_not_converted():
    """The common call (numpy arrays of the declared dtypes) goes straight to the
    generated function; only other arguments go through the checking conversion."""
    run = compile_numpy(_dense_relu_dense())
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in ((5, 7), (7,), (7, 3), (3,), (6, 5))]
    want = run(*[a.tolist() for a in args])  # (lists: converted)

    def no_conversion(args):
        raise AssertionError("converted")

    run._convert = no_conversion
    _assert_same(run(*args), want, rtol=0, atol=0)
    # other dtypes: float32 and integer inputs, passed as arrays of those dtypes
    @cg.trace(cg.f32[3], cg.i64[3])
    def g(x, k):
        return (x * O.cast(k, dtype=cg.f32),)

    run = compile_numpy(g)
    run._convert = no_conversion
    got = run(np.array([1.5, 2.0, -1.0], np.float32), np.array([2, 3, 4]))[0]
    assert got.dtype == np.float32 and got.tolist() == [3.0, 6.0, -4.0]


def test_a_numpy_program_made_directly_optimizes_and_reuses_buffers_by_default():
    """``NumpyProgram(program)`` and ``generate`` default to the passes and to planned
    buffers; ``compile_numpy(..., passes=False)`` runs the program as given."""
    @cg.trace(F64[4, 3])
    def f(x):
        return (O.sin(O.exp(x) * 2.0) + 1.0,)

    prog = lower(f)
    assert "constant" in [i.op.name for i in prog.instrs]
    fn = NumpyProgram(prog).specialise(((4, 3),))
    assert "constant" not in [i.op.name for i in fn.program.instrs] and "buffer(s) in one block" in fn.source
    assert "buffer(s) in one block" in numpy_backend.generate(prog, {}).source
    raw = compile_numpy(prog, passes=False).specialise(((4, 3),))
    assert [i.op.name for i in raw.program.instrs] == [i.op.name for i in prog.instrs]
    x = np.linspace(-1, 1, 12).reshape(4, 3)
    _assert_same(raw(x), [np.sin(np.exp(x) * 2.0) + 1.0])


def test_a_broadcast_returned_in_a_donated_input_is_copied_into_it():
    """A vector broadcast to a matrix, returned where the matrix input is donated: numpy
    copies it into the caller's array, which the call hands back."""
    @cg.trace(F64[2, 3], F64[3])
    def f(w, b):
        return (b.broadcast(2, 3),)

    run = compile_numpy(f, donate={0: 0})
    w, b = np.zeros((2, 3)), np.array([1.0, 2.0, 3.0])
    (got,) = run(w, b)
    assert got is w and got.tolist() == [[1.0, 2.0, 3.0]] * 2


def test_equal_entry_constants_become_single_numbers_whatever_comes_before_them():
    """Each folded constant is looked at on its own: a 0-d one and one of varied entries
    before it do not stop a constant of equal entries (read elementwise with an array of
    the full shape) from being passed as one number."""
    t = F64[2, 2]
    prog = Program([F64[()], t, t, t, t, t], [3], [5], [], {0: np.array(2.0), 1: np.array([[1.0, 2.0], [3.0, 4.0]]),
                                                          2: np.full((2, 2), 0.5)})
    prog.instrs = [Instr(O.mul.prim.op(cg.Ob(t, t)), (3, 1), (4,)), Instr(O.add.prim.op(cg.Ob(t, t)), (4, 2), (5,))]
    scalars = numpy_backend._scalar_consts(prog)
    assert list(scalars) == [2] and scalars[2].shape == () and scalars[2] == 0.5


def test_a_diagram_given_to_compile_numpy_is_optimized_once_there():
    """``compile_numpy(diagram)`` holds the program ``prepare`` makes (CSE shares the two
    tanh), and with ``passes=False`` the program as lowered."""
    @cg.trace(F64[2, 3])
    def f(x):
        return O.exp(x).reshape(6), O.tanh(x) + O.tanh(x)

    assert str(compile_numpy(f).program) == str(prepare(f)) != str(lower(f))
    assert str(compile_numpy(f, passes=False).program) == str(lower(f))


def test_a_reshape_is_written_as_the_array_method():
    @cg.trace(F64[2, 3])
    def f(x):
        return O.exp(x.reshape(6)) * 2.0,

    run = compile_numpy(f)
    src = run.source((2, 3))
    assert "a0.reshape((6,))" in src and "np.reshape" not in src and "_reshape" not in src
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(run(x)[0], np.exp(x).reshape(6) * 2.0)


def _dead_first():
    """``exp(a)`` (read by nothing), ``t = tanh(a)``, ``sin(t)``, as a program kept as it
    is (no passes remove the dead value)."""
    @cg.trace(F64[3])
    def h(a):
        return O.exp(a), O.sin(O.tanh(a))

    p = lower(h)
    assert [i.op.name for i in p.instrs] == ["exp", "tanh", "sin"]
    return Program(p.types, p.inputs, [p.outputs[1]], p.instrs)


def test_a_value_nothing_reads_holds_its_buffer_only_where_it_is_written():
    """A dead value's buffer is in use at its own instruction only, so the next buffer
    shares its memory: one array's bytes in the block."""
    prog = _dead_first()
    pl = check(prog, *predicates(prog))
    assert pl.spans == [(0, 0), (1, 2)]
    run = compile_numpy(prog, passes=False)
    assert _block_bytes(run, ((3,),)) == 3 * 8
    a = np.array([0.1, -0.2, 0.3])
    np.testing.assert_array_equal(run(a)[0], np.sin(np.tanh(a)))


def test_of_two_outputs_donated_into_one_input_the_first_written_gets_it():
    """``{0: 0, 1: 0}`` with ``a`` read by neither writer: ``exp(b)``, written first, goes
    into ``a``; ``sin(b)`` into a ring (also when the pairs are listed the other way)."""
    @cg.trace(F64[3], F64[3])
    def f(a, b):
        return O.exp(b), O.sin(b)

    prog = lower(f)
    for donate in ({0: 0, 1: 0}, {1: 0, 0: 0}):
        pl = check(prog, *predicates(prog), donate=donate, rings=True)
        assert [pl.target[j] for j in range(2)] == [("in", 0), ("ring", 0)]
    b = np.array([0.5, 1.0, 2.0])
    got = compile_numpy(prog, donate={0: 0, 1: 0})(np.zeros(3), b)
    _assert_same(got, [np.exp(b), np.sin(b)], rtol=0, atol=0)


def test_a_product_reading_a_donated_input_last_still_costs_its_bytes():
    """A matrix product cannot write over an operand it reads: reading the donated ``w``
    for the last time, it still adds its result's bytes, so the order runs ``sin(z)``
    and the ``exp`` that frees it first, as given (an elementwise kernel there would
    cost nothing and run first)."""
    @cg.trace(F64[3, 3], F64[3, 3], F64[3, 3])
    def f(w, x, z):
        s = O.sin(z)
        return O.exp(w @ x), O.exp(s)

    p = lower(f)
    assert [i.op.name for i in p.instrs] == ["sin", "einsum", "exp", "exp"]
    assert _order(p, {0: 0}) == [0, 3, 1, 2]
    rng = np.random.default_rng(0)
    w, x, z = (rng.standard_normal((3, 3)) for _ in range(3))
    got = compile_numpy(p, donate={0: 0})(w.copy(), x, z)
    _assert_same(got, [np.exp(w @ x), np.exp(np.sin(z))])


# -- the compiled step ----------------------------------------------------------------------------

IRIS = "examples/iris.cat"


def _iris_data(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), np.eye(3)[rng.integers(0, 3, n)]


def test_a_model_taking_a_key_is_compiled_as_its_keyed_form():
    """``(key, x) -> y`` (dropout) is compiled as ``keyed(model)``, the key held in the
    state: the same steps, bit for bit, as compiling ``keyed(model)`` directly."""
    from catgrad.calculus.stateful import keyed

    m = cg.loads("import nn\n"
                 "def f(k : i64[], x : f64[B, 4]) = nn.dense[8, 3](nn.dropout[50](k, tanh(nn.dense[4, 8](x))))")["f"]
    kw = dict(loss="softmax_cross_entropy", optimizer="sgd(lr=0.5)")
    a, b = cg.compile(m, **kw), cg.compile(keyed(m), **kw)
    assert a.state_names == b.state_names == ["key"]
    sa, sb = a.init(3), b.init(3)
    for k in range(3):
        x, y = _iris_data(k)
        (sa, oa), (sb, ob) = a(sa, x, y), b(sb, x, y)
        assert oa.loss == ob.loss
    for d1, d2 in ((sa.params, sb.params), (sa.model_state, sb.model_state)):
        for n in d1:
            np.testing.assert_array_equal(d1[n], d2[n])


def test_inputs_as_lists_with_labels_numpy_cannot_read():
    """``x`` a nested list and ``y`` a bfloat16 tensor (which numpy cannot read): the
    step takes ``y``'s shape from the tensor itself and trains as on float64 arrays."""
    step = cg.compile(cg.load(IRIS)["mlp"], loss="mse", optimizer="sgd(lr=0.1)", backend="torch", dtype="f64")
    x, y = _iris_data()
    y_bf16 = torch.as_tensor(y).to(torch.bfloat16)  # (one-hot: exact in bfloat16)
    s1, o1 = step(step.init(0), x.tolist(), y_bf16)
    s2, o2 = step(step.init(0), x, y)
    assert o1.loss == o2.loss
    for n in s1.params:
        assert torch.equal(s1.params[n], s2.params[n])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_donating_twin_names_the_step_inputs_as_the_step_does(backend):
    """The donating twin (``step.donating()``) is compiled with the step's input names: a
    bad input is named ``x`` by both (numpy), and both torch modules take ``p_...``,
    ``s_...``, ``x`` and ``y``."""
    step = cg.compile(cg.load(IRIS)["mlp"], loss="mse", optimizer="adam(lr=0.1)", backend=backend, dtype="f64")
    twin = step.donating()
    assert twin is not step and twin.donates
    x, y = _iris_data()
    if backend == "numpy":
        for s in (step, twin):
            with pytest.raises(cg.ShapeError, match=r"^input x: expected f64\[B, 4\] but got an array of dtype int64"):
                s(s.init(0), x.astype(np.int64), y)
    else:
        (head,) = {s._run.module.code.splitlines()[0] for s in (step, twin)}  # one and the same
        assert head.startswith("def forward(self, p_dense_w, p_dense_b, p_dense_2_w, p_dense_2_b, s_dense_w_adam_")
        assert head.endswith(", x, y):")


# -- export -----------------------------------------------------------------------------------------


def _iris_module():
    model = cg.load(IRIS)["mlp"]
    params = dict(zip(model.names, model.init(0)))
    return model, params, torch_export.CatgradModule(model, params)


def test_safetensors_bytes_hold_the_arrays_and_say_who_wrote_them():
    """The header's metadata is ``writer: catgrad`` and the given entries as strings; the
    arrays read back equal."""
    from safetensors.numpy import load

    _, params, _ = _iris_module()
    data = torch_export.safetensors_bytes(params, {"model": "mlp", "step": 3})
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    assert header["__metadata__"] == {"writer": "catgrad", "model": "mlp", "step": "3"}
    back = load(data)
    assert back.keys() == params.keys()
    for k, v in params.items():
        np.testing.assert_array_equal(back[k], v)


def test_a_module_without_a_name_is_called_model_in_its_errors():
    model, params, _ = _iris_module()
    with pytest.raises(cg.CatgradError, match=r"^no values for the parameters dense_2\.W, dense_2\.b of model$"):
        torch_export.CatgradModule(model, {k: v for k, v in params.items() if not k.startswith("dense_2")})


def test_an_exported_program_runs_on_other_batch_sizes_and_reads_back_with_its_note():
    """``export_program`` with a dynamic batch: the exported module, saved by
    ``program_bytes`` and loaded back, equals the module on batches of 1, 3 and 7 (the
    example has 3), and carries catgrad's note."""
    _, _, module = _iris_module()
    exported = torch_export.export_program(module, (torch.zeros(3, 4),))
    extra = {torch_export.MARK: ""}
    loaded = torch.export.load(io.BytesIO(torch_export.program_bytes(exported, note="iris mlp")), extra_files=extra)
    assert extra[torch_export.MARK] == "iris mlp"
    rng = np.random.default_rng(0)
    for n in (1, 3, 7):
        x = torch.as_tensor(rng.standard_normal((n, 4)), dtype=torch.float32)
        want = module(x).detach()
        assert torch.equal(exported.module()(x), want) and torch.equal(loaded.module()(x), want)


def test_distributed_without_a_process_group_says_how_to_make_one():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        pytest.skip("a process group exists in this process")
    model = cg.trace(F64["B", 3])(lambda x: cg.ops.tanh(x))
    with pytest.raises(cg.CatgradError) as info:
        cg.compile(model, loss="mse", backend="torch", distributed=True)
    assert str(info.value) == (
        "distributed=True needs a torch.distributed process group: call torch.distributed.init_process_group "
        "first, or launch with `torchrun --nproc_per_node=N -m catgrad train ... --distributed`")
    with pytest.raises(cg.CatgradError) as info:
        cg.compile(model, loss="mse", backend="numpy", distributed=True)
    assert str(info.value) == "distributed training runs on the torch backend (torch.distributed), not 'numpy'"
