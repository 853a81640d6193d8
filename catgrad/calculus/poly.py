"""Polynomial functors, their lenses, and dynamical systems (Spivak, "Learners' Languages").

A polynomial functor is a sum of representables ``p = sum_{i in p(1)} y^{p[i]}``:
a set of *positions* ``p(1)`` and, for each position ``i``, a set of *directions*
``p[i]``. A morphism ``phi : p -> q`` (a dependent lens) sends positions forward
and directions back:

    phi_1 : p(1) -> q(1),      phi^#_i : q[phi_1(i)] -> p[i]

Composition is ``(phi >> psi)_1 = psi_1 . phi_1`` and
``(phi >> psi)^#_i = phi^#_i . psi^#_{phi_1(i)}``; the identity is ``(id, id)``.

Two kinds are provided:

* :class:`FinPoly` / :class:`FinLens`: positions and directions finite sets (any
  hashable values), lenses as finite tables, so every law can be checked
  exhaustively. With the parallel product ``p (x) q = sum_{i,j} y^{p[i] x q[j]}``,
  the internal hom ``[p, q] = sum_{phi : p -> q} y^{sum_i q[phi_1 i]}`` (positions:
  the lenses ``p -> q``; directions at ``phi``: pairs ``(i, e)`` with
  ``e in q[phi_1 i]``), and the currying bijection
  ``Lens(r (x) p, q) ~ Lens(r, [p, q])``.
* :class:`Monomial` ``A y^B`` for catgrad objects ``A, B``: positions are arrays of
  type ``A``, directions arrays of type ``B``. A morphism ``A y^B -> C y^D`` is
  ``(A -> C, A x D -> B)`` -- precisely a catgrad :class:`~catgrad.Lens` with
  ``get : A -> C`` and ``put : A x D -> B`` -- so composition, identity and
  ``(x)`` (``A y^B (x) C y^D = (A x C) y^(B x D)``, lenses in parallel) are the
  Lens ones. The internal hom ``[A y^A', B y^B'] = (B^A x A'^(A x B')) y^(A x B')``
  is :class:`Hom`: its positions are lenses ``A y^A' -> B y^B'`` (kept as
  :class:`BoundLens` values at run time), its directions ``A x B'``.

A dynamical system (a Moore machine) with states ``S`` on the interface ``p`` is a
lens ``S y^S -> p``: a *readout* ``S -> p(1)`` and an *update*
``(s, d in p[readout s]) -> S``. Running it on an input stream ``d_0, d_1, ...``
outputs ``readout(s_t)`` and moves to ``s_{t+1} = update(s_t, d_t)``. Wiring is
composition with a lens ``p -> q`` (:meth:`System.wire`); several systems are put
side by side with ``@`` (state ``S x T`` on ``p (x) q``) before wiring them.

A learner ``(P, I, U, r) : A -> B`` is the system ``P y^P -> [A y^A, B y^B]``
(:func:`learner_system`): state the parameters, output the current lens
``(I(p, -), r(p, -, -))``, input a training pair ``(a, b)``, update ``U``.
"""

from __future__ import annotations

import itertools
from typing import Callable, Hashable, Iterable, Mapping

from ..core.diagram import Diagram, build
from ..core.evaluate import evaluate
from ..core.types import Ob, as_ob
from ..errors import CatgradError, CatgradTypeError
from .lens import Lens

# -- finite polynomial functors ---------------------------------------------------------


