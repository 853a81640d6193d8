"""Optimizers as lenses, and the algebra that composes them.

An optimizer for a parameter wire ``P`` with state ``S`` is a lens

    (S x P, S x P) -> (P, P')
    get : S x P -> P             (the point where the gradient is taken; may read S)
    put : S x P x P' -> S x P    ((s, p, p') |-> (s', p_new))

(docs/mathematics.md section 3). ``p'`` is the cotangent R sends back with the learning-rate
sign already applied: it points downhill (``p' = -grad L`` with the default
learning-rate lens ``alpha = -1``).

Internally an optimizer is, for every parameter wire, a list of *stages*, each a
small lens-shaped transformation written on wires: a stage may move the evaluation
point (``get``), and in ``put`` it maps the incoming direction ``u`` to a new one
while updating its own state; after the last stage the parameter moves,
``p_new = p + u``. There are two kinds of stage:

- a per-parameter :class:`Stage` sees one wire: ``(s, p, u) -> (s', u')``;
- a :class:`WholeModelStage` sees every wire it is applied to at once:
  ``(h, [s_i], [p_i], [u_i]) -> ([s_i'], [u_i'])`` (global-norm clipping, trust
  ratios, all-reduce). On each wire it sits at its place in the chain; it runs
  when all its wires have reached it.

The composition is defined once, on recipes (:class:`Optimizer`):

- ``a >> b`` (sequential) feeds a's output direction into b; a whole-model stage
  in ``a`` spans every wire ``a >> b`` is applied to: ``clip_norm(1) >> adam(1e-3)``
  clips by the global norm, then Adam runs per parameter;
- ``a @ b`` (tensor) puts ``a`` on the first parameter wire and ``b`` on the second
  (a whole-model stage inside ``a`` sees only ``a``'s wire);
- :func:`assign` picks an optimizer per parameter by name (glob patterns); a
  whole-model stage inside a rule spans the wires that rule matched.

Every hyperparameter (learning rate, betas, epsilons ...) is *data*: a scalar
entry of the optimizer state, passed through unchanged by ``put``; a hyperparameter
given as a schedule (:mod:`catgrad.schedule`) is its Moore machine's state, stepped
once per update. Changing the learning rate is editing the state, never recompiling.

State layout. The flat state of one parameter is keyed ``"<param>/<stage>.<field>"``;
stage names are the stage kinds, numbered ``adam``, ``adam_2``, ... in order when a
chain repeats one; a schedule-valued hyperparameter ``lr`` has fields ``lr.t``,
``lr.peak``, .... A whole-model stage keeps its per-parameter fields under each
parameter and its hyperparameters once, under the first parameter it spans.
Chains are flattened when built, so the keys (and their order) do not depend on how
``>>`` was bracketed, and stateless stages (``identity``) do not shift them:
checkpoints survive refactoring an optimizer expression.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..calculus.lens import Lens
from ..calculus.para import Param
from ..core.diagram import Wire
from ..core.types import Ob, TensorType, number_source
from ..errors import CatgradError, CatgradTypeError

# -- the recipe algebra -----------------------------------------------------------------


class Optimizer:
    """A recipe that, for each parameter wire, gives a list of stages."""

    def resolve(self, params: list) -> list:
        """The stage lists for ``params`` (a list of ``(index, name)``), one list per
        parameter in order. A whole-model stage appears as one :class:`Group` shared
        by the lists of all the parameters it spans."""
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

    def resolve(self, params):
        out = [[] for _ in params]
        for part in self.parts:
            for lst, more in zip(out, part.resolve(params)):
                lst.extend(more)
        return out

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

    def resolve(self, params):
        if len(params) != len(self.parts):
            raise CatgradError(
                f"a tensor of {len(self.parts)} optimizers needs exactly {len(self.parts)} parameter wires, "
                f"but the model has {len(params)}; use cg.optim.assign to pick optimizers by name"
            )
        return [part.resolve([p])[0] for part, p in zip(self.parts, params)]

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

    def resolve(self, params):
        opts = [*self.rules.values(), self.default]
        chosen = []
        for index, name in params:
            rule = next((i for i, pat in enumerate(self.rules) if fnmatch.fnmatchcase(name, pat)), len(self.rules))
            if opts[rule] is None:
                raise CatgradError(
                    f"no optimizer is assigned to parameter {name!r}: no pattern of {list(self.rules)} matches "
                    f"and there is no default"
                )
            chosen.append(rule)
        out: list = [None] * len(params)
        for rule in sorted(set(chosen)):  # each rule once, on all the wires it matched
            mine = [j for j, r in enumerate(chosen) if r == rule]
            for j, lst in zip(mine, opts[rule].resolve([params[j] for j in mine])):
                out[j] = lst
        return out

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


class StageBase(Optimizer):
    """What both kinds of stage share: a ``kind`` (the state-key name) and
    hyperparameters (numbers, or schedules whose Moore-machine state is kept as
    ``<name>.<field>`` entries). Stage code reads a hyperparameter ``h`` as
    ``s["h"]`` either way: for a schedule it is the schedule's current output."""

    kind = "stage"

    def __init__(self, **hypers):
        from ..schedule import Schedule

        self.hypers, self.schedules, self.order = {}, {}, list(hypers)
        for k, v in hypers.items():
            if isinstance(v, Schedule):
                self.schedules[k] = v
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CatgradError(f"{self.kind}: hyperparameter {k} must be a number or a schedule, got {v!r}")
            else:
                self.hypers[k] = float(v)

    # state beyond the hyperparameters
    def slots(self, t: TensorType) -> list:
        return []

    def hyper_slots(self, t: TensorType) -> list:
        scalar = t.with_shape(())
        out = []
        for k in self.order:
            if k in self.schedules:
                out += [Slot(f"{k}.{f}", scalar, _const(scalar, v)) for f, v in self.schedules[k].state_values().items()]
            else:
                out.append(Slot(k, scalar, _const(scalar, self.hypers[k])))
        return out

    def all_slots(self, t: TensorType) -> list:
        return self.hyper_slots(t) + self.slots(t)

    def check(self, t: TensorType) -> None:
        """Reject parameter types this stage cannot handle."""
        if not t.dtype.is_float:
            raise CatgradTypeError(f"the {self.kind} optimizer needs float parameters, got {t}")

    def bind(self, s: dict) -> dict:
        """``s`` with each schedule-valued hyperparameter replaced by its current output."""
        out = dict(s)
        for k, sch in self.schedules.items():
            out[k] = sch.output(_sub(s, k))
        return out

    def advance(self, s: dict) -> dict:
        """The schedules' next states (keyed like ``s``): they step once per update."""
        out = {}
        for k, sch in self.schedules.items():
            out.update({f"{k}.{f}": w for f, w in sch.next(_sub(s, k)).items()})
        return out

    def _arg_strings(self) -> list:
        """``(name, spelling)`` of each hyperparameter, in order."""
        return [(k, number_source(self.hypers[k]) if k in self.hypers else repr(self.schedules[k])) for k in self.order]

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self._arg_strings())
        return f"{self.kind}({args})"


