"""Stages 3 and 4: type-check and elaborate a definition into a catgrad Diagram.

The checker walks a definition's body on typed wires of a
:class:`~catgrad.core.diagram.Builder`: every primitive application runs the op's
type rule, so checking *is* building the term graph, and the graph it leaves is the
elaborated morphism. This is the "compiling to categories" recipe: a pointful body
(named variables, ``let``, tuples) is a term graph, and the Builder's graph is
already its linearised form: a variable read twice is a copy, a variable never
read is a discard, and outputs listed in another order are a permutation (the
Diagram keeps these as wirings, not boxes). Point-free terms (``>>``, ``@``,
``id``, ``copy``, ``discard``, ``swap``, ``perm``) are morphisms that act on lists
of wires, so both forms mix freely.

Dimensions: a definition's input types may mention its generic dimensions
(``def dense[n, m]``) and free ones (``B``). At each use, the declared input types
are unified with the actual wire types, binding every such name; the body is then
elaborated once per distinct instantiation (cached) and inlined, which also
specialises morphism arguments (``dense[4, 20](relu)``) away.

Parameters: ``param W : T ~ init`` adds a parameter wire. A definition's parameter
list is its own parameters in declaration order, then those of the definitions it
uses, in order of use, each qualified by the callee's name: ``dense.W``, and for
the second use of ``dense`` in the same body ``dense_2.W``. Every box records where it came
from (:class:`~catgrad.core.diagram.Box` ``.scope``): the boxes of a use of ``dense_2`` are
scoped ``("dense_2", ...)``, like its parameters, and a primitive call in the body itself is
scoped by the op and its count (``tanh#1``, ``tanh#2``); drawings group boxes by it.

Every value expression's type is recorded on its AST node as ``expr.type``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..calculus.para import Param
from ..core.diagram import Builder, Graph, Wire, apply
from ..core.primitive import PRIMITIVES
from ..core.types import DTYPES, Ob, TensorType
from ..errors import AttributeValueError, CatgradError, SymbolicSizeError
from ..init import INITS, bits
from ..ops.linalg import matmul_spec
from .resolver import ATTR_ARITH
from . import ast as A
from .diagnostics import Diagnostic, Note
from .printer import type_str

MAX_BOXES = 200_000  # elaborating more than this is refused (guards `f @ f` doubling towers)
MAX_STRUCT = 4096
MAX_WIRES = 100_000

def prim_arity(name: str):
    """The number of input wires of op ``name``, as its primitive declares it
    (``matmul`` is the two-operand spelling of einsum; einsum is variadic: None)."""
    return 2 if name == "matmul" else PRIMITIVES[name].arity


class CatError(Exception):
    """A located user error inside the checker."""

    def __init__(self, message, span, notes=()):
        self.diagnostic = Diagnostic(message, span, list(notes))


class Poisoned(Exception):
    """A use of something whose error was already reported: stay quiet."""


class Deferred(Poisoned):
    """An op attribute depends on a dimension that is still a variable (a generic
    definition checked on its own, e.g. ``slice(x, start=i, stop=i + 1)`` in
    ``def at[n, i]``): the definition is checked where it is used, with sizes."""


def _symbolic_dims(body) -> set:
    """The definition's own dimension parameters that are still variables (not free
    dimensions such as a batch ``B``, whose size is only known at run time)."""
    dims = body.d.dims or ()
    return {body.subst[d] for d in dims if isinstance(body.subst.get(d), str)}


def _free_dims(wires) -> set:
    return {d for w in wires for d in w.shape if isinstance(d, str)}


def _mentions(value, names: set) -> bool:
    if isinstance(value, tuple):
        return any(_mentions(v, names) for v in value)
    return isinstance(value, str) and value in names


POISON = object()

# The dtype variable: ``float[B, n]`` in a definition's types is a float wire whose dtype
# (f32, f64 or bf16) is fixed where the definition is used, by unifying its declared inputs
# with the actual ones like a dimension name; one variable per definition, f32 when no
# input fixes it (and when the definition is checked on its own).
FLOAT_VAR = "float"
DTYPE_KEY = "$float"  # its entry in a substitution (not a possible dimension name)


def dtype_of(name: str, subst: dict):
    """The dtype a written dtype name stands for under ``subst``."""
    if name == FLOAT_VAR:
        return subst.get(DTYPE_KEY, DTYPES["f32"])
    return DTYPES[name]


def _items(t) -> list:
    """The tensor types of a written type, flattened (products are lists of wires)."""
    if isinstance(t, A.ProductTypeExpr):
        return [x for item in t.items for x in _items(item)]
    return [t]


@dataclass
class Instance:
    """One elaborated instantiation: ``graph : P x S x A -> B x S`` and the names of P and S."""

    graph: Graph  # S (model state) is empty for most definitions; evaluation returns S unchanged
    params: tuple  # of catgrad Param
    dom: Ob
    cod: Ob
    state: tuple = ()  # of catgrad Param: state wires and their initialisers
    modal: bool = False  # whether it differs between training and evaluation (train_eval, state)


# -- values and morphisms ---------------------------------------------------------------


class Val:
    """A tuple of wires (one wire for an ordinary value)."""

    __slots__ = ("wires",)

    def __init__(self, wires):
        self.wires = list(wires)


class NumVal:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class Morph:
    def arity(self, ck) -> int:
        raise NotImplementedError

    def dom_hint(self, ck):
        return None


class PrimMorph(Morph):
    def __init__(self, name, attrs=()):
        self.name, self.attrs = name, dict(attrs)
        self.key = ("prim", name, tuple(sorted((k, _hashable(v)) for k, v in self.attrs.items())))

    def arity(self, ck):
        n = prim_arity(self.name)
        if n is None:  # variadic (einsum): the spec says how many operands
            spec = self.attrs.get("spec")
            return spec.split("->")[0].count(",") + 1 if isinstance(spec, str) else 1
        return n

    def describe(self):
        return self.name


class StructMorph(Morph):
    def __init__(self, name, dims=None):
        self.name, self.dims = name, dims
        self.key = ("struct", name, dims)

    def arity(self, ck):
        n, d = self.name, self.dims
        if n == "swap":
            return sum(d) if d else 2
        if n == "perm":
            return len(d or ())
        if n == "copy":
            return 1
        return d[0] if d else 1

    def describe(self):
        return self.name + (f"[{', '.join(map(str, self.dims))}]" if self.dims else "")


class DefMorph(Morph):
    def __init__(self, scope, d: A.Def, dims=None, fargs=None):
        self.scope, self.d, self.dims, self.fargs = scope, d, dims, fargs
        self.key = ("def", id(d), dims, tuple(f.key for f in fargs) if fargs else None)

    def arity(self, ck):
        k = ("arity", self.key)
        if k not in ck.memo:
            ck.memo[k] = self._arity(ck)
        return ck.memo[k]

    def _arity(self, ck):
        d = self.d
        if d.params is not None:
            return sum(len(ck.ob_of(p.type, {})) for p in d.params)
        if d.dom is not None:
            return len(ck.ob_of(d.dom, {}))
        return ck.body_morph(self).arity(ck)

    def dom_hint(self, ck):
        k = ("dom", self.key)
        if k not in ck.memo:
            ck.memo[k] = self._dom_hint(ck)
        return ck.memo[k]

    def _dom_hint(self, ck):
        d = self.d
        if d.dims and self.dims is None:
            return None  # generic and not instantiated: polymorphic until used
        subst = dict(zip(d.dims, self.dims or ()))
        if d.params is not None:
            return Ob(*(t for p in d.params for t in ck.ob_of(p.type, subst)))
        if d.dom is not None:
            return ck.ob_of(d.dom, subst)
        return ck.body_morph(self).dom_hint(ck)

    def describe(self):
        return self.d.name


class SeqMorph(Morph):
    def __init__(self, f, g, spans=(None, None)):
        self.f, self.g = f, g
        self.spans = spans  # where f and g are written: an error inside one points at it, not at the whole pipeline
        self.key = ("seq", f.key, g.key)

    def arity(self, ck):
        return self.f.arity(ck)

    def dom_hint(self, ck):
        return self.f.dom_hint(ck)

    def describe(self):
        return f"{self.f.describe()} >> {self.g.describe()}"


class ParMorph(Morph):
    def __init__(self, f, g):
        self.f, self.g = f, g
        self.key = ("par", f.key, g.key)

    def arity(self, ck):
        n = self.f.arity(ck) + self.g.arity(ck)
        if n > MAX_WIRES:
            raise CatError(f"this program has more than {MAX_WIRES} parallel wires", None)
        return n

    def dom_hint(self, ck):
        a, b = self.f.dom_hint(ck), self.g.dom_hint(ck)
        if a is not None and b is not None and len(a) + len(b) > MAX_WIRES:
            raise CatError(f"this program has more than {MAX_WIRES} parallel wires", None)
        return None if a is None or b is None else a @ b

    def describe(self):
        return f"{self.f.describe()} @ {self.g.describe()}"


def _hashable(v):
    if isinstance(v, list):
        return tuple(v)
    return v


def _wires_desc(n):
    return f"{n} input{'s' if n != 1 else ''}"


# -- the checker ------------------------------------------------------------------------


class Body:
    """The state of one definition body being elaborated."""

    def __init__(self, d: A.Def, scope, subst: dict, fargs: dict):
        self.d, self.scope, self.subst, self.fargs = d, scope, subst, fargs
        self.b = Builder()
        self.env: dict = {}
        self.origin: dict = {}  # wire id -> Span where the wire's value was made
        self.params: list = []  # (Param, wire id)
        self.states: list = []  # (Param, wire id): model state read by the body
        self.updates: dict = {}  # state name -> wire id of its value after a training step
        self.state_names: dict = {}  # a state's local name -> its name in ``states``
        self.modal = False
        self.taken: set = set()
        self.uses: dict = {}
        self.prim_uses: dict = {}  # op name -> primitive calls so far (their scopes: tanh#1, tanh#2, ...)
        self.failed = False  # a statement had an error (reported): the body's result is poisoned


class Checker:
    def __init__(self, diagnostics: list):
        self.diags = diagnostics
        self.cache: dict = {}
        self.alive: dict = {}  # id(def) -> def, for every def a key names (a module's expression
        # queries make short-lived defs, whose ids would otherwise be reused)
        self.stack: list = []  # definitions being elaborated (recursion check)
        self.standalone: dict = {}  # id(def) -> Instance | None (None: failed or polymorphic)
        self.broken: set = set()  # id(def) with resolution errors
        self.deferred: set = set()  # id(def) of generic defs checked only where used (see Deferred)
        self.memo: dict = {}  # arity and input-type hints of definitions
        self.mode = "train"  # "eval": train_eval picks its second value and states are not updated

    # -- types ------------------------------------------------------------------------
    def ob_of(self, t, subst) -> Ob:
        if isinstance(t, A.ProductTypeExpr):
            return Ob(*(x for item in t.items for x in self.ob_of(item, subst)))
        if t.dtype not in DTYPES and t.dtype != FLOAT_VAR:
            raise Poisoned()
        dims = tuple(subst.get(x, x) if isinstance(x, str) else x for x in t.dims)
        try:
            return Ob(TensorType(dtype_of(t.dtype, subst), dims))
        except CatgradError as e:
            raise CatError(str(e), t.span) from None

    # -- standalone definitions ----------------------------------------------------------
    def check_def(self, scope, d: A.Def):
        """Elaborate ``d`` on its declared (symbolic) types; None if it is polymorphic
        or has errors (which are reported)."""
        key = id(d)
        if key in self.standalone:
            return self.standalone[key]
        self.standalone[key] = None
        if key in self.broken or d.fparams:
            return None
        m = DefMorph(scope, d, tuple(d.dims) if d.dims else None, None)
        try:
            dom = m.dom_hint(self)
        except CatError as e:
            if e.diagnostic.span is not None:  # an error in a used definition's types: reported there
                dom = None
            else:  # this body's own error (too many parallel wires, a higher-order definition used
                # without its morphism arguments): reported here, and its uses stay quiet
                e.diagnostic.span = d.result.span
                self.diags.append(e.diagnostic)
                self.broken.add(key)
                return None
        except (Poisoned, RecursionError):
            dom = None
        if dom is None:
            if d.params is None and d.dom is None:
                # polymorphic point-free definition: still check that its body makes sense
                try:
                    self.body_morph(m)
                except CatError as e:
                    self.diags.append(e.diagnostic)
                except Poisoned:
                    pass
            return None
        n_before = len(self.diags)
        try:
            inst = self.instance(m, dom, None)
        except CatError as e:
            self.diags.append(e.diagnostic)
            inst = None
        except Deferred:
            self.deferred.add(key)
            inst = None
        except Poisoned:
            inst = None
        if len(self.diags) != n_before:
            inst = None
        self.standalone[key] = inst
        return inst

    # -- instantiation --------------------------------------------------------------------
    def unify(self, m: DefMorph, actual: Ob, span, origins) -> dict:
        d = m.d
        subst = {}
        if m.dims is not None:
            if len(m.dims) != len(d.dims):
                raise CatError(
                    f"'{d.name}' takes {len(d.dims)} dimension argument(s) [{', '.join(d.dims)}], got {len(m.dims)}",
                    span, [Note(f"'{d.name}' is defined here", d.name_span)],
                )
            subst.update(zip(d.dims, m.dims))
        if d.params is not None:
            declared = [(p, t) for p in d.params for t in _items(p.type)]
        elif d.dom is not None:
            declared = [(None, t) for t in _items(d.dom)]
        else:
            return subst
        if len(declared) != len(actual):
            raise CatError(
                f"'{d.name}' takes {_wires_desc(len(declared))} but is given {len(actual)}",
                span, [Note(f"'{d.name}' is defined here", d.name_span)],
            )
        for i, ((p, te), a) in enumerate(zip(declared, actual)):
            t = self.ob_of(te, {})[0]
            generic = te.dtype == FLOAT_VAR  # the dtype variable: bound to the first float it meets
            if generic:
                bound = subst.get(DTYPE_KEY)
                t = t.with_dtype(bound if bound is not None else a.dtype if a.dtype.is_float else t.dtype)
            ok = t.dtype == a.dtype and t.rank == a.rank
            if ok:
                trial = dict(subst)
                if generic:
                    trial[DTYPE_KEY] = a.dtype
                for x, y in zip(t.shape, a.shape):
                    if isinstance(x, str):
                        if trial.setdefault(x, y) != y:
                            ok = False
                    elif x != y:
                        ok = False
                if ok:
                    subst = trial
            if not ok:
                hint = ""
                want = TensorType(t.dtype, tuple(subst.get(x, x) if isinstance(x, str) else x for x in t.shape))
                if generic:  # say what the dtype variable allows
                    bound = subst.get(DTYPE_KEY)
                    if bound is not None and bound != a.dtype:
                        want = f"{want} (its dtype is the variable float, fixed to {bound} by an earlier input)"
                        if a.dtype.is_float:
                            hint = f"; convert it with cast, e.g. cast(<argument>, dtype={bound})"
                    elif not a.dtype.is_float:
                        want = f"float{str(want)[len(want.dtype.name):]} (any float dtype)"
                what = f"input '{p.name}'" if p is not None else f"input {i + 1}"
                notes = []
                if origins and origins[i] is not None:
                    notes.append(Note(f"the argument has type {a} because of this", origins[i]))
                notes.append(Note(f"'{d.name}' declares {what} : {type_str(te) if generic else t} here", p.span if p is not None else (d.dom.span if d.dom is not None else d.name_span)))
                raise CatError(f"type mismatch: {what} of '{d.name}' expects {want} but the argument has type {a}{hint}", span, notes)
        return subst

    def instance(self, m: DefMorph, actual: Ob, span, origins=None) -> Instance:
        d = m.d
        self.alive.setdefault(id(d), d)  # cache and memo keys name d by id: d must outlive them
        if id(d) in self.broken:
            raise Poisoned()
        subst = self.unify(m, actual, span or d.name_span, origins)
        if m.dims is None and d.dims:
            missing = [x for x in d.dims if x not in subst]
            if missing and span is not None:
                raise CatError(
                    f"cannot infer dimension {', '.join(missing)} of '{d.name}' from its inputs; "
                    f"write {d.name}[{', '.join(d.dims)}] with sizes",
                    span,
                )
        key = (m.key, tuple(sorted((k, v) for k, v in subst.items())), actual, self.mode)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        # recursion is the same definition with the same arguments again; the same definition
        # with other morphism arguments (tw(tw(sin))) is an ordinary nested use
        if any(x is d and k == m.key for x, k in self.stack):
            i = next(i for i, (x, k) in enumerate(self.stack) if x is d and k == m.key)
            chain = " -> ".join(x.name for x, _ in self.stack[i:]) + f" -> {d.name}"
            raise CatError(f"'{d.name}' is recursive ({chain}); definitions cannot use themselves", span or d.name_span)
        fargs = {}
        if d.fparams:
            if m.fargs is None:
                raise CatError(
                    f"'{d.name}' takes morphism argument(s) ({', '.join(d.fparams)}); write {d.name}(f) first",
                    span or d.name_span,
                )
            fargs = dict(zip(d.fparams, m.fargs))
        self.stack.append((d, m.key))
        n_diags = len(self.diags)
        try:
            inst = self.elaborate(m, subst, fargs, actual)
        except (CatError, Poisoned) as e:
            # a generic definition is checked with its sizes only where it is used: say where
            found = self.diags[n_diags:] + ([e.diagnostic] if isinstance(e, CatError) else [])
            for diag in found:
                if d.dims and span is not None and diag.span != span and all(n.span != span for n in diag.notes):
                    diag.notes.append(Note(f"in this use of '{d.name}'", span))
            raise
        finally:
            self.stack.pop()
        self.cache[key] = inst
        return inst

    def elaborate(self, m: DefMorph, subst, fargs, actual: Ob) -> Instance:
        d = m.d
        body = Body(d, m.scope, subst, fargs)
        ins = [body.b.new_wire(t) for t in actual]
        if d.params is not None:
            i = 0
            for p in d.params:
                n = len(self.ob_of(p.type, {}))
                ws = ins[i : i + n]
                for w in ws:
                    body.origin[w] = p.span
                body.env[p.name] = Val(Wire(body.b, w) for w in ws)
                i += n
        for s in d.stmts:
            self.stmt(body, s)
        try:
            if d.params is not None:
                out = self.value(body, d.result)
                outs = out.wires
            else:
                f = self.morph(body, d.result)
                outs = self.apply(body, f, [Wire(body.b, w) for w in ins], d.result.span)
        except CatError as e:
            self.diags.append(e.diagnostic)
            raise Poisoned() from None
        if body.failed:
            raise Poisoned()
        cod = Ob(*(w.type for w in outs))
        if d.cod is not None:
            want = self.ob_of(d.cod, subst)
            if want != cod:
                self.diags.append(Diagnostic(
                    f"'{d.name}' returns {cod} but its signature says {want}",
                    d.result.span if not d.block else d.result.span,
                    [Note("the signature is here", d.cod.span)],
                ))
                raise Poisoned()
        new_state = [body.updates.get(p.name, w) for p, w in body.states]
        graph = body.b.finish([w for _, w in body.params] + [w for _, w in body.states] + ins,
                              [w.id for w in outs] + new_state)
        return Instance(graph, tuple(p for p, _ in body.params), Ob(*actual), cod,
                        tuple(p for p, _ in body.states), body.modal or bool(body.states))

    def eval_instance(self, m: DefMorph, dom: Ob) -> Instance:
        """The evaluation form of ``m`` at input type ``dom`` (see :attr:`mode`)."""
        self.mode = "eval"
        try:
            return self.instance(m, dom, None)
        finally:
            self.mode = "train"

    # -- statements -----------------------------------------------------------------------
    def stmt(self, body: Body, s) -> None:
        try:
            if isinstance(s, A.Update):
                v = self.value(body, s.value)
                if s.name not in body.state_names:  # its declaration had an error, already reported
                    raise Poisoned()
                name = body.state_names[s.name]
                t = next(p.type for p, _ in body.states if p.name == name)
                if len(v.wires) != 1 or v.wires[0].type != t:
                    got = Ob(*(w.type for w in v.wires))
                    raise CatError(f"state '{s.name}' has type {t} but its update has type {got}", s.value.span)
                if self.mode == "train":  # evaluation reads the state and leaves it as it is
                    body.updates[name] = v.wires[0].id
                return
            if isinstance(s, A.Let):
                v = self.expr(body, s.value)
                if s.tuple_pattern:
                    if not isinstance(v, Val):
                        raise CatError("only a tuple of values can be taken apart with let (a, b) = ...", s.value.span)
                    if len(v.wires) != len(s.names):
                        raise CatError(
                            f"the pattern has {len(s.names)} name(s) but the value has {len(v.wires)} wire(s)",
                            s.span,
                        )
                    for n, w in zip(s.names, v.wires):
                        body.env[n] = Val([w])
                else:
                    body.env[s.names[0]] = v
            else:
                t = self.ob_of(s.type, body.subst)
                if len(t) != 1:
                    raise CatError("a parameter has one tensor type, not a product", s.type.span)
                init = self.init(s, t[0])
                w = body.b.new_wire(t[0])
                name = self.fresh(body, s.name)
                if s.state:
                    body.states.append((Param(name, t[0], init), w))
                    body.state_names[s.name] = name
                else:
                    body.params.append((Param(name, t[0], init), w))
                body.origin[w] = s.span
                body.env[s.name] = Val([Wire(body.b, w)])
        except (CatError, Poisoned) as e:
            if isinstance(e, CatError):
                self.diags.append(e.diagnostic)
            body.failed = True
            if isinstance(s, A.Update):
                return
            for n in s.names if isinstance(s, A.Let) else (s.name,):
                body.env[n] = POISON

    def init(self, s: A.ParamDecl, t: TensorType):
        if s.init is None:
            return bits() if t.dtype.name == "bit" else None
        pos, kw = [], {}
        for k, v in s.init_args:
            x = _number(v)
            if x is None:
                raise CatError("initialiser arguments must be numbers", v.span)
            if k is None:
                pos.append(x)
            else:
                kw[k] = x
        try:
            return INITS[s.init](*pos, **kw)
        except TypeError:
            fields = ", ".join(INITS[s.init].__dataclass_fields__)
            raise CatError(
                f"bad arguments for initialiser '{s.init}'" + (f"; it takes {fields}" if fields else "; it takes none"),
                s.init_span,
            ) from None

    def fresh(self, body: Body, name: str) -> str:
        out, k = name, 1
        while out in body.taken:
            k += 1
            out = f"{name}_{k}"
        body.taken.add(out)
        return out

    # -- expressions --------------------------------------------------------------------
    def expr(self, body: Body, e):
        v = self._expr(body, e)
        if isinstance(v, Val):
            e.type = Ob(*(w.type for w in v.wires))
        return v

    def value(self, body: Body, e) -> Val:
        v = self.expr(body, e)
        if isinstance(v, NumVal):
            raise CatError(
                "a bare number has no type here; combine it with a value (e.g. x * 2.0) or use constant(type=..., value=...)",
                e.span,
            )
        if not isinstance(v, Val):
            raise CatError(f"expected a value but '{_show(e)}' is a morphism; apply it to inputs: {_show(e)}(x)", e.span)
        return v

    def morph(self, body: Body, e) -> Morph:
        v = self.expr(body, e)
        if not isinstance(v, Morph):
            raise CatError(f"expected a morphism (a definition, an op or a composite) but '{_show(e)}' is a value", e.span)
        return v

    def _expr(self, body: Body, e):
        if isinstance(e, A.Var):
            return self.var(body, e)
        if isinstance(e, A.Num):
            return NumVal(e.value)
        if isinstance(e, A.Tuple):
            wires = []
            for x in e.items:
                wires += self.value(body, x).wires
            return Val(wires)
        if isinstance(e, A.BinOp):
            return self.binop(body, e)
        if isinstance(e, A.UnOp):
            v = self.expr(body, e.arg)
            if isinstance(v, NumVal) and e.op == "-":
                return NumVal(-v.value)
            v = self.single(body, e.arg, v, "~" if e.op == "~" else "-")
            return self.prim(body, "not" if e.op == "~" else "neg", [v], {}, e.span)
        if isinstance(e, A.Inst):
            return self.inst(body, e)
        if isinstance(e, A.Call):
            return self.call(body, e)
        if isinstance(e, (A.Str, A.Bool, A.List)):
            raise CatError("strings, booleans and lists are only allowed as op attributes (e.g. sum(x, axes=[1]))", e.span)
        raise CatError("unsupported expression", getattr(e, "span", None))

    def var(self, body: Body, e: A.Var):
        ref = e.ref
        if ref is None:
            raise Poisoned()
        kind = ref[0]
        if kind == "local":
            v = body.env.get(ref[1])
            if v is POISON:
                raise Poisoned()
            if v is None:  # a later let or param: the resolver saw it, but not yet bound
                raise CatError(f"'{ref[1]}' is used before it is defined", e.span)
            return v
        if kind == "fparam":
            return body.fargs[ref[1]]
        if kind == "def":
            if id(ref[2]) in self.broken:
                raise Poisoned()
            return DefMorph(ref[1], ref[2])
        if kind == "op":
            return PrimMorph(ref[1])
        if kind == "struct":
            return StructMorph(ref[1])
        if kind == "mode":
            raise CatError(f"'{e.name}' picks one of two values: write {e.name}(in_training, in_evaluation)", e.span)
        raise CatError(f"'{e.name}' can only be used as an op attribute", e.span)

    def single(self, body, e, v, op) -> Wire:
        if isinstance(v, Morph):
            raise CatError(f"'{op}' needs values, but '{_show(e)}' is a morphism", e.span)
        if isinstance(v, NumVal):
            return v.value
        if len(v.wires) != 1:
            raise CatError(f"'{op}' needs a single wire, but '{_show(e)}' is a tuple of {len(v.wires)}", e.span)
        return v.wires[0]

    def binop(self, body: Body, e: A.BinOp):
        op = e.op
        left = self.expr(body, e.left)
        right = self.expr(body, e.right)
        if op == ">>":
            if isinstance(right, Morph):
                if isinstance(left, Morph):
                    return SeqMorph(left, right, (e.left.span, e.right.span))
                if isinstance(left, Val):
                    return Val(self.apply(body, right, left.wires, e.span))
                raise CatError(f"a bare number cannot be fed into '{_show(e.right)}'; its inputs are typed wires",
                               e.left.span)
            raise CatError(
                f"'>>' composes morphisms (or feeds a value into one), but '{_show(e.right)}' is a value", e.right.span
            )
        if op == "@" and (isinstance(left, Morph) or isinstance(right, Morph)):
            if isinstance(left, Morph) and isinstance(right, Morph):
                return ParMorph(left, right)
            bad = e.left if not isinstance(left, Morph) else e.right
            raise CatError(f"'@' between morphisms is their tensor product, but '{_show(bad)}' is a value", bad.span)
        x = self.single(body, e.left, left, op)
        y = self.single(body, e.right, right, op)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            return NumVal(_fold(op, x, y, e.span))
        if op == "**":
            if not isinstance(y, (int, float)):  # (a number base with a number exponent was folded above)
                raise CatError("the exponent of '**' must be a number constant", e.right.span)
            return self.prim(body, "pow", [x], {"p": float(y)}, e.span)
        if op == "@":
            return self.prim(body, "matmul", [x, y], {}, e.span)
        name = {"+": "add", "-": "sub", "*": "mul", "/": "div", "|": "or", "^": "add", "&": "mul"}[op]
        if op in "^&|":
            for side, w in ((e.left, x), (e.right, y)):
                if isinstance(w, Wire) and w.dtype.name != "bit":
                    word = {"^": "xor", "&": "and", "|": "or"}[op]
                    hint = "; for powers write x ** p" if op == "^" else ""
                    raise CatError(f"'{op}' is {word} on bits, but '{_show(side)}' has type {w.type}{hint}", side.span)
        return self.prim(body, name, [x, y], {}, e.span)

    def inst(self, body: Body, e: A.Inst):
        f = self.expr(body, e.fn)
        dims = tuple(body.subst.get(x, x) if isinstance(x, str) else x for x in e.dims)
        if isinstance(f, DefMorph) and f.dims is None and f.fargs is None:
            if len(dims) != len(f.d.dims):
                raise CatError(
                    f"'{f.d.name}' takes {len(f.d.dims)} dimension argument(s)"
                    + (f" [{', '.join(f.d.dims)}]" if f.d.dims else "") + f", got {len(dims)}",
                    e.span, [Note(f"'{f.d.name}' is defined here", f.d.name_span)],
                )
            return DefMorph(f.scope, f.d, dims, None)
        if isinstance(f, StructMorph) and f.dims is None:
            if not all(isinstance(x, int) for x in dims) or any(x > MAX_STRUCT for x in dims):
                raise CatError(f"the arguments of '{f.name}[...]' must be wire counts (small integers)", e.span)
            if f.name == "swap" and len(dims) != 2:
                raise CatError("swap[a, b] takes two wire counts", e.span)
            if f.name in ("id", "copy", "discard") and len(dims) != 1:
                raise CatError(f"{f.name}[n] takes one wire count", e.span)
            if f.name == "perm" and sorted(dims) != list(range(len(dims))):
                raise CatError(f"perm{list(dims)} is not a permutation of 0..{len(dims) - 1}", e.span)
            return StructMorph(f.name, dims)
        raise CatError(f"'{_show(e.fn)}' does not take [dimension] arguments", e.span)

    def call(self, body: Body, e: A.Call):
        if isinstance(e.fn, A.Var) and e.fn.ref == ("mode", "train_eval"):
            return self.train_eval(body, e)
        f = self.expr(body, e.fn)
        if not isinstance(f, Morph):
            raise CatError(f"'{_show(e.fn)}' is a value, not a function", e.fn.span)
        if isinstance(f, DefMorph) and f.d.fparams and f.fargs is None:
            if e.kwargs:
                raise CatError(f"'{f.d.name}' takes no keyword arguments", e.span)
            if len(e.args) != len(f.d.fparams):
                raise CatError(
                    f"'{f.d.name}' takes {len(f.d.fparams)} morphism argument(s) ({', '.join(f.d.fparams)}), "
                    f"got {len(e.args)}", e.span,
                )
            fargs = tuple(self.morph(body, a) for a in e.args)
            return DefMorph(f.scope, f.d, f.dims, fargs)
        attrs = {}
        if e.kwargs:
            if not isinstance(f, PrimMorph):
                raise CatError(f"only primitive ops take keyword attributes; '{_show(e.fn)}' does not", e.span)
            attrs = dict(f.attrs)
            for k, v in e.kwargs:
                attrs[k] = self.attr(body, v)
            if not e.args and prim_arity(f.name) != 0:
                return PrimMorph(f.name, attrs)
            f = PrimMorph(f.name, attrs)
        wires = []
        for a in e.args:
            v = self.expr(body, a)
            if isinstance(v, Morph):
                raise CatError(f"'{_show(a)}' is a morphism; '{_show(e.fn)}' takes values here", a.span)
            if isinstance(v, NumVal):
                if not isinstance(f, PrimMorph):
                    raise CatError(f"a bare number cannot be passed to '{_show(e.fn)}'; its inputs are typed wires", a.span)
                wires.append(v.value)
            else:
                wires += v.wires
        return Val(self.apply(body, f, wires, e.span))

    def train_eval(self, body: Body, e: A.Call) -> Val:
        """``train_eval(a, b)``: ``a`` in the training step, ``b`` in evaluation (predict). Both
        are checked and must have one type; the other one's wires are discarded."""
        if e.kwargs or len(e.args) != 2:
            raise CatError("train_eval takes two values: train_eval(in_training, in_evaluation)", e.span)
        a, b = (self.value(body, x) for x in e.args)
        ta, tb = (Ob(*(w.type for w in v.wires)) for v in (a, b))
        if ta != tb:
            raise CatError(f"the two values of train_eval must have one type, got {ta} and {tb}", e.span)
        body.modal = True
        return a if self.mode == "train" else b

    def attr(self, body: Body, e):
        if isinstance(e, A.Num):
            return e.value
        if isinstance(e, A.UnOp) and e.op == "-" and isinstance(e.arg, A.Num):
            return -e.arg.value
        if isinstance(e, (A.Str, A.Bool)):
            return e.value
        if isinstance(e, A.List):
            return tuple(self.attr(body, x) for x in e.items)
        if isinstance(e, A.Var) and e.ref and e.ref[0] == "attr":
            if e.name in DTYPES or e.name == FLOAT_VAR:
                return dtype_of(e.name, body.subst)
            return body.subst.get(e.name, e.name)
        if isinstance(e, A.Inst) and isinstance(e.fn, A.Var) and (e.fn.name in DTYPES or e.fn.name == FLOAT_VAR):
            dims = tuple(body.subst.get(x, x) if isinstance(x, str) else x for x in e.dims)
            return TensorType(dtype_of(e.fn.name, body.subst), dims)
        if isinstance(e, A.BinOp) and e.op in ATTR_ARITH:
            left, right = self.attr(body, e.left), self.attr(body, e.right)
            if _mentions((left, right), _symbolic_dims(body)):
                raise Deferred()
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right)):
                raise CatError(
                    f"arithmetic in an op attribute needs whole numbers known when the definition is used, "
                    f"got {left!r} {e.op} {right!r}", e.span)
            return {"+": left + right, "-": left - right, "*": left * right}[e.op]
        raise CatError("an op attribute must be a number, string, true/false, dtype, type or a list of them", e.span)

    # -- applying morphisms to wires ------------------------------------------------------
    def apply(self, body: Body, f: Morph, wires: list, span) -> list:
        try:
            return self._apply(body, f, wires, span)
        except CatError as e:
            if e.diagnostic.span is None:
                e.diagnostic.span = span
            raise

    def _apply(self, body: Body, f: Morph, wires: list, span) -> list:
        if isinstance(f, SeqMorph):
            fs, gs = f.spans
            return self.apply(body, f.g, self.apply(body, f.f, wires, fs or span), gs or span)
        if isinstance(f, ParMorph):
            n = f.f.arity(self)
            if n > len(wires):
                raise CatError(f"'{f.f.describe()}' takes {_wires_desc(n)} but only {len(wires)} are left", span)
            left = self.apply(body, f.f, wires[:n], span)
            m = f.g.arity(self)  # f @ g takes f's inputs then g's: exactly n + m of them
            if len(wires) != n + m:
                raise CatError(f"the tensor product '{f.describe()}' takes {_wires_desc(n + m)} "
                               f"but is given {len(wires)}", span)
            return left + self.apply(body, f.g, wires[n:], span)
        if isinstance(f, PrimMorph):
            out = self.prim(body, f.name, wires, f.attrs, span)
            return out.wires
        if isinstance(f, StructMorph):
            if f.name == "perm" and f.dims is None:  # before the arity check: perm alone has none
                raise CatError("perm needs the permutation: perm[p0, p1, ...]", span)
            n = f.arity(self)
            if len(wires) != n:
                raise CatError(f"'{f.describe()}' takes {_wires_desc(n)} but is given {len(wires)}", span)
            nm, d = f.name, f.dims
            if nm == "id":
                return list(wires)
            if nm == "copy":
                return list(wires) * (d[0] if d else 2)
            if nm == "discard":
                return []
            if nm == "swap":
                a = d[0] if d else 1
                return wires[a:] + wires[:a]
            return [wires[i] for i in d]
        if isinstance(f, DefMorph):
            if any(not isinstance(w, Wire) for w in wires):
                raise CatError(f"a bare number cannot be passed to '{f.d.name}'; its inputs are typed wires", span)
            actual = Ob(*(w.type for w in wires))
            inst = self.instance(f, actual, span, [body.origin.get(w.id) for w in wires])
            if len(body.b.boxes) + len(inst.graph.boxes) > MAX_BOXES:
                raise CatError(f"this program elaborates to more than {MAX_BOXES} boxes", span)
            pw, sw = [], []
            prefix = self.fresh_prefix(body, f.d.name)
            for p in inst.params:
                w = body.b.new_wire(p.type)
                body.params.append((Param(self.fresh(body, f"{prefix}.{p.name}"), p.type, p.init), w))
                pw.append(w)
            for p in inst.state:  # the callee's state is the caller's, qualified like parameters
                w = body.b.new_wire(p.type)
                q = Param(self.fresh(body, f"{prefix}.{p.name}"), p.type, p.init)
                body.states.append((q, w))
                sw.append((q.name, w))
            with body.b.scoped(prefix):  # the boxes of this use are scoped like its parameters
                outs = body.b.inline(inst.graph, pw + [w for _, w in sw] + [w.id for w in wires])
            n_out = len(inst.cod)
            for (q, _), w in zip(sw, outs[n_out:]):
                body.updates[q] = w
            outs = outs[:n_out]
            body.modal = body.modal or inst.modal
            for w in outs:
                body.origin[w] = span
            return [Wire(body.b, w) for w in outs]
        raise CatError("not a morphism", span)

    def fresh_prefix(self, body: Body, name: str) -> str:
        k = body.uses.get(name, 0) + 1
        body.uses[name] = k
        return name if k == 1 else f"{name}_{k}"

    def body_morph(self, m: DefMorph) -> Morph:
        """The morphism a point-free definition's body denotes (its morphism arguments bound)."""
        d = m.d
        if any(x is d and k == m.key for x, k in self.stack):
            raise CatError(f"'{d.name}' is recursive; definitions cannot use themselves", d.name_span)
        body = Body(d, m.scope, dict(zip(d.dims, m.dims or ())), dict(zip(d.fparams, m.fargs or ())))
        if d.fparams and m.fargs is None:  # an error of the use (tw @ sin): apply() locates it there
            raise CatError(f"'{d.name}' needs its morphism argument(s) ({', '.join(d.fparams)})", None,
                           [Note(f"'{d.name}' is defined here", d.name_span)])
        self.stack.append((d, m.key))
        try:
            for s in d.stmts:
                self.stmt(body, s)
            if body.failed:
                raise Poisoned()
            return self.morph(body, d.result)
        finally:
            self.stack.pop()

    def prim(self, body: Body, name: str, args: list, attrs: dict, span) -> Val:
        if name in PRIMITIVES or name == "matmul":
            pass
        else:  # pragma: no cover - the resolver only lets known ops through
            raise CatError(f"unknown op '{name}'", span)
        wires = [a for a in args if isinstance(a, Wire)]
        if not wires and prim_arity(name) != 0:
            raise CatError(f"'{name}' needs at least one typed input", span)
        k = body.prim_uses[name] = body.prim_uses.get(name, 0) + 1
        with body.b.scoped(f"{name}#{k}"):  # '#': no definition or parameter is named so
            return self._prim(body, name, args, attrs, span, wires)

    def _prim(self, body: Body, name: str, args: list, attrs: dict, span, wires) -> Val:
        try:
            if name == "matmul":
                if attrs:  # matmul (the operator @) has no primitive of its own, and no attributes
                    raise CatError(f"matmul: unknown attribute '{next(iter(attrs))}'; it takes: none", span)
                if len(wires) != len(args):
                    raise CatError("a bare number cannot be passed to 'matmul'; its inputs are typed wires", span)
                if len(args) != 2:
                    raise CatError(f"matmul takes 2 inputs, got {len(args)}", span)
                spec = matmul_spec(wires[0].type, wires[1].type)
                out = apply("einsum", *wires, spec=spec, builder=body.b)
            else:
                if PRIMITIVES[name].elementwise and len(wires) == 2:
                    args = self.broadcast(body, args, name, span)
                out = apply(PRIMITIVES[name], *args, builder=body.b, **attrs)
        except CatError:
            raise
        except AttributeValueError as err:  # about the attributes: the input types are beside the point
            if _mentions(tuple(attrs.values()), _symbolic_dims(body)):
                raise Deferred() from None
            raise CatError(str(err), span) from None
        except CatgradError as err:  # (a type rule's own errors; Primitive.op turns any other into the above)
            if _mentions(tuple(attrs.values()), _symbolic_dims(body)) or (
                    isinstance(err, SymbolicSizeError) and (body.d.dims or _free_dims(wires))):
                raise Deferred() from None
            notes = [
                Note(f"this input has type {w.type}", body.origin[w.id]) for w in wires if w.id in body.origin
            ]
            msg = str(err) if str(err).startswith(name) else f"{name}: {err}"
            dtypes = list(dict.fromkeys(w.dtype.name for w in wires))
            if len(dtypes) > 1 and "one type" in msg:  # mixed dtypes: say how to convert
                msg += f"; convert one of them with cast, e.g. cast(<operand>, dtype={dtypes[0]})"
            raise CatError(msg, span, _dedupe(notes)) from None
        outs = list(out) if isinstance(out, tuple) else [out]
        for w in outs:
            body.origin[w.id] = span
        return Val(outs)

    def broadcast(self, body: Body, args, name, span):
        """numpy broadcasting for binary elementwise ops on wires of different shapes."""
        x, y = args
        if x.type == y.type or x.dtype != y.dtype:
            return args
        sx, sy = x.shape, y.shape
        n = max(len(sx), len(sy))
        px, py = (1,) * (n - len(sx)) + sx, (1,) * (n - len(sy)) + sy
        out = []
        for a, b in zip(px, py):
            if a == b or b == 1:
                out.append(a)
            elif a == 1:
                out.append(b)
            else:
                notes = [Note(f"this input has type {w.type}", body.origin[w.id]) for w in (x, y) if w.id in body.origin]
                raise CatError(
                    f"{name}: cannot combine {x.type} and {y.type} (shapes do not broadcast)", span, _dedupe(notes)
                )
        shape = tuple(out)
        return [w.broadcast(shape) for w in (x, y)]  # (a wire of that shape already is itself)


def _dedupe(notes):
    out, seen = [], set()
    for n in notes:
        k = (n.message, n.span)
        if k not in seen:
            seen.add(k)
            out.append(n)
    return out


def _number(v):
    if isinstance(v, A.Num):
        return v.value
    if isinstance(v, A.UnOp) and v.op == "-" and isinstance(v.arg, A.Num):
        return -v.arg.value
    return None


def _fold(op, x, y, span):
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "/":
            return x / y
        if op == "**":
            r = float(x) ** float(y)
            if isinstance(r, complex) or (isinstance(r, float) and math.isnan(r)):
                raise ValueError
            return r
    except (ZeroDivisionError, OverflowError, ValueError):
        raise CatError(f"cannot compute the constant {x} {op} {y}", span) from None
    raise CatError(f"'{op}' needs values, not two numbers", span)


def _show(e) -> str:
    from .printer import expr_str

    try:
        s = expr_str(e)
    except Exception:  # printing is best effort inside an error message
        return "this expression"
    return s if len(s) <= 40 else s[:37] + "..."
