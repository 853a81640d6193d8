"""Located diagnostics: one class for every front-end error and one renderer.

A diagnostic is rendered as::

    path:line:col: error: message
        3 |   let y = rleu(x)
          |           ^^^^

followed by any notes in the same form (``note:`` instead of ``error:``). Lines and
columns count from 1; a span covers ``[col, end_col)`` on ``line`` (a span running
over several lines is underlined to the end of its first line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import CatgradError

WINDOW = 160  # characters of a source line shown under a diagnostic


@dataclass(frozen=True)
class Span:
    path: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass
class Note:
    message: str
    span: Optional[Span] = None


@dataclass
class Diagnostic:
    message: str
    span: Optional[Span]
    notes: list = field(default_factory=list)
    severity: str = "error"

    def render(self, sources: dict) -> str:
        out = [_one(self.severity, self.message, self.span, sources)]
        for n in self.notes:
            out.append(_one("note", n.message, n.span, sources))
        return "\n".join(out)


def _one(severity: str, message: str, span: Optional[Span], sources: dict) -> str:
    if span is None:
        return f"{severity}: {message}"
    head = f"{span}: {severity}: {message}"
    text = sources.get(span.path)
    if text is None:
        return head
    lines = text.split("\n")
    if not 1 <= span.line <= len(lines):
        return head
    src = lines[span.line - 1].rstrip("\r").expandtabs(1)
    end = span.end_col if span.end_line == span.line else len(src) + 1
    col = span.col
    if len(src) > WINDOW:  # a very long line: show the part around the column
        lo = max(0, min(col - 1 - WINDOW // 4, len(src) - WINDOW))
        src, col, end = ("..." if lo else "") + src[lo:lo + WINDOW] + ("..." if lo + WINDOW < len(src) else ""), \
            col - lo + (3 if lo else 0), end - lo + (3 if lo else 0)
    width = max(1, min(end, len(src) + 1) - col)
    gutter = str(span.line)
    pad = " " * len(gutter)
    return f"{head}\n {gutter} | {src}\n {pad} | {' ' * (col - 1)}{'^' * width}"


def render_all(diagnostics, sources: dict) -> str:
    return "\n".join(d.render(sources) for d in diagnostics)


class FrontendError(CatgradError):
    """A ``.cat`` program has errors; ``str(e)`` is the rendered list of them."""

    def __init__(self, diagnostics, sources: dict):
        self.diagnostics = list(diagnostics)
        self.sources = sources
        super().__init__(render_all(self.diagnostics, sources))
