"""Stage 1: text -> AST (lark, LALR(1)), with located syntax errors.

Newlines end statements, except where a statement obviously continues: inside
brackets, after an infix operator or ``=``/``,``, and before an infix operator
such as ``>>``. :class:`_Newlines` (a lark postlexer) drops those newlines, so the
grammar itself stays newline-free apart from one separator token.
"""

from __future__ import annotations

import ast as pyast

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast as A
from .diagnostics import Diagnostic, Span
from .resources import grammar_text

_CONT_AFTER = {">>", "|", "^", "&", "+", "-", "*", "/", "@", "**", "=", ",", "(", "[", "{", "~", ":", "->", ";"}
_CONT_BEFORE = {">>", "|", "^", "&", "+", "*", "/", "@", "**", "->", "}", ")", "]", "=", ","}
_OPEN, _CLOSE = {"(", "["}, {")", "]"}


class _Newlines:
    """Drop the newline tokens that cannot end an item or a statement."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth, prev, pending = 0, None, None
        for tok in stream:
            if tok.type == "_NL":
                if depth == 0 and prev is not None and prev.value not in _CONT_AFTER:
                    pending = pending or tok
                continue
            if pending is not None:
                if tok.value not in _CONT_BEFORE or tok.type == "STRING":
                    yield pending
                pending = None
            if tok.type != "STRING":
                if tok.value in _OPEN:
                    depth += 1
                elif tok.value in _CLOSE and depth > 0:
                    depth -= 1
            prev = tok
            yield tok


_comments: list = []
_PARSER = None


def _parser() -> Lark:
    """The plain parser (parse trees); used for error reporting and as the benchmark's peer."""
    global _PARSER
    if _PARSER is None:
        _PARSER = _make(None)
    return _PARSER


def _make(transformer) -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        postlex=_Newlines(),
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _comments.append},
        transformer=transformer,
    )


MAX_INT = 2**62


