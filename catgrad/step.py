"""The supervised training step as one diagram, split at the gradient.

Given an optimizer lens ``U : (P x S, P x S) -> (P, P')``, a model
``f : P x A -> B``, a loss ``loss : B x B -> L`` (parameter: the label) and a
learning-rate lens ``alpha : (L, L') -> (1, 1)``, the closed step of docs/mathematics.md
section 3 is

    p_bar = U.get(p, s)                               the optimizer picks the point
    b_p = f(p_bar, a)
    (_, b_p') = R[loss](b_t, b_p, alpha(loss(b_t, b_p)))
    (p', _) = R[f](p_bar, a, b_p')                    R[f] taken at p_bar
    p'' = T(p, p')                                    a whole-model transform (default: p'' = p')
    (p_new, s_new) = U.put(p, s, p'')

in three pieces, composed into one diagram:

- the *gradient* (:func:`gradient_diagram`): ``(p, s, a, b_t) -> (p', loss, b_p)``,
  built by composing the model and the loss as parametric lenses ``(f, R[f])`` and
  ``(loss, R[loss])`` in Para(Lens) (the label is just the loss's parameter) and
  closing them with the learning-rate lens; an optimizer that needs the gradient at more
  than one point (SAM) transforms this diagram, so the step needs no special case;
- an optional *gradient transform* ``T : P x P' -> P'``, stateless, that sees every
  parameter and direction at once (a cross-process all-reduce goes here); stateful
  whole-model stages (global-norm clipping, trust ratios) belong to the optimizer,
  whose put runs them first when they come first in its chain;
- the *update*: the optimizer's put.

The resulting diagram is

    (params..., opt_state..., x, y) -> (params'..., opt_state'..., loss, pred)

(a model with state, :class:`~catgrad.calculus.stateful.Stateful`, adds its state after
the optimizer's on both sides: ``(..., opt_state..., state..., x, y) -> (..., opt_state'...,
state'..., loss, pred)``), which :func:`catgrad.compile` lowers with a backend. Over Z2 with the xor loss,
the identity learning rate and ``gradient_update`` this is Reverse Derivative
Ascent. :class:`TrainState` is the data the step threads through: parameters,
optimizer state and the update count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calculus.lens import Lens
from .calculus.para import Para, ParaLens
from .calculus.stateful import Stateful
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
    """The put ``L -> L`` of the learning-rate lens: ``-1`` on floats and the identity on bits by default, a number, a Lens to the unit, or a diagram."""
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


def gradient_diagram(model, loss: Para, opt: OptimizerLens, lr_put: Diagram) -> Diagram:
    """The gradient half of the step: ``(params..., opt_state..., x, y) -> (p'..., loss, pred)``,
    ``p'`` the downhill direction ``R[loss o f]`` sends back at the optimizer's point
    ``U.get(p, s)`` (``-grad`` with the default learning rate), as the optimizer takes it
    (:meth:`~catgrad.optim.base.OptimizerLens.gradient`: SAM evaluates it again at a
    perturbed point).

    A :class:`~catgrad.calculus.stateful.Stateful` model adds its state ``S`` after the
    optimizer state, read by the training form at the same point, and its new state after
    ``p'``: ``(params..., opt_state..., state..., x, y) -> (p'..., state'..., loss, pred)``;
    the gradient is that of its ``forward`` map, the state an input that is not learned
    (a second evaluation, as SAM's, reads the same state; the new state is the first's)."""
    stateful = isinstance(model, Stateful)
    fwd = model.forward("train") if stateful else model
    S = model.S if stateful else Ob()
    n, k, m = len(model.P), len(opt.S), len(S)
    if len(model.dom) != 1 or len(model.cod) != 1:
        raise CatgradTypeError(f"the step needs a model with one input and one output wire, got {model.dom} -> {model.cod}")
    ml = ParaLens.of(fwd) >> ParaLens.of(loss)  # parameters (label, P...)
    A, B = model.dom, model.cod

    def body(b: Builder, ins):
        ps, ss, st = ins[:n], ins[n : n + k], ins[n + k : n + k + m]
        x, y = ins[n + k + m], ins[n + k + m + 1]
        pbar = b.call(opt.lens.get, ps + ss)
        outs = b.call(model.train if stateful else model.body, pbar + st + [x])
        ls = b.call(ml.get, [y] + pbar + st + [x])
        dl = b.call(lr_put, ls)
        back = b.call(ml.put, [y] + pbar + st + [x] + dl)  # (label', P', S', x')
        return back[1 : 1 + n] + outs[1:] + ls + outs[:1]

    return opt.gradient(build(model.P @ opt.S @ S @ A @ B, body))


def gradient_transform_diagram(transform, P: Ob) -> Diagram:
    """A gradient transform as a diagram ``P x P' -> P'``: given as one, or as a stateless
    optimizer (e.g. a whole-model stage without hyperparameters), whose outgoing
    directions it is."""
    from .optim.base import Optimizer

    if isinstance(transform, Diagram):
        if transform.dom != P @ P or transform.cod != P:
            raise CatgradTypeError(f"a gradient transform maps (params, directions) {P @ P} to directions {P}, "
                                   f"got {transform.dom} -> {transform.cod}")
        return transform
    if isinstance(transform, Optimizer):
        lens = transform.lens([(f"p{i}", t) for i, t in enumerate(P)])
        if lens.keys:
            raise CatgradError(f"a gradient transform in the step must be stateless, but {transform!r} has state "
                               f"{lens.keys[:3]}; put it in the optimizer instead (it runs first in put)")
        n = len(P)

        def body(b, ins):
            return lens.emit_directions(ins[:n], [], ins[n:])[0]

        return build(P @ P, body)
    raise CatgradError(f"a gradient transform is a diagram P x P' -> P' or a stateless optimizer, got {transform!r}")


def step_diagram(model: Para, loss: Para, opt: OptimizerLens, lr_put: Diagram, gradient_transform=None,
                 world_size: int | None = None) -> Diagram:
    """The closed supervised step (see the module docstring): the gradient, then the
    optional ``gradient_transform``, then the optimizer's put, as one diagram.

    ``world_size`` (data-parallel training over that many processes, each fed its
    shard of the global batch) all-reduces the gradient and the loss first, so every
    process gets those of the global batch: ``all_reduce`` (the mean over processes)
    for a mean-reduced loss, ``world_size * all_reduce`` for a summed one (the loss's
    ``reduction``; a loss without one counts as summed)."""
    n, k = len(model.P), len(opt.S)
    m = len(model.S) if isinstance(model, Stateful) else 0
    grad = gradient_diagram(model, loss, opt, lr_put)
    T = None if gradient_transform is None else gradient_transform_diagram(gradient_transform, model.P)
    if world_size is not None and (isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1):
        raise CatgradError(f"world_size must be a positive number of processes, got {world_size!r}")
    factor = float(world_size) if getattr(loss, "reduction", "sum") == "sum" and world_size else 1.0

    def global_(ws):  # one collective for the gradient and the loss together
        from .ops import all_reduce

        rs = all_reduce(*ws)
        rs = list(rs) if isinstance(rs, tuple) else [rs]
        return rs if factor == 1.0 else [factor * r for r in rs]

    def body(b: Builder, ins):
        ps, ss = ins[:n], ins[n : n + k]
        outs = b.call(grad, ins)
        dp, st, ls, pred = outs[:n], outs[n : n + m], outs[n + m : -1], outs[-1:]
        if world_size is not None:
            both = global_(dp + ls)
            dp, ls = both[:n], both[n:]
        if T is not None:
            dp = b.call(T, ps + dp)
        return b.call(opt.lens.put, ps + ss + dp) + st + ls + pred

    return build(grad.dom, body)


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
    """Parameters, optimizer state, the number of updates done and the model's state
    (running statistics, random keys: see :mod:`catgrad.calculus.stateful`)."""

    params: dict
    opt_state: dict = field(default_factory=dict)
    step: int = 0
    model_state: dict = field(default_factory=dict)

    def flat(self) -> dict:
        """``{"param/<name>": ..., "opt/<key>": ..., "state/<name>": ..., "step": int64 scalar}``."""
        out = {f"param/{k}": to_host(v) for k, v in self.params.items()}
        out.update({f"opt/{k}": to_host(v) for k, v in self.opt_state.items()})
        out.update({f"state/{k}": to_host(v) for k, v in self.model_state.items()})
        out["step"] = np.asarray(self.step, dtype=np.int64)
        return out

    @classmethod
    def from_flat(cls, d: dict) -> "TrainState":
        params, opt, state = {}, {}, {}
        step = 0
        for k, v in d.items():
            if k.startswith("param/"):
                params[k[6:]] = np.asarray(v)
            elif k.startswith("state/"):
                state[k[6:]] = np.asarray(v)
            elif k.startswith("opt/"):
                opt[k[4:]] = np.asarray(v)
            elif k == "step":
                step = int(np.asarray(v))
            else:
                raise CatgradError(f"unexpected entry {k!r} in a flat train state")
        return cls(params, opt, step, state)

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
        return TrainState(dict(self.params), opt, self.step, dict(self.model_state))


__all__ = ["to_host", "TrainState", "step_diagram", "gradient_diagram", "gradient_transform_diagram", "learning_rate",
           "identity_learning_rate", "lr_put"]
