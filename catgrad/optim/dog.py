"""DoG, "Distance over Gradients" (Ivgi, Hinder, Carmon 2023): a parameter-free step size.

With ``x_0`` the initial parameters, ``g_i`` the gradients seen so far and ``||.||`` the
norm over every parameter the stage spans,

    rbar_t = max(reps_rel (1 + ||x_0||), max_{i <= t} ||x_i - x_0||)
    G_t    = sum_{i <= t} ||g_i||^2
    x_{t+1} = x_t - rbar_t / sqrt(G_t + eps) g_t

``dog()`` is a whole-model stage (one step size for the model); ``ldog()`` is the
layer-wise variant (L-DoG), a per-parameter stage: the same rule with each tensor's own
norms. State per parameter: ``x0`` (the initial value), ``rbar`` and ``G`` (scalars; for
``dog`` every parameter holds the same global values).
"""

from __future__ import annotations

from ..core.types import TensorType
from .base import Optimizer, Slot, Stage, WholeModelStage, scalar_slot


def _slots(t: TensorType) -> list:
    return [Slot("x0", t, lambda p: p.astype(t.dtype.numpy, copy=True)), scalar_slot("rbar", t), scalar_slot("G", t)]


def _dog(h: dict, ss: list, ps: list, us: list):
    """The DoG update on a group of tensors sharing one step size."""
    from ..ops import maximum, sqrt

    def sq(ws):
        return sum(((w * w).sum() for w in ws[1:]), (ws[0] * ws[0]).sum())

    x0s = [s["x0"] for s in ss]
    dist = sqrt(sq([p - x0 for p, x0 in zip(ps, x0s)]))
    floor = h["reps_rel"] * (1.0 + sqrt(sq(x0s)))
    rbar = maximum(maximum(ss[0]["rbar"], dist), floor)
    G = ss[0]["G"] + sq(us)
    eta = rbar / sqrt(G + h["eps"])
    return [{"rbar": rbar, "G": G} for _ in ss], [eta * u for u in us]


class DoG(WholeModelStage):
    kind = "dog"

    def __init__(self, reps_rel=1e-6, eps=1e-8):
        super().__init__(reps_rel=reps_rel, eps=eps)

    def slots(self, t):
        return _slots(t)

    def update(self, h, ss, ps, us):
        return _dog(h, ss, ps, us)


class LDoG(Stage):
    kind = "ldog"

    def __init__(self, reps_rel=1e-6, eps=1e-8):
        super().__init__(reps_rel=reps_rel, eps=eps)

    def slots(self, t):
        return _slots(t)

    def update(self, s, p, u):
        new, (d,) = _dog(s, [s], [p], [u])
        return new[0], d


def dog(reps_rel=1e-6, eps=1e-8) -> Optimizer:
    """DoG with one step size for every parameter it spans (a whole-model stage)."""
    return DoG(reps_rel, eps)


def ldog(reps_rel=1e-6, eps=1e-8) -> Optimizer:
    """Layer-wise DoG: each parameter tensor gets its own DoG step size."""
    return LDoG(reps_rel, eps)


__all__ = ["dog", "ldog"]
