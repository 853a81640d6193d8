"""Passes on a :class:`~catgrad.compiler.program.Program`; each returns a new program
computing the same function.

- :func:`dce`: dead-code elimination (drop instructions no output depends on).
- :func:`cse`: common-subexpression elimination (one instruction per distinct
  ``(op, inputs)``; ops are pure, so this is sound). Composing lenses recomputes a
  forward pass inside each put; CSE shares it again.
- :func:`simplify_signs`: fold negations into the adds, subs and muls that read them.
- :func:`fold_constants`: evaluate, at compile time, every instruction whose inputs
  are all known (``constant`` boxes first), given a binding of the symbolic
  dimensions; a constant whose shape is still symbolic becomes a folded scalar and a
  broadcast (so backends never build a tensor of unknown shape from nothing); then simplify ``x + 0``, ``x * 1``, ``x - 0`` and identity
  broadcasts/reshapes to ``x``.
"""

from __future__ import annotations

import numpy as np

from ..core.primitive import bind, lookup
from ..core.types import resolve_shape
from .program import Instr, Program


def dce(p: Program) -> Program:
    """Dead-code elimination: keep only the instructions some output depends on."""
    live = set(p.outputs)
    kept = []
    for ins in reversed(p.instrs):
        if any(o in live for o in ins.outs):
            kept.append(ins)
            live.update(ins.ins)
    kept.reverse()
    q = p.copy()
    q.instrs = kept
    q.consts = {v: c for v, c in p.consts.items() if v in live}
    return q


def cse(p: Program) -> Program:
    """Common-subexpression elimination: one instruction per distinct ``(op, inputs)``."""
    seen: dict = {}
    sub: dict = {}
    kept = []
    for ins in p.instrs:
        args = tuple(sub.get(v, v) for v in ins.ins)
        key = (ins.op, args)
        prev = seen.get(key)
        if prev is not None:
            for a, b in zip(ins.outs, prev.outs):
                sub[a] = b
            continue
        new = Instr(ins.op, args, ins.outs)
        seen[key] = new
        kept.append(new)
    q = p.copy()
    q.instrs = kept
    q.outputs = [sub.get(v, v) for v in p.outputs]
    return q


def _concrete(t, binding):
    try:
        return resolve_shape(t.shape, binding)
    except Exception:
        return None


def _is_fill(c, value) -> bool:
    c = np.asarray(c)
    return c.size > 0 and bool(np.all(c == value))


def fold_constants(p: Program, binding: dict | None = None) -> Program:
    """Evaluate what is known at compile time (given ``binding`` of the symbolic dimensions), then simplify identities (see the module docstring)."""
    binding = binding or {}
    consts = dict(p.consts)
    sub: dict = {}
    kept = []
    types = list(p.types)
    for ins in p.instrs:
        args = tuple(sub.get(v, v) for v in ins.ins)
        op = ins.op
        if op.prim.kind == "constant" and _concrete(op.cod[0], binding) is None:
            # a constant of symbolic shape: a folded scalar, broadcast when the shape is known
            t = op.cod[0]
            scalar = t.with_shape(())
            c = len(types)
            types.append(scalar)
            consts[c] = np.asarray(op.kwargs["value"], dtype=t.dtype.numpy)
            kept.append(Instr(_broadcast_op(scalar, t.shape), (c,), ins.outs))
            continue
        # (the cheap test first: most instructions read a value that is not constant)
        if all(a in consts for a in args) and all(_concrete(types[o], binding) is not None for o in ins.outs) \
                and all(_concrete(types[a], binding) is not None for a in args):
            res = bind(op, "numpy", binding)(*(consts[a] for a in args))
            res = res if len(ins.outs) > 1 else (res,)
            for o, r, t in zip(ins.outs, res, op.cod):
                consts[o] = np.asarray(r, dtype=t.dtype.numpy)
            continue
        # algebraic identities that keep the type
        out_t = op.cod[0] if len(op.cod) == 1 else None
        same = lambda a: types[a] == out_t  # noqa: E731
        if op.name in ("add", "sub") and len(args) == 2 and args[1] in consts and same(args[0]) \
                and _is_fill(consts[args[1]], 0):
            sub[ins.outs[0]] = args[0]
            continue
        if op.name == "add" and args[0] in consts and same(args[1]) and _is_fill(consts[args[0]], 0):
            sub[ins.outs[0]] = args[1]
            continue
        if op.name == "mul" and len(args) == 2:
            for k in (0, 1):
                if args[k] in consts and same(args[1 - k]) and _is_fill(consts[args[k]], 1) \
                        and out_t.dtype.is_float:
                    sub[ins.outs[0]] = args[1 - k]
                    break
            if ins.outs[0] in sub:
                continue
        if op.name in ("broadcast", "reshape") and same(args[0]):
            sub[ins.outs[0]] = args[0]
            continue
        kept.append(Instr(op, args, ins.outs))
    q = p.copy()
    q.types = types
    q.instrs = kept
    q.outputs = [sub.get(v, v) for v in p.outputs]
    q.consts = consts
    return dce(q)


def _broadcast_op(t, shape):
    return lookup("broadcast").op([t], shape=shape)


def simplify_signs(p: Program) -> Program:
    """Move negations into the ops that read them, where IEEE arithmetic gives the same
    bits: ``x + (-y) = x - y``, ``(-x) + y = y - x``, ``x - (-y) = x + y``,
    ``(-x)(-y) = xy`` and ``-(-x) = x``. Descent steps are full of these (the learning
    rate is ``-1``), and each one saved is a pass over a parameter-sized tensor."""
    negated: dict = {}  # value -> the value it negates
    sub: dict = {}
    kept = []
    for ins in p.instrs:
        args = tuple(sub.get(v, v) for v in ins.ins)
        op, name = ins.op, ins.op.name
        if name == "neg" and args[0] in negated:
            sub[ins.outs[0]] = negated[args[0]]
            continue
        if name in ("add", "sub", "mul") and len(args) == 2 and (args[0] in negated or args[1] in negated):
            x, y = args
            new = None
            if name == "add" and y in negated:
                new = ("sub", (x, negated[y]))
            elif name == "add" and x in negated:
                new = ("sub", (y, negated[x]))
            elif name == "sub" and y in negated:
                new = ("add", (x, negated[y]))
            elif name == "mul" and x in negated and y in negated:
                new = ("mul", (negated[x], negated[y]))
            if new is not None and len(op.cod) == 1 and all(p.types[a] == op.cod[0] for a in args):
                kept.append(Instr(lookup(new[0]).op(op.dom), new[1], ins.outs))
                continue
        if name == "neg":
            negated[ins.outs[0]] = args[0]
        kept.append(Instr(op, args, ins.outs))
    q = p.copy()
    q.instrs = kept
    q.outputs = [sub.get(v, v) for v in p.outputs]
    return dce(q)


def optimize(p: Program, binding: dict | None = None) -> Program:
    """The default pipeline: CSE, constant folding (with ``binding``), CSE again,
    sign simplification, DCE."""
    return simplify_signs(cse(fold_constants(cse(p), binding)))


__all__ = ["dce", "cse", "fold_constants", "simplify_signs", "optimize"]
