"""CLI subcommands of the language: ``catgrad check FILE`` and ``catgrad show FILE [NAME]``.

``check`` prints nothing and exits 0 when the file is well-typed; otherwise it
prints every diagnostic (to stderr) and exits 1. ``show`` prints a definition's
elaborated type and diagram, or lists all definitions with their types.
"""

from __future__ import annotations

import sys

from ..errors import CatgradError
from .diagnostics import render_all
from .loader import check_text, read_source


def _check(path):
    text = read_source(path)
    try:
        session, scope = check_text(text, str(path))
    except Exception as e:  # defence in depth: a front-end bug must still not print a traceback
        raise CatgradError(f"{path}: internal error in the front end ({type(e).__name__}: {e}); please report it") from None
    return session, scope


def run_check(args) -> int:
    """``catgrad check``: every diagnostic on stderr and exit 1, or nothing and exit 0."""
    session, _ = _check(args.file)
    if session.diagnostics:
        print(render_all(session.diagnostics, session.sources), file=sys.stderr)
        n = len(session.diagnostics)
        print(f"{n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    return 0


def run_show(args) -> int:
    """``catgrad show``: every definition with its type, or one definition's type and diagram."""
    from .module import Module

    session, scope = _check(args.file)
    if session.diagnostics:
        print(render_all(session.diagnostics, session.sources), file=sys.stderr)
        return 1
    mod = Module(session, scope)
    if args.name is None:
        rows = []
        for name in mod.names():
            kind = "params" if mod.has_params(name) else "no params"
            if mod.is_modal(name):
                kind += ", state" if mod.has_state(name) else ", train/eval"
            rows.append((name, mod.signature(name), kind))
        w = max((len(r[0]) for r in rows), default=0)
        for name, sig, kind in rows:
            print(f"{name.ljust(w)} : {sig}   [{kind}]")
        return 0
    name = args.name
    f = mod[name]
    doc = mod.doc(name) if name in mod else ""
    if doc:
        for line in doc.split("\n"):
            print(f"## {line}")
    from ..calculus.para import Para
    from ..calculus.stateful import Stateful

    if isinstance(f, Stateful):
        print(f"{name} : {f.dom} -> {f.cod}")
        for what, ps in (("params", f.params), ("state", f.state)):
            print(f"{what}:")
            for p in ps:
                print(f"  {p.name} : {p.type}" + (f" ~ {p.init}" if p.init is not None else ""))
        print(f"training (params, state, inputs -> outputs, new state):\n{f.train}")
        print(f"evaluation:\n{f.eval}")
    elif isinstance(f, Para):
        print(f"{name} : {f.dom} -> {f.cod}")
        print("params:")
        for p in f.params:
            init = f" ~ {p.init}" if p.init is not None else ""
            print(f"  {p.name} : {p.type}{init}")
        print(str(f.body))
    else:
        print(f"{name} : {f.dom} -> {f.cod}")
        print(str(f))
    return 0


def register(subparsers) -> None:
    """Add ``catgrad check`` and ``catgrad show`` to the command line."""
    p = subparsers.add_parser("check", help="type-check a .cat file (silent when well-typed)")
    p.add_argument("file", help="the .cat file")
    p.set_defaults(run=run_check)
    p = subparsers.add_parser("show", help="show the elaborated definitions of a .cat file")
    p.add_argument("file", help="the .cat file")
    p.add_argument("name", nargs="?", help="a definition (or an expression such as 'dense[4, 3]')")
    p.set_defaults(run=run_show)


__all__ = ["register", "run_check", "run_show", "CatgradError"]
