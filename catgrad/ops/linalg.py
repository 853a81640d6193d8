"""Contraction and shape ops: einsum (with matmul as a spelling of it), transpose,
reshape, broadcast, and the adjoint pair slice / pad.

``einsum`` is the one contraction primitive. Its reverse derivative is einsum again
with the output's index string swapped for the operand's: for ``ab,bc->ac``,
dx = einsum(``ac,bc->ab``)(d, y) and dy = einsum(``ab,ac->bc``)(x, d). The type rule
only admits specs where that swap is well formed (every operand index appears in
the output or another operand; no index repeated within one operand), so R is closed.
"""

from __future__ import annotations

import builtins
import math
import string
from collections import Counter

import numpy as np

from ..core.diagram import Wire, _types
from ..core.primitive import Sample, normalize_axis
from ..core.types import Ob, TensorType, bit, f32, f64
from ..errors import CatgradTypeError, SymbolicSizeError
from ._base import SYMPY, OpFunction, declare, torch


def _parse_spec(spec: str, n: int):
    if not isinstance(spec, str) or "->" not in spec:
        raise CatgradTypeError(f"einsum spec must look like 'ij,jk->ik', got {spec!r}")
    lhs, out = spec.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != n:
        raise CatgradTypeError(f"einsum spec {spec!r} names {len(terms)} operand(s) but {n} were given")
    for term in terms + [out]:
        if not all(c in string.ascii_letters for c in term):
            raise CatgradTypeError(f"einsum spec {spec!r}: indices must be letters")
        if len(set(term)) != len(term):
            raise CatgradTypeError(f"einsum spec {spec!r}: index repeated within {term!r}")
    return terms, out


def _einsum_rule(dom, spec):
    terms, out = _parse_spec(spec, len(dom))
    dtype = dom[0].dtype
    size = {}
    for term, t in zip(terms, dom):
        if t.dtype != dtype:
            raise CatgradTypeError(f"einsum operands must share a dtype, got {dom[0]} and {t}")
        if len(term) != t.rank:
            raise CatgradTypeError(f"einsum {spec!r}: operand {term!r} has rank {len(term)} but the wire is {t}")
        for c, d in zip(term, t.shape):
            if size.setdefault(c, d) != d:
                raise CatgradTypeError(f"einsum {spec!r}: index {c!r} is {size[c]} in one operand and {d} in {t}")
    for c in out:
        if c not in size:
            raise CatgradTypeError(f"einsum {spec!r}: output index {c!r} is in no operand")
    for i, term in enumerate(terms):
        others = set(out).union(*(set(s) for j, s in enumerate(terms) if j != i))
        for c in term:
            if c not in others:
                raise CatgradTypeError(
                    f"einsum {spec!r}: index {c!r} occurs only in operand {i}; sum it with the sum op first"
                )
    return TensorType(dtype, tuple(size[c] for c in out))


def _einsum_rd(xs, ys, dys, spec):
    terms, out = _parse_spec(spec, len(xs))
    dxs = []
    for i, term in enumerate(terms):
        new_terms = [out if j == i else s for j, s in enumerate(terms)]
        args = [dys[0] if j == i else x for j, x in enumerate(xs)]
        dxs.append(einsum(*args, spec=",".join(new_terms) + "->" + term))
    return dxs