def _sub(s: dict, name: str) -> dict:
    pre = name + "."
    return {k[len(pre):]: w for k, w in s.items() if k.startswith(pre)}


class Stage(StageBase):
    """A per-parameter stage of an optimizer chain.

    Subclasses set ``kind`` and pass their hyperparameters to ``__init__``, and
    implement ``update`` (and ``get`` if the gradient is taken somewhere other than
    ``p``). Wires for the state arrive in a dict ``s`` (field -> wire, hypers included).
    """

    def resolve(self, params):
        return [[self] for _ in params]

    def get(self, s: dict, p: Wire) -> Wire:
        return p

    def update(self, s: dict, p: Wire, u: Wire):
        """``(state wires, parameter, incoming direction) -> (new state dict, outgoing direction)``.
        Fields missing from the returned dict keep their value."""
        new, d, dec = self.update_parts(s, p, u)
        return new, d if dec is None else d + dec

    def update_parts(self, s: dict, p: Wire, u: Wire):
        """``(new state, step, decoupled)``: the outgoing direction is ``step + decoupled``,
        where ``decoupled`` (``None`` if there is none) does not come from the gradient
        (decoupled weight decay). Wrappers that reshape a step, such as
        :func:`~catgrad.optim.cautious`, leave the decoupled part alone."""
        if type(self).update is Stage.update:
            raise NotImplementedError(f"the {self.kind} stage implements neither update nor update_parts")
        new, d = self.update(s, p, u)
        return new, d, None

    # with the schedules bound and stepped: what the executors call
    def apply_get(self, s: dict, p: Wire) -> Wire:
        return self.get(self.bind(s), p)

    def apply_put(self, s: dict, p: Wire, u: Wire, parts: bool = False):
        new, d, dec = self.update_parts(self.bind(s), p, u)
        new.update(self.advance(s))
        if parts:
            return new, d, dec
        return new, d if dec is None else d + dec


