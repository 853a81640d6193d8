"""Boolean circuits as polynomials over Z2: xor (= add), and (= mul), not, or, 0, 1.

``not x = 1 + x`` and ``x or y = x + y + x y``, so their formal derivatives are
R[not](x, d) = d and R[or]((x, y), d) = ((1 + y) d, (1 + x) d).
"""

from __future__ import annotations

import numpy as np

from ..core.primitive import expect_same
from ..core.types import TensorType
from ..errors import CatgradTypeError
from ._base import bit_samples, declare, torch
from .arith import add, constant, mul


def _bits(name, n):
    def rule(dom):
        t = expect_same(name, dom)
        if t.dtype.name != "bit":
            raise CatgradTypeError(f"{name} is defined on bits, got {t}")
        return t

    return rule


not_ = declare(
    "not",
    _bits("not", 1),
    numpy=np.logical_not,
    torch=lambda x: torch.logical_not(x),
    rd=lambda xs, ys, dys: [dys[0]],
    doc="not x = 1 + x over Z2. R: (x, d) -> d.",
    samples=bit_samples(1),
)

or_ = declare(
    "or",
    _bits("or", 2),
    numpy=np.logical_or,
    torch=lambda x, y: torch.logical_or(x, y),
    rd=lambda xs, ys, dys: [~xs[1] & dys[0], ~xs[0] & dys[0]],
    doc="x or y = x + y + xy over Z2. R: ((x, y), d) -> ((1 + y) d, (1 + x) d).",
    arity=2, samples=bit_samples(2),
)

xor = add
and_ = mul


def zero(t: TensorType):
    """The constant 0 as a diagram ``() -> t``."""
    return constant(type=t, value=0)


def one(t: TensorType):
    """The constant 1 as a diagram ``() -> t``."""
    return constant(type=t, value=1)
