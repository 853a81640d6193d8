"""Sharpness-aware minimisation (Foret et al., 2021) and its adaptive variant (ASAM,
Kwon et al., 2021) as a training step.

SAM needs a second gradient, taken at a perturbed point, so it is not a lens on the
gradient alone: its step evaluates R of the model twice. With ``g(w)`` the gradient of
the loss at ``w`` (the optimizer's ``get`` point) and the global norm over all
parameters,

    e   = rho g(w) / (||g(w)|| + 1e-12)                    (SAM)
    e   = rho T^2 g(w) / (||T g(w)|| + 1e-12),  T = |w|     (ASAM, elementwise)
    w'  = put(w, s, -g(w + e))                              (any optimizer)

The loss and prediction reported are those at ``w``. This follows the reference
implementation of the authors' algorithm (``1e-12`` guards a zero gradient).
"""

from __future__ import annotations

from ..errors import CatgradError
from .base import Optimizer


def sam_step(model, loss, optimizer: Optimizer, rho: float = 0.05, adaptive: bool = False, lr_lens=None):
    """The SAM step diagram ``(params..., opt_state..., x, y) -> (params'..., opt_state'..., loss, pred)``
    (the layout of :func:`catgrad.step.step_diagram`), with ``optimizer`` applied to the
    gradient at the perturbed point. Returns ``(diagram, optimizer lens)``; the lens gives
    the state keys and the initial state (``lens.init(params)``)."""
    from ..core.diagram import build
    from ..ops import abs as abs_, sqrt
    from ..step import gradient_diagram
    from .meta import resolve_step_parts

    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not rho >= 0:
        raise CatgradError(f"sam: rho must be a number >= 0, got {rho!r}")
    model, loss_para, opt, lr = resolve_step_parts("sam", model, loss, optimizer, lr_lens)
    grad = gradient_diagram(model, loss_para, opt, lr)
    n, k = len(model.P), len(opt.S)

    def body(b, ins):
        ps, ss, data = ins[:n], ins[n : n + k], ins[n + k :]
        first = b.call(grad, ins)
        dp, ls_pred = first[:n], first[n:]  # dp = -g (downhill)
        scaled = [abs_(p) * d for p, d in zip(ps, dp)] if adaptive else dp
        total = sqrt(sum(((u * u).sum() for u in scaled[1:]), (scaled[0] * scaled[0]).sum()))
        factor = rho / (total + 1e-12)
        moved = [p - factor * ((p * p) * d if adaptive else d) for p, d in zip(ps, dp)]
        second = b.call(grad, moved + ss + data)[:n]
        return b.call(opt.lens.put, ps + ss + second) + ls_pred

    return build(grad.dom, body), opt


__all__ = ["sam_step"]
