"""The signature: primitive operations, each declared once, and the rule tables.

A :class:`Primitive` holds what is true of an op whatever runs it:

- ``type_rule(dom, **attrs) -> cod``: the output wire types, or a
  :class:`~catgrad.errors.CatgradTypeError` naming what is wrong;
- ``rd(xs, ys, dys, **attrs) -> dxs``: the reverse derivative, written with
  :class:`~catgrad.core.diagram.Wire` values, so it builds a diagram in the same
  signature and R is closed (``R(R(f))`` exists). ``xs`` are the primal inputs,
  ``ys`` the primal outputs, ``dys`` the output cotangents; it returns one
  cotangent per input, ``None`` meaning zero. ``rd=None`` declares the op locally
  constant (its derivative is zero);
- ``arity``: the number of input wires (``None``: variadic, as einsum);
- ``kind``: one of :data:`KINDS` (elementwise, data movement, reduction, ...);
  passes and backends read it instead of testing op names;
- ``samples``: input types and attributes the conformance suite runs the op at.

How an op *runs* is not part of the primitive: each backend keeps a
:class:`RuleTable` keyed by primitive (as JAX keeps one lowering table per
platform), and a new backend adds its own table without touching this class.
``declare(numpy=..., torch=...)`` in :mod:`catgrad.ops` is sugar that fills the
``numpy`` and ``torch`` tables. A rule is a function of the input values; it may be
given per dtype kind (``{"float": np.add, "int": np.add, "bit": np.logical_xor}``),
so no rule branches on the dtype at run time, and it may ask (``needs=``) for

- ``shape``: the first output's shape, symbolic dimensions resolved by the caller;
- ``dtype``: the first output's dtype, as the backend's own dtype object;
- ``dom``: the input wire types (static ranks and dtypes, for rules that must
  not inspect traced values);
- ``shapes``: the input shapes, symbolic dimensions resolved.

:func:`bind` is the one place that turns (op, backend) into a callable of the
inputs alone; evaluation, constant folding and every backend call it.

An :class:`Op` is a primitive instantiated at concrete wire types and attributes:
it labels the boxes of a diagram.
"""

from __future__ import annotations

import functools
import keyword
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..errors import AttributeValueError, CatgradError, CatgradTypeError, UnknownOpError, did_you_mean
from .types import Ob, TensorType, as_ob, resolve_shape, source

PRIMITIVES: dict[str, "Primitive"] = {}

#: What an op does to its inputs' entries; passes and backends dispatch on it.
KINDS = ("elementwise", "data_movement", "reduction", "contraction", "constant", "collective", "other")


@dataclass(frozen=True)
class Sample:
    """Where the conformance suite runs an op: input types, attributes, and the
    interval float inputs are drawn from (``None``: standard normal)."""

    dom: Ob
    attrs: dict = field(default_factory=dict)
    domain: Optional[tuple] = None


@dataclass(eq=False)
class Primitive:
    name: str
    type_rule: Callable[..., Any]
    rd: Optional[Callable[..., Any]] = None
    arity: Optional[int] = 1
    kind: str = "elementwise"
    samples: Callable[[], list] = lambda: []
    doc: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"primitive {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def elementwise(self) -> bool:
        return self.kind == "elementwise"

    def op(self, dom, **attrs) -> "Op":
        """Instantiate at input types ``dom``: checks the arity, then runs the type rule.
        Type rules are functions of the types and attributes alone, so an op made once
        is looked up the next time (an optimizer builds the same few ops for every
        parameter)."""
        dom = as_ob(dom)
        try:
            key = (dom, _attr_key(attrs))
            made = _OPS.get(self)
            hit = made.get(key) if made is not None else None
        except TypeError:  # an attribute that cannot be hashed (an array): no lookup
            key = hit = None
        if hit is not None:
            return hit
        if self.arity is not None and len(dom) != self.arity:
            raise CatgradTypeError(f"{self.name} takes {self.arity} input(s), got {len(dom)}: {dom}")
        try:
            cod = self.type_rule(dom, **attrs)
        except CatgradError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
            # the rule fell over its attributes (an unknown name, ``axes=1.5``): say which
            raise AttributeValueError(f"{self.name}: {self.attribute_problem(attrs, err)}") from None
        if isinstance(cod, TensorType):
            cod = Ob(cod)
        op = Op(self, dom, Ob(*cod), tuple(sorted(attrs.items())))
        if key is not None:
            made = _OPS.setdefault(self, {})
            if len(made) >= 4096:  # (bounded: constants carry their values)
                made.clear()
            made[key] = op
        return op

    def attribute_problem(self, attrs: dict, err=None) -> str:
        """What is wrong with ``attrs`` for this primitive, read off its type rule's
        signature: an unknown name (with the nearest known one), a missing required one,
        or else the values themselves, with the error ``err`` they caused."""
        params = list(_rule_params(self.type_rule))
        # None when the rule takes **attrs and so cannot say which names it knows
        known = None if any(p.kind == p.VAR_KEYWORD for p in params) else [p.name for p in params[1:]]
        takes = ", ".join(known) if known else "none"
        unknown = [k for k in attrs if known is not None and k not in known]
        if unknown:
            return f"unknown attribute '{unknown[0]}'{did_you_mean(unknown[0], known)}; it takes: {takes}"
        missing = [p.name for p in params[1:] if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD
                   and p.name not in attrs]
        if missing:
            return f"needs the attribute {missing[0]}=..." + (f"; it takes: {takes}" if known is not None else "")
        return f"bad attribute values {attrs} ({err})"

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


