"""Loss functions as parametrised maps whose parameter is the label.

Each constructor takes the prediction's wire type ``B`` and returns a
:class:`~catgrad.Para` with one parameter, ``label : B``, and body
``label x pred -> L``. Under R the loss becomes a parametric lens whose backward
map, evaluated at a learning-rate value ``alpha``, returns ``alpha * dL/dpred``
(docs/mathematics.md, section 3).

- ``mse``: ``L = mean (pred - label)^2`` over every entry, as ``torch.nn.functional.mse_loss``;
  R: ``alpha * 2 (pred - label) / N`` for N entries.
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

Reductions mean what they mean in torch, in Python and on the command line alike:

- ``reduction="mean"`` (the default) averages the per-example losses: over every entry for
  ``mse``, ``binary_cross_entropy`` and ``dot``; over every row (every index but the class
  axis) for ``softmax_cross_entropy``. The count is computed from the wire's shape, so a
  symbolic batch axis needs no recompile.
- ``reduction="sum"`` adds them up.
- ``reduction="half_sum"`` is half the sum, ``1/2 sum (pred - label)^2`` for ``mse``: the
  protocol of Cruttwell, Gavranovic, Ghani, Wilson and Zanasi's experiments, whose reverse
  derivative is exactly ``alpha (pred - label)``. It must be asked for by name.

:func:`default_for` chooses a loss when none is given: cross-entropy for class scores, mean
squared error for regression targets, xor for bits -- and asks, rather than guessing mse, when
it cannot tell which the model's output is.
"""

from __future__ import annotations

import functools

from .calculus.para import Para, Param
from .core.diagram import Diagram, Wire, build
from .core.types import Ob, TensorType, as_ob
from .errors import CatgradError, CatgradTypeError, did_you_mean
from .init import zeros
from . import ops

REDUCTIONS = ("mean", "sum", "half_sum")


def _pred_type(pred_type) -> TensorType:
    ob = as_ob(pred_type) if not isinstance(pred_type, TensorType) else Ob(pred_type)
    if len(ob) != 1:
        raise CatgradTypeError(f"a loss takes a single prediction wire, got {ob}")
    return ob[0]


def _reduce(total: Wire, pred: Wire, reduction: str, class_axis: bool = False) -> Wire:
    """``total`` (the sum of the per-entry losses) reduced as ``reduction`` says; with
    ``class_axis`` the last axis of ``pred`` belongs to one example, so the mean is per row."""
    if reduction == "sum":
        return total
    if reduction == "half_sum":
        return total * 0.5
    if reduction == "mean":
        shape = pred.shape[:-1] if class_axis else pred.shape
        if not shape:
            return total
        # the count as a wire, so a symbolic batch axis needs no recompile
        n = pred.builder.constant(pred.type.with_shape(shape), 1.0).sum()
        return total / n
    raise _bad_reduction(reduction)


def _bad_reduction(reduction) -> CatgradError:
    return CatgradError(f"unknown reduction {reduction!r}{did_you_mean(str(reduction), REDUCTIONS)};"
                        f" use one of {', '.join(REDUCTIONS)}")


def _make(name: str, t: TensorType, body, reduction: str | None = "mean", float_only=True) -> Para:
    if float_only and not t.dtype.is_float:
        raise CatgradTypeError(f"the {name} loss needs a float prediction (f32 or f64), got {t}")
    if reduction is not None and reduction not in REDUCTIONS:
        raise _bad_reduction(reduction)
    d = build(Ob(t, t), lambda b, ins: [body(*ins)])
    return Para([Param("label", t, zeros())], d)


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
def mse(pred_type, reduction: str = "mean") -> Para:
    """Squared error: ``mean (pred - label)^2`` over every entry (torch's ``mse_loss``);
    ``reduction="sum"`` is the plain sum, ``reduction="half_sum"`` is ``1/2 sum (pred - label)^2``."""
    t = _pred_type(pred_type)

    def body(label, pred):
        e = pred - label
        return _reduce((e * e).sum(), pred, reduction)

    return _make("mse", t, body, reduction)


@_constructor
def softmax_cross_entropy(pred_type, reduction: str = "mean") -> Para:
    """Cross-entropy of ``softmax(pred)`` (over the last axis) against ``label``, averaged
    over the rows (torch's ``cross_entropy`` with probability targets)."""
    t = _pred_type(pred_type)
    if t.rank == 0:
        raise CatgradTypeError(f"softmax_cross_entropy needs logits with a class axis, got {t}")

    def body(label, pred):
        lse = ops.logsumexp(pred, axes=t.rank - 1, keepdims=True).broadcast(t.shape)
        return _reduce((label * (lse - pred)).sum(), pred, reduction, class_axis=True)

    return _make("softmax_cross_entropy", t, body, reduction)


@_constructor
def binary_cross_entropy(pred_type, reduction: str = "mean", from_logits: bool = True, eps: float = 1e-7) -> Para:
    """Binary cross-entropy, averaged over every entry; the prediction is a logit (default)
    or a probability."""
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
def dot(pred_type, reduction: str = "mean") -> Para:
    """``mean label * pred`` (``reduction="sum"``: ``sum label * pred``)."""
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


def default_for(pred_type, classification: bool | None = None):
    """The loss to use when none is named: ``xor`` for a bit output, cross-entropy for class
    scores (``classification=True``), mean squared error for regression targets
    (``classification=False``). With ``classification=None`` a float output is ambiguous, and
    the answer is an error that asks for a loss instead of a silent mse on a classifier."""
    t = _pred_type(pred_type)
    if t.dtype.name == "bit":
        return xor
    if classification is None:
        raise CatgradError(
            f"which loss? the model outputs {t}: say loss='cross_entropy' if these are class scores"
            " (logits), loss='mse' for regression targets, or pass a loss constructor or Para"
        )
    return softmax_cross_entropy if classification else mse


def from_diagram(d: Diagram, name: str = "loss") -> Para:
    """A loss given as a diagram ``(label, pred) -> L`` (for example a ``.cat`` definition
    ``def l(y : f32[B, n], p : f32[B, n]) -> f32[]``), as a Para whose parameter is the label."""
    if not isinstance(d, Diagram) or len(d.dom) != 2 or d.dom[0] != d.dom[1]:
        dom = getattr(d, "dom", None)
        raise CatgradTypeError(f"a loss diagram takes (label, prediction) of one type, got {dom if dom is not None else d!r}")
    return Para([Param("label", d.dom[0], zeros())], d)


def resolve(loss, pred_type) -> Para:
    """A loss given as a name, a constructor, a ready Para or a diagram ``(label, pred) -> L``,
    as a Para for ``pred_type``; ``None`` asks :func:`default_for`."""
    if loss is None:
        loss = default_for(pred_type)
    if isinstance(loss, str):
        loss = get(loss)
    if isinstance(loss, Para):
        p = loss
    elif isinstance(loss, Diagram):
        p = from_diagram(loss)
    elif callable(loss):
        p = loss(pred_type)
        if isinstance(p, Diagram):
            p = from_diagram(p)
    else:
        raise CatgradError(f"a loss must be a name, a loss constructor or a Para, got {loss!r}")
    t = _pred_type(pred_type)
    if not isinstance(p, Para) or len(p.params) != 1 or p.P[0] != t or p.dom != Ob(t):
        raise CatgradTypeError(f"the loss must take a label and a prediction of type {t}, got {p}")
    return p


__all__ = ["mse", "softmax_cross_entropy", "binary_cross_entropy", "xor", "dot", "get", "resolve", "default_for",
           "from_diagram", "LOSSES", "REDUCTIONS"]
