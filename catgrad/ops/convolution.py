"""Convolution and pooling on NCHW-style wires ``[N, C, *S]`` with ``n`` spatial axes.

Geometry (per spatial axis, as torch): kernel ``K``, stride ``s``, padding ``p``
(zeros on both sides), dilation ``d``. The window spans ``E = d (K - 1) + 1`` padded
pixels and there are ``O = (S + 2p - E) // s + 1`` window positions.

Two data-movement primitives form an adjoint pair, as slice and pad do:

- ``unfold : [N, C, *S] -> [N, C, *O, *K]`` copies out every window (im2col);
  ``fill`` is the value of padded pixels (``-inf`` for max pooling);
- ``fold : [N, C, *O, *K] -> [N, C, *S]`` adds every window entry back onto the
  pixel it came from (col2im); pixels in the padding are dropped.

Both are linear in the entries (``fill`` aside), and ``R[unfold] = fold``,
``R[fold] = unfold``. The other ops' reverse derivatives are written with them, so
R stays closed:

- ``conv(x, w)`` with ``w : [Cout, C / groups, *K]``:
  ``y[n, o, P] = sum_{c, k} w[o, c, k] xpad[n, g(o) C/groups + c, s P + d k]``.
  Its reverse derivative is convolution again. ``dw`` is the correlation of ``x`` with
  ``dy``: a convolution of ``x`` (batch and channel axes swapped) by ``dy`` (likewise),
  with stride ``d`` and dilation ``s``, cut to ``K`` (groups = 1; with groups it is
  ``einsum(dy, unfold(x))``). ``dx`` is the transposed convolution: for stride 1 a
  convolution of ``dy`` with the flipped kernel (channel axes swapped per group) and
  padding ``d (K - 1) - p``; otherwise ``fold(einsum(dy, w))``, col2im of the
  per-window products;
- ``maxpool = max over the window axes of unfold(x, fill=-inf)``: R routes the
  cotangent to the arg-max of each window, split equally among ties (as ``max``);
- ``avgpool = sum over the window axes of unfold(x) / prod(K)`` (padded zeros count,
  as torch's default): R spreads ``dy / prod(K)`` over each window.

The numpy kernels loop over kernel offsets (or output positions) at most, never over
pixels: windows are a strided view (``sliding_window_view``), copied out by unfold, and
conv is BLAS products over cache-sized blocks of its im2col matrix, laid out batch-first
or (for the weight gradient's batch-swapped operands) channels-first.
"""

from __future__ import annotations

import itertools
import math
import string

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.primitive import Sample, expect_float
from ..core.types import Ob, TensorType, f32, f64
from ..errors import CatgradTypeError, SymbolicSizeError
from ._base import declare, torch
from .arith import eq
from .linalg import einsum
from .linalg import slice as slice_
from .shape import concat

# -- geometry ------------------------------------------------------------------------------


def _tuple(name: str, what: str, v, n: int, low: int) -> tuple:
    vals = (v,) * n if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    if not isinstance(vals, (tuple, list)) or len(vals) != n or not all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= low for a in vals):
        raise CatgradTypeError(f"{name}: {what} must be an int >= {low} or {n} of them (one per spatial axis), got {v!r}")
    return tuple(int(a) for a in vals)


