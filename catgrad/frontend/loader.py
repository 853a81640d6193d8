"""Loading ``.cat`` files: parse, resolve imports (prelude and relative paths, with
cycle detection), resolve names and check every definition.

One :class:`Session` loads a file and everything it imports once each, keeps every
source text (for rendering diagnostics) and collects all diagnostics. Stages that
fail stop only their own module or definition, so independent errors are all
reported in one run.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

from ..errors import CatgradError, did_you_mean
from . import ast as A
from .checker import Checker
from .diagnostics import Diagnostic, Note, Span
from .parser import SyntaxDiagnostic, parse
from .resolver import Resolver
from .resources import prelude_names, prelude_source

#: the largest definition the front end checks: operators plus bracket nesting in one
#: definition (a flat pipeline of 100,000 stages is 99,999 operators). Larger input is
#: refused before parsing, with the definition's location.
MAX_NESTING = 150_000
#: the stages recurse over the syntax tree; they run in a thread with this stack and limit
RECURSION_LIMIT = 14 * MAX_NESTING
STACK_BYTES = 1 << 30
MAX_SOURCE_BYTES = 32 << 20

_deep = threading.local()


def run_deep(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with room for recursion as deep as MAX_NESTING allows: in a
    thread with a large stack and recursion limit (the main thread's 8 MB stack would
    overflow in C code long before). Exceptions are re-raised in the caller."""
    if getattr(_deep, "active", False):
        return fn(*args, **kwargs)
    out = {}

    def work():
        _deep.active = True
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, RECURSION_LIMIT))
    try:
        old_stack = threading.stack_size(STACK_BYTES)
    except (ValueError, RuntimeError):  # pragma: no cover - a platform without it
        old_stack = None
    try:
        t = threading.Thread(target=work, daemon=True, name="catgrad-frontend")
        t.start()
    except RuntimeError:  # no thread with such a stack here (a low ulimit -v): run in place
        sys.setrecursionlimit(old_limit)
        return fn(*args, **kwargs)
    finally:
        if old_stack is not None:
            threading.stack_size(old_stack)
    try:
        while t.is_alive():
            t.join(0.05)  # short waits, so that SIGINT/SIGTERM still reach the main thread
    finally:
        sys.setrecursionlimit(old_limit)
    if "error" in out:
        raise out["error"]
    return out.get("value")


_LEX = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|>>|\*\*|[-+*/@|^&~]|[(\[{]|[)\]}]|\bdef\b')


def too_large(text: str, path: str):
    """A located diagnostic when one definition of ``text`` exceeds MAX_NESTING operators
    plus nesting (a linear scan of the characters, before anything recursive runs)."""
    start, ops, depth = 0, 0, 0
    for m in _LEX.finditer(text):
        tok = m.group()
        if tok[0] in '"#':
            continue
        if tok == "def":
            start, ops, depth = m.start(), 0, 0
            continue
        if tok in "([{":
            depth += 1
            ops += 1
        elif tok in ")]}":
            depth = max(0, depth - 1)
        else:
            ops += 1
        if ops > MAX_NESTING:
            line = text.count("\n", 0, start) + 1
            col = start - (text.rfind("\n", 0, start) + 1) + 1
            name = re.match(r"def\s+([A-Za-z_][A-Za-z_0-9]*)", text[start:start + 200])
            what = f"'{name.group(1)}'" if name else "this definition"
            return Diagnostic(
                f"{what} is too large to check: more than {MAX_NESTING} operators and brackets in one definition; "
                "split it into several definitions", Span(path, line, col, line, col + 3))
    return None


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
    """One run of the front end: the sources read, the modules loaded (each once), the
    import chain being loaded (for cycle detection) and the diagnostics collected."""

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
        big = too_large(scope.text, scope.path)
        if big is not None:
            self.diagnostics.append(big)
            return
        try:
            module = parse(scope.text, scope.path)
        except SyntaxDiagnostic as e:
            self.diagnostics.append(e.diagnostic)
            return
        except RecursionError:  # defence in depth: too_large should have caught it
            self.diagnostics.append(Diagnostic("the program is nested too deeply to parse", Span(scope.path, 1, 1, 1, 2)))
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
                try:
                    self.checker.check_def(scope, d)
                except RecursionError:  # defence in depth: too_large should have caught it
                    self.checker.stack.clear()
                    self.checker.broken.add(id(d))
                    self.diagnostics.append(Diagnostic(f"'{d.name}' is nested too deeply to check; split it into "
                                                       "several definitions", d.name_span))
        scope.ok = True

    def _import(self, imp: A.Import, base_dir: Path):
        if imp.is_path:
            # what an import may reach: a regular file whose name ends in .cat, found relative to
            # the importing file (or at an absolute path), read as UTF-8. Anything else is refused
            # before it is read, so no other file's contents ever appear in a message.
            if not imp.module.endswith(".cat"):
                self.diagnostics.append(Diagnostic(
                    f"cannot import \"{imp.module}\": only .cat files can be imported", imp.span))
                return None
            try:
                p = (base_dir / imp.module).resolve(strict=True)
            except FileNotFoundError:
                self.diagnostics.append(Diagnostic(
                    f"cannot import \"{imp.module}\": no file {base_dir / imp.module}", imp.span))
                return None
            except (OSError, RuntimeError) as e:  # a symlink loop, a name too long, no permission
                why = "a loop of symbolic links" if isinstance(e, RuntimeError) or getattr(e, "errno", 0) == 40 else (
                    getattr(e, "strerror", None) or str(e))
                self.diagnostics.append(Diagnostic(f"cannot import \"{imp.module}\": {why}", imp.span))
                return None
            key = str(p)
            try:
                text = read_source(p)
            except CatgradError as e:
                self.diagnostics.append(Diagnostic(f"cannot import \"{imp.module}\": {str(e).split(': ', 1)[-1]}",
                                                   imp.span))
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
    try:
        scope = run_deep(session.load_text, text, path,
                         key=str(Path(path).resolve()) if not path.startswith("<") else path, base_dir=base_dir)
    except RecursionError:
        session.diagnostics.append(Diagnostic("the program is nested too deeply to check", Span(path, 1, 1, 1, 2)))
        scope = ModuleScope(path, text)
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
    from ..files import check_readable, human_bytes

    p = Path(check_readable(path, "file"))
    size = p.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise CatgradError(f"{path}: {human_bytes(size)} is larger than the limit for .cat sources "
                           f"({human_bytes(MAX_SOURCE_BYTES)})")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CatgradError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise CatgradError(f"{path}: cannot read ({e.strerror})") from None


__all__ = ["Session", "ModuleScope", "check_text", "read_source", "Note"]
