"""Our netlists as the standard EDA tools see them: ABC's equivalence checker, yosys's
Verilog reader and cell counts, Icarus Verilog's simulator. Each test skips, saying
which Debian package is missing, only where that tool is not installed."""

import numpy as np
import pytest

import catgrad as cg

from catgrad.circuit import Netlist, aag, aiger, blif, compile_circuit, simplify, verilog
from catgrad.circuit import tools
from circuit_models import all_inputs, example_models, random_diagram, random_netlist, scalar_eval

needs_abc = pytest.mark.skipif(tools.which(*tools.ABC) is None, reason="ABC is not installed (apt-get install berkeley-abc)")
needs_yosys = pytest.mark.skipif(tools.which("yosys") is None, reason="yosys is not installed (apt-get install yosys)")
needs_iverilog = pytest.mark.skipif(tools.which("iverilog") is None,
                                    reason="Icarus Verilog is not installed (apt-get install iverilog)")

EXAMPLES = example_models()


def circuits():
    out = [(name, compile_circuit(f, input_names=names).netlist) for name, f, names in EXAMPLES]
    out += [(f"random{s}", compile_circuit(random_diagram(s), input_names=["x", "w"]).netlist) for s in range(6)]
    out += [(f"raw{s}", simplify(random_netlist(s, n_in=10, n_gates=200, n_out=6))) for s in range(4)]
    # constant outputs, an input passed straight through, and a derivative circuit
    f = cg.build([cg.bit["N"], cg.bit["N", 3]], lambda b, ins: [ins[0] * ins[0], ins[0], ins[1].sum(axes=1) | ins[0]])
    out += [("R_square_etc", compile_circuit(cg.R(f)).netlist), ("square_etc", compile_circuit(f).netlist)]
    # port names that are Verilog keywords or look like our internal net / gate names
    out += [("awkward_names", compile_circuit(f, input_names=["and", "g0"], output_names=["n5", "out1", "wire"]).netlist)]
    return out


CIRCUITS = circuits()
IDS = [c[0] for c in CIRCUITS]


def write_all(nl: Netlist, d, name="top"):
    paths = {k: d / f"{name}.{k}" for k in ("v", "blif", "aig", "aag")}
    paths["v"].write_text(verilog(nl, name))
    paths["blif"].write_text(blif(nl, name))
    paths["aig"].write_bytes(aiger(nl))
    paths["aag"].write_text(aag(nl))
    return paths


def mutant(nl: Netlist) -> Netlist:
    """``nl`` with one gate changed to another kind such that some output changes
    (checked exhaustively with the scalar reference, so the mutant really differs); a
    netlist without a two-input gate gets a NOT on its first output instead."""
    X = all_inputs(min(nl.n_inputs, 12))
    pad = np.zeros((len(X), nl.n_inputs - X.shape[1]), bool)
    X = np.concatenate([X, pad], axis=1)
    want = [scalar_eval(nl, x) for x in X]
    for j in range(len(nl.gates) - 1, -1, -1):
        kind, a, b = nl.gates[j]
        for new in (("xor", "or", "and") if b >= 0 else ()):
            if new == kind:
                continue
            m = nl.copy()
            m.gates[j] = (new, a, b)
            if any(scalar_eval(m, x) != w for x, w in zip(X, want)):
                return m
    # no two-input gate to change (only NOT gates, or none): invert the first output instead
    m = nl.copy()
    m.outputs[0] = m.add("not", m.outputs[0])
    return m


@needs_abc
@pytest.mark.parametrize("name,nl", CIRCUITS, ids=IDS)
def test_abc_finds_our_blif_and_aiger_equivalent(name, nl, tmp_path):
    p = write_all(nl, tmp_path)
    assert tools.cec(str(p["blif"]), str(p["aig"]))
    m = write_all(mutant(nl), tmp_path, "mutant")
    assert not tools.cec(str(p["blif"]), str(m["aig"]))
    assert not tools.cec(str(m["blif"]), str(p["aig"]))


@needs_abc
@needs_yosys
@pytest.mark.parametrize("name,nl", CIRCUITS, ids=IDS)
def test_abc_finds_our_verilog_through_yosys_and_our_aag_equivalent(name, nl, tmp_path):
    p = write_all(nl, tmp_path)
    yv = tmp_path / "yosys_v.blif"
    tools.yosys_blif(str(p["v"]), "top", str(yv))
    assert tools.cec(str(p["aig"]), str(yv))
    m = write_all(mutant(nl), tmp_path, "mutant")
    ym = tmp_path / "yosys_mutant.blif"
    tools.yosys_blif(str(m["v"]), "mutant", str(ym))
    assert not tools.cec(str(p["aig"]), str(ym))
    # ABC reads binary AIGER only: our ASCII AIGER goes through yosys's reader
    ya = tmp_path / "yosys_aag.blif"
    tools._run([tools._need("yosys"), "-q", "-p", f"read_aiger {p['aag']}; write_blif {ya}"])
    assert tools.cec(str(p["blif"]), str(ya))


@needs_yosys
@pytest.mark.parametrize("name,nl", CIRCUITS, ids=IDS)
def test_yosys_counts_our_gates(name, nl, tmp_path):
    p = write_all(nl, tmp_path)
    ours = {k: v for k, v in nl.counts().items() if v}
    assert tools.yosys_stat(str(p["v"]), "top") == ours


@needs_iverilog
@pytest.mark.parametrize("name,nl", CIRCUITS[:: 3] + CIRCUITS[-3:], ids=IDS[:: 3] + IDS[-3:])
def test_icarus_simulation_equals_the_bit_parallel_evaluator(name, nl):
    from catgrad.circuit import Evaluator

    X = np.random.default_rng(len(name)).random((200, nl.n_inputs)) < 0.5
    np.testing.assert_array_equal(tools.simulate(nl, X), Evaluator(nl)(X))


def test_aiger_encoding_by_hand():
    """x and not y, or: header, literals and the two delta bytes, and the symbol table."""
    from catgrad.circuit import Port

    nl = Netlist([Port("x", 1, False), Port("y", 1, False)], [Port("z", 1, False)])
    ny = nl.add("not", 3)
    nl.outputs = [nl.add("and", 2, ny)]
    assert aag(nl).splitlines()[:5] == ["aag 3 2 0 1 1", "2", "4", "6", "6 5 2"]
    assert aiger(nl).startswith(b"aig 3 2 0 1 1\n6\n" + bytes([1, 3]) + b"i0 x\ni1 y\no0 z\n")
