"""Cautious masking (Liang et al., "Cautious Optimizers", 2024), around any optimizer.

The inner optimizer proposes a step ``d`` from the incoming ``u`` (both point
downhill); only the coordinates where they agree in sign are kept, rescaled so the
update keeps its size: ``phi = [d u > 0]``, ``d' = d phi n / (sum phi + 1)`` with ``n``
the number of entries of the parameter. A decoupled weight decay of the inner
optimizer (``adamw``, ``lion``, ...) is not part of ``d``: as in the authors' C-AdamW,
every coordinate is decayed and only the gradient-driven step is masked.
"""

from __future__ import annotations

import math

from .. import ops
from .wrap import Wrapper, WrapperStage


class Cautious(WrapperStage):
    kind = "cautious"

    def slots(self, t):
        return self.inner_slots(t)

    def get(self, s, p):
        return self.get_inner(s, p)

    def update_parts(self, s, p, u):
        new, d, decoupled = self.run_inner_parts(s, p, u)
        phi = ops.gt(d * u, u.const(0.0))
        n = float(math.prod(u.shape)) if u.shape else 1.0
        return new, d * phi * (n / (phi.sum() + 1.0)), decoupled


def cautious(inner):
    """``inner`` with cautious masking, e.g. ``cautious(adamw(1e-3))``."""
    return Wrapper(lambda stages: Cautious(stages), inner, f"cautious({inner!r})")
