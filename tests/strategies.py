"""Hypothesis strategies for random typed diagrams, and the left-additive structure
on diagrams that the reverse-derivative axioms are stated with.

Random diagrams are grown on a *pool* of wires: each step picks an op, picks
operands of fitting types from the pool (reading a wire twice is a copy) and adds
the result to the pool. At the end the outputs are either chosen pool wires
(unread wires are discarded) or coerced to a requested codomain.

Two families:

- :func:`smooth_diagrams`: float64 diagrams over small concrete shapes, mixing
  elementwise maps, matmul/einsum, sum, broadcast, reshape, transpose, softmax,
  logsumexp and max. Every op is applied only where it is well defined and
  differentiable at the random points the tests use (inputs in [-1, 1]): log and
  sqrt see ``1 + x^2``, divisors are ``1 + y^2``, exp sees bounded values, and the
  non-smooth ops (relu, abs, maximum, max) only see wires whose entries are
  pairwise distinct almost surely ("generic" wires), so no ties or kinks are hit.
- :func:`z2_diagrams`: bit diagrams whose wires all carry a leading symbolic batch
  dimension ``N``, so one evaluation checks every assignment of the inputs at once
  (:func:`all_bits`).

The left-additive structure: ``f + g = copy >> (f @ g) >> add`` (one add per
output wire) and ``0 = discard >> zero constants`` (:func:`add_maps`, :func:`zero_map`).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from hypothesis import strategies as st

import catgrad as cg

SHAPES = [(), (2,), (3,), (2, 3), (3, 2), (6,)]

# op families a smooth generator may use; the sympy reference needs ``SYMPY_OPS``
SMOOTH_OPS = (
    "sin", "cos", "tanh", "sigmoid", "exp", "log", "sqrt", "pow", "neg",
    "add", "sub", "mul", "div",
    "matmul", "sum", "broadcast", "reshape", "transpose",
    "softmax", "logsumexp", "max", "relu", "abs", "maximum", "slice", "pad",
)
SYMPY_OPS = (
    "sin", "cos", "tanh", "sigmoid", "exp", "log", "sqrt", "pow", "neg",
    "add", "sub", "mul", "div", "matmul", "sum", "broadcast", "reshape", "transpose",
)
Z2_OPS = ("xor", "and", "or", "not", "const", "parity", "spread", "dot")

# -- the left-additive structure on diagrams -----------------------------------------------


def _par(diagrams, ob) -> cg.Diagram:
    return functools.reduce(lambda x, y: x @ y, diagrams, cg.id(cg.Ob()))


def adder(B) -> cg.Diagram:
    """``B x B -> B``: one add box per wire of ``B`` (XOR on bits)."""
    B = cg.Ob(*B)
    n = len(B)
    interleave = [j for i in range(n) for j in (i, n + i)]
    return cg.permute(B @ B, interleave) >> _par([cg.ops.add(t, t) for t in B], B)


def add_maps(f: cg.Diagram, g: cg.Diagram) -> cg.Diagram:
    """``f + g = copy >> (f @ g) >> add`` for parallel maps ``f, g : A -> B``."""
    assert f.dom == g.dom and f.cod == g.cod
    return cg.copy(f.dom) >> (f @ g) >> adder(f.cod)


def zero_map(A, B) -> cg.Diagram:
    """``0 : A -> B``: discard the input, output zeros."""
    A, B = cg.Ob(*A), cg.Ob(*B)
    return cg.discard(A) >> _par([cg.ops.zeros(t) for t in B], B)


def projection(A, B, which: int) -> cg.Diagram:
    """``pi0 : A x B -> A`` (which=0) or ``pi1 : A x B -> B`` (which=1)."""
    A, B = cg.Ob(*A), cg.Ob(*B)
    n, m = len(A), len(B)
    return cg.wiring(A @ B, range(n) if which == 0 else range(n, n + m))


# -- a pool of wires being grown ----------------------------------------------------------


class _Pool:
    def __init__(self, wires):
        self.wires = list(wires)
        self.bound = [1.0] * len(self.wires)  # an upper bound on |entries| (inputs lie in [-1, 1])
        self.generic = [True] * len(self.wires)  # entries pairwise distinct almost surely
        self.reads = [0] * len(self.wires)

    def add(self, w, bound, generic):
        self.wires.append(w)
        self.bound.append(float(bound))
        self.generic.append(bool(generic))
        self.reads.append(0)
        return len(self.wires) - 1

    def use(self, i):
        self.reads[i] += 1
        return self.wires[i]

    def sinks(self):
        return [i for i, r in enumerate(self.reads) if r == 0]


def _pick(draw, pool: _Pool) -> int:
    """A pool wire, half the time an unread one, so diagrams grow deep rather than wide."""
    sinks = pool.sinks()
    if sinks and draw(st.booleans()):
        return draw(st.sampled_from(sinks))
    return draw(st.integers(0, len(pool.wires) - 1))


def _numel(shape):
    return int(np.prod(shape)) if shape else 1


def _broadcastable(src, dst) -> bool:
    if len(src) > len(dst) or src == dst:
        return False
    return all(s in (1, d) for s, d in zip(src, dst[len(dst) - len(src):]))


def _smooth_step(draw, pool: _Pool, allowed) -> bool:
    """Try one random op; return whether a box was added."""
    kind = draw(st.sampled_from(allowed))
    i = _pick(draw, pool)
    x, bx, gx = pool.wires[i], pool.bound[i], pool.generic[i]
    O = cg.ops

    def tame(i):
        """The wire ``i``, squashed by tanh when its bound is large."""
        w = pool.use(i)
        if pool.bound[i] > 4.0:
            return O.tanh(w), 1.0
        return w, pool.bound[i]

    if kind in ("sin", "cos", "tanh", "sigmoid"):
        pool.add(getattr(O, kind)(pool.use(i)), 1.0, gx)
    elif kind == "exp":
        w, b = tame(i)
        pool.add(O.exp(w), float(np.exp(b)), gx)
    elif kind == "log":  # log(1 + x^2) > 0 is defined everywhere
        w, b = tame(i)
        pool.add(O.log(w * w + 1.0), np.log1p(b * b), False)
    elif kind == "sqrt":
        w, b = tame(i)
        pool.add(O.sqrt(w * w + 1.0), np.sqrt(1 + b * b), False)
    elif kind == "pow":
        w, b = tame(i)
        p = draw(st.sampled_from([2, 3]))
        pool.add(w**p, b**p, gx and p == 3)
    elif kind == "neg":
        pool.add(-pool.use(i), bx, gx)
    elif kind in ("relu", "abs"):
        if not gx:
            return False
        pool.add(getattr(O, kind)(pool.use(i)), bx, kind == "abs")
    elif kind in ("add", "sub", "mul", "div", "maximum"):
        # a partner of the same shape, or any rank-0 wire (it broadcasts)
        partners = [j for j, w in enumerate(pool.wires) if w.shape == x.shape or w.type.rank == 0 or x.type.rank == 0]
        j = draw(st.sampled_from(partners))
        if kind == "maximum" and (j == i or not (gx and pool.generic[j])):
            return False
        if kind in ("mul", "div"):
            (a, ba), (c, bc) = tame(i), tame(j)
        else:
            a, ba, c, bc = pool.use(i), bx, pool.use(j), pool.bound[j]
        if x.type.rank == 0 and pool.wires[j].type.rank > 0:
            a = a.broadcast(pool.wires[j].shape)
        g = (gx or pool.generic[j]) and i != j
        if kind == "add":
            pool.add(a + c, ba + bc, g)
        elif kind == "sub":
            pool.add(a - c, ba + bc, g)
        elif kind == "mul":
            pool.add(a * c, ba * bc, g)
        elif kind == "div":
            pool.add(a / (c * c + 1.0), ba, g)
        else:
            pool.add(O.maximum(a, c), max(ba, bc), True)
    elif kind == "matmul":
        if x.type.rank == 0:
            return False
        k = x.shape[-1]
        partners = [j for j, w in enumerate(pool.wires) if w.type.rank in (1, 2) and w.shape[0] == k]
        if not partners:
            return False
        j = draw(st.sampled_from(partners))
        (a, ba), (c, bc) = tame(i), tame(j)
        pool.add(a @ c, k * ba * bc, gx and pool.generic[j] and i != j)
    elif kind in ("sum", "logsumexp", "max"):
        if x.type.rank == 0 or (kind == "max" and not gx):
            return False
        axes = draw(st.lists(st.integers(0, x.type.rank - 1), min_size=1, max_size=x.type.rank, unique=True))
        keep = draw(st.booleans())
        if kind == "sum":
            w, b = pool.use(i), bx * _numel(x.shape)
        elif kind == "logsumexp":
            w, b = tame(i)
            b = b + np.log(_numel(x.shape))
        else:
            w, b = pool.use(i), bx
        pool.add(getattr(O, kind)(w, axes=tuple(sorted(axes)), keepdims=keep), b, gx)
    elif kind == "softmax":
        if x.type.rank == 0:
            return False
        axis = draw(st.integers(-x.type.rank, x.type.rank - 1))
        w, _ = tame(i)
        # along an axis of length 1 softmax is constantly 1: ties everywhere
        pool.add(O.softmax(w, axis=axis), 1.0, gx and x.shape[axis] > 1)
    elif kind == "broadcast":
        targets = [s for s in SHAPES if _broadcastable(x.shape, s)]
        if not targets:
            return False
        pool.add(pool.use(i).broadcast(draw(st.sampled_from(targets))), bx, False)
    elif kind == "reshape":
        targets = [s for s in SHAPES if s != x.shape and _numel(s) == _numel(x.shape)]
        if not targets:
            return False
        pool.add(pool.use(i).reshape(draw(st.sampled_from(targets))), bx, gx)
    elif kind == "transpose":
        if x.type.rank < 2:
            return False
        pool.add(pool.use(i).T, bx, gx)
    elif kind == "slice":
        axes = [a for a, n in enumerate(x.shape) if n >= 2]
        if not axes:
            return False
        a = draw(st.sampled_from(axes))
        start = draw(st.integers(0, x.shape[a] - 1))
        stop = draw(st.integers(start + 1, x.shape[a]))
        pool.add(O.slice(pool.use(i), axis=a, start=start, stop=stop), bx, gx)
    elif kind == "pad":
        if x.type.rank == 0 or _numel(x.shape) > 12:
            return False
        a = draw(st.integers(0, x.type.rank - 1))
        before, after = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        # the zeros it adds are ties: no relu/abs/max on top of it
        pool.add(O.pad(pool.use(i), axis=a, before=before, after=after), bx, gx and before + after == 0)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return True


def _coerce(pool: _Pool, i: int, t: cg.TensorType):
    """A wire of type ``t`` computed from pool wire ``i`` (sum everything, broadcast back)."""
    w = pool.use(i)
    if w.type == t:
        return w
    if w.type.rank:
        w = w.sum()
    return w.broadcast(t.shape)


def _outputs(draw, pool: _Pool, cod, all_sinks: bool):
    if cod is not None:
        return [_coerce(pool, draw(st.integers(0, len(pool.wires) - 1)), t) for t in cg.Ob(*cod)]
    sinks = pool.sinks()
    if not all_sinks:
        # always keep the newest wire, so the drawn ops mostly stay live
        last = len(pool.wires) - 1
        rest = [s for s in sinks if s != last]
        sinks = [last] + draw(st.lists(st.sampled_from(rest), unique=True, max_size=2)) if rest else [last]
    return [pool.use(s) for s in sinks]


def float_types(max_inputs: int = 3):
    return st.lists(st.sampled_from(SHAPES), min_size=1, max_size=max_inputs).map(
        lambda shapes: cg.Ob(*(cg.f64[s] for s in shapes))
    )


@st.composite
def smooth_diagrams(draw, dom=None, cod=None, min_ops=1, max_ops=8, ops=SMOOTH_OPS, all_sinks=False):
    """A random float64 diagram ``dom -> cod`` (each drawn when not given)."""
    dom = draw(float_types()) if dom is None else cg.Ob(*dom)
    n = draw(st.integers(min_ops, max_ops))

    def body(b, ins):
        pool = _Pool(ins)
        done, tries = 0, 0
        while done < n and tries < 20 * n:
            tries += 1
            done += _smooth_step(draw, pool, ops)
        return _outputs(draw, pool, cod, all_sinks)

    return cg.build(dom, body)


# -- Z2 -------------------------------------------------------------------------------------

Z2_SHAPES = [("N",), ("N", 2)]


def z2_types(max_inputs: int = 2):
    return st.lists(st.sampled_from(Z2_SHAPES), min_size=1, max_size=max_inputs).map(
        lambda shapes: cg.Ob(*(cg.bit[s] for s in shapes))
    )


def _z2_step(draw, pool: _Pool) -> bool:
    kind = draw(st.sampled_from(Z2_OPS))
    i = _pick(draw, pool)
    x = pool.wires[i]
    if kind in ("xor", "and", "or"):
        same = [j for j, w in enumerate(pool.wires) if w.shape == x.shape]
        j = draw(st.sampled_from(same))  # j == i is allowed: x * x is a polynomial of its own
        a, c = pool.use(i), pool.use(j)
        pool.add(a ^ c if kind == "xor" else a & c if kind == "and" else a | c, 1, True)
    elif kind == "not":
        pool.add(~pool.use(i), 1, True)
    elif kind == "const":
        bit = draw(st.integers(0, 1))
        other = pool.use(i)
        pool.add(other.const(bit) & other if draw(st.booleans()) else other ^ other.const(bit), 1, True)
    elif kind == "parity":
        if x.type.rank != 2:
            return False
        pool.add(pool.use(i).sum(axes=(1,)), 1, True)
    elif kind == "spread":
        if x.type.rank != 1:
            return False
        pool.add(pool.use(i).reshape("N", 1).broadcast("N", 2), 1, True)
    elif kind == "dot":
        if x.type.rank != 2:
            return False
        same = [j for j, w in enumerate(pool.wires) if w.shape == x.shape]
        j = draw(st.sampled_from(same))
        pool.add(cg.ops.einsum(pool.use(i), pool.use(j), spec="na,na->n"), 1, True)
    return True


def _z2_coerce(pool: _Pool, i: int, t):
    w = pool.use(i)
    if w.type == t:
        return w
    if w.type.rank == 2:
        return w.sum(axes=(1,))
    return w.reshape("N", 1).broadcast("N", 2)


@st.composite
def z2_diagrams(draw, dom=None, cod=None, min_ops=1, max_ops=6):
    """A random Z2 circuit ``dom -> cod`` on batched bit wires (``bit[N]``, ``bit[N, 2]``)."""
    dom = draw(z2_types()) if dom is None else cg.Ob(*dom)
    n = draw(st.integers(min_ops, max_ops))

    def body(b, ins):
        pool = _Pool(ins)
        done = 0
        while done < n:
            done += _z2_step(draw, pool)
        if cod is not None:
            return [_z2_coerce(pool, draw(st.integers(0, len(pool.wires) - 1)), t) for t in cg.Ob(*cod)]
        return _outputs(draw, pool, None, False)

    return cg.build(dom, body)


def width(ob) -> int:
    """Bits per batch row of a batched bit object."""
    return sum(_numel(t.shape[1:]) for t in ob)


def all_bits(*obs):
    """Every assignment of bits to the batched objects ``obs`` at once: for each
    object a list of bool arrays whose leading (batch) axis runs over all
    ``2 ** (total width)`` assignments."""
    total = sum(width(ob) for ob in obs)
    rows = np.array(list(itertools.product([False, True], repeat=total)), dtype=bool).reshape(2**total, total)
    out, k = [], 0
    for ob in obs:
        arrays = []
        for t in ob:
            m = _numel(t.shape[1:])
            arrays.append(rows[:, k : k + m].reshape((2**total, *t.shape[1:])))
            k += m
        out.append(arrays)
    return out


# -- random points ----------------------------------------------------------------------------


def rng_from(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def points(rng: np.random.Generator, ob, low=-1.0, high=1.0) -> list:
    """One float64 array per wire of ``ob`` (concrete shapes), uniform in [low, high]."""
    return [rng.uniform(low, high, size=t.shape) for t in cg.Ob(*ob)]


def cotangents(rng: np.random.Generator, ob) -> list:
    return [rng.standard_normal(size=t.shape) for t in cg.Ob(*ob)]


def zeros_like(ob) -> list:
    return [np.zeros(t.shape) for t in cg.Ob(*ob)]


def assert_close(actual, expected, rtol=1e-8, what=""):
    """Norm-wise relative closeness of two tuples of arrays:
    ||a - e|| <= rtol * (||a|| + ||e||) + tiny, per component."""
    actual, expected = list(actual), list(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs vs {len(expected)}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a, dtype=np.float64), np.asarray(e, dtype=np.float64)
        assert a.shape == e.shape, f"{what}: output {k} has shape {a.shape}, expected {e.shape}"
        err = np.linalg.norm((a - e).ravel())
        scale = np.linalg.norm(a.ravel()) + np.linalg.norm(e.ravel())
        assert err <= rtol * scale + 1e-12, f"{what}: output {k} differs (abs err {err:.3g}, scale {scale:.3g})\n{a}\nvs\n{e}"


def assert_equal_bits(actual, expected, what=""):
    actual, expected = list(actual), list(expected)
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == np.bool_ and e.dtype == np.bool_, (a.dtype, e.dtype)
        np.testing.assert_array_equal(np.broadcast_to(a, e.shape), e, err_msg=f"{what}: output {k}")


def add_values(xs, ys) -> list:
    """Entrywise sum of two tuples of arrays (XOR on bits)."""
    return [x ^ y if np.asarray(x).dtype == np.bool_ else x + y for x, y in zip(xs, ys)]
