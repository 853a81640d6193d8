"""The typed AST of ``.cat`` programs: what the four front-end stages pass along.

Every node carries a :class:`~catgrad.frontend.diagnostics.Span` (file, line,
column, end) so any later stage can point at the source. Spans are excluded from
equality, so ``parse(pretty(ast)) == ast`` compares structure only. The resolver
fills ``Var.ref`` (what a name denotes) and the checker fills ``Expr.type``; both
are also excluded from equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .diagnostics import Span

NOSPAN = Span("<none>", 1, 1, 1, 1)


def _span():
    return field(default=NOSPAN, compare=False, repr=False)


# -- types ------------------------------------------------------------------------------


@dataclass
class TensorTypeExpr:
    """``dtype[d1, ..., dk]``; each dim an int or a name."""

    dtype: str
    dims: tuple
    span: Span = _span()


@dataclass
class ProductTypeExpr:
    """``(T1, ..., Tn)``: the monoidal product (nested products flatten)."""

    items: tuple
    span: Span = _span()


TypeExpr = Union[TensorTypeExpr, ProductTypeExpr]


# -- expressions ------------------------------------------------------------------------


@dataclass
class Expr:
    def __post_init__(self):
        self.type = None  # filled by the checker (an Ob for values)


@dataclass
class Var(Expr):
    """A possibly qualified name ``a`` or ``nn.dense``."""

    name: str
    span: Span = _span()

    def __post_init__(self):
        super().__post_init__()
        self.ref = None  # filled by the resolver


@dataclass
class Num(Expr):
    value: Union[int, float]
    span: Span = _span()


@dataclass
class Str(Expr):
    value: str
    span: Span = _span()


@dataclass
class Bool(Expr):
    value: bool
    span: Span = _span()


@dataclass
class Tuple(Expr):
    """``(a, b, ...)`` on values; ``()`` is the empty tuple."""

    items: tuple
    span: Span = _span()


@dataclass
class List(Expr):
    """``[a, b]``: only as an op attribute (axes, shapes)."""

    items: tuple
    span: Span = _span()


@dataclass
class BinOp(Expr):
    """``l op r`` with op one of ``>> | ^ & + - * / @ **``."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass
class UnOp(Expr):
    """``-x`` or ``~x``."""

    op: str
    arg: Expr
    span: Span = _span()


@dataclass
class Inst(Expr):
    """``f[4, n]``: dimension arguments of a generic definition or a structural map."""

    fn: Expr
    dims: tuple
    span: Span = _span()


@dataclass
class Call(Expr):
    """``f(a, b, k=v)``: apply to values, or pass morphisms to a higher-order definition."""

    fn: Expr
    args: tuple
    kwargs: tuple  # ((name, Expr), ...)
    span: Span = _span()


# -- statements and definitions ---------------------------------------------------------


@dataclass
class Let:
    """``let x = e`` or ``let (a, b) = e``; ``tuple_pattern`` tells them apart."""

    names: tuple
    tuple_pattern: bool
    value: Expr
    span: Span = _span()


@dataclass
class ParamDecl:
    """``param W : T ~ init(args)``."""

    name: str
    type: TypeExpr
    init: Optional[str]
    init_args: tuple  # ((name or None, Expr), ...)
    span: Span = _span()
    init_span: Span = _span()
    state: bool = False  # ``state NAME : T ~ init``: model state, not a trained parameter


@dataclass
class Update:
    """``update s = e``: the value the state ``s`` takes after a training step."""

    name: str
    value: Expr
    span: Span = _span()


@dataclass
class ValueParam:
    name: str
    type: TypeExpr
    span: Span = _span()


@dataclass
class Def:
    """A definition.

    Pointful: ``def f[dims](fparams)(x : T, ...) -> T { stmts; result }`` (``params``
    is a tuple). Point-free: ``def f[dims](fparams) : A -> B = expr`` or ``def f = expr``
    (``params`` is None; ``dom``/``cod`` hold the signature when given).
    """

    name: str
    dims: tuple
    fparams: tuple
    params: Optional[tuple]
    dom: Optional[TypeExpr]
    cod: Optional[TypeExpr]
    stmts: tuple
    result: Expr
    block: bool  # written with { } rather than =
    doc: str = ""
    span: Span = _span()
    name_span: Span = _span()

    @property
    def pointful(self) -> bool:
        return self.params is not None


@dataclass
class Import:
    """``import nn``, ``import nn as n`` or ``import "./other.cat" as o``."""

    module: str
    alias: Optional[str]
    is_path: bool
    span: Span = _span()

    @property
    def name(self) -> str:
        return self.alias or self.module


@dataclass
class Module:
    imports: tuple
    defs: tuple
    path: str = field(default="<string>", compare=False)
