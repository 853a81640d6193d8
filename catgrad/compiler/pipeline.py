"""The one compile pipeline: a diagram is lowered to a :class:`Program` and optimized
once; every backend receives that Program and only reads it.

    diagram --lower--> Program --optimize (CSE, constant folding, CSE, DCE)--> backend factory

Composing lenses recomputes a forward pass inside each put (the supervised step holds
three copies of the model's forward pass); CSE here is what shares them again, so it
is not left to each backend. :func:`value_names` gives every backend the same
readable names for the values of a program.
"""

from __future__ import annotations

import keyword
import re

import numpy as np

from .passes import optimize
from .program import Program, lower


def prepare(diagram, passes: bool = True) -> Program:
    """Lower ``diagram`` (or a Para's body) and run the default passes."""
    p = lower(diagram)
    return optimize(p) if passes else p


def as_program(x, passes: bool = True) -> Program:
    """``x`` if it is already a Program, else :func:`prepare` it."""
    return x if isinstance(x, Program) else prepare(x, passes)


def _ident(s: str) -> str:
    s = re.sub(r"\W", "_", str(s))
    if not s or s[0].isdigit():
        s = "_" + s
    return s + "_" if keyword.iskeyword(s) or s in _RESERVED else s


_RESERVED = {"np", "torch", "run", "self", "operator", "inf", "nan"}


def _const_name(c) -> str | None:
    """``c_0p5``, ``c_neg1``, ``c_1eneg08``: a one-entry constant named by its value."""
    c = np.asarray(c)
    if c.size != 1:
        return None
    v = c.item()
    text = repr(float(v)) if isinstance(v, float) else str(int(v))
    # (a float's repr is digits, '.', 'e', '+', '-', 'inf' or 'nan': a name once these are replaced)
    return "c_" + text.removesuffix(".0").replace("-", "neg").replace(".", "p").replace("+", "")


def value_names(prog: Program, input_names=None) -> dict:
    """A readable, unique Python name for every value of ``prog``: inputs after
    ``input_names`` (``a0, a1...`` by default), constants by their value when they
    hold one number (``c_0p5``; ``const_7`` otherwise), and every other value after
    the op that made it (``tanh_12``)."""
    names: dict = {}
    used: set = set()

    def give(v, base):
        n, k = base, 2
        while n in used:
            n, k = f"{base}_{k}", k + 1
        used.add(n)
        names[v] = n

    for k, v in enumerate(prog.inputs):
        give(v, _ident(input_names[k]) if input_names else f"a{k}")
    for v in sorted(prog.consts):
        if v not in names:
            give(v, _const_name(prog.consts[v]) or f"const_{v}")
    for ins in prog.instrs:
        for o in ins.outs:
            give(o, f"{ins.op.name}_{o}")
    return names


def implicit_broadcasts(prog: Program) -> set:
    """Indices of broadcast instructions whose every reader is an elementwise op that
    also reads a full-shape operand: numpy's and torch's own broadcasting in those
    readers does the work, so a backend may pass the unbroadcast value instead."""
    readers: dict = {}
    for ins in prog.instrs:
        for v in ins.ins:
            readers.setdefault(v, []).append(ins)
    outputs = set(prog.outputs)
    bcast = {i.outs[0] for i in prog.instrs if i.op.name == "broadcast"}
    out = set()
    for j, ins in enumerate(prog.instrs):
        if ins.op.name != "broadcast" or ins.outs[0] in outputs:
            continue
        full = prog.types[ins.outs[0]]
        rs = readers.get(ins.outs[0], [])
        if rs and all(
            r.op.prim.elementwise and r.op.cod[0].shape == full.shape
            and any(v not in bcast and prog.types[v].shape == full.shape for v in r.ins)
            for r in rs
        ):
            out.add(j)
    return out


__all__ = ["prepare", "as_program", "value_names", "implicit_broadcasts"]