class SyntaxDiagnostic(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _tok_span(path, t: Token) -> Span:
    end_line = t.end_line if t.end_line is not None else t.line
    end_col = t.end_column if t.end_column is not None else t.column + len(t.value)
    return Span(path, t.line, t.column, end_line, end_col)


class _ToAST(Transformer):
    __visit_tokens__ = False  # tokens are read where they are used

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return A.NOSPAN
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    # -- module -------------------------------------------------------------------
    def start(self, children):
        imports = tuple(c for c in children if isinstance(c, A.Import))
        defs = tuple(c for c in children if isinstance(c, A.Def))
        return A.Module(imports, defs, path=self.path)

    @v_args(meta=True)
    def import_prelude(self, meta, ch):
        return A.Import(str(ch[0]), str(ch[1]) if ch[1] is not None else None, False, self._span(meta))

    @v_args(meta=True)
    def import_path(self, meta, ch):
        return A.Import(_string(ch[0], self.path), str(ch[1]), True, self._span(meta))

    # -- definitions --------------------------------------------------------------
    @v_args(meta=True)
    def def_pointful(self, meta, ch):
        name, dims, fparams, vparams, ret, body = ch
        stmts, result, block = body
        if vparams is None:  # no value parameters: a point-free definition
            params = None
        else:
            params = vparams
        return A.Def(
            str(name), dims or (), fparams or (), params, None, ret, stmts, result, block,
            span=self._span(meta), name_span=_tok_span(self.path, name),
        )

    @v_args(meta=True)
    def def_signed(self, meta, ch):
        name, dims, fparams, dom, cod, body = ch
        stmts, result, block = body
        return A.Def(
            str(name), dims or (), fparams or (), None, dom, cod, stmts, result, block,
            span=self._span(meta), name_span=_tok_span(self.path, name),
        )

    def dimparams(self, ch):
        return tuple(str(c) for c in ch)

    def fparams(self, ch):
        return tuple(str(c) for c in ch)

    def vparams(self, ch):
        return tuple(c for c in ch if c is not None)

    @v_args(meta=True)
    def vparam(self, meta, ch):
        return A.ValueParam(str(ch[0]), ch[1], self._span(meta))

    def ret(self, ch):
        return ch[0]

    def body_expr(self, ch):
        return (), ch[0], False

    def body_block(self, ch):
        return tuple(ch[:-1]), ch[-1], True

    @v_args(meta=True)
    def let_(self, meta, ch):
        names, is_tuple = ch[0]
        return A.Let(names, is_tuple, ch[1], self._span(meta))

    def pat_name(self, ch):
        return (str(ch[0]),), False

    def pat_tuple(self, ch):
        return tuple(str(c) for c in ch if c is not None), True

    @v_args(meta=True)
    def param_(self, meta, ch):
        name, type_, init = ch
        if init is None:
            return A.ParamDecl(str(name), type_, None, (), self._span(meta))
        iname, iargs, ispan = init
        return A.ParamDecl(str(name), type_, iname, iargs, self._span(meta), ispan)

    @v_args(meta=True)
    def state_(self, meta, ch):
        d = self.param_(meta, ch)
        d.state = True
        return d

    @v_args(meta=True)
    def update_(self, meta, ch):
        return A.Update(str(ch[0]), ch[1], self._span(meta))

    @v_args(meta=True)
    def init(self, meta, ch):
        args = tuple(a for a in ch[1:] if a is not None)
        return str(ch[0]), tuple((k, v) for k, v in args), self._span(meta)

    # -- types --------------------------------------------------------------------
    @v_args(meta=True)
    def tensor_type(self, meta, ch):
        return A.TensorTypeExpr(str(ch[0]), tuple(c for c in ch[1:] if c is not None), self._span(meta))

    @v_args(meta=True)
    def product_type(self, meta, ch):
        return A.ProductTypeExpr(tuple(c for c in ch if c is not None), self._span(meta))

    def dim_int(self, ch):
        return self._int(ch[0])

    def _int(self, tok) -> int:
        """An integer literal; beyond 2^62 it is refused where it is written (it could not
        be a size, and Python would refuse to convert 4,300 digits and more)."""
        if len(tok.value) > 19 or int(tok.value) > MAX_INT:
            raise SyntaxDiagnostic(Diagnostic(
                f"the integer {tok.value[:20]}{'...' if len(tok.value) > 20 else ''} is too large (at most 2^62)",
                _tok_span(self.path, tok)))
        return int(tok.value)

    def dim_name(self, ch):
        return str(ch[0])

    # -- expressions ----------------------------------------------------------------
    def _bin(op):
        @v_args(meta=True)
        def f(self, meta, ch):
            return A.BinOp(op, ch[0], ch[1], self._span(meta))

        return f

    pow = _bin("**")

    def expr(self, ch):
        """An infix chain ``a op b op c ...``, grouped by precedence (all left-associative)."""
        operands, ops = [ch[0]], []

        def reduce():
            r, l = operands.pop(), operands.pop()
            op = ops.pop()
            operands.append(A.BinOp(op, l, r, _join(l.span, r.span)))

        for i in range(1, len(ch), 2):
            op = str(ch[i])
            while ops and _PREC[ops[-1]] >= _PREC[op]:
                reduce()
            ops.append(op)
            operands.append(ch[i + 1])
        while ops:
            reduce()
        return operands[0]

    @v_args(meta=True)
    def neg(self, meta, ch):
        return A.UnOp("-", ch[0], self._span(meta))

    @v_args(meta=True)
    def bnot(self, meta, ch):
        return A.UnOp("~", ch[0], self._span(meta))

    @v_args(meta=True)
    def call(self, meta, ch):
        fn, args = ch[0], [a for a in ch[1:] if a is not None]
        pos = tuple(v for k, v in args if k is None)
        kw = tuple((k, v) for k, v in args if k is not None)
        return A.Call(fn, pos, kw, self._span(meta))

    @v_args(meta=True)
    def inst(self, meta, ch):
        return A.Inst(ch[0], tuple(c for c in ch[1:] if c is not None), self._span(meta))

    def arg_pos(self, ch):
        return None, ch[0]

    def arg_kw(self, ch):
        return str(ch[0]), ch[1]

    @v_args(meta=True)
    def qualname(self, meta, ch):
        return A.Var(".".join(str(c) for c in ch), self._span(meta))

    @v_args(meta=True)
    def int(self, meta, ch):
        return A.Num(self._int(ch[0]), self._span(meta))

    @v_args(meta=True)
    def float(self, meta, ch):
        return A.Num(float(ch[0]), self._span(meta))

    @v_args(meta=True)
    def string(self, meta, ch):
        return A.Str(_string(ch[0], self.path), self._span(meta))

    @v_args(meta=True)
    def true(self, meta, ch):
        return A.Bool(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta, ch):
        return A.Bool(False, self._span(meta))

    @v_args(meta=True)
    def unit(self, meta, ch):
        return A.Tuple((), self._span(meta))

    @v_args(meta=True)
    def tuple(self, meta, ch):
        return A.Tuple(tuple(c for c in ch if c is not None), self._span(meta))

    @v_args(meta=True)
    def list(self, meta, ch):
        return A.List(tuple(c for c in ch if c is not None), self._span(meta))


_PREC = {">>": 1, "|": 2, "^": 3, "&": 4, "+": 5, "-": 5, "*": 6, "/": 6, "@": 6}


def _join(a: Span, b: Span) -> Span:
    return Span(a.path, a.line, a.col, b.end_line, b.end_col)


def _string(tok: Token, path: str) -> str:
    try:
        return pyast.literal_eval(str(tok))
    except (ValueError, SyntaxError):
        raise SyntaxDiagnostic(Diagnostic(f"malformed string literal {tok}", _tok_span(path, tok))) from None


# -- syntax errors in words -------------------------------------------------------------

_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string", "_NL": "a new line",
    "$END": "end of file", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "EQUAL": "'='", "COLON": "':'", "SEMICOLON": "';'",
}


