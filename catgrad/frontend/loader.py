"""Loading ``.cat`` files: parse, resolve imports (prelude and relative paths, with
cycle detection), resolve names and check every definition.

One :class:`Session` loads a file and everything it imports once each, keeps every
source text (for rendering diagnostics) and collects all diagnostics. Stages that
fail stop only their own module or definition, so independent errors are all
reported in one run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import did_you_mean
from . import ast as A
from .checker import Checker
from .diagnostics import Diagnostic, Note
from .parser import SyntaxDiagnostic, parse
from .resolver import Resolver
from .resources import prelude_names, prelude_source

RECURSION_LIMIT = 8000


class ModuleScope:
    """A loaded module: its AST, definitions by name, and imported modules by alias."""

    def __init__(self, path: str, text: str):
        self.path, self.text = path, text
        self.ast = None
        self.defs: dict = {}
        self.imports: dict = {}
        self.diagnostics: list = []
        self.ok = False


class Session:
    def __init__(self):
        self.sources: dict = {}
        self.modules: dict = {}  # key (resolved path or "prelude:name") -> ModuleScope
        self.loading: list = []  # keys being loaded, for cycle detection
        self.diagnostics: list = []
        self.checker = Checker(self.diagnostics)

    def load_text(self, text: str, path: str, key=None, base_dir=None) -> ModuleScope:
        key = key or path
        scope = ModuleScope(path, text)
        self.sources[path] = text
        self.modules[key] = scope
        self.loading.append(key)
        try:
            self._load(scope, base_dir if base_dir is not None else _dir_of(path))
        finally:
            self.loading.pop()
        return scope

    def _load(self, scope: ModuleScope, base_dir: Path) -> None:
        try:
            module = parse(scope.text, scope.path)
        except SyntaxDiagnostic as e:
            self.diagnostics.append(e.diagnostic)
            return
        scope.ast = module
        for d in module.defs:
            scope.defs.setdefault(d.name, d)
        for imp in module.imports:
            if imp.name in scope.imports:
                self.diagnostics.append(Diagnostic(f"'{imp.name}' is imported twice", imp.span))
                continue
            scope.imports[imp.name] = self._import(imp, base_dir)
        resolver = Resolver(scope)
        resolver.run(module)
        self.diagnostics.extend(scope.diagnostics)
        for d in module.defs:
            if d.name in resolver.broken:
                self.checker.broken.add(id(d))
        for d in module.defs:
            if id(d) not in self.checker.broken:
                self.checker.check_def(scope, d)
        scope.ok = True

    def _import(self, imp: A.Import, base_dir: Path):
        if imp.is_path:
            p = (base_dir / imp.module).resolve()
            key = str(p)
            if not p.is_file():
                self.diagnostics.append(Diagnostic(f"cannot import \"{imp.module}\": no file {p}", imp.span))
                return None
            try:
                text = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                self.diagnostics.append(Diagnostic(f"cannot read \"{imp.module}\": {e}", imp.span))
                return None
            path = _display(p)
        else:
            key = "prelude:" + imp.module
            text = prelude_source(imp.module) if imp.module.isidentifier() else None
            if text is None:
                self.diagnostics.append(Diagnostic(
                    f"no prelude module '{imp.module}'{did_you_mean(imp.module, prelude_names())}; "
                    f"the prelude has {', '.join(prelude_names())} (import a file with import \"./file.cat\" as name)",
                    imp.span,
                ))
                return None
            path = f"<prelude>/{imp.module}.cat"
            p = None
        if key in self.loading:
            cycle = self.loading[self.loading.index(key):] + [key]
            names = " -> ".join(_short(k) for k in cycle)
            self.diagnostics.append(Diagnostic(f"import cycle: {names}", imp.span))
            return None
        if key in self.modules:
            scope = self.modules[key]
            return scope if scope.ok else None
        before = len(self.diagnostics)
        scope = self.load_text(text, path, key=key, base_dir=p.parent if p is not None else Path("."))
        if len(self.diagnostics) != before:
            self.diagnostics.insert(before, Diagnostic(f"the imported module '{imp.name}' has errors", imp.span))
        return scope if scope.ok else None


def _dir_of(path: str) -> Path:
    if path.startswith("<"):
        return Path(".")
    return Path(path).resolve().parent


def _display(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _short(key: str) -> str:
    return key.split(":", 1)[1] if key.startswith("prelude:") else Path(key).name


def check_text(text: str, path: str = "<string>", base_dir=None):
    """Run all front-end stages on ``text``. Returns ``(session, scope)``; never raises
    for bad input: problems are in ``session.diagnostics``."""
    session = Session()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, RECURSION_LIMIT))
    try:
        scope = session.load_text(text, path, key=str(Path(path).resolve()) if not path.startswith("<") else path,
                                  base_dir=base_dir)
    except RecursionError:
        session.diagnostics.append(Diagnostic("the program is nested too deeply to check", None))
        scope = ModuleScope(path, text)
    finally:
        sys.setrecursionlimit(old)
    _sort(session.diagnostics)
    return session, scope


def _sort(diags: list) -> None:
    """Source order within each file; files in the order their first error was found."""
    order: dict = {}
    for d in diags:
        order.setdefault(d.span.path if d.span else "", len(order))
    diags.sort(key=lambda d: (order[d.span.path if d.span else ""], d.span.line if d.span else 0,
                              d.span.col if d.span else 0))


def read_source(path) -> str:
    """The text of a ``.cat`` file, or a CatgradError saying why it cannot be read."""
    from ..errors import CatgradError

    p = Path(path)
    if not p.exists():
        raise CatgradError(f"{path}: no such file")
    if p.is_dir():
        raise CatgradError(f"{path}: is a directory, not a .cat file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CatgradError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise CatgradError(f"{path}: cannot read ({e.strerror})") from None


__all__ = ["Session", "ModuleScope", "check_text", "read_source", "Note"]
