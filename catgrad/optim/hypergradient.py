"""Hypergradient descent: the learning rate learned online by differentiating the step.

Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent" (2018).
Write one update of any optimizer as ``theta_t = theta_{t-1} + dir(s, theta_{t-1}, g_t; alpha)``
(``dir`` is the optimizer's outgoing direction, ``alpha`` its learning-rate wire). The
loss at the next step depends on ``alpha`` through ``theta_t``; the hypergradient is

    h_{t+1} = d f(theta_t) / d alpha = R_alpha(dir)(..., grad f(theta_t))
            = < grad f(theta_t), D_alpha(dir)(..., 1) >

i.e. R of "step, then loss" with respect to the learning-rate wire (the state ``s`` held
fixed, as in the paper). Since alpha is a scalar, R at cotangent ``grad f`` is the inner
product of ``grad f`` with the forward derivative along alpha, so the wrapper keeps
``d = D_alpha(dir)(s, theta, g; alpha)(1)``, one parameter-sized tensor, computed by
:func:`catgrad.D` (tangent 1 on the learning rate, none elsewhere) from the wrapped optimizer's own update diagram (no hand-written
derivative), and at the next step moves

    alpha_t = alpha_{t-1} - beta <g_t, d_{t-1}>

summed over every parameter it spans (one global learning rate, as in the paper), then
runs the wrapped optimizer with ``alpha_t``. For SGD, ``d = -g``: SGD-HD; for Adam,
``d = -mhat / (sqrt(vhat) + eps)``: Adam-HD.

``g_t`` is minus the wrapper's incoming direction (the gradient, after whatever stages come
before the wrapper). The wrapped optimizer must be per-parameter, the same on every
parameter, with exactly one stage whose ``lr`` is a number.
"""

from __future__ import annotations

from ..core.diagram import build
from ..core.types import Ob
from ..errors import CatgradError
from .base import Group, Optimizer, Slot, WholeModelStage, _number, run_gets, run_stages, zeros_like_slot


class Hypergradient(WholeModelStage):
    kind = "hypergradient"

    def __init__(self, inner: Optimizer, beta: float):
        if not isinstance(inner, Optimizer):
            raise CatgradError(f"hypergradient wraps an optimizer, got {inner!r}")
        (stages,) = inner.resolve([(0, "p")])
        whole = [st.kind for st in stages if isinstance(st, Group)]
        if whole:
            raise CatgradError(f"hypergradient: the wrapped optimizer must be per-parameter, but {whole[0]} is a "
                               f"whole-model stage; put it outside, e.g. clip_norm(1) >> hypergradient(adam())")
        names = _number(stages)
        with_lr = [(st, n) for st, n in zip(stages, names) if "lr" in st.hypers or "lr" in st.schedules]
        if len(with_lr) != 1 or "lr" not in with_lr[0][0].hypers:
            raise CatgradError(f"hypergradient needs exactly one stage with a numeric learning rate lr in "
                               f"{inner!r}, found {len(with_lr)}")
        self.inner_opt, self.inner, self.inner_names = inner, stages, names
        self.lr_key = f"{with_lr[0][1]}.lr"
        super().__init__(lr=with_lr[0][0].hypers["lr"], beta=beta)

    def resolve(self, params):
        for stages in self.inner_opt.resolve(params):
            if [id(s) for s in stages] != [id(s) for s in self.inner]:
                raise CatgradError("hypergradient: the wrapped optimizer must be the same on every parameter "
                                   "(use assign outside the wrapper)")
        return super().resolve(params)

    def check(self, t):
        super().check(t)
        for st in self.inner:
            st.check(t)

    def slots(self, t):
        inner = [Slot(f"{n}.{sl.field}", sl.type, sl.init) for st, n in zip(self.inner, self.inner_names)
                 for sl in st.all_slots(t)]
        return inner + [zeros_like_slot("d", t)]

    def _state(self, s: dict, alpha) -> dict:
        out = {k: w for k, w in s.items() if k != "d"}
        out[self.lr_key] = alpha
        return out

    def get(self, h, ss, ps):
        return [run_gets(self.inner, self.inner_names, self._state(s, h["lr"]), p) for s, p in zip(ss, ps)]

    def direction_diagram(self, s: dict, p, u):
        """``(alpha, inner state..., p, u) -> dir``: the wrapped optimizer's direction as a diagram."""
        keys = [k for k in s if k != "d" and k != self.lr_key]

        def body(b, ins):
            alpha, st, pw, uw = ins[0], dict(zip(keys, ins[1:-2])), ins[-2], ins[-1]
            st[self.lr_key] = alpha
            return [run_stages(self.inner, self.inner_names, st, pw, uw)[1]]

        dom = Ob(s[self.lr_key].type, *(s[k].type for k in keys), p.type, u.type)
        return build(dom, body), keys

    def update(self, h, ss, ps, us):
        from ..calculus.rdc import forward

        alpha, beta = h["lr"], h["beta"]
        hyper = sum(((u * s["d"]).sum() for s, u in zip(ss[1:], us[1:])), (us[0] * ss[0]["d"]).sum())
        alpha = alpha + beta * hyper  # alpha - beta <g, d> with g = -u
        outs, dirs = [], []
        for s, p, u in zip(ss, ps, us):
            new, d = run_stages(self.inner, self.inner_names, self._state(s, alpha), p, u)
            phi, keys = self.direction_diagram(s, p, u)
            ins = [alpha, *(s[k] for k in keys), p, u]
            (dd,) = forward(phi, p.builder, ins, [alpha.const(1.0)] + [None] * (len(ins) - 1))  # along lr only
            new = {k: w for k, w in new.items()}
            new[self.lr_key], new["d"] = alpha, dd
            outs.append(new)
            dirs.append(d)
        outs[0]["lr"] = alpha
        return outs, dirs

    def __repr__(self):
        return f"hypergradient({self.inner_opt!r}, beta={self.hypers['beta']:g})"


def hypergradient(opt: Optimizer, beta: float = 1e-7) -> Optimizer:
    """``opt`` with its learning rate adapted by hypergradient descent (SGD-HD, Adam-HD, ...)."""
    return Hypergradient(opt, beta)


__all__ = ["hypergradient", "Hypergradient"]
