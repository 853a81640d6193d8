"""Optimizers from strings, for the command line: ``parse("clip_norm(1) >> adam(lr=1e-2)")``.

The string is parsed with :mod:`ast` and interpreted, never evaluated: only calls of
known optimizer and schedule names with number (or schedule) arguments, ``>>`` and
``@`` are accepted. Anything else is a :class:`~catgrad.errors.CatgradError`
naming what was wrong, with a suggestion for misspelt names.
"""

from __future__ import annotations

import ast
import inspect

from ..errors import CatgradError, did_you_mean
from .base import Optimizer


class OptimizerSyntaxError(CatgradError, ValueError):
    """An optimizer string that cannot be understood."""


def _registry() -> dict:
    from .. import optim

    return {name: getattr(optim, name) for name in optim.NAMES}


def _schedules() -> dict:
    from ..schedule import SCHEDULES

    return SCHEDULES


def _call(node: ast.Call, text: str):
    if not isinstance(node.func, ast.Name):
        raise OptimizerSyntaxError(f"in {text!r}: expected an optimizer name before '(', got {ast.unparse(node.func)!r}")
    name = node.func.id
    opts, scheds = _registry(), _schedules()
    fn = opts.get(name) or scheds.get(name)
    if fn is None:
        raise OptimizerSyntaxError(
            f"unknown optimizer {name!r}{did_you_mean(name, [*opts, *scheds])}; known: {', '.join(sorted(opts))}"
        )
    args = [_value(a, text) for a in node.args]
    kwargs = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise OptimizerSyntaxError(f"in {text!r}: '**' arguments are not allowed")
        kwargs[kw.arg] = _value(kw.value, text)
    sig = inspect.signature(fn)
    known = [p for p in sig.parameters]
    for k in kwargs:
        if k not in known:
            raise OptimizerSyntaxError(
                f"{name}() has no argument {k!r}{did_you_mean(k, known)}; its arguments are: {', '.join(known)}"
            )
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        raise OptimizerSyntaxError(f"{name}(): {e}; its arguments are: {', '.join(known)}") from None
    try:
        return fn(*args, **kwargs)
    except CatgradError:
        raise
    except (TypeError, ValueError) as e:
        raise OptimizerSyntaxError(f"{name}(): {e}") from None


def _value(node, text: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand, text)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Tuple):
        return tuple(_value(e, text) for e in node.elts)
    if isinstance(node, ast.Call):
        return _call(node, text)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.RShift, ast.MatMult)):
        left, right = _value(node.left, text), _value(node.right, text)
        if not isinstance(left, Optimizer) or not isinstance(right, Optimizer):
            raise OptimizerSyntaxError(f"in {text!r}: '>>' and '@' combine optimizers")
        return left >> right if isinstance(node.op, ast.RShift) else left @ right
    if isinstance(node, ast.Name):
        if node.id in _registry():
            return _registry()[node.id]()
        raise OptimizerSyntaxError(
            f"in {text!r}: unknown name {node.id!r}{did_you_mean(node.id, [*_registry(), *_schedules()])}"
        )
    raise OptimizerSyntaxError(f"in {text!r}: {ast.unparse(node)!r} is not a number, optimizer or schedule")


def parse(text: str) -> Optimizer:
    """An optimizer from its Python-like spelling, e.g. ``"adam(lr=1e-2, b1=0.9)"``."""
    if not isinstance(text, str) or not text.strip():
        raise OptimizerSyntaxError(f"an optimizer string is required, got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise OptimizerSyntaxError(f"cannot parse optimizer {text!r}: {e.msg}") from None
    out = _value(tree.body, text)
    if not isinstance(out, Optimizer):
        raise OptimizerSyntaxError(f"{text!r} is not an optimizer")
    return out
