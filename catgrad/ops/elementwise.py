"""Smooth (and piecewise smooth) elementwise functions on float wires.

Each reverse derivative reuses the primal output ``y`` where that is cheaper:
R[exp](x, d) = d y, R[tanh](x, d) = d (1 - y^2), R[sigmoid](x, d) = d y (1 - y).
"""

from __future__ import annotations

import numpy as np

from .arith import _unary
from ._base import _Lazy, declare, samples_of, sympy, torch, vectorize

_special = _Lazy("scipy.special")  # (imported on the first sigmoid: it takes a few tenths of a second)


def _float_unary(name, numpy, torch_fn, sympy_fn, rd, doc, domain=None, needs=()):
    return declare(
        name,
        _unary(name, floats_only=True),
        numpy=numpy,
        torch=torch_fn,
        sympy=vectorize(sympy_fn) if sympy_fn else None,
        rd=rd,
        doc=doc,
        samples=samples_of(1, domain=domain),
        needs=needs,
    )


exp = _float_unary(
    "exp", np.exp, lambda x: torch.exp(x), lambda v: sympy.exp(v),
    lambda xs, ys, dys: [dys[0] * ys[0]], "e^x. R: (x, d) -> d e^x.",
)

log = _float_unary(
    "log", np.log, lambda x: torch.log(x), lambda v: sympy.log(v),
    lambda xs, ys, dys: [dys[0] / xs[0]], "Natural logarithm. R: (x, d) -> d / x.", domain=(0.5, 3.0),
)

sin = _float_unary(
    "sin", np.sin, lambda x: torch.sin(x), lambda v: sympy.sin(v),
    lambda xs, ys, dys: [dys[0] * cos(xs[0])], "sin x. R: (x, d) -> d cos x.",
)

cos = _float_unary(
    "cos", np.cos, lambda x: torch.cos(x), lambda v: sympy.cos(v),
    lambda xs, ys, dys: [-(dys[0] * sin(xs[0]))], "cos x. R: (x, d) -> -d sin x.",
)

tanh = _float_unary(
    "tanh", np.tanh, lambda x: torch.tanh(x), lambda v: sympy.tanh(v),
    lambda xs, ys, dys: [dys[0] * (1.0 - ys[0] * ys[0])], "tanh x. R: (x, d) -> d (1 - tanh^2 x).",
)

def _np_sigmoid(x, out=None):
    """1/(1+e^-x) as scipy's ``expit`` ufunc computes it: right to a few ulp relatively for
    every x. (0.5 (1 + tanh(x/2)), a little faster in f32 and slower in f64, rounds to 0
    below about -17 in f32 and -37 in f64, where e^x is still far above the smallest float.)"""
    return _special.expit(x, out=out)


_np_sigmoid.writes_out = True
# for code generators: the ufunc itself, called straight from the generated code
_np_sigmoid.inline_at = lambda shapes, dtypes: ("{c0}({0}{out})", [_special.expit])

sigmoid = _float_unary(
    "sigmoid",
    _np_sigmoid,
    lambda x: torch.sigmoid(x),
    lambda v: 1 / (1 + sympy.exp(-v)),
    lambda xs, ys, dys: [dys[0] * ys[0] * (1.0 - ys[0])],
    "The logistic function 1 / (1 + e^-x). R: (x, d) -> d y (1 - y).",
)

sqrt = _float_unary(
    "sqrt", np.sqrt, lambda x: torch.sqrt(x), lambda v: sympy.sqrt(v),
    lambda xs, ys, dys: [dys[0] / (ys[0] * 2.0)], "Square root. R: (x, d) -> d / (2 sqrt x).", domain=(0.5, 3.0),
)

def _np_heaviside(x, dtype, out=None):
    """[x > 0] in ``dtype``; with ``out=`` in one pass (the comparison's booleans cast as written)."""
    if out is None:
        return (x > 0).astype(dtype)
    return np.greater(x, 0, out=out, casting="unsafe")


_np_heaviside.writes_out = True


def _np_relu(x, out=None):
    return np.maximum(x, 0, out=out)


_np_relu.writes_out = True
# for code generators: the zero as a 0-d array of the operand's dtype, made once (numpy
# converts a Python 0 into a new array on every call)
_np_relu.inline_at = lambda shapes, dtypes: ("np.maximum({0}, {c0}{out})", [np.zeros((), dtypes[0])])

heaviside = _float_unary(
    "heaviside",
    _np_heaviside,
    lambda x, dtype: torch.gt(x, 0).to(dtype),
    lambda v: sympy.Heaviside(v, 0),
    None,
    "1 where x > 0, else 0. Locally constant: R = 0.",
    needs=("dtype",),
)

sign = _float_unary(
    "sign", np.sign, lambda x: torch.sign(x), lambda v: sympy.sign(v),
    None, "-1, 0 or 1. Locally constant: R = 0.",
)

relu = _float_unary(
    "relu",
    _np_relu,
    lambda x: torch.relu(x),
    lambda v: sympy.Max(v, 0),
    lambda xs, ys, dys: [dys[0] * heaviside(xs[0])],
    "max(x, 0). R: (x, d) -> d [x > 0].",
)

abs = _float_unary(
    "abs", np.abs, lambda x: torch.abs(x), lambda v: sympy.Abs(v),
    lambda xs, ys, dys: [dys[0] * sign(xs[0])], "|x|. R: (x, d) -> d sign x.",
)

floor = _float_unary(
    "floor", np.floor, lambda x: torch.floor(x), lambda v: sympy.floor(v),
    None, "The largest integer <= x. Locally constant: R = 0.",
)

softplus = _float_unary(
    "softplus",
    lambda x: np.logaddexp(0.0, x).astype(x.dtype, copy=False),
    lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    lambda v: sympy.log(1 + sympy.exp(v)),
    lambda xs, ys, dys: [dys[0] * sigmoid(xs[0])],
    "log(1 + e^x), computed without overflow. R: (x, d) -> d sigmoid(x).",
)
