"""Adafactor (Shazeer & Stern, 2018) in torch.optim.Adafactor's form (no first moment).
With ``g = -u``, ``t`` counting from 1 and ``beta2_t = 1 - t^decay`` (decay = -0.8):

- matrices (rank >= 2, factored over the last two axes): row and column second moments
  ``r' = beta2_t r + (1 - beta2_t) mean_cols(g^2)``, ``c' = beta2_t c + (1 - beta2_t) mean_rows(g^2)``,
  ``vhat = r' c' / max(mean_rows(r'), eps1)``; vectors and scalars keep a full ``v'``;
- ``upd = g / sqrt(max(vhat, eps1^2))``, ``rho = min(lr, 1 / sqrt(t))``,
  ``a = max(eps2, rms(p)) rho``, ``p_new = p (1 - lr wd) - a upd / max(1, rms(upd) / d)``.

``eps1`` defaults to the dtype's machine epsilon.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from .base import Stage, ema, scalar_slot, zeros_like_slot


class Adafactor(Stage):
    kind = "adafactor"

    def __init__(self, lr=1e-2, decay=-0.8, eps1=None, eps2=1e-3, d=1.0, weight_decay=0.0):
        hyp = dict(lr=lr, decay=decay, eps2=eps2, d=d, weight_decay=weight_decay)
        if eps1 is not None:
            hyp["eps1"] = eps1
        super().__init__(**hyp)
        self.eps1_given = eps1 is not None

    def hyper_slots(self, t):
        out = super().hyper_slots(t)
        if not self.eps1_given:
            out.append(scalar_slot("eps1", t, float(np.finfo(t.dtype.numpy).eps)))
        return out

    def slots(self, t):
        if t.rank >= 2:
            rows = t.with_shape(t.shape[:-1] + (1,))
            cols = t.with_shape(t.shape[:-2] + (1, t.shape[-1]))
            return [zeros_like_slot("row", rows), zeros_like_slot("col", cols), scalar_slot("t", t)]
        return [zeros_like_slot("v", t), scalar_slot("t", t)]

    def update_parts(self, s, p, u):
        g = -u
        shape = p.shape
        t = s["t"] + 1.0
        w = ops.exp(s["decay"] * ops.log(t))  # 1 - beta2_t
        eps1 = s["eps1"]
        g2 = g * g
        new = {"t": t}
        if len(shape) >= 2:
            nr, nc = shape[-2], shape[-1]
            row_mean = g2.sum(axes=len(shape) - 1, keepdims=True) / float(nc)
            col_mean = g2.sum(axes=len(shape) - 2, keepdims=True) / float(nr)
            r = new["row"] = ema(s["row"], row_mean, 1.0 - w)
            c = new["col"] = ema(s["col"], col_mean, 1.0 - w)
            rmean = r.sum(axes=len(shape) - 2, keepdims=True) / float(nr)
            vhat = r.broadcast(shape) * c.broadcast(shape) / ops.maximum(rmean, eps1).broadcast(shape)
        else:
            vhat = new["v"] = ema(s["v"], g2, 1.0 - w)
        upd = g / ops.sqrt(ops.maximum(vhat, eps1 * eps1))
        n = float(math.prod(shape)) if shape else 1.0
        lr = s["lr"]
        rho = ops.minimum(lr, 1.0 / ops.sqrt(t))
        rms_p = ops.sqrt((p * p).sum() / n)
        a = ops.maximum(s["eps2"], rms_p) * rho
        rms_u = ops.sqrt((upd * upd).sum() / n)
        denom = ops.maximum(rms_u / s["d"], rms_u.const(1.0))
        return new, -((a / denom) * upd), -(lr * s["weight_decay"] * p)


def adafactor(lr=1e-2, decay=-0.8, eps1=None, eps2=1e-3, d=1.0, weight_decay=0.0):
    """torch.optim.Adafactor (``beta2_decay`` = ``decay``, ``eps = (eps1, eps2)``); ``lr`` may
    be a schedule (it enters ``rho`` and the decay, not as a plain factor)."""
    return Adafactor(lr, decay, eps1, eps2, d, weight_decay)
