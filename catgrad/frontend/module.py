"""The result of loading a ``.cat`` file: a module of elaborated definitions.

``module["name"]`` is a :class:`~catgrad.Diagram`, or a :class:`~catgrad.Para`
when the definition (or anything it uses) declares ``param``\\ s. Any expression
in the module's scope also works: ``module["dense[4, 20](relu)"]``.
"""

from __future__ import annotations

from ..calculus.para import Para
from ..core.diagram import Diagram
from ..errors import CatgradError
from . import ast as A
from .checker import CatError, DefMorph, Poisoned
from .diagnostics import FrontendError
from .loader import check_text, read_source, run_deep
from .parser import SyntaxDiagnostic, parse_expr
from .printer import type_str


class Module:
    """Definitions of one ``.cat`` file, elaborated on demand (and cached)."""

    def __init__(self, session, scope):
        self._session, self._scope = session, scope
        self.path = scope.path
        self._cache: dict = {}

    # -- the mapping ----------------------------------------------------------------------
    def __contains__(self, name) -> bool:
        return name in self._scope.defs

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._scope.defs)

    def names(self) -> list:
        return list(self._scope.defs)

    keys = names

    def definition(self, name: str) -> A.Def:
        try:
            return self._scope.defs[name]
        except KeyError:
            from ..errors import did_you_mean

            raise CatgradError(f"{self.path} has no definition '{name}'{did_you_mean(name, self._scope.defs)}") from None

    def doc(self, name: str) -> str:
        return self.definition(name).doc

    def __getitem__(self, name: str):
        if name in self._cache:
            return self._cache[name]
        if name in self._scope.defs:
            d = self._scope.defs[name]
            ck = self._session.checker
            inst = run_deep(ck.check_def, self._scope, d)
            if inst is None:
                raise CatgradError(self._why_not(d))
            m = DefMorph(self._scope, d, tuple(d.dims) if d.dims else None, None)
        elif isinstance(name, str) and name.isidentifier():
            self.definition(name)  # raises: no such definition (did you mean ...)
        else:
            if not isinstance(name, str):
                raise CatgradError(f"definitions are looked up by name (a str), got {type(name).__name__}")
            inst, m = self._expression(name)
        # a definition with state or train_eval is elaborated again for evaluation
        out = _wrap(inst, self._evaluation(m, inst) if inst.modal else None)
        self._cache[name] = out
        return out

    def _evaluation(self, m, inst):
        """The evaluation form of the definition ``m``, elaborated at ``inst``'s input type."""
        ck = self._session.checker
        n_before = len(ck.diags)
        try:
            ev = run_deep(ck.eval_instance, m, inst.dom)
        except CatError as e:
            raise FrontendError([e.diagnostic], self._session.sources) from None
        except Poisoned:
            ev = None
        if len(ck.diags) != n_before:
            raise FrontendError(ck.diags[n_before:], self._session.sources)
        if ev is None:
            raise CatgradError(f"the evaluation form of {m.d.name!r} has errors")
        return ev

    def _why_not(self, d: A.Def) -> str:
        if d.fparams:
            return (f"'{d.name}' takes morphism argument(s) ({', '.join(d.fparams)}); "
                    f"ask for an instance, e.g. module[\"{d.name}(relu)\"]")
        if d.params is None and d.dom is None:
            return (f"'{d.name}' is polymorphic: its input type is fixed where it is used; "
                    f"give it a signature (def {d.name} : A -> B = ...) to use it on its own")
        return f"'{d.name}' has errors"

    def _expression(self, text: str):
        return run_deep(self._expression_deep, text)

    def _expression_deep(self, text: str):
        ck = self._session.checker
        try:
            expr = parse_expr(text)
            from .resolver import Resolver

            r = Resolver(self._scope)
            r.diags = diags = []
            r.fparams = set()
            r._failed = False
            r.expr(expr, set())
            if diags:
                raise FrontendError(diags, {"<expr>": f"def __expr__ = {text}\n"})
            from .checker import Body

            dummy = A.Def("__expr__", (), (), None, None, None, (), expr, False)
            m = ck.morph(Body(dummy, self._scope, {}, {}), expr)
            dom = m.dom_hint(ck)
            if dom is None:
                raise CatgradError(f"cannot tell the input type of {text!r}; use it inside a definition with a signature")
            wrapper = A.Def("__expr__", (), (), None, None, None, (), expr, False)
            n_before = len(ck.diags)
            inst = ck.instance(DefMorph(self._scope, wrapper), dom, None)
            if len(ck.diags) != n_before:
                raise FrontendError(ck.diags[n_before:], self._session.sources)
            return inst, DefMorph(self._scope, wrapper)
        except SyntaxDiagnostic as e:
            raise CatgradError(f"{text!r} is neither a definition of {self.path} nor an expression: "
                               f"{e.diagnostic.message}") from None
        except CatError as e:
            raise FrontendError([e.diagnostic], self._session.sources) from None
        except Poisoned:
            raise CatgradError(f"{text!r} uses a definition with errors") from None

    def loss(self, name: str):
        """The definition ``name``, a map ``(label, prediction) -> loss``, as a loss for
        ``cg.compile(..., loss=module.loss(name))``: it is instantiated at the model's output
        type when the step is built, so ``def l(y : f32[B, n], p : f32[B, n]) -> f32[]``
        serves every batch size and width."""
        from ..core.types import Ob
        from ..loss import from_diagram

        d = self.definition(name)
        if d.params is None or len(d.params) != 2:
            raise CatgradError(f"{self.path}: '{name}' is not a loss: a loss takes two inputs (label, prediction),"
                               f" as in def {name}(y : f32[B, n], p : f32[B, n]) -> f32[]")

        def make(pred_type):
            ob = Ob(pred_type, pred_type)
            try:
                inst = self._session.checker.instance(DefMorph(self._scope, d), ob, None)
            except CatError as e:
                raise FrontendError([e.diagnostic], self._session.sources) from None
            except Poisoned:
                raise CatgradError(f"'{name}' uses a definition with errors") from None
            if inst.params:
                raise CatgradError(f"{self.path}: the loss '{name}' declares parameters; a loss may not learn")
            if inst.modal:
                raise CatgradError(f"{self.path}: the loss '{name}' keeps state or uses train_eval; a loss is one map")
            return from_diagram(Diagram(inst.graph), name)

        make.__name__ = make.__qualname__ = name
        return make

    # -- descriptions ---------------------------------------------------------------------
    def signature(self, name: str) -> str:
        """The elaborated type ``A -> B`` (with ``P ⊗`` parameters shown separately)."""
        d = self.definition(name)
        inst = self._session.checker.check_def(self._scope, d)
        if inst is None:
            if d.fparams:
                return f"higher-order: takes morphism(s) ({', '.join(d.fparams)})"
            if d.params is None and d.dom is None:
                return "polymorphic"
            if id(d) in self._session.checker.deferred:
                return f"{self.declared(name)}   (generic: checked where used)"
            return "<error>"
        return f"{inst.dom} -> {inst.cod}"

    def has_params(self, name: str) -> bool:
        inst = self._session.checker.check_def(self._scope, self.definition(name))
        return bool(inst is not None and inst.params)

    def is_modal(self, name: str) -> bool:
        """Whether the definition has state or differs between training and evaluation."""
        inst = self._session.checker.check_def(self._scope, self.definition(name))
        return bool(inst is not None and inst.modal)

    def has_state(self, name: str) -> bool:
        inst = self._session.checker.check_def(self._scope, self.definition(name))
        return bool(inst is not None and inst.state)

    def declared(self, name: str) -> str:
        """The signature as written in the source."""
        d = self.definition(name)
        if d.params is not None:
            s = "(" + ", ".join(f"{p.name} : {type_str(p.type)}" for p in d.params) + ")"
            return s + (f" -> {type_str(d.cod)}" if d.cod is not None else "")
        if d.dom is not None:
            return f"{type_str(d.dom)} -> {type_str(d.cod)}"
        return ""

    def __repr__(self) -> str:
        return f"<catgrad module {self.path}: {', '.join(self.names())}>"


