"""``Program``: a diagram lowered to a flat SSA list that passes and backends read.

Lowering walks the diagram's graph in topological order. Every wire becomes a
value number with a type; every box becomes an :class:`Instr` ``outs = op(ins)``.
Copies and discards need no instruction: a value read twice is a copy, a value
never read is a discard. ``consts`` holds values already known at compile time
(filled by constant folding), so backends bind them instead of computing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..core.diagram import as_diagram
from ..core.primitive import Op
from ..core.types import Ob


class Instr(NamedTuple):
    """``outs = op(ins)``. (A named tuple: passes build thousands of these.)"""

    op: Op
    ins: tuple
    outs: tuple

    def __repr__(self):
        lhs = ", ".join(f"%{o}" for o in self.outs)
        attrs = "".join(f", {k}={v!r}" for k, v in self.op.attrs)
        return f"{lhs} = {self.op.name}({', '.join(f'%{i}' for i in self.ins)}{attrs})"


@dataclass
class Program:
    """Values ``0 .. len(types)-1``; ``inputs``/``outputs`` list value numbers."""

    types: list
    inputs: list
    outputs: list
    instrs: list
    consts: dict = field(default_factory=dict)

    @property
    def dom(self) -> Ob:
        return Ob(*(self.types[v] for v in self.inputs))

    @property
    def cod(self) -> Ob:
        return Ob(*(self.types[v] for v in self.outputs))

    def copy(self) -> "Program":
        return Program(list(self.types), list(self.inputs), list(self.outputs), list(self.instrs), dict(self.consts))

    def op_counts(self) -> dict:
        out: dict = {}
        for ins in self.instrs:
            out[ins.op.name] = out.get(ins.op.name, 0) + 1
        return out

    def __len__(self):
        return len(self.instrs)

    def __str__(self):
        return self.format()

    def format(self, input_names=None) -> str:
        """The program as text. By default values are ``%k``; given ``input_names`` they are
        named as in generated code: inputs after ``input_names``, constants by value
        (``c_0p5``), the rest after the op that made them (``tanh_13``). A constant of at
        most 8 numbers is shown by value, a larger one by its size."""
        if input_names is not None:
            from .pipeline import value_names

            name = value_names(self, input_names)
        else:
            name = {v: f"%{v}" for v in range(len(self.types))}
        lines = [f"program({', '.join(f'{name[v]}: {self.types[v]}' for v in self.inputs)}):"]
        for v, c in sorted(self.consts.items()):
            c = np.asarray(c)
            shown = (repr(c.item()) if c.ndim == 0 else np.array2string(c, separator=", ")) if c.size <= 8 \
                else f"<{c.size} numbers>"
            lines.append(f"  {name[v]} = const {shown} : {self.types[v]}")
        for i in self.instrs:
            attrs = "".join(f", {k}={v!r}" for k, v in i.op.attrs)
            lines.append(f"  {', '.join(name[o] for o in i.outs)} = {i.op.name}({', '.join(name[v] for v in i.ins)}{attrs})")
        lines.append(f"  return {', '.join(name[v] for v in self.outputs)}")
        return "\n".join(lines)


def lower(d) -> Program:
    """The diagram (or Para body) ``d`` as a :class:`Program`."""
    g = as_diagram(d).graph
    return Program(list(g.types), list(g.inputs), list(g.outputs), [Instr(b.op, b.ins, b.outs) for b in g.boxes])


__all__ = ["Instr", "Program", "lower"]
