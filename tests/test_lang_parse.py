"""Parsing and printing: pretty-print then parse gives an equal AST (hypothesis on
generated ASTs, and every example and prelude module); examples and the prelude
type-check; syntax errors are located and worded."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from catgrad.frontend import ast as A
from catgrad.frontend import check_source, parse, pretty
from catgrad.frontend.parser import SyntaxDiagnostic
from catgrad.frontend.resources import lang_root, prelude_names

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(ROOT.glob("examples/*.cat")) + sorted((ROOT / "lang" / "prelude").glob("*.cat"))
KEYWORDS = {"def", "let", "param", "import", "as", "true", "false"}

names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
dims = st.one_of(st.integers(0, 64), names)
tensor_types = st.builds(lambda d, ds: A.TensorTypeExpr(d, tuple(ds)), st.sampled_from(["f32", "f64", "bit", "i64"]),
                         st.lists(dims, max_size=3))
types = st.one_of(tensor_types, st.builds(lambda ts: A.ProductTypeExpr(tuple(ts)), st.lists(tensor_types, max_size=3)))
numbers = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False, allow_infinity=False))


def _exprs():
    leaves = st.one_of(
        st.builds(A.Var, st.one_of(names, st.builds(lambda a, b: f"{a}.{b}", names, names))),
        st.builds(A.Num, numbers),
        st.builds(A.Str, st.text(st.characters(codec="ascii", exclude_characters='"\\\n'), max_size=5)),
        st.builds(A.Bool, st.booleans()),
    )

    def extend(sub):
        return st.one_of(
            st.builds(A.BinOp, st.sampled_from([">>", "|", "^", "&", "+", "-", "*", "/", "@", "**"]), sub, sub),
            st.builds(A.UnOp, st.sampled_from(["-", "~"]), sub),
            st.builds(lambda xs: A.Tuple(tuple(xs)), st.one_of(st.just([]), st.lists(sub, min_size=2, max_size=3),
                                                               st.lists(sub, min_size=1, max_size=1))),
            st.builds(lambda xs: A.List(tuple(xs)), st.lists(sub, max_size=3)),
            st.builds(lambda f, ds: A.Inst(f, tuple(ds)), sub, st.lists(dims, min_size=1, max_size=3)),
            st.builds(lambda f, xs, kw: A.Call(f, tuple(xs), tuple(kw)), sub, st.lists(sub, max_size=3),
                      st.lists(st.tuples(names, sub), max_size=2)),
        )

    return st.recursive(leaves, extend, max_leaves=12)


exprs = _exprs()
stmts = st.one_of(
    st.builds(lambda n, e: A.Let((n,), False, e), names, exprs),
    st.builds(lambda ns, e: A.Let(tuple(ns), True, e), st.lists(names, min_size=1, max_size=3, unique=True), exprs),
    st.builds(lambda n, t, i, a: A.ParamDecl(n, t, i, tuple((None, A.Num(x)) for x in a) if i else ()),
              names, tensor_types, st.one_of(st.none(), names), st.lists(numbers, max_size=2)),
)


@st.composite
def defs(draw):
    pointful = draw(st.booleans())
    block = draw(st.booleans())
    params = tuple(draw(st.lists(st.builds(A.ValueParam, names, types), max_size=3))) if pointful else None
    signed = not pointful and draw(st.booleans())
    return A.Def(
        name=draw(names),
        dims=tuple(draw(st.lists(names, max_size=2))),
        fparams=tuple(draw(st.lists(names, max_size=2))),
        params=params,
        dom=draw(types) if signed else None,
        cod=draw(st.one_of(st.none(), types)) if not signed else draw(types),
        stmts=tuple(draw(st.lists(stmts, max_size=3))) if block else (),
        result=draw(exprs),
        block=block,
        doc=draw(st.sampled_from(["", "one line", "two\nlines"])),
    )


modules = st.builds(
    lambda imps, ds: A.Module(tuple(imps), tuple(ds)),
    st.lists(st.one_of(st.builds(lambda n, a: A.Import(n, a, False), names, st.one_of(st.none(), names)),
                       st.builds(lambda p, a: A.Import(p, a, True), st.sampled_from(["./a.cat", "../b c.cat"]), names)),
             max_size=2),
    st.lists(defs(), max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
def test_print_then_parse_is_the_identity_on_asts(m):
    text = pretty(m)
    assert parse(text) == m, text


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_examples_and_prelude_round_trip(path):
    m = parse(path.read_text(), str(path))
    assert parse(pretty(m)) == m
    assert pretty(parse(pretty(m))) == pretty(m)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_examples_and_prelude_type_check(path):
    diags, sources = check_source(path.read_text(), str(path))
    assert diags == []


def test_the_prelude_is_found_through_the_package_data():
    assert {"nn", "loss", "circuits"} <= set(prelude_names())
    assert lang_root().joinpath("REFERENCE.md").is_file()


def test_newlines_continue_statements_where_they_must():
    src = "def f(x : f32[3],\n      y : f32[3]) =\n  x\n  + y\ndef g = exp\n  >> sin\n"
    m = parse(src)
    assert [d.name for d in m.defs] == ["f", "g"]
    assert m.defs[0].result == A.BinOp("+", A.Var("x"), A.Var("y"))
    # a tuple on the line after a let is a new statement, not a call
    m = parse("def h(x : f32[3]) {\n  let y = x\n  (y, y)\n}\n")
    assert isinstance(m.defs[0].result, A.Tuple) and len(m.defs[0].stmts) == 1


def test_doc_comments_attach_to_the_next_definition():
    m = parse("# plain comment\n## first\n## second\ndef f = exp\n\n## not attached\n\ndef g = sin\n")
    assert m.defs[0].doc == "first\nsecond" and m.defs[1].doc == ""


def test_spans_are_exact():
    m = parse("def f(x : f32[3]) =\n    sin(x)\n")
    r = m.defs[0].result
    assert (r.span.line, r.span.col, r.span.end_col) == (2, 5, 11)
    assert (r.args[0].span.line, r.args[0].span.col) == (2, 9)


@pytest.mark.parametrize(
    "src, where, words",
    [
        ("def f(x : f32[3]) = x +\n", (1, 24), "unexpected end of file"),
        ("def f(x : f32[3]) = (x +\n\ndef g = f\n", (3, 1), "unexpected 'def'"),
        ("def = 3\n", (1, 5), "expected a name"),
        ("def f(x : f32[3] = x\n", (1, 18), "expected one of ')', ','"),
        ("import\n", (1, 7), "expected one of a name, a string"),
        ('def f = "unterminated\n', (1, 9), "unexpected character"),
    ],
)
def test_syntax_errors_say_what_was_expected(src, where, words):
    with pytest.raises(SyntaxDiagnostic) as e:
        parse(src)
    d = e.value.diagnostic
    assert (d.span.line, d.span.col) == where, d
    assert words in d.message, d.message


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_pygments_lexer_covers_every_file(path):
    pytest.importorskip("pygments")
    from pygments.token import Error, Keyword, Name, String

    from catgrad.frontend.lexer import CatLexer

    toks = list(CatLexer().get_tokens(path.read_text()))
    assert not [v for t, v in toks if t in Error]
    assert "".join(v for _, v in toks).rstrip() == path.read_text().rstrip()
    assert (Keyword, "def") in toks and any(t is Name.Function for t, _ in toks)
    if "##" in path.read_text():
        assert any(t is String.Doc for t, _ in toks)
