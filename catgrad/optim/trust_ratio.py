"""Layer-wise trust ratios, as whole-model stages: LAMB and LARS.

Both scale each parameter's (layer's) step by how large the parameter is compared to
the step, ``||p|| / ||step||``, read from every parameter they span; the ratio is 1
when either norm is 0 (a zero-initialised bias moves with the plain step). With
``g = -u`` and ``t`` counting from 1:

- ``lamb`` (You et al., "Large Batch Optimization for Deep Learning: Training BERT in
  76 minutes", 2019, Algorithm 2, with ``phi(z) = z``): ``m' = b1 m + (1 - b1) g``,
  ``v' = b2 v + (1 - b2) g^2``, ``r = (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps)``,
  ``d = r + wd p``, ``p_new = p - lr ||p|| / ||d|| d``.
- ``lars`` (You, Gitman, Ginsburg, "Large Batch Training of Convolutional Networks",
  2017, Algorithm 1): local rate ``l = eta ||p|| / (||g|| + wd ||p||)``,
  ``v' = mu v + lr l (g + wd p)``, ``p_new = p - v'``.
"""

from __future__ import annotations

from .. import ops
from .base import Optimizer, WholeModelStage, ema, norm, power, scalar_slot, zeros_like_slot


def trust_ratio(num, den):
    """``num / den``, or 1 where either is 0 (both scalar wires)."""
    zero = num.const(0.0)
    ok = ops.gt(num, zero) & ops.gt(den, zero)
    one = num.const(1.0)
    return ops.where(ok, num, one) / ops.where(ok, den, one)


class Lamb(WholeModelStage):
    kind = "lamb"

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01):
        super().__init__(lr=lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)

    def slots(self, t):
        return [zeros_like_slot("m", t), zeros_like_slot("v", t), scalar_slot("t", t)]

    def update(self, h, ss, ps, us):
        b1, b2 = h["b1"], h["b2"]
        news, outs = [], []
        for s, p, u in zip(ss, ps, us):
            g = -u
            t = s["t"] + 1.0
            m, v = ema(s["m"], g, b1), ema(s["v"], g * g, b2)
            r = (m / (1.0 - power(b1, t))) / (ops.sqrt(v / (1.0 - power(b2, t))) + h["eps"])
            d = r + h["weight_decay"] * p
            news.append({"m": m, "v": v, "t": t})
            outs.append(-(h["lr"] * trust_ratio(norm(p), norm(d)) * d))
        return news, outs


class Lars(WholeModelStage):
    kind = "lars"

    def __init__(self, lr=1.0, momentum=0.9, weight_decay=5e-4, trust_coefficient=1e-3):
        super().__init__(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient)

    def slots(self, t):
        return [zeros_like_slot("v", t)]

    def update(self, h, ss, ps, us):
        wd = h["weight_decay"]
        news, outs = [], []
        for s, p, u in zip(ss, ps, us):
            g = -u
            pn = norm(p)
            local = h["trust_coefficient"] * trust_ratio(pn, norm(g) + wd * pn)
            v = h["momentum"] * s["v"] + h["lr"] * local * (g + wd * p)
            news.append({"v": v})
            outs.append(-v)
        return news, outs


def lamb(lr=1e-3, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01) -> Optimizer:
    """LAMB: Adam's step with a decoupled decay, scaled per parameter by ``||p|| / ||step||``."""
    return Lamb(lr, b1, b2, eps, weight_decay)


def lars(lr=1.0, momentum=0.9, weight_decay=5e-4, trust_coefficient=1e-3) -> Optimizer:
    """LARS: momentum SGD with the local rate ``eta ||p|| / (||g|| + wd ||p||)`` per parameter."""
    return Lars(lr, momentum, weight_decay, trust_coefficient)
