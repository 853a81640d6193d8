"""Learning-rate schedules as Moore machines.

A schedule is a stateful morphism with state ``S`` (a step counter ``t`` plus its
hyperparameters, all scalars: the hyperparameters stay data), a readout
``S -> R`` (the value at this step) and a transition ``S -> S`` (``t -> t + 1``,
hyperparameters unchanged): a dynamical system ``Sy^S -> Ry^1`` in Poly. ``t``
counts the updates already made, starting at 0.

- ``constant(v)``: ``v``.
- ``warmup_linear(peak, warmup_steps)``: ``peak min(1, (t + 1) / warmup_steps)``.
- ``cosine(peak, decay_steps, final=0, warmup_steps=0)``: linear warmup as above for
  ``t < warmup_steps``, then ``final + (peak - final) (1 + cos(pi min(1, (t - w) / decay_steps))) / 2``.
- ``step(v, step_size, gamma=0.1)``: ``v gamma^floor(t / step_size)``.
- ``exponential(v, gamma)``: ``v gamma^t``.

Use one as ``lr=s`` (or any other hyperparameter) of an optimizer, or with
``cg.optim.scale_by_schedule(s)``.
"""

from __future__ import annotations

import math

import numpy as np

from .core.diagram import build
from .core.types import Ob, TensorType, f64, number_source
from .errors import CatgradError
from . import ops


class Schedule:
    """A Moore machine: ``state_values()``, ``output(s)`` and ``next(s)`` on wires."""

    kind = "schedule"

    def __init__(self, **hypers):
        for k, v in hypers.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise CatgradError(f"{self.kind}: {k} must be a finite number, got {v!r}")
        self.hypers = {k: float(v) for k, v in hypers.items()}

    def state_values(self) -> dict:
        """Initial state: the counter ``t = 0`` and the hyperparameters."""
        return {"t": 0.0, **self.hypers}

    def output(self, s: dict):
        raise NotImplementedError

    def next(self, s: dict) -> dict:
        return {"t": s["t"] + 1.0}

    def moore(self, dtype=f64):
        """``(readout : S -> dtype[()], update : S -> S)`` as diagrams, S in ``state_values`` order."""
        keys = list(self.state_values())
        S = Ob(*(TensorType(dtype, ()) for _ in keys))

        def readout(b, ins):
            return [self.output(dict(zip(keys, ins)))]

        def update(b, ins):
            s = dict(zip(keys, ins))
            new = {**s, **self.next(s)}
            return [new[k] for k in keys]

        return build(S, readout), build(S, update)

    def values(self, n: int, dtype=f64) -> np.ndarray:
        """The first ``n`` outputs, by running the machine (evaluates its diagrams)."""
        from .core.evaluate import evaluate

        readout, update = self.moore(dtype)
        state = [np.asarray(v, dtype=dtype.numpy) for v in self.state_values().values()]
        out = []
        for _ in range(n):
            out.append(evaluate(readout, *state)[0])
            state = list(evaluate(update, *state))
        return np.array(out)

    def __repr__(self):
        return f"{self.kind}({', '.join(f'{k}={number_source(v)}' for k, v in self.hypers.items())})"


class Constant(Schedule):
    kind = "constant"

    def __init__(self, value):
        super().__init__(value=value)

    def output(self, s):
        return s["value"] + 0.0 * s["t"]


def _ramp(t, n):
    return ops.minimum((t + 1.0) / n, t.const(1.0))


class WarmupLinear(Schedule):
    kind = "warmup_linear"

    def __init__(self, peak, warmup_steps):
        if warmup_steps < 1:
            raise CatgradError(f"warmup_linear needs warmup_steps >= 1, got {warmup_steps}")
        super().__init__(peak=peak, warmup_steps=warmup_steps)

    def output(self, s):
        return s["peak"] * _ramp(s["t"], s["warmup_steps"])


class Cosine(Schedule):
    kind = "cosine"

    def __init__(self, peak, decay_steps, final=0.0, warmup_steps=0):
        if decay_steps < 1 or warmup_steps < 0:
            raise CatgradError(f"cosine needs decay_steps >= 1 and warmup_steps >= 0, got {decay_steps}, {warmup_steps}")
        super().__init__(peak=peak, decay_steps=decay_steps, final=final, warmup_steps=warmup_steps)

    def output(self, s):
        t, w = s["t"], s["warmup_steps"]
        frac = ops.minimum(ops.maximum(t - w, t.const(0.0)) / s["decay_steps"], t.const(1.0))
        decayed = s["final"] + (s["peak"] - s["final"]) * (1.0 + ops.cos(frac * math.pi)) * 0.5
        if self.hypers["warmup_steps"] == 0:
            return decayed
        warm = s["peak"] * (t + 1.0) / ops.maximum(w, t.const(1.0))
        return ops.where(ops.gt(w, t), warm, decayed)


class Step(Schedule):
    kind = "step"

    def __init__(self, value, step_size, gamma=0.1):
        if step_size < 1 or gamma <= 0:
            raise CatgradError(f"step needs step_size >= 1 and gamma > 0, got {step_size}, {gamma}")
        super().__init__(value=value, step_size=step_size, gamma=gamma)

    def output(self, s):
        k = ops.floor(s["t"] / s["step_size"])
        return s["value"] * ops.exp(k * ops.log(s["gamma"]))


class Exponential(Schedule):
    kind = "exponential"

    def __init__(self, value, gamma):
        if gamma <= 0:
            raise CatgradError(f"exponential needs gamma > 0, got {gamma}")
        super().__init__(value=value, gamma=gamma)

    def output(self, s):
        return s["value"] * ops.exp(s["t"] * ops.log(s["gamma"]))


def constant(value) -> Schedule:
    """The schedule that is ``value`` at every step."""
    return Constant(value)


def warmup_linear(peak, warmup_steps) -> Schedule:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps`` steps, then ``peak``."""
    return WarmupLinear(peak, warmup_steps)


def cosine(peak, decay_steps, final=0.0, warmup_steps=0) -> Schedule:
    """Optional linear warm-up to ``peak``, then cosine decay to ``final`` over ``decay_steps`` steps."""
    return Cosine(peak, decay_steps, final, warmup_steps)


def step(value, step_size, gamma=0.1) -> Schedule:
    """``value`` times ``gamma`` for every ``step_size`` steps done (torch's StepLR)."""
    return Step(value, step_size, gamma)


def exponential(value, gamma) -> Schedule:
    """``value * gamma ** t`` at step ``t`` (torch's ExponentialLR)."""
    return Exponential(value, gamma)


SCHEDULES = {"constant": constant, "warmup_linear": warmup_linear, "cosine": cosine, "step": step,
             "exponential": exponential}

__all__ = ["Schedule", "constant", "warmup_linear", "cosine", "step", "exponential", "SCHEDULES"]
