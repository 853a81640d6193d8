"""Elementwise arithmetic, constants, casts and comparisons.

Over ``bit`` (Z2) ``add`` is XOR and ``mul`` is AND; ``neg`` is the identity and
``sub`` equals ``add``. The reverse derivatives are the same formal rules in every
dtype, which is what makes a Z2 circuit a polynomial rather than a truth table.
"""

from __future__ import annotations

import numpy as np

from ..core.primitive import Sample, expect_float, expect_same
from ..core.types import DTYPES, DType, Ob, TensorType, bit, f32, f64, i64
from ..errors import CatgradTypeError
from ._base import bit_samples, both, declare, samples_of, torch



def _binary(name: str, floats_only: bool = False, allow_bit: bool = True):
    def rule(dom):
        t = expect_same(name, dom)
        if floats_only:
            expect_float(name, t)
        if not allow_bit and t.dtype.name == "bit":
            raise CatgradTypeError(f"{name} is not defined on bits, got {t}")
        return t

    return rule


def _unary(name: str, floats_only: bool = False):
    """The type rule of a one-input elementwise op: the output type is the input's.
    It takes no attributes, so ``sin(x, foo=1)`` is refused as an unknown attribute."""
    def rule(dom):
        if floats_only:
            expect_float(name, dom[0])
        return dom[0]

    return rule


def _ident(x):
    return x


add = declare(
    "add",
    _binary("add"),
    numpy={"float": np.add, "int": np.add, "bit": np.logical_xor},
    torch={"float": lambda x, y: torch.add(x, y), "int": lambda x, y: torch.add(x, y),
           "bit": lambda x, y: torch.logical_xor(x, y)},
    rd=lambda xs, ys, dys: [dys[0], dys[0]],
    doc="x + y (XOR on bits). R: ((x, y), d) -> (d, d).",
    arity=2, samples=both(samples_of(2), bit_samples(2)),
)

sub = declare(
    "sub",
    _binary("sub"),
    numpy={"float": np.subtract, "int": np.subtract, "bit": np.logical_xor},
    torch={"float": lambda x, y: torch.sub(x, y), "int": lambda x, y: torch.sub(x, y),
           "bit": lambda x, y: torch.logical_xor(x, y)},
    rd=lambda xs, ys, dys: [dys[0], -dys[0]],
    doc="x - y (XOR on bits). R: ((x, y), d) -> (d, -d).",
    arity=2, samples=both(samples_of(2), bit_samples(2)),
)

mul = declare(
    "mul",
    _binary("mul"),
    numpy={"float": np.multiply, "int": np.multiply, "bit": np.logical_and},
    torch={"float": lambda x, y: torch.mul(x, y), "int": lambda x, y: torch.mul(x, y),
           "bit": lambda x, y: torch.logical_and(x, y)},
    rd=lambda xs, ys, dys: [xs[1] * dys[0], xs[0] * dys[0]],
    doc="x * y (AND on bits). R: ((x, y), d) -> (y d, x d).",
    arity=2, samples=both(samples_of(2), bit_samples(2)),
)

div = declare(
    "div",
    _binary("div", floats_only=True),
    numpy=np.true_divide,
    torch=lambda x, y: torch.div(x, y),
    rd=lambda xs, ys, dys: [dys[0] / xs[1], -(dys[0] * ys[0] / xs[1])],
    doc="x / y. R: ((x, y), d) -> (d / y, -d x / y^2).",
    arity=2, samples=samples_of(2, domain=(0.5, 2.0)),
)

neg = declare(
    "neg",
    _unary("neg"),
    numpy={"float": np.negative, "int": np.negative, "bit": _ident},
    torch={"float": lambda x: torch.neg(x), "int": lambda x: torch.neg(x), "bit": _ident},
    torch_views=lambda op: op.dom[0].dtype.name == "bit",
    rd=lambda xs, ys, dys: [-dys[0]],
    doc="-x (the identity on bits). R: (x, d) -> -d.",
    samples=both(samples_of(1), bit_samples(1)),
)


def _pow_rd(xs, ys, dys, p):
    if p == 1.0:
        return [dys[0]]
    return [dys[0] * (xs[0] ** (p - 1.0)) * p]


