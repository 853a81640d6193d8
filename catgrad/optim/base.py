"""Optimizers as lenses, and the algebra that composes them.

An optimizer for a parameter wire ``P`` with state ``S`` is a lens

    (S x P, S x P) -> (P, P')
    get : S x P -> P             (the point where the gradient is taken; may read S)
    put : S x P x P' -> S x P    ((s, p, p') |-> (s', p_new))

(MATH.md section 3). ``p'`` is the cotangent R sends back with the learning-rate
sign already applied: it points downhill (``p' = -grad L`` with the default
learning-rate lens ``alpha = -1``).

Internally an optimizer is a list of *stages*, each a small lens-shaped
transformation written on wires: a stage may move the evaluation point
(``get``), and in ``put`` it maps the incoming direction ``u`` to a new one
while updating its own state; after the last stage the parameter moves,
``p_new = p + u``. So

- ``a >> b`` (sequential) feeds a's output direction into b: ``clip_norm(1) >> adam(1e-3)``;
- ``a @ b`` (tensor) puts ``a`` on the first parameter wire and ``b`` on the second;
- :func:`assign` picks an optimizer per parameter by name (glob patterns), no masks.

Every hyperparameter (learning rate, betas, epsilons ...) is *data*: a scalar
entry of the optimizer state, passed through unchanged by ``put``. Changing the
learning rate is editing the state, never recompiling.

State layout. The flat state of one parameter is keyed ``"<param>/<stage>.<field>"``;
stage names are the stage kinds, numbered ``adam``, ``adam_2``, ... in order when a
chain repeats one. Chains are flattened when built, so the keys (and their order)
do not depend on how ``>>`` was bracketed, and stateless stages (``identity``)
do not shift them: checkpoints survive refactoring an optimizer expression.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..calculus.lens import Lens
from ..calculus.para import Param
from ..core.diagram import Wire
from ..core.types import Ob, TensorType
from ..errors import CatgradError, CatgradTypeError

# -- the recipe algebra -----------------------------------------------------------------


class Optimizer:
    """A recipe that, for each parameter wire, gives a list of stages."""

    def stages(self, index: int, name: str, count: int) -> list:
        """The stages for parameter number ``index`` (of ``count``) called ``name``."""
        raise NotImplementedError

    def __rshift__(self, other: "Optimizer") -> "Optimizer":
        if not isinstance(other, Optimizer):
            return NotImplemented
        return Chain(self, other)

    def __matmul__(self, other: "Optimizer") -> "Optimizer":
        if not isinstance(other, Optimizer):
            return NotImplemented
        return Tensor(self, other)

    def lens(self, params) -> "OptimizerLens":
        """The optimizer lens for a list of parameters (``Param`` or ``(name, type)``)."""
        return OptimizerLens(self, params)

    def for_type(self, t: TensorType) -> Lens:
        """The lens ``(S x P, S x P) -> (P, P')`` for one parameter wire of type ``t``."""
        return OptimizerLens(self, [("p", t)]).single_lens()


class Chain(Optimizer):
    """Sequential composition, flattened: ``(a >> b) >> c`` is ``Chain(a, b, c)``."""

    def __init__(self, *parts: Optimizer):
        flat = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, Chain) else [p])
        self.parts = tuple(flat)

    def stages(self, index, name, count):
        return [s for p in self.parts for s in p.stages(index, name, count)]

    def __eq__(self, other):
        return isinstance(other, Chain) and self.parts == other.parts

    __hash__ = object.__hash__

    def __repr__(self):
        return " >> ".join(_paren(p) for p in self.parts)


class Tensor(Optimizer):
    """``a @ b @ ...``: one optimizer per parameter wire, in the model's order."""

    def __init__(self, *parts: Optimizer):
        flat = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, Tensor) else [p])
        self.parts = tuple(flat)

    def stages(self, index, name, count):
        if count != len(self.parts):
            raise CatgradError(
                f"a tensor of {len(self.parts)} optimizers needs exactly {len(self.parts)} parameter wires, "
                f"but the model has {count}; use cg.optim.assign to pick optimizers by name"
            )
        return self.parts[index].stages(0, name, 1)

    def __repr__(self):
        return " @ ".join(_paren(p) for p in self.parts)


def _paren(p) -> str:
    return f"({p!r})" if isinstance(p, (Chain, Tensor)) else repr(p)


