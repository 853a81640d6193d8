"""Shared machinery for declaring primitives: each op module calls :func:`declare`."""

from __future__ import annotations

import importlib

import numpy as np

from ..core.diagram import Diagram, Wire, _types, apply
from ..core.primitive import Primitive, Sample, register, rule_table
from ..core.types import Ob, bit, f32, f64


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


# The built-in backends' rule tables. numpy is the reference; sympy runs the numpy
# rules on object arrays of expressions unless an op gives its own.
NUMPY = rule_table("numpy", dtype=lambda d: np.dtype(d.numpy), unsupported=("bf16",))
TORCH = rule_table("torch", dtype=lambda d: d.torch())
SYMPY = rule_table("sympy", dtype=lambda d: np.dtype(object), parent="numpy")


def declare(name: str, type_rule, numpy, rd=None, torch=None, sympy=None, *, doc: str, samples, arity=1,
            kind="elementwise", needs=(), torch_needs=None, staged=False,
            torch_staged=False, torch_views=False) -> OpFunction:
    """Register a primitive and return its :class:`OpFunction`.

    ``numpy=``, ``torch=`` and ``sympy=`` are sugar for registering rules in those
    backends' tables (other backends register theirs in their own modules);
    ``needs`` and ``staged`` describe the numpy rule (and the torch rule, unless
    ``torch_needs`` says otherwise); ``torch_views`` marks a torch rule whose result may
    share memory with an input (:class:`~catgrad.core.primitive.Rule`). ``samples``
    returns the :class:`Sample` list the conformance suite runs the op at; every
    primitive must have some, and a ``doc``.
    """
    prim = Primitive(name, type_rule, rd=rd, arity=arity, kind=kind, samples=samples, doc=doc)
    register(prim)
    NUMPY.register(prim, numpy, needs, staged)
    if torch is not None:  # the torch rule is described by needs/staged too, unless torch_needs is given
        TORCH.register(prim, torch, *((needs, staged) if torch_needs is None else (torch_needs, torch_staged)),
                       views=torch_views)
    if sympy is not None:
        SYMPY.register(prim, sympy)
    return OpFunction(prim)


# -- samples for the conformance suite --------------------------------------------------------


def samples_of(arity: int, dtypes=(f64, f32), shapes=((3, 4), ("B", 2), ()), domain=None, attrs=None):
    """Samples of an op whose inputs all share one type: each dtype at each shape."""
    def make():
        return [Sample(Ob(*[dt[s] for _ in range(arity)]), dict(attrs or {}), domain)
                for dt in dtypes for s in shapes]
    return make


def bit_samples(arity: int, attrs=None):
    return samples_of(arity, dtypes=(bit,), shapes=((5,), ("B", 3)), attrs=attrs)


def both(*makers):
    return lambda: [s for m in makers for s in m()]
