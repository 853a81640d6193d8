"""Evaluation: the functor from diagrams to functions on arrays.

``evaluate(f, *arrays)`` runs each box's rule in topological order. With the
default ``backend="numpy"`` this is catgrad's reference semantics: over ``bit``
wires (numpy ``bool`` arrays) + is XOR and * is AND. The same interpreter runs
any backend's rule table eagerly: ``torch`` rules on tensors (the very rules the
torch backend traces into an fx graph) and ``sympy`` rules on object arrays of
sympy expressions.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .diagram import Diagram, as_diagram
from .primitive import bind
from .types import TensorType, bind_shape


def _as_array(x, t: TensorType, i):
    """``x`` as a numpy array of wire type ``t``'s dtype, or a ShapeError naming the
    argument ``i`` (an index, ``input i``, or a label such as ``parameter W``)."""
    what = f"input {i}" if isinstance(i, int) else i
    if isinstance(x, np.ndarray):
        if x.dtype != np.dtype(t.dtype.numpy):
            if t.dtype.name == "bit" and x.dtype.kind in "iub" and np.isin(x, (0, 1)).all():
                return x.astype(bool)
            raise ShapeError(f"{what}: expected {t} but got an array of dtype {x.dtype} (want {t.dtype.numpy})")
        return x
    if isinstance(x, (bool, int, float, list, tuple, np.number, np.bool_)):
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise ShapeError(f"{what}: expected {t}, got a non-numeric value {x!r}")
        if t.dtype.name == "bit" and not np.isin(a, (0, 1)).all():
            raise ShapeError(f"{what}: expected {t} but got values other than 0 and 1")
        if not t.dtype.is_float and a.dtype.kind == "f" and not np.all(a == np.round(a)):
            raise ShapeError(f"{what}: expected {t} but got fractional values")
        return a.astype(t.dtype.numpy)
    raise ShapeError(f"{what}: expected an array of type {t}, got {type(x).__name__}")


def _as_object_arrays(res, n: int):
    """numpy ops on 0-d object arrays return bare sympy expressions: wrap them back,
    so every kernel sees arrays (with ``.dtype`` and ``.shape``)."""
    if n == 1:
        return res if isinstance(res, np.ndarray) else np.asarray(res, dtype=object)
    return tuple(r if isinstance(r, np.ndarray) else np.asarray(r, dtype=object) for r in res)


def evaluate(f: Diagram, *args, backend: str = "numpy") -> tuple:
    """Evaluate ``f`` on arrays; returns the tuple of output arrays.

    ``f`` may also be a :class:`~catgrad.Para`: its parameters come first.

    Shapes and dtypes are checked against ``f.dom``; symbolic dimensions are bound
    from the inputs and must agree everywhere they occur.
    """
    params = [] if isinstance(f, Diagram) else [p.name for p in getattr(f, "params", ())]  # a Para
    f = as_diagram(f)
    g = f.graph
    dom = f.dom
    if len(args) != len(dom):
        if params:
            raise ShapeError(f"the model takes {len(params)} parameter(s) ({', '.join(params)}) and "
                             f"{len(dom) - len(params)} input(s) of types {dom[len(params):]}, but {len(args)} "
                             "values were given in all")
        raise ShapeError(f"the diagram takes {len(dom)} input(s) of types {dom}, but {len(args)} were given")
    labels = [f"parameter {n}" for n in params] + [f"input {i}" for i in range(len(dom) - len(params))]
    binding: dict = {}
    env = [None] * len(g.types)
    for x, t, w, what in zip(args, dom, g.inputs, labels):
        if backend == "numpy":
            x = _as_array(x, t, what)
        elif not hasattr(x, "shape"):
            x = np.asarray(x, dtype=object) if backend == "sympy" else x
        bind_shape(t, tuple(x.shape), binding, what)
        env[w] = x
    for op, ins, outs, _ in g.boxes:
        res = bind(op, backend, binding)(*(env[w] for w in ins))
        if backend == "sympy":
            res = _as_object_arrays(res, len(outs))
        if len(outs) == 1:
            env[outs[0]] = res
        else:
            for w, r in zip(outs, res):
                env[w] = r
    return tuple(env[w] for w in g.outputs)
