"""Sharpness-aware minimisation (Foret et al., 2021) and its adaptive variant (ASAM,
Kwon et al., 2021) as an optimizer.

SAM needs a second gradient, taken at a perturbed point, so it is not a lens on the
gradient alone: it transforms the gradient diagram of the step
(:meth:`~catgrad.optim.base.OptimizerLens.gradient`), evaluating R of the model twice.
With ``g(w)`` the gradient of the loss at ``w`` (the wrapped optimizer's ``get`` point)
and the norm taken over every parameter SAM spans,

    e   = rho g(w) / (||g(w)|| + 1e-12)                    (SAM)
    e   = rho T^2 g(w) / (||T g(w)|| + 1e-12),  T = |w|     (ASAM, elementwise)
    w'  = put(w, s, -g(w + e))                              (the wrapped optimizer)

The loss and prediction reported are those at ``w``. This follows the reference
implementation of the authors' algorithm (``1e-12`` guards a zero gradient).

``sam(opt, rho)`` is a whole-model stage (kind ``sam``, state: ``rho``, once, under the
first parameter) followed by ``opt``'s stages; its put passes the direction through.
Inside a chain it replaces the gradient every stage of the chain sees
(``clip_norm(1) >> sam(adam())`` clips the perturbed gradient); under ``@`` or
:func:`~catgrad.optim.assign` it perturbs, and replaces the gradient of, only the
parameters it is applied to.
"""

from __future__ import annotations

import math

from ..core.types import number_source
from ..errors import CatgradError
from .base import Optimizer, WholeModelStage


class SamStage(WholeModelStage):
    kind = "sam"

    def __init__(self, rho, adaptive: bool):
        super().__init__(rho=rho)
        self.adaptive = adaptive

    def gradient(self, h, ss, ps, us, again):
        from ..ops import abs as abs_, sqrt

        # us = -g (downhill), so w + e = w - factor T^2 us
        scaled = [abs_(p) * u for p, u in zip(ps, us)] if self.adaptive else us
        total = sqrt(sum(((u * u).sum() for u in scaled[1:]), (scaled[0] * scaled[0]).sum()))
        factor = h["rho"] / (total + 1e-12)
        return again([p - factor * ((p * p) * u if self.adaptive else u) for p, u in zip(ps, us)])

    def update(self, h, ss, ps, us):
        return [{} for _ in ss], us


class Sam(Optimizer):
    """``sam(inner, rho, adaptive)``: the SAM stage, then ``inner``'s stages."""

    def __init__(self, inner: Optimizer, rho, adaptive: bool):
        from ..schedule import Schedule

        if not isinstance(inner, Optimizer):
            raise CatgradError(f"sam wraps an optimizer, e.g. sam(adam(lr=1e-3), rho=0.05), got {inner!r}")
        if not isinstance(rho, Schedule) and (isinstance(rho, bool) or not isinstance(rho, (int, float))
                                              or not (math.isfinite(rho) and rho >= 0)):
            raise CatgradError(f"sam: rho (the radius of the perturbation) must be a finite number >= 0 "
                               f"or a schedule, got {rho!r}")
        if not isinstance(adaptive, bool):
            raise CatgradError(f"sam: adaptive must be True (ASAM) or False (SAM), got {adaptive!r}")
        self.inner, self.stage = inner, SamStage(rho, adaptive)

    def resolve(self, params):
        return [outer + inner for outer, inner in zip(self.stage.resolve(params), self.inner.resolve(params))]

    def __repr__(self):
        rho = self.stage.hypers.get("rho")
        rho = number_source(rho) if rho is not None else repr(self.stage.schedules["rho"])
        return f"sam({self.inner!r}, rho={rho}" + (", adaptive=True)" if self.stage.adaptive else ")")


def sam(opt: Optimizer, rho=0.05, adaptive: bool = False) -> Optimizer:
    """``opt`` fed the gradient at the worst nearby point ``w + e``, ``||e|| = rho`` (SAM);
    ``adaptive=True``: ASAM's scale-invariant neighbourhood (see the module docstring)."""
    return Sam(opt, rho, adaptive)


def sam_step(model, loss, optimizer: Optimizer, rho=0.05, adaptive: bool = False, lr_lens=None):
    """The step diagram of ``sam(optimizer, rho, adaptive)``:
    ``(params..., opt_state..., x, y) -> (params'..., opt_state'..., loss, pred)`` (the layout
    of :func:`catgrad.step.step_diagram`). Returns ``(diagram, optimizer lens)``; the lens
    gives the state keys and the initial state (``lens.init(params)``, ``rho`` included)."""
    from ..step import step_diagram
    from .meta import resolve_step_parts

    model, loss_para, opt, lr = resolve_step_parts("sam", model, loss, sam(optimizer, rho, adaptive), lr_lens)
    return step_diagram(model, loss_para, opt, lr), opt


__all__ = ["sam", "sam_step", "Sam"]