def _wrap(inst, evaluation=None):
    body = Diagram(inst.graph)
    if evaluation is not None:  # it has state, or differs between training and evaluation
        from ..calculus.stateful import Stateful

        return Stateful(inst.params, inst.state, body, Diagram(evaluation.graph))
    if inst.params:
        return Para(inst.params, body)
    return body


def _finish(session, scope) -> Module:
    if session.diagnostics:
        raise FrontendError(session.diagnostics, session.sources)
    return Module(session, scope)


def loads(source: str, name: str = "<string>") -> Module:
    """Parse, check and elaborate ``.cat`` source text. Raises
    :class:`~catgrad.frontend.diagnostics.FrontendError` (a CatgradError) listing every error."""
    if not isinstance(source, str):
        raise CatgradError(f"loads expects the program text as a str, got {type(source).__name__}")
    session, scope = check_text(source, name)
    return _finish(session, scope)


def load(path) -> Module:
    """Load a ``.cat`` file (its imports are found relative to it, or in the prelude)."""
    text = read_source(path)
    session, scope = check_text(text, str(path))
    return _finish(session, scope)


def check_source(text: str, path: str = "<string>"):
    """All diagnostics for ``text`` (an empty list when it is well-typed), and the
    source texts needed to render them."""
    session, _ = check_text(text, path)
    return session.diagnostics, session.sources
