"""Stage 2: name resolution.

Walks every definition with its scopes and sets ``Var.ref`` to what each name
denotes, reporting unknown names (with a "did you mean"), unknown dtypes and
initialisers, duplicate definitions and repeated parameter names. Scopes, innermost
first: local values (inputs, ``let``, ``param``) -> morphism parameters -> the
module's definitions -> imported modules (``nn.dense``) -> the built-ins (primitive
ops and the structural maps ``id copy discard swap perm``).

A ``ref`` is one of ``("local", name)``, ``("fparam", name)``, ``("def", scope, Def)``,
``("op", name)``, ``("struct", name)``, ``("attr", name)`` (a dtype or dimension name
used as an op attribute).
"""

from __future__ import annotations

from ..core.primitive import PRIMITIVES
from ..core.types import DTYPES
from ..errors import did_you_mean
from ..init import INITS
from . import ast as A
from .diagnostics import Diagnostic, Note
from .resources import prelude_names

STRUCT = ("id", "copy", "discard", "swap", "perm")
MODES = ("train_eval",)  # train_eval(a, b): a in the training step, b in evaluation
OP_ALIASES = {"xor": "add", "and": "mul", "matmul": "matmul"}

ATTR_ARITH = ("+", "-", "*")  # integer arithmetic allowed inside op attributes
MAX_SUGGESTIONS = 20  # "did you mean" for the first unknown names of a module only


def builtin_names() -> list:
    return [*STRUCT, *MODES, *OP_ALIASES, *PRIMITIVES]