class WholeModelStage(StageBase):
    """A stage that reads every parameter and direction it spans at once.

    ``slots(t)`` are per parameter (keyed under each parameter); the hyperparameters
    are kept once, under the first parameter. ``update(h, ss, ps, us)`` receives the
    hyperparameter wires ``h``, the per-parameter state dicts ``ss``, the parameters
    and the incoming directions, and returns ``(new state dicts, outgoing directions)``;
    ``get(h, ss, ps)`` may move the evaluation points. All wires it spans must have
    the same dtype.
    """

    def resolve(self, params):
        g = Group(self, [i for i, _ in params])
        return [[g] for _ in params]

    def get(self, h: dict, ss: list, ps: list) -> list:
        return ps

    def gradient(self, h: dict, ss: list, ps: list, us: list, again) -> list:
        """The directions this stage's put receives, given ``us``, the downhill directions
        at ``ps``, and ``again(points)``, the directions at other values of the parameters it
        spans (a further evaluation of R of the model, the rest of the inputs unchanged).
        The default takes ``us`` as they are; SAM takes them again at a perturbed point."""
        return us

    def update(self, h: dict, ss: list, ps: list, us: list):
        raise NotImplementedError

    @property
    def takes_gradient(self) -> bool:
        """Whether this stage replaces the gradient by evaluating R of the model again."""
        return type(self).gradient is not WholeModelStage.gradient


class Group:
    """One application of a whole-model stage to the parameters ``members`` (indices)."""

    def __init__(self, stage: WholeModelStage, members: list):
        self.stage, self.members, self.kind = stage, tuple(members), stage.kind


def _const(t: TensorType, value: float):
    def init(p):
        return np.full(t.shape, value, dtype=t.dtype.numpy)  # bit: numpy's bool

    return init


def zeros_like_slot(field: str, t: TensorType) -> Slot:
    """A state slot ``field`` of type ``t`` that starts at zero (moment estimates, velocities)."""
    return Slot(field, t, lambda p: np.zeros(t.shape, dtype=t.dtype.numpy))


def scalar_slot(field: str, t: TensorType, value: float = 0.0) -> Slot:
    """A scalar state slot ``field`` (``t``'s dtype, shape ``()``) that starts at ``value`` (step counts, hyperparameters)."""
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


# -- wire helpers shared by the families --------------------------------------------------


def ema(average: Wire, value: Wire, decay: Wire) -> Wire:
    """The exponential moving average step ``decay average + (1 - decay) value``."""
    return decay * average + (1.0 - decay) * value


def power(base: Wire, exponent: Wire) -> Wire:
    """``base ** exponent`` for scalar wires (both data): ``exp(exponent log base)``."""
    from ..ops import exp, log

    return exp(exponent * log(base))


def norm(w: Wire) -> Wire:
    """The Euclidean norm of a tensor wire, as a scalar wire."""
    from ..ops import sqrt

    return sqrt((w * w).sum())


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
    """Apply a list of per-parameter stages to the direction ``g`` at parameter ``p``.
    ``s`` maps full keys to wires; returns (new state dict by full key, final direction)."""
    new = {}
    u = g
    for st, pre in zip(stages, prefixes):
        out, u = st.apply_put(_sub(s, pre), p, u)
        new.update({f"{pre}.{f}": w for f, w in out.items()})
    return new, u


def run_gets(stages: list, prefixes: list, s: dict, p: Wire) -> Wire:
    for st, pre in zip(stages, prefixes):
        p = st.apply_get(_sub(s, pre), p)
    return p


# Optimizer arithmetic on a bf16 parameter runs in f32: in bf16, Adam's b2 = 0.999 rounds to 1
# and small updates vanish against the parameter (torch's kernels likewise compute in f32).
_COMPUTE = {"bf16": "f32"}


def compute_type(t: TensorType) -> TensorType:
    """The type an optimizer's state and arithmetic take for a parameter of type ``t``."""
    from ..core.types import DTYPES

    return t.with_dtype(DTYPES[_COMPUTE[t.dtype.name]]) if t.dtype.name in _COMPUTE else t


def _as(w: Wire, t: TensorType) -> Wire:
    from ..ops import cast

    return w if w.type.dtype == t.dtype else cast(w, dtype=t.dtype)


