"""Netlist writers: structural Verilog, BLIF, binary AIGER (``.aig``) and ASCII AIGER (``.aag``).

All four carry the port names: bit ``i`` of a vector port ``x`` is ``x[i]`` in BLIF and
in the AIGER symbol table, which is also how yosys names the bits of a Verilog vector
port, so equivalence checkers that match inputs and outputs by name (ABC's ``cec``)
can compare any two of them. Internal nets are ``n<id>`` (port names never look like
that, see :func:`~catgrad.circuit.lower.legal_names`).

AIGER has only AND nodes and inverted edges: ``a or b = not (not a and not b)`` (one
node) and ``a xor b = (a and not b) or (not a and b)`` (three nodes).
"""

from __future__ import annotations

from .netlist import AND, NOT, OR, XOR, Netlist

TARGETS = ("verilog", "blif", "aiger", "aag")
SUFFIX = {"verilog": ".v", "blif": ".blif", "aiger": ".aig", "aag": ".aag"}


def _net_names(nl: Netlist) -> list:
    names = ["1'b0", "1'b1"] + nl.input_names()
    return names + [f"n{nl.first_gate + j}" for j in range(len(nl.gates))]


def verilog(nl: Netlist, module: str = "circuit") -> str:
    """One module of gate primitives (``and``, ``or``, ``xor``, ``not``) and ``assign`` for outputs."""
    name = _net_names(nl)
    ports = [p.name for p in nl.in_ports + nl.out_ports]
    lines = [f"// written by catgrad: {len(nl.gates)} gates", f"module {module} ({', '.join(ports)});"]
    for kind, plist in (("input", nl.in_ports), ("output", nl.out_ports)):
        for p in plist:
            lines.append(f"  {kind} {f'[{p.width - 1}:0] ' if p.vector else ''}{p.name};")
    for j in range(len(nl.gates)):
        lines.append(f"  wire {name[nl.first_gate + j]};")
    for j, (kind, a, b) in enumerate(nl.gates):
        args = [name[nl.first_gate + j], name[a]] + ([name[b]] if b >= 0 else [])
        lines.append(f"  {kind} g{j} ({', '.join(args)});")
    for out, net in zip(nl.output_names(), nl.outputs):
        lines.append(f"  assign {out} = {name[net]};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


_COVER = {AND: ["11 1"], OR: ["1- 1", "-1 1"], XOR: ["10 1", "01 1"], NOT: ["0 1"]}


def blif(nl: Netlist, model: str = "circuit") -> str:
    """One ``.model`` of ``.names`` covers; each output is a buffer of its net."""
    name = ["n0", "n1"] + _net_names(nl)[2:]
    lines = [f"# written by catgrad: {len(nl.gates)} gates", f".model {model}",
             ".inputs " + " ".join(nl.input_names()), ".outputs " + " ".join(nl.output_names()),
             ".names n0", ".names n1", "1"]  # the constants, for gates of unsimplified netlists
    for j, (kind, a, b) in enumerate(nl.gates):
        ins = [name[a]] + ([name[b]] if b >= 0 else [])
        lines.append(f".names {' '.join(ins)} {name[nl.first_gate + j]}")
        lines += _COVER[kind]
    for out, net in zip(nl.output_names(), nl.outputs):
        lines += [f".names {name[net]} {out}", "1 1"]
    lines.append(".end")
    return "\n".join(lines) + "\n"


# -- AIGER ----------------------------------------------------------------------------------


def to_aig(nl: Netlist):
    """``(n_inputs, ands, outputs)``: AND nodes as ``(lhs, rhs0, rhs1)`` literals in order,
    and one literal per output."""
    n_in = nl.n_inputs
    lit = [0, 1] + [2 * (i + 1) for i in range(n_in)]
    ands: list = []

    def mk(a, b):
        if a < b:
            a, b = b, a
        lhs = 2 * (n_in + len(ands) + 1)
        ands.append((lhs, a, b))
        return lhs

    for kind, a, b in nl.gates:
        x = lit[a]
        y = lit[b] if b >= 0 else None
        if kind == AND:
            r = mk(x, y)
        elif kind == OR:
            r = mk(x ^ 1, y ^ 1) ^ 1
        elif kind == XOR:
            r = mk(mk(x, y ^ 1) ^ 1, mk(x ^ 1, y) ^ 1) ^ 1
        else:
            r = x ^ 1
        lit.append(r)
    return n_in, ands, [lit[o] for o in nl.outputs]


def _symbols(nl: Netlist) -> list:
    return [f"i{k} {n}" for k, n in enumerate(nl.input_names())] + \
           [f"o{k} {n}" for k, n in enumerate(nl.output_names())]


def aag(nl: Netlist) -> str:
    """ASCII AIGER."""
    n_in, ands, outs = to_aig(nl)
    lines = [f"aag {n_in + len(ands)} {n_in} 0 {len(outs)} {len(ands)}"]
    lines += [str(2 * (i + 1)) for i in range(n_in)]
    lines += [str(o) for o in outs]
    lines += [f"{l} {a} {b}" for l, a, b in ands]
    lines += _symbols(nl) + ["c", "written by catgrad"]
    return "\n".join(lines) + "\n"


def _varint(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def aiger(nl: Netlist) -> bytes:
    """Binary AIGER: inputs implicit, AND nodes as delta-encoded varints."""
    n_in, ands, outs = to_aig(nl)
    head = f"aig {n_in + len(ands)} {n_in} 0 {len(outs)} {len(ands)}\n" + "".join(f"{o}\n" for o in outs)
    body = b"".join(_varint(l - a) + _varint(a - b) for l, a, b in ands)
    tail = "\n".join(_symbols(nl) + ["c", "written by catgrad"]) + "\n"
    return head.encode() + body + tail.encode()


def write(nl: Netlist, target: str, name: str = "circuit") -> bytes:
    """The netlist in format ``target`` (one of :data:`TARGETS`) as bytes."""
    if target == "verilog":
        return verilog(nl, name).encode()
    if target == "blif":
        return blif(nl, name).encode()
    if target == "aiger":
        return aiger(nl)
    if target == "aag":
        return aag(nl).encode()
    raise ValueError(f"unknown target {target!r}; one of {', '.join(TARGETS)}")


__all__ = ["TARGETS", "SUFFIX", "verilog", "blif", "aag", "aiger", "to_aig", "write"]
