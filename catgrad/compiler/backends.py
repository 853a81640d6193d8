"""The backend registry: a backend turns a diagram into a callable on arrays.

A backend is a factory ``factory(diagram, **options) -> run`` where
``run(*arrays) -> tuple of arrays`` computes the diagram. ``numpy`` is built in
(:mod:`catgrad.compiler.numpy_backend`); others (torch, circuits) register
themselves with :func:`register_backend` when their module is imported.
"""

from __future__ import annotations

from typing import Callable

from ..errors import CatgradError, did_you_mean

BACKENDS: dict[str, Callable] = {}


def register_backend(name: str, factory: Callable) -> None:
    BACKENDS[name] = factory


def backend_factory(name: str) -> Callable:
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise CatgradError(
            f"unknown backend {name!r}{did_you_mean(str(name), BACKENDS)}; available: {', '.join(sorted(BACKENDS))}"
        ) from None


__all__ = ["BACKENDS", "register_backend", "backend_factory"]
