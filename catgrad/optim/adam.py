"""The Adam family. Write ``g = -u`` for the gradient (``u`` points downhill) and
``t`` for the step count after this update:

- ``adam``: ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2``,
  ``p_new = p - lr (m' / (1 - b1^t)) / (sqrt(v') / sqrt(1 - b2^t) + eps)``
  (docs/mathematics.md's Adam with ``delta`` scaled by ``sqrt(1 - b2^t)``, as torch.optim.Adam does);
  ``weight_decay`` adds ``wd p`` to ``g`` first (a ``weight_decay`` stage in front, as for
  every optimizer here that has torch's coupled decay).
- ``amsgrad``: as adam with ``v' `` replaced by ``vmax' = max(vmax, v')`` in the denominator.
- ``adamw``: decoupled decay ``p <- p (1 - lr wd)`` then the adam step (Loshchilov & Hutter).
- ``nadam``: Nesterov-accelerated Adam with torch's momentum schedule
  ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))``:
  ``p_new = p - lr (1 - mu_t) / (1 - prod mu) g / d - lr mu_{t+1} / (1 - mu_{t+1} prod mu) m' / d``,
  ``d = sqrt(v' / (1 - b2^t)) + eps``.
- ``radam``: rectified Adam: with ``rho_inf = 2 / (1 - b2) - 1`` and
  ``rho_t = rho_inf - 2 t b2^t / (1 - b2^t)``, the step is
  ``lr mhat r_t sqrt(1 - b2^t) / (sqrt(v') + eps)`` when ``rho_t > 5`` (``r_t`` the
  variance rectification) and ``lr mhat`` before.
"""

from __future__ import annotations

from .. import ops
from .base import Stage, ema, power, scalar_slot, zeros_like_slot


class Adam(Stage):
    kind = "adam"

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, amsgrad=False, decoupled_weight_decay=0.0):
        hyp = dict(lr=lr, b1=b1, b2=b2, eps=eps)
        if decoupled_weight_decay:
            hyp["weight_decay"] = decoupled_weight_decay
            self.kind = "adamw"
        super().__init__(**hyp)
        self.amsgrad = amsgrad

    def slots(self, t):
        out = [zeros_like_slot("m", t), zeros_like_slot("v", t), scalar_slot("t", t)]
        if self.amsgrad:
            out.append(zeros_like_slot("vmax", t))
        return out

    def update_parts(self, s, p, u):
        g = -u
        t = s["t"] + 1.0
        b1, b2 = s["b1"], s["b2"]
        m = ema(s["m"], g, b1)
        v = ema(s["v"], g * g, b2)
        new = {"m": m, "v": v, "t": t}
        vv = v
        if self.amsgrad:
            vv = new["vmax"] = ops.maximum(s["vmax"], v)
        bc1 = 1.0 - power(b1, t)
        bc2 = 1.0 - power(b2, t)
        denom = ops.sqrt(vv) / ops.sqrt(bc2) + s["eps"]
        step = (s["lr"] / bc1) * m / denom
        # adamw: decoupled, p <- p (1 - lr wd) besides the adam step
        decay = -(s["lr"] * s["weight_decay"] * p) if "weight_decay" in s else None
        return new, -step, decay

    def __repr__(self):
        r = super().__repr__()
        return r[:-1] + ", amsgrad=True)" if self.amsgrad else r


class NAdam(Stage):
    kind = "nadam"

    def __init__(self, lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3):
        super().__init__(lr=lr, b1=b1, b2=b2, eps=eps, momentum_decay=momentum_decay)

    def slots(self, t):
        return [zeros_like_slot("m", t), zeros_like_slot("v", t), scalar_slot("t", t), scalar_slot("mu_product", t, 1.0)]

    def update(self, s, p, u):
        g = -u
        t = s["t"] + 1.0
        b1, b2, psi = s["b1"], s["b2"], s["momentum_decay"]
        c = t.const(0.96)
        mu = b1 * (1.0 - 0.5 * power(c, t * psi))
        mu_next = b1 * (1.0 - 0.5 * power(c, (t + 1.0) * psi))
        mu_product = s["mu_product"] * mu
        m = ema(s["m"], g, b1)
        v = ema(s["v"], g * g, b2)
        denom = ops.sqrt(v / (1.0 - power(b2, t))) + s["eps"]
        lr = s["lr"]
        step = (lr * (1.0 - mu) / (1.0 - mu_product)) * g / denom
        step = step + (lr * mu_next / (1.0 - mu_product * mu_next)) * m / denom
        return {"m": m, "v": v, "t": t, "mu_product": mu_product}, -step


