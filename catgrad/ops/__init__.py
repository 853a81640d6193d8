"""The signature of primitive ops, ``cg.ops``.

Each op is declared once (see :mod:`catgrad.core.primitive`) with its type rule,
reverse derivative, numpy kernel and torch lowering. ``cg.ops.NAME(types...)``
returns it as a one-box diagram; ``cg.ops.NAME(wires...)`` applies it inside a
traced function.

>>> import catgrad as cg
>>> cg.ops.matmul(cg.f32["B", 4], cg.f32[4, 3]).cod
Ob(f32['B', 3])
"""

from ..core.primitive import PRIMITIVES, lookup
from ..errors import UnknownOpError, did_you_mean
from ._base import OpFunction
from .arith import add, cast, constant, div, eq, ge, gt, maximum, minimum, mul, neg, ones, pow, sub, where, zeros
from .collective import all_reduce
from .elementwise import abs, cos, exp, floor, heaviside, log, relu, sigmoid, sign, sin, softplus, sqrt, tanh
from .linalg import broadcast, einsum, matmul, pad, reshape, slice, transpose
from .reduce import logsumexp, max, mean, softmax, sum, unreduce
from .z2 import and_, not_, one, or_, xor, zero
from .convolution import avgpool, conv, fold, maxpool, unfold
from .random import bernoulli, normal, random_split, uniform
from .shape import concat, scatter_add, split, take


def get(name: str) -> OpFunction:
    """The op called ``name`` (as in a ``.cat`` file: ``not``, ``or`` ...)."""
    return OpFunction(lookup(name))


def __getattr__(name: str):
    raise UnknownOpError(f"unknown op {name!r}{did_you_mean(name, [*PRIMITIVES, *_EXTRA])}")


_EXTRA = ["matmul", "zeros", "ones", "zero", "one", "xor", "and_", "not_", "or_"]

__all__ = sorted(set(PRIMITIVES) - {"not", "or"} | set(_EXTRA) | {"get", "unreduce"})
