"""The backend registry: a backend turns an optimized Program into a callable.

A backend is a factory ``factory(program, input_names=None, **options) -> run`` where
``run(*values) -> tuple of values`` computes the program (see
:mod:`catgrad.compiler.pipeline` for how the Program is made). ``run`` may also have
``asarray(host_array, wire_type)``, which turns a numpy array into the backend's own
value (a torch tensor on the chosen device). A backend runs each primitive through
its rule table (:mod:`catgrad.core.primitive`).

``numpy`` is built in; ``torch`` is registered by name and imported on first use, so
``import catgrad`` does not import torch. Others register with :func:`register_backend`.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..errors import CatgradError, did_you_mean

BACKENDS: dict[str, Callable | str] = {
    "torch": "catgrad.compiler.torch_backend:compile_torch",
    "circuit": "catgrad.circuit.backend:compile_circuit",
}


def register_backend(name: str, factory: Callable | str) -> None:
    """Register ``factory`` (or ``"module:function"``, imported on first use) as ``name``."""
    BACKENDS[name] = factory


def backend_factory(name: str) -> Callable:
    """The factory registered as ``name`` (imported now if it was registered by module path)."""
    try:
        f = BACKENDS[name]
    except (KeyError, TypeError):
        raise CatgradError(
            f"unknown backend {name!r}{did_you_mean(str(name), BACKENDS)}; available: {', '.join(sorted(BACKENDS))}"
        ) from None
    if isinstance(f, str):
        module, attr = f.split(":")
        f = BACKENDS[name] = getattr(importlib.import_module(module), attr)
    return f


__all__ = ["BACKENDS", "register_backend", "backend_factory"]
