"""diffGrad (Dubey et al., 2019): Adam whose step is damped by a friction coefficient
from the change of the gradient. With ``g = -u``, the previous gradient ``g_prev``
(initially 0) and ``t`` counting from 1:
``xi = 1 / (1 + exp(-|g_prev - g|))``; Adam moments ``m', v'``;
``p_new = p - lr xi (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps)``.
"""

from __future__ import annotations

from .. import ops
from .base import Stage, ema, power, scalar_slot, zeros_like_slot


class DiffGrad(Stage):
    kind = "diffgrad"

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(lr=lr, b1=b1, b2=b2, eps=eps)

    def slots(self, t):
        return [zeros_like_slot("m", t), zeros_like_slot("v", t), zeros_like_slot("prev", t), scalar_slot("t", t)]

    def update(self, s, p, u):
        g = -u
        t = s["t"] + 1.0
        b1, b2 = s["b1"], s["b2"]
        xi = ops.sigmoid(ops.abs(s["prev"] - g))
        m = ema(s["m"], g, b1)
        v = ema(s["v"], g * g, b2)
        mhat = m / (1.0 - power(b1, t))
        den = ops.sqrt(v / (1.0 - power(b2, t))) + s["eps"]
        return {"m": m, "v": v, "prev": g, "t": t}, -(s["lr"] * xi * mhat / den)


def diffgrad(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    from .transforms import with_lr

    return with_lr(DiffGrad, lr, b1=b1, b2=b2, eps=eps)
