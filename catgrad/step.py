"""The supervised training step as one diagram.

Given an optimizer lens ``U : (P x S, P x S) -> (P, P')``, a model
``f : P x A -> B``, a loss ``loss : B x B -> L`` (parameter: the label) and a
learning-rate lens ``alpha : (L, L') -> (1, 1)``, the closed step of MATH.md
section 3 is

    p_bar = U.get(p, s)                               the optimizer picks the point
    b_p = f(p_bar, a)
    (_, b_p') = R[loss](b_t, b_p, alpha(loss(b_t, b_p)))
    (p', _) = R[f](p_bar, a, b_p')                    R[f] taken at p_bar
    (p_new, s_new) = U.put(p, s, p')

It is built by composing the pieces, not written by hand: the model and the loss
become parametric lenses ``(f, R[f])`` and ``(loss, R[loss])`` and are composed in
Para(Lens) (so the label is just the loss's parameter); the learning-rate lens
closes the backward pass; the optimizer lens reparametrises the result. The
resulting diagram is

    (params..., opt_state..., x, y) -> (params'..., opt_state'..., loss, pred)

which :func:`catgrad.compile` lowers with a backend. Over Z2 with the xor loss,
the identity learning rate and ``gradient_update`` this is Reverse Derivative
Ascent. :class:`TrainState` is the data the step threads through: parameters,
optimizer state and the update count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calculus.lens import Lens
from .calculus.para import Para, ParaLens
from .core.diagram import Builder, Diagram, build, id as identity_diagram
from .core.types import Ob
from .errors import CatgradError, CatgradTypeError, did_you_mean
from .optim.base import OptimizerLens

# -- learning rates ----------------------------------------------------------------------


def learning_rate(value=-1.0, loss_type: Ob | None = None) -> Diagram:
    """The put of the learning-rate lens ``(L, L') -> (1, 1)`` as a diagram ``L -> L'``:
    the constant ``value`` (``-1``: descent, the optimizer carries the step size)."""
    L = Ob(*loss_type)

    def put(b, ins):
        return [w.const(value) for w in ins]

    return build(L, put)


def identity_learning_rate(loss_type) -> Diagram:
    """The Z2 learning rate ``alpha(l) = l``."""
    return identity_diagram(Ob(*loss_type))


def lr_put(lr_lens, L: Ob) -> Diagram:
    if lr_lens is None:
        if all(t.dtype.name == "bit" for t in L):
            return identity_learning_rate(L)
        return learning_rate(-1.0, L)
    if isinstance(lr_lens, (int, float)) and not isinstance(lr_lens, bool):
        return learning_rate(float(lr_lens), L)
    if isinstance(lr_lens, Lens):
        if lr_lens.A != L or lr_lens.B != Ob() or lr_lens.B_ != Ob() or lr_lens.A_ != L:
            raise CatgradTypeError(f"a learning rate is a lens ({L}, {L}) -> ((), ()), got {lr_lens!r}")
        return lr_lens.put
    if isinstance(lr_lens, Diagram):
        if lr_lens.dom != L or lr_lens.cod != L:
            raise CatgradTypeError(f"a learning rate put must map the loss type {L} to itself, got {lr_lens.dom} -> {lr_lens.cod}")
        return lr_lens
    raise CatgradError(f"lr_lens must be a number, a Lens to the unit or a diagram L -> L, got {lr_lens!r}")


# -- the step diagram ----------------------------------------------------------------------


def step_diagram(model: Para, loss: Para, opt: OptimizerLens, lr_put: Diagram) -> Diagram:
    """The closed supervised step (see the module docstring)."""
    n, k = len(model.P), len(opt.S)
    if len(model.dom) != 1 or len(model.cod) != 1:
        raise CatgradTypeError(f"the step needs a model with one input and one output wire, got {model.dom} -> {model.cod}")
    ml = ParaLens.of(model) >> ParaLens.of(loss)  # parameters (label, P...)
    U = opt.lens
    A, B = model.dom, model.cod

    def body(b: Builder, ins):
        ps, ss, x, y = ins[:n], ins[n : n + k], ins[n + k], ins[n + k + 1]
        pbar = b.call(U.get, ps + ss)
        pred = b.call(model.body, pbar + [x])
        ls = b.call(ml.get, [y] + pbar + [x])
        dl = b.call(lr_put, ls)
        back = b.call(ml.put, [y] + pbar + [x] + dl)  # (label', P', x')
        dp = back[1 : 1 + n]
        new = b.call(U.put, ps + ss + dp)
        return new + ls + pred

    return build(model.P @ opt.S @ A @ B, body)


# -- state ---------------------------------------------------------------------------------


def to_host(v) -> np.ndarray:
    """A backend value as a numpy array: torch tensors are copied off their device
    (bfloat16, which numpy lacks, as float32); numpy values pass through."""
    if hasattr(v, "detach"):
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":
            v = v.float()
        return v.numpy()
    return np.asarray(v)


@dataclass
class TrainState:
    """Parameters, optimizer state and the number of updates done."""

    params: dict
    opt_state: dict = field(default_factory=dict)
    step: int = 0

    def flat(self) -> dict:
        """``{"param/<name>": ..., "opt/<key>": ..., "step": int64 scalar}``."""
        out = {f"param/{k}": to_host(v) for k, v in self.params.items()}
        out.update({f"opt/{k}": to_host(v) for k, v in self.opt_state.items()})
        out["step"] = np.asarray(self.step, dtype=np.int64)
        return out

    @classmethod
    def from_flat(cls, d: dict) -> "TrainState":
        params, opt = {}, {}
        step = 0
        for k, v in d.items():
            if k.startswith("param/"):
                params[k[6:]] = np.asarray(v)
            elif k.startswith("opt/"):
                opt[k[4:]] = np.asarray(v)
            elif k == "step":
                step = int(np.asarray(v))
            else:
                raise CatgradError(f"unexpected entry {k!r} in a flat train state")
        return cls(params, opt, step)

    def with_hyper(self, name: str, value: float) -> "TrainState":
        """A copy with every optimizer hyperparameter called ``name`` (e.g. ``"lr"``) set to
        ``value``; raises if there is none. The step is not recompiled: it is data."""
        keys = [k for k in self.opt_state if k.rsplit(".", 1)[-1] == name]
        if not keys:
            fields = sorted({k.rsplit(".", 1)[-1] for k in self.opt_state})
            raise CatgradError(f"no optimizer hyperparameter {name!r}{did_you_mean(name, fields)}")
        opt = dict(self.opt_state)
        for k in keys:
            opt[k] = np.asarray(value, dtype=opt[k].dtype)
        return TrainState(dict(self.params), opt, self.step)


__all__ = ["to_host", "TrainState", "step_diagram", "learning_rate", "identity_learning_rate", "lr_put"]
