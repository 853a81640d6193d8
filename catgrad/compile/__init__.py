"""Lowering diagrams to programs, passes, and backends.

``cg.compile`` is this package, made callable: ``cg.compile(model, loss=...,
optimizer=..., backend="numpy")`` builds the supervised step (see
:mod:`catgrad.step`) and lowers it with the named backend. Backends register a
factory ``diagram -> callable(*arrays) -> tuple`` with
:func:`catgrad.step.register_backend`; ``numpy`` is registered here.
"""

from __future__ import annotations

import sys
import types

from .. import step as _step
from .numpy_backend import NumpyProgram, compile_numpy
from .passes import cse, dce, fold_constants, optimize
from .program import Instr, Program, lower

_step.register_backend("numpy", compile_numpy)


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return _step.compile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["Instr", "Program", "lower", "dce", "cse", "fold_constants", "optimize", "NumpyProgram", "compile_numpy"]
