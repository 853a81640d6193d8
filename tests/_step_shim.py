"""THROWAWAY: a minimal stand-in for cg.compile (plain SGD, numpy evaluate + R) used only
until engineer C's catgrad/step.py lands. Same contract: step(state, x, y) -> (state', out)."""

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

import catgrad as cg


@dataclass
class ShimState:
    params: dict
    opt_state: dict = field(default_factory=dict)
    step: int = 0

    def flat(self):
        d = {f"param/{k}": v for k, v in self.params.items()}
        d.update({f"opt/{k}": v for k, v in self.opt_state.items()})
        d["step"] = np.int64(self.step)
        return d

    @classmethod
    def from_flat(cls, d):
        return cls({k[6:]: v for k, v in d.items() if k.startswith("param/")},
                   {k[4:]: v for k, v in d.items() if k.startswith("opt/")}, int(d["step"]))


class ShimStep:
    def __init__(self, model, loss, lr):
        self.model, self.lr = model, lr
        x_t, y_t = model.dom[0], model.cod[0]
        lp = loss(y_t)
        nP = len(model.P)

        def body(b, ins):
            pred = b.call(model.body, ins[:nP] + [ins[nP]])[0]
            return b.call(lp.body, [ins[nP + 1], pred]) + [pred]

        full = cg.build(model.P @ cg.Ob(x_t, y_t), body)
        loss_only = cg.build(model.P @ cg.Ob(x_t, y_t), lambda b, ins: b.call(full, ins)[:1])
        self.grad = cg.R(loss_only)
        self.full = full
        self.diagram = SimpleNamespace(dom=model.P @ cg.Ob(x_t, y_t))

    def init(self, seed=0):
        return ShimState(dict(zip(self.model.names, self.model.init(seed))))

    def __call__(self, state, x, y):
        ps = list(state.params.values())
        loss, pred = cg.evaluate(self.full, *ps, x, y)
        g = cg.evaluate(self.grad, *ps, x, y, np.float64(1.0))
        new = {k: p - self.lr * d for (k, p), d in zip(state.params.items(), g)}
        return ShimState(new, {}, state.step + 1), SimpleNamespace(loss=float(loss), pred=pred)

    def predict(self, state, x):
        return cg.evaluate(self.model.body, *state.params.values(), x)[0]

    def signature(self):
        return {"params": [[p.name, str(p.type)] for p in self.model.params], "opt": []}
