"""Checking netlists with the standard open-source EDA tools (they are not Python
dependencies: Debian's ``berkeley-abc``, ``yosys`` and ``iverilog`` packages).

- :func:`cec`: ABC's combinational equivalence check of two files (inputs and
  outputs matched by name);
- :func:`yosys_blif`: yosys reads our Verilog, maps it to its gate cells and writes BLIF
  (so ABC can compare the Verilog with anything else);
- :func:`yosys_stat`: yosys's cell counts of our Verilog as read (no optimisation);
- :func:`simulate`: Icarus Verilog runs our Verilog on given input vectors.

Each raises :class:`ToolMissing` when its program is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from ..errors import CatgradError
from .netlist import Netlist
from .writers import verilog

ABC = ("berkeley-abc", "yosys-abc", "abc")


class ToolMissing(CatgradError):
    pass


def which(*names) -> str | None:
    """The path of the first of ``names`` found on PATH, or None."""
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def _need(*names) -> str:
    p = which(*names)
    if p is None:
        raise ToolMissing(f"{' / '.join(names)} is not installed (Debian: apt-get install "
                          f"{'berkeley-abc' if names == ABC else names[0]})")
    return p


def _run(cmd, timeout=120) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise CatgradError(f"{os.path.basename(cmd[0])} failed ({r.returncode}): {(r.stderr or r.stdout)[-2000:]}")
    return r.stdout


def cec(a: str, b: str) -> bool:
    """Whether ABC finds the circuits in files ``a`` and ``b`` equivalent (BLIF or binary AIGER)."""
    out = _run([_need(*ABC), "-c", f"cec {a} {b}"])
    if "NOT EQUIVALENT" in out:
        return False
    if re.search(r"\bare equivalent\b", out):
        return True
    raise CatgradError(f"ABC's cec gave no verdict: {out[-2000:]}")


def yosys_blif(v_path: str, top: str, blif_path: str) -> None:
    """Read our Verilog with yosys, map it to yosys's one-bit gates, write BLIF."""
    _run([_need("yosys"), "-q", "-p",
          f"read_verilog {v_path}; hierarchy -top {top}; proc; techmap; opt_clean; write_blif {blif_path}"])


def yosys_stat(v_path: str, top: str) -> dict:
    """Cell counts by type (``{"and": 7, ...}``) of the Verilog as read, before any optimisation."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "stat.json")
        _run([_need("yosys"), "-q", "-p", f"read_verilog {v_path}; hierarchy -top {top}; tee -q -o {out} stat -json"])
        text = open(out).read()
    data = json.loads(text[text.index("{"):])
    cells = data["design"]["num_cells_by_type"]
    return {k.lstrip("$").lstrip("_").rstrip("_").lower(): v for k, v in cells.items()}


def simulate(nl: Netlist, vectors: np.ndarray, module: str = "circuit") -> np.ndarray:
    """Outputs of our Verilog under Icarus for each row of ``vectors`` (bool ``(n, n_inputs)``)."""
    iverilog, vvp = _need("iverilog"), _need("vvp")
    vectors = np.asarray(vectors, dtype=bool)
    ins, outs = nl.input_names(), nl.output_names()
    tb = ["module tb;"]
    for kind, ports in (("reg", nl.in_ports), ("wire", nl.out_ports)):
        for p in ports:
            tb.append(f"  {kind} {f'[{p.width - 1}:0] ' if p.vector else ''}{p.name};")
    conn = ", ".join(f".{p.name}({p.name})" for p in nl.in_ports + nl.out_ports)
    tb += [f"  {module} dut ({conn});", "  initial begin"]
    for row in vectors:
        for n, v in zip(ins, row):
            tb.append(f"    {n} = 1'b{int(v)};")
        tb.append("    #1 $display(\"%b\", {" + ", ".join(outs) + "});" if outs else "    #1 $display(\"\");")
    tb += ["    $finish;", "  end", "endmodule"]
    with tempfile.TemporaryDirectory() as d:
        v, t, exe = (os.path.join(d, n) for n in ("dut.v", "tb.v", "sim"))
        open(v, "w").write(verilog(nl, module))
        open(t, "w").write("\n".join(tb) + "\n")
        _run([iverilog, "-o", exe, v, t])
        lines = [ln.strip() for ln in _run([vvp, "-n", exe], timeout=600).splitlines()]
    lines = [ln for ln in lines if ln and set(ln) <= set("01xz")]
    if len(lines) != len(vectors) or any(len(ln) != len(outs) for ln in lines):
        raise CatgradError(f"unexpected simulation output: {lines[:5]}")
    return np.array([[c == "1" for c in ln] for ln in lines], dtype=bool).reshape(len(vectors), len(outs))


__all__ = ["ToolMissing", "which", "cec", "yosys_blif", "yosys_stat", "simulate", "ABC"]
