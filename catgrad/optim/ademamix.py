"""AdEMAMix (Pagliardini, Ablin, Grangier, 2024): Adam plus a slow EMA of gradients.
With ``g = -u`` and ``t`` counting from 1:
``m1' = b1 m1 + (1 - b1) g``, ``m2' = b3_t m2 + (1 - b3_t) g``, ``v' = b2 v + (1 - b2) g^2``,
``p_new = p - lr ((m1' / (1 - b1^t) + alpha_t m2') / (sqrt(v' / (1 - b2^t)) + eps) + wd p)``.
With ``warmup = T > 0`` the paper's schedulers apply: ``alpha_t = min(t alpha / T, alpha)`` and
``b3_t = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)``; with ``T = 0``
``alpha_t = alpha`` and ``b3_t = b3``. At ``b1 = 0`` the exponent is taken at its limit,
``b3_t = min(b3^(T/t), b3)``.
"""

from __future__ import annotations

from .. import ops
from .base import Stage, ema, power, scalar_slot, zeros_like_slot


class AdEMAMix(Stage):
    kind = "ademamix"

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, weight_decay=0.0, warmup=0):
        super().__init__(lr=lr, b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps, weight_decay=weight_decay, warmup=warmup)

    def slots(self, t):
        return [zeros_like_slot("m1", t), zeros_like_slot("m2", t), zeros_like_slot("v", t), scalar_slot("t", t)]

    def update_parts(self, s, p, u):
        g = -u
        t = s["t"] + 1.0
        b1, b2, b3, alpha = s["b1"], s["b2"], s["b3"], s["alpha"]
        if self.hypers["warmup"] > 0:
            T = s["warmup"]
            frac = t / T
            l1, l3 = ops.log(b1), ops.log(b3)
            # the paper's exponent ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1), divided through by
            # ln b1 so that b1 = 0 (ln b1 = -inf) gives its limit ln b3 / (t/T) instead of inf/inf
            b3 = ops.minimum(ops.exp(l3 / ((1.0 - frac) * (l3 / l1) + frac)), b3)
            alpha = ops.minimum(frac * alpha, alpha)
        m1 = ema(s["m1"], g, b1)
        m2 = ema(s["m2"], g, b3)
        v = ema(s["v"], g * g, b2)
        num = m1 / (1.0 - power(b1, t)) + alpha * m2
        den = ops.sqrt(v / (1.0 - power(b2, t))) + s["eps"]
        decay = -(s["lr"] * s["weight_decay"] * p)
        return {"m1": m1, "m2": m2, "v": v, "t": t}, -(s["lr"] * (num / den)), decay


def ademamix(lr=1e-3, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, weight_decay=0.0, warmup=0):
    from .transforms import with_lr

    return with_lr(AdEMAMix, lr, b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps, weight_decay=weight_decay, warmup=warmup)
