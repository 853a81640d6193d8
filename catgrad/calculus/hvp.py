"""Second-order products built from R alone: gradients, Hessian-vector products and
Gauss-Newton-vector products, plus the JAX / torch.func spellings of D and R.

For a scalar-valued ``f : A1 x ... x An -> scalar``:

- ``grad(f) : A -> A`` is ``x |-> R(f)(x, 1) = grad f(x)``;
- ``hvp(f) = D(grad(f)) : A x A -> A`` is ``(x, v) |-> H_f(x) v``, forward over
  reverse. D is itself derived from R (``D(g)(a, v) = pi1 R(R(g))((a, 0), v)``), so the
  whole product is R applied three times, one diagram in the same signature as f,
  compiled and evaluated like any other. Block i of the output is
  ``sum_j d^2 f / dx_i dx_j . v_j``.

For ``f : A -> B`` followed by a scalar loss ``l : B -> scalar``:

- ``gnvp(f, l) : A x A -> A`` is ``(x, v) |-> J_f(x)^T H_l(f(x)) J_f(x) v``, the
  generalised Gauss-Newton matrix of ``f >> l`` times v: D of f, the Hessian-vector
  product of the loss alone, then R of f. Unlike ``hvp(f >> l)`` it drops the
  curvature of f, so it is positive semi-definite whenever l is convex.
"""

from __future__ import annotations

from ..core.diagram import Builder, Diagram, as_diagram
from ..errors import CatgradTypeError
from ..ops import constant
from .rdc import D, R, reverse


def _scalar_output(f: Diagram, what: str) -> None:
    if len(f.cod) != 1 or f.cod[0].shape != () or not f.cod[0].dtype.is_float:
        raise CatgradTypeError(f"{what} needs a diagram with one float scalar output, got output type {f.cod}")


def grad(f) -> Diagram:
    """``grad(f) : A -> A``, ``x |-> grad f(x)`` for a scalar-valued f: R(f) at cotangent 1."""
    f = as_diagram(f)
    _scalar_output(f, "grad")
    b = Builder()
    xs = [b.input(t) for t in f.dom]
    one = constant(type=f.cod[0], value=1.0, builder=b)
    dxs = reverse(f, b, xs, [one])
    outs = [constant(type=x.type, value=0.0, builder=b) if d is None else d for x, d in zip(xs, dxs)]
    return Diagram(b.finish([w.id for w in xs], [w.id for w in outs]))


def hvp(f) -> Diagram:
    """The Hessian-vector product ``hvp(f) : A x A -> A``, ``(x, v) |-> H_f(x) v``,
    as D of the gradient (forward over reverse).

    >>> import catgrad as cg, numpy as np
    >>> cube = cg.trace(cg.f64[()])(lambda x: x * x * x)  # f'' = 6 x
    >>> float(cg.evaluate(cg.hvp(cube), np.float64(2.0), np.float64(1.0))[0])
    12.0
    """
    f = as_diagram(f)
    _scalar_output(f, "hvp")
    return D(grad(f))


def gnvp(f, loss) -> Diagram:
    """The Gauss-Newton-vector product of ``f : A -> B`` followed by the scalar
    ``loss : B -> scalar``: ``(x, v) |-> J_f(x)^T H_loss(f(x)) J_f(x) v``, a diagram
    ``A x A -> A``.

    To take it with respect to parameters only, let f pass the data and targets
    through and give them a zero tangent: the parameter blocks of the output are
    then the Gauss-Newton product of the parameters.
    """
    f, loss = as_diagram(f), as_diagram(loss)
    _scalar_output(loss, "gnvp")
    if f.cod != loss.dom:
        raise CatgradTypeError(f"gnvp: the model's output type {f.cod} is not the loss's input type {loss.dom}")
    n, m = len(f.dom), len(f.cod)
    df, h, rf = D(f), hvp(loss), R(f)
    b = Builder()
    xs = [b.input(t) for t in f.dom]
    vs = [b.input(t) for t in f.dom]
    ys = b.call(f, xs)
    us = b.call(df, xs + vs)  # J_f v
    ws = b.call(h, ys + us)  # H_loss J_f v
    outs = b.call(rf, xs + ws)  # J_f^T H_loss J_f v
    assert len(outs) == n and len(ws) == m
    return Diagram(b.finish([w.id for w in xs + vs], [w.id for w in outs]))


def jvp(f) -> Diagram:
    """``jvp(f) = D(f) : A x A -> B``, ``(x, v) |-> J_f(x) v`` (the name JAX and
    torch.func use for the forward derivative)."""
    return D(f)


def vjp(f) -> Diagram:
    """``vjp(f) = R(f) : A x B -> A``, ``(x, w) |-> J_f(x)^T w`` (the name JAX and
    torch.func use for the reverse derivative)."""
    return R(f)


__all__ = ["grad", "hvp", "gnvp", "jvp", "vjp"]