class FinPoly:
    """A finite polynomial ``sum_{i in positions} y^{dirs[i]}``."""

    def __init__(self, dirs: Mapping[Hashable, Iterable[Hashable]]):
        self._dirs = {i: tuple(dict.fromkeys(ds)) for i, ds in dirs.items()}

    @classmethod
    def monomial(cls, positions: Iterable, directions: Iterable) -> "FinPoly":
        """``S y^D``: every position has the same directions."""
        ds = tuple(directions)
        return cls({i: ds for i in positions})

    @classmethod
    def y(cls) -> "FinPoly":
        """``y``, the unit of ``(x)``: one position with one direction."""
        return cls({(): [()]})

    @property
    def positions(self) -> tuple:
        return tuple(self._dirs)

    def __getitem__(self, i) -> tuple:
        try:
            return self._dirs[i]
        except KeyError:
            raise CatgradError(f"{i!r} is not a position of {self}") from None

    def __matmul__(self, other: "FinPoly") -> "FinPoly":
        """Parallel (Dirichlet) product: ``sum_{i,j} y^{p[i] x q[j]}``."""
        return FinPoly({(i, j): itertools.product(self[i], other[j]) for i in self.positions for j in other.positions})

    def __add__(self, other: "FinPoly") -> "FinPoly":
        """Coproduct: positions tagged 0 / 1."""
        return FinPoly({**{(0, i): self[i] for i in self.positions}, **{(1, j): other[j] for j in other.positions}})

    def __mul__(self, other: "FinPoly") -> "FinPoly":
        """Cartesian product: ``sum_{i,j} y^{p[i] + q[j]}`` (directions tagged 0 / 1)."""
        return FinPoly(
            {
                (i, j): [(0, d) for d in self[i]] + [(1, e) for e in other[j]]
                for i in self.positions
                for j in other.positions
            }
        )

    def lenses(self, other: "FinPoly") -> list:
        """Every lens ``self -> other`` (there are ``prod_i sum_j |p[i]|^|q[j]|``)."""
        P, Q = self.positions, other.positions
        per_position = []
        for i in P:
            choices = []
            for j in Q:
                for back in itertools.product(self[i], repeat=len(other[j])):
                    choices.append((j, dict(zip(other[j], back))))
            per_position.append(choices)
        out = []
        for pick in itertools.product(*per_position):
            on_pos = {i: j for i, (j, _) in zip(P, pick)}
            on_dir = {(i, e): d for i, (_, m) in zip(P, pick) for e, d in m.items()}
            out.append(FinLens(self, other, on_pos, on_dir))
        return out

    def hom(self, other: "FinPoly") -> "FinPoly":
        """The internal hom ``[p, q]``: positions the lenses ``p -> q``, directions at
        ``phi`` the pairs ``(i, e)`` with ``e in q[phi_1(i)]``."""
        return FinPoly(
            {phi: [(i, e) for i in self.positions for e in other[phi.on_pos[i]]] for phi in self.lenses(other)}
        )

    def size(self) -> tuple:
        """``(number of positions, total number of directions)``."""
        return len(self._dirs), sum(len(d) for d in self._dirs.values())

    def __eq__(self, other) -> bool:
        return isinstance(other, FinPoly) and self._dirs == other._dirs

    def __hash__(self) -> int:
        return hash(tuple(self._dirs.items()))

    def __repr__(self) -> str:
        terms = " + ".join(f"y^{len(ds)}" for ds in self._dirs.values()) or "0"
        return f"FinPoly({terms})"