def _einsum2(spec: str, sa: tuple, sb: tuple):
    """A BLAS plan for a two-operand contraction (transposes and reshapes around one
    ``np.matmul``), or None when the spec is not of that form."""
    lhs, out = spec.replace(" ", "").split("->")
    x, y = lhs.split(",")
    batch = [c for c in x if c in y and c in out]
    contr = [c for c in x if c in y and c not in out]
    left = [c for c in x if c not in y]
    right = [c for c in y if c not in x]
    if any(c not in out for c in left + right):
        return None
    size = dict(zip(x, sa)) | dict(zip(y, sb))
    px = [x.index(c) for c in batch + left + contr]
    py = [y.index(c) for c in batch + contr + right]
    nb = math.prod(size[c] for c in batch)
    nl, nk, nr = (math.prod(size[c] for c in g) for g in (left, contr, right))
    mid = [size[c] for c in batch + left + right]
    order = batch + left + right
    pz = [order.index(c) for c in out]
    idx, idy, idz = px == sorted(px), py == sorted(py), pz == sorted(pz)
    if not batch and len(left) <= 1 and len(right) <= 1 and len(contr) == 1:
        # plain (vector/matrix) products: transposes are views, no reshapes
        if idz:
            # writes into ``out=`` when given (the numpy backend's planned buffers). np.dot
            # calls the same BLAS routine as np.matmul on operands of rank <= 2 (the same
            # bits) at a third of the call overhead, and allocates nothing; it takes only a
            # C-contiguous ``out`` of the result's dtype
            def matmul(a, b, out=None):
                a, b = a if idx else a.T, b if idy else b.T
                if out is None or (out.flags.c_contiguous and out.dtype == np.result_type(a, b)):
                    return np.dot(a, b, out=out)
                return np.matmul(a, b, out=out)

            matmul.writes_out = True
            # the same call written out, for code generators (no Python call in between),
            # for an ``out`` the generator allocated itself (C-contiguous, same dtype)
            matmul.inline = f"np.dot({{0}}{'' if idx else '.T'}, {{1}}{'' if idy else '.T'}{{out}})"
            return matmul
        tx = (lambda a: a) if idx else (lambda a: a.T)
        ty = (lambda b: b) if idy else (lambda b: b.T)
        return lambda a, b: np.matmul(tx(a), ty(b)).T

    def run(a, b):
        a2 = (a if idx else a.transpose(px)).reshape(nb, nl, nk)
        b2 = (b if idy else b.transpose(py)).reshape(nb, nk, nr)
        c = np.matmul(a2, b2).reshape(mid)
        return c if idz else c.transpose(pz)

    return run


def _np_einsum_float(spec, shapes):
    plan = _einsum2(spec, *shapes) if len(shapes) == 2 else None
    if plan is not None:
        return plan
    return lambda *xs: np.einsum(spec, *xs, optimize=len(xs) > 1)


def _np_einsum_mod2(spec, shapes):
    return lambda *xs: (np.einsum(spec, *(x.astype(np.int64) for x in xs)) % 2).astype(bool)


def _torch_einsum_float(spec, dom):
    """A plain matrix or vector product as ``torch.matmul`` (with ``torch.t`` where an
    operand or the result is transposed); any other contraction as ``torch.einsum``."""
    lhs, out = spec.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) == 2 and len(set(terms[0]) & set(terms[1]) - set(out)) == 1 and not set(terms[0]) & set(terms[1]) & set(out):
        x, y = terms
        k = (set(x) & set(y)).pop()
        left, right = x.replace(k, ""), y.replace(k, "")
        if len(x) <= 2 and len(y) <= 2 and sorted(out) == sorted(left + right):
            tx = (lambda a: a) if x.endswith(k) or len(x) == 1 else torch.t
            ty = (lambda b: b) if y.startswith(k) or len(y) == 1 else torch.t
            tz = (lambda c: c) if out == left + right else torch.t
            return lambda a, b: tz(torch.matmul(tx(a), ty(b)))
    return lambda *xs: torch.einsum(spec, *xs)


def _torch_einsum_mod2(*xs, spec):
    return torch.remainder(torch.einsum(spec, *(x.to(torch.int64) for x in xs)), 2).to(torch.bool)


