"""Collectives: ops whose value depends on every process of a data-parallel run.

``all_reduce(x)`` (mean): each process contributes its ``x``; every process receives
the mean ``(1/N) sum_r x_r`` over the ``N`` processes. Its reverse derivative is
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

from ..core.primitive import expect_arity, expect_float
from ._base import declare, samples_of


def _type(dom):
    expect_arity("all_reduce", dom, 1)
    expect_float("all_reduce", dom[0])
    return dom[0]


def all_reduce_mean_torch(x):
    """The run-time kernel: the mean of ``x`` over the default process group (a new tensor)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return x
    n = dist.get_world_size()
    if n == 1:
        return x
    out = x.detach().clone().contiguous()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / n


def _torch_rule(x):
    import torch.fx as fx

    if isinstance(x, fx.Proxy):  # tracing a graph: one call node, decided when the graph runs
        return x.tracer.create_proxy("call_function", all_reduce_mean_torch, (x,), {})
    return all_reduce_mean_torch(x)


all_reduce = declare(
    "all_reduce",
    _type,
    numpy=lambda x: np.array(x, copy=True),
    torch=_torch_rule,
    rd=lambda xs, ys, dys: [all_reduce(dys[0])],
    doc="The mean of x over the processes of a data-parallel run (the identity in one process). "
        "R: (x, d) -> all_reduce(d).",
    kind="collective",
    samples=samples_of(1),
)

__all__ = ["all_reduce", "all_reduce_mean_torch"]
