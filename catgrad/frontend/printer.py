"""The pretty-printer: AST -> ``.cat`` source.

``parse(pretty(m)) == m`` for every module ``m`` (spans aside): the printer adds
parentheses exactly where precedence or associativity needs them, so no
information is lost. Doc comments are printed as ``##`` lines above their
definition.
"""

from __future__ import annotations

import json

from . import ast as A

# binding strength: higher binds tighter; all binary operators are left-associative except **
_PREC = {">>": 1, "|": 2, "^": 3, "&": 4, "+": 5, "-": 5, "*": 6, "/": 6, "@": 6, "**": 8}
_UNARY = 7
_ATOM = 10


def type_str(t) -> str:
    if isinstance(t, A.ProductTypeExpr):
        return "(" + ", ".join(type_str(x) for x in t.items) + ")"
    return f"{t.dtype}[{', '.join(str(d) for d in t.dims)}]"


def _num(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    r = repr(float(v))
    if r in ("inf", "nan", "-inf"):
        return "1e999" if r == "inf" else r  # not produced by the parser except via 1e999
    return r


def _prec(e) -> int:
    if isinstance(e, A.BinOp):
        return _PREC[e.op]
    if isinstance(e, A.UnOp):
        return _UNARY
    if isinstance(e, A.Num) and (isinstance(e.value, (int, float)) and e.value < 0):
        return _UNARY
    return _ATOM


def expr_str(e, need: int = 0) -> str:
    s = _expr(e)
    return f"({s})" if _prec(e) < need else s


def _expr(e) -> str:
    if isinstance(e, A.Var):
        return e.name
    if isinstance(e, A.Num):
        return _num(e.value)
    if isinstance(e, A.Str):
        return json.dumps(e.value)
    if isinstance(e, A.Bool):
        return "true" if e.value else "false"
    if isinstance(e, A.Tuple):
        if len(e.items) == 1:
            return f"({expr_str(e.items[0])},)"
        return "(" + ", ".join(expr_str(x) for x in e.items) + ")"
    if isinstance(e, A.List):
        return "[" + ", ".join(expr_str(x) for x in e.items) + "]"
    if isinstance(e, A.BinOp):
        p = _PREC[e.op]
        if e.op == "**":  # right-associative; the base is a postfix expression
            return f"{expr_str(e.left, _ATOM)} ** {expr_str(e.right, _UNARY)}"
        return f"{expr_str(e.left, p)} {e.op} {expr_str(e.right, p + 1)}"
    if isinstance(e, A.UnOp):
        return f"{e.op}{expr_str(e.arg, _UNARY)}"
    if isinstance(e, A.Inst):
        return f"{expr_str(e.fn, _ATOM)}[{', '.join(str(d) for d in e.dims)}]"
    if isinstance(e, A.Call):
        args = [expr_str(a) for a in e.args] + [f"{k}={expr_str(v)}" for k, v in e.kwargs]
        return f"{expr_str(e.fn, _ATOM)}({', '.join(args)})"
    raise TypeError(f"cannot print {e!r}")


def _stmt(s) -> str:
    if isinstance(s, A.Let):
        pat = s.names[0] if not s.tuple_pattern else "(" + ", ".join(s.names) + ("," if len(s.names) == 1 else "") + ")"
        return f"let {pat} = {expr_str(s.value)}"
    if isinstance(s, A.Update):
        return f"update {s.name} = {expr_str(s.value)}"
    out = f"{'state' if s.state else 'param'} {s.name} : {type_str(s.type)}"
    if s.init is not None:
        out += f" ~ {s.init}"
        if s.init_args:
            out += "(" + ", ".join((f"{k}={expr_str(v)}" if k else expr_str(v)) for k, v in s.init_args) + ")"
    return out


def def_str(d: A.Def) -> str:
    lines = [f"## {line}" if line else "##" for line in d.doc.split("\n")] if d.doc else []
    head = f"def {d.name}"
    if d.dims:
        head += "[" + ", ".join(d.dims) + "]"
    if d.fparams:
        head += "(" + ", ".join(d.fparams) + ")"
    if d.params is not None:
        head += "(" + ", ".join(f"{p.name} : {type_str(p.type)}" for p in d.params) + ")"
        if d.cod is not None:
            head += f" -> {type_str(d.cod)}"
    elif d.dom is not None:
        head += f" : {type_str(d.dom)} -> {type_str(d.cod)}"
    elif d.cod is not None:
        head += f" -> {type_str(d.cod)}"
    if d.block:
        body = [f"  {_stmt(s)}" for s in d.stmts] + [f"  {expr_str(d.result)}"]
        lines.append(head + " {")
        lines += body
        lines.append("}")
    else:
        lines.append(f"{head} = {expr_str(d.result)}")
    return "\n".join(lines)


def pretty(m: A.Module) -> str:
    out = []
    for i in m.imports:
        if i.is_path:
            out.append(f"import {json.dumps(i.module)} as {i.alias}")
        else:
            out.append(f"import {i.module}" + (f" as {i.alias}" if i.alias else ""))
    if out:
        out.append("")
    for d in m.defs:
        out.append(def_str(d))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
