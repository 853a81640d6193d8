"""Boolean circuits: models over ``bit`` wires lowered to gate netlists.

- :mod:`~catgrad.circuit.netlist`: the netlist IR and its passes (constant
  propagation, structural hashing, dead-gate removal);
- :mod:`~catgrad.circuit.gates`: the ``gates`` rule table, one rule per primitive;
- :mod:`~catgrad.circuit.lower`: a Program over bits to a netlist;
- :mod:`~catgrad.circuit.bitparallel`: evaluation on samples packed 64 to a word;
- :mod:`~catgrad.circuit.backend`: the ``circuit`` backend (:func:`compile_circuit`; also
  ``cg.compile(model, loss="xor", optimizer="gradient_update()", backend="circuit")``: the
  whole RDA step as one circuit);
- :mod:`~catgrad.circuit.rda`: RDA with per-example or batched (parity, vote) updates;
- :mod:`~catgrad.circuit.tools`: ABC, yosys and Icarus Verilog, for checking netlists;
- :mod:`~catgrad.circuit.writers`: Verilog, BLIF, AIGER and ASCII AIGER.
"""

from __future__ import annotations

from .backend import CircuitProgram, compile_circuit, fix_inputs
from .bitparallel import Evaluator, pack, unpack
from .lower import CircuitError, check_circuit, to_netlist
from .netlist import Netlist, Port, propagate_constants, simplify, strash, sweep
from .writers import TARGETS, aag, aiger, blif, verilog, write

__all__ = ["CircuitProgram", "compile_circuit", "fix_inputs", "Evaluator", "pack", "unpack", "CircuitError",
           "check_circuit", "to_netlist", "Netlist", "Port", "propagate_constants", "simplify", "strash", "sweep",
           "TARGETS", "aag", "aiger", "blif", "verilog", "write"]
