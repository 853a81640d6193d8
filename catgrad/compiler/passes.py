"""Passes on a :class:`~catgrad.compiler.program.Program`; each returns a new program
computing the same function.

- :func:`dce`: dead-code elimination (drop instructions no output depends on).
- :func:`cse`: common-subexpression elimination (one instruction per distinct
  ``(op, inputs)``; ops are pure, so this is sound). Composing lenses recomputes a
  forward pass inside each put; CSE shares it again.
- :func:`simplify_signs`: fold negations into the adds, subs and muls that read them.
- :func:`schedule`: depth-first order from the outputs (updates right after their gradients).
- :func:`simplify_scales`: ``x + x = 2x`` merged into a constant factor of ``x``
  (``(b c) + (b c) = b (2c)``, ``b (-1) = -b``), and ``reshape(reshape(x)) = reshape(x)``.
  Reverse derivatives leave both: the cotangent of a value read twice is the sum of
  two equal terms, and a bias gradient is reshaped twice.
- :func:`fold_constants`: evaluate, at compile time, every instruction whose inputs
  are all known (``constant`` boxes first), given a binding of the symbolic
  dimensions; a constant whose shape is still symbolic becomes a folded scalar and a
  broadcast (so backends never build a tensor of unknown shape from nothing); then simplify ``x + 0``, ``x * 1``, ``x - 0`` and identity
  broadcasts/reshapes to ``x``.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

from ..core.primitive import bind, lookup
from ..core.types import resolve_shape
from .program import Instr, Program


def dce(p: Program) -> Program:
    """Dead-code elimination: keep only the instructions some output depends on."""
    live = set(p.outputs)
    kept = []
    for ins in reversed(p.instrs):
        outs = ins.outs
        if (outs[0] in live) if len(outs) == 1 else any(o in live for o in outs):
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
        args = tuple([sub.get(v, v) for v in ins.ins]) if sub else ins.ins
        key = (ins.op, args)
        prev = seen.get(key)
        if prev is not None:
            for a, b in zip(ins.outs, prev.outs):
                sub[a] = b
            continue
        new = ins if args is ins.ins else Instr(ins.op, args, ins.outs)
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
        args = tuple([sub.get(v, v) for v in ins.ins]) if sub else ins.ins
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
        kept.append(ins if args is ins.ins else Instr(op, args, ins.outs))
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
    ``(-x)(-y) = xy``, ``x (-y) = -(xy)`` (the negation moves on to the readers) and
    ``-(-x) = x``. Descent steps are full of these (the learning
    rate is ``-1``), and each one saved is a pass over a parameter-sized tensor."""
    negated: dict = {}  # value -> the value it negates
    sub: dict = {}
    kept = []
    types = list(p.types)
    readers: dict = {}
    for ins in p.instrs:
        for v in set(ins.ins):
            readers.setdefault(v, []).append(ins)
    outs = set(p.outputs)
    for ins in p.instrs:
        args = tuple([sub.get(v, v) for v in ins.ins]) if sub else ins.ins
        op, name = ins.op, ins.op.name
        if name == "neg" and args[0] in negated:
            sub[ins.outs[0]] = negated[args[0]]
            continue
        if (name in ("add", "sub", "mul") and len(args) == 2 and (args[0] in negated or args[1] in negated)
                and len(op.cod) == 1 and all(types[a] == op.cod[0] for a in args)):
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
            elif name == "mul" and (x in negated) != (y in negated) and _absorbs_negation(ins.outs[0], readers, outs):
                # x (-y) = -(x y): the product of the plain value, negated after; every
                # reader folds the negation in, so the neg is dropped
                w = len(types)
                types.append(op.cod[0])
                kept.append(Instr(op, (negated.get(x, x), negated.get(y, y)), (w,)))
                kept.append(Instr(lookup("neg").op(op.cod), (w,), ins.outs))
                negated[ins.outs[0]] = w
                continue
            if new is not None:
                kept.append(Instr(lookup(new[0]).op(op.dom), new[1], ins.outs))
                continue
        if name == "neg":
            negated[ins.outs[0]] = args[0]
        kept.append(ins if args is ins.ins else Instr(op, args, ins.outs))
    q = p.copy()
    q.instrs, q.types = kept, types
    q.outputs = [sub.get(v, v) for v in p.outputs]
    return dce(q)


