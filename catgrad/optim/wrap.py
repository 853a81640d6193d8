"""Stages that wrap a whole inner optimizer (shared by cautious and lookahead).

The inner optimizer's stages are resolved per parameter; their state keys are nested
under the wrapper's: ``"<param>/lookahead.adam.m"``. The inner optimizer must be
per-parameter: a wrapper is itself a per-parameter stage.
"""

from __future__ import annotations

from ..errors import CatgradError
from .base import Group, Optimizer, Slot, Stage, _number, _sub, run_gets, run_stages


class Wrapper(Optimizer):
    """A recipe ``make(inner_stages) -> Stage`` around an inner optimizer."""

    def __init__(self, make, inner: Optimizer, label: str):
        if not isinstance(inner, Optimizer):
            raise CatgradError(f"{label} wraps an optimizer, got {inner!r}")
        self.make, self.inner, self.label = make, inner, label

    def resolve(self, params):
        out = []
        for stages in self.inner.resolve(params):
            whole = [st.kind for st in stages if isinstance(st, Group)]
            if whole:
                raise CatgradError(f"{self.label}: the wrapped optimizer must be per-parameter, but {whole[0]} "
                                   f"is a whole-model stage; put it outside, e.g. clip_norm(1) >> cautious(adam())")
            out.append([self.make(stages)])
        return out

    def __repr__(self):
        return self.label


class WrapperStage(Stage):
    def __init__(self, inner_stages: list, **hypers):
        super().__init__(**hypers)
        self.inner = inner_stages
        self.inner_names = _number(inner_stages)

    def check(self, t):
        super().check(t)
        for st in self.inner:
            st.check(t)

    def inner_slots(self, t):
        out = []
        for st, n in zip(self.inner, self.inner_names):
            out += [Slot(f"{n}.{sl.field}", sl.type, sl.init) for sl in st.all_slots(t)]
        return out

    def run_inner(self, s, p, u):
        return run_stages(self.inner, self.inner_names, s, p, u)

    def run_inner_parts(self, s, p, u):
        """``(new state, step, decoupled)`` of the inner chain: the decoupled part is the
        last inner stage's (see :meth:`Stage.update_parts`)."""
        new, u = run_stages(self.inner[:-1], self.inner_names[:-1], s, p, u)
        last, pre = self.inner[-1], self.inner_names[-1]
        out, d, dec = last.apply_put(_sub(s, pre), p, u, parts=True)
        new.update({f"{pre}.{f}": w for f, w in out.items()})
        return new, d, dec

    def get_inner(self, s, p):
        return run_gets(self.inner, self.inner_names, s, p)
