"""Joining and splitting along one axis, and lookup by index: two adjoint pairs.

- ``concat(x_1, ..., x_k, axis) : [.., n_i, ..]^k -> [.., sum n_i, ..]`` and
  ``split(x, axis, sizes)``, its inverse: ``R[concat] = split`` and ``R[split] = concat``
  (both are linear and each is the other's transpose).
- ``take(table, idx) : [V, *D] x i64[*I] -> [*I, *D]`` reads rows of a table (an
  embedding lookup) and ``scatter_add(idx, src, size=V) : i64[*I] x [*I, *D] -> [V, *D]``
  adds rows into a zero table; they are each other's transpose in the table/source
  argument: ``R[take](table, idx, d) = (scatter_add(idx, d), 0)`` and
  ``R[scatter_add](idx, src, d) = (0, take(d, idx))``. Indices carry no cotangent.
"""

from __future__ import annotations

import numpy as np

from ..core.primitive import Sample
from ..core.types import Ob, f32, f64, i64
from ..errors import CatgradTypeError, ShapeError
from ._base import declare, torch
from .linalg import _axis_size


def _concat_rule(dom, axis=0):
    if not dom:
        raise CatgradTypeError("concat needs at least one input")
    first = dom[0]
    ax, _ = _axis_size("concat", first, axis)
    total = 0
    for t in dom:
        if t.dtype != first.dtype or t.rank != first.rank:
            raise CatgradTypeError(f"concat: inputs must share a dtype and rank, got {first} and {t}")
        _, n = _axis_size("concat", t, axis)
        if any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != ax):
            raise CatgradTypeError(f"concat: inputs may differ only along axis {ax}, got {first} and {t}")
        total += n
    return first.with_shape(first.shape[:ax] + (total,) + first.shape[ax + 1:])


def _concat_rd(xs, ys, dys, axis=0):
    sizes = tuple(_axis_size("concat", x.type, axis)[1] for x in xs)
    parts = split(dys[0], axis=axis, sizes=sizes)
    return list(parts) if len(xs) > 1 else [parts]


def _norm_axis(dom, axis):
    return int(axis) % dom[0].rank


concat = declare(
    "concat",
    _concat_rule,
    numpy=lambda *xs, axis=0: np.concatenate(xs, axis=axis),
    torch=lambda *xs, dom, axis=0: torch.cat(xs, dim=_norm_axis(dom, axis)),
    torch_needs=("dom",),
    rd=_concat_rd,
    arity=None, kind="data_movement",
    samples=lambda: [Sample(Ob(f64[2, 3], f64[2, 1], f64[2, 2]), {"axis": 1}),
                     Sample(Ob(f32[2, "B"], f32[3, "B"]), {"axis": 0}),
                     Sample(Ob(f64["B", 2, 2], f64["B", 2, 1]), {"axis": -1})],
    doc="Join inputs along one axis (of fixed sizes). R: split the cotangent back.",
)


def _split_rule(dom, axis, sizes):
    t = dom[0]
    ax, n = _axis_size("split", t, axis)
    if not isinstance(sizes, (tuple, list)) or not sizes or not all(
            isinstance(s, (int, np.integer)) and s >= 0 for s in sizes):
        raise CatgradTypeError(f"split: sizes must be a list of counts, got {sizes!r}")
    if sum(sizes) != n:
        raise CatgradTypeError(f"split: sizes {tuple(sizes)} add up to {sum(sizes)} but axis {ax} of {t} has {n}")
    return Ob(*(t.with_shape(t.shape[:ax] + (int(s),) + t.shape[ax + 1:]) for s in sizes))


def _np_split(x, axis, sizes):
    parts = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    return parts[0] if len(parts) == 1 else tuple(parts)


def _torch_split(x, dom, axis, sizes):
    parts = torch.split(x, [int(s) for s in sizes], dim=_norm_axis(dom, axis))
    # (indexed by the static count: a traced split is one proxy without a length)
    return parts[0] if len(sizes) == 1 else tuple(parts[i] for i in range(len(sizes)))