class Assign(Optimizer):
    """Optimizers chosen per parameter by name: the first matching glob pattern wins."""

    def __init__(self, rules: dict, default: Optimizer | None = None):
        for k, v in rules.items():
            if not isinstance(k, str) or not isinstance(v, Optimizer):
                raise CatgradError(f"assign maps name patterns (str) to optimizers, got {k!r}: {v!r}")
        self.rules, self.default = dict(rules), default

    def stages(self, index, name, count):
        for pattern, opt in self.rules.items():
            if fnmatch.fnmatchcase(name, pattern):
                return opt.stages(0, name, 1)
        if self.default is None:
            raise CatgradError(
                f"no optimizer is assigned to parameter {name!r}: no pattern of {list(self.rules)} matches "
                f"and there is no default"
            )
        return self.default.stages(0, name, 1)

    def __repr__(self):
        return f"assign({self.rules!r}, default={self.default!r})"


def assign(rules: dict, default: Optimizer | None = None) -> Optimizer:
    """Per-parameter optimizers by name: ``assign({"*.W": adam(1e-2)}, default=sgd(0.1))``."""
    return Assign(rules, default)


# -- stages -----------------------------------------------------------------------------


@dataclass
class Slot:
    """One state entry of a stage: a field name, its type, and its initial value as a
    function of the parameter's initial value."""

    field: str
    type: TensorType
    init: Callable[[np.ndarray], np.ndarray]


