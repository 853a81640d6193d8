"""A gate netlist: the circuit backend's own IR, and its passes.

A :class:`Netlist` is a combinational circuit over the gates AND, OR, XOR (two
inputs) and NOT, in topological order. Nets are numbered: ``0`` is the constant 0,
``1`` the constant 1, then one net per input bit, then one per gate. Fan-out is
reading a net twice; there is no copy gate.

Over Z2 the gates are the polynomials ``x y``, ``x + y + x y``, ``x + y`` and
``1 + x``; a netlist is the forward function of a lowered diagram, so the passes
below may use any identity of boolean *functions* (``x and x = x``). Reverse
derivatives are taken on diagrams, before lowering, where ``x * x`` stays a
polynomial with ``R[x * x] = 0``.

Passes (each returns a new netlist computing the same function):

- :func:`propagate_constants`: gates with a constant input, or with both inputs equal
  or complementary, become a constant, their other input, or its negation;
  ``not not x = x``;
- :func:`strash`: structural hashing, one gate per distinct ``(kind, inputs)`` (inputs
  sorted, the gates being commutative);
- :func:`sweep`: dead-gate removal, keeping the gates some output depends on;
- :func:`simplify`: all three, to a fixed point.

Inputs and outputs are grouped in :class:`Port` s (a definition's arguments and
results); a port of width ``w`` names its bits ``name[0] .. name[w-1]``, a scalar
port its one bit ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AND, OR, XOR, NOT = "and", "or", "xor", "not"
GATES = (AND, OR, XOR, NOT)
TWO_INPUT = (AND, OR, XOR)
FALSE, TRUE = 0, 1


@dataclass(frozen=True)
class Port:
    """A named group of input or output bits; ``vector=False`` means one bit named ``name``."""

    name: str
    width: int
    vector: bool = True

    def bit_names(self) -> list:
        return [f"{self.name}[{i}]" for i in range(self.width)] if self.vector else [self.name]


@dataclass
class Netlist:
    in_ports: list
    out_ports: list
    gates: list = field(default_factory=list)  # (kind, a, b); b is -1 for NOT
    outputs: list = field(default_factory=list)  # one net per output bit, port after port

    @property
    def n_inputs(self) -> int:
        return sum(p.width for p in self.in_ports)

    @property
    def first_gate(self) -> int:
        return 2 + self.n_inputs

    @property
    def n_nets(self) -> int:
        return self.first_gate + len(self.gates)

    def input_names(self) -> list:
        return [n for p in self.in_ports for n in p.bit_names()]

    def output_names(self) -> list:
        return [n for p in self.out_ports for n in p.bit_names()]

    def add(self, kind: str, a: int, b: int = -1) -> int:
        """Append a gate (no simplification) and return its net."""
        self.gates.append((kind, a, b))
        return self.n_nets - 1

    def counts(self) -> dict:
        """Gates by kind."""
        out = {k: 0 for k in GATES}
        for kind, _, _ in self.gates:
            out[kind] += 1
        return out

    def depth(self) -> int:
        """The longest input-to-output path, counting every gate (NOT too) as one level."""
        level = [0] * self.n_nets
        base = self.first_gate
        for j, (kind, a, b) in enumerate(self.gates):
            level[base + j] = 1 + max(level[a], level[b] if b >= 0 else 0)
        return max((level[o] for o in self.outputs), default=0)

    def aig_nodes(self) -> int:
        """AND nodes of the and-inverter graph the AIGER writers produce (XOR: 3, AND/OR: 1, NOT: 0)."""
        c = self.counts()
        return c[AND] + c[OR] + 3 * c[XOR]

    def report(self) -> dict:
        c = self.counts()
        return {"inputs": self.n_inputs, "outputs": len(self.outputs), "gates": len(self.gates),
                "two_input_gates": sum(c[k] for k in TWO_INPUT), "by_type": c, "depth": self.depth(),
                "aig_nodes": self.aig_nodes()}

    def copy(self) -> "Netlist":
        return Netlist(list(self.in_ports), list(self.out_ports), list(self.gates), list(self.outputs))


# -- passes -----------------------------------------------------------------------------------


def _fold(kind: str, a: int, b: int, negation: dict):
    """The net a gate equals without being built, or None. ``negation[n]`` is the net
    known to be ``not n`` (for ``x and not x`` and ``not not x``)."""
    if kind == NOT:
        if a in (FALSE, TRUE):
            return 1 - a
        return negation.get(a)
    if a in (FALSE, TRUE) and b not in (FALSE, TRUE):
        a, b = b, a
    if b in (FALSE, TRUE):
        if a in (FALSE, TRUE):
            return {AND: a & b, OR: a | b, XOR: a ^ b}[kind]
        if kind == AND:
            return a if b else FALSE
        if kind == OR:
            return TRUE if b else a
        return negation.get(a, ("not", a)) if b else a  # xor with 1 is not: built by the caller if new
    if a == b:
        return FALSE if kind == XOR else a
    if negation.get(a) == b:
        return {AND: FALSE, OR: TRUE, XOR: TRUE}[kind]
    return None


def _rebuild(nl: Netlist, fold: bool, hash_: bool) -> Netlist:
    """One forward pass: every gate either folds (``fold``), is found already built
    (``hash_``), or is appended."""
    out = Netlist(list(nl.in_ports), list(nl.out_ports))
    m = list(range(nl.first_gate))  # old net -> new net
    seen: dict = {}
    negation: dict = {}

    def build(kind, a, b=-1):
        if fold:
            r = _fold(kind, a, b, negation)
            if isinstance(r, tuple):  # x xor 1
                return build(NOT, r[1])
            if r is not None:
                return r
        key = (kind, a, b) if kind == NOT else (kind, min(a, b), max(a, b))
        if hash_ and key in seen:
            return seen[key]
        n = out.add(kind, *key[1:])
        seen[key] = n
        if kind == NOT:
            negation[n], negation[a] = a, n
        return n

    for kind, a, b in nl.gates:
        m.append(build(kind, m[a], m[b] if b >= 0 else -1))
    out.outputs = [m[o] for o in nl.outputs]
    return out


def propagate_constants(nl: Netlist) -> Netlist:
    """Fold gates whose value follows from a constant or a repeated/complementary input."""
    return _rebuild(nl, fold=True, hash_=False)


def strash(nl: Netlist) -> Netlist:
    """Structural hashing: one gate per distinct (kind, sorted inputs)."""
    return _rebuild(nl, fold=False, hash_=True)


def sweep(nl: Netlist) -> Netlist:
    """Dead-gate removal: keep only the gates some output depends on."""
    base = nl.first_gate
    live = [False] * nl.n_nets
    for o in nl.outputs:
        live[o] = True
    for j in range(len(nl.gates) - 1, -1, -1):
        if live[base + j]:
            _, a, b = nl.gates[j]
            live[a] = True
            if b >= 0:
                live[b] = True
    out = Netlist(list(nl.in_ports), list(nl.out_ports))
    m = list(range(base))
    for j, (kind, a, b) in enumerate(nl.gates):
        m.append(out.add(kind, m[a], m[b] if b >= 0 else -1) if live[base + j] else -1)
    out.outputs = [m[o] for o in nl.outputs]
    return out


def simplify(nl: Netlist) -> Netlist:
    """Constant propagation and structural hashing in one pass, then dead-gate removal,
    repeated until the gate count stops falling."""
    while True:
        new = sweep(_rebuild(nl, fold=True, hash_=True))
        if len(new.gates) >= len(nl.gates):
            return new if len(new.gates) <= len(nl.gates) else nl
        nl = new


__all__ = ["AND", "OR", "XOR", "NOT", "GATES", "TWO_INPUT", "FALSE", "TRUE", "Port", "Netlist",
           "propagate_constants", "strash", "sweep", "simplify"]
