"""Parametrised maps (the Para construction) and parametric lenses.

A morphism ``A -> B`` of Para is a pair ``(P, f : P x A -> B)``. Composition puts
the *later* map's parameters first, as in the Para construction:

    (P, f) >> (Q, g) = (Q x P, (q, p, a) |-> g(q, f(p, a)))

Flattened, the parameter list of a chain is the same however it is bracketed,
so ``(f >> g) >> h`` and ``f >> (g >> h)`` have identical parameter layouts.
Parameters carry names (unique within a Para: a clash gets a ``_2``, ``_3`` ...
suffix) and an initialiser.

A reparametrisation along ``alpha : Q -> P`` is the 2-cell
``(P, f) => (Q, (alpha x id) >> f)``. Weight tying is reparametrisation by copy;
under R the copy becomes addition, so tied parameters receive the sum of their
gradients.

A parametric lens (Para(Lens)) has ``get : P x A -> B`` and
``put : P x A x B' -> P' x A'``; ``ParaLens.of(f)`` is ``(f, R[f])``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from ..core.diagram import Diagram, Wire, build, id, wiring
from ..core.retype import retype
from ..core.types import Ob, TensorType
from ..errors import CatgradTypeError
from ..init import Init, normal
from .rdc import R


@dataclass(frozen=True)
class Param:
    """A named parameter wire with its initialiser."""

    name: str
    type: TensorType
    init: Optional[Init] = None

    def initial(self, rng: np.random.Generator) -> np.ndarray:
        init = self.init if self.init is not None else normal(0.01)
        return init(rng, self.type.shape, self.type.dtype.numpy)


_SUFFIX = re.compile(r"_[0-9]+$")


def _merge(*lists: Sequence[Param]) -> tuple:
    """Concatenate parameter lists, renaming each clash to ``base_k`` for the least
    free ``k >= 2`` (``base`` is the name without a ``_k`` suffix). One pass, so a
    chain of composites is named the same however it was bracketed: ``W, W_2, W_3``."""
    out, taken, next_k = [], set(), {}
    for params in lists:
        for p in params:
            name = p.name
            if name in taken:
                base = _SUFFIX.sub("", name)
                k = next_k.get(base, 2)
                while f"{base}_{k}" in taken:
                    k += 1
                next_k[base] = k + 1
                name = f"{base}_{k}"
                p = Param(name, p.type, p.init)
            taken.add(name)
            out.append(p)
    return tuple(out)


def _leaf_lists(para: "Para") -> list:
    """The parameter lists of the leaves of a composite, in parameter order
    (a sequential composite puts the later map first; a parallel one the left first).
    Iterative: chains are as deep as the model."""
    out, stack = [], [para]
    while stack:
        x = stack.pop()
        if x._params is not None:
            out.append(x._params)
        elif x._tree[0] == "seq":  # (left >> right): right's parameters first
            stack.append(x._tree[1])
            stack.append(x._tree[2])
        else:  # (left @ right): left's parameters first
            stack.append(x._tree[2])
            stack.append(x._tree[1])
    return out


class Para:
    """A parametrised map ``A -> B`` with parameters ``P``: ``body : P x A -> B``."""

    def __init__(self, params: Sequence[Param], body: Diagram):
        params = tuple(params)
        P = Ob(*(p.type for p in params))
        if body.dom[: len(P)] != P:
            raise CatgradTypeError(f"the body of a Para must take its parameters {P} first, got {body.dom}")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise CatgradTypeError(f"parameter names must be unique, got {names}")
        self._params, self.body = params, body
        self._P, self._tree = P, None
        self.dom = Ob(*body.dom[len(P) :])
        self.cod = body.cod

    @classmethod
    def _composite(cls, kind: str, left: "Para", right: "Para", body: Diagram, dom: Ob, cod: Ob) -> "Para":
        """A composite whose parameter list is merged lazily, in one pass over all
        its leaves: building an L-layer chain by repeated ``>>`` stays O(L)."""
        p = cls.__new__(cls)
        p.body, p.dom, p.cod = body, dom, cod
        p._params, p._P, p._tree = None, None, (kind, left, right)
        return p

    @property
    def params(self) -> tuple:
        if self._params is None:
            self._params = _merge(*_leaf_lists(self))
            self._tree = None  # the leaves are no longer needed
        return self._params

    @property
    def P(self) -> Ob:
        if self._P is None:
            self._P = Ob(*(p.type for p in self.params))
        return self._P

    @classmethod
    def lift(cls, f: Diagram) -> "Para":
        """A plain diagram as a Para with no parameters."""
        return cls((), f)

    @property
    def diagram(self) -> Diagram:
        """The body ``P x A -> B``: what evaluate and R see when given a Para."""
        return self.body

    @property
    def names(self) -> tuple:
        return tuple(p.name for p in self.params)

    def init(self, seed_or_rng=0) -> list:
        """Initial parameter values, in parameter order."""
        rng = seed_or_rng if isinstance(seed_or_rng, np.random.Generator) else np.random.default_rng(seed_or_rng)
        return [p.initial(rng) for p in self.params]

    def __rshift__(self, other) -> "Para":
        other = other if isinstance(other, Para) else Para.lift(other)
        if self.cod != other.dom:
            raise CatgradTypeError(
                f"cannot compose: the first map's output type is {self.cod} but the second one's input type is {other.dom}"
            )
        # (q, p, a) |-> g(q, f(p, a))
        body = (id(other.P) @ self.body) >> other.body
        return Para._composite("seq", self, other, body, self.dom, other.cod)

    def __rrshift__(self, other) -> "Para":
        return Para.lift(other) >> self

    def __matmul__(self, other) -> "Para":
        other = other if isinstance(other, Para) else Para.lift(other)
        p, q, a, c = len(self.P), len(other.P), len(self.dom), len(other.dom)
        # (p, q, a, c) |-> (p, a, q, c)
        perm = [*range(p), *range(p + q, p + q + a), *range(p, p + q), *range(p + q + a, p + q + a + c)]
        shuffle = wiring(self.P @ other.P @ self.dom @ other.dom, perm)
        body = shuffle >> (self.body @ other.body)
        return Para._composite("par", self, other, body, self.dom @ other.dom, self.cod @ other.cod)

    def __rmatmul__(self, other) -> "Para":
        return Para.lift(other) @ self

    def reparam(self, alpha: Diagram, params: Sequence[Param]) -> "Para":
        """The 2-cell along ``alpha : Q -> P``: new parameters ``params`` (of types Q)."""
        Q = Ob(*(p.type for p in params))
        if alpha.dom != Q or alpha.cod != self.P:
            raise CatgradTypeError(f"a reparametrisation must map {Q} to {self.P}, got {alpha.dom} -> {alpha.cod}")
        return Para(params, (alpha @ id(self.dom)) >> self.body)

    def tie(self, *names: str) -> "Para":
        """Weight tying: the named parameters (of one type) become one, the first name.
        It is reparametrisation by copy, so their gradients add."""
        index = {p.name: i for i, p in enumerate(self.params)}
        missing = [n for n in names if n not in index]
        if missing or len(names) < 2:
            raise CatgradTypeError(f"tie needs two or more parameter names of this map, got {list(names)}")
        keep = index[names[0]]
        for n in names[1:]:
            if self.params[index[n]].type != self.params[keep].type:
                raise CatgradTypeError(f"cannot tie {names[0]} : {self.params[keep].type} to {n} : {self.params[index[n]].type}")
        tied = {index[n] for n in names[1:]}
        new = [p for i, p in enumerate(self.params) if i not in tied]
        pos = {p.name: k for k, p in enumerate(new)}
        source = [pos[names[0]] if i in tied else pos[p.name] for i, p in enumerate(self.params)]
        alpha = wiring(Ob(*(p.type for p in new)), source)
        return self.reparam(alpha, new)

    def retype(self, mapping: dict) -> "Para":
        """The same map with wire dtypes replaced along ``mapping`` (``{f32: bf16}``):
        parameters keep their names and initialisers."""
        params = [Param(p.name, p.type.with_dtype(mapping.get(p.type.dtype, p.type.dtype)), p.init)
                  for p in self.params]
        return Para(params, retype(self.body, mapping))

    def with_params(self, **renames: str) -> "Para":
        """Rename parameters: ``f.with_params(W="enc.W")``."""
        return Para([replace(p, name=renames.get(p.name, p.name)) for p in self.params], self.body)

    def prefixed(self, prefix: str) -> "Para":
        """Every parameter name prefixed with ``prefix + '.'``, and every box scoped under
        ``prefix`` (:meth:`Diagram.scoped`): the same naming as a use of a ``.cat`` definition,
        so drawings frame it as one layer."""
        return Para([replace(p, name=f"{prefix}.{p.name}") for p in self.params], self.body.scoped(prefix))

    def __call__(self, *args):
        """On wires: inline the body (parameters first). On arrays: evaluate it, with errors
        that name parameters and inputs separately ("parameter dense.W", "input 0")."""
        if any(isinstance(a, Wire) for a in args):
            return self.body(*args)
        from ..core.evaluate import evaluate

        return evaluate(self, *args)

    def __repr__(self) -> str:
        ps = ", ".join(f"{p.name}: {p.type}" for p in self.params)
        return f"Para([{ps}], {self.dom} -> {self.cod})"


class ParaLens:
    """A parametric lens: ``get : P x A -> B`` and ``put : P x A x B' -> P' x A'``."""

    def __init__(self, params: Sequence[Param], get: Diagram, put: Diagram):
        self.params = tuple(params)
        self.P = Ob(*(p.type for p in self.params))
        self.get, self.put = get, put
        self.A = Ob(*get.dom[len(self.P) :])
        self.B = get.cod
        self.B_ = Ob(*put.dom[len(self.P) + len(self.A) :])
        if put.dom[: len(self.P) + len(self.A)] != self.P @ self.A:
            raise CatgradTypeError(f"put must take {self.P @ self.A} first, got {put.dom}")
        self.A_ = Ob(*put.cod[len(self.P) :])

    @classmethod
    def of(cls, f) -> "ParaLens":
        """The functor Para(C) -> Para(Lens(C)): ``(P, f) |-> (P, (f, R[f]))``."""
        f = f if isinstance(f, Para) else Para.lift(f)
        return cls(f.params, f.body, R(f.body))

    def __rshift__(self, other: "ParaLens") -> "ParaLens":
        if self.B != other.A or self.B_ != other.A_:
            raise CatgradTypeError(
                f"cannot compose parametric lenses: ({self.B}, {self.B_}) vs ({other.A}, {other.A_})"
            )
        f, g = self, other
        np_, na, nq = len(f.P), len(f.A), len(g.P)

        def get(b, ins):
            q, p, a = ins[:nq], ins[nq : nq + np_], ins[nq + np_ :]
            return b.call(g.get, q + b.call(f.get, p + a))

        def put(b, ins):
            q, p = ins[:nq], ins[nq : nq + np_]
            a, c_ = ins[nq + np_ : nq + np_ + na], ins[nq + np_ + na :]
            fb = b.call(f.get, p + a)
            qb = b.call(g.put, q + fb + c_)
            q_, b_ = qb[:nq], qb[nq:]
            pa = b.call(f.put, p + a + b_)
            return q_ + pa

        P = g.P @ f.P
        return ParaLens(
            _merge(g.params, f.params), build(P @ f.A, get), build(P @ f.A @ g.B_, put)
        )

    def __repr__(self) -> str:
        return f"ParaLens({self.P}; ({self.A}, {self.A_}) -> ({self.B}, {self.B_}))"


def as_para(x) -> Para:
    """A Para as it is; a plain diagram as a Para with no parameters."""
    if isinstance(x, Para):
        return x
    if isinstance(x, Diagram):
        return Para.lift(x)
    if hasattr(x, "state") and hasattr(x, "forward"):  # a Stateful model (catgrad.calculus.stateful)
        raise CatgradTypeError(
            f"this model has state ({', '.join(p.name for p in x.state) or 'a random key'}) or differs between "
            "training and evaluation, which only cg.compile and cg.fit (catgrad train, predict, evaluate) thread "
            "through; here give one form, model.forward('train') or model.forward('eval'), whose inputs are the "
            "state then the model's inputs")
    raise CatgradTypeError(f"expected a Para or a Diagram, got {type(x).__name__}")


__all__ = ["Param", "Para", "ParaLens", "as_para"]