class Resolver:
    def __init__(self, scope):
        self.scope = scope  # a loader.ModuleScope: .defs, .imports, .diagnostics
        self.diags = scope.diagnostics
        self.broken: set = set()  # names of definitions with resolution errors

    def error(self, msg, span, notes=()):
        self.diags.append(Diagnostic(msg, span, list(notes)))
        self._failed = True

    def run(self, module: A.Module) -> None:
        seen = {}
        for d in module.defs:
            if d.name in seen:
                self.error(
                    f"'{d.name}' is defined twice",
                    d.name_span,
                    [Note("first defined here", seen[d.name].name_span)],
                )
                self.broken.add(d.name)
                continue
            seen[d.name] = d
        for d in module.defs:
            self._failed = False
            self.definition(d)
            if self._failed:
                self.broken.add(d.name)
        self.recursion(module)

    def recursion(self, module: A.Module) -> None:
        """Report definitions that use themselves, directly or through other definitions of
        this module (imports cannot form cycles). Morphism arguments do not count: in
        ``tw(tw(sin))`` each ``tw`` is used once, with a different argument."""
        uses = {}
        for d in module.defs:
            if self.scope.defs.get(d.name) is not d:
                continue
            out = {}  # name -> the span of its first use in d
            for e in _walk(d):
                ref = getattr(e, "ref", None) if isinstance(e, A.Var) else None
                if ref and ref[0] == "def" and ref[1] is self.scope:
                    out.setdefault(ref[2].name, e.span)
            uses[d.name] = out
        state = {}  # name -> 1 while on the DFS path, 2 when done
        for root in uses:
            if root in state:
                continue
            path, stack = [], [(root, iter(uses[root]))]
            state[root] = 1
            path.append(root)
            while stack:
                name, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    state[name] = 2
                elif state.get(nxt) == 1:
                    cycle = path[path.index(nxt):] + [nxt]
                    if nxt not in self.broken:
                        self.error(f"'{nxt}' is recursive ({' -> '.join(cycle)}); definitions cannot use themselves",
                                   uses[name][nxt])
                        self.broken.update(cycle)
                elif nxt not in state and nxt in uses:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, iter(uses[nxt])))

    # -- definitions ------------------------------------------------------------------
    def definition(self, d: A.Def) -> None:
        self.fparams = set(d.fparams)
        for group, what in ((d.dims, "dimension parameter"), (d.fparams, "morphism parameter")):
            if len(set(group)) != len(group):
                dup = next(n for n in group if group.count(n) > 1)
                self.error(f"{what} '{dup}' of '{d.name}' is repeated", d.name_span)
        local = set()
        if d.params is not None:
            for p in d.params:
                if p.name in local:
                    self.error(f"input '{p.name}' of '{d.name}' is repeated", p.span)
                local.add(p.name)
                self.type_(p.type)
        for t in (d.dom, d.cod):
            if t is not None:
                self.type_(t)
        states, updated = set(), set()
        for s in d.stmts:
            if isinstance(s, A.Let):
                self.expr(s.value, local)
                if len(set(s.names)) != len(s.names):
                    self.error("a name is repeated in this pattern", s.span)
                local.update(s.names)
            elif isinstance(s, A.Update):
                self.expr(s.value, local)
                if s.name not in states:
                    self.error(f"'update {s.name}' needs a state declared before it: state {s.name} : T ~ init",
                               s.span)
                elif s.name in updated:
                    self.error(f"state '{s.name}' is updated twice; give it one update", s.span)
                updated.add(s.name)
            else:
                if s.state:
                    states.add(s.name)
                if d.params is None:
                    kw = "state" if s.state else "param"
                    self.error(
                        f"'{kw} {s.name}' needs a pointful definition: give '{d.name}' named inputs, "
                        f"e.g. def {d.name}(x : f32[B, n]) {{ ... }}",
                        s.span,
                    )
                if s.name in local:
                    self.error(f"{'state' if s.state else 'parameter'} '{s.name}' has the name of another input or variable", s.span)
                self.type_(s.type)
                if s.init is not None:
                    if s.init not in INITS:
                        self.error(f"unknown initialiser '{s.init}'{did_you_mean(s.init, INITS)}", s.init_span)
                    for _, v in s.init_args:
                        if not isinstance(v, (A.Num, A.UnOp)):
                            self.error("initialiser arguments must be numbers", getattr(v, "span", s.span))
                local.add(s.name)
        self.expr(d.result, local)

    def type_(self, t) -> None:
        if isinstance(t, A.ProductTypeExpr):
            for x in t.items:
                self.type_(x)
        elif t.dtype not in DTYPES and t.dtype != "float":
            self.error(f"unknown dtype '{t.dtype}'{did_you_mean(t.dtype, [*DTYPES, 'float'])}; the dtypes are "
                       + ", ".join(DTYPES) + " and the variable float",
                       t.span)

    # -- expressions ------------------------------------------------------------------
    def expr(self, e, local) -> None:
        if isinstance(e, A.Var):
            e.ref = self.lookup(e.name, e.span, local)
        elif isinstance(e, A.BinOp):
            self.expr(e.left, local)
            self.expr(e.right, local)
        elif isinstance(e, A.UnOp):
            self.expr(e.arg, local)
        elif isinstance(e, A.Tuple):
            for x in e.items:
                self.expr(x, local)
        elif isinstance(e, A.List):
            for x in e.items:
                self.attr(x, local)
        elif isinstance(e, A.Inst):
            self.expr(e.fn, local)
        elif isinstance(e, A.Call):
            self.expr(e.fn, local)
            for x in e.args:
                self.expr(x, local)
            for _, v in e.kwargs:
                self.attr(v, local)

    def attr(self, e, local) -> None:
        """An op attribute: numbers, strings, lists, dtypes, dimension names, types, and
        integer arithmetic on them (``stop=i + 1``)."""
        if isinstance(e, A.Var) and "." not in e.name and e.name not in local:
            e.ref = ("attr", e.name)
        elif isinstance(e, A.Inst) and isinstance(e.fn, A.Var) and (e.fn.name in DTYPES or e.fn.name == "float"):
            e.fn.ref = ("attr", e.fn.name)
        elif isinstance(e, A.List):
            for x in e.items:
                self.attr(x, local)
        elif isinstance(e, A.BinOp) and e.op in ATTR_ARITH:
            self.attr(e.left, local)
            self.attr(e.right, local)
        else:
            self.expr(e, local)

    def lookup(self, name: str, span, local):
        if name in local:
            return ("local", name)
        if name in self.fparams:
            return ("fparam", name)
        if name in self.scope.defs:
            return ("def", self.scope, self.scope.defs[name])
        if "." in name:
            head, rest = name.split(".", 1)
            if head in self.scope.imports:
                other = self.scope.imports[head]
                if other is None:  # the import itself failed (already reported)
                    self._failed = True
                    return None
                if rest in other.defs:
                    return ("def", other, other.defs[rest])
                self.error(f"module '{head}' has no definition '{rest}'{did_you_mean(rest, other.defs)}", span)
                return None
        if name in STRUCT:
            return ("struct", name)
        if name in MODES:
            return ("mode", name)
        if name in OP_ALIASES or name in PRIMITIVES:
            return ("op", OP_ALIASES.get(name, name))
        self.unknown = getattr(self, "unknown", 0) + 1
        if self.unknown > MAX_SUGGESTIONS:  # each suggestion scans every name: keep the total linear
            self.error(f"unknown name '{name}'", span)
            return None
        candidates = [*local, *self.fparams, *self.scope.defs, *builtin_names()]
        for alias, other in self.scope.imports.items():
            if other is not None:
                candidates += [f"{alias}.{n}" for n in other.defs]
        hint = did_you_mean(name, candidates)
        if not hint and "." not in name:
            for alias, other in self.scope.imports.items():
                if other is not None and name in other.defs:
                    hint = f" (did you mean '{alias}.{name}'?)"
                    break
        if not hint and "." in name and name.split(".", 1)[0] in prelude_names():
            hint = f" (module '{name.split('.', 1)[0]}' is not imported: add `import {name.split('.', 1)[0]}`)"
        self.error(f"unknown name '{name}'{hint}", span)
        return None


def _walk(d: A.Def):
    """Every expression node of a definition (iteratively: chains may be very long)."""
    todo = [s.value for s in d.stmts if isinstance(s, (A.Let, A.Update))] + [d.result]
    while todo:
        e = todo.pop()
        yield e
        if isinstance(e, A.BinOp):
            todo += (e.left, e.right)
        elif isinstance(e, A.UnOp):
            todo.append(e.arg)
        elif isinstance(e, (A.Tuple, A.List)):
            todo += e.items
        elif isinstance(e, A.Inst):
            todo.append(e.fn)
        elif isinstance(e, A.Call):
            todo.append(e.fn)
            todo += e.args
            todo += [v for _, v in e.kwargs]