class FinLens:
    """A lens of finite polynomials: ``on_pos[i] = phi_1(i)``, ``on_dir[(i, e)] = phi^#_i(e)``."""

    def __init__(self, dom: FinPoly, cod: FinPoly, on_pos: Mapping, on_dir: Mapping):
        self.dom, self.cod = dom, cod
        self.on_pos = {i: on_pos[i] for i in dom.positions if i in on_pos}
        missing = [i for i in dom.positions if i not in self.on_pos]
        if missing:
            raise CatgradError(f"a lens must send every position forward; missing {missing[:3]}")
        for i, j in self.on_pos.items():
            if j not in cod._dirs:
                raise CatgradError(f"position {i!r} is sent to {j!r}, which is not a position of the codomain")
        self.on_dir = {}
        for i in dom.positions:
            for e in cod[self.on_pos[i]]:
                if (i, e) not in on_dir:
                    raise CatgradError(f"no direction sent back at position {i!r} for {e!r}")
                d = on_dir[(i, e)]
                if d not in dom[i]:
                    raise CatgradError(f"at position {i!r}, {e!r} is sent back to {d!r}, not a direction there")
                self.on_dir[(i, e)] = d

    @classmethod
    def id(cls, p: FinPoly) -> "FinLens":
        return cls(p, p, {i: i for i in p.positions}, {(i, d): d for i in p.positions for d in p[i]})

    @classmethod
    def of(cls, dom: FinPoly, cod: FinPoly, on_pos: Callable, on_dir: Callable) -> "FinLens":
        """From functions ``on_pos(i)`` and ``on_dir(i, e)``."""
        fwd = {i: on_pos(i) for i in dom.positions}
        return cls(dom, cod, fwd, {(i, e): on_dir(i, e) for i in dom.positions for e in cod[fwd[i]]})

    def __rshift__(self, other: "FinLens") -> "FinLens":
        if self.cod != other.dom:
            raise CatgradTypeError(f"cannot compose lenses {self.dom} -> {self.cod} and {other.dom} -> {other.cod}")
        fwd = {i: other.on_pos[j] for i, j in self.on_pos.items()}
        back = {
            (i, e): self.on_dir[(i, other.on_dir[(self.on_pos[i], e)])]
            for i in self.dom.positions
            for e in other.cod[fwd[i]]
        }
        return FinLens(self.dom, other.cod, fwd, back)

    def __matmul__(self, other: "FinLens") -> "FinLens":
        """``phi (x) psi : p (x) p' -> q (x) q'``, componentwise."""
        dom, cod = self.dom @ other.dom, self.cod @ other.cod
        fwd = {(i, j): (self.on_pos[i], other.on_pos[j]) for i, j in dom.positions}
        back = {
            ((i, j), (e, f)): (self.on_dir[(i, e)], other.on_dir[(j, f)])
            for (i, j) in dom.positions
            for e, f in cod[fwd[(i, j)]]
        }
        return FinLens(dom, cod, fwd, back)

    def _key(self):
        return (self.dom, self.cod, tuple(self.on_pos.items()), tuple(sorted(self.on_dir.items(), key=repr)))

    def __eq__(self, other) -> bool:
        return isinstance(other, FinLens) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"FinLens({self.dom} -> {self.cod}, {self.on_pos})"


def curry(phi: FinLens, r: FinPoly, p: FinPoly) -> FinLens:
    """``Lens(r (x) p, q) -> Lens(r, [p, q])``: at position ``k`` of ``r`` the lens
    ``i |-> phi_1(k, i)``, ``(i, e) |-> phi^#_{(k,i)}(e)[1]``, and the direction
    ``(i, e)`` of ``[p, q]`` is sent back to ``phi^#_{(k,i)}(e)[0]``."""
    q = phi.cod
    H = p.hom(q)

    def at(k) -> FinLens:
        return FinLens.of(p, q, lambda i: phi.on_pos[(k, i)], lambda i, e: phi.on_dir[((k, i), e)][1])

    fwd = {k: at(k) for k in r.positions}
    back = {(k, (i, e)): phi.on_dir[((k, i), e)][0] for k in r.positions for (i, e) in H[fwd[k]]}
    return FinLens(r, H, fwd, back)


def uncurry(psi: FinLens, p: FinPoly, q: FinPoly) -> FinLens:
    """The inverse of :func:`curry`: ``Lens(r, [p, q]) -> Lens(r (x) p, q)``.
    ``uncurry(id_[p,q], p, q)`` is the evaluation ``[p, q] (x) p -> q``."""
    r = psi.dom

    def on_pos(ki):
        k, i = ki
        return psi.on_pos[k].on_pos[i]

    def on_dir(ki, e):
        k, i = ki
        return (psi.on_dir[(k, (i, e))], psi.on_pos[k].on_dir[(i, e)])

    return FinLens.of(r @ p, q, on_pos, on_dir)


# -- monomials on catgrad objects ---------------------------------------------------------


