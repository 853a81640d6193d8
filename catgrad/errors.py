"""The exceptions catgrad raises for user errors.

Every error a user can cause derives from :class:`CatgradError`, so tools (the CLI,
notebooks) can catch one class and print a clean message instead of a traceback.
"""

from __future__ import annotations

import difflib


class CatgradError(Exception):
    """Base class of every user-facing catgrad error."""


class CatgradTypeError(CatgradError, TypeError):
    """Ill-typed composition or op application: names the expected and actual types."""


class SymbolicSizeError(CatgradTypeError):
    """An op needs a size that is still a name (a conv's channels, a slice's axis): a
    generic ``.cat`` definition is then checked where it is used, with its sizes known."""


class AttributeValueError(CatgradTypeError):
    """An op's attributes do not fit it: a name it does not take, a required one missing,
    or a value of the wrong kind (``sum(x, axes=1.5)``). About the attributes, not the
    input types."""


class ShapeError(CatgradError, ValueError):
    """Arrays whose shape or dtype does not fit the wire type they are given for."""


class UnknownOpError(CatgradError, AttributeError):
    """A primitive name that is not in the signature."""


def did_you_mean(name: str, candidates) -> str:
    """A ' (did you mean ...?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
