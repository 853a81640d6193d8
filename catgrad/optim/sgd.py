"""Gradient descent and momentum (docs/mathematics.md section 3).

With the incoming direction ``u`` (= ``p'``, pointing downhill):

- ``sgd(lr)``: state: none but ``lr``; ``p_new = p + lr u``. On bit parameters this is
  the Z2 gradient update ``p + p'`` (XOR) when ``lr = 1``.
- ``momentum(lr, gamma)``: ``s' = gamma s + u``; ``p_new = p + lr s'``. With
  ``paper_sign=True``: ``s' = -gamma s + u`` (the sign printed in one source).
  ``dampening`` d: ``s' = gamma s + (1 - d) u`` after a first step ``s_1 = u`` (torch's rule).
- ``nesterov(lr, gamma)``: the same put, but ``get(s, p) = p + lr gamma s``: the gradient
  is taken at the look-ahead point. With a schedule as ``lr``, both read the same
  ``lr_t`` (the look-ahead point is where the momentum part of this update lands).
- ``sgd(lr, momentum=mu, nesterov=True)``: torch's reformulation, which keeps the
  look-ahead point as the parameter: ``s' = mu s + u``, ``p_new = p + lr (u + mu s')``.

With the learning rate inside ``s`` (``s = -lr buf``) these are torch.optim.SGD's updates.
"""

from __future__ import annotations

from ..core.types import number_source
from ..errors import CatgradTypeError
from .base import Optimizer, Stage, scalar_slot, zeros_like_slot
from .transforms import with_lr


class SGD(Stage):
    kind = "sgd"

    def __init__(self, lr):  # the default is sgd()'s
        super().__init__(lr=lr)

    def check(self, t):
        if not (t.dtype.is_float or t.dtype.name == "bit"):
            raise CatgradTypeError(f"sgd needs float or bit parameters, got {t}")
        if t.dtype.name == "bit" and self.hypers.get("lr") not in (0.0, 1.0):
            got = number_source(self.hypers['lr']) if "lr" in self.hypers else repr(self.schedules["lr"])
            raise CatgradTypeError(f"sgd on bit parameters needs lr 0 or 1 (a bit), got {got}")

    def update(self, s, p, u):
        return {}, s["lr"] * u


class Momentum(Stage):
    """Heavy-ball momentum; ``nesterov_get`` moves the gradient point to ``p + lr gamma s``."""

    kind = "momentum"

    def __init__(self, lr, gamma, dampening=0.0, paper_sign=False, nesterov_get=False, torch_nesterov=False):
        if nesterov_get:
            self.kind = "nesterov"  # before the checks below, which name the kind
        super().__init__(lr=lr, gamma=gamma, dampening=dampening)
        self.paper_sign, self.nesterov_get, self.torch_nesterov = paper_sign, nesterov_get, torch_nesterov

    def slots(self, t):
        out = [zeros_like_slot("s", t)]
        if self.hypers["dampening"] != 0.0:
            out.append(scalar_slot("t", t))
        return out

    def get(self, s, p):
        if not self.nesterov_get:
            return p
        return p + s["lr"] * s["gamma"] * s["s"]

    def update(self, s, p, u):
        gamma = -s["gamma"] if self.paper_sign else s["gamma"]
        new = {}
        if self.hypers["dampening"] != 0.0:
            from ..ops import where, eq

            first = eq(s["t"], s["t"].const(0.0)).broadcast(u.shape)
            buf = where(first, u, gamma * s["s"] + (1.0 - s["dampening"]) * u)
            new["t"] = s["t"] + 1.0
        else:
            buf = gamma * s["s"] + u
        new["s"] = buf
        step = u + s["gamma"] * buf if self.torch_nesterov else buf
        return new, s["lr"] * step

    def __repr__(self):
        """The spelling :func:`~catgrad.optim.parse` reads back: ``nesterov(...)`` for the
        look-ahead get, ``sgd(..., nesterov=True)`` for torch's form, else ``momentum(...)``."""
        args = dict(self._arg_strings())
        if self.nesterov_get:
            return f"nesterov(lr={args['lr']}, gamma={args['gamma']})"
        if self.torch_nesterov:
            return f"sgd(lr={args['lr']}, momentum={args['gamma']}, nesterov=True)"
        extra = ", paper_sign=True" if self.paper_sign else ""
        return super().__repr__()[:-1] + extra + ")"


def sgd(lr=0.01, momentum=0.0, nesterov=False, dampening=0.0, weight_decay=0.0) -> Optimizer:
    """Stochastic gradient descent with torch.optim.SGD's options."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise CatgradTypeError("sgd: nesterov needs momentum > 0 and zero dampening (as in torch)")
    if momentum == 0:
        return with_lr(SGD, lr, weight_decay)
    return with_lr(Momentum, lr, weight_decay, gamma=momentum, dampening=dampening, torch_nesterov=nesterov)


def momentum(lr=0.01, gamma=0.9, paper_sign=False, dampening=0.0) -> Optimizer:
    """Momentum: ``s' = gamma s + p'`` (``-gamma s`` with ``paper_sign``), ``p + lr s'``."""
    return Momentum(lr, gamma, dampening, paper_sign=paper_sign)


def nesterov(lr=0.01, gamma=0.9) -> Optimizer:
    """Nesterov momentum with the look-ahead get ``p + lr gamma s`` (docs/mathematics.md section 3)."""
    return Momentum(lr, gamma, nesterov_get=True)


def gradient_update() -> Optimizer:
    """docs/mathematics.md's plain gradient update ``(p, p') -> p + p'`` (sgd with lr 1)."""
    return SGD(1.0)