@functools.lru_cache(maxsize=None)
def _rule_params(rule) -> tuple:
    import inspect

    return tuple(inspect.signature(rule).parameters.values())


_OPS: dict = {}  # primitive -> {(dom, attribute key): Op}


def _attr_key(v):
    """A hashable key that tells apart values Python calls equal (``1``, ``1.0``,
    ``True``), as :class:`Op` equality does; a TypeError for what cannot be hashed."""
    if isinstance(v, dict):
        return tuple(sorted((k, _attr_key(x)) for k, x in v.items()))
    if isinstance(v, (tuple, list)):
        return (type(v), tuple(_attr_key(x) for x in v))
    if isinstance(v, (np.ndarray, np.generic)):
        raise TypeError("arrays are not looked up")
    if type(v) is float:  # (-0.0 == 0.0, but a constant's sign matters)
        return (float, v.hex())
    hash(v)
    return (type(v), v)


# -- rule tables: one per backend, keyed by primitive ---------------------------------------


@dataclass(frozen=True)
class Rule:
    """How one backend runs one primitive: ``fn`` (or a dict of them per dtype kind)
    and what else it is given (a subset of :data:`NEEDS`). A ``staged`` rule is called
    once, with the attributes and needs alone, and returns the kernel: work that
    depends only on types (a BLAS plan, normalised axes) is then done at compile time.
    ``views``: the result may share memory with an input (a view of it, or the input
    itself), always (``True``) or for the ops ``views(op)`` holds of. A backend that
    writes into an input in place must wait for every reader of such results."""

    fn: Any
    needs: frozenset = frozenset()
    staged: bool = False
    views: Any = False

    def may_view(self, op) -> bool:
        return bool(self.views(op) if callable(self.views) else self.views)

    def resolve(self, kind: str):
        fn = self.fn
        if isinstance(fn, dict):
            return fn.get(kind)
        return fn


class RuleTable(dict):
    """``{Primitive: Rule}`` for one backend. ``dtype`` maps a catgrad dtype to the
    backend's own dtype object; a table with a ``parent`` falls back to its rules
    (sympy runs the numpy rules on object arrays unless it has its own)."""

    def __init__(self, name: str, dtype: Callable = lambda d: d, parent: "RuleTable | None" = None,
                 unsupported: frozenset = frozenset()):
        super().__init__()
        self.name, self.dtype, self.parent, self.unsupported = name, dtype, parent, frozenset(unsupported)

    def register(self, prim: Primitive, fn, needs=(), staged: bool = False, views=False) -> None:
        bad = set(needs) - set(NEEDS)
        if bad:
            raise ValueError(f"rule for {prim.name!r} on {self.name}: unknown needs {sorted(bad)}")
        self[prim] = Rule(fn, frozenset(needs), staged, views)

    def lookup(self, prim: Primitive) -> Optional[Rule]:
        t = self
        while t is not None:
            r = dict.get(t, prim)
            if r is not None:
                return r
            t = t.parent
        return None


RULES: dict[str, RuleTable] = {}
#: What a rule may ask for besides the attributes (see :func:`bind`).
NEEDS = ("shape", "dtype", "dom", "shapes")


def rule_table(name: str, dtype: Callable | None = None, parent: str | None = None,
               unsupported=()) -> RuleTable:
    """The rule table of backend ``name``, created on first use. ``unsupported``
    names dtypes the backend cannot hold (numpy has no bfloat16)."""
    t = RULES.get(name)
    if t is None:
        t = RULES[name] = RuleTable(name, dtype or (lambda d: d), RULES.get(parent) if parent else None,
                                    frozenset(unsupported))
    else:
        if dtype is not None:
            t.dtype = dtype
        t.unsupported |= frozenset(unsupported)
    return t


def dtype_kind(dtype) -> str:
    """``"float"``, ``"int"`` or ``"bit"``: the key of per-dtype rules."""
    return "float" if dtype is None or dtype.is_float else "bit" if dtype.name == "bit" else "int"


def lowering_error(op: "Op", backend: str, why: str = "") -> UnknownOpError:
    ins = ", ".join(str(t) for t in op.dom) or "no inputs"
    return UnknownOpError(f"the {backend} backend cannot run op {op.name!r} on ({ins}){': ' + why if why else ''}")


def find_rule(op: "Op", backend: str):
    """The rule function for ``op`` on ``backend`` and its :class:`Rule`, or raise
    naming the op, its input types and the backend."""
    table = RULES.get(backend)
    if table is None:
        raise UnknownOpError(f"no backend called {backend!r}{did_you_mean(str(backend), RULES)}")
    rule = table.lookup(op.prim)
    if rule is None:
        raise lowering_error(op, backend, "no rule is registered for it")
    kind = dtype_kind(op.dtype)
    fn = rule.resolve(kind)
    if fn is None:
        raise lowering_error(op, backend, f"it has no rule for {kind} values")
    return fn, rule