def _absorbs_negation(v, readers, outputs) -> bool:
    """Every reader of ``v`` takes ``-v`` at no cost: an add, a neg, or a sub that
    subtracts it (and ``v`` is no output)."""
    return v not in outputs and all(
        r.op.name in ("add", "neg") or (r.op.name == "sub" and r.ins[1] == v and r.ins[0] != v)
        for r in readers.get(v, ()))


def _scalar_fill(c):
    """The common value of a constant whose entries are all equal (as a 0-d array), else None."""
    c = np.asarray(c)
    if c.size == 0 or c.dtype.kind != "f":
        return None
    flat = c.reshape(-1)
    return flat[0] if bool((flat == flat[0]).all()) else None


def simplify_scales(p: Program) -> Program:
    """``add(a, a)`` with ``a = mul(b, c)`` read nowhere else and ``c`` a constant with
    all entries equal becomes ``mul(b, 2c)``, or ``neg(b)`` when ``2c = -1``. Doubling
    is exact in binary floating point, so ``(b c) + (b c) = 2 (b c)``; ``b (2c)``
    equals it except where ``b c`` underflows to a subnormal number. ``reshape(reshape(x))`` becomes one reshape."""
    uses: dict = {}
    for ins in p.instrs:
        for v in ins.ins:
            uses[v] = uses.get(v, 0) + 1
    for v in p.outputs:
        uses[v] = uses.get(v, 0) + 1
    made: dict = {}  # value -> its instruction as kept (filled in order: producers come first)
    consts, types = dict(p.consts), list(p.types)
    kept = []
    sub: dict = {}
    for ins in p.instrs:
        args = tuple([sub.get(v, v) for v in ins.ins]) if sub else ins.ins
        op, name = ins.op, ins.op.name
        if name == "reshape":
            src = made.get(args[0])
            if src is not None and src.op.name == "reshape":
                if types[src.ins[0]] == op.cod[0]:  # there and back again
                    sub[ins.outs[0]] = src.ins[0]
                    continue
                shape = dict(op.attrs)["shape"]
                new = Instr(lookup("reshape").op([types[src.ins[0]]], shape=shape), (src.ins[0],), ins.outs)
                kept.append(new)
                made[ins.outs[0]] = new  # a chain of reshapes collapses into one
                continue
        if name == "add" and len(args) == 2 and args[0] == args[1] and types[args[0]] == op.cod[0] \
                and op.cod[0].dtype.is_float:
            a = args[0]
            src = made.get(a)
            k = None
            if src is not None and src.op.name == "mul" and uses.get(a) == 2 and types[a] == op.cod[0]:
                k = next((k for k in (0, 1) if src.ins[k] in consts and _scalar_fill(consts[src.ins[k]]) is not None
                          and types[src.ins[1 - k]] == op.cod[0]), None)
            if k is not None:
                b, c = src.ins[1 - k], np.asarray(consts[src.ins[k]])  # (src as rewritten: see made)
                two_c = (c * c.dtype.type(2)).astype(c.dtype)
                if bool((two_c == -1).all()):
                    kept.append(Instr(lookup("neg").op([types[b]]), (b,), ins.outs))
                else:
                    cv = len(types)
                    types.append(types[src.ins[k]])
                    consts[cv] = two_c
                    new_args = (b, cv) if k == 1 else (cv, b)
                    kept.append(Instr(src.op, new_args, ins.outs))
                continue
        new = ins if args is ins.ins else Instr(op, args, ins.outs)
        kept.append(new)
        if len(ins.outs) == 1:  # later rules read the operands as rewritten (a collapsed reshape)
            made[ins.outs[0]] = new
    q = p.copy()
    q.types, q.consts, q.instrs = types, consts, kept
    q.outputs = [sub.get(v, v) for v in p.outputs]
    return dce(q)  # the mul folded into the add, and inner reshapes, are read no more


