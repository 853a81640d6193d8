"""The circuit backend: an optimized Program over bit wires, lowered to a simplified
netlist and run by the bit-parallel evaluator.

``compile_circuit(program, input_names=None, output_names=None, params=None)``
returns a :class:`CircuitProgram`; ``run(*arrays)`` takes and returns bool arrays of
the program's types, the sample axis (a symbolic leading dimension) holding the
samples that are packed 64 to a word. ``params`` (a list of arrays) fixes the
program's first inputs to constants before lowering, so trained parameters are
folded into the gates.
"""

from __future__ import annotations

import numpy as np

from ..compiler.passes import optimize
from ..compiler.pipeline import as_program
from ..core.evaluate import _as_array
from ..errors import ShapeError
from .bitparallel import Evaluator
from .gates import lane, strip
from .lower import CircuitError, to_netlist


def fix_inputs(prog, values):
    """``prog`` with its first ``len(values)`` inputs replaced by these constants, re-optimized."""
    q = prog.copy()
    n = len(values)
    if n > len(q.inputs):
        raise CircuitError(f"{n} parameter values given but the program has {len(q.inputs)} inputs")
    for k, (v, x) in enumerate(zip(q.inputs, values)):
        t = q.types[v]
        x = np.asarray(x)
        if lane(t) or x.shape != tuple(t.shape):
            raise CircuitError(f"parameter {k} has shape {x.shape} but the circuit expects {t}")
        q.consts[v] = _as_array(x, t, k)
    q.inputs = q.inputs[n:]
    return optimize(q)


class CircuitProgram:
    """A program compiled to gates: ``run(*bool_arrays) -> tuple of bool arrays``."""

    def __init__(self, program, input_names=None, output_names=None, params=None, passes: bool = True,
                 chunk_words: int | None = None):
        prog = as_program(program)
        if params is not None:
            prog = fix_inputs(prog, params)
            input_names = list(input_names or [])[len(params):] or None
        self.program = prog
        self.dom, self.cod = prog.dom, prog.cod
        self.netlist = to_netlist(prog, input_names, output_names, passes=passes)
        self.evaluator = Evaluator(self.netlist, chunk_words=chunk_words)

    def bits(self, *args) -> tuple:
        """The inputs as one bool matrix ``(N, n_inputs)`` and the number of samples N."""
        if len(args) != len(self.dom):
            raise ShapeError(f"the circuit takes {len(self.dom)} input(s) of types {self.dom}, got {len(args)}")
        args = [_as_array(a, t, i) for i, (a, t) in enumerate(zip(args, self.dom))]
        ns = {a.shape[0] for a, t in zip(args, self.dom) if lane(t) and a.ndim}
        if len(ns) > 1:
            raise ShapeError(f"the inputs' sample axes differ in length: {sorted(ns)}")
        n = ns.pop() if ns else 1
        cols = []
        for i, (a, t) in enumerate(zip(args, self.dom)):
            want = strip(t)
            got = a.shape[1:] if lane(t) else a.shape
            if tuple(got) != want:
                raise ShapeError(f"input {i} should be {t}, got shape {a.shape}")
            cols.append(a.reshape(n, -1) if lane(t) else np.broadcast_to(a.reshape(1, -1), (n, a.size)))
        return (np.concatenate(cols, axis=1) if cols else np.zeros((n, 0), dtype=bool)), n

    def __call__(self, *args) -> tuple:
        x, n = self.bits(*args)
        y = self.evaluator(x)
        out, col = [], 0
        for p, t in zip(self.netlist.out_ports, self.cod):
            block = y[:, col:col + p.width]
            col += p.width
            out.append(block.reshape((n, *strip(t))) if lane(t) else block[0].reshape(strip(t)))
        return tuple(out)


def compile_circuit(program, input_names=None, **options) -> CircuitProgram:
    """The circuit backend's factory (registered as ``"circuit"``)."""
    return CircuitProgram(program, input_names=input_names, **options)


__all__ = ["CircuitProgram", "compile_circuit", "fix_inputs"]
