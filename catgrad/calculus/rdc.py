"""The reverse derivative functor R and the forward derivative D.

For ``f : A -> B``, ``R(f) : A x B -> A`` is built in one linear pass over f's
graph, never calling an autograd engine:

1. replay f's boxes on the primal inputs (values every rule may need);
2. walk the boxes in reverse topological order; each box's output cotangents are
   the sum of what its readers sent back (R[copy] = add), and the box's own rule
   (declared with the primitive) turns them into input cotangents;
3. the cotangents reaching f's inputs are R(f)'s outputs (zero where none arrive).

Every rule is a diagram in the same signature, so ``R(R(f))`` exists: this is
what the axioms RD.6 and RD.7 need. Over Z2 a diagram is a polynomial, and R is
its formal derivative: R[x * x] = 2 x d = 0 although x * x evaluates like x.

Cotangents only flow through differentiable dtypes (floats and bits); integer
wires get a zero cotangent.
"""

from __future__ import annotations

from ..core.diagram import Builder, Diagram, Wire, as_diagram
from ..core.types import TensorType
from ..ops import constant


def _zero(b: Builder, t: TensorType) -> Wire:
    return constant(type=t, value=0.0 if t.dtype.is_float else 0, builder=b)


def _total(parts: list):
    if not parts:
        return None
    acc = parts[0]
    for p in parts[1:]:
        acc = acc + p
    return acc


def reverse(f: Diagram, b: Builder, xs: list, dys: list) -> list:
    """Emit R(f) into ``b`` on primal input wires ``xs`` and output cotangents ``dys``
    (``None`` = zero); return the input cotangents (``None`` = zero). Every box made for a
    box of f (its replay, its rule, the sums and zeros of its cotangents) gets that box's
    scope, so R(f) is grouped by the layers of f."""
    g = f.graph
    env = dict(zip(g.inputs, (x.id for x in xs)))
    base = b.scope
    try:
        for op, ins, outs, scope in g.boxes:
            b.scope = base + scope
            for w, n in zip(outs, b.emit(op, [env[w] for w in ins])):
                env[w] = n
        cot: dict = {}
        for w, d in zip(g.outputs, dys):
            if d is not None and g.types[w].dtype.differentiable:
                cot.setdefault(w, []).append(d)
        for op, ins, outs, scope in reversed(g.boxes):
            b.scope = base + scope
            douts = [_total(cot.pop(w, [])) for w in outs]
            if all(d is None for d in douts) or op.prim.rd is None:
                continue
            douts = [_zero(b, g.types[w]) if d is None else d for w, d in zip(outs, douts)]
            dins = op.prim.rd(
                [Wire(b, env[w]) for w in ins], [Wire(b, env[w]) for w in outs], douts, **op.kwargs
            )
            for w, d in zip(ins, dins):
                if d is not None and g.types[w].dtype.differentiable:
                    cot.setdefault(w, []).append(d)
        b.scope = base
        return [_total(cot.get(w, [])) for w in g.inputs]
    finally:
        b.scope = base


def R(f: Diagram) -> Diagram:
    """The reverse derivative ``R(f) : A x B -> A`` of ``f : A -> B``.

    Smooth maps: ``R(f)(x, v) = J_f(x)^T v``.

    >>> import catgrad as cg, numpy as np
    >>> sq = cg.trace(cg.f64[()])(lambda x: x * x)
    >>> float(cg.evaluate(cg.R(sq), np.float64(3.0), np.float64(1.0))[0])
    6.0
    """
    f = as_diagram(f)
    b = Builder()
    xs = [b.input(t) for t in f.dom]
    ds = [b.input(t) for t in f.cod]
    dxs = reverse(f, b, xs, ds)
    outs = [(_zero(b, x.type) if d is None else d).id for x, d in zip(xs, dxs)]
    return Diagram(b.finish([w.id for w in xs + ds], outs))


def forward(f: Diagram, b: Builder, xs: list, vs: list) -> list:
    """Emit ``D(f)`` into ``b`` on primal wires ``xs`` and tangents ``vs`` (``None`` = zero);
    return ``J_f(x) v`` per output (``None`` = zero). It is ``pi1 R[R[f]]((x, 0), v)``: a
    ``None`` tangent sends no cotangent back through R[f], so the parts of R[f] that only
    serve it are never built (a zero tangent wire would multiply 0 by f's derivative there,
    NaN where that derivative is infinite, as for sqrt at 0)."""
    zs = [_zero(b, t) for t in f.cod]
    return reverse(R(f), b, list(xs) + zs, list(vs))[len(xs):]


def D(f: Diagram) -> Diagram:
    """The forward derivative ``D(f) : A x A -> B``, ``D(f)(a, v) = J_f(a) v``,
    obtained from R as ``pi1 R[R[f]]((a, 0), v)`` (docs/mathematics.md section 1)."""
    f = as_diagram(f)
    b = Builder()
    xs = [b.input(t) for t in f.dom]
    vs = [b.input(t) for t in f.dom]
    ys = forward(f, b, xs, vs)
    outs = [(_zero(b, t) if y is None else y).id for t, y in zip(f.cod, ys)]
    return Diagram(b.finish([w.id for w in xs + vs], outs))
