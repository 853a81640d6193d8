"""Stages that wrap a whole inner optimizer (shared by cautious and lookahead).

The inner optimizer's stages are resolved per parameter; their state keys are nested
under the wrapper's: ``"<param>/lookahead.adam.m"``.
"""

from __future__ import annotations

from .base import Optimizer, Slot, Stage, _number, run_gets, run_stages


class Wrapper(Optimizer):
    """A recipe ``make(inner_stages) -> Stage`` around an inner optimizer."""

    def __init__(self, make, inner: Optimizer, label: str):
        if not isinstance(inner, Optimizer):
            from ..errors import CatgradError

            raise CatgradError(f"{label} wraps an optimizer, got {inner!r}")
        self.make, self.inner, self.label = make, inner, label

    def stages(self, index, name, count):
        return [self.make(self.inner.stages(index, name, count))]

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

    def get_inner(self, s, p):
        return run_gets(self.inner, self.inner_names, s, p)
