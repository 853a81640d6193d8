"""Building blocks that transform the update direction ``u`` (it points downhill).

- ``clip_value(c)``: ``u' = min(max(u, -c), c)`` elementwise.
- ``clip_norm(c)`` (a whole-model stage): ``u_i' = u_i min(1, c / (||u|| + eps))`` where
  ``||u|| = sqrt(sum_i ||u_i||^2)`` is the global norm over every parameter wire it spans,
  as ``torch.nn.utils.clip_grad_norm_`` (``eps = 1e-6``) and optax's ``clip_by_global_norm``.
- ``clip_norm_per_tensor(c)``: the same with each wire's own norm ``||u_i||``.
- ``weight_decay(w)``: ``u' = u - w p``: the gradient of ``w/2 ||p||^2`` joins the
  direction (coupled, L2 decay; put it before adam for torch's ``Adam(weight_decay=w)``).
- ``scale(c)``: ``u' = c u``.
- ``scale_by_schedule(sched)``: ``u' = sched(t) u``, i.e. ``scale`` with a schedule-valued
  factor: the schedule's state (a Moore machine, see :mod:`catgrad.schedule`) steps once
  per update.
"""

from __future__ import annotations

from ..errors import CatgradError
from .base import Optimizer, Stage, WholeModelStage, norm


class ClipValue(Stage):
    kind = "clip_value"

    def __init__(self, max_value=1.0):
        if max_value <= 0:
            raise CatgradError(f"clip_value needs a positive bound, got {max_value}")
        super().__init__(max_value=max_value)

    def update(self, s, p, u):
        from ..ops import maximum, minimum

        c = s["max_value"].broadcast(u.shape)
        return {}, minimum(maximum(u, -c), c)


class _NormClip:
    """``u min(1, max_norm / (norm + eps))``: shared by the global and per-tensor clips."""

    def __init__(self, max_norm=1.0, eps=1e-6):
        if isinstance(max_norm, (int, float)) and max_norm <= 0:
            raise CatgradError(f"{self.kind} needs a positive bound, got {max_norm}")
        super().__init__(max_norm=max_norm, eps=eps)

    @staticmethod
    def clip(h, u, norm):
        from ..ops import minimum

        return u * minimum(h["max_norm"] / (norm + h["eps"]), norm.const(1.0))


class ClipNorm(_NormClip, WholeModelStage):
    kind = "clip_norm"

    def update(self, h, ss, ps, us):
        from ..ops import sqrt

        total = sqrt(sum(((u * u).sum() for u in us[1:]), (us[0] * us[0]).sum()))
        return [{} for _ in us], [self.clip(h, u, total) for u in us]


class ClipNormPerTensor(_NormClip, Stage):
    kind = "clip_norm_per_tensor"

    def update(self, s, p, u):
        return {}, self.clip(s, u, norm(u))


class WeightDecay(Stage):
    kind = "weight_decay"

    def __init__(self, rate=0.0):
        super().__init__(rate=rate)

    def update(self, s, p, u):
        return {}, u - s["rate"] * p


class Scale(Stage):
    kind = "scale"

    def __init__(self, factor=1.0):
        super().__init__(factor=factor)

    def update(self, s, p, u):
        return {}, s["factor"] * u


def clip_value(max_value=1.0) -> Optimizer:
    return ClipValue(max_value)


def clip_norm(max_norm=1.0, eps=1e-6) -> Optimizer:
    """Clip by the global norm of all the directions it spans (torch's ``clip_grad_norm_``)."""
    return ClipNorm(max_norm, eps)


def clip_norm_per_tensor(max_norm=1.0, eps=1e-6) -> Optimizer:
    """Clip each parameter's direction by its own norm."""
    return ClipNormPerTensor(max_norm, eps)


def weight_decay(rate=0.0) -> Optimizer:
    return WeightDecay(rate)


def scale(factor=1.0) -> Optimizer:
    return Scale(factor)


def scale_by_schedule(schedule) -> Optimizer:
    """``scale(schedule)``: the factor is the schedule's output, stepped once per update."""
    from ..schedule import Schedule

    if not isinstance(schedule, Schedule):
        raise CatgradError(f"scale_by_schedule needs a schedule (cg.schedule.*), got {schedule!r}")
    return Scale(schedule)


def with_lr(make, lr, coupled_weight_decay=0.0, **kw) -> Optimizer:
    """``make(lr=lr, **kw)``; a schedule ``lr`` becomes the stage's state like any
    schedule-valued hyperparameter. A nonzero ``coupled_weight_decay`` (torch.optim's
    ``weight_decay`` for the SGD, Adam, Adagrad and RMSprop families: the gradient gains
    ``wd p``) is a :class:`WeightDecay` stage in front."""
    core = make(lr=lr, **kw)
    return WeightDecay(coupled_weight_decay) >> core if coupled_weight_decay else core