class Monomial:
    """``A y^B`` for catgrad objects: positions arrays of type A, directions of type B.

    Its lenses ``A y^B -> C y^D`` are catgrad lenses ``(A, B) -> (C, D)``."""

    def __init__(self, A, B=None):
        self.A = as_ob(A)
        self.B = self.A if B is None else as_ob(B)

    def __matmul__(self, other: "Monomial") -> "Monomial":
        """``A y^B (x) C y^D = (A x C) y^(B x D)``."""
        return Monomial(self.A @ other.A, self.B @ other.B)

    def id(self) -> Lens:
        return Lens.id(self.A, self.B)

    def lens(self, other: "Monomial", get: Diagram, put: Diagram) -> Lens:
        """The lens ``self -> other`` with ``get : A -> C`` and ``put : A x D -> B``, type-checked."""
        if get.dom != self.A or get.cod != other.A or put.dom != self.A @ other.B or put.cod != self.B:
            raise CatgradTypeError(
                f"a lens {self} -> {other} needs get : {self.A} -> {other.A} and put : {self.A @ other.B} -> {self.B}, "
                f"got {get.dom} -> {get.cod} and {put.dom} -> {put.cod}"
            )
        return Lens(get, put)

    def hom(self, other: "Monomial") -> "Hom":
        return Hom(self, other)

    def __eq__(self, other) -> bool:
        return isinstance(other, Monomial) and (self.A, self.B) == (other.A, other.B)

    def __hash__(self) -> int:
        return hash((self.A, self.B))

    def __repr__(self) -> str:
        return f"Monomial({self.A} y^{self.B})"


class BoundLens:
    """A lens ``A y^A' -> B y^B'`` on arrays: ``get(a)``, ``put(a, b')`` (lists of arrays)."""

    def __init__(self, get: Callable, put: Callable):
        self.get, self.put = get, put

    @classmethod
    def of(cls, lens: Lens, *fixed) -> "BoundLens":
        """Evaluate a catgrad lens, with its first inputs fixed to the arrays ``fixed``
        (a parametric lens ``(S x A, S x A') -> (B, B')`` at the state ``s``:
        ``get(a) = get(s, a)``, ``put(a, b') = put(s, a, b')`` without its ``S`` part)."""
        fixed, n = list(fixed), len(fixed)
        return cls(
            lambda a: list(evaluate(lens.get, *fixed, *a)),
            lambda a, b_: list(evaluate(lens.put, *fixed, *a, *b_))[n:],
        )

    def __rshift__(self, other: "BoundLens") -> "BoundLens":
        return BoundLens(lambda a: other.get(self.get(a)), lambda a, c_: self.put(a, other.put(self.get(a), c_)))


class Hom:
    """The internal hom ``[A y^A', B y^B'] = (B^A x A'^(A x B')) y^(A x B')`` of monomials:
    positions are lenses ``A y^A' -> B y^B'`` (:class:`BoundLens`), directions ``A x B'``."""

    def __init__(self, p: Monomial, q: Monomial):
        self.p, self.q = p, q

    @property
    def directions(self) -> Ob:
        return self.p.A @ self.q.B

    def __matmul__(self, other):
        return Tensor(self, other)

    def __eq__(self, other) -> bool:
        return isinstance(other, Hom) and (self.p, self.q) == (other.p, other.q)

    def __hash__(self) -> int:
        return hash((self.p, self.q))

    def __repr__(self) -> str:
        return f"[{self.p}, {self.q}]"


class Tensor:
    """``p (x) q`` of two interfaces of any kind: positions and directions are pairs."""

    def __init__(self, left, right):
        self.left, self.right = left, right

    def __eq__(self, other) -> bool:
        return isinstance(other, Tensor) and (self.left, self.right) == (other.left, other.right)

    def __hash__(self) -> int:
        return hash((self.left, self.right))

    def __repr__(self) -> str:
        return f"({self.left} (x) {self.right})"