def _pow_rule(dom, p):
    """x ** p keeps the (float) type of x; the exponent p is one real number."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise CatgradTypeError(f"pow: the exponent p must be a number, got {p!r}")
    return _unary("pow", floats_only=True)(dom)


pow = declare(
    "pow",
    _pow_rule,
    numpy=lambda x, p: np.power(x, p),
    torch=lambda x, p: torch.pow(x, p),
    sympy=lambda x, p: x**p,
    rd=_pow_rd,
    doc="x ** p for a constant real p. R: (x, d) -> p x^(p-1) d.",
    samples=both(samples_of(1, domain=(0.5, 2.0), attrs={"p": 1.5}), samples_of(1, attrs={"p": 2.0}),
                 samples_of(1, domain=(0.5, 2.0), attrs={"p": -1.0})),
)


def _max_rd(xs, ys, dys):
    mask = ge(xs[0], xs[1])
    return [dys[0] * mask, dys[0] * (1.0 - mask)]


maximum = declare(
    "maximum",
    _binary("maximum", allow_bit=False),
    numpy=np.maximum,
    torch=lambda x, y: torch.maximum(x, y),
    rd=_max_rd,
    doc="Elementwise max. R sends d to x where x >= y, else to y.",
    arity=2, samples=samples_of(2),
)


def _min_rd(xs, ys, dys):
    mask = ge(xs[1], xs[0])
    return [dys[0] * mask, dys[0] * (1.0 - mask)]


minimum = declare(
    "minimum",
    _binary("minimum", allow_bit=False),
    numpy=np.minimum,
    torch=lambda x, y: torch.minimum(x, y),
    rd=_min_rd,
    doc="Elementwise min. R sends d to x where x <= y, else to y.",
    arity=2, samples=samples_of(2),
)

# -- comparisons: 0/1 masks in the inputs' dtype, locally constant (zero derivative) ---

ge = declare(
    "ge",
    _binary("ge", allow_bit=False),
    numpy=lambda x, y, dtype: (x >= y).astype(dtype),
    torch=lambda x, y, dtype: torch.ge(x, y).to(dtype),
    needs=("dtype",),
    doc="1 where x >= y, else 0, in the inputs' dtype. Locally constant: R = 0.",
    arity=2, samples=samples_of(2, dtypes=(f64, f32, i64)),
)

gt = declare(
    "gt",
    _binary("gt", allow_bit=False),
    numpy=lambda x, y, dtype: (x > y).astype(dtype),
    torch=lambda x, y, dtype: torch.gt(x, y).to(dtype),
    needs=("dtype",),
    doc="1 where x > y, else 0, in the inputs' dtype. Locally constant: R = 0.",
    arity=2, samples=samples_of(2, dtypes=(f64, f32, i64)),
)

def _np_eq(x, y, dtype, out=None):
    """[x == y] in ``dtype``; with ``out=`` in one pass (the booleans cast as written)."""
    if out is None:
        return (x == y).astype(dtype)
    return np.equal(x, y, out=out, casting="unsafe")


_np_eq.writes_out = True

eq = declare(
    "eq",
    _binary("eq"),
    numpy=_np_eq,
    torch=lambda x, y, dtype: torch.eq(x, y).to(dtype),
    needs=("dtype",),
    doc="1 where x == y, else 0, in the inputs' dtype. Locally constant: R = 0.",
    arity=2, samples=samples_of(2, dtypes=(f64, f32, i64)),
)

# -- constants and casts ----------------------------------------------------------------


def _constant_rule(dom, type, value):
    if not isinstance(type, TensorType):
        raise CatgradTypeError(f"constant needs type=<a wire type>, got {type!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CatgradTypeError(f"constant value must be a number, got {value!r}")
    if type.dtype.name == "bit" and value not in (0, 1):
        raise CatgradTypeError(f"a bit constant must be 0 or 1, got {value!r}")
    return type


constant = declare(
    "constant",
    _constant_rule,
    numpy=lambda type, value, shape, dtype: np.full(shape, value, dtype=dtype),
    torch=lambda type, value, shape, dtype: torch.full(shape, value, dtype=dtype),
    needs=("shape", "dtype"),
    doc="() -> type, every entry equal to value. R: the unique map to ().",
    arity=0, kind="constant",
    samples=lambda: [Sample(Ob(), {"type": f64[3, 2], "value": 1.5}), Sample(Ob(), {"type": f32[()], "value": -2.0}),
                     Sample(Ob(), {"type": bit[4], "value": 1}), Sample(Ob(), {"type": i64[2], "value": 7})],
)


def _cast_rule(dom, dtype):
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype)
    if not isinstance(dtype, DType):
        raise CatgradTypeError(f"cast needs dtype= one of {sorted(DTYPES)}")
    return dom[0].with_dtype(dtype)


def _cast_rd(xs, ys, dys, dtype):
    if xs[0].dtype.is_float and ys[0].dtype.is_float:
        return [cast(dys[0], dtype=xs[0].dtype)]
    return [None]


cast = declare(
    "cast",
    _cast_rule,
    # the op's own dtype= attribute is replaced by the backend's dtype object of the output
    numpy=lambda x, dtype: x.astype(dtype),
    torch=lambda x, dtype: x.to(dtype),
    torch_views=lambda op: op.cod[0].dtype == op.dom[0].dtype,  # .to() of the same dtype is x itself
    needs=("dtype",),
    rd=_cast_rd,
    doc="Convert to another dtype. Between floats R casts back; otherwise R = 0.",
    samples=lambda: [Sample(Ob(f32[3, 2]), {"dtype": f64}), Sample(Ob(f64["B"]), {"dtype": f32}),
                     Sample(Ob(f64[4]), {"dtype": i64}), Sample(Ob(f64[2, 3]), {"dtype": f64})],
)


def zeros(t: TensorType):
    """The constant 0 of type ``t`` as a diagram ``() -> t``."""
    return constant(type=t, value=0 if not t.dtype.is_float else 0.0)


def ones(t: TensorType):
    """The constant 1 of type ``t`` as a diagram ``() -> t``."""
    return constant(type=t, value=1 if not t.dtype.is_float else 1.0)


# -- selection ----------------------------------------------------------------------------


def _where_rule(dom):
    t = expect_same("where", dom)
    if t.dtype.name == "bit":
        raise CatgradTypeError(f"where is not defined on bits (use c x + (1 + c) y), got {t}")
    return t


def _where_rd(xs, ys, dys):
    c, d = xs[0], dys[0]
    zero = d.const(0)
    return [None, where(c, d, zero), where(c, zero, d)]


where = declare(
    "where",
    _where_rule,
    numpy=lambda c, x, y: np.where(c != 0, x, y),
    torch=lambda c, x, y: torch.where(c != 0, x, y),
    rd=_where_rd,
    arity=3, samples=samples_of(3),
    doc="where(c, x, y): x where the mask c is non-zero, else y (c, x, y of one type). "
    "Unlike c x + (1 - c) y it never lets a NaN or inf of the branch not taken through. "
    "R: ((c, x, y), d) -> (0, where(c, d, 0), where(c, 0, d)).",
)