def check_lowerable(ops, backend: str) -> None:
    """Raise, before anything runs, if ``backend`` lacks a rule for one of ``ops`` or
    cannot hold one of their dtypes; the message names the op, its types and the backend."""
    table = RULES.get(backend)
    for op in ops:
        for t in (*op.dom, *op.cod):
            if table is not None and t.dtype.name in table.unsupported:
                raise lowering_error(op, backend, f"it has no {t.dtype.name} values")
        find_rule(op, backend)


def bind(op: "Op", backend: str, binding: dict | None = None, shape=None) -> Callable:
    """The kernel-call protocol, written once: ``op``'s rule on ``backend`` with its
    attributes (and whatever it ``needs``) bound, as a function of the inputs alone.
    ``shape`` overrides the resolved output shape (backends that trace pass their own
    symbolic sizes)."""
    fn, rule = find_rule(op, backend)
    needs = rule.needs
    kw = op.kwargs
    if "shape" in needs:
        kw["shape"] = shape if shape is not None else resolve_shape(op.cod[0].shape, {} if binding is None else binding)
    if "dtype" in needs:
        kw["dtype"] = RULES[backend].dtype(op.cod[0].dtype)
    if "dom" in needs:
        kw["dom"] = op.dom
    if "shapes" in needs:
        kw["shapes"] = tuple(resolve_shape(t.shape, {} if binding is None else binding) for t in op.dom)
    if rule.staged:
        return fn(**kw)
    return functools.partial(fn, **kw) if kw else fn


def _attr_eq(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@dataclass(frozen=True, eq=False)
class Op:
    """A primitive at given types: the label of one box."""

    prim: Primitive
    dom: Ob
    cod: Ob
    attrs: tuple  # sorted (name, value) pairs

    def __post_init__(self):
        # read on every pass over a program: a plain attribute, and the hash computed once
        object.__setattr__(self, "name", self.prim.name)
        object.__setattr__(self, "_hash", hash((self.prim.name, self.dom, self.cod)))

    @property
    def kwargs(self) -> dict:
        return dict(self.attrs)

    @property
    def dtype(self):
        """The dtype kernels are chosen by: the first input's, or the output's for constants."""
        return (self.dom or self.cod)[0].dtype

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        return (
            isinstance(other, Op)
            and self._hash == other._hash
            and self.prim is other.prim
            and self.dom == other.dom
            and self.cod == other.cod
            and len(self.attrs) == len(other.attrs)
            and all(k1 == k2 and _attr_eq(v1, v2) for (k1, v1), (k2, v2) in zip(self.attrs, other.attrs))
        )

    def __hash__(self) -> int:  # (CSE and graph caching hash every op many times)
        return self._hash

    def __repr__(self) -> str:
        """Source that rebuilds this op as a one-box diagram (``import catgrad as cg``)."""
        args = [source(t) for t in self.dom] + [f"{k}={source(v)}" for k, v in self.attrs]
        name = self.name + "_" if keyword.iskeyword(self.name) else self.name  # cg.ops.not_, cg.ops.or_
        return f"cg.ops.{name}({', '.join(args)})"


def register(prim: Primitive) -> Primitive:
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} is declared twice")
    PRIMITIVES[prim.name] = prim
    return prim


def lookup(name: str) -> Primitive:
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise UnknownOpError(f"unknown op {name!r}{did_you_mean(name, PRIMITIVES)}") from None


# -- helpers shared by the type rules -------------------------------------------------


def expect_same(name: str, dom: Ob) -> TensorType:
    first = dom[0]
    for t in dom[1:]:
        if t != first:
            raise CatgradTypeError(f"{name} needs inputs of one type, got {first} and {t}")
    return first


def expect_float(name: str, t: TensorType) -> None:
    if not t.dtype.is_float:
        raise CatgradTypeError(f"{name} needs a float input (f32 or f64), got {t}")


def normalize_axis(name: str, t: TensorType, axis) -> int:
    """One axis (softmax, concat, slice, pad): an integer in ``[-rank, rank)``, returned
    as an index from 0."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise AttributeValueError(f"{name}: axis must be one integer, got {axis!r}")
    if not -t.rank <= axis < t.rank:
        raise CatgradTypeError(f"{name}: axis {axis!r} is out of range for {t}")
    return int(axis) % t.rank


def normalize_axes(name: str, t: TensorType, axes) -> tuple:
    if axes is None:
        return tuple(range(t.rank))
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        axes = (axes,)
    elif not isinstance(axes, (tuple, list)):
        raise AttributeValueError(f"{name}: axes must be an integer or a sequence of integers, got {axes!r}")
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise AttributeValueError(f"{name}: an axis must be an integer, got {a!r}")
        if not -t.rank <= a < t.rank:
            raise CatgradTypeError(f"{name}: axis {a!r} is out of range for {t}")
        out.append(int(a) % t.rank)
    if len(set(out)) != len(out):
        raise CatgradTypeError(f"{name}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))