def _word(term: str, parser: Lark) -> str:
    if term in _WORDS:
        return _WORDS[term]
    try:
        pattern = parser.get_terminal(term).pattern
        if pattern.type == "str":
            return repr(pattern.value).replace('"', "'")
    except KeyError:
        pass
    return term.lower()


def _expected(terms, parser) -> str:
    words = sorted({_word(t, parser) for t in terms})
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["..."]
    return "; expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    return f"{tok.value!r}".replace('"', "'") if tok.type != "STRING" else "a string"


def _end_span(text: str, path: str) -> Span:
    lines = text.rstrip().split("\n")
    line = len(lines)
    col = len(lines[-1].rstrip("\r")) + 1
    return Span(path, line, col, line, col + 1)


def _unclosed_brace(text: str, path: str):
    """The span of the last '{' that no '}' closes (comments and strings skipped), or None."""
    stack, line, col, i = [], 1, 1, 0
    while i < len(text):
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
            continue
        if c == '"':
            j = text.find('"', i + 1)
            j = len(text) if j < 0 else j
            col += j - i
            i = j
        elif c == "{":
            stack.append((line, col))
        elif c == "}" and stack:
            stack.pop()
        if c == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    if not stack:
        return None
    ln, cl = stack[-1]
    return Span(path, ln, cl, ln, cl + 1)


def _syntax_diagnostic(e: UnexpectedInput, path: str, parser: Lark, text: str) -> Diagnostic:
    expected = {_word(t, parser) for t in getattr(e, "expected", None) or ()}
    at_end = isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END")
    if at_end and "'}'" in expected:
        brace = _unclosed_brace(text, path)
        if brace is not None:
            return Diagnostic(f"this '{{' (line {brace.line}) is never closed: the file ends inside the definition's"
                              " body; add '}' after its last line", brace)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END" or tok.line is None:
            span = _end_span(text, path)
        else:
            span = _tok_span(path, tok)
        if tok.value == "param" and "'def'" in expected:
            return Diagnostic("'param' declares a parameter of a definition, so it goes inside a definition's body:"
                              " def f(x : f32[B, 4]) -> f32[B, 3] { param W : f32[4, 3] ~ glorot; x @ W }", span)
        msg = f"syntax error: unexpected {_describe(tok)}{_expected(e.expected, parser)}"
        return Diagnostic(msg, span)
    if isinstance(e, UnexpectedCharacters):
        span = Span(path, e.line, e.column, e.line, e.column + 1)
        return Diagnostic(f"syntax error: unexpected character {e.char!r}".replace('"', "'"), span)
    if isinstance(e, UnexpectedEOF):
        return Diagnostic(f"syntax error: unexpected end of file{_expected(e.expected, parser)}", _end_span(text, path))
    return Diagnostic(f"syntax error: {e}", None)


def _attach_docs(module: A.Module, comments: list) -> None:
    docs = {}
    for c in comments:
        if c.value.startswith("##"):
            docs[c.line] = c.value[2:][1:] if c.value[2:3] == " " else c.value[2:]
    if not docs:
        return
    for d in module.defs:
        line, lines = d.span.line - 1, []
        while line in docs:
            lines.append(docs[line])
            line -= 1
        d.doc = "\n".join(reversed(lines))


def parse(text: str, path: str = "<string>") -> A.Module:
    """Parse a whole file. Raises :class:`SyntaxDiagnostic` on the first syntax error."""
    parser = _parser()
    _comments.clear()
    try:
        tree = parser.parse(text)
    except UnexpectedInput as e:
        raise SyntaxDiagnostic(_syntax_diagnostic(e, path, parser, text)) from None
    comments = list(_comments)
    try:
        module = _ToAST(path).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SyntaxDiagnostic):
            raise e.orig_exc from None
        raise
    _attach_docs(module, comments)
    return module


def parse_expr(text: str, path: str = "<expr>") -> A.Expr:
    """Parse a single expression (used by ``module["dense[4, 20]"]``)."""
    module = parse(f"def __expr__ = {text}\n", path)
    if len(module.defs) != 1 or module.imports:
        raise SyntaxDiagnostic(Diagnostic(f"not a single expression: {text!r}", None))
    return module.defs[0].result
