"""The compiler: diagrams lowered to programs, passes over them, and backends.

- :mod:`~catgrad.compiler.program`: :class:`Program`, a flat SSA list lowered from a
  diagram's graph;
- :mod:`~catgrad.compiler.passes`: DCE, CSE, constant folding;
- :mod:`~catgrad.compiler.pipeline`: the one pipeline (lower, optimize) whose
  Program every backend receives;
- :mod:`~catgrad.compiler.backends`: the registry; ``numpy`` is registered here,
  ``torch`` on first use (importing it imports torch);
- :mod:`~catgrad.compiler.compiled_step`: :func:`compile`, the supervised step
  lowered by a backend (``cg.compile``).
"""

from __future__ import annotations

from .backends import BACKENDS, backend_factory, register_backend
from .compiled_step import Step, StepOutput, compile
from .numpy_backend import NumpyProgram, compile_numpy
from .passes import cse, dce, fold_constants, optimize, simplify_signs, simplify_scales
from .pipeline import as_program, prepare, value_names
from .program import Instr, Program, lower

register_backend("numpy", compile_numpy)

__all__ = [
    "BACKENDS", "Instr", "NumpyProgram", "Program", "Step", "StepOutput", "backend_factory", "compile",
    "compile_numpy", "cse", "dce", "fold_constants", "lower", "optimize", "register_backend", "prepare",
    "as_program", "value_names", "simplify_signs", "simplify_scales",
]
