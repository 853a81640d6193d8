"""Lowering an optimized :class:`~catgrad.compiler.program.Program` over ``bit`` wires to a
:class:`~catgrad.circuit.netlist.Netlist`.

Every wire must be a bit wire whose only symbolic dimension, if any, is the leading
one (the sample axis, see :mod:`catgrad.circuit.gates`); anything else is rejected
before a gate is built, naming the op. Inputs are named after the definition's
arguments (``input_names``), outputs ``out0, out1, ...`` unless named; names are made
legal identifiers in Verilog, BLIF and AIGER alike, and unique.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..core.primitive import bind, check_lowerable
from .gates import CircuitError, building, lane, strip
from .netlist import Netlist, Port, simplify

# Verilog keywords a port may not be called (the ones a model argument might plausibly be named)
_KEYWORDS = set("""always and assign begin buf case default else end endcase endmodule for function if initial
inout input integer module nand negedge nor not or output parameter posedge reg signed supply0 supply1 table
task time tri wire wor xnor xor""".split())


def _where(prog, v) -> str:
    for k, i in enumerate(prog.inputs):
        if i == v:
            return f"input {k}"
    for ins in prog.instrs:
        if v in ins.outs:
            return f"the output of op {ins.op.name!r} ({', '.join(map(str, ins.op.dom)) or 'no inputs'})"
    return f"output {prog.outputs.index(v)}"


def check_circuit(prog) -> None:
    """Raise :class:`CircuitError` unless every wire of ``prog`` is a bit wire with at
    most a leading symbolic dimension."""
    for ins in prog.instrs:
        for t in (*ins.op.dom, *ins.op.cod):
            if t.dtype.name != "bit":
                raise CircuitError(f"op {ins.op.name!r} on ({', '.join(map(str, ins.op.dom)) or 'no inputs'}) "
                                   f"has a {t} wire: a circuit has bit wires only")
    for v in (*prog.inputs, *prog.outputs):
        t = prog.types[v]
        if t.dtype.name != "bit":
            raise CircuitError(f"{_where(prog, v)} is {t}: a circuit has bit wires only")
    for v, t in enumerate(prog.types):
        if any(isinstance(d, str) for d in t.shape[1:]):
            raise CircuitError(f"{_where(prog, v)} is {t}: only the leading dimension (the samples) may be symbolic")
    check_lowerable((i.op for i in prog.instrs), "gates")


def legal_names(names, taken=()) -> list:
    """``names`` made Verilog/BLIF/AIGER identifiers, distinct from each other and from ``taken``."""
    used = set(taken)
    out = []
    for n in names:
        n = re.sub(r"\W", "_", str(n)) or "x"
        if n[0].isdigit():
            n = "_" + n
        if n in _KEYWORDS or re.fullmatch(r"[ng]\d+", n):  # n<digits>: internal nets, g<digits>: gate instances
            n += "_"
        base, k = n, 2
        while n in used:
            n, k = f"{base}_{k}", k + 1
        used.add(n)
        out.append(n)
    return out


def to_netlist(prog, input_names=None, output_names=None, passes: bool = True) -> Netlist:
    """The netlist of ``prog``; with ``passes``, simplified (constant propagation,
    structural hashing, dead-gate removal)."""
    check_circuit(prog)
    ins = list(input_names or [])[: len(prog.inputs)]
    ins += [f"in{k}" for k in range(len(ins), len(prog.inputs))]
    outs = list(output_names or [])[: len(prog.outputs)]
    outs += [f"out{k}" for k in range(len(outs), len(prog.outputs))]
    ins = legal_names(ins)
    outs = legal_names(outs, taken=ins)

    def port(name, t):
        shape = strip(t)
        return Port(name, math.prod(shape), vector=bool(shape))

    nl = Netlist([port(n, prog.types[v]) for n, v in zip(ins, prog.inputs)],
                 [port(n, prog.types[v]) for n, v in zip(outs, prog.outputs)])
    env: dict = {}
    net = 2
    for v, p in zip(prog.inputs, nl.in_ports):
        env[v] = np.arange(net, net + p.width, dtype=np.int64).reshape(strip(prog.types[v]))
        net += p.width
    for v, c in prog.consts.items():
        env[v] = np.asarray(c).astype(np.int64)
    with building(nl):
        for ins_ in prog.instrs:
            res = bind(ins_.op, "gates")(*(env[i] for i in ins_.ins))
            outs_ = res if len(ins_.outs) > 1 else (res,)
            for o, r in zip(ins_.outs, outs_):
                env[o] = np.asarray(r, dtype=np.int64)
    nl.outputs = [int(n) for v in prog.outputs for n in env[v].ravel()]
    return simplify(nl) if passes else nl


__all__ = ["CircuitError", "check_circuit", "legal_names", "to_netlist", "lane", "strip"]
