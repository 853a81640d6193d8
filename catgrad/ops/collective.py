"""Collectives: ops whose value depends on every process of a data-parallel run.

``all_reduce(x_1, ..., x_k)`` (mean): each process contributes its wires; every process
receives their means ``(1/N) sum_r x_{i,r}`` over the ``N`` processes, all in one
collective (the wires of one dtype travel as one buffer, as DDP's buckets do). Its reverse derivative is
itself: the map ``(x_1..x_N) -> (m, .., m)`` with ``m`` the mean is symmetric, so its
transpose is the same map, ``dx_r = (1/N) sum_r' dy_r'``.

In one process (and in the numpy and sympy backends) it is the identity. The torch
backend lowers it to ``torch.distributed.all_reduce`` (sum, then divided by the world
size: gloo on CPU, NCCL on CUDA) when a process group of more than one process is
initialised at run time, and to the identity otherwise. Constant folding may evaluate
it on constants with the identity rule, which is exact: a constant is the same in
every process, so its mean is itself.
"""

from __future__ import annotations

import numpy as np

from ..core.primitive import Sample, expect_float
from ..core.types import Ob, f32, f64
from ..errors import CatgradTypeError
from ._base import declare, samples_of


def _type(dom):
    if not dom:
        raise CatgradTypeError("all_reduce takes at least one wire")
    for t in dom:
        expect_float("all_reduce", t)
    return dom


def all_reduce_mean_torch(*xs):
    """The run-time kernel: the mean of each of ``xs`` over the default process group (new
    tensors), in one collective per dtype (the wires flattened into one buffer)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return xs
    n = dist.get_world_size()
    out = list(xs)
    for dtype in dict.fromkeys(x.dtype for x in xs):
        idx = [i for i, x in enumerate(xs) if x.dtype == dtype]
        flat = torch.cat([xs[i].detach().reshape(-1) for i in idx])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat = flat / n
        start = 0
        for i in idx:
            k = xs[i].numel()
            out[i] = flat[start : start + k].reshape(xs[i].shape)
            start += k
    return tuple(out)


def _torch_rule(*xs):
    import torch.fx as fx

    proxy = next((x for x in xs if isinstance(x, fx.Proxy)), None)
    if proxy is not None:  # tracing a graph: one call node, decided when the graph runs
        res = proxy.tracer.create_proxy("call_function", all_reduce_mean_torch, xs, {})
        outs = tuple(res[i] for i in range(len(xs)))
    else:
        outs = all_reduce_mean_torch(*xs)
    return outs if len(outs) > 1 else outs[0]


def _samples():
    return samples_of(1)() + [Sample(Ob(f64[3, 4], f64[()], f64["B", 2])), Sample(Ob(f32[2], f64[2]))]


all_reduce = declare(
    "all_reduce",
    _type,
    numpy=lambda *xs: tuple(np.array(x, copy=True) for x in xs) if len(xs) > 1 else np.array(xs[0], copy=True),
    torch=_torch_rule, torch_views=True,  # the identity in one process
    rd=lambda xs, ys, dys: _rd(xs, dys),
    doc="The mean of each wire over the processes of a data-parallel run, in one collective "
        "(the identity in one process). R: (x, d) -> all_reduce(d).",
    arity=None,
    kind="collective",
    samples=_samples,
)


def _rd(xs, dys):
    out = all_reduce(*dys)  # (R gives an unused output a zero cotangent, never None)
    return list(out) if isinstance(out, tuple) else [out]


__all__ = ["all_reduce", "all_reduce_mean_torch"]