class PolyMap:
    """A lens of polynomials given by functions: ``on_pos(i)`` and ``on_dir(i, e)``
    (``e`` a direction at ``on_pos(i)``, the result a direction at ``i``)."""

    def __init__(self, dom, cod, on_pos: Callable, on_dir: Callable):
        self.dom, self.cod, self.on_pos, self.on_dir = dom, cod, on_pos, on_dir

    @classmethod
    def of(cls, phi) -> "PolyMap":
        if isinstance(phi, PolyMap):
            return phi
        if isinstance(phi, FinLens):
            return cls(phi.dom, phi.cod, phi.on_pos.__getitem__, lambda i, e: phi.on_dir[(i, e)])
        raise CatgradTypeError(f"expected a lens of polynomials, got {type(phi).__name__}")

    @classmethod
    def from_lens(cls, lens: Lens) -> "PolyMap":
        """A catgrad lens ``(A, B) -> (C, D)`` as a map ``A y^B -> C y^D`` on arrays
        (positions and directions are lists of arrays)."""
        return cls(
            Monomial(lens.A, lens.A_),
            Monomial(lens.B, lens.B_),
            lambda a: list(evaluate(lens.get, *a)),
            lambda a, d: list(evaluate(lens.put, *a, *d)),
        )

    def __rshift__(self, other) -> "PolyMap":
        other = PolyMap.of(other)
        f, g = self, other
        return PolyMap(
            f.dom, g.cod, lambda i: g.on_pos(f.on_pos(i)), lambda i, e: f.on_dir(i, g.on_dir(f.on_pos(i), e))
        )

    def __matmul__(self, other) -> "PolyMap":
        f, g = self, PolyMap.of(other)
        return PolyMap(
            Tensor(f.dom, g.dom),
            Tensor(f.cod, g.cod),
            lambda ij: (f.on_pos(ij[0]), g.on_pos(ij[1])),
            lambda ij, ef: (f.on_dir(ij[0], ef[0]), g.on_dir(ij[1], ef[1])),
        )


def hom_eval(p: Monomial, q: Monomial) -> PolyMap:
    """Evaluation ``[p, q] (x) p -> q``: ``(phi, a) |-> phi.get(a)``, and the direction
    ``b'`` goes back to ``((a, b'), phi.put(a, b'))``."""
    return PolyMap(
        Tensor(Hom(p, q), p), q, lambda pa: pa[0].get(pa[1]), lambda pa, b_: ((pa[1], b_), pa[0].put(pa[1], b_))
    )


def hom_compose(p: Monomial, q: Monomial, r: Monomial) -> PolyMap:
    """Composition of lenses as a lens of polynomials ``[p, q] (x) [q, r] -> [p, r]``:
    ``(phi, psi) |-> phi >> psi``; a direction ``(a, c')`` goes back to
    ``((a, b'), (b, c'))`` with ``b = phi.get(a)``, ``b' = psi.put(b, c')``.
    Wiring two learner systems with it puts the learners in series."""

    def on_dir(fg, ac):
        phi, psi = fg
        a, c_ = ac
        b = phi.get(a)
        return ((a, psi.put(b, c_)), (b, c_))

    return PolyMap(Tensor(Hom(p, q), Hom(q, r)), Hom(p, r), lambda fg: fg[0] >> fg[1], on_dir)


# -- dynamical systems ------------------------------------------------------------------


