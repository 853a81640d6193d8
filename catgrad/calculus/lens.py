"""Lenses ``(A, A') -> (B, B')``: a forward map and a backward map.

A lens is a pair ``get : A -> B`` and ``put : A x B' -> A'``. Composition
(diagrammatic order) is ``get = f.get >> g.get`` and
``put(a, c') = f.put(a, g.put(f.get(a), c'))``; the identity is ``(id, pi_1)``;
the tensor acts componentwise. Reverse differentiation is the functor

    R : C -> Lens(C),   f |-> (f, R[f])

so ``R(f >> g)`` and ``lens(f) >> lens(g)`` agree (tests check it by evaluation).
"""

from __future__ import annotations

from ..core.diagram import Diagram, build, id, wiring
from ..core.types import Ob, as_ob
from ..errors import CatgradTypeError
from .rdc import R


class Lens:
    """A lens ``(A, A') -> (B, B')`` given by ``get : A -> B`` and ``put : A x B' -> A'``."""

    def __init__(self, get: Diagram, put: Diagram):
        A, B = get.dom, get.cod
        if put.dom[: len(A)] != A:
            raise CatgradTypeError(f"a lens's put must take the get's input {A} first, got {put.dom}")
        self.get, self.put = get, put
        self.A, self.B = A, B
        self.B_ = Ob(*put.dom[len(A) :])
        self.A_ = put.cod

    @property
    def dom(self) -> tuple:
        return (self.A, self.A_)

    @property
    def cod(self) -> tuple:
        return (self.B, self.B_)

    @classmethod
    def id(cls, A, A_=None) -> "Lens":
        A = as_ob(A)
        A_ = A if A_ is None else as_ob(A_)
        return cls(id(A), wiring(A @ A_, range(len(A), len(A) + len(A_))))

    def __rshift__(self, other: "Lens") -> "Lens":
        if self.cod != other.dom:
            raise CatgradTypeError(
                f"cannot compose lenses: the first ends at {self.cod[0]}, {self.cod[1]} "
                f"but the second starts at {other.dom[0]}, {other.dom[1]}"
            )
        f, g, nA = self, other, len(self.A)

        def put(b, ins):
            a, c_ = ins[:nA], ins[nA:]
            fa = b.call(f.get, a)
            b_ = b.call(g.put, fa + c_)
            return b.call(f.put, a + b_)

        return Lens(f.get >> g.get, build(self.A @ other.B_, put))

    def __matmul__(self, other: "Lens") -> "Lens":
        f, g = self, other
        n1, n2, m1 = len(f.A), len(g.A), len(f.B_)

        def put(b, ins):
            a1, a2 = ins[:n1], ins[n1 : n1 + n2]
            b1, b2 = ins[n1 + n2 : n1 + n2 + m1], ins[n1 + n2 + m1 :]
            return b.call(f.put, a1 + b1) + b.call(g.put, a2 + b2)

        return Lens(f.get @ g.get, build(f.A @ g.A @ f.B_ @ g.B_, put))

    def __eq__(self, other) -> bool:
        return isinstance(other, Lens) and self.get == other.get and self.put == other.put

    __hash__ = None

    def __repr__(self) -> str:
        return f"Lens(({self.A}, {self.A_}) -> ({self.B}, {self.B_}))"


def lens(f: Diagram) -> Lens:
    """The functor R : C -> Lens(C): ``f |-> (f, R[f])``."""
    return Lens(f, R(f))
