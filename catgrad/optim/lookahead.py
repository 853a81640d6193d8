"""Lookahead (Zhang, Lucas, Hinton, Ba, 2019) around any optimizer.

The inner ("fast") optimizer moves ``p`` as usual; slow weights ``phi`` (initially
``p``) are pulled towards the fast ones every ``k`` steps, and the fast weights are
reset to them: after step ``t`` (counting from 1), if ``k`` divides ``t``:
``phi' = phi + alpha (q - phi)`` and ``p_new = phi'``, else ``p_new = q``, where
``q`` is the inner optimizer's new parameter.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import CatgradError
from .base import Slot, scalar_slot
from .wrap import Wrapper, WrapperStage


class Lookahead(WrapperStage):
    kind = "lookahead"

    def slots(self, t):
        return self.inner_slots(t) + [Slot("slow", t, lambda p: np.array(p, dtype=t.dtype.numpy, copy=True)),
                                      scalar_slot("t", t)]

    def get(self, s, p):
        return self.get_inner(s, p)

    def update(self, s, p, u):
        new, d = self.run_inner(s, p, u)
        q = p + d
        t = s["t"] + 1.0
        k = s["k"]
        sync = ops.eq(t - k * ops.floor(t / k), t.const(0.0)).broadcast(p.shape)
        slow = s["slow"]
        pulled = slow + s["alpha"] * (q - slow)
        new_slow = ops.where(sync, pulled, slow)
        p_new = ops.where(sync, pulled, q)
        new.update({"slow": new_slow, "t": t})
        return new, p_new - p


def lookahead(inner, k=5, alpha=0.5):
    """``inner`` as the fast optimizer of Lookahead with sync period ``k`` and step ``alpha``."""
    if k < 1 or not 0 < alpha <= 1:
        raise CatgradError(f"lookahead needs k >= 1 and 0 < alpha <= 1, got k={k}, alpha={alpha}")
    return Wrapper(lambda stages: Lookahead(stages, k=k, alpha=alpha), inner, f"lookahead({inner!r}, k={k}, alpha={alpha})")