def geometry(name: str, t: TensorType, kernel, stride, padding, dilation):
    """Normalised ``(K, s, p, d, S, O)`` tuples for a window op on ``t = [N, C, *S]``,
    or a :class:`CatgradTypeError` naming what does not fit."""
    n = t.rank - 2
    if n < 1:
        raise CatgradTypeError(f"{name} needs an input [N, C, *spatial] with at least one spatial axis, got {t}")
    S = t.shape[2:]
    if not all(isinstance(a, int) for a in S):
        raise SymbolicSizeError(f"{name}: the spatial sizes of {t} must be fixed numbers")
    K = _tuple(name, "kernel", kernel, n, 1)
    s = _tuple(name, "stride", K if stride is None else stride, n, 1)
    p = _tuple(name, "padding", padding, n, 0)
    d = _tuple(name, "dilation", dilation, n, 1)
    O = []
    for i in range(n):
        span = d[i] * (K[i] - 1) + 1
        if span > S[i] + 2 * p[i]:
            raise CatgradTypeError(
                f"{name}: the kernel spans {span} pixels on spatial axis {i} but the padded input has only "
                f"{S[i] + 2 * p[i]} (size {S[i]} + 2 x padding {p[i]}) in {t}")
        O.append((S[i] + 2 * p[i] - span) // s[i] + 1)
    return K, s, p, d, tuple(S), tuple(O)


def _letters(n: int, start: str) -> str:
    i = string.ascii_uppercase.index(start)
    return string.ascii_uppercase[i:i + n]


def _np_padder(p, fill=0.0):
    """x [N, C, *S] -> the same with p[i] entries of ``fill`` on both sides of spatial axis i
    (np.pad does the same, several times slower on small images)."""
    if not any(p):
        return lambda x: x
    inner = (slice(None),) * 2 + tuple(slice(a, -a if a else None) for a in p)

    def run(x):
        out = np.full(x.shape[:2] + tuple(n + 2 * a for n, a in zip(x.shape[2:], p)), fill, dtype=x.dtype)
        out[inner] = x
        return out

    return run


def _copy(dst, src):
    """``np.copyto(dst, src)`` for arrays of one shape and dtype, moving 8 or 16 bytes
    at a time where both keep that many contiguous: between the image and window
    layouts the contiguous runs are a window's row (2 or 3 numbers), and numpy's copy
    loop costs per run, not per byte (a 2x2 window copy is about 4x faster as int64)."""
    it = src.dtype.itemsize
    if src.ndim and src.shape[-1] > 1 and src.dtype == dst.dtype and src.strides[-1] == dst.strides[-1] == it:
        for wide in (np.dtype(np.complex128), np.dtype(np.int64)):
            w = wide.itemsize
            if w > it and (src.shape[-1] * it) % w == 0 and all(
                    a % w == 0 for arr in (src, dst) for a in arr.strides[:-1] + (arr.ctypes.data,)):
                np.copyto(dst.view(wide), src.view(wide))
                return dst
    np.copyto(dst, src)
    return dst


# -- unfold / fold ---------------------------------------------------------------------------


def _unfold_rule(dom, kernel, stride=1, padding=0, dilation=1, fill=0.0):
    t = dom[0]
    K, s, p, d, S, O = geometry("unfold", t, kernel, stride, padding, dilation)
    if not isinstance(fill, (int, float)) or isinstance(fill, bool):
        raise CatgradTypeError(f"unfold: fill must be a number, got {fill!r}")
    return t.with_shape(t.shape[:2] + O + K)


def _np_windows(dom, kernel, stride=1, padding=0, dilation=1, fill=0.0):
    """x -> the strided view [N, C, *O, *K] of its windows (of a padded copy where padding)."""
    K, s, p, d, S, O = geometry("unfold", dom[0], kernel, stride, padding, dilation)
    n = len(K)
    E = tuple(d[i] * (K[i] - 1) + 1 for i in range(n))
    pad = _np_padder(p, fill)
    axes = tuple(range(2, 2 + n))
    index = (slice(None),) * 2 + tuple(slice(None, None, a) for a in s) + tuple(slice(None, None, a) for a in d)

    return lambda x: sliding_window_view(pad(x), E, axis=axes)[index]


def _np_unfold(dom, kernel, stride=1, padding=0, dilation=1, fill=0.0):
    windows = _np_windows(dom, kernel, stride, padding, dilation, fill)

    def run(x, out=None):
        # a copy, not the strided view: what reads the windows (the comparison in R[maxpool],
        # the grouped weight gradient's einsum) then runs over contiguous memory
        w = windows(x)
        return _copy(np.empty(w.shape, w.dtype) if out is None else out, w)

    run.writes_out = True
    return run


def _torch_unfold(x, dom, kernel, stride=1, padding=0, dilation=1, fill=0.0):
    K, s, p, d, S, O = geometry("unfold", dom[0], kernel, stride, padding, dilation)
    if any(p):
        x = torch.nn.functional.pad(x, tuple(a for q in reversed(p) for a in (q, q)), value=float(fill))
    for i in range(len(K)):
        x = x.unfold(2 + i, d[i] * (K[i] - 1) + 1, s[i])  # the window becomes the last axis
        if d[i] > 1:
            x = x[..., ::d[i]]
    return x


def _fold_rule(dom, kernel, size, stride=1, padding=0, dilation=1):
    t = dom[0]
    n = len(size) if isinstance(size, (tuple, list)) else -1
    if n < 1 or not all(isinstance(a, (int, np.integer)) and a >= 1 for a in size):
        raise CatgradTypeError(f"fold: size must list the output's spatial sizes, got {size!r}")
    if t.rank != 2 + 2 * n:
        raise CatgradTypeError(f"fold: size {tuple(size)} has {n} spatial axes, so the input needs rank {2 + 2 * n}, got {t}")
    out = t.with_shape(t.shape[:2] + tuple(int(a) for a in size))
    K, s, p, d, S, O = geometry("fold", out, kernel, stride, padding, dilation)
    if t.shape[2:] != O + K:
        raise CatgradTypeError(f"fold: windows of {out} with this geometry have type [N, C, *{O}, *{K}], got {t}")
    return out


def _np_fold(dom, kernel, size, stride=1, padding=0, dilation=1):
    t = dom[0]
    out_t = t.with_shape(t.shape[:2] + tuple(size))
    K, s, p, d, S, O = geometry("fold", out_t, kernel, stride, padding, dilation)
    n = len(K)
    Sp = tuple(S[i] + 2 * p[i] for i in range(n))
    crop = tuple(slice(p[i], p[i] + S[i]) for i in range(n))
    offsets = list(itertools.product(*(range(a) for a in K)))
    places = [tuple(slice(k[i] * d[i], k[i] * d[i] + s[i] * (O[i] - 1) + 1, s[i]) for i in range(n))
              for k in offsets]
    kfirst = tuple(range(2 + n, 2 + 2 * n)) + tuple(range(2, 2 + n)) + (0, 1)
    back = (n, n + 1) + tuple(range(n))
    tiles = all(s[i] == K[i] and d[i] == 1 for i in range(n))  # windows tile the input: no overlaps
    inter = tuple(a for i in range(n) for a in (2 + i, 2 + n + i))

    exact = tiles and all(O[i] * K[i] == S[i] and p[i] == 0 for i in range(n))

    def run(cols, out=None):
        N, C = cols.shape[:2]
        if exact:  # one copy, straight into out
            if out is None or not out.flags.c_contiguous:
                res = np.empty((N, C) + S, cols.dtype)
                _copy(res.reshape((N, C) + tuple(a for i in range(n) for a in (O[i], K[i]))),
                      cols.transpose((0, 1) + inter))
                return res if out is None else np.copyto(out, res) or out
            _copy(out.reshape((N, C) + tuple(a for i in range(n) for a in (O[i], K[i]))),
                  cols.transpose((0, 1) + inter))
            return out
        res = fill(cols, N, C)
        return res if out is None else np.copyto(out, res) or out

    def fill(cols, N, C):
        if tiles:  # [N, C, *O, *K] -> [N, C, O1, K1, O2, K2, ...] is the padded image itself
            img = cols.transpose((0, 1) + inter).reshape((N, C) + tuple(O[i] * K[i] for i in range(n)))
            if img.shape[2:] == Sp:
                return img[(slice(None),) * 2 + crop]
            out = np.zeros((N, C) + Sp, dtype=cols.dtype)
            out[(slice(None),) * 2 + tuple(slice(0, a) for a in img.shape[2:])] = img
            return out[(slice(None),) * 2 + crop]
        # accumulate in [*S, N, C] so every add moves rows of N C contiguous numbers
        slabs = np.ascontiguousarray(cols.transpose(kfirst))  # [*K, *O, N, C]
        slabs = slabs.reshape((len(offsets),) + O + (N, C))
        out = np.zeros(Sp + (N, C), dtype=cols.dtype)
        for j, at in enumerate(places):  # one strided add per kernel offset
            out[at] += slabs[j]
        return np.ascontiguousarray(out[crop].transpose(back))

    run.writes_out = True
    return run


def _torch_dilate(c, axis: int, s: int, length: int):
    """Insert s - 1 zeros after each entry along ``axis``; keep ``length`` entries."""
    if s == 1:
        return c
    c = torch.stack([c] + [torch.zeros_like(c)] * (s - 1), dim=axis + 1).flatten(axis, axis + 1)
    return torch.narrow(c, axis, 0, length)


def _torch_fold(cols, dom, kernel, size, stride=1, padding=0, dilation=1):
    t = dom[0]
    out_t = t.with_shape(t.shape[:2] + tuple(size))
    K, s, p, d, S, O = geometry("fold", out_t, kernel, stride, padding, dilation)
    n = len(K)
    if n == 2:  # torch's own col2im: [N, C*K, L]
        c = cols.permute(0, 1, 4, 5, 2, 3).flatten(1, 3).flatten(2, 3)
        return torch.nn.functional.fold(c, tuple(S), K, dilation=d, padding=p, stride=s)
    total = None
    for k in itertools.product(*(range(a) for a in K)):
        c = cols[(Ellipsis,) + k]
        pads = []
        for i in range(n):
            length = s[i] * (O[i] - 1) + 1
            c = _torch_dilate(c, 2 + i, s[i], length)
            pads.append((k[i] * d[i], S[i] + 2 * p[i] - k[i] * d[i] - length))
        c = torch.nn.functional.pad(c, tuple(a for q in reversed(pads) for a in q))
        total = c if total is None else total + c
    for i in range(n):
        if p[i]:
            total = torch.narrow(total, 2 + i, p[i], S[i])
    return total


def _window_samples(op: str):
    def make():
        out = [Sample(Ob(f64[2, 3, 7]), {"kernel": 3}),
               Sample(Ob(f64["B", 2, 6, 5]), {"kernel": (2, 3), "stride": (2, 1), "padding": (1, 0)}),
               Sample(Ob(f32[2, 1, 7, 6]), {"kernel": 2, "dilation": 2, "padding": 1, "stride": 2}),
               Sample(Ob(f64[1, 2, 4, 3, 5]), {"kernel": (2, 2, 3), "stride": (1, 2, 1)}),
               Sample(Ob(f64[2, 2, 8]), {"kernel": 3, "stride": 2, "padding": 1})]  # (1-d, padded)
        if op == "fold":  # the windows of those inputs
            out = [Sample(Ob(unfold.prim.op(s.dom, **s.attrs).cod[0]),
                          {**s.attrs, "size": s.dom[0].shape[2:]}) for s in out]
        return out

    return make


unfold = declare(
    "unfold",
    _unfold_rule,
    numpy=_np_unfold, needs=("dom",), staged=True,
    torch=_torch_unfold, torch_needs=("dom",), torch_views=True,
    rd=lambda xs, ys, dys, kernel, stride=1, padding=0, dilation=1, fill=0.0: [
        fold(dys[0], kernel=kernel, size=xs[0].shape[2:], stride=stride, padding=padding, dilation=dilation)],
    kind="data_movement", samples=_window_samples("unfold"),
    doc="Windows of [N, C, *S] as [N, C, *O, *K] (im2col); padded pixels hold fill. R: fold.",
)

fold = declare(
    "fold",
    _fold_rule,
    numpy=_np_fold, needs=("dom",), staged=True,
    torch=_torch_fold, torch_needs=("dom",),
    rd=lambda xs, ys, dys, kernel, size, stride=1, padding=0, dilation=1: [
        unfold(dys[0], kernel=kernel, stride=stride, padding=padding, dilation=dilation)],
    kind="data_movement", samples=_window_samples("fold"),
    doc="Sum windows [N, C, *O, *K] back onto [N, C, *size] (col2im), dropping padding. R: unfold.",
)

# -- convolution ------------------------------------------------------------------------------


def _conv_geometry(dom, stride, padding, dilation, groups):
    x, w = dom
    if x.rank < 3 or w.rank != x.rank:
        raise CatgradTypeError(f"conv needs x : [N, C, *spatial] and w : [Cout, C / groups, *kernel] of one rank, "
                               f"got {x} and {w}")
    if x.dtype != w.dtype:
        raise CatgradTypeError(f"conv: input and weight must share a dtype, got {x} and {w}")
    expect_float("conv", x)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise CatgradTypeError(f"conv: groups must be an int >= 1, got {groups!r}")
    C, Co = x.shape[1], w.shape[0]
    if not all(isinstance(a, int) for a in w.shape[2:]):
        raise SymbolicSizeError(f"conv: the kernel sizes must be fixed numbers, got {w}")
    if groups == 1:  # channels may be names (the weight gradient convolves over the batch)
        if w.shape[1] != C:
            raise CatgradTypeError(f"conv: the weight {w} should have {C} input channels, as {x} has")
        return geometry("conv", x, w.shape[2:], stride, padding, dilation)
    if not isinstance(C, int) or not isinstance(Co, int) or not isinstance(w.shape[1], int):
        raise SymbolicSizeError(f"conv: with groups, channel sizes must be fixed numbers, got {x} and {w}")
    if C % groups or Co % groups:
        raise CatgradTypeError(f"conv: {C} input and {Co} output channels must both divide by groups = {groups}")
    if w.shape[1] != C // groups:
        raise CatgradTypeError(f"conv: the weight {w} should have {C // groups} input channels "
                               f"(= {C} channels of {x} / groups {groups})")
    return geometry("conv", x, w.shape[2:], stride, padding, dilation)


def _conv_rule(dom, stride=1, padding=0, dilation=1, groups=1):
    K, s, p, d, S, O = _conv_geometry(dom, stride, padding, dilation, groups)
    return dom[0].with_shape((dom[0].shape[0], dom[1].shape[0]) + O)


_CHUNK = 1 << 18  # numbers in one im2col block: about 1 MB in float32, so it is still in cache for the product


def _np_conv(dom, stride=1, padding=0, dilation=1, groups=1):
    K, s, p, d, S, O = _conv_geometry(dom, stride, padding, dilation, groups)
    n, g = len(K), int(groups)
    P, Kp = math.prod(O), math.prod(K)
    Sp = tuple(a + 2 * b for a, b in zip(S, p))
    inner = tuple(slice(a, a + b) for a, b in zip(p, S))  # the image inside its zero border
    # im2col, one strided slab copy per kernel offset (windows over the output positions)
    # or per output position (windows over the kernel offsets), whichever are fewer: a
    # loop over the kernel or the output, never over pixels
    if Kp <= P:
        reads = [tuple(slice(k[i] * d[i], k[i] * d[i] + s[i] * (O[i] - 1) + 1, s[i]) for i in range(n))
                 for k in itertools.product(*(range(a) for a in K))]
    else:
        reads = [tuple(slice(q[i] * s[i], q[i] * s[i] + d[i] * (K[i] - 1) + 1, d[i]) for i in range(n))
                 for q in itertools.product(*(range(a) for a in O))]
    by_kernel = Kp <= P
    every = (slice(None),) * n
    spatial = tuple(range(2, 2 + n))

    scratch: dict = {}  # working arrays kept between calls, by shape: fresh memory costs page faults

    def work(name, shape, dtype, zero=False):
        a = scratch.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = scratch[name] = (np.zeros if zero else np.empty)(shape, dtype)
        return a

    def padded(name, x, order, shape):
        """x's values with the spatial axes in the middle and a zero border, as ``order`` arranges its axes."""
        if not any(p):
            return x.transpose(order)
        xp = work(name, shape, x.dtype, zero=True)  # the border stays zero: only the inside is written
        xp[(slice(None),) + inner] = x.transpose(order)
        return xp

    def im2col(cols, xp, offsets_first):
        """The windows of xp[lead, *Sp, run] into cols[lead, *O, *K, run], or
        cols[lead, *K, *O, run] when ``offsets_first``."""
        for j, r in enumerate(reads):
            at = tuple(int(a) for a in np.unravel_index(j, K if by_kernel else O))
            mine = by_kernel == offsets_first  # the loop index comes first in cols' layout
            cols[(slice(None),) + (at + every if mine else every + at)] = xp[(slice(None),) + r]

    def batch_first(x, w, out):
        """Rows (n, position), columns (offset, c): xpad channels-last, one product per block of images."""
        N, C, Co = x.shape[0], x.shape[1], w.shape[0]
        xl = padded("xl", x, (0,) + spatial + (1,), (N,) + Sp + (C,))
        wk = w.transpose((0,) + spatial + (1,)).reshape(Co, Kp * C).T  # [(offset, c), Co]
        step = max(1, min(N, _CHUNK // (P * Kp * C)))
        for a in range(0, N, step):
            b = min(N, a + step)
            # (the working arrays are made for a whole block; a last, shorter block uses the
            # front of them, so no call makes new ones when N is not a multiple of the block)
            cols = work("cols", (step,) + O + K + (C,), x.dtype)[:b - a]
            im2col(cols, xl[a:b], False)
            y = np.matmul(cols.reshape((b - a) * P, Kp * C), wk, out=work("y", (step * P, Co), x.dtype)[:(b - a) * P])
            np.copyto(out[a:b], np.moveaxis(y.reshape((b - a,) + O + (Co,)), -1, 1))
        return out

    def channels_first(x, w, out):
        """Rows Cout, columns (position, n), contracting (c, offset): xpad with the batch
        last, the weight read as it comes ([Cout, C, *K] runs of K). Taken for the weight
        gradient of R[conv]: a conv of the batch-swapped input (a view whose axis 0 runs
        faster than axis 1) by the batch-swapped cotangent (often the larger operand).
        Both are then read along their runs, where the batch-first product would gather
        them across the batch (4x faster for the digits CNN's first layer, 1.2x for its
        second)."""
        N, C, Co = x.shape[0], x.shape[1], w.shape[0]
        xb = padded("xb", x, (1,) + spatial + (0,), (C,) + Sp + (N,))
        wm = w.reshape(Co, C * Kp)  # [Co, (c, offset)]
        step = max(1, min(C, _CHUNK // (P * Kp * N)))
        y = work("yb", (Co, P * N), x.dtype)
        for a in range(0, C, step):
            b = min(C, a + step)
            cols = work("colsb", (step,) + K + O + (N,), x.dtype)[:b - a]  # (as in batch_first)
            im2col(cols, xb[a:b], True)
            part = cols.reshape((b - a) * Kp, P * N)
            if a == 0:
                np.matmul(wm[:, a * Kp:b * Kp], part, out=y)
            else:
                y += np.matmul(wm[:, a * Kp:b * Kp], part, out=work("yb2", (Co, P * N), x.dtype))
        np.copyto(out, np.moveaxis(y.reshape((Co,) + O + (N,)), -1, 0))
        return out

    def grouped(x, w, out):
        N, C, Co, Cg = x.shape[0], x.shape[1], w.shape[0], w.shape[1]
        xl = padded("xl", x, (0,) + spatial + (1,), (N,) + Sp + (C,))
        cols = work("cols", (N,) + O + K + (C,), x.dtype)
        im2col(cols, xl, False)
        cols = cols.reshape(N * P, Kp, g, Cg).transpose(2, 0, 1, 3).reshape(g, N * P, Kp * Cg)
        wk = w.transpose((0,) + spatial + (1,)).reshape(g, Co // g, Kp * Cg).transpose(0, 2, 1)
        y = np.matmul(cols, wk).reshape((g, N) + O + (Co // g,))  # [g, N, *O, Co/g]
        np.copyto(out, y.transpose((1, 0, 2 + n) + tuple(range(2, 2 + n))).reshape(out.shape))
        return out

    def run(x, w, out=None):
        if out is None:  # always fresh memory: the working arrays are reused by the next call
            out = np.empty((x.shape[0], w.shape[0]) + O, np.result_type(x, w))
        if g > 1:
            return grouped(x, w, out)
        swapped = x.shape[0] > 1 and x.shape[1] > 1 and x.strides[0] < x.strides[1]
        if swapped or w.size > x.size:  # see channels_first
            return channels_first(x, w, out)
        return batch_first(x, w, out)

    run.writes_out = True
    return run


def _torch_conv(x, w, dom, stride=1, padding=0, dilation=1, groups=1):
    K, s, p, d, S, O = _conv_geometry(dom, stride, padding, dilation, groups)
    fn = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[len(K)]
    # (with one input channel both layouts look alike to torch, so the output is asked for too)
    return _channels_last(fn(_channels_last(x, dom[0]), w, stride=s, padding=p, dilation=d, groups=int(groups)),
                          dom[0])


def _channels_last(x, t: TensorType):
    """An image batch [N, C, H, W] stored channels-last (the same values): torch's CPU
    convolution and pooling kernels are much faster on it (they vectorise over the
    channels), and the ops that follow keep the layout. Other ranks (of the wire type
    ``t``) are left as they are."""
    return x.contiguous(memory_format=torch.channels_last) if t.rank == 4 else x


def _flip(w, axes):
    """Reverse ``w`` along the given axes (of fixed sizes), as slices joined back."""
    for a in axes:
        if w.shape[a] > 1:
            w = concat(*[slice_(w, axis=a, start=i, stop=i + 1) for i in reversed(range(w.shape[a]))], axis=a)
    return w


def _conv_rd(xs, ys, dys, stride=1, padding=0, dilation=1, groups=1):
    x, w = xs
    dy = dys[0]
    K, s, p, d, S, O = _conv_geometry((x.type, w.type), stride, padding, dilation, groups)
    n, g = len(K), int(groups)
    N, C, Co = x.shape[0], x.shape[1], w.shape[0]
    Cg, Cog = (C, Co) if g == 1 else (C // g, Co // g)  # (channels may be names when g = 1)
    spatial = tuple(range(2, 2 + n))
    swap = (1, 0) + spatial
    geo = dict(kernel=K, stride=s, padding=p, dilation=d)
    q = tuple(d[i] * (K[i] - 1) - p[i] for i in range(n))
    if all(a == 1 for a in s) and all(a >= 0 for a in q):
        # dx: the transposed convolution, a convolution of dy with the flipped kernel whose
        # channel axes are swapped within each group
        if g == 1:
            wt = w.transpose(swap)
        else:
            wt = w.reshape((g, Cog, Cg) + K).transpose((0, 2, 1) + tuple(range(3, 3 + n))).reshape((C, Cog) + K)
        dx = conv(dy, _flip(wt, spatial), padding=q, dilation=d, groups=g)
    else:  # col2im of the per-window products
        Ol, Kl = _letters(n, "P"), _letters(n, "U")
        cols = einsum(dy.reshape((N, g, Cog) + O), w.reshape((g, Cog, Cg) + K), spec=f"ngo{Ol},goc{Kl}->ngc{Ol}{Kl}")
        dx = fold(cols.reshape((N, C) + O + K), size=S, **geo)
    if g == 1:
        # dw: the correlation of x with dy, a convolution with the batch as channels
        r = conv(x.transpose(swap), dy.transpose(swap), stride=d, padding=p, dilation=s)  # [C, Co, *K']
        for i in range(n):  # K' >= K: the entries past K belong to no weight
            if r.shape[2 + i] != K[i]:
                r = slice_(r, axis=2 + i, start=0, stop=K[i])
        dw = r.transpose(swap)
    else:
        Ol, Kl = _letters(n, "P"), _letters(n, "U")
        win = unfold(x, **geo).reshape((N, g, Cg) + O + K)
        dw = einsum(dy.reshape((N, g, Cog) + O), win, spec=f"ngo{Ol},ngc{Ol}{Kl}->goc{Kl}").reshape(w.shape)
    return [dx, dw]


def _conv_samples():
    out = []
    for dt in (f64, f32):
        out += [Sample(Ob(dt["B", 2, 7], dt[3, 2, 3]), {}),
                Sample(Ob(dt[2, 4, 6, 5], dt[6, 2, 3, 2]), {"stride": (2, 1), "padding": 1, "groups": 2}),
                Sample(Ob(dt[2, 1, 8, 8], dt[4, 1, 3, 3]), {"padding": 2, "dilation": 2})]
    out.append(Sample(Ob(f64[1, 2, 4, 5, 4], f64[2, 2, 2, 3, 2]), {"stride": (1, 2, 1), "padding": (0, 1, 1)}))
    return out


conv = declare(
    "conv",
    _conv_rule,
    numpy=_np_conv, needs=("dom",), staged=True,
    torch=_torch_conv, torch_needs=("dom",),
    rd=_conv_rd,
    arity=2, kind="contraction", samples=_conv_samples,
    doc="N-d convolution (torch's cross-correlation), x : [N, C, *S], w : [Cout, C/groups, *K], with stride, "
        "padding, dilation and groups. R is convolution again: the transposed convolution for x, the correlation "
        "of x with dy for w.",
)

# -- pooling ------------------------------------------------------------------------------------


def _pool_rule(name):
    def rule(dom, kernel, stride=None, padding=0, dilation=1):
        expect_float(name, dom[0])
        K, s, p, d, S, O = geometry(name, dom[0], kernel, stride, padding, dilation)
        if any(2 * p[i] > K[i] for i in range(len(K))):
            raise CatgradTypeError(f"{name}: padding {p} must be at most half the kernel {K}")
        for i in range(len(K)):  # (with dilation a window can still miss the input)
            for o in range(O[i]):
                if not any(0 <= o * s[i] - p[i] + d[i] * k < S[i] for k in range(K[i])):
                    raise CatgradTypeError(f"{name}: window {o} on spatial axis {i} of {dom[0]} lies wholly in the "
                                           f"padding (kernel {K}, stride {s}, padding {p}, dilation {d})")
        return dom[0].with_shape(dom[0].shape[:2] + O)

    return rule


def _window_axes(t: TensorType) -> tuple:
    n = t.rank - 2
    return tuple(range(2 + n, 2 + 2 * n))


def _np_pool(combine, fill, mean):
    """Reduce the windows offset by offset (a loop over the kernel, not the pixels)."""
    def staged(dom, kernel, stride=None, padding=0, dilation=1):
        K, s, p, d, S, O = geometry("pool", dom[0], kernel, stride, padding, dilation)
        windows = _np_windows(dom, K, s, p, d, fill)
        offsets = list(itertools.product(*(range(a) for a in K)))
        scale = 1.0 / math.prod(K)

        def run(x, out=None):
            w = windows(x)
            if out is None:
                acc = np.array(w[(Ellipsis,) + offsets[0]])
            else:
                acc = out
                np.copyto(acc, w[(Ellipsis,) + offsets[0]])
            for k in offsets[1:]:
                combine(acc, w[(Ellipsis,) + k], out=acc)
            if mean:
                acc *= acc.dtype.type(scale)
            return acc

        run.writes_out = True
        return run

    return staged


def _torch_pool(which):
    def run(x, dom, kernel, stride=None, padding=0, dilation=1):
        K, s, p, d, S, O = geometry(which, dom[0], kernel, stride, padding, dilation)
        F = torch.nn.functional
        n = len(K)
        if which == "maxpool":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
            return fn(_channels_last(x, dom[0]), K, s, p, d)
        if any(a > 1 for a in d):  # torch's avg_pool has no dilation
            return torch.mean(_torch_unfold(x, dom, K, s, p, d), dim=tuple(range(2 + n, 2 + 2 * n)))
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]
        return fn(x, K, s, p)

    return run


def _maxpool_rd(xs, ys, dys, kernel, stride=None, padding=0, dilation=1):
    x = xs[0]
    K, s, p, d, S, O = geometry("maxpool", x.type, kernel, stride, padding, dilation)
    geo = dict(kernel=K, stride=s, padding=p, dilation=d)
    # as R[max] over the window axes: d goes to the arg-max entries, split among ties
    win = unfold(x, fill=float("-inf"), **geo)
    full = dys[0].shape + K
    lift = lambda w: w.reshape(w.shape + (1,) * len(K)).broadcast(full)  # noqa: E731
    mask = eq(win, lift(ys[0]))
    share = dys[0] / mask.sum(axes=_window_axes(x.type))
    return [fold(mask * lift(share), size=S, **geo)]


def _avgpool_rd(xs, ys, dys, kernel, stride=None, padding=0, dilation=1):
    x, dy = xs[0], dys[0]
    K, s, p, d, S, O = geometry("avgpool", x.type, kernel, stride, padding, dilation)
    spread = dy.reshape(dy.shape + (1,) * len(K)).broadcast(dy.shape + K) * (1.0 / math.prod(K))
    return [fold(spread, size=S, kernel=K, stride=s, padding=p, dilation=d)]


def _pool_samples():
    return [Sample(Ob(f64[2, 3, 8]), {"kernel": 2}),
            Sample(Ob(f64["B", 2, 7, 6]), {"kernel": 3, "stride": 2, "padding": 1}),
            Sample(Ob(f32[2, 2, 8, 8]), {"kernel": (2, 3), "stride": (2, 1), "dilation": (1, 2)}),
            Sample(Ob(f64[1, 2, 4, 4, 6]), {"kernel": 2, "stride": (2, 1, 2)})]


maxpool = declare(
    "maxpool",
    _pool_rule("maxpool"),
    numpy=_np_pool(np.maximum, float("-inf"), False), needs=("dom",), staged=True,
    torch=_torch_pool("maxpool"), torch_needs=("dom",),
    rd=_maxpool_rd,
    kind="reduction", samples=_pool_samples,
    doc="Max over windows (stride defaults to the kernel; padding is -inf). "
        "R: the cotangent goes to each window's arg-max, split equally among ties.",
)

avgpool = declare(
    "avgpool",
    _pool_rule("avgpool"),
    numpy=_np_pool(np.add, 0.0, True), needs=("dom",), staged=True,
    torch=_torch_pool("avgpool"), torch_needs=("dom",),
    rd=_avgpool_rd,
    kind="reduction", samples=_pool_samples,
    doc="Mean over windows (stride defaults to the kernel; padded zeros count). R: dy / prod(kernel) over each window.",
)
