"""The numpy backend: a Program specialised per call shape and emitted as one
Python function.

On the first call with a given tuple of input shapes the backend binds the
symbolic dimensions, checks every input against its wire type, folds every
constant (symbolic-shaped ones included, now that shapes are known), and
generates straight-line code ``v7 = k3(v2, v5)`` whose kernels ``k*`` are chosen
once: each op's own numpy kernel for its dtype (declared with the op), BLAS matmuls
for two-operand contractions (transpose/reshape plans precomputed), attributes bound. Later calls
with the same shapes only look the function up. Values are never mutated in
place, so outputs may share memory with inputs (treat arrays as immutable).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..core.evaluate import _as_array
from ..core.types import bind_shape, resolve_shape
from ..errors import ShapeError
from .passes import optimize
from .program import Program, lower

def _einsum2(spec: str, sa: tuple, sb: tuple):
    """A BLAS plan for a two-operand contraction, or None."""
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
        tx = (lambda a: a) if idx else (lambda a: a.T)
        ty = (lambda b: b) if idy else (lambda b: b.T)
        if idz:
            return lambda a, b: np.matmul(tx(a), ty(b))
        return lambda a, b: np.matmul(tx(a), ty(b)).T

    def run(a, b):
        a2 = (a if idx else a.transpose(px)).reshape(nb, nl, nk)
        b2 = (b if idy else b.transpose(py)).reshape(nb, nk, nr)
        c = np.matmul(a2, b2).reshape(mid)
        return c if idz else c.transpose(pz)

    return run


def _kernel(instr, types, binding):
    op = instr.op
    name, prim = op.name, op.prim
    dt = op.dtype
    kw = op.kwargs
    if name == "einsum" and len(op.dom) == 2 and dt.is_float:
        sa, sb = (resolve_shape(t.shape, binding) for t in op.dom)
        plan = _einsum2(kw["spec"], sa, sb)
        if plan is not None:
            return plan
    if name == "sum" and dt.name != "bit":
        axes = kw.get("axes")
        axes = tuple(axes) if isinstance(axes, (tuple, list)) else axes
        keep = bool(kw.get("keepdims", False))
        return lambda x: np.sum(x, axis=axes, keepdims=keep)
    if name == "broadcast":
        shape = resolve_shape(op.cod[0].shape, binding)
        return lambda x: np.broadcast_to(x, shape)
    if name == "reshape":
        shape = resolve_shape(op.cod[0].shape, binding)
        return lambda x: np.reshape(x, shape)
    kernel = prim.kernel("numpy", dt)  # per-dtype kernels are resolved here, once
    if prim.needs_shape:
        kw["shape"] = resolve_shape(op.cod[0].shape, binding)
        kw["dtype"] = op.cod[0].dtype
    return functools.partial(kernel, **kw) if kw else kernel


def _implicit_broadcasts(prog: Program) -> set:
    """Indices of broadcast instructions whose every reader is an elementwise op that
    also reads a full-shape operand: numpy broadcasting makes them no-ops there."""
    readers: dict = {}
    for ins in prog.instrs:
        for v in ins.ins:
            readers.setdefault(v, []).append(ins)
    outputs = set(prog.outputs)
    bcast = {i.outs[0] for i in prog.instrs if i.op.name == "broadcast"}
    out = set()
    for j, ins in enumerate(prog.instrs):
        if ins.op.name != "broadcast" or ins.outs[0] in outputs:
            continue
        full = prog.types[ins.outs[0]]
        rs = readers.get(ins.outs[0], [])
        if rs and all(
            r.op.prim.extra.get("elementwise") and r.op.cod[0].shape == full.shape
            and any(v not in bcast and prog.types[v].shape == full.shape for v in r.ins)
            for r in rs
        ):
            out.add(j)
    return out


def generate(prog: Program, binding: dict):
    """Straight-line Python for ``prog`` (already folded for ``binding``)."""
    env = {"_asarray": np.asarray}
    name = {}
    for k, v in enumerate(prog.inputs):
        name[v] = f"a{k}"
    for v, c in prog.consts.items():
        if v not in name:
            name[v] = f"c{v}"
            env[f"c{v}"] = c
    lines = [f"def run({', '.join(f'a{k}' for k in range(len(prog.inputs)))}):"]
    implicit = _implicit_broadcasts(prog)
    for j, ins in enumerate(prog.instrs):
        if j in implicit:  # numpy's own broadcasting in the consumers does it
            name[ins.outs[0]] = name[ins.ins[0]]
            continue
        env[f"k{j}"] = _kernel(ins, prog.types, binding)
        for o in ins.outs:
            name[o] = f"v{o}"
        lhs = ", ".join(name[o] for o in ins.outs) + ("," if len(ins.outs) > 1 else "")
        lines.append(f"    {lhs} = k{j}({', '.join(name[i] for i in ins.ins)})")
    rets = []
    for v in prog.outputs:
        t = prog.types[v]
        # reductions to rank 0 give numpy scalars; hand back 0-d arrays of the declared dtype
        rets.append(f"_asarray({name[v]})" if t.rank == 0 else name[v])
    lines.append(f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    src = "\n".join(lines)
    exec(compile(src, "<catgrad numpy program>", "exec"), env)  # noqa: S102 - our own generated code
    fn = env["run"]
    fn.source = src
    return fn


class NumpyProgram:
    """A compiled diagram on numpy: ``prog(*arrays) -> tuple of arrays``."""

    def __init__(self, diagram, passes: bool = True):
        self.program = lower(diagram)
        self.passes = passes
        self.dom = self.program.dom
        self.cod = self.program.cod
        self._generic = optimize(self.program) if passes else self.program
        self._dtypes = [np.dtype(t.dtype.numpy) for t in self.dom]
        self._cache: dict = {}

    def specialise(self, shapes: tuple):
        binding: dict = {}
        for i, (t, s) in enumerate(zip(self.dom, shapes)):
            bind_shape(t, s, binding, f"input {i}")
        prog = optimize(self._generic, binding) if self.passes else self._generic
        fn = generate(prog, binding)
        fn.program = prog
        return fn

    def __call__(self, *args):
        if len(args) != len(self.dom):
            raise ShapeError(f"the program takes {len(self.dom)} input(s) of types {self.dom}, got {len(args)}")
        try:
            for a, d in zip(args, self._dtypes):
                if a.dtype != d:
                    raise AttributeError
        except AttributeError:
            args = [_as_array(a, t, i) for i, (a, t) in enumerate(zip(args, self.dom))]
        key = tuple([a.shape for a in args])
        fn = self._cache.get(key)
        if fn is None:
            fn = self._cache[key] = self.specialise(key)
        return fn(*args)

    def source(self, *shapes) -> str:
        """The generated code for inputs of these shapes (for inspection)."""
        return self.specialise(tuple(shapes)).source


def compile_numpy(diagram, passes: bool = True) -> NumpyProgram:
    return NumpyProgram(diagram, passes=passes)


__all__ = ["NumpyProgram", "compile_numpy", "generate"]
