"""Gate rules: how each primitive on ``bit`` wires becomes gates (the ``gates`` rule table).

While a program is lowered, the value of a wire is a numpy array of *net ids* (see
:mod:`catgrad.circuit.netlist`), one per bit of the wire. A symbolic leading
dimension (the lanes of ``bit[N]``, the batch of ``bit[B, 8]``) is the sample axis:
it is not part of the array, each sample being one evaluation of the same netlist.
So ``x : bit[B, 8]`` is an array of 8 nets and ``w : bit[8]`` too.

- elementwise ops build one gate per entry: add/sub = XOR, mul = AND, or = OR,
  not = NOT, neg = identity, eq = NOT XOR;
- constants are the nets 0 and 1;
- ``sum`` over bits is a balanced XOR tree per output entry; ``einsum`` over bits is
  the AND of the operands for each term, then an XOR tree over the terms;
- data movement (reshape, transpose, broadcast, slice, pad, concat, split) only moves net ids
  (numpy does it on the id array), with zeros (net 0) for padding.

The rules are registered here, keyed by primitive, without touching the op
declarations. A rule reaches the netlist under construction through
:func:`building` (as a tracer reaches its trace).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from functools import reduce

import numpy as np

from .. import ops  # noqa: F401 - declares the primitives the rules below are keyed by
from ..core.primitive import lookup, normalize_axes, rule_table
from ..errors import CatgradError
from .netlist import AND, FALSE, NOT, OR, XOR, Netlist


class CircuitError(CatgradError):
    """A program that is not a boolean circuit: a non-bit wire, a symbolic dimension other
    than the leading (sample) one, or an op that combines different samples."""


GATES = rule_table("gates")
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("catgrad_netlist")


@contextlib.contextmanager
def building(nl: Netlist):
    """Make ``nl`` the netlist the gate rules append to."""
    token = _CURRENT.set(nl)
    try:
        yield nl
    finally:
        _CURRENT.reset(token)


def lane(t) -> bool:
    """Whether wire type ``t`` has the sample axis (a symbolic leading dimension)."""
    return bool(t.shape) and isinstance(t.shape[0], str)


def strip(t) -> tuple:
    """The shape of a wire's net array: its type's shape without the sample axis."""
    return tuple(t.shape[1:]) if lane(t) else tuple(t.shape)


def _gate(kind):
    def rule(*xs):
        nl = _CURRENT.get()
        if kind == NOT:
            flat = [nl.add(NOT, int(a)) for a in xs[0].ravel()]
        else:
            flat = [nl.add(kind, int(a), int(b)) for a, b in zip(xs[0].ravel(), xs[1].ravel())]
        return np.array(flat, dtype=np.int64).reshape(xs[0].shape)

    return {"bit": rule}


def _xnor(x, y):
    return _gate(NOT)["bit"](_gate(XOR)["bit"](x, y))


def xor_tree(nets) -> int:
    """The parity of ``nets`` as a balanced tree of XOR gates (0 for none)."""
    nl = _CURRENT.get()
    nets = [int(n) for n in nets]
    if not nets:
        return FALSE
    while len(nets) > 1:
        nxt = [nl.add(XOR, nets[i], nets[i + 1]) for i in range(0, len(nets) - 1, 2)]
        if len(nets) % 2:
            nxt.append(nets[-1])
        nets = nxt
    return nets[0]


def _and_all(nets) -> int:
    nl = _CURRENT.get()
    return reduce(lambda a, b: nl.add(AND, a, b), (int(n) for n in nets))


def _no_sample_axis_reduction(name, dom, axes):
    if lane(dom[0]) and 0 in axes:
        raise CircuitError(
            f"{name} over axis 0 of {dom[0]} combines different samples; a circuit computes each sample on its own")


def _sum(x, dom, axes=None, keepdims=False):
    axes = normalize_axes("sum", dom[0], axes)
    _no_sample_axis_reduction("sum", dom, axes)
    axes = tuple(a - 1 for a in axes) if lane(dom[0]) else axes
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, rest + list(axes))
    out_shape = moved.shape[: len(rest)]
    flat = moved.reshape(int(np.prod(out_shape, dtype=np.int64)), -1)
    res = np.array([xor_tree(row) for row in flat], dtype=np.int64).reshape(out_shape)
    if keepdims:
        res = np.expand_dims(res, axes)
    return res


def _einsum(*xs, dom, spec):
    lhs, out = spec.replace(" ", "").split("->")
    terms = lhs.split(",")
    lanes = {t[0] for t, d in zip(terms, dom) if lane(d)}
    if lanes:
        (s,) = lanes if len(lanes) == 1 else (None,)
        if s is None or not out.startswith(s):
            raise CircuitError(
                f"einsum {spec!r} on {', '.join(map(str, dom))} combines different samples "
                "(the sample axis must be the first index of every batched operand and of the output)")
        terms = [t[1:] if lane(d) else t for t, d in zip(terms, dom)]
        out = out[1:]
    size = {}
    for t, x in zip(terms, xs):
        size.update(zip(t, x.shape))
    summed = sorted({c for t in terms for c in t} - set(out))
    res = np.zeros(tuple(size[c] for c in out), dtype=np.int64)
    for oi in itertools.product(*(range(size[c]) for c in out)):
        idx = dict(zip(out, oi))
        products = []
        for si in itertools.product(*(range(size[c]) for c in summed)):
            idx.update(zip(summed, si))
            products.append(_and_all(x[tuple(idx[c] for c in t)] for t, x in zip(terms, xs)))
        res[oi] = xor_tree(products)
    return res


def _transpose(x, dom, perm=None):
    perm = tuple(reversed(range(dom[0].rank))) if perm is None else tuple(int(p) for p in perm)
    if lane(dom[0]):
        if perm[0] != 0:
            raise CircuitError(f"transpose {perm} moves the sample axis of {dom[0]}; a circuit keeps it first")
        perm = tuple(p - 1 for p in perm[1:])
    return np.transpose(x, perm)


def _axis(dom, axis):
    axis = int(axis) % dom[0].rank
    return axis - 1 if lane(dom[0]) else axis


def _slice(x, dom, axis, start, stop):
    idx = [slice(None)] * x.ndim
    idx[_axis(dom, axis)] = slice(start, stop)
    return x[tuple(idx)]


def _pad(x, dom, axis, before, after):
    widths = [(0, 0)] * x.ndim
    widths[_axis(dom, axis)] = (before, after)
    return np.pad(x, widths, constant_values=FALSE)


def _concat(*xs, dom, axis=0):
    return np.concatenate(xs, axis=_axis(dom, axis))


def _split(x, dom, axis, sizes):
    parts = np.split(x, np.cumsum(sizes)[:-1], axis=_axis(dom, axis))
    return parts[0] if len(parts) == 1 else tuple(parts)


def _target(name, dom, shape):
    shape = tuple(shape)
    if lane(dom[0]) and not (shape and shape[0] == dom[0].shape[0]):
        raise CircuitError(f"{name} of {dom[0]} to {shape} moves the sample axis; a circuit keeps it first")
    return shape[1:] if shape and isinstance(shape[0], str) else shape


def _reshape(x, dom, shape):
    return np.reshape(x, _target("reshape", dom, shape))


def _broadcast(x, dom, shape):
    return np.broadcast_to(x, _target("broadcast", dom, shape))


def _constant(type, value):
    return np.full(strip(type), int(value), dtype=np.int64)


def _cast(x, dom, dtype):
    return x


def _register():
    p = lookup
    for name, kind in (("add", XOR), ("sub", XOR), ("mul", AND), ("or", OR), ("not", NOT)):
        GATES.register(p(name), _gate(kind))
    GATES.register(p("neg"), {"bit": lambda x: x})
    GATES.register(p("eq"), {"bit": _xnor})
    GATES.register(p("constant"), {"bit": _constant})
    GATES.register(p("sum"), {"bit": _sum}, needs=("dom",))
    GATES.register(p("einsum"), {"bit": _einsum}, needs=("dom",))
    GATES.register(p("cast"), {"bit": _cast}, needs=("dom",))
    for name, fn in (("transpose", _transpose), ("slice", _slice), ("pad", _pad), ("reshape", _reshape),
                     ("broadcast", _broadcast), ("concat", _concat), ("split", _split)):
        GATES.register(p(name), {"bit": fn}, needs=("dom",))


_register()

__all__ = ["CircuitError", "GATES", "building", "lane", "strip", "xor_tree"]
