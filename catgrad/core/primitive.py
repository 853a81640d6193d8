"""The signature: primitive operations, each declared once with all its rules.

A :class:`Primitive` bundles, in one place,

- ``type_rule(dom, **attrs) -> cod``: the output wire types, or a
  :class:`~catgrad.errors.CatgradTypeError` naming what is wrong;
- ``rd(xs, ys, dys, **attrs) -> dxs``: the reverse derivative, written with
  :class:`~catgrad.core.diagram.Wire` values, so it builds a diagram in the same
  signature and R is closed (``R(R(f))`` exists). ``xs`` are the primal inputs,
  ``ys`` the primal outputs, ``dys`` the output cotangents; it returns one
  cotangent per input, ``None`` meaning zero. ``rd=None`` declares the op locally
  constant (its derivative is zero);
- ``numpy(*arrays, **attrs)``: the reference kernel; or a dict of kernels per dtype
  kind (``{"float": np.add, "int": np.add, "bit": np.logical_xor}``), so backends
  pick the right ufunc once instead of testing the dtype on every call;
- ``torch(*tensors, **attrs)``: the torch lowering (eager tensors, or fx proxies);
- ``sympy``: optional kernel on object arrays of sympy expressions;
- ``gates``: optional Z2 lowering into a circuit (filled in by the circuit backend's op table).

Kernels flagged ``needs_shape`` also receive ``shape=``: the first output's shape
with symbolic dimensions resolved, for ops such as ``constant`` or ``broadcast``.

An :class:`Op` is a primitive instantiated at concrete wire types and attributes:
it labels the boxes of a diagram.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..errors import CatgradTypeError, UnknownOpError, did_you_mean
from .types import Ob, TensorType, as_ob, source

PRIMITIVES: dict[str, "Primitive"] = {}


@dataclass(eq=False)
class Primitive:
    name: str
    type_rule: Callable[..., Any]
    numpy: Callable[..., Any]
    rd: Optional[Callable[..., Any]] = None
    torch: Optional[Callable[..., Any]] = None
    sympy: Optional[Callable[..., Any]] = None
    gates: Optional[Callable[..., Any]] = None
    needs_shape: bool = False
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def op(self, dom, **attrs) -> "Op":
        """Instantiate at input types ``dom``: runs the type rule."""
        dom = as_ob(dom)
        cod = self.type_rule(dom, **attrs)
        if isinstance(cod, TensorType):
            cod = Ob(cod)
        return Op(self, dom, Ob(*cod), tuple(sorted(attrs.items())))

    def kernel(self, backend: str, dtype=None):
        """The kernel for ``backend``; a kernel given per dtype kind (a dict with keys
        ``"float"``, ``"int"``, ``"bit"``) is resolved for ``dtype``."""
        k = getattr(self, backend, None)
        if k is None and backend == "sympy":
            k = self.numpy  # numpy kernels work on object arrays of sympy expressions
        if k is None:
            raise UnknownOpError(f"op {self.name!r} has no {backend} kernel")
        if isinstance(k, dict):
            kind = "float" if dtype is None or dtype.is_float else "bit" if dtype.name == "bit" else "int"
            if kind not in k:
                raise UnknownOpError(f"op {self.name!r} has no {backend} kernel for {dtype}")
            k = k[kind]
        return k

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def _attr_eq(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@dataclass(frozen=True, eq=False)
class Op:
    """A primitive at given types: the label of one box."""

    prim: Primitive
    dom: Ob
    cod: Ob
    attrs: tuple  # sorted (name, value) pairs

    @property
    def name(self) -> str:
        return self.prim.name

    @property
    def kwargs(self) -> dict:
        return dict(self.attrs)

    @property
    def dtype(self):
        """The dtype kernels are chosen by: the first input's, or the output's for constants."""
        return (self.dom or self.cod)[0].dtype

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Op)
            and self.prim is other.prim
            and self.dom == other.dom
            and self.cod == other.cod
            and len(self.attrs) == len(other.attrs)
            and all(k1 == k2 and _attr_eq(v1, v2) for (k1, v1), (k2, v2) in zip(self.attrs, other.attrs))
        )

    def __hash__(self) -> int:
        return hash((self.prim.name, self.dom, self.cod))

    def __repr__(self) -> str:
        """Source that rebuilds this op as a one-box diagram (``import catgrad as cg``)."""
        args = [source(t) for t in self.dom] + [f"{k}={source(v)}" for k, v in self.attrs]
        name = self.name + "_" if keyword.iskeyword(self.name) else self.name  # cg.ops.not_, cg.ops.or_
        return f"cg.ops.{name}({', '.join(args)})"


def register(prim: Primitive) -> Primitive:
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} is declared twice")
    PRIMITIVES[prim.name] = prim
    return prim


def lookup(name: str) -> Primitive:
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise UnknownOpError(f"unknown op {name!r}{did_you_mean(name, PRIMITIVES)}") from None


# -- helpers shared by the type rules -------------------------------------------------


def expect_arity(name: str, dom: Ob, n: int) -> None:
    if len(dom) != n:
        raise CatgradTypeError(f"{name} takes {n} input(s), got {len(dom)}: {dom}")


def expect_same(name: str, dom: Ob) -> TensorType:
    first = dom[0]
    for t in dom[1:]:
        if t != first:
            raise CatgradTypeError(f"{name} needs inputs of one type, got {first} and {t}")
    return first


def expect_float(name: str, t: TensorType) -> None:
    if not t.dtype.is_float:
        raise CatgradTypeError(f"{name} needs a float input (f32 or f64), got {t}")


def normalize_axes(name: str, t: TensorType, axes) -> tuple:
    if axes is None:
        return tuple(range(t.rank))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -t.rank <= a < t.rank:
            raise CatgradTypeError(f"{name}: axis {a!r} is out of range for {t}")
        out.append(int(a) % t.rank)
    if len(set(out)) != len(out):
        raise CatgradTypeError(f"{name}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))
