"""Wire types: a dtype and a shape whose dimensions may be symbolic.

An *object* of the category is a tuple of wire types (:class:`Ob`); ``@`` on
types and objects is the monoidal product (concatenation)::

    >>> from catgrad.core.types import f32, f64, bit
    >>> f32[4, 3]
    f32[4, 3]
    >>> f32["B", 4] @ bit[8]
    Ob(f32['B', 4], bit[8])
    >>> f64[()]
    f64[()]

Dimensions are ints or names (``"B"``). A named dimension is never baked in: it
stays a variable until arrays are given to an evaluator, which binds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

import numpy as np

from ..errors import CatgradTypeError, ShapeError

Dim = Union[int, str]


@dataclass(frozen=True)
class DType:
    """A scalar type. ``bit`` is Z2: + is XOR and * is AND."""

    name: str
    numpy: str  # the numpy dtype that carries values of this type (bf16: float32 on the host; numpy cannot compute in it)
    is_float: bool

    def __getitem__(self, shape) -> "TensorType":
        if not isinstance(shape, tuple):
            shape = (shape,)
        return TensorType(self, shape)

    @property
    def scalar(self) -> "TensorType":
        return TensorType(self, ())

    @property
    def differentiable(self) -> bool:
        """Whether wires of this dtype carry cotangents (floats, and bits over Z2)."""
        return self.is_float or self is bit

    def torch(self):
        import torch

        return {"f32": torch.float32, "f64": torch.float64, "bf16": torch.bfloat16, "i64": torch.int64,
                "bit": torch.bool}[self.name]

    def __repr__(self) -> str:
        return self.name


f32 = DType("f32", "float32", True)
f64 = DType("f64", "float64", True)
bf16 = DType("bf16", "float32", True)
i64 = DType("i64", "int64", False)
bit = DType("bit", "bool", False)
DTYPES = {d.name: d for d in (f32, f64, bf16, i64, bit)}


def _check_dim(d) -> Dim:
    if isinstance(d, (bool, np.bool_)):
        raise CatgradTypeError(f"a dimension must be an int or a name, not {d!r}")
    if isinstance(d, (int, np.integer)):
        if d < 0:
            raise CatgradTypeError(f"dimension {d} is negative")
        return int(d)
    if isinstance(d, str) and d.isidentifier():
        return d
    raise CatgradTypeError(f"a dimension must be an int or a name, not {d!r}")


@dataclass(frozen=True, eq=False)
class TensorType:
    """The type of one wire: ``dtype[shape]``."""

    dtype: DType
    shape: tuple

    def __post_init__(self):
        shape = tuple(_check_dim(d) for d in self.shape)
        object.__setattr__(self, "shape", shape)
        # types are compared and hashed on every box built and every pass: hash once
        object.__setattr__(self, "_hash", hash((self.dtype.name, shape)))

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if other.__class__ is not TensorType:
            return NotImplemented
        return self._hash == other._hash and self.shape == other.shape and self.dtype == other.dtype

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):  # rebuilt, not copied: a str's hash differs between processes
        return TensorType, (self.dtype, self.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def symbols(self) -> set:
        return {d for d in self.shape if isinstance(d, str)}

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __matmul__(self, other) -> "Ob":
        return Ob(self) @ other

    def __rmatmul__(self, other) -> "Ob":
        return Ob(*as_ob(other)) @ self

    def __repr__(self) -> str:
        if not self.shape:
            return f"{self.dtype.name}[()]"
        return f"{self.dtype.name}[{', '.join(repr(d) for d in self.shape)}]"

    def __str__(self) -> str:
        return f"{self.dtype.name}[{', '.join(str(d) for d in self.shape)}]"


class Ob(tuple):
    """An object: a tuple of wire types, with ``@`` as concatenation."""

    def __new__(cls, *types):
        for t in types:
            if not isinstance(t, TensorType):
                raise CatgradTypeError(f"an object is made of wire types, got {t!r}")
        return super().__new__(cls, types)

    def __matmul__(self, other) -> "Ob":
        return Ob(*self, *as_ob(other))

    def __rmatmul__(self, other) -> "Ob":
        return Ob(*as_ob(other), *self)

    def __add__(self, other):
        return Ob(*self, *as_ob(other))

    def __getitem__(self, key):
        out = super().__getitem__(key)
        return Ob(*out) if isinstance(key, slice) else out

    def __repr__(self) -> str:
        return f"Ob({', '.join(repr(t) for t in self)})"

    def __str__(self) -> str:
        if len(self) == 1:
            return str(self[0])
        return "(" + ", ".join(str(t) for t in self) + ")"


def source(x) -> str:
    """Python source for a wire type or object, with ``import catgrad as cg`` in scope:
    ``cg.f32[4, 'B']``, ``cg.Ob(cg.f32[3], cg.bit[2])``. Used by diagram reprs."""
    if isinstance(x, (TensorType, DType)):
        return "cg." + repr(x)
    if isinstance(x, Ob):
        return "cg.Ob(" + ", ".join(source(t) for t in x) + ")"
    return repr(x)


def number_source(x) -> str:
    """The shortest decimal spelling of the real number ``x`` that reads back as the same
    float: ``float(number_source(x)) == float(x)`` (Python's ``repr`` of a float, which is
    exact since 3.1), without a trailing ``.0``: ``0.00123456789``, ``1e-08``, ``3``.
    Used where a printed hyperparameter must parse back to the value it was built with."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def as_ob(x) -> Ob:
    """Coerce a wire type, an object or an iterable of wire types to an :class:`Ob`."""
    if isinstance(x, Ob):
        return x
    if isinstance(x, TensorType):
        return Ob(x)
    if isinstance(x, Iterable) and not isinstance(x, str):
        return Ob(*x)
    raise CatgradTypeError(f"expected a wire type or a tuple of them, got {x!r}")


def bind_shape(t: TensorType, shape: tuple, binding: dict, what: str) -> None:
    """Unify a declared type's shape with a concrete ``shape``, extending ``binding``.

    Raises :class:`ShapeError` naming ``what`` on mismatch.
    """
    if len(shape) != len(t.shape):
        raise ShapeError(f"{what}: expected {t} (rank {t.rank}) but got an array of shape {tuple(shape)}")
    for d, n in zip(t.shape, shape):
        if isinstance(d, str):
            if binding.setdefault(d, n) != n:
                raise ShapeError(
                    f"{what}: expected {t} with {d} = {binding[d]} (bound earlier) but got shape {tuple(shape)}"
                )
        elif d != n:
            raise ShapeError(f"{what}: expected {t} but got an array of shape {tuple(shape)}")


def resolve_shape(shape: tuple, binding: dict) -> tuple:
    """Replace symbolic dimensions by their bound sizes."""
    try:
        return tuple(binding[d] if isinstance(d, str) else d for d in shape)
    except KeyError as e:
        raise ShapeError(
            f"dimension {e.args[0]} is not bound: it must appear in the shape of an input"
        ) from None
