"""The ``.cat`` language front end: parse -> resolve -> check -> elaborate.

>>> import catgrad as cg, numpy as np
>>> m = cg.loads("def sq(x : f64[3]) = x * x")
>>> m["sq"](np.array([1.0, 2.0, 3.0]))[0]
array([1., 4., 9.])
"""

from .diagnostics import Diagnostic, FrontendError, Span, render_all
from .module import Module, check_source, load, loads
from .parser import parse
from .printer import pretty

__all__ = ["Diagnostic", "FrontendError", "Module", "Span", "check_source", "load", "loads", "parse", "pretty",
           "render_all"]
