"""Loss functions as parametrised maps whose parameter is the label.

Each constructor takes the prediction's wire type ``B`` and returns a
:class:`~catgrad.Para` with one parameter, ``label : B``, and body
``label x pred -> L``. Under R the loss becomes a parametric lens whose backward
map, evaluated at a learning-rate value ``alpha``, returns ``alpha * dL/dpred``
(MATH.md section 3).

- ``mse``: ``L = 1/2 sum (pred - label)^2``;  R: ``alpha (pred - label)``.
- ``softmax_cross_entropy``: ``L = sum_i label_i (logsumexp(pred) - pred_i)`` over the
  last axis (the logits), which is ``-sum label log softmax(pred)`` computed without
  overflow; R: ``alpha (sum(label) softmax(pred) - label)``, so for one-hot labels
  ``alpha (softmax(pred) - label)``.
- ``binary_cross_entropy``: with ``from_logits=True`` (the default) the prediction is
  a logit z and ``L = sum softplus(z) - label z``, which equals
  ``-sum label log sigmoid(z) + (1 - label) log(1 - sigmoid(z))`` and is stable for
  every z; R: ``alpha (sigmoid(z) - label)``. With ``from_logits=False`` the prediction is
  a probability q, clipped to ``[eps, 1 - eps]`` before the logarithms (so q = 0 or 1
  gives a finite loss; the gradient is zero outside the clip range).
- ``xor`` (Z2): ``L = label + pred`` (XOR, elementwise, a bit vector); R: ``(alpha, alpha)``.
  With the identity learning rate this is Reverse Derivative Ascent's error signal.
- ``dot``: ``L = sum label * pred`` (deep dreaming: the label is a direction to ascend).

``reduction="sum"`` (default) sums over every axis; ``reduction="mean"`` divides by the
size of the leading (batch) axis, which may be symbolic.
"""

from __future__ import annotations

import functools

from .calculus.para import Para, Param
from .core.diagram import Wire, build
from .core.types import Ob, TensorType, as_ob
from .errors import CatgradError, CatgradTypeError, did_you_mean
from .init import zeros
from . import ops

REDUCTIONS = ("sum", "mean")


def _pred_type(pred_type) -> TensorType:
    ob = as_ob(pred_type) if not isinstance(pred_type, TensorType) else Ob(pred_type)
    if len(ob) != 1:
        raise CatgradTypeError(f"a loss takes a single prediction wire, got {ob}")
    return ob[0]


def _reduce(total: Wire, pred: Wire, reduction: str) -> Wire:
    if reduction == "sum":
        return total
    if reduction == "mean":
        if pred.type.rank == 0:
            return total
        # the batch size as a wire, so a symbolic batch axis needs no recompile
        n = pred.builder.constant(pred.type.with_shape(pred.shape[:1]), 1.0).sum()
        return total / n
    raise CatgradError(f"unknown reduction {reduction!r}{did_you_mean(str(reduction), REDUCTIONS)}; use 'sum' or 'mean'")


def _make(name: str, t: TensorType, body, reduction: str | None = "sum", float_only=True) -> Para:
    if float_only and not t.dtype.is_float:
        raise CatgradTypeError(f"the {name} loss needs a float prediction (f32 or f64), got {t}")
    if reduction is not None and reduction not in REDUCTIONS:
        raise CatgradError(f"unknown reduction {reduction!r}{did_you_mean(str(reduction), REDUCTIONS)}; use 'sum' or 'mean'")
    d = build(Ob(t, t), lambda b, ins: [body(*ins)])
    para = Para([Param("label", t, zeros())], d)
    para.reduction = reduction  # how data-parallel training combines the processes' gradients
    return para


def _constructor(fn):
    """Lets a loss constructor be configured before the prediction type is known:
    ``cg.loss.mse(reduction="mean")`` (options only) is the constructor with those
    options fixed, ready for ``cg.compile(..., loss=...)``."""

    @functools.wraps(fn)
    def make(pred_type=None, **options):
        if pred_type is None:
            return functools.partial(make, **options)
        return fn(pred_type, **options)

    return make


@_constructor
def mse(pred_type, reduction: str = "sum") -> Para:
    """Squared error ``1/2 sum (pred - label)^2`` (``/ batch`` with ``reduction='mean'``)."""
    t = _pred_type(pred_type)

    def body(label, pred):
        e = pred - label
        return _reduce((e * e).sum() * 0.5, pred, reduction)

    return _make("mse", t, body, reduction)


@_constructor
def softmax_cross_entropy(pred_type, reduction: str = "sum") -> Para:
    """Cross-entropy of ``softmax(pred)`` (over the last axis) against ``label``."""
    t = _pred_type(pred_type)
    if t.rank == 0:
        raise CatgradTypeError(f"softmax_cross_entropy needs logits with a class axis, got {t}")

    def body(label, pred):
        lse = ops.logsumexp(pred, axes=t.rank - 1, keepdims=True).broadcast(t.shape)
        return _reduce((label * (lse - pred)).sum(), pred, reduction)

    return _make("softmax_cross_entropy", t, body, reduction)


@_constructor
def binary_cross_entropy(pred_type, reduction: str = "sum", from_logits: bool = True, eps: float = 1e-7) -> Para:
    """Binary cross-entropy; the prediction is a logit (default) or a probability."""
    t = _pred_type(pred_type)

    def body(label, pred):
        if from_logits:
            total = (ops.softplus(pred) - label * pred).sum()
        else:
            q = ops.minimum(ops.maximum(pred, pred.const(eps)), pred.const(1.0 - eps))
            total = -(label * ops.log(q) + (1.0 - label) * ops.log(1.0 - q)).sum()
        return _reduce(total, pred, reduction)

    return _make("binary_cross_entropy", t, body, reduction)


@_constructor
def xor(pred_type, reduction=None) -> Para:
    """The Z2 loss ``label + pred`` (XOR), a bit vector: which bits are wrong."""
    t = _pred_type(pred_type)
    if t.dtype.name != "bit":
        raise CatgradTypeError(f"the xor loss is defined on bits, got {t}")
    return _make("xor", t, lambda label, pred: label ^ pred, None, float_only=False)


@_constructor
def dot(pred_type, reduction: str = "sum") -> Para:
    """``sum label * pred``."""
    t = _pred_type(pred_type)
    return _make("dot", t, lambda label, pred: _reduce((label * pred).sum(), pred, reduction), reduction)


LOSSES = {
    "mse": mse,
    "softmax_cross_entropy": softmax_cross_entropy,
    "cross_entropy": softmax_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "bce": binary_cross_entropy,
    "xor": xor,
    "dot": dot,
}


def get(name: str):
    """The loss constructor called ``name``."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise CatgradError(f"unknown loss {name!r}{did_you_mean(str(name), LOSSES)}; known: {', '.join(LOSSES)}") from None


def resolve(loss, pred_type) -> Para:
    """A loss given as a name, a constructor or a ready Para, as a Para for ``pred_type``."""
    if isinstance(loss, str):
        loss = get(loss)
    if isinstance(loss, Para):
        p = loss
    elif callable(loss):
        p = loss(pred_type)
    else:
        raise CatgradError(f"a loss must be a name, a loss constructor or a Para, got {loss!r}")
    t = _pred_type(pred_type)
    if len(p.params) != 1 or p.P[0] != t or p.dom != Ob(t):
        raise CatgradTypeError(f"the loss must take a label and a prediction of type {t}, got {p}")
    return p


__all__ = ["mse", "softmax_cross_entropy", "binary_cross_entropy", "xor", "dot", "get", "resolve", "LOSSES"]