class OptimizerLens:
    """An optimizer instantiated on a list of parameters.

    ``lens`` is a :class:`~catgrad.Lens` ``(P x S, P x S) -> (P, P')``: the parameters
    first, then every state entry in ``keys`` order; ``get : P x S -> P`` and
    ``put : P x S x P' -> P x S``. (This is docs/mathematics.md's ``(S x P, S x P) -> (P, P')`` with
    the factors listed parameters-first, the order the step diagram uses.)

    A parameter whose dtype is too narrow for optimizer arithmetic (bf16) has its state,
    hyperparameters and update computed in f32 (:func:`compute_type`); the new parameter is
    rounded to its own dtype once, at the end.
    """

    def __init__(self, opt: Optimizer, params):
        self.names, self.types = [], []
        for p in params:
            name, t = (p.name, p.type) if isinstance(p, Param) else p
            self.names.append(name)
            self.types.append(t)
        twice = sorted({n for n in self.names if self.names.count(n) > 1})
        if twice:
            raise CatgradError(f"parameter names must be distinct (they key the optimizer state), got {twice} twice")
        self.stages = opt.resolve(list(enumerate(self.names)))
        self.prefixes = [[f"{name}/{k}" for k in _number(st)] for name, st in zip(self.names, self.stages)]
        # fields[i][j]: (field, full key) of stage j on parameter i
        self.fields, self.slots = [], []
        self.compute = [compute_type(t) for t in self.types]
        for i, (sts, pres, t) in enumerate(zip(self.stages, self.prefixes, self.compute)):
            fl, sl = [], []
            for st, pre in zip(sts, pres):
                if isinstance(st, Group):
                    lead = st.members[0] == i
                    if lead:
                        self._check_group(st)
                    mine = st.stage.all_slots(t) if lead else st.stage.slots(t)
                else:
                    st.check(t)
                    mine = st.all_slots(t)
                fl.append([(x.field, f"{pre}.{x.field}") for x in mine])
                sl += [Slot(f"{pre}.{x.field}", x.type, x.init) for x in mine]
            self.fields.append(fl)
            self.slots.append(sl)
        self.keys = [sl.field for sls in self.slots for sl in sls]
        self.state_types = [sl.type for sls in self.slots for sl in sls]
        self.opt = opt
        self._lens = None

    def _check_group(self, g: Group) -> None:
        types = [self.compute[m] for m in g.members]
        for t in types:
            g.stage.check(t)
        if len({t.dtype for t in types}) > 1:
            named = ", ".join(f"{self.names[m]}: {self.types[m]}" for m in g.members)
            raise CatgradTypeError(f"the whole-model stage {g.kind} needs parameters of one dtype, got {named}")

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

    # -- running the stages: per-parameter ones wire by wire, a whole-model one when
    #    every wire it spans has reached it
    def _walk(self, per_param, whole_model) -> None:
        n = len(self.stages)
        pos = [0] * n
        while True:
            for i in range(n):
                while pos[i] < len(self.stages[i]) and not isinstance(self.stages[i][pos[i]], Group):
                    per_param(i, pos[i])
                    pos[i] += 1
            waiting = [self.stages[i][pos[i]] for i in range(n) if pos[i] < len(self.stages[i])]
            if not waiting:
                return
            ready = next((g for g in waiting if all(self.stages[m][pos[m]] is g if pos[m] < len(self.stages[m])
                                                    else False for m in g.members)), None)
            if ready is None:
                raise CatgradError(f"the whole-model stages {[g.kind for g in waiting]} wait for each other: "
                                   f"each must come in the same order on every parameter it spans")
            whole_model(ready, {m: pos[m] for m in ready.members})
            for m in ready.members:
                pos[m] += 1

    def _local(self, s: dict, i: int, j: int) -> dict:
        return {f: s[k] for f, k in self.fields[i][j]}

    def _split(self, g: Group, s: dict, at: dict):
        """(hyperparameter wires, per-member state dicts) of a whole-model stage."""
        lead = g.members[0]
        hyper = {sl.field for sl in g.stage.hyper_slots(self.types[lead])}
        h = {f: w for f, w in self._local(s, lead, at[lead]).items() if f in hyper}
        ss = [{f: w for f, w in self._local(s, m, at[m]).items() if f not in hyper} for m in g.members]
        return h, ss

    def groups(self) -> list:
        """``(group, positions)`` for each whole-model stage, in the order put runs them."""
        out = []
        self._walk(lambda i, j: None, lambda g, at: out.append((g, at)))
        return out

    def gradient(self, grad):
        """The gradient diagram ``(p..., s..., data...) -> (p'..., rest...)`` as this optimizer
        takes it: ``grad`` itself, unless a whole-model stage takes the gradient more than once
        (:meth:`WholeModelStage.gradient`, e.g. SAM); each such stage wraps the diagram in
        turn, in put's order. Only the directions change; ``rest`` (loss, prediction) is that
        of the first evaluation, at ``p``."""
        from ..core.diagram import build

        n, k = len(self.types), len(self.keys)
        for g, at in self.groups():
            if not g.stage.takes_gradient:
                continue

            def body(b, ins, grad=grad, g=g, at=at):
                ps, ss, data = ins[:n], ins[n : n + k], ins[n + k :]
                first = b.call(grad, ins)

                def again(points):
                    moved = list(ps)
                    for m, w in zip(g.members, points):
                        moved[m] = w
                    outs = b.call(grad, moved + ss + data)
                    return [outs[m] for m in g.members]

                h, sts = self._split(g, dict(zip(self.keys, ss)), at)
                got = g.stage.gradient(g.stage.bind(h), sts, [ps[m] for m in g.members],
                                       [first[m] for m in g.members], again)
                out = list(first)
                for m, w in zip(g.members, got):
                    out[m] = w
                return out

            grad = build(grad.dom, body)
        return grad

    def emit_get(self, ps: list, ss: list) -> list:
        s = dict(zip(self.keys, ss))
        outer = list(ps)
        ps = [_as(p, t) for p, t in zip(ps, self.compute)]
        start = list(ps)

        def per_param(i, j):
            ps[i] = self.stages[i][j].apply_get(self._local(s, i, j), ps[i])

        def whole_model(g, at):
            h, sts = self._split(g, s, at)
            got = g.stage.get(g.stage.bind(h), sts, [ps[m] for m in g.members])
            for m, w in zip(g.members, got):
                ps[m] = w

        self._walk(per_param, whole_model)
        # a get that leaves the point alone keeps the parameter's own wire (no round trip)
        return [o if w.id == c.id else _as(w, o.type) for o, w, c in zip(outer, ps, start)]

    def emit_put(self, ps: list, ss: list, grads: list):
        us, new_s = self._directions(ps, ss, grads)
        return [_as(_as(p, t) + u, p.type) for p, t, u in zip(ps, self.compute, us)], new_s

    def emit_directions(self, ps: list, ss: list, grads: list):
        """The put before the parameters move: ``(outgoing directions, new state list)``."""
        us, new_s = self._directions(ps, ss, grads)
        return [_as(u, p.type) for p, u in zip(ps, us)], new_s

    def _directions(self, ps: list, ss: list, grads: list):
        s = dict(zip(self.keys, ss))
        new_s = dict(s)
        for p, g in zip(ps, grads):
            if g.type != p.type:
                raise CatgradTypeError(f"the update direction {g.type} does not match the parameter {p.type}")
        ps = [_as(p, t) for p, t in zip(ps, self.compute)]
        us = [_as(g, t) for g, t in zip(grads, self.compute)]

        def per_param(i, j):
            out, us[i] = self.stages[i][j].apply_put(self._local(s, i, j), ps[i], us[i])
            pre = self.prefixes[i][j]
            new_s.update({f"{pre}.{f}": w for f, w in out.items()})

        def whole_model(g, at):
            h, sts = self._split(g, s, at)
            outs, got = g.stage.update(g.stage.bind(h), sts, [ps[m] for m in g.members], [us[m] for m in g.members])
            lead = self.prefixes[g.members[0]][at[g.members[0]]]
            new_s.update({f"{lead}.{f}": w for f, w in g.stage.advance(h).items()})
            for m, out, u in zip(g.members, outs, got):
                us[m] = u
                new_s.update({f"{self.prefixes[m][at[m]]}.{f}": w for f, w in out.items()})

        self._walk(per_param, whole_model)
        for k, w in new_s.items():
            if w.type != s[k].type:
                raise CatgradTypeError(f"optimizer state {k}: the update has type {w.type}, expected {s[k].type}")
        return us, [new_s[k] for k in self.keys]

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
        """For one parameter: the lens reordered to docs/mathematics.md's ``(S x P, S x P) -> (P, P')``."""
        from ..core.diagram import wiring

        k = len(self.S)
        to_ps = wiring(self.S @ self.P, [k, *range(k)])  # (s, p) -> (p, s)
        to_sp = wiring(self.P @ self.S, [*range(1, k + 1), 0])  # (p, s) -> (s, p)
        put_in = wiring(self.S @ self.P @ self.P, [k, *range(k), k + 1])
        return Lens(to_ps >> self.lens.get, put_in >> self.lens.put >> to_sp)

    def __repr__(self):
        return f"OptimizerLens({self.opt!r} on {len(self.types)} parameter(s), {len(self.keys)} state entries)"


__all__ = [
    "Optimizer", "Chain", "Tensor", "Assign", "assign", "StageBase", "Stage", "WholeModelStage", "Group", "Slot",
    "Identity", "identity", "OptimizerLens", "zeros_like_slot", "scalar_slot", "ema", "power", "norm",
]
