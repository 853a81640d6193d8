"""Reductions: sum, max, logsumexp and softmax over chosen axes.

Their reverse derivatives broadcast the cotangent back over the reduced axes:
R[sum](x, d) = bcast d;  R[max](x, d) = bcast d * m / bcast(sum m) with m = [x == bcast max x];
R[logsumexp](x, d) = bcast d * exp(x - bcast y);  R[softmax](x, d) = y (d - bcast sum(d y)).
Over bits, ``sum`` is parity (XOR of the entries).
"""

from __future__ import annotations

import math

import numpy as np

from ..core.primitive import Sample, expect_float, normalize_axes, normalize_axis
from ..core.types import Ob, TensorType, bit, f32, f64
from ..errors import CatgradTypeError
from ._base import declare, torch
from .arith import eq

# This module's sum and max shadow the builtins on purpose: they are cg.ops.sum and cg.ops.max.


def _expect_flag(name: str, attr: str, value) -> bool:
    """A true/false attribute: refuses 3 or "yes", which bool() would quietly read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise CatgradTypeError(f"{name}: {attr} must be true or false, got {value!r}")
    return bool(value)


def _reduced(t: TensorType, axes: tuple, keepdims: bool) -> TensorType:
    if keepdims:
        return t.with_shape(tuple(1 if i in axes else d for i, d in enumerate(t.shape)))
    return t.with_shape(tuple(d for i, d in enumerate(t.shape) if i not in axes))


def _reduce_rule(name, floats_only):
    def rule(dom, axes=None, keepdims=False):
        if floats_only:
            expect_float(name, dom[0])
        return _reduced(dom[0], normalize_axes(name, dom[0], axes), _expect_flag(name, "keepdims", keepdims))

    return rule


def unreduce(d, x_type: TensorType, axes, keepdims: bool):
    """Broadcast a reduced wire ``d`` back to ``x_type`` (the adjoint of summing)."""
    axes = normalize_axes("unreduce", x_type, axes)
    if not keepdims:
        d = d.reshape(_reduced(x_type, axes, True).shape)
    return d.broadcast(x_type.shape)


# Rules for reductions are staged: the axes are normalised once, from the static input
# type, and an empty set of axes (which torch would read as "all") is the identity.


def _reducer(reduce):
    def staged(dom, axes=None, keepdims=False):
        dims = normalize_axes("reduce", dom[0], axes)
        if not dims:
            return lambda x: x
        return lambda x: reduce(x, dims, bool(keepdims))

    return staged


def _np_parity(x, dims, keep):
    return np.logical_xor.reduce(x, axis=dims, keepdims=keep)


def _torch_parity(x, dims, keep):
    return torch.remainder(torch.sum(x.to(torch.int64), dim=dims, keepdim=keep), 2).to(torch.bool)


def _samples(dtypes=(f64, f32)):
    def make():
        out = []
        for dt in dtypes:
            out += [Sample(Ob(dt[3, 4]), {}), Sample(Ob(dt[3, 4]), {"axes": 1}),
                    Sample(Ob(dt["B", 2, 3]), {"axes": (0, 2), "keepdims": True}),
                    Sample(Ob(dt["B", 3]), {"axes": -1})]
        return out

    return make


def _np_float_sum(dom, axes=None, keepdims=False):
    t = dom[0]
    dims = normalize_axes("sum", t, axes)
    if not dims:
        return lambda x: x
    lead = t.rank - len(dims)
    k = 1
    for i in dims:
        k = k * t.shape[i] if isinstance(t.shape[i], int) else 0
    if 1 < k <= 32 and 0 < lead and dims == tuple(range(lead, t.rank)):
        # a few trailing entries (pooling windows): a matrix-vector product, not numpy's
        # reduction loop, which is slow on short inner axes
        tail = (1,) * len(dims) if keepdims else ()
        ones = np.ones(k, np.dtype(t.dtype.numpy))

        def windows(x, out=None):
            o = ones if ones.dtype == x.dtype else np.ones(k, x.dtype)
            if out is None or not out.flags.c_contiguous:
                r = (x.reshape(-1, k) @ o).reshape(x.shape[:lead] + tail)
                return r if out is None else np.copyto(out, r) or out
            np.matmul(x.reshape(-1, k), o, out=out.reshape(-1))  # (a view of the contiguous out)
            return out

        windows.writes_out = True
        return windows
    keep = bool(keepdims)
    if dims == tuple(range(len(dims))) and len(dims) < t.rank and t.dtype.name in ("f32", "f64"):
        return _leading_sum(len(dims), keep)
    n_lead = 0
    while n_lead in dims:
        n_lead += 1
    if n_lead and len(dims) > n_lead and dims[n_lead:] == tuple(range(t.rank - len(dims) + n_lead, t.rank)):
        # the leading and the trailing axes, some in between kept (the bias gradient of a conv:
        # [N, C, H, W] -> [C]): two matrix-vector products, each over contiguous rows;
        # numpy's reduction over the outer axes is several times slower
        kept = t.rank - len(dims)
        shape_out = lambda x: tuple(1 if i in dims else a for i, a in enumerate(x.shape)) if keepdims \
            else x.shape[n_lead:n_lead + kept]  # noqa: E731

        ones = _ones_cache()

        def outer_and_inner(x, out=None):
            A, T = math.prod(x.shape[:n_lead]), math.prod(x.shape[n_lead + kept:])
            M = math.prod(x.shape[n_lead:n_lead + kept])
            if not x.flags.c_contiguous or not A * M * T:
                return np.add.reduce(x, axis=dims, keepdims=keep, out=out)
            rows = ones(A, x.dtype) @ x.reshape(A, M * T)
            if out is not None and out.flags.c_contiguous:
                np.matmul(rows.reshape(M, T), ones(T, x.dtype), out=out.reshape(M))
                return out
            r = (rows.reshape(M, T) @ ones(T, x.dtype)).reshape(shape_out(x))
            return r if out is None else np.copyto(out, r) or out

        outer_and_inner.writes_out = True
        return outer_and_inner

    if len(dims) == t.rank and t.dtype.name in ("f32", "f64"):
        return _full_sum(t.rank, keep)

    def total(x, out=None):  # np.sum's own reduction, without its Python wrapper; ``out=`` as numpy's
        return np.add.reduce(x, axis=dims, keepdims=keep, out=out)

    total.writes_out = True
    total.inline = f"np.add.reduce({{0}}, axis={dims!r}, keepdims={keep!r}{{out}})"  # for code generators
    return total


def _ones_cache():
    """``(n, dtype) -> np.ones(n, dtype)``, each made once: the constant operand of the
    sums written as products with a vector of ones (made per call, it was an allocation
    on every step). The vectors are only ever read."""
    made: dict = {}

    def ones(n, dtype):
        o = made.get((n, dtype))
        if o is None:
            o = made[(n, dtype)] = np.ones(n, dtype)
        return o

    return ones


def _full_sum(rank: int, keep: bool):
    """The sum of every entry (a loss over the batch) as the dot product ``x . 1`` of the
    flattened operand with ones: numpy's reduction allocates an iterator of about 0.9 kB on
    every call, BLAS nothing, and it is a third of the time at Iris's 150 x 3. Entries are
    added in BLAS's order (blocked, like numpy's pairwise sum, so as accurate)."""
    ones = _ones_cache()
    shape = (1,) * rank if keep else ()

    def full(x, out=None):
        r = np.dot(x.reshape(-1), ones(x.size, x.dtype))
        if keep:
            r = np.reshape(r, shape)
        return r if out is None else np.copyto(out, r) or out

    def inline_at(shapes, dtypes):
        """The call written out (see ``_leading_sum``); the out the generator gives is 0-d."""
        if keep:
            return None
        x = "{0}" if len(shapes[0]) == 1 else "{0}.reshape(-1)"
        return f"np.dot({x}, {{c0}}{{out}})", [np.ones(math.prod(shapes[0]), dtypes[0])]

    full.writes_out = True
    full.inline_at = inline_at
    return full


def _leading_sum(n_lead: int, keep: bool):
    """The sum over the leading ``n_lead`` axes (a bias gradient's sum over the batch)
    as the vector-matrix product ``1^T X``, ``X`` the input as an ``n x m`` matrix:
    BLAS runs down the columns, where numpy's reduction loop makes one short inner
    call per row (four to seven times slower at 150 x 20) and allocates its iterator.
    The entries are the same sums, added in BLAS's order."""
    ones = _ones_cache()

    def leading(x, out=None):
        n, m = math.prod(x.shape[:n_lead]), math.prod(x.shape[n_lead:])
        o = ones(n, x.dtype)
        if out is not None and out.flags.c_contiguous and out.dtype == x.dtype:
            np.dot(o, x.reshape(n, m), out=out.reshape(m))
            return out
        r = np.dot(o, x.reshape(n, m)).reshape((1,) * n_lead * keep + x.shape[n_lead:])
        return r if out is None else np.copyto(out, r) or out

    def inline_at(shapes, dtypes):
        """The call written out for an operand of shape ``shapes[0]``, given an ``out``
        the generator allocated (C-contiguous, the operand's dtype): a template and
        the constants it names ``{c0}``..."""
        s = shapes[0]
        n, m = math.prod(s[:n_lead]), math.prod(s[n_lead:])
        x = "{0}" if len(s) == 2 else f"{{0}}.reshape({(n, m)!r})"
        if len(s) - n_lead != 1 or keep:  # (then out= would need a reshape too)
            return None
        return f"np.dot({{c0}}, {x}{{out}})", [np.ones(n, dtypes[0])]

    leading.writes_out = True
    leading.inline_at = inline_at
    return leading


sum = declare(
    "sum",
    _reduce_rule("sum", floats_only=False),
    numpy={"float": _np_float_sum,
           **{k: _reducer(f) for k, f in (("int", lambda x, d, k: np.sum(x, axis=d, keepdims=k)),
                                       ("bit", _np_parity))}},
    torch={k: _reducer(f) for k, f in (("float", lambda x, d, k: torch.sum(x, dim=d, keepdim=k)),
                                       ("int", lambda x, d, k: torch.sum(x, dim=d, keepdim=k)),
                                       ("bit", _torch_parity))},
    needs=("dom",), staged=True,
    rd=lambda xs, ys, dys, axes=None, keepdims=False: [unreduce(dys[0], xs[0].type, axes, keepdims)],
    doc="Sum over axes (all by default); parity over bits. R: broadcast back.",
    kind="reduction", samples=lambda: _samples()() + _samples((bit,))(),
)
# sympy: object arrays, no staging (numpy's sum works on expressions)
from ._base import SYMPY  # noqa: E402

SYMPY.register(sum.prim, lambda x, axes=None, keepdims=False: np.sum(
    x, axis=None if axes is None else (axes if isinstance(axes, int) else tuple(axes)), keepdims=keepdims))


def _max_rd(xs, ys, dys, axes=None, keepdims=False):
    # d is shared equally among tied maxima (as torch.amax does): then R[max] of a
    # broadcast value is the derivative of that value, not a multiple of it.
    x = xs[0]
    mask = eq(x, unreduce(ys[0], x.type, axes, keepdims))
    count = unreduce(mask.sum(axes=axes, keepdims=keepdims), x.type, axes, keepdims)
    return [unreduce(dys[0], x.type, axes, keepdims) * (mask / count)]


def _max_rule(dom, axes=None, keepdims=False):
    if dom[0].dtype.name == "bit":
        raise CatgradTypeError(f"max is not defined on bits, got {dom[0]}")
    return _reduced(dom[0], normalize_axes("max", dom[0], axes), _expect_flag("max", "keepdims", keepdims))


max = declare(
    "max",
    _max_rule,
    numpy=_reducer(lambda x, d, k: np.max(x, axis=d, keepdims=k)),
    torch=_reducer(lambda x, d, k: torch.amax(x, dim=d, keepdim=k)),
    needs=("dom",), staged=True,
    rd=_max_rd,
    doc="Maximum over axes. R routes d to the arg-max entries, split equally among ties.",
    kind="reduction", samples=_samples(),
)


def _np_logsumexp(x, ax, keepdims):
    m = np.max(x, axis=ax, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=ax, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=ax)


def _lse_rd(xs, ys, dys, axes=None, keepdims=False):
    x = xs[0]
    from .elementwise import exp

    return [unreduce(dys[0], x.type, axes, keepdims) * exp(x - unreduce(ys[0], x.type, axes, keepdims))]


logsumexp = declare(
    "logsumexp",
    _reduce_rule("logsumexp", floats_only=True),
    numpy=_reducer(_np_logsumexp),
    torch=_reducer(lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k)),
    needs=("dom",), staged=True,
    rd=_lse_rd,
    doc="log sum exp over axes, computed stably. R: (x, d) -> d softmax(x).",
    kind="reduction", samples=_samples(),
)


