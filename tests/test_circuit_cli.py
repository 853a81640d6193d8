"""``catgrad compile FILE.cat --model NAME --target verilog|blif|aiger|aag``."""

import json
import subprocess
import sys

import numpy as np
import pytest

import catgrad as cg
from catgrad.circuit import Evaluator, tools
from catgrad.train.checkpoint import save
from catgrad.train.circuit import netlist_of
from circuit_models import ROOT, all_inputs

CIRCUITS = str(ROOT / "examples" / "circuits.cat")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "catgrad", *args], capture_output=True, text=True)


@pytest.mark.parametrize("target,suffix", [("verilog", "v"), ("blif", "blif"), ("aiger", "aig"), ("aag", "aag")])
def test_every_target_is_written_with_a_report(target, suffix, tmp_path):
    out, rep = tmp_path / f"add4.{suffix}", tmp_path / "r.json"
    r = cli("compile", CIRCUITS, "--model", "equal4", "--target", target, "-o", str(out), "--report", str(rep))
    assert r.returncode == 0, r.stderr
    nl, _ = netlist_of(CIRCUITS, "equal4")
    report = json.loads(rep.read_text())
    assert report["by_type"] == nl.counts() and report["depth"] == nl.depth() == 5
    assert report["aig_nodes"] == nl.aig_nodes() == 3 + 3 * 4
    assert f"{nl.counts()['xor']}" in r.stderr and "depth 5" in r.stderr and "15 AIG nodes" in r.stderr
    data = out.read_bytes()
    assert data.startswith({"verilog": b"// written by catgrad", "blif": b"# written by catgrad",
                            "aiger": b"aig ", "aag": b"aag "}[target])
    assert b"a0" in data and b"b3" in data  # ports named after the definition's arguments


def test_float_models_are_rejected_naming_the_op(tmp_path):
    out = tmp_path / "x.v"
    r = cli("compile", str(ROOT / "examples" / "digits.cat"), "--model", "mlp", "--target", "verilog", "-o", str(out))
    assert r.returncode == 1 and "op 'einsum'" in r.stderr and "bit wires only" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_binary_aiger_needs_an_output_path_and_inputs_are_not_overwritten(tmp_path):
    r = cli("compile", CIRCUITS, "--model", "add4", "--target", "aiger")
    assert r.returncode == 1 and "-o" in r.stderr
    copy = tmp_path / "c.cat"
    copy.write_text((ROOT / "examples" / "circuits.cat").read_text())
    before = copy.read_text()
    r = cli("compile", str(copy), "--model", "add4", "--target", "blif", "-o", str(copy))
    assert r.returncode == 1 and copy.read_text() == before


def _gate_checkpoint(path, w):
    flat = {f"param/w{i}": np.asarray(bool(v)) for i, v in enumerate(w)}
    flat["step"] = np.asarray(0, dtype=np.int64)
    save(path, flat, {"signature": {}})


def test_a_checkpoint_folds_into_the_gates(tmp_path):
    ck, out = tmp_path / "g.npz", tmp_path / "g.blif"
    _gate_checkpoint(ck, [1, 0, 1, 1])
    r = cli("compile", CIRCUITS, "--model", "gate", "--checkpoint", str(ck), "--target", "blif", "-o", str(out))
    assert r.returncode == 0, r.stderr
    nl, prog = netlist_of(CIRCUITS, "gate", str(ck))
    assert nl.input_names() == ["a", "b"] and len(nl.gates) == 3  # not(b xor (a and b))
    X = all_inputs(2)
    model = cg.load(CIRCUITS)["gate"]
    want = cg.evaluate(model, *[np.asarray(bool(v)) for v in (1, 0, 1, 1)], X[:, 0], X[:, 1])[0]
    np.testing.assert_array_equal(Evaluator(nl)(X)[:, 0], want)
    if tools.which(*tools.ABC):  # the file is the same circuit
        ref = tmp_path / "ref.aig"
        from catgrad.circuit import aiger

        ref.write_bytes(aiger(nl))
        assert tools.cec(str(out), str(ref))


def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path):
    ck, out = tmp_path / "bad.npz", tmp_path / "g.v"
    flat = {"param/w0": np.zeros(3, bool), "step": np.asarray(0, dtype=np.int64)}
    save(ck, flat, {"signature": {}})
    r = cli("compile", CIRCUITS, "--model", "gate", "--checkpoint", str(ck), "--target", "verilog", "-o", str(out))
    assert r.returncode == 1 and "w0" in r.stderr and "bit[]" in r.stderr and not out.exists()
    _gate_checkpoint(ck, [1, 0, 1])  # w3 missing
    r = cli("compile", CIRCUITS, "--model", "gate", "--checkpoint", str(ck), "--target", "verilog", "-o", str(out))
    assert r.returncode == 1 and "'w3'" in r.stderr and not out.exists()
    r = cli("compile", CIRCUITS, "--model", "gate", "--checkpoint", str(ck))
    assert r.returncode == 1 and "--target" in r.stderr


def test_a_netlist_replaces_only_an_earlier_netlist(tmp_path):
    out = tmp_path / "a.blif"
    out.write_text("my notes\n")
    r = cli("compile", CIRCUITS, "--model", "add4", "--target", "blif", "-o", str(out))
    assert r.returncode == 1 and "not written by catgrad" in r.stderr and out.read_text() == "my notes\n"
    out.unlink()
    for _ in range(2):  # the second run replaces the first run's file
        r = cli("compile", CIRCUITS, "--model", "add4", "--target", "blif", "-o", str(out))
        assert r.returncode == 0, r.stderr
    r = cli("compile", CIRCUITS, "--model", "add4", "--target", "verilog", "-o", str(out), "--force")
    assert r.returncode == 0 and out.read_text().startswith("// written by catgrad")