class RAdam(Stage):
    kind = "radam"

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(lr=lr, b1=b1, b2=b2, eps=eps)

    def slots(self, t):
        return [zeros_like_slot("m", t), zeros_like_slot("v", t), scalar_slot("t", t)]

    def update(self, s, p, u):
        g = -u
        t = s["t"] + 1.0
        b1, b2 = s["b1"], s["b2"]
        m = ema(s["m"], g, b1)
        v = ema(s["v"], g * g, b2)
        b2t = power(b2, t)
        bc2 = 1.0 - b2t
        mhat = m / (1.0 - power(b1, t))
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho_t = rho_inf - 2.0 * t * b2t / bc2
        five = t.const(5.0)
        rectified = ops.gt(rho_t, five)
        # clamp so the branch not taken stays finite (where() then drops it)
        rt = ops.maximum(rho_t, five)
        rect = ops.sqrt((rt - 4.0) * (rt - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rt))
        adaptive = (rect * ops.sqrt(bc2)) / (ops.sqrt(v) + s["eps"])
        scale = ops.where(rectified.broadcast(v.shape), adaptive, v.const(1.0))
        step = s["lr"] * mhat * scale
        return {"m": m, "v": v, "t": t}, -step


def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False):
    """torch.optim.Adam."""
    from .transforms import with_lr

    return with_lr(Adam, lr, b1=b1, b2=b2, eps=eps, coupled_weight_decay=weight_decay, amsgrad=amsgrad)


def amsgrad(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    """torch.optim.Adam(amsgrad=True)."""
    return adam(lr, b1, b2, eps, weight_decay, amsgrad=True)


def adamw(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=False):
    """torch.optim.AdamW: decoupled weight decay."""
    from .transforms import with_lr

    return with_lr(Adam, lr, b1=b1, b2=b2, eps=eps, amsgrad=amsgrad, decoupled_weight_decay=weight_decay)


def nadam(lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, momentum_decay=4e-3):
    """torch.optim.NAdam."""
    from .transforms import with_lr

    return with_lr(NAdam, lr, b1=b1, b2=b2, eps=eps, coupled_weight_decay=weight_decay, momentum_decay=momentum_decay)


def radam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    """torch.optim.RAdam."""
    from .transforms import with_lr

    return with_lr(RAdam, lr, b1=b1, b2=b2, eps=eps, coupled_weight_decay=weight_decay)


class Adamax(Stage):
    """torch.optim.Adamax: ``m' = b1 m + (1 - b1) g``, ``n' = max(b2 n, |g| + eps)``,
    ``p_new = p - lr / (1 - b1^t) m' / n'``."""

    kind = "adamax"

    def __init__(self, lr=2e-3, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(lr=lr, b1=b1, b2=b2, eps=eps)

    def slots(self, t):
        return [zeros_like_slot("m", t), zeros_like_slot("n", t), scalar_slot("t", t)]

    def update(self, s, p, u):
        g = -u
        t = s["t"] + 1.0
        m = ema(s["m"], g, s["b1"])
        n = ops.maximum(s["b2"] * s["n"], ops.abs(g) + s["eps"])
        return {"m": m, "n": n, "t": t}, -((s["lr"] / (1.0 - power(s["b1"], t))) * m / n)


class Adadelta(Stage):
    """torch.optim.Adadelta: ``v' = rho v + (1 - rho) g^2``,
    ``delta = sqrt(a + eps) / sqrt(v' + eps) g``, ``a' = rho a + (1 - rho) delta^2``,
    ``p_new = p - lr delta``."""

    kind = "adadelta"

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6):
        super().__init__(lr=lr, rho=rho, eps=eps)

    def slots(self, t):
        return [zeros_like_slot("v", t), zeros_like_slot("acc", t)]

    def update(self, s, p, u):
        g = -u
        rho, eps = s["rho"], s["eps"]
        v = ema(s["v"], g * g, rho)
        delta = ops.sqrt(s["acc"] + eps) / ops.sqrt(v + eps) * g
        acc = ema(s["acc"], delta * delta, rho)
        return {"v": v, "acc": acc}, -(s["lr"] * delta)


def adamax(lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    """torch.optim.Adamax."""
    from .transforms import with_lr

    return with_lr(Adamax, lr, b1=b1, b2=b2, eps=eps, coupled_weight_decay=weight_decay)


def adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """torch.optim.Adadelta."""
    from .transforms import with_lr

    return with_lr(Adadelta, lr, rho=rho, eps=eps, coupled_weight_decay=weight_decay)
