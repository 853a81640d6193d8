"""A Pygments lexer for ``.cat`` files (pygments is a dev/docs dependency).

Used to highlight the code in docs/language.md; from the shell:
``pygmentize -l catgrad/frontend/lexer.py:CatLexer -x examples/iris.cat``.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text


class CatLexer(RegexLexer):
    name = "catgrad"
    aliases = ["cat", "catgrad"]
    filenames = ["*.cat"]

    tokens = {
        "root": [
            (r"##.*?$", String.Doc),
            (r"#.*?$", Comment.Single),
            (r"\s+", Text),
            (r"(def)(\s+)([A-Za-z_][A-Za-z0-9_']*)", bygroups(Keyword, Text, Name.Function)),
            (words(("let", "param", "state", "update", "import", "as"), suffix=r"\b"), Keyword),
            (words(("true", "false"), suffix=r"\b"), Keyword.Constant),
            (r"\b(f32|f64|i64|bit)(?=\[)", Keyword.Type),
            (words(("id", "copy", "discard", "swap", "perm"), suffix=r"\b"), Name.Builtin),
            (words(("zeros", "ones", "normal", "uniform", "glorot", "he", "bits", "constant"), prefix=r"(?<=~\s)",
                    suffix=r"\b"), Name.Builtin),
            (r'"[^"\n]*"', String),
            (r"[0-9]+\.[0-9]*([eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+|[0-9]+", Number),
            (r">>|->|\*\*|[-+*/@^&|~=:]", Operator),
            (r"[()\[\]{},;.]", Punctuation),
            (r"[A-Za-z_][A-Za-z0-9_']*", Name),
        ]
    }
