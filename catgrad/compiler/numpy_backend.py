"""The numpy backend: an optimized Program specialised per call shape and emitted as
one straight-line Python function.

The backend receives the Program that :func:`~catgrad.compiler.pipeline.prepare`
already lowered and optimized. On the first call with a given tuple of input shapes
it binds the symbolic dimensions, folds the constants that now have known shapes,
and generates code such as ``tanh_12 = np.tanh(add_11)`` whose kernels come from
the numpy rule table (:func:`~catgrad.core.primitive.bind`): staged rules do their
type-only work here, once (a BLAS plan for each two-operand einsum, normalised
reduction axes). Later calls with the same shapes only look the function up. Values
are never mutated in place, so outputs may share memory with inputs (treat arrays as
immutable).
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.evaluate import _as_array
from ..core.primitive import bind, check_lowerable
from ..core.types import bind_shape
from ..errors import ShapeError
from .passes import optimize
from .pipeline import as_program, implicit_broadcasts, value_names
from .program import Program


def _numpy_name(fn) -> str | None:
    """``np.tanh`` for a kernel that is a public numpy function, so the code says so."""
    name = getattr(fn, "__name__", None)
    return f"np.{name}" if name and getattr(np, name, None) is fn else None


def _inline_call(kernel) -> str | None:
    """``np.f`` or ``np.f(..., k=v`` for a numpy function, possibly under a
    ``functools.partial`` with literal keywords: the call is then written out and costs
    no partial indirection per call."""
    if isinstance(kernel, functools.partial) and not kernel.args:
        head = _numpy_name(kernel.func)
        kws = kernel.keywords
        if head is None or not all(_literal(v) for v in kws.values()):
            return None
        return head, "".join(f", {k}={v!r}" for k, v in kws.items())
    head = _numpy_name(kernel)
    return None if head is None else (head, "")


def _literal(v) -> bool:
    if isinstance(v, tuple):
        return all(_literal(x) for x in v)
    return v is None or type(v) in (int, bool, str)


def _scalar_consts(prog: Program) -> dict:
    """Folded constants whose entries are all equal and whose every reader is an
    elementwise op with another operand of the full shape: numpy's broadcasting of a
    0-d array of the same dtype gives the same numbers, without reading a whole array.
    (That other operand is no constant and no broadcast, which may be passed unbroadcast.)"""
    bcast = {i.outs[0] for i in prog.instrs if i.op.name == "broadcast"}
    readers: dict = {}
    for ins in prog.instrs:
        for v in ins.ins:
            readers.setdefault(v, []).append(ins)
    out = {}
    for v, c in prog.consts.items():
        c = np.asarray(c)
        if v in prog.outputs or c.ndim == 0 or c.size == 0 or c.dtype == object or v not in readers:
            continue
        flat = c.reshape(-1)
        if not (flat == flat[0]).all():  # (NaN never equals itself: left as it is)
            continue
        if all(r.op.prim.elementwise and any(u not in prog.consts and u not in bcast and prog.types[u].shape == prog.types[v].shape
                                             for u in r.ins)
               and r.op.cod[0].shape == prog.types[v].shape for r in readers[v]):
            out[v] = np.array(flat[0], dtype=c.dtype)
    return out


def generate(prog: Program, binding: dict, input_names=None):
    """Straight-line Python for ``prog`` (already folded for ``binding``)."""
    env = {"np": np, "_asarray": np.asarray}
    name = value_names(prog, input_names)
    lines = []
    scalars = _scalar_consts(prog)
    for v, c in sorted(prog.consts.items()):
        if v in name and v not in prog.inputs:
            c = scalars.get(v, c)
            env[name[v]] = c
            c = np.asarray(c)
            shown = repr(c.item()) if c.size == 1 else f"array of shape {c.shape}"
            lines.append(f"    # {name[v]} = {shown} ({c.dtype})")
    implicit = implicit_broadcasts(prog)
    for j, ins in enumerate(prog.instrs):
        if j in implicit:  # numpy's own broadcasting in the consumers does it
            name[ins.outs[0]] = name[ins.ins[0]]
            continue
        kernel = bind(ins.op, "numpy", binding)
        call, kws = _inline_call(kernel) or (f"_{name[ins.outs[0]]}", "")
        if call.startswith("_"):
            env[call] = kernel
        lhs = ", ".join(name[o] for o in ins.outs) + ("," if len(ins.outs) > 1 else "")
        lines.append(f"    {lhs} = {call}({', '.join(name[i] for i in ins.ins)}{kws})")
    rets = []
    computed = {o for ins in prog.instrs for o in ins.outs}
    for v in prog.outputs:
        # kernels may give numpy scalars for rank 0; hand back 0-d arrays of the declared dtype
        rets.append(f"_asarray({name[v]})" if prog.types[v].rank == 0 and v in computed else name[v])
    lines.append(f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    args = ", ".join(name[v] for v in prog.inputs)
    src = f"def run({args}):\n" + "\n".join(lines)
    exec(compile(src, "<catgrad numpy program>", "exec"), env)  # noqa: S102 - our own generated code
    fn = env["run"]
    fn.source = src
    return fn


class NumpyProgram:
    """A compiled program on numpy: ``prog(*arrays) -> tuple of arrays``."""

    def __init__(self, program: Program, passes: bool = True, input_names=None):
        check_lowerable((i.op for i in program.instrs), "numpy")
        self.program = program
        self.passes = passes
        self.input_names = input_names
        self.dom = program.dom
        self.cod = program.cod
        self._dtypes = [np.dtype(t.dtype.numpy) for t in self.dom]
        self._cache: dict = {}

    def specialise(self, shapes: tuple):
        binding: dict = {}
        for i, (t, s) in enumerate(zip(self.dom, shapes)):
            bind_shape(t, s, binding, f"input {i}")
        prog = optimize(self.program, binding) if self.passes else self.program
        fn = generate(prog, binding, self.input_names)
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


def compile_numpy(program, passes: bool = True, input_names=None) -> NumpyProgram:
    """The numpy backend's factory. ``program``: an optimized :class:`Program`, or a
    diagram (lowered and optimized here, as :func:`~catgrad.compiler.prepare` does)."""
    return NumpyProgram(as_program(program, passes), passes=passes, input_names=input_names)


__all__ = ["NumpyProgram", "compile_numpy", "generate"]
