"""Adagrad (Duchi et al.) and torch's extras. With ``g = -u``:
``acc' = acc + g^2``; ``p_new = p - lr_t g / (sqrt(acc') + eps)``,
``lr_t = lr / (1 + (t - 1) lr_decay)``. docs/mathematics.md's form ``p + eps/(delta + sqrt g') p'``
is this with ``lr = eps`` and ``eps = delta``.
"""

from __future__ import annotations

from .. import ops
from ..core.types import number_source
from .base import Slot, Stage, scalar_slot


class Adagrad(Stage):
    kind = "adagrad"

    def __init__(self, lr=1e-2, eps=1e-10, lr_decay=0.0, initial_accumulator_value=0.0):
        hyp = dict(lr=lr, eps=eps)
        if lr_decay:
            hyp["lr_decay"] = lr_decay
        super().__init__(**hyp)
        self.initial = float(initial_accumulator_value)

    def slots(self, t):
        import numpy as np

        init = self.initial
        out = [Slot("sum", t, lambda p: np.full(t.shape, init, dtype=t.dtype.numpy))]
        if "lr_decay" in self.hypers:
            out.append(scalar_slot("t", t))
        return out

    def update(self, s, p, u):
        g = -u
        acc = s["sum"] + g * g
        new = {"sum": acc}
        lr = s["lr"]
        if "lr_decay" in s:
            new["t"] = s["t"] + 1.0
            lr = lr / (1.0 + s["t"] * s["lr_decay"])
        return new, -(lr * g / (ops.sqrt(acc) + s["eps"]))

    def __repr__(self):
        r = super().__repr__()
        return r[:-1] + f", initial_accumulator_value={number_source(self.initial)})" if self.initial else r


def adagrad(lr=1e-2, eps=1e-10, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0):
    """torch.optim.Adagrad."""
    from .transforms import with_lr

    return with_lr(Adagrad, lr, eps=eps, lr_decay=lr_decay, coupled_weight_decay=weight_decay,
                   initial_accumulator_value=initial_accumulator_value)
