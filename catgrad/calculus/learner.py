"""Learners (Fong, Spivak, Tuyeras, "Backprop as Functor") and the functor from Para.

A learner ``A -> B`` is a quadruple ``(P, I, U, r)``:

    I : P x A -> B        implement: the current model
    U : P x A x B -> P    update: new parameters from a training pair
    r : P x A x B -> A    request: what the learner would like its input to have been

Here ``P`` is a catgrad object and ``I, U, r`` are catgrad diagrams, so learners
are as typed as the rest of the language and can be evaluated, differentiated or
compiled like any other diagram.

Composition ``(P, I, U, r) >> (Q, J, V, s)`` (a learner ``B -> C`` second) has
parameters ``P x Q`` and, writing ``b = I(p, a)``,

    (I*J)(p, q, a)    = J(q, b)
    (U*V)(p, q, a, c) = (U(p, a, s(q, b, c)), V(q, b, c))
    (r*s)(p, q, a, c) = r(p, a, s(q, b, c))

Note the order of parameters: the learner paper puts the *first* learner's
parameters first (``P x Q``), while :class:`~catgrad.Para` puts the *later* map's
parameters first (``(P, f) >> (Q, g)`` has ``Q x P``). Both orders are
associative on the nose once flattened; they differ by the symmetry
``P x Q ~ Q x P``, which is why functoriality ``L(f >> g) = L(f) >> L(g)`` holds
up to :meth:`Learner.permute_params` (morphisms of Learn are learners up to a
bijection of parameter sets, so this is the functoriality of the paper).

The identity on ``A`` is ``(1, a |-> a, (a, a') |-> (), (a, a') |-> a')``; the
parallel product ``@`` acts componentwise with parameters ``P x P'``.

The functor ``L_{eps,e} : Para -> Learn`` (:func:`learner` / :class:`Learn`) sends
``(P, f : P x A -> B)`` to ``(P, f, U, r)`` with ``E(p, a, b) = sum_j e(f_j(p, a), b_j)``
and

    U(p, a, b) = p - eps * grad_p E(p, a, b)
    r(p, a, b) = e_a^{-1}(grad_a E(p, a, b))

where ``e_a^{-1}(z)`` is the ``y`` solving ``d e / d x (a, y) = z``. For the
quadratic error ``e(x, y) = 1/2 (x - y)^2`` this is ``r(p, a, b) = a - grad_a E``.
Both gradients come from the reverse derivative ``R[f]`` (no autograd): with
``g = d e/d x (f(p, a), b)``, ``(grad_p E, grad_a E) = R[f]((p, a), g)``.

docs/mathematics.md's worked step, ``f(p, a) = p . a`` at ``p = (0.5, -1)``, ``a = (2, 1)``, ``b = 1``:

>>> import catgrad as cg, numpy as np
>>> body = cg.trace(cg.f64[2], cg.f64[2])(lambda w, a: (w * a).sum())
>>> L = cg.learner(cg.Para([cg.Param("w", cg.f64[2])], body), eps=0.1)
>>> L.updated([np.array([0.5, -1.0])], np.array([2.0, 1.0]), np.array(1.0))
[array([ 0.7, -0.9])]
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from ..core.diagram import Builder, Diagram, Wire, build, wiring
from ..core.evaluate import evaluate
from ..core.types import Ob, TensorType, as_ob
from ..errors import CatgradTypeError, ShapeError
from .lens import Lens
from .para import Para, Param, _merge, as_para
from .rdc import R


def _as_params(params) -> tuple:
    """Parameters given as Params, or as an object (named p0, p1, ...)."""
    if isinstance(params, (Ob, TensorType)):
        return tuple(Param(f"p{i}", t) for i, t in enumerate(as_ob(params)))
    params = tuple(params)
    if all(isinstance(p, Param) for p in params):
        return params
    if all(isinstance(p, TensorType) for p in params):
        return tuple(Param(f"p{i}", t) for i, t in enumerate(params))
    raise CatgradTypeError(f"a learner's parameters must be Params or wire types, got {params!r}")


def _values(x, ob: Ob, what: str) -> list:
    """Arrays for the wires of ``ob``: a sequence of arrays, or one array for a one-wire object."""
    if len(ob) == 1 and not isinstance(x, (list, tuple)):
        return [x]
    x = list(x)
    if len(x) != len(ob):
        raise ShapeError(f"{what}: expected {len(ob)} array(s) for {ob}, got {len(x)}")
    return x


class Learner:
    """A learner ``A -> B``: parameters ``P``, implement ``I``, update ``U``, request ``r``."""

    def __init__(self, params, implement: Diagram, update: Diagram, request: Diagram):
        self.params = _as_params(params)
        self.P = Ob(*(p.type for p in self.params))
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise CatgradTypeError(f"parameter names must be unique, got {names}")
        P = self.P
        if implement.dom[: len(P)] != P:
            raise CatgradTypeError(f"implement must take the parameters {P} first, got {implement.dom}")
        A, B = implement.dom[len(P) :], implement.cod
        if update.dom != P @ A @ B or update.cod != P:
            raise CatgradTypeError(f"update must be {P @ A @ B} -> {P}, got {update.dom} -> {update.cod}")
        if request.dom != P @ A @ B or request.cod != A:
            raise CatgradTypeError(f"request must be {P @ A @ B} -> {A}, got {request.dom} -> {request.cod}")
        self.implement, self.update, self.request = implement, update, request
        self.dom, self.cod = A, B

    # -- the category Learn ---------------------------------------------------------

    @classmethod
    def id(cls, A) -> "Learner":
        """The identity learner on ``A``: no parameters, ``I = id``, ``r(a, a') = a'``."""
        A = as_ob(A)
        n = len(A)
        return cls((), wiring(A, range(n)), wiring(A @ A, []), wiring(A @ A, range(n, 2 * n)))

    def __rshift__(self, other: "Learner") -> "Learner":
        if not isinstance(other, Learner):
            return NotImplemented
        if self.cod != other.dom:
            raise CatgradTypeError(
                f"cannot compose learners: the first ends at {self.cod} but the second starts at {other.dom}"
            )
        f, g = self, other
        np_, nq, na = len(f.P), len(g.P), len(f.dom)
        P, Q, A, C = f.P, g.P, f.dom, g.cod

        def parts(ins):
            return ins[:np_], ins[np_ : np_ + nq], ins[np_ + nq : np_ + nq + na], ins[np_ + nq + na :]

        def implement(b, ins):
            p, q, a, _ = parts(ins)
            return b.call(g.implement, q + b.call(f.implement, p + a))

        def back(b, p, q, a, c):
            mid = b.call(f.implement, p + a)  # b = I(p, a), shared by V, s and U, r
            b_req = b.call(g.request, q + mid + c)
            return mid, b_req

        def update(b, ins):
            p, q, a, c = parts(ins)
            mid, b_req = back(b, p, q, a, c)
            return b.call(f.update, p + a + b_req) + b.call(g.update, q + mid + c)

        def request(b, ins):
            p, q, a, c = parts(ins)
            _, b_req = back(b, p, q, a, c)
            return b.call(f.request, p + a + b_req)

        return Learner(
            _merge(f.params, g.params),
            build(P @ Q @ A, implement),
            build(P @ Q @ A @ C, update),
            build(P @ Q @ A @ C, request),
        )

    def __matmul__(self, other: "Learner") -> "Learner":
        if not isinstance(other, Learner):
            return NotImplemented
        f, g = self, other
        np_, nq, na, nc, nb = len(f.P), len(g.P), len(f.dom), len(g.dom), len(f.cod)

        def split(ins, with_out: bool):
            i = 0
            out = []
            for n in (np_, nq, na, nc) + ((nb, len(g.cod)) if with_out else ()):
                out.append(ins[i : i + n])
                i += n
            return out

        def implement(b, ins):
            p, q, a, c = split(ins, False)
            return b.call(f.implement, p + a) + b.call(g.implement, q + c)

        def update(b, ins):
            p, q, a, c, y, z = split(ins, True)
            return b.call(f.update, p + a + y) + b.call(g.update, q + c + z)

        def request(b, ins):
            p, q, a, c, y, z = split(ins, True)
            return b.call(f.request, p + a + y) + b.call(g.request, q + c + z)

        PQAC = f.P @ g.P @ f.dom @ g.dom
        full = PQAC @ f.cod @ g.cod
        return Learner(
            _merge(f.params, g.params), build(PQAC, implement), build(full, update), build(full, request)
        )

    def permute_params(self, perm: Sequence[int]) -> "Learner":
        """The same learner with parameter ``k`` being the old parameter ``perm[k]``:
        transport along the bijection of parameter objects."""
        n = len(self.P)
        if sorted(perm) != list(range(n)):
            raise CatgradTypeError(f"{list(perm)} is not a permutation of {n} parameters")
        inv = [0] * n
        for k, i in enumerate(perm):
            inv[i] = k
        params = [self.params[i] for i in perm]
        P = Ob(*(p.type for p in params))
        A, B = self.dom, self.cod

        def to_old(rest: Ob) -> Diagram:
            # new-layout inputs (P permuted, rest) back into the old layout
            return wiring(P @ rest, [*inv, *range(n, n + len(rest))])

        back = wiring(self.P, list(perm))
        return Learner(
            params,
            to_old(A) >> self.implement,
            to_old(A @ B) >> self.update >> back,
            to_old(A @ B) >> self.request,
        )

    # -- evaluation on arrays ---------------------------------------------------------

    def forward(self, p, a) -> list:
        """``I(p, a)`` on arrays (lists of arrays, or one array for a one-wire object)."""
        return list(evaluate(self.implement, *_values(p, self.P, "parameters"), *_values(a, self.dom, "input")))

    def updated(self, p, a, b) -> list:
        """``U(p, a, b)``: the new parameters."""
        args = _values(p, self.P, "parameters") + _values(a, self.dom, "input") + _values(b, self.cod, "target")
        return list(evaluate(self.update, *args))

    def requested(self, p, a, b) -> list:
        """``r(p, a, b)``: the input the learner asks for."""
        args = _values(p, self.P, "parameters") + _values(a, self.dom, "input") + _values(b, self.cod, "target")
        return list(evaluate(self.request, *args))

    def init(self, seed_or_rng=0) -> list:
        """Initial parameter values (each Param's initialiser), in parameter order."""
        rng = seed_or_rng if isinstance(seed_or_rng, np.random.Generator) else np.random.default_rng(seed_or_rng)
        return [p.initial(rng) for p in self.params]

    @property
    def names(self) -> tuple:
        return tuple(p.name for p in self.params)

    def system(self):
        """This learner as a Poly dynamical system ``P y^P -> [A y^A, B y^B]``."""
        from .poly import learner_system

        return learner_system(self)

    def __repr__(self) -> str:
        ps = ", ".join(f"{p.name}: {p.type}" for p in self.params)
        return f"Learner([{ps}], {self.dom} -> {self.cod})"


# -- error functions ------------------------------------------------------------------


def _half_squares(t: TensorType) -> Diagram:
    """``(label, pred) |-> 1/2 sum (pred - label)^2``."""

    def body(b, ins):
        y, x = ins
        d = x - y
        return [(d * d).sum() * 0.5]

    return build(Ob(t, t), body)


class Error:
    """An error function ``e(x, y)`` (``x`` the prediction, ``y`` the target), summed
    over all entries and wires: ``E = sum_j e(x_j, y_j)``.

    ``loss`` gives, for a wire type ``t``, a diagram ``(label : t, pred : t) -> scalar``
    or a :class:`~catgrad.Para` whose parameter is the label (the learning layer's
    loss constructors, e.g. ``cg.loss.mse``, fit as they are). Its gradient in the
    prediction is taken with ``R``. ``inverse(x, z)``, a function on wires, returns
    the ``y`` with ``d e / d x (x, y) = z``; it defines the request function. Without
    it the request is ``a - grad_a E`` (correct exactly when ``e`` is quadratic).
    """

    def __init__(self, name: str, loss: Callable, inverse: Optional[Callable[[Wire, Wire], Wire]] = None):
        self.name, self.loss, self.inverse = name, loss, inverse

    def diagram(self, t: TensorType) -> Diagram:
        d = self.loss(t)
        d = d.body if isinstance(d, Para) else d
        if not isinstance(d, Diagram) or d.dom != Ob(t, t) or len(d.cod) != 1 or d.cod[0].rank != 0:
            got = f"{d.dom} -> {d.cod}" if isinstance(d, Diagram) else type(d).__name__
            raise CatgradTypeError(f"error {self.name!r} at {t} must be (label, pred) : {t}, {t} -> scalar, got {got}")
        return d

    def grad(self, b: Builder, x: Wire, y: Wire) -> Wire:
        """``d e / d x (x, y)`` emitted into ``b``."""
        d = self.diagram(x.type)
        one = b.constant(d.cod[0], 1.0)
        return b.call(R(d), [y, x, one])[1]

    def request(self, b: Builder, a: Wire, grad_a: Wire) -> Wire:
        if self.inverse is None:
            return a - grad_a
        return self.inverse(a, grad_a)

    def __repr__(self) -> str:
        return f"Error({self.name!r})"


quadratic = Error("quadratic", _half_squares, inverse=lambda x, z: x - z)


def _error(e) -> Error:
    if e is None or e == "quadratic":
        return quadratic
    if isinstance(e, Error):
        return e
    if callable(e):
        return Error(getattr(e, "__name__", "loss"), e)
    raise CatgradTypeError(f"an error function must be an Error or a loss constructor, got {e!r}")


class Learn:
    """The functor ``L_{eps,e} : Para -> Learn``; call it on a Para (or a Diagram)."""

    def __init__(self, eps: float, error=None):
        self.eps = float(eps)
        self.error = _error(error)

    def __call__(self, f) -> Learner:
        f = as_para(f)
        P, A, B = f.P, f.dom, f.cod
        np_ = len(P)
        grad, err, eps = gradient(f, self.error), self.error, self.eps

        def update(b, ins):
            dp = b.call(grad, ins)[:np_]
            return [pi - eps * di for pi, di in zip(ins[:np_], dp)]

        def request(b, ins):
            da = b.call(grad, ins)[np_:]
            return [err.request(b, ai, di) for ai, di in zip(ins[np_:], da)]

        return Learner(f.params, f.body, build(P @ A @ B, update), build(P @ A @ B, request))

    def __repr__(self) -> str:
        return f"Learn(eps={self.eps}, error={self.error.name})"


def gradient(f, error=None) -> Diagram:
    """``(p, a, b) |-> (grad_p E(p, a, b), grad_a E(p, a, b))`` as a diagram
    ``P x A x B -> P x A``, where ``E(p, a, b) = e(f(p, a), b)``; by the chain rule
    it is ``R[f]((p, a), d e / d x (f(p, a), b))``."""
    f, err = as_para(f), _error(error)
    P, A, B = f.P, f.dom, f.cod
    for t in P @ A @ B:
        if not t.dtype.is_float:
            raise CatgradTypeError(f"gradients need float wires, got {t} in {f!r}")
    n = len(P) + len(A)
    Rf = R(f.body)

    def body(b, ins):
        pa, y = ins[:n], ins[n:]
        x = b.call(f.body, pa)
        return b.call(Rf, pa + [err.grad(b, xi, yi) for xi, yi in zip(x, y)])

    return build(P @ A @ B, body)


def optimized(f, optimizer, error=None) -> Learner:
    """The learner of ``f`` trained by an optimizer lens: parameters ``P x S``.

    ``optimizer`` is a lens ``(P x S, P x S) -> (P, P')`` (parameters first, then the
    optimizer state), or an object carrying one as ``.lens`` (``opt.lens(params)``
    from the learning layer, whose state keys then name the ``S`` wires, and whose
    ``gradient`` transform, if any, is applied to ``-grad_p E``: SAM's second gradient). With
    ``p_bar = get(p, s)`` (where the gradient is taken) and ``p' = -grad_p E`` (the
    downhill direction: learning-rate lens ``alpha = -1``, docs/mathematics.md section 3),

        I((p, s), a)    = f(p_bar, a)
        U((p, s), a, b) = put((p, s), -grad_p E(p_bar, a, b))
        r((p, s), a, b) = e_a^{-1}(grad_a E(p_bar, a, b))

    For plain gradient descent (``S = 1``, ``put(p, p') = p + eps p'``) this is
    ``L_{eps,e}(f)``. As a Poly system (``.system()``) it is the training loop:
    state = parameters + optimizer state, input = a training pair.
    """
    f, err = as_para(f), _error(error)
    lens = optimizer.lens if hasattr(optimizer, "lens") and not isinstance(optimizer, Lens) else optimizer
    if not isinstance(lens, Lens):
        raise CatgradTypeError(f"expected an optimizer lens (P x S, P x S) -> (P, P'), got {type(optimizer).__name__}")
    P, A, B = f.P, f.dom, f.cod
    nP = len(P)
    if lens.A[:nP] != P or lens.B != P or lens.B_ != P or lens.A_ != lens.A:
        raise CatgradTypeError(
            f"the optimizer lens must be ({P} x S, {P} x S) -> ({P}, {P}), "
            f"got ({lens.A}, {lens.A_}) -> ({lens.B}, {lens.B_})"
        )
    S = lens.A[nP:]
    keys = list(getattr(optimizer, "keys", [])) or [f"s{i}" for i in range(len(S))]
    state_params = [Param(f"opt/{k}", t) for k, t in zip(keys, S)]
    grad, n = gradient(f, err), len(P @ S)

    def implement(b, ins):
        pbar = b.call(lens.get, ins[:n])
        return b.call(f.body, pbar + ins[n:])

    def downhill(b, ins):
        pbar = b.call(lens.get, ins[:n])
        return [-d for d in b.call(grad, pbar + ins[n:])[:nP]]

    # an optimizer that takes the gradient more than once (SAM) transforms this diagram
    take = getattr(optimizer, "gradient", None) if optimizer is not lens else None
    dirs = build(P @ S @ A @ B, downhill)
    dirs = take(dirs) if take is not None else dirs

    def update(b, ins):
        return b.call(lens.put, ins[:n] + b.call(dirs, ins))

    def request(b, ins):
        ps, a, ab = ins[:n], ins[n : n + len(A)], ins[n:]
        pbar = b.call(lens.get, ps)
        da = b.call(grad, pbar + ab)[nP:]
        return [err.request(b, ai, di) for ai, di in zip(a, da)]

    PS = P @ S
    return Learner(
        _merge(f.params, state_params), build(PS @ A, implement), build(PS @ A @ B, update), build(PS @ A @ B, request)
    )


def learner(f, eps: float, error=None) -> Learner:
    """``L_{eps,e}(f)``: the learner of a parametrised map (quadratic error by default)."""
    return Learn(eps, error)(f)


__all__ = ["Error", "Learn", "Learner", "gradient", "learner", "optimized", "quadratic"]