split = declare(
    "split",
    _split_rule,
    numpy=_np_split,
    torch=_torch_split, torch_needs=("dom",), torch_views=True,
    rd=lambda xs, ys, dys, axis, sizes: [concat(*dys, axis=axis)],
    kind="data_movement",
    samples=lambda: [Sample(Ob(f64[2, 6]), {"axis": 1, "sizes": (3, 1, 2)}),
                     Sample(Ob(f32[5, "B"]), {"axis": 0, "sizes": (2, 3)}),
                     Sample(Ob(f64["B", 4]), {"axis": -1, "sizes": (4,)})],
    doc="Cut one axis (of fixed size) into pieces of the given sizes. R: concat the cotangents.",
)


# -- take / scatter_add -------------------------------------------------------------------------


def _take_rule(dom):
    table, idx = dom
    if idx.dtype != i64:
        raise CatgradTypeError(f"take: indices must be i64, got {idx}")
    if table.rank < 1:
        raise CatgradTypeError(f"take: the table must have rank >= 1 (rows first), got {table}")
    return table.with_shape(idx.shape + table.shape[1:])


def _check_range(idx, n):
    """Indices count from the start (0 .. n-1) or, negative, from the end (-n .. -1)."""
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)].flat[0]
        raise ShapeError(f"index {int(bad)} is out of range for a table of {n} rows (-{n} .. {n - 1})")


def _np_take(table, idx):
    _check_range(idx, table.shape[0])
    return table[idx]


take = declare(
    "take",
    _take_rule,
    numpy=_np_take,
    torch=lambda table, idx: table[idx],
    rd=lambda xs, ys, dys: [scatter_add(xs[1], dys[0], size=xs[0].shape[0]), None],
    arity=2, kind="data_movement",
    samples=lambda: [Sample(Ob(f64[5, 3], i64["B", 4]), {}, (0, 5)), Sample(Ob(f32[7], i64[3]), {}, (0, 7)),
                     Sample(Ob(f64[4, 2, 2], i64[2]), {}, (0, 4))],
    doc="Rows of a table [V, *D] at i64 indices [*I] (negative ones count from the end): [*I, *D] "
        "(an embedding lookup). "
        "R: scatter-add the cotangent into the table's rows.",
)


def _scatter_rule(dom, size):
    idx, src = dom
    if idx.dtype != i64:
        raise CatgradTypeError(f"scatter_add: indices must be i64, got {idx}")
    if src.shape[:idx.rank] != idx.shape:
        raise CatgradTypeError(f"scatter_add: the source {src} must start with the index shape {idx.shape}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 0:
        raise CatgradTypeError(f"scatter_add: size must be a count of rows, got {size!r}")
    return src.with_shape((int(size),) + src.shape[idx.rank:])


def _np_scatter_add(idx, src, size, shape, dtype):
    _check_range(idx, size)
    out = np.zeros(shape, dtype=dtype)
    np.add.at(out, idx.reshape(-1), src.reshape((-1,) + tuple(shape[1:])))
    return out


def _torch_scatter_add(idx, src, dom, size, shape):
    rows = src.flatten(0, dom[0].rank - 1) if dom[0].rank else src.unsqueeze(0)
    base = rows.new_zeros(tuple(shape))
    return torch.index_add(base, 0, torch.remainder(idx.reshape(-1), int(size)), rows)


scatter_add = declare(
    "scatter_add",
    _scatter_rule,
    numpy=_np_scatter_add, needs=("shape", "dtype"),
    torch=_torch_scatter_add, torch_needs=("dom", "shape"),
    rd=lambda xs, ys, dys, size: [None, take(dys[0], xs[0])],
    arity=2, kind="other",
    samples=lambda: [Sample(Ob(i64["B", 4], f64["B", 4, 3]), {"size": 5}, (0, 5)),
                     Sample(Ob(i64[3], f32[3]), {"size": 4}, (0, 4))],
    doc="Add the rows of src [*I, *D] into a zero table [size, *D] at i64 indices [*I]. R: take.",
)