def _einsum_samples():
    out = []
    for dt in (f64, f32):
        out += [Sample(Ob(dt["B", 4], dt[4, 3]), {"spec": "bi,ij->bj"}),
                Sample(Ob(dt[4, 3], dt["B", 4]), {"spec": "ij,bi->jb"}),
                Sample(Ob(dt[2, 3, 4], dt[2, 4, 5]), {"spec": "bij,bjk->bik"}),
                Sample(Ob(dt[3], dt[3]), {"spec": "i,i->"}),
                Sample(Ob(dt[3], dt[4]), {"spec": "i,j->ij"}),
                Sample(Ob(dt[2, 3], dt[3, 4], dt[4, 2]), {"spec": "ab,bc,cd->ad"}),
                Sample(Ob(dt[3, 4]), {"spec": "ij->ji"})]
    out += [Sample(Ob(bit["B", 4], bit[4, 3]), {"spec": "bi,ij->bj"})]
    return out


einsum = declare(
    "einsum",
    _einsum_rule,
    numpy={"float": _np_einsum_float, "int": _np_einsum_float, "bit": _np_einsum_mod2},
    needs=("shapes",), staged=True,
    torch={"float": _torch_einsum_float, "int": _torch_einsum_float,
           "bit": lambda spec, dom: lambda *xs: _torch_einsum_mod2(*xs, spec=spec)},
    torch_needs=("dom",), torch_staged=True,
    torch_views=lambda op: len(op.dom) == 1,  # torch.einsum permutes one operand as a view
    rd=_einsum_rd,
    doc="Tensor contraction, e.g. spec='ij,jk->ik'. Over bits sums are mod 2.",
    arity=None, kind="contraction", samples=_einsum_samples,
)
SYMPY.register(einsum.prim, lambda *xs, spec: np.einsum(spec, *xs))


def matmul_spec(a: TensorType, b: TensorType) -> str:
    """The einsum spec of numpy's matmul for these ranks (b of rank 1 or 2, or batched)."""
    if a.rank == 0 or b.rank == 0:
        raise CatgradTypeError(f"matmul needs operands of rank >= 1, got {a} and {b}")
    if b.rank > 2 and a.rank != b.rank:
        raise CatgradTypeError(f"batched matmul needs equal ranks, got {a} and {b}")
    needed = a.rank + (b.rank != 1)  # distinct indices in the spec: a's axes, and b's last unless b is a vector
    if needed > len(string.ascii_letters):
        raise CatgradTypeError(f"matmul of a rank-{a.rank} and a rank-{b.rank} operand needs {needed} einsum "
                               f"indices; there are {len(string.ascii_letters)} (the letters a-z, A-Z)")
    letters = iter(string.ascii_letters)
    if b.rank <= 2:
        batch = "".join(next(letters) for _ in range(a.rank - 1))
        k = next(letters)
        if b.rank == 1:
            return f"{batch}{k},{k}->{batch}"
        m = next(letters)
        return f"{batch}{k},{k}{m}->{batch}{m}"
    batch = "".join(next(letters) for _ in range(a.rank - 2))
    n, k, m = next(letters), next(letters), next(letters)
    return f"{batch}{n}{k},{batch}{k}{m}->{batch}{n}{m}"


class _MatMul(OpFunction):
    """``x @ w`` with numpy's matmul semantics, as an einsum box."""

    def __call__(self, *args):
        if len(args) != 2:
            raise CatgradTypeError(f"matmul takes 2 operands, got {len(args)}")
        if isinstance(args[0], Wire):
            return einsum(*args, spec=matmul_spec(args[0].type, args[1].type))
        a, b = _types(args)
        return einsum(a, b, spec=matmul_spec(a, b))


matmul = _MatMul(einsum.prim)
matmul.__name__ = "matmul"


def _transpose_rule(dom, perm=None):
    t = dom[0]
    perm = tuple(reversed(range(t.rank))) if perm is None else tuple(perm)
    if sorted(perm) != list(range(t.rank)):
        raise CatgradTypeError(f"transpose: {perm} is not a permutation of the axes of {t}")
    return t.with_shape(tuple(t.shape[i] for i in perm))


def _perm(x, perm):
    return tuple(reversed(range(x.type.rank))) if perm is None else tuple(perm)


