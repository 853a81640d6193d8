"""Typed string diagrams: the one representation everything else maps out of.

A diagram ``f : A -> B`` is stored as an acyclic *term hypergraph* (:class:`Graph`):
numbered wires, each with a type and exactly one producer (a diagram input or a
box output), and a list of boxes in topological order. A wire read by several
boxes (or listed twice among the outputs) is a copy; a wire nobody reads is a
discard. This is the free cartesian (copy/discard) structure made explicit in
the data: ``copy`` and ``discard`` are wirings, not boxes, so composing with them
costs nothing and laws such as ``copy >> (discard @ id) == id`` hold on the nose.

:class:`Diagram` is the user-facing value. ``>>`` (sequential, diagrammatic
order) and ``@`` (parallel) build an unevaluated tree in O(1); the tree is
flattened to a :class:`Graph` once, on first use, in time linear in its size,
and cached. So building an ``n``-op model by repeated ``>>`` is O(n), not O(n^2).

Diagrams are equal when their graphs are equal up to renaming wires and
reordering independent boxes (both sides are put in a canonical order first)::

    >>> import catgrad as cg
    >>> t = cg.f64[3]
    >>> f, g, h = cg.ops.exp(t), cg.ops.sin(t), cg.ops.tanh(t)
    >>> (f >> g) >> h == f >> (g >> h)
    True
    >>> (f @ g) >> (h @ f) == (f >> h) @ (g >> f)
    True
    >>> cg.copy(t) >> (cg.discard(t) @ cg.id(t)) == cg.id(t)
    True

:class:`Builder` and :class:`Wire` are the Python builder into diagrams: write a
function on wires with ordinary operators and :func:`trace` turns it into a
diagram (this is how every op's reverse derivative is written).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple, Sequence

import numpy as np

from ..errors import CatgradTypeError
from .primitive import Op, Primitive, lookup
from .types import DType, Ob, TensorType, as_ob, source


class Box(NamedTuple):
    """One op application: ``op`` reads wires ``ins`` and produces ``outs``.

    ``scope`` says where the box came from: the path of calls that made it, outermost first,
    named as parameters are (``("block_2", "dense", "add#1")``: definition uses by name with a
    ``_k`` suffix from the second use on, primitive calls as ``op#k``). It is metadata: the
    boxes R makes from a box keep that box's scope, so a drawing of R(f) can group by the
    layers of f; equality, hashing, evaluation and compilation ignore it."""

    op: Op
    ins: tuple
    outs: tuple
    scope: tuple = ()


class Graph:
    """A flat, immutable term hypergraph. Boxes are in topological order."""

    __slots__ = ("types", "boxes", "inputs", "outputs", "_canon")

    def __init__(self, types, boxes, inputs, outputs):
        self.types = tuple(types)
        self.boxes = tuple(boxes)
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self._canon = None

    @property
    def dom(self) -> Ob:
        return Ob(*(self.types[w] for w in self.inputs))

    @property
    def cod(self) -> Ob:
        return Ob(*(self.types[w] for w in self.outputs))

    def canonical(self) -> tuple:
        """A form in which equal diagrams are identical: boxes in the post-order of a
        depth-first walk from the outputs, wires numbered by first appearance."""
        if self._canon is not None:
            return self._canon
        producer = {}
        for i, box in enumerate(self.boxes):
            for w in box.outs:
                producer[w] = i
        order, seen = [], set()
        for root in self.outputs:
            stack = [(root, False)]
            while stack:
                w, expanded = stack.pop()
                i = producer.get(w)
                if i is None or i in seen:
                    continue
                if expanded:
                    seen.add(i)
                    order.append(i)
                    continue
                stack.append((w, True))
                stack.extend((x, False) for x in reversed(self.boxes[i].ins))
        number = {w: k for k, w in enumerate(self.inputs)}
        boxes = []
        for i in order:
            box = self.boxes[i]
            for w in box.outs:
                number[w] = len(number)
            boxes.append((box.op, tuple(number[w] for w in box.ins), tuple(number[w] for w in box.outs)))
        self._canon = (self.dom, tuple(boxes), tuple(number[w] for w in self.outputs))
        return self._canon

    def __len__(self) -> int:
        return len(self.boxes)

    def __repr__(self) -> str:
        return f"<Graph {len(self.boxes)} boxes: {self.dom} -> {self.cod}>"


class Builder:
    """Append-only construction of a :class:`Graph`."""

    __slots__ = ("types", "boxes", "scope")

    def __init__(self):
        self.types: list = []
        self.boxes: list = []
        self.scope: tuple = ()  # the scope given to boxes emitted now (see :class:`Box`)

    def new_wire(self, t: TensorType) -> int:
        self.types.append(t)
        return len(self.types) - 1

    def input(self, t: TensorType) -> "Wire":
        return Wire(self, self.new_wire(t))

    def emit(self, op: Op, ins: Sequence[int]) -> list:
        types = self.types
        n = len(types)
        types.extend(op.cod)
        outs = list(range(n, len(types)))
        self.boxes.append(Box(op, tuple(ins), tuple(outs), self.scope))
        return outs

    @contextmanager
    def scoped(self, *names: str):
        """Boxes emitted or inlined inside the ``with`` block get ``names`` appended to the
        current scope."""
        outer = self.scope
        self.scope = outer + names
        try:
            yield self
        finally:
            self.scope = outer

    def inline(self, g: Graph, ins: Sequence[int]) -> list:
        """Copy ``g`` into this builder with its inputs plugged into ``ins``; its boxes keep
        their scopes, under the current one."""
        env = dict(zip(g.inputs, ins))
        types, boxes, outer = self.types, self.boxes, self.scope
        for op, b_ins, b_outs, scope in g.boxes:
            outs = []
            for w in b_outs:
                types.append(g.types[w])
                env[w] = len(types) - 1
                outs.append(len(types) - 1)
            boxes.append(Box(op, tuple([env[w] for w in b_ins]), tuple(outs), outer + scope if outer else scope))
        return [env[w] for w in g.outputs]

    def finish(self, inputs: Sequence[int], outputs: Sequence[int]) -> Graph:
        """Close the graph: drop boxes no output depends on, renumber wires densely."""
        live = set(outputs)
        kept = []
        for box in reversed(self.boxes):
            outs = box.outs
            if (outs[0] in live) if len(outs) == 1 else any(w in live for w in outs):
                kept.append(box)
                live.update(box.ins)
        kept.reverse()
        number = {w: k for k, w in enumerate(inputs)}
        for box in kept:
            for w in box.outs:
                number[w] = len(number)
        types = [None] * len(number)
        for w, k in number.items():
            types[k] = self.types[w]
        boxes = [Box(op, tuple([number[w] for w in ins]), tuple([number[w] for w in outs]), scope)
                 for op, ins, outs, scope in kept]
        return Graph(types, boxes, [number[w] for w in inputs], [number[w] for w in outputs])

    # -- conveniences for writing diagrams on wires ---------------------------------

    def call(self, d: "Diagram", wires: Sequence["Wire"]) -> list:
        """Inline ``d`` on ``wires``; always returns a list of output wires."""
        if len(wires) != len(d.dom) or any(w.type != t for w, t in zip(wires, d.dom)):
            got = Ob(*(w.type for w in wires))
            raise CatgradTypeError(f"cannot apply a diagram of input type {d.dom} to wires of type {got}")
        return [Wire(self, w) for w in self.inline(d.graph, [w.id for w in wires])]

    def constant(self, t: TensorType, value) -> "Wire":
        return apply("constant", type=t, value=_scalar(value, t.dtype), builder=self)


def _scalar(value, dtype: DType):
    if dtype.is_float:
        return float(value)
    if dtype.name == "bit":
        if value not in (0, 1, True, False):
            raise CatgradTypeError(f"a bit constant must be 0 or 1, got {value!r}")
        return int(value)
    return int(value)


class Wire:
    """A wire being built: operators on wires append boxes to the builder."""

    __slots__ = ("builder", "id")

    def __init__(self, builder: Builder, id: int):
        self.builder = builder
        self.id = id

    @property
    def type(self) -> TensorType:
        return self.builder.types[self.id]

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape

    def const(self, value) -> "Wire":
        """A constant of this wire's type filled with ``value``."""
        return self.builder.constant(self.type, value)

    def __repr__(self) -> str:
        return f"<wire {self.id}: {self.type}>"

    # arithmetic; python scalars become constants, rank-0 wires broadcast
    def __add__(self, o):
        return apply("add", self, o)

    def __radd__(self, o):
        return apply("add", o, self)

    def __sub__(self, o):
        return apply("sub", self, o)

    def __rsub__(self, o):
        return apply("sub", o, self)

    def __mul__(self, o):
        return apply("mul", self, o)

    def __rmul__(self, o):
        return apply("mul", o, self)

    def __truediv__(self, o):
        return apply("div", self, o)

    def __rtruediv__(self, o):
        return apply("div", o, self)

    def __neg__(self):
        return apply("neg", self)

    def __pow__(self, p):
        return apply("pow", self, p=float(p))

    def __matmul__(self, o):
        from ..ops import matmul

        return matmul(self, o)

    # Z2 spellings
    def __xor__(self, o):
        return apply("add", self, o)

    def __and__(self, o):
        return apply("mul", self, o)

    def __or__(self, o):
        return apply("or", self, o)

    def __invert__(self):
        return apply("not", self)

    def sum(self, axes=None, keepdims=False):
        return apply("sum", self, axes=axes, keepdims=keepdims)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        return apply("reshape", self, shape=tuple(shape))

    def broadcast(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if tuple(shape) == self.shape:
            return self
        return apply("broadcast", self, shape=tuple(shape))

    def transpose(self, *perm):
        perm = perm[0] if len(perm) == 1 and isinstance(perm[0], tuple) else perm
        return apply("transpose", self, perm=tuple(perm) if perm else None)

    @property
    def T(self):
        return self.transpose()


def _lift(args: tuple, builder: Builder, elementwise: bool) -> list:
    """Turn python scalars into constants and, for elementwise ops, broadcast
    rank-0 wires to the common shape."""
    wires = [a for a in args if isinstance(a, Wire)]
    if not wires:
        return list(args)
    if len(wires) == len(args) and all(a.builder is builder for a in args):
        # the common case, wires only: nothing to lift unless a rank-0 wire meets a larger one
        if not elementwise:
            return wires
        types = builder.types
        ranks = [len(types[a.id].shape) for a in args]
        if min(ranks) > 0 or max(ranks) == 0:
            return wires
    like = max(wires, key=lambda w: w.type.rank)
    out = []
    for a in args:
        if isinstance(a, Wire):
            if a.builder is not builder:
                raise CatgradTypeError("wires from different diagrams cannot be mixed")
            if elementwise and a.type.rank == 0 and like.type.rank > 0:
                a = a.broadcast(like.shape)
            out.append(a)
        elif isinstance(a, (int, float, bool, np.number)):
            t = like.type if elementwise else like.type.with_shape(())
            out.append(builder.constant(t, a))
        else:
            raise CatgradTypeError(f"cannot use {a!r} as a wire")
    return out


def apply(prim, *args, builder: Builder | None = None, **attrs):
    """Append one op box to the builder of ``args``; return its output wire(s)."""
    if not isinstance(prim, Primitive):
        prim = lookup(prim)
    if builder is None:
        builder = next((a.builder for a in args if isinstance(a, Wire)), None)
        if builder is None:
            raise CatgradTypeError(f"{prim.name} needs at least one wire argument")
    wires = _lift(args, builder, prim.elementwise)
    types = builder.types
    op = prim.op(Ob(*[types[w.id] for w in wires]), **attrs)
    outs = builder.emit(op, [w.id for w in wires])
    if len(outs) == 1:
        return Wire(builder, outs[0])
    return tuple(Wire(builder, w) for w in outs)


class Diagram:
    """A typed string diagram ``dom -> cod``."""

    __slots__ = ("dom", "cod", "_kind", "_parts", "_graph", "_name")

    def __init__(self, graph: Graph, name: str | None = None):
        self.dom = graph.dom
        self.cod = graph.cod
        self._kind = "graph"
        self._parts = ()
        self._graph = graph
        self._name = name

    @classmethod
    def _node(cls, kind: str, left: "Diagram", right: "Diagram", dom: Ob, cod: Ob) -> "Diagram":
        d = cls.__new__(cls)
        d.dom, d.cod, d._kind, d._parts, d._graph, d._name = dom, cod, kind, (left, right), None, None
        return d

    @classmethod
    def from_op(cls, op: Op) -> "Diagram":
        b = Builder()
        ins = [b.new_wire(t) for t in op.dom]
        outs = b.emit(op, ins)
        return cls(b.finish(ins, outs), name=repr(op))

    # -- composition ---------------------------------------------------------------

    def __rshift__(self, other: "Diagram") -> "Diagram":
        if not isinstance(other, Diagram):
            return NotImplemented
        if self.cod != other.dom:
            raise CatgradTypeError(
                f"cannot compose: the first diagram's output type is {self.cod} "
                f"but the second one's input type is {other.dom}"
            )
        return Diagram._node("seq", self, other, self.dom, other.cod)

    def __matmul__(self, other: "Diagram") -> "Diagram":
        if not isinstance(other, Diagram):
            return NotImplemented
        return Diagram._node("par", self, other, self.dom @ other.dom, self.cod @ other.cod)

    then = __rshift__
    tensor = __matmul__

    # -- the flat graph ------------------------------------------------------------

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            b = Builder()
            ins = [b.new_wire(t) for t in self.dom]
            self._graph = b.finish(ins, _emit(b, self, ins))
        return self._graph

    @property
    def boxes(self) -> tuple:
        return self.graph.boxes

    def scoped(self, name: str) -> "Diagram":
        """The same diagram with ``name`` put in front of every box's scope (see :class:`Box`):
        drawings then group its boxes as one layer ``name``. Equal to ``self``."""
        g = self.graph
        boxes = [Box(op, ins, outs, (name,) + scope) for op, ins, outs, scope in g.boxes]
        return Diagram(Graph(g.types, boxes, g.inputs, g.outputs), self._name)

    def __len__(self) -> int:
        return len(self.graph.boxes)

    def __call__(self, *args):
        """On wires: inline this diagram, returning its output wire(s).
        On arrays: evaluate with the numpy reference semantics."""
        if any(isinstance(a, Wire) for a in args):
            b = next(a.builder for a in args if isinstance(a, Wire))
            if len(args) != len(self.dom):
                raise CatgradTypeError(f"this diagram takes {len(self.dom)} input(s), got {len(args)}")
            wires = _lift(args, b, False)
            for i, (w, t) in enumerate(zip(wires, self.dom)):
                if w.type != t:
                    raise CatgradTypeError(f"input {i} should have type {t} but the wire given has type {w.type}")
            outs = b.inline(self.graph, [w.id for w in wires])
            return Wire(b, outs[0]) if len(outs) == 1 else tuple(Wire(b, w) for w in outs)
        from .evaluate import evaluate

        return evaluate(self, *args)

    # -- equality and printing ------------------------------------------------------

    def __eq__(self, other) -> bool:
        if not isinstance(other, Diagram):
            return NotImplemented
        return self.dom == other.dom and self.cod == other.cod and self.graph.canonical() == other.graph.canonical()

    def __hash__(self) -> int:
        return hash((self.dom, self.cod))

    def __repr__(self) -> str:
        return _run(_repr_gen(self))

    def __str__(self) -> str:
        from .pretty import format_graph

        return format_graph(self.graph)


def as_diagram(x) -> Diagram:
    """A Diagram, or an object carrying one as ``.diagram`` (a Para's body)."""
    if isinstance(x, Diagram):
        return x
    d = getattr(x, "diagram", None)
    if isinstance(d, Diagram):
        return d
    raise CatgradTypeError(f"expected a Diagram, got {type(x).__name__}")


def _collect(d: Diagram, kind: str) -> list:
    """The maximal chain of ``kind`` nodes under ``d`` as a list, without recursion."""
    parts, stack = [], [d]
    while stack:
        x = stack.pop()
        if x._kind == kind and x._graph is None:
            stack.append(x._parts[1])
            stack.append(x._parts[0])
        else:
            parts.append(x)
    return parts


def _run(gen):
    """Drive a recursion written as generators (``yield args`` = recursive call) with
    an explicit stack: composites nest as deep as the model (a Para chain alternates
    seq and par nodes), far deeper than Python's recursion limit."""
    stack, result = [gen], None
    while stack:
        try:
            call = stack[-1].send(result)
        except StopIteration as stop:
            stack.pop()
            result = stop.value
        else:
            stack.append(call)
            result = None
    return result


def _emit(b: Builder, d: Diagram, ins: list) -> list:
    """Inline the tree ``d`` into ``b`` on input wires ``ins``; return its output wires."""
    return _run(_emit_gen(b, d, ins))


def _emit_gen(b: Builder, d: Diagram, ins: list):
    if d._graph is not None:
        return b.inline(d._graph, ins)
    if d._kind == "seq":
        for part in _collect(d, "seq"):
            ins = yield _emit_gen(b, part, ins)
        return ins
    outs, i = [], 0
    for part in _collect(d, "par"):
        n = len(part.dom)
        outs += yield _emit_gen(b, part, ins[i : i + n])
        i += n
    return outs


def _repr_gen(d: Diagram):
    if d._kind in ("seq", "par"):
        left = yield _repr_gen(d._parts[0])
        right = yield _repr_gen(d._parts[1])
        return f"({left} {'>>' if d._kind == 'seq' else '@'} {right})"
    if d._name is not None:
        return d._name
    return f"<Diagram {len(d.graph.boxes)} boxes: {d.dom} -> {d.cod}>"


# -- structure: identities, copies, discards, permutations -----------------------------


def wiring(dom, outputs: Sequence[int], name: str | None = None) -> Diagram:
    """The map ``dom -> cod`` sending output ``k`` to input ``outputs[k]``.

    Every cartesian structure map is one of these: identities, copies (an index
    repeated), discards (an index missing) and permutations.
    """
    dom = as_ob(dom)
    for k in outputs:
        if not isinstance(k, (int, np.integer)) or not 0 <= k < len(dom):
            raise CatgradTypeError(f"wiring index {k!r} is out of range for {dom}")
    return Diagram(Graph(dom, (), range(len(dom)), [int(k) for k in outputs]), name=name)


def _types(args) -> Ob:
    if len(args) == 1 and not isinstance(args[0], TensorType):
        return as_ob(args[0])
    return as_ob(args)


def id(*types) -> Diagram:
    """The identity on an object: ``cg.id(cg.f32[3], cg.bit[2])``."""
    ob = _types(types)
    return wiring(ob, range(len(ob)), name=f"cg.id({_ob_args(ob)})")


def copy(t, n: int = 2) -> Diagram:
    """``x -> (x, ..., x)``, ``n`` copies; on an object, copies the whole tuple."""
    ob = as_ob(t)
    return wiring(ob, [i for _ in range(n) for i in range(len(ob))], name=f"cg.copy({_ob_arg(ob)}, {n})")


def discard(*types) -> Diagram:
    """``x -> ()``."""
    ob = _types(types)
    return wiring(ob, [], name=f"cg.discard({_ob_args(ob)})")


def swap(a, b) -> Diagram:
    """``(x, y) -> (y, x)`` for objects ``a`` and ``b``."""
    a, b = as_ob(a), as_ob(b)
    n, m = len(a), len(b)
    return wiring(a @ b, [*range(n, n + m), *range(n)], name=f"cg.swap({_ob_arg(a)}, {_ob_arg(b)})")


def permute(dom, perm: Sequence[int]) -> Diagram:
    """Output ``k`` is input ``perm[k]``; ``perm`` must be a permutation."""
    dom = as_ob(dom)
    if sorted(perm) != list(range(len(dom))):
        raise CatgradTypeError(f"{list(perm)} is not a permutation of {len(dom)} wires")
    return wiring(dom, perm, name=f"cg.permute({_ob_arg(dom)}, {list(perm)})")


def _ob_arg(ob: Ob) -> str:
    return source(ob[0]) if len(ob) == 1 else source(ob)


def _ob_args(ob: Ob) -> str:
    return ", ".join(source(t) for t in ob)


def build(dom, body) -> Diagram:
    """The diagram ``dom -> ...`` whose outputs are ``body(builder, input_wires)``
    (a list of wires). The lower-level sibling of :func:`trace`."""
    b = Builder()
    ins = [b.input(t) for t in as_ob(dom)]
    return Diagram(b.finish([w.id for w in ins], [w.id for w in body(b, ins)]))


def trace(*dom):
    """Decorator: build a diagram from a Python function on wires.

    >>> import catgrad as cg
    >>> @cg.trace(cg.f64[3], cg.f64[3])
    ... def f(x, y):
    ...     return x * y + cg.ops.sin(x)
    >>> f.dom, f.cod
    (Ob(f64[3], f64[3]), Ob(f64[3]))

    Return a wire, a tuple of wires, or ``()``. Reading a wire twice copies it;
    leaving it unread discards it.
    """
    dom = _types(dom)

    def build(fn) -> Diagram:
        b = Builder()
        ins = [b.input(t) for t in dom]
        out = fn(*ins)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for w in outs:
            if not isinstance(w, Wire) or w.builder is not b:
                raise CatgradTypeError(f"a traced function must return wires of its own diagram, got {w!r}")
        return Diagram(b.finish([w.id for w in ins], [w.id for w in outs]))

    return build