class Stage(Optimizer):
    """One transformation in an optimizer chain.

    Subclasses set ``kind`` (the state-key name) and ``hypers`` (name -> float: all
    become scalar state entries) and implement ``update`` (and ``get`` if the gradient
    is taken somewhere other than ``p``). Wires for the state arrive in a dict
    ``s`` (field -> wire, hypers included).
    """

    kind = "stage"

    def __init__(self, **hypers):
        for k, v in hypers.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CatgradError(f"{self.kind}: hyperparameter {k} must be a number, got {v!r}")
        self.hypers = {k: float(v) for k, v in hypers.items()}

    def stages(self, index, name, count):
        return [self]

    # state beyond the hyperparameters
    def slots(self, t: TensorType) -> list:
        return []

    def all_slots(self, t: TensorType) -> list:
        scalar = t.with_shape(())
        hyp = [Slot(k, scalar, _const(scalar, v)) for k, v in self.hypers.items()]
        return hyp + self.slots(t)

    def check(self, t: TensorType) -> None:
        """Reject parameter types this stage cannot handle."""
        if not t.dtype.is_float:
            raise CatgradTypeError(f"the {self.kind} optimizer needs float parameters, got {t}")

    def get(self, s: dict, p: Wire) -> Wire:
        return p

    def update(self, s: dict, p: Wire, u: Wire):
        """``(state wires, parameter, incoming direction) -> (new state dict, outgoing direction)``.
        Fields missing from the returned dict keep their value."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v:g}" for k, v in self.hypers.items())
        return f"{self.kind}({args})"


def _const(t: TensorType, value: float):
    def init(p):
        if t.dtype.name == "bit":
            return np.full(t.shape, bool(value))
        return np.full(t.shape, value, dtype=t.dtype.numpy)

    return init


def zeros_like_slot(field: str, t: TensorType) -> Slot:
    return Slot(field, t, lambda p: np.zeros(t.shape, dtype=t.dtype.numpy))


def scalar_slot(field: str, t: TensorType, value: float = 0.0) -> Slot:
    return Slot(field, t.with_shape(()), _const(t.with_shape(()), value))


class Identity(Stage):
    """The identity optimizer stage: no state, the direction passes through."""

    kind = "identity"

    def check(self, t):
        pass

    def update(self, s, p, u):
        return {}, u


def identity() -> Optimizer:
    """The unit of ``>>``."""
    return Identity()


# -- from a recipe to the lens ------------------------------------------------------------


def _number(stages: list) -> list:
    """State-key names for a flattened chain: kind, kind_2, ...; stateless stages too
    (they simply contribute no keys)."""
    seen: dict = {}
    names = []
    for st in stages:
        k = seen.get(st.kind, 0) + 1
        seen[st.kind] = k
        names.append(st.kind if k == 1 else f"{st.kind}_{k}")
    return names


def run_stages(stages: list, prefixes: list, s: dict, p: Wire, g: Wire):
    """Apply a list of stages to the direction ``g`` at parameter ``p``: the composite put.
    ``s`` maps full keys to wires; returns (new state dict by full key, final direction)."""
    new = {}
    u = g
    for st, pre in zip(stages, prefixes):
        local = {k[len(pre) + 1 :]: w for k, w in s.items() if k.startswith(pre + ".")}
        out, u = st.update(local, p, u)
        for f, w in out.items():
            new[f"{pre}.{f}"] = w
    return new, u


def run_gets(stages: list, prefixes: list, s: dict, p: Wire) -> Wire:
    for st, pre in zip(stages, prefixes):
        local = {k[len(pre) + 1 :]: w for k, w in s.items() if k.startswith(pre + ".")}
        p = st.get(local, p)
    return p


def stage_slots(stages: list, prefixes: list, t: TensorType) -> list:
    out = []
    for st, pre in zip(stages, prefixes):
        st.check(t)
        out += [Slot(f"{pre}.{sl.field}", sl.type, sl.init) for sl in st.all_slots(t)]
    return out


class OptimizerLens:
    """An optimizer instantiated on a list of parameters.

    ``lens`` is a :class:`~catgrad.Lens` ``(P x S, P x S) -> (P, P')``: the parameters
    first, then every state entry in ``keys`` order; ``get : P x S -> P`` and
    ``put : P x S x P' -> P x S``. (This is MATH.md's ``(S x P, S x P) -> (P, P')`` with
    the factors listed parameters-first, the order the step diagram uses.)
    """

    def __init__(self, opt: Optimizer, params):
        self.names, self.types = [], []
        for p in params:
            name, t = (p.name, p.type) if isinstance(p, Param) else p
            self.names.append(name)
            self.types.append(t)
        n = len(self.names)
        self.stages, self.prefixes, self.slots = [], [], []
        for i, (name, t) in enumerate(zip(self.names, self.types)):
            st = opt.stages(i, name, n)
            pre = [f"{name}/{k}" for k in _number(st)]
            self.stages.append(st)
            self.prefixes.append(pre)
            self.slots.append(stage_slots(st, pre, t))
        self.keys = [sl.field for sls in self.slots for sl in sls]
        self.state_types = [sl.type for sls in self.slots for sl in sls]
        self.opt = opt
        self._lens = None

    @property
    def P(self) -> Ob:
        return Ob(*self.types)

    @property
    def S(self) -> Ob:
        return Ob(*self.state_types)

    def init(self, params: Sequence[np.ndarray]) -> dict:
        """Initial state (key -> array) given the parameters' initial values."""
        out = {}
        for sls, p in zip(self.slots, params):
            for sl in sls:
                out[sl.field] = sl.init(np.asarray(p))
        return out

    # wire-level pieces, used by the step builder and by the lens below
    def emit_get(self, ps: list, ss: list) -> list:
        s = dict(zip(self.keys, ss))
        return [run_gets(st, pre, s, p) for st, pre, p in zip(self.stages, self.prefixes, ps)]

    def emit_put(self, ps: list, ss: list, grads: list):
        s = dict(zip(self.keys, ss))
        new_s = dict(s)
        new_p = []
        for st, pre, p, g in zip(self.stages, self.prefixes, ps, grads):
            if g.type != p.type:
                raise CatgradTypeError(f"the update direction {g.type} does not match the parameter {p.type}")
            upd, u = run_stages(st, pre, s, p, g)
            new_s.update(upd)
            new_p.append(p + u)
        for k, w in new_s.items():
            if w.type != s[k].type:
                raise CatgradTypeError(f"optimizer state {k}: the update has type {w.type}, expected {s[k].type}")
        return new_p, [new_s[k] for k in self.keys]

    @property
    def lens(self) -> Lens:
        if self._lens is None:
            P, S, n = self.P, self.S, len(self.types)

            def get(b, ins):
                return self.emit_get(ins[:n], ins[n:])

            def put(b, ins):
                ps, ss, gs = ins[:n], ins[n : n + len(S)], ins[n + len(S) :]
                new_p, new_s = self.emit_put(ps, ss, gs)
                return new_p + new_s

            from ..core.diagram import build

            self._lens = Lens(build(P @ S, get), build(P @ S @ P, put))
        return self._lens

    def single_lens(self) -> Lens:
        """For one parameter: the lens reordered to MATH.md's ``(S x P, S x P) -> (P, P')``."""
        from ..core.diagram import wiring

        k = len(self.S)
        to_ps = wiring(self.S @ self.P, [k, *range(k)])  # (s, p) -> (p, s)
        to_sp = wiring(self.P @ self.S, [*range(1, k + 1), 0])  # (p, s) -> (s, p)
        put_in = wiring(self.S @ self.P @ self.P, [k, *range(k), k + 1])
        return Lens(to_ps >> self.lens.get, put_in >> self.lens.put >> to_sp)

    def __repr__(self):
        return f"OptimizerLens({self.opt!r} on {len(self.types)} parameter(s), {len(self.keys)} state entries)"


__all__ = [
    "Optimizer", "Chain", "Tensor", "Assign", "assign", "Stage", "Slot", "Identity", "identity",
    "OptimizerLens", "zeros_like_slot", "scalar_slot",
]


def power(base: Wire, exponent: Wire) -> Wire:
    """``base ** exponent`` for scalar wires (both data): ``exp(exponent log base)``."""
    from ..ops import exp, log

    return exp(exponent * log(base))
