"""RMSprop (Hinton's lecture notes; torch's variant). With ``g = -u``:
``v' = alpha v + (1 - alpha) g^2``; ``d = sqrt(v') + eps`` (centered: ``sqrt(v' - a'^2) + eps``
with ``a' = alpha a + (1 - alpha) g``); without momentum ``p_new = p - lr g / d``, with
momentum ``b' = mu b + g / d``, ``p_new = p - lr b'``.
"""

from __future__ import annotations

from .. import ops
from .base import Stage, ema, zeros_like_slot


class RMSprop(Stage):
    kind = "rmsprop"

    def __init__(self, lr, alpha, eps, momentum, centered):  # the defaults are rmsprop()'s
        hyp = dict(lr=lr, alpha=alpha, eps=eps)
        if momentum:
            hyp["momentum"] = momentum
        super().__init__(**hyp)
        self.centered = centered

    def slots(self, t):
        out = [zeros_like_slot("v", t)]
        if self.centered:
            out.append(zeros_like_slot("avg", t))
        if "momentum" in self.hypers:
            out.append(zeros_like_slot("buf", t))
        return out

    def update(self, s, p, u):
        g = -u
        a = s["alpha"]
        v = ema(s["v"], g * g, a)
        new = {"v": v}
        if self.centered:
            avg = new["avg"] = ema(s["avg"], g, a)
            denom = ops.sqrt(v - avg * avg) + s["eps"]
        else:
            denom = ops.sqrt(v) + s["eps"]
        if "momentum" in s:
            buf = new["buf"] = s["momentum"] * s["buf"] + g / denom
            return new, -(s["lr"] * buf)
        return new, -(s["lr"] * g / denom)

    def __repr__(self):
        r = super().__repr__()
        return r[:-1] + ", centered=True)" if self.centered else r


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    """torch.optim.RMSprop."""
    from .transforms import with_lr

    return with_lr(RMSprop, lr, alpha=alpha, eps=eps, coupled_weight_decay=weight_decay, momentum=momentum, centered=centered)