def _full_perm(dom, perm):
    return tuple(reversed(range(dom[0].rank))) if perm is None else tuple(int(i) for i in perm)


transpose = declare(
    "transpose",
    _transpose_rule,
    numpy=lambda x, perm=None: np.transpose(x, perm),
    torch=lambda x, dom, perm=None: torch.permute(x, _full_perm(dom, perm)),
    torch_needs=("dom",), torch_views=True,
    kind="data_movement",
    samples=lambda: [Sample(Ob(f64[2, 3, 4]), {"perm": (1, 2, 0)}), Sample(Ob(f32["B", 3]), {}),
                     Sample(Ob(bit[2, 3]), {"perm": (1, 0)})],
    rd=lambda xs, ys, dys, perm=None: [
        transpose(dys[0], perm=tuple(int(i) for i in np.argsort(_perm(xs[0], perm))))
    ],
    doc="Permute axes (reverse them by default). R: transpose by the inverse permutation.",
)


def _size_parts(shape):
    return math.prod(d for d in shape if isinstance(d, int)), Counter(d for d in shape if isinstance(d, str))


def _reshape_rule(dom, shape):
    t = dom[0]
    target = t.with_shape(shape)
    if _size_parts(t.shape) != _size_parts(target.shape):
        raise CatgradTypeError(f"reshape: {t} has a different number of elements from {target}")
    return target


reshape = declare(
    "reshape",
    _reshape_rule,
    # the op's shape= attribute is replaced by the resolved output shape
    numpy=lambda x, shape: np.reshape(x, shape),
    torch=lambda x, shape: torch.reshape(x, shape), torch_views=True,
    rd=lambda xs, ys, dys, shape: [dys[0].reshape(xs[0].shape)],
    needs=("shape",), kind="data_movement",
    samples=lambda: [Sample(Ob(f64[2, 6]), {"shape": (3, 4)}), Sample(Ob(f32["B", 2, 3]), {"shape": ("B", 6)}),
                     Sample(Ob(f64[4]), {"shape": (2, 1, 2)})],
    doc="Same entries, new shape. R: reshape back.",
)


def _broadcast_axes(src: TensorType, shape: tuple):
    """Axes of the target that broadcasting creates (leading) or stretches (size 1)."""
    lead = len(shape) - src.rank
    if lead < 0:
        raise CatgradTypeError(f"broadcast: cannot broadcast {src} to fewer axes {shape}")
    stretched = []
    for i, d in enumerate(src.shape):
        if d != shape[lead + i]:
            if d != 1:
                raise CatgradTypeError(f"broadcast: cannot broadcast {src} to shape {tuple(shape)}")
            stretched.append(lead + i)
    return tuple(range(lead)), tuple(stretched)


def _broadcast_rule(dom, shape):
    target = dom[0].with_shape(shape)
    _broadcast_axes(dom[0], target.shape)
    return target


def _broadcast_rd(xs, ys, dys, shape):
    lead, stretched = _broadcast_axes(xs[0].type, ys[0].shape)
    d = dys[0]
    if lead or stretched:
        d = d.sum(axes=lead + stretched)
    return [d.reshape(xs[0].shape) if d.shape != xs[0].shape else d]


broadcast = declare(
    "broadcast",
    _broadcast_rule,
    numpy=lambda x, shape: np.broadcast_to(x, shape),
    torch=lambda x, shape: torch.broadcast_to(x, shape), torch_views=True,
    rd=_broadcast_rd,
    needs=("shape",), kind="data_movement",
    samples=lambda: [Sample(Ob(f64[3]), {"shape": (2, 3)}), Sample(Ob(f32["B", 1]), {"shape": ("B", 3)}), Sample(Ob(f32[()]), {"shape": (2, 2)}),
                     Sample(Ob(f64[2, 1, 3]), {"shape": (4, 2, 5, 3)}), Sample(Ob(bit[1]), {"shape": (3,)})],
    doc="numpy-style broadcast to a shape (new leading axes, stretched size-1 axes). R: sum back.",
)


