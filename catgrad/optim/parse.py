"""Optimizers from strings, for the command line: ``parse("clip_norm(1) >> adam(lr=1e-2)")``.

The string is read by a small parser of its own and interpreted, never evaluated: only calls of
known optimizer and schedule names with number (or schedule) arguments, ``>>`` and
``@`` are accepted. Anything else is a :class:`~catgrad.errors.CatgradError`
naming what was wrong, with a suggestion for misspelt names.
"""

from __future__ import annotations

import inspect
import math
import re

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


#: hyperparameters that must lie in [0, 1] (decay rates), or be >= 0 (rates, sizes)
UNIT = frozenset({"b1", "b2", "b3", "momentum", "rho", "dampening"})
NONNEGATIVE = frozenset({"lr", "eps", "eps2", "weight_decay", "rate", "max_norm", "max_value", "lr_decay",
                         "momentum_decay", "warmup", "initial_accumulator_value", "peak", "value", "final",
                         "warmup_steps", "decay_steps", "step_size"})
F32_MAX = 3.4028234663852886e38
MAX_LENGTH = 1_000_000  # characters; the parse is linear, this only bounds the work
MAX_DEPTH = 64  # nested calls or parentheses
MAX_STAGES = 256  # optimizers in one string: building the step grows faster than linearly in them


