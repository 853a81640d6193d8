"""Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023). With ``g = -u``:
``c = b1 m + (1 - b1) g``; ``p_new = p - lr (sign(c) + wd p)``; ``m' = b2 m + (1 - b2) g``.
"""

from __future__ import annotations

from .. import ops
from .base import Stage, ema, zeros_like_slot


class Lion(Stage):
    kind = "lion"

    def __init__(self, lr, b1, b2, weight_decay):  # the defaults are lion()'s
        super().__init__(lr=lr, b1=b1, b2=b2, weight_decay=weight_decay)

    def slots(self, t):
        return [zeros_like_slot("m", t)]

    def update_parts(self, s, p, u):
        g = -u
        c = ema(s["m"], g, s["b1"])
        m = ema(s["m"], g, s["b2"])
        return {"m": m}, -(s["lr"] * ops.sign(c)), -(s["lr"] * s["weight_decay"] * p)


def lion(lr=1e-4, b1=0.9, b2=0.99, weight_decay=0.0):
    from .transforms import with_lr

    return with_lr(Lion, lr, b1=b1, b2=b2, weight_decay=weight_decay)
