"""Building blocks that transform the update direction ``u`` (it points downhill).

- ``clip_value(c)``: ``u' = min(max(u, -c), c)`` elementwise.
- ``clip_norm(c)``: ``u' = u min(1, c / ||u||)`` with the Euclidean norm of this
  parameter wire (per parameter tensor, not global across wires).
- ``weight_decay(w)``: ``u' = u - w p``: the gradient of ``w/2 ||p||^2`` joins the
  direction (coupled, L2 decay; put it before adam for torch's ``Adam(weight_decay=w)``).
- ``scale(c)``: ``u' = c u``.
- ``scale_by_schedule(sched)``: ``u' = sched(t) u``; the schedule's state (a Moore
  machine, see :mod:`catgrad.schedule`) steps once per update.
"""

from __future__ import annotations

from ..errors import CatgradError
from .base import Optimizer, Slot, Stage


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


class ClipNorm(Stage):
    kind = "clip_norm"

    def __init__(self, max_norm=1.0, eps=1e-12):
        if max_norm <= 0:
            raise CatgradError(f"clip_norm needs a positive bound, got {max_norm}")
        super().__init__(max_norm=max_norm, eps=eps)

    def update(self, s, p, u):
        from ..ops import minimum, sqrt

        norm = sqrt((u * u).sum())
        factor = minimum(s["max_norm"] / (norm + s["eps"]), norm.const(1.0))
        return {}, u * factor


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


class ScaleBySchedule(Stage):
    kind = "schedule"

    def __init__(self, schedule):
        from ..schedule import Schedule

        if not isinstance(schedule, Schedule):
            raise CatgradError(f"scale_by_schedule needs a schedule (cg.schedule.*), got {schedule!r}")
        super().__init__()
        self.schedule = schedule

    def slots(self, t):
        scalar = t.with_shape(())
        return [Slot(k, scalar, _scalar_init(scalar, v)) for k, v in self.schedule.state_values().items()]

    def update(self, s, p, u):
        out = self.schedule.output(s)
        return self.schedule.next(s), out * u

    def __repr__(self):
        return f"scale_by_schedule({self.schedule!r})"


def _scalar_init(t, v):
    import numpy as np

    return lambda p: np.full((), v, dtype=t.dtype.numpy)


def clip_value(max_value=1.0) -> Optimizer:
    return ClipValue(max_value)


def clip_norm(max_norm=1.0) -> Optimizer:
    return ClipNorm(max_norm)


def weight_decay(rate=0.0) -> Optimizer:
    return WeightDecay(rate)


def scale(factor=1.0) -> Optimizer:
    return Scale(factor)


def scale_by_schedule(schedule) -> Optimizer:
    return ScaleBySchedule(schedule)


def with_lr(make, lr, coupled_weight_decay=0.0, **kw) -> Optimizer:
    """``make(lr=...)``, or ``make(lr=1) >> scale_by_schedule(lr)`` when ``lr`` is a schedule.
    A nonzero ``coupled_weight_decay`` (torch.optim's ``weight_decay`` for the SGD, Adam,
    Adagrad and RMSprop families: the gradient gains ``wd p``) is a :class:`WeightDecay`
    stage in front."""
    from ..schedule import Schedule

    core = make(lr=1.0, **kw) >> ScaleBySchedule(lr) if isinstance(lr, Schedule) else make(lr=lr, **kw)
    return WeightDecay(coupled_weight_decay) >> core if coupled_weight_decay else core
