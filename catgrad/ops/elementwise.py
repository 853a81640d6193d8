"""Smooth (and piecewise smooth) elementwise functions on float wires.

Each reverse derivative reuses the primal output ``y`` where that is cheaper:
R[exp](x, d) = d y, R[tanh](x, d) = d (1 - y^2), R[sigmoid](x, d) = d y (1 - y).
"""

from __future__ import annotations

import numpy as np

from .arith import _unary
from ._base import declare, samples_of, sympy, torch, vectorize


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
    """1/(1+e^-x) written through tanh (no overflow for large |x|); with ``out=`` the
    same four steps in that one buffer."""
    if out is None:
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    np.multiply(0.5, x, out=out)
    np.tanh(out, out=out)
    np.add(1.0, out, out=out)
    return np.multiply(0.5, out, out=out)


_np_sigmoid.writes_out = True
# the same four steps written out, for code generators
_np_sigmoid.inline = "np.multiply(0.5, np.add(1.0, np.tanh(np.multiply(0.5, {0}{out}){out}){out}){out})"
# ... and with 0.5 and 1.0 as 0-d arrays of the operand's dtype, second (the same bits:
# a Python float is converted to that dtype anyway, at a cost on every call)
_np_sigmoid.inline_at = lambda shapes, dtypes: (
    "np.multiply(np.add(np.tanh(np.multiply({0}, {c0}{out}){out}), {c1}{out}), {c0}{out})",
    [np.array(0.5, dtypes[0]), np.array(1.0, dtypes[0])])

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
_np_relu.inline = "np.maximum({0}, 0{out})"

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
