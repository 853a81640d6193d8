"""Shared machinery for declaring primitives: each op module calls :func:`declare`."""

from __future__ import annotations

import importlib

import numpy as np

from ..core.diagram import Diagram, Wire, _types, apply
from ..core.primitive import Primitive, register


class _Lazy:
    """A module imported on first attribute access, so ``import catgrad`` stays light."""

    def __init__(self, name: str):
        self._name = name
        self._mod = None

    def __getattr__(self, attr):
        if self._mod is None:
            self._mod = importlib.import_module(self._name)
        return getattr(self._mod, attr)


torch = _Lazy("torch")
sympy = _Lazy("sympy")


def vectorize(fn):
    """Lift a scalar sympy function to object arrays."""
    return lambda x, **_: np.vectorize(fn, otypes=[object])(x)


class OpFunction:
    """``cg.ops.NAME``: on wire types, the op as a one-box diagram; on wires, applies it.

    >>> import catgrad as cg
    >>> cg.ops.exp(cg.f32[3])
    cg.ops.exp(cg.f32[3])
    """

    def __init__(self, prim: Primitive):
        self.prim = prim
        self.__name__ = prim.name
        self.__doc__ = prim.doc

    def __call__(self, *args, **attrs):
        if "builder" in attrs or any(isinstance(a, Wire) for a in args):
            return apply(self.prim, *args, **attrs)
        return Diagram.from_op(self.prim.op(_types(args) if args else (), **attrs))

    def __repr__(self) -> str:
        return f"cg.ops.{self.prim.name}"


def declare(name: str, type_rule, numpy, rd=None, torch=None, sympy=None, doc="", **extra) -> OpFunction:
    """Register a primitive and return its :class:`OpFunction`."""
    needs_shape = extra.pop("needs_shape", False)
    prim = Primitive(
        name, type_rule, numpy, rd=rd, torch=torch, sympy=sympy, needs_shape=needs_shape, doc=doc, extra=extra
    )
    return OpFunction(register(prim))
