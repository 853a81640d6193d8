"""NovoGrad (Ginsburg et al., 2019): Adam-like with one second moment per parameter
tensor (layer). With ``g = -u`` and ``n = ||g||^2``:
first step ``v_1 = n``, then ``v' = b2 v + (1 - b2) n``;
``m' = b1 m + g / (sqrt(v') + eps) + wd p`` (``m_0 = 0``); ``p_new = p - lr m'``.
``grad_averaging=True`` uses ``(1 - b1) g / (sqrt(v') + eps)`` instead.
"""

from __future__ import annotations

from .. import ops
from .base import Stage, ema, scalar_slot, zeros_like_slot


class NovoGrad(Stage):
    kind = "novograd"

    def __init__(self, lr=1e-2, b1=0.95, b2=0.98, eps=1e-8, weight_decay=0.0, grad_averaging=False):
        super().__init__(lr=lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
        self.grad_averaging = grad_averaging

    def slots(self, t):
        return [zeros_like_slot("m", t), scalar_slot("v", t), scalar_slot("t", t)]

    def update(self, s, p, u):
        g = -u
        n = (g * g).sum()
        first = ops.eq(s["t"], s["t"].const(0.0))
        v = ops.where(first, n, ema(s["v"], n, s["b2"]))
        scaled = g / (ops.sqrt(v) + s["eps"])
        b1 = s["b1"]
        m = (ema(s["m"], scaled, b1) if self.grad_averaging else b1 * s["m"] + scaled) + s["weight_decay"] * p
        return {"m": m, "v": v, "t": s["t"] + 1.0}, -(s["lr"] * m)

    def __repr__(self):
        r = super().__repr__()
        return r[:-1] + ", grad_averaging=True)" if self.grad_averaging else r


def novograd(lr=1e-2, b1=0.95, b2=0.98, eps=1e-8, weight_decay=0.0, grad_averaging=False):
    from .transforms import with_lr

    return with_lr(NovoGrad, lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, grad_averaging=grad_averaging)