def schedule(p: Program) -> Program:
    """Reorder the instructions depth first from the outputs, in output order: each
    output is computed right after what it needs that is not computed yet. A training
    step lists the last layer's parameters first, so this puts every parameter update
    right after its gradient, while the gradient is still in cache (as one writes a
    step by hand), rather than all updates after the whole backward pass.

    An instruction nothing reads (a parameter update) that reads a program input waits
    until every other reader of that input has run, so that a donated input (the old
    parameter, still read by the next layer's backward pass) can be written in place."""
    producer = {o: j for j, ins in enumerate(p.instrs) for o in ins.outs}
    read = {v for ins in p.instrs for v in ins.ins}
    inputs = set(p.inputs)
    in_readers: dict = {}
    for j, ins in enumerate(p.instrs):
        for v in set(ins.ins) & inputs:
            in_readers.setdefault(v, []).append(j)
    sink = [not any(o in read for o in ins.outs) for ins in p.instrs]
    # the producers of each instruction's operands, earliest first: what needs no
    # reordering keeps its order (the forward pass stays in front)
    needs = [sorted({producer[v] for v in ins.ins if v in producer}) for ins in p.instrs]
    n = len(p.instrs)
    seen = [False] * n
    order: list = []
    # a sink that reads inputs waits for their other readers: pending[j] counts those not
    # run yet; blocks[r] lists the sinks that reader r holds up
    pending = [0] * n
    blocks: dict = {}
    for j in range(n):
        if sink[j]:
            for v in set(p.instrs[j].ins) & inputs:
                for r in in_readers[v]:
                    if r != j:
                        pending[j] += 1
                        blocks.setdefault(r, []).append(j)
    waiting: dict = {}  # sink -> when it began to wait
    ticket = itertools.count()
    free: list = []  # a heap of (when it began to wait, sink) for waiting sinks no longer held up

    def run(j):
        order.append(j)
        for w in blocks.get(j, ()):
            pending[w] -= 1
            if pending[w] == 0 and w in waiting:
                heapq.heappush(free, (waiting[w], w))

    def emit(j):
        run(j)
        while free:  # the sinks this one let go, the one that waited longest first
            w = heapq.heappop(free)[1]
            del waiting[w]
            run(w)

    for v in p.outputs:
        if v not in producer or seen[producer[v]]:
            continue
        stack = [(producer[v], 0)]
        while stack:  # iterative post-order: programs may be deep
            j, k = stack.pop()
            deps = needs[j]
            while k < len(deps) and seen[deps[k]]:
                k += 1
            if k < len(deps):
                stack.append((j, k + 1))
                stack.append((deps[k], 0))
            elif not seen[j]:
                seen[j] = True
                if sink[j] and pending[j]:
                    waiting[j] = next(ticket)
                else:
                    emit(j)
    order += sorted(waiting, key=waiting.get)  # (every reader has run by now)
    q = p.copy()
    q.instrs = [p.instrs[j] for j in order]
    return q


def optimize(p: Program, binding: dict | None = None) -> Program:
    """The default pipeline: CSE, constant folding (with ``binding``), CSE again,
    scale and sign simplification, a last CSE (simplifying can make two instructions
    equal: ``(-x) * (-x)`` and ``reshape(reshape(x)) * x`` both become ``x * x``), then
    the depth-first schedule, which drops dead code."""
    return schedule(cse(simplify_signs(simplify_scales(cse(fold_constants(cse(p), binding))))))


__all__ = ["dce", "cse", "fold_constants", "simplify_signs", "simplify_scales", "schedule", "optimize"]