# -- slice and pad: an adjoint pair (this module's slice shadows the builtin: cg.ops.slice) -----------------------------------------------------------


def _axis_size(name: str, t: TensorType, axis) -> tuple:
    axis = normalize_axis(name, t, axis)
    n = t.shape[axis]
    if not isinstance(n, int):
        raise SymbolicSizeError(f"{name}: axis {axis} of {t} has the symbolic size {n}; it needs a fixed size")
    return axis, n


def _slice_rule(dom, axis, start, stop):
    axis, n = _axis_size("slice", dom[0], axis)
    if not all(isinstance(v, (int, np.integer)) for v in (start, stop)) or not 0 <= start <= stop <= n:
        raise CatgradTypeError(f"slice: need 0 <= start <= stop <= {n} on axis {axis} of {dom[0]}, got {start}:{stop}")
    shape = list(dom[0].shape)
    shape[axis] = int(stop) - int(start)
    return dom[0].with_shape(shape)


def _index(rank, axis, sl):
    return (builtins.slice(None),) * (axis % rank) + (sl,)


slice = declare(
    "slice",
    _slice_rule,
    numpy=lambda x, axis, start, stop: x[_index(x.ndim, axis, np.s_[start:stop])],
    torch=lambda x, dom, axis, start, stop: torch.narrow(x, axis % dom[0].rank, start, stop - start),
    torch_needs=("dom",), kind="data_movement", torch_views=True,
    samples=lambda: [Sample(Ob(f64[5, 3]), {"axis": 0, "start": 1, "stop": 4}),
                     Sample(Ob(f32["B", 6]), {"axis": -1, "start": 0, "stop": 2}),
                     Sample(Ob(bit[4]), {"axis": 0, "start": 2, "stop": 4})],
    rd=lambda xs, ys, dys, axis, start, stop: [
        pad(dys[0], axis=axis, before=start, after=_axis_size("slice", xs[0].type, axis)[1] - stop)
    ],
    doc="Entries start:stop along one axis (of fixed size). R: pad the cotangent back with zeros.",
)


def _pad_rule(dom, axis, before, after):
    axis, n = _axis_size("pad", dom[0], axis)
    if not all(isinstance(v, (int, np.integer)) and v >= 0 for v in (before, after)):
        raise CatgradTypeError(f"pad: before and after must be counts >= 0, got {before}, {after}")
    shape = list(dom[0].shape)
    shape[axis] = n + int(before) + int(after)
    return dom[0].with_shape(shape)


def _np_pad(x, axis, before, after):
    widths = [(0, 0)] * x.ndim
    widths[axis % x.ndim] = (before, after)
    return np.pad(x, widths, constant_values=x.dtype.type(0) if x.dtype != object else 0)


def _torch_pad(x, dom, axis, before, after):
    # F.pad lists (before, after) pairs from the last axis backwards
    rank = dom[0].rank
    widths = (0, 0) * (rank - 1 - axis % rank) + (before, after)
    return torch.nn.functional.pad(x, widths)


pad = declare(
    "pad",
    _pad_rule,
    numpy=_np_pad,
    torch=_torch_pad,
    torch_needs=("dom",), kind="data_movement",
    samples=lambda: [Sample(Ob(f64[3, 2]), {"axis": 0, "before": 1, "after": 2}),
                     Sample(Ob(f32["B", 2]), {"axis": 1, "before": 0, "after": 3}),
                     Sample(Ob(bit[2]), {"axis": 0, "before": 2, "after": 1})],
    rd=lambda xs, ys, dys, axis, before, after: [
        slice(dys[0], axis=axis, start=before, stop=before + _axis_size("pad", xs[0].type, axis)[1])
    ],
    doc="Zeros added before and after along one axis (of fixed size). R: slice the cotangent back out.",
)