def _softmax_rule(dom, axis=-1):
    expect_float("softmax", dom[0])
    normalize_axis("softmax", dom[0], axis)
    return dom[0]


def _np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax_rd(xs, ys, dys, axis=-1):
    y, d = ys[0], dys[0]
    s = (d * y).sum(axes=axis, keepdims=True).broadcast(y.shape)
    return [y * (d - s)]


softmax = declare(
    "softmax",
    _softmax_rule,
    numpy=_np_softmax,
    torch=lambda x, axis=-1: torch.softmax(x, dim=axis),
    rd=_softmax_rd,
    doc="exp(x) / sum exp(x) along one axis. R: (x, d) -> y (d - sum(d y)).",
    kind="other",
    samples=lambda: [Sample(Ob(f64[3, 4])), Sample(Ob(f32["B", 5]), {"axis": 0}), Sample(Ob(f64[2, 3, 2]), {"axis": 1})],
)


def _mean_rd(xs, ys, dys, axes=None, keepdims=False):
    # d / n on every entry of each reduced group; n is a constant when the reduced
    # sizes are fixed, else it is counted at run time (a sum of ones).
    x = xs[0]
    dims = normalize_axes("mean", x.type, axes)
    sizes = [x.shape[i] for i in dims]
    d = unreduce(dys[0], x.type, axes, keepdims)
    if all(isinstance(n, int) for n in sizes):
        n = 1
        for s in sizes:
            n *= s
        return [d * (1.0 / n)]
    count = x.const(1.0).sum(axes=dims, keepdims=True).broadcast(x.shape)
    return [d / count]


mean = declare(
    "mean",
    _reduce_rule("mean", floats_only=True),
    numpy=_reducer(lambda x, d, k: np.mean(x, axis=d, keepdims=k)),
    torch=_reducer(lambda x, d, k: torch.mean(x, dim=d, keepdim=k)),
    needs=("dom",), staged=True,
    rd=_mean_rd,
    doc="Mean over axes (all by default). R: broadcast d / n back over each reduced group.",
    kind="reduction", samples=_samples(),
)
SYMPY.register(mean.prim, lambda x, axes=None, keepdims=False: np.mean(
    x, axis=None if axes is None else (axes if isinstance(axes, int) else tuple(axes)), keepdims=keepdims))
