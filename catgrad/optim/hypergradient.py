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
before the wrapper). The wrapped optimizer may hold whole-model stages (``clip_norm(1) >>
adam()``, ``adam() >> clip_norm(1)``, ``lamb()``): it runs on every parameter the wrapper
spans at once, and ``d`` is the forward derivative along alpha of all their directions
together. It must be the same on every parameter, with exactly one stage whose ``lr`` is a
number, and must not take the gradient again elsewhere (``sam`` goes outside:
``sam(hypergradient(adam()), rho)``).
"""

from __future__ import annotations

from ..core.diagram import build
from ..core.types import Ob, number_source
from ..errors import CatgradError
from .base import Group, Optimizer, OptimizerLens, Slot, WholeModelStage, _number, zeros_like_slot


def _bare(st):
    return st.stage if isinstance(st, Group) else st


class Hypergradient(WholeModelStage):
    kind = "hypergradient"

    def __init__(self, inner: Optimizer, beta: float):
        if not isinstance(inner, Optimizer):
            raise CatgradError(f"hypergradient wraps an optimizer, got {inner!r}")
        try:  # the stages on one parameter, whatever its name: the same on all of them, or refused below
            (stages,) = inner.resolve([(0, "p")])
        except CatgradError as e:
            raise CatgradError(f"hypergradient: the wrapped optimizer must be the same on every parameter "
                               f"(use assign outside the wrapper); {e}") from None
        taking = [st.kind for st in stages if isinstance(st, Group) and st.stage.takes_gradient]
        if taking:
            raise CatgradError(f"hypergradient: the wrapped {taking[0]} takes the gradient again at another point; "
                               f"put it outside, e.g. {taking[0]}(hypergradient(adam(lr=1e-3)))")
        names = _number(stages)
        with_lr = [(_bare(st), n) for st, n in zip(stages, names)
                   if "lr" in _bare(st).hypers or "lr" in _bare(st).schedules]
        if len(with_lr) != 1 or "lr" not in with_lr[0][0].hypers:
            raise CatgradError(f"hypergradient needs exactly one stage with a numeric learning rate lr in "
                               f"{inner!r}, found {len(with_lr)}")
        self.inner_opt, self.inner, self.inner_names = inner, [_bare(st) for st in stages], names
        self.lr_key = f"{with_lr[0][1]}.lr"
        super().__init__(lr=with_lr[0][0].hypers["lr"], beta=beta)

    def resolve(self, params):
        span = tuple(i for i, _ in params)
        for stages in self.inner_opt.resolve(params):
            if [id(_bare(s)) for s in stages] != [id(s) for s in self.inner] or any(
                    isinstance(s, Group) and s.members != span for s in stages):
                raise CatgradError("hypergradient: the wrapped optimizer must be the same on every parameter "
                                   "(use assign outside the wrapper)")
        return super().resolve(params)

    def check(self, t):
        super().check(t)
        for st in self.inner:
            st.check(t)

    def _nested(self, t, whole_model_hypers: bool) -> list:
        """The wrapped optimizer's slots, keyed ``<stage>.<field>``: per parameter, or the
        hyperparameters of its whole-model stages (kept once, under the first parameter)."""
        out = []
        for st, n in zip(self.inner, self.inner_names):
            if isinstance(st, WholeModelStage):
                mine = st.hyper_slots(t) if whole_model_hypers else st.slots(t)
            else:
                mine = [] if whole_model_hypers else st.all_slots(t)
            out += [Slot(f"{n}.{sl.field}", sl.type, sl.init) for sl in mine]
        return out

    def hyper_slots(self, t):
        return super().hyper_slots(t) + self._nested(t, True)

    def slots(self, t):
        return self._nested(t, False) + [zeros_like_slot("d", t)]

    def _wrapped(self, ps: list, h: dict, ss: list, alpha):
        """The wrapped optimizer's lens on the parameters the wrapper spans (named 0, 1, ...),
        and its state wires in that lens's key order, the learning rate set to ``alpha``."""
        lens = OptimizerLens(self.inner_opt, [(str(i), p.type) for i, p in enumerate(ps)])
        flat = []
        for k in lens.keys:
            i, f = k.split("/", 1)
            flat.append(alpha if f == self.lr_key else ss[int(i)][f] if f in ss[int(i)] else h[f])
        return lens, flat

    def get(self, h, ss, ps):
        lens, flat = self._wrapped(ps, h, ss, h["lr"])
        return lens.emit_get(ps, flat)

    def update(self, h, ss, ps, us):
        from ..calculus.rdc import forward

        hyper = sum(((u * s["d"]).sum() for s, u in zip(ss[1:], us[1:])), (us[0] * ss[0]["d"]).sum())
        alpha = h["lr"] + h["beta"] * hyper  # alpha - beta <g, d> with g = -u
        lens, flat = self._wrapped(ps, h, ss, alpha)
        dirs, new = lens.emit_directions(ps, flat, us)

        # d = D_alpha(dir)(state, ps, us; alpha)(1): the directions of every parameter as one
        # diagram of alpha (wherever the learning rate sits) and the rest, differentiated along alpha
        at_lr = [j for j, k in enumerate(lens.keys) if k.split("/", 1)[1] == self.lr_key]
        rest = [j for j in range(len(flat)) if j not in at_lr]
        m = len(ps)

        def body(b, ins):
            st = list(flat)
            for j in at_lr:
                st[j] = ins[0]
            for j, w in zip(rest, ins[1 : 1 + len(rest)]):
                st[j] = w
            return lens.emit_directions(ins[len(ins) - 2 * m : len(ins) - m], st, ins[len(ins) - m :])[0]

        ins = [alpha, *(flat[j] for j in rest), *ps, *us]
        phi = build(Ob(*(w.type for w in ins)), body)
        dds = forward(phi, alpha.builder, ins, [alpha.const(1.0)] + [None] * (len(ins) - 1))  # along lr only

        outs = [{} for _ in ps]
        for k, w in zip(lens.keys, new):
            i, f = k.split("/", 1)
            outs[int(i)][f] = w
        for out, dd in zip(outs, dds):
            out["d"] = dd
        outs[0]["lr"] = alpha
        return outs, dirs

    def __repr__(self):
        return f"hypergradient({self.inner_opt!r}, beta={number_source(self.hypers['beta'])})"


def hypergradient(opt: Optimizer, beta: float = 1e-7) -> Optimizer:
    """``opt`` with its learning rate adapted by hypergradient descent (SGD-HD, Adam-HD, ...)."""
    return Hypergradient(opt, beta)


__all__ = ["hypergradient", "Hypergradient"]
