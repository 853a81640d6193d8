"""Where the language's own files live: the grammar and the prelude.

Installed, ``lang/`` is the data package ``catgrad.lang``; in a source checkout
that package may not be importable, and the files are read from ``<repo>/lang``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def lang_root():
    """A Traversable for the ``lang`` directory (a Path in a source checkout)."""
    try:
        root = resources.files("catgrad.lang")
        if root.joinpath("catgrad.lark").is_file():
            return root
    except (ModuleNotFoundError, TypeError):
        pass
    import catgrad

    return Path(catgrad.__file__).resolve().parent.parent / "lang"


def grammar_text() -> str:
    return lang_root().joinpath("catgrad.lark").read_text(encoding="utf-8")


def prelude_names() -> list:
    d = lang_root().joinpath("prelude")
    return sorted(p.name[:-4] for p in d.iterdir() if p.name.endswith(".cat"))


def prelude_source(name: str):
    """The text of prelude module ``name``, or None if there is none."""
    f = lang_root().joinpath("prelude").joinpath(name + ".cat")
    return f.read_text(encoding="utf-8") if f.is_file() else None
