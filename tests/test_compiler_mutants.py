"""Cases a mutation run of ``catgrad/compiler`` found untested (mutmut 3, a sample of 400
mutants, 2026-12-01, each survivor re-run in a fresh process; docs/testing.md lists the
mutants each test kills).

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
from catgrad.compiler import Program, compile_numpy, lower, prepare, torch_backend, torch_export, torch_fusion
from catgrad.compiler.buffers import plan
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


def _adam(grad, extra=None):
    """One Adam update of a [4, 3] parameter written out term by term, as the optimizer
    builds it (``grad(x)`` the gradient it uses for the first moment; the second moment
    always reads ``x * x``); ``extra(p, z)``, if given, is a further output computed
    before the update."""
    t = F64[SHAPE]

    def bc(s):
        return s.broadcast(*SHAPE)

    @cg.trace(t, t, t, t, F64[(2,) + SHAPE], S, S, S, S, S)
    def f(p, m, v, x, z, t1, lr, b1, b2, eps):
        outs = [] if extra is None else [extra(p, z)]
        m1 = bc(b1) * m + bc(1.0 - b1) * grad(x)
        v1 = bc(b2) * v + bc(1.0 - b2) * (x * x)
        c1 = 1.0 - O.exp(t1 * O.log(b1))
        c2 = O.sqrt(1.0 - O.exp(t1 * O.log(b2)))
        p1 = p - bc(lr / c1) * m1 / (O.sqrt(v1) / bc(c2) + bc(eps))
        return (p1, m1, v1, *outs)

    return f


def _adam_args(seed=0):
    rng = np.random.default_rng(seed)
    p, m, x = (rng.standard_normal(SHAPE) for _ in range(3))
    v = rng.random(SHAPE)
    z = rng.standard_normal((2,) + SHAPE)
    return [p, m, v, x, z] + [np.array(h) for h in HYPER.values()]


def _adam_by_hand(p, m, v, g, t1, lr, b1, b2, eps):
    m1 = b1 * m + (1 - b1) * g
    v1 = b2 * v + (1 - b2) * g * g
    return p - lr / (1 - b1 ** t1) * m1 / (np.sqrt(v1) / np.sqrt(1 - b2 ** t1) + eps), m1, v1


@pytest.mark.parametrize("grad, sign", [(lambda x: x, 1.0), (lambda x: -x, -1.0)])
def test_a_hand_written_adam_update_is_one_fused_kernel_on_both_writers(grad, sign):
    """Adam written term by term is recognised (``_fused_adam``; with ``g = -x`` as
    ``maximize``) by the source writer and by the torch.fx builder alike, and both equal
    the unfused graph, numpy and the update computed by hand (float64)."""
    prog = prepare(_adam(grad))
    assert _fused_names(prog) == ["fused:adam"]
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


def _deep_plus_p(p, z):
    """``sin(tanh(sin(tanh(z)))) + p`` (``p`` broadcast over z's leading axis, by the add itself): a reader
    of ``p`` four ops deep, where the Adam update of ``p`` reads nothing computed."""
    return O.sin(O.tanh(O.sin(O.tanh(z)))) + p.broadcast(2, *SHAPE)


@pytest.mark.parametrize("writer", [torch_backend.program_module, torch_backend.graph_module])
def test_a_donated_adam_runs_after_a_deep_reader_of_a_broadcast_of_its_parameter(writer):
    """donate=True: the fused Adam writes p', m' and v' into p, m and v (``_fused_adam_``),
    on both writers; it is scheduled after every reader of ``p``, including the add
    that reads ``p`` through an implicit broadcast at depth 5 (the update itself reads
    only inputs, so by its depth alone it would run first and the add would read p')."""
    prog = prepare(_adam(lambda x: x, extra=_deep_plus_p))
    # the update's last instruction (p - ...) last in the program, after every reader of p,
    # as the step has it: only then may it write into p
    k = next(j for j, ins in enumerate(prog.instrs) if ins.outs[0] == prog.outputs[0])
    prog.instrs = prog.instrs[:k] + prog.instrs[k + 1:] + [prog.instrs[k]]
    args = _adam_args(2)
    p, m, v, x, z, *h = args
    want = [*_adam_by_hand(p, m, v, x, *h), np.sin(np.tanh(np.sin(np.tanh(z)))) + p]
    mod = writer(prog, donate=True)
    assert "_fused_adam_(" in _fx_code(mod) and "_fused_adam_(" not in _fx_code(writer(prog))
    ts = [torch.as_tensor(np.array(a)) for a in args]
    got = mod(*ts)
    _assert_same([o.numpy() for o in got], want)
    for k in range(3):  # p, m and v hold p', m' and v'
        assert torch.equal(ts[k], got[k])