class System:
    """A dynamical system (Moore machine) ``S y^S -> p``.

    ``readout(s)`` is a position of ``p``; ``update(s, d)`` the next state for a
    direction ``d`` at that position. When the interface is a monomial and the
    system is given by a catgrad lens (:meth:`from_lens`), ``.lens`` keeps it, and
    wiring along catgrad lenses stays a catgrad lens (one diagram per map).
    """

    def __init__(self, interface, readout: Callable, update: Callable, lens: Lens | None = None):
        self.interface, self.readout, self.update, self.lens = interface, readout, update, lens

    @classmethod
    def from_lens(cls, lens: Lens) -> "System":
        """A lens ``(S, S) -> (A, B)`` as the system ``S y^S -> A y^B``: readout ``get``,
        update ``put``. States, outputs and inputs are lists of arrays."""
        if lens.A != lens.A_:
            raise CatgradTypeError(f"a system's lens must start at (S, S), got ({lens.A}, {lens.A_})")
        m = PolyMap.from_lens(lens)
        return cls(m.cod, m.on_pos, m.on_dir, lens)

    @classmethod
    def moore(cls, readout: Diagram, update: Diagram) -> "System":
        """From ``readout : S -> A`` and ``update : S x B -> S``."""
        return cls.from_lens(Lens(readout, update))

    @classmethod
    def finite(cls, phi: FinLens) -> "System":
        """A finite lens ``S y^S -> p`` (its domain must be a monomial ``S y^S``)."""
        S = phi.dom.positions
        if any(phi.dom[s] != S for s in S):
            raise CatgradError("a finite system's domain must be S y^S (directions = states)")
        return cls(phi.cod, phi.on_pos.__getitem__, lambda s, d: phi.on_dir[(s, d)])

    @property
    def state(self):
        """The state object ``S`` (for systems given by a catgrad lens)."""
        return None if self.lens is None else self.lens.A

    def step(self, s, d):
        return self.update(s, d)

    def run(self, s0, inputs: Iterable):
        """Feed ``inputs``; returns ``(outputs, final state)`` with ``outputs[t] = readout(s_t)``
        read before input ``t`` is consumed."""
        s, outs = s0, []
        for d in inputs:
            outs.append(self.readout(s))
            s = self.update(s, d)
        return outs, s

    def states(self, s0, inputs: Iterable) -> list:
        """The trajectory ``s_0, s_1, ..., s_n``."""
        s, out = s0, [s0]
        for d in inputs:
            s = self.update(s, d)
            out.append(s)
        return out

    def wire(self, phi) -> "System":
        """Compose with a lens ``p -> q`` of interfaces: the system ``S y^S -> q``.
        A catgrad Lens keeps a lens-given system a catgrad lens."""
        if isinstance(phi, Lens) and self.lens is not None:
            return System.from_lens(self.lens >> phi)
        m = PolyMap.from_lens(phi) if isinstance(phi, Lens) else PolyMap.of(phi)
        readout, update = self.readout, self.update
        return System(m.cod, lambda s: m.on_pos(readout(s)), lambda s, e: update(s, m.on_dir(readout(s), e)))

    def __matmul__(self, other: "System") -> "System":
        """Side by side: states ``(s, t)`` on ``p (x) q``. Two lens-given systems give
        the lens-given system with state ``S x T`` (flat lists of arrays)."""
        if self.lens is not None and other.lens is not None:
            return System.from_lens(self.lens @ other.lens)
        f, g = self, other
        return System(
            Tensor(f.interface, g.interface),
            lambda st: (f.readout(st[0]), g.readout(st[1])),
            lambda st, de: (f.update(st[0], de[0]), g.update(st[1], de[1])),
        )

    def __repr__(self) -> str:
        if self.lens is None:
            return f"System(-> {self.interface})"
        return f"System({self.state} y^{self.state} -> {self.interface})"


def learner_lens(learner) -> Lens:
    """A learner ``(P, I, U, r) : A -> B`` as the lens ``(P x A, P x A) -> (B, B)``,
    ``get = I``, ``put = (U, r)``: a lens ``P y^P (x) A y^A -> B y^B``, which under
    currying is the system ``P y^P -> [A y^A, B y^B]``."""
    P, A, B = learner.P, learner.dom, learner.cod

    def put(b, ins):
        return b.call(learner.update, ins) + b.call(learner.request, ins)

    return Lens(learner.implement, build(P @ A @ B, put))


def learner_system(learner) -> System:
    """The learner as a dynamical system ``P y^P -> [A y^A, B y^B]``.

    A state is a list of parameter arrays; the readout at ``p`` is the current lens
    ``(I(p, -), r(p, -, -))`` (a :class:`BoundLens`); an input is a training pair
    ``(a, b)`` (each a list of arrays) and the update is ``U(p, a, b)``."""
    lens = learner_lens(learner)
    A, B = Monomial(learner.dom), Monomial(learner.cod)

    def update(p, ab):
        a, b = ab
        return list(evaluate(learner.update, *p, *a, *b))

    return System(Hom(A, B), lambda p: BoundLens.of(lens, *p), update)


def stream(pairs: Iterable, A: Ob, B: Ob):
    """Training pairs ``(x, y)`` of arrays as directions of ``[A y^A, B y^B]``
    (one-wire objects take bare arrays)."""
    A, B = as_ob(A), as_ob(B)
    for x, y in pairs:
        yield ([x] if len(A) == 1 else list(x)), ([y] if len(B) == 1 else list(y))


__all__ = [
    "BoundLens",
    "FinLens",
    "FinPoly",
    "Hom",
    "Monomial",
    "PolyMap",
    "System",
    "Tensor",
    "curry",
    "hom_compose",
    "hom_eval",
    "learner_lens",
    "learner_system",
    "stream",
    "uncurry",
]