def _check_hyper(fname: str, name: str, v, text: str) -> None:
    """Numbers must be finite, fit float32, and make sense for what they name."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    if not math.isfinite(v) or abs(v) > F32_MAX:
        raise OptimizerSyntaxError(f"{fname}({name}={v!r}): must be a finite number of float32 size (|x| <= 3.4e38)")
    if name in NONNEGATIVE and v < 0:
        raise OptimizerSyntaxError(f"{fname}({name}={v!r}): {name} must be >= 0")
    if name in UNIT and not 0 <= v <= 1 and fname != "sam":  # SAM's rho is a radius (sam checks it)
        raise OptimizerSyntaxError(f"{fname}({name}={v!r}): {name} must lie in [0, 1]")
    if fname in ("momentum", "nesterov", "lookahead", "rmsprop") and name in ("gamma", "alpha") and not 0 <= v <= 1:
        raise OptimizerSyntaxError(f"{fname}({name}={v!r}): {name} must lie in [0, 1]")


#: the arguments that take an optimizer (their factories check them; every other argument
#: takes a number, a flag or a schedule)
OPTIMIZER_ARGS = frozenset({"inner", "opt"})
#: counts of steps, whole numbers (besides the parameters with an int default)
COUNTS = frozenset({"k", "warmup", "warmup_steps", "decay_steps", "step_size"})


def _check_kind(fname: str, param: inspect.Parameter, v) -> None:
    """An argument of the kind its parameter takes: True or False for a flag (a parameter
    whose default is a bool), a whole number for a count (:data:`COUNTS`, or an int
    default), and never an optimizer where a number goes."""
    name, d = param.name, param.default
    shown = f"{fname}({name}={v!r})"
    if name in OPTIMIZER_ARGS:
        return
    if isinstance(d, bool):
        if not isinstance(v, bool):
            raise OptimizerSyntaxError(f"{shown}: {name} is a flag, True or False")
    elif (isinstance(d, int) or name in COUNTS) and (isinstance(v, bool) or not isinstance(v, int)):
        raise OptimizerSyntaxError(f"{shown}: {name} must be a whole number")
    elif isinstance(v, Optimizer):
        raise OptimizerSyntaxError(f"{shown}: {name} takes a number, not an optimizer")


def _build(name: str, args: list, kwargs: dict, col: int, text: str):
    opts, scheds = _registry(), _schedules()
    fn = opts.get(name) or scheds.get(name)
    if fn is None:
        raise OptimizerSyntaxError(
            f"unknown optimizer {name!r} at column {col}{did_you_mean(name, [*opts, *scheds])}; known: {', '.join(sorted(opts))}"
        )
    sig = inspect.signature(fn)
    known = [p for p in sig.parameters]
    for k in kwargs:
        if k not in known:
            raise OptimizerSyntaxError(
                f"{name}() has no argument {k!r}{did_you_mean(k, known)}; its arguments are: {', '.join(known)}"
            )
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise OptimizerSyntaxError(f"{name}(): {e}; its arguments are: {', '.join(known)}") from None
    for k, v in bound.arguments.items():
        _check_kind(name, sig.parameters[k], v)
        _check_hyper(name, k, v, text)
    try:
        return fn(*args, **kwargs)
    except CatgradError:
        raise
    except (TypeError, ValueError, ArithmeticError) as e:
        raise OptimizerSyntaxError(f"{name}(): {e}") from None


_TOKEN = re.compile(r"""\s*(?:
    (?P<num>(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<op>>>|[@(),=+\-])
  )""", re.VERBOSE)


def _short(text: str, n: int = 120) -> str:
    """The optimizer string for a message: long ones are cut in the middle."""
    return text if len(text) <= n else text[: n // 2] + " ... " + text[-n // 2:]


def _tokens(text: str) -> list:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if not text[pos:].strip():
                break
            col = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise OptimizerSyntaxError(f"cannot parse optimizer {_short(text)!r}: unexpected {text[col - 1]!r} at column {col}")
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    out.append(("end", "", len(text) + 1))
    return out


class _Parser:
    """Recursive descent over ``chain := mat ('>>' mat)*``, ``mat := unary ('@' unary)*``,
    ``unary := ('-' | '+')* atom``, ``atom := number | name | name '(' args ')' | '(' chain ')'``.
    Chains and signs are loops, so their length is unbounded; nesting is limited to MAX_DEPTH."""

    def __init__(self, text: str):
        self.text, self.toks, self.i, self.depth, self.stages = text, _tokens(text), 0, 0, 0

    def peek(self):
        return self.toks[self.i]

    def take(self, value=None):
        t = self.toks[self.i]
        if value is not None and t[1] != value:
            found = "the end" if t[0] == "end" else repr(t[1])
            raise OptimizerSyntaxError(f"cannot parse optimizer {_short(self.text)!r}: expected {value!r} at column {t[2]}, found {found}")
        self.i += 1
        return t

    def chain(self):
        left = self.mat()
        while self.peek()[1] == ">>":
            col = self.take()[2]
            left = self.combine(left, self.mat(), ">>", col)
        return left

    def mat(self):
        left = self.unary()
        while self.peek()[1] == "@":
            col = self.take()[2]
            left = self.combine(left, self.unary(), "@", col)
        return left

    def combine(self, left, right, op, col):
        if not isinstance(left, Optimizer) or not isinstance(right, Optimizer):
            raise OptimizerSyntaxError(f"in {_short(self.text)!r}: '{op}' at column {col} combines optimizers, not numbers")
        self.stages += 1
        if self.stages >= MAX_STAGES:
            raise OptimizerSyntaxError(f"the optimizer string combines more than {MAX_STAGES} optimizers "
                                       f"(at column {col}); that is the limit")
        return left >> right if op == ">>" else left @ right

    def unary(self):
        sign, col = 1, self.peek()[2]
        while self.peek()[1] in ("-", "+"):
            if self.take()[1] == "-":
                sign = -sign
        v = self.atom()
        if sign == -1:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise OptimizerSyntaxError(f"in {_short(self.text)!r}: '-' at column {col} applies to numbers only")
            v = -v
        return v

    def atom(self):
        kind, val, col = self.take()
        if kind == "num":
            try:
                v = float(val) if any(c in val for c in ".eE") else int(val)  # Python's rules for "_" in both
            except ValueError:
                raise OptimizerSyntaxError(f"cannot parse optimizer {_short(self.text)!r}: bad number {val!r} at column {col}") from None
            if isinstance(v, int) and abs(v) > 2**63:
                raise OptimizerSyntaxError(f"in {_short(self.text)!r}: the number at column {col} is too large")
            return v
        if kind == "name":
            if val in ("True", "False"):
                return val == "True"
            if self.peek()[1] != "(":
                if val in _registry():
                    return _build(val, [], {}, col, self.text)
                raise OptimizerSyntaxError(
                    f"in {_short(self.text)!r}: unknown name {val!r} at column {col}{did_you_mean(val, [*_registry(), *_schedules()])}"
                )
            if val not in _registry() and val not in _schedules():
                _build(val, [], {}, col, self.text)  # raises: unknown optimizer (did you mean ...)
            self.take("(")
            args, kwargs = self.arguments(val)
            return _build(val, args, kwargs, col, self.text)
        if kind == "str":
            raise OptimizerSyntaxError(f"in {_short(self.text)!r}: {val} at column {col} is not a number, optimizer or schedule")
        if val == "(":
            self.enter(col)
            v = self.chain()
            self.take(")")
            self.depth -= 1
            return v
        found = "the end" if kind == "end" else repr(val)
        raise OptimizerSyntaxError(f"cannot parse optimizer {_short(self.text)!r}: expected a name or number at column {col}, found {found}")

    def enter(self, col):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise OptimizerSyntaxError(f"in {_short(self.text)!r}: nested more than {MAX_DEPTH} deep at column {col}")

    def arguments(self, fname):
        self.enter(self.peek()[2])
        args, kwargs = [], {}
        while self.peek()[1] != ")":
            t = self.peek()
            if t[0] == "name" and self.toks[self.i + 1][1] == "=":
                self.i += 2
                if t[1] in kwargs:
                    raise OptimizerSyntaxError(f"{fname}(): argument {t[1]!r} given twice")
                kwargs[t[1]] = self.chain()
            else:
                if kwargs:
                    raise OptimizerSyntaxError(f"{fname}(): a positional argument at column {t[2]} follows keyword arguments")
                args.append(self.chain())
            if self.peek()[1] != ",":
                break
            self.take(",")
        self.take(")")
        self.depth -= 1
        return args, kwargs


def parse(text: str) -> Optimizer:
    """An optimizer from its Python-like spelling, e.g. ``"adam(lr=1e-2, b1=0.9)"``."""
    if not isinstance(text, str) or not text.strip():
        raise OptimizerSyntaxError(f"an optimizer string is required, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise OptimizerSyntaxError(f"the optimizer string is {len(text)} characters long; the limit is {MAX_LENGTH}")
    p = _Parser(text)
    out = p.chain()
    if p.peek()[0] != "end":
        _, val, col = p.peek()
        raise OptimizerSyntaxError(f"cannot parse optimizer {_short(text)!r}: unexpected {val!r} at column {col}")
    if not isinstance(out, Optimizer):
        raise OptimizerSyntaxError(f"{_short(text)!r} is not an optimizer")
    return out
