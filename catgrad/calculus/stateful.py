"""Models with state, and models that differ between training and evaluation.

Batch norm keeps running statistics, dropout a random key: values that belong to the
model but are not trained by gradients. A stateful model ``A -> B`` has parameters ``P``,
state ``S`` and two forms, one per mode:

    train : P x S x A -> B x S      a training step reads the state and writes it
    eval  : P x S x A -> B x S      evaluation (predict) reads it; the S it returns is S

The supervised step (:mod:`catgrad.step`) threads ``S`` through like the optimizer's
state. Gradients see the state as an input that is not learned: the step differentiates
the parametrised map

    forward : P x (S x A) -> B,     forward = train >> (id_B x discard_S)

so the reverse derivative is ``R[forward]``, an ordinary diagram, and ``R[R[...]]`` keeps
working; the new state is the second output of ``train`` at the same point.

A model whose first input is a random key (``i64[]``, the key of
:mod:`catgrad.ops.random`, as in ``nn.dropout[p](key, x)``) becomes stateful with
:func:`keyed`: the key is a state ``key ~ key`` drawn from the seed, and each training
step splits it, ``(next, use) = random_split(key)``, feeds ``use`` to the model and keeps
``next``; the key of step t is thus a function of the seed and t, so a resumed run
draws what the uninterrupted one drew.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.diagram import Diagram, build
from ..core.retype import retype
from ..core.types import Ob, i64
from ..errors import CatgradError, CatgradTypeError
from ..init import key as key_init
from .para import Para, Param

KEY = i64[()]


class Stateful:
    """A model with parameters ``params``, state ``state`` and the diagrams ``train`` and
    ``eval`` (see the module docstring)."""

    def __init__(self, params: Sequence[Param], state: Sequence[Param], train: Diagram, eval: Diagram):
        self.params, self.state = tuple(params), tuple(state)
        self.train, self.eval = train, eval
        self.P = Ob(*(p.type for p in self.params))
        self.S = Ob(*(p.type for p in self.state))
        n, k = len(self.P), len(self.S)
        self.dom = Ob(*train.dom[n + k :])
        self.cod = Ob(*train.cod[: len(train.cod) - k])
        for what, d in (("train", train), ("eval", eval)):
            if d.dom != self.P @ self.S @ self.dom or d.cod != self.cod @ self.S:
                raise CatgradTypeError(f"the {what} form of a stateful model must be {self.P @ self.S @ self.dom} -> "
                                       f"{self.cod @ self.S}, got {d.dom} -> {d.cod}")
        names = [p.name for p in self.params + self.state]
        if len(set(names)) != len(names):
            raise CatgradTypeError(f"parameter and state names must be unique, got {names}")

    @property
    def body(self) -> Diagram:
        """The training form (what a checkpoint's model hash describes)."""
        return self.train

    @property
    def diagram(self) -> Diagram:
        """The training form, for what draws or inspects one diagram."""
        return self.train

    @property
    def names(self) -> tuple:
        return tuple(p.name for p in self.params)

    @property
    def state_names(self) -> tuple:
        return tuple(p.name for p in self.state)

    def init(self, seed_or_rng=0) -> list:
        """Initial parameter values, drawn as :meth:`Para.init` draws them."""
        rng = seed_or_rng if isinstance(seed_or_rng, np.random.Generator) else np.random.default_rng(seed_or_rng)
        return [p.initial(rng) for p in self.params]

    def init_state(self, seed=0) -> list:
        """Initial state values (running statistics, keys), from a stream of their own."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
        return [p.initial(rng) for p in self.state]

    def forward(self, mode: str = "train") -> Para:
        """The model in ``mode`` (``"train"`` or ``"eval"``) as a Para ``P x (S x A) -> B``
        (the new state discarded)."""
        if mode not in ("train", "eval"):
            raise CatgradError(f"a stateful model runs in mode 'train' or 'eval', got {mode!r}")
        d = self.train if mode == "train" else self.eval
        b = len(self.cod)
        return Para(self.params, build(d.dom, lambda bl, ins: bl.call(d, ins)[:b]))

    def retype(self, mapping: dict) -> "Stateful":
        def re(ps):
            return [Param(p.name, p.type.with_dtype(mapping.get(p.type.dtype, p.type.dtype)), p.init) for p in ps]

        return Stateful(re(self.params), re(self.state), retype(self.train, mapping), retype(self.eval, mapping))

    def __repr__(self) -> str:
        ps = ", ".join(f"{p.name}: {p.type}" for p in self.params)
        ss = ", ".join(f"{p.name}: {p.type}" for p in self.state)
        return f"Stateful([{ps}], state=[{ss}], {self.dom} -> {self.cod})"


def takes_key(model) -> bool:
    """Whether ``model``'s first input is a random key and a second input follows."""
    return len(model.dom) == 2 and model.dom[0] == KEY


def keyed(model, name: str = "key") -> Stateful:
    """``model : (key, A) -> B`` (a Para or a Stateful model) as a stateful model ``A -> B``
    whose state holds the key (see the module docstring)."""
    m = model if isinstance(model, Stateful) else Stateful(model.params, (), model.body, model.body)
    if not takes_key(m):
        raise CatgradTypeError(f"keyed needs a model whose inputs are (i64[] key, x), got {m.dom}")
    taken, base, k = set(m.names) | set(m.state_names), name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    n, k = len(m.P), len(m.S)

    def form(d, split):
        def body(b, ins):
            ps, ss, key, x = ins[:n], ins[n : n + k], ins[n + k], ins[n + k + 1]
            if split:
                from ..ops import random_split

                nxt, use = random_split(key)
            else:
                nxt = use = key
            return b.call(d, ps + ss + [use, x]) + [nxt]

        return build(m.P @ m.S @ Ob(KEY) @ m.dom[1:], body)

    state = m.state + (Param(name, KEY, key_init()),)
    return Stateful(m.params, state, form(m.train, True), form(m.eval, False))


__all__ = ["Stateful", "keyed", "takes_key"]
