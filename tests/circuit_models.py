"""Bit models for the circuit tests: the examples, and random diagrams that use every op
the gate rules know (gates, constants, parity sums, einsum, slice/pad/reshape/transpose/
broadcast), with lane (``bit[N, n]``) and fixed-shape (``bit[2, 3]``) inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import catgrad as cg
from catgrad.circuit import Netlist, Port
from catgrad.core.diagram import as_diagram

ROOT = Path(__file__).resolve().parent.parent
bit = cg.bit


def example_models():
    """(name, diagram or Para, input names) for every definition of the circuit examples."""
    out = []
    for path in (ROOT / "examples" / "circuits.cat", ROOT / "lang" / "prelude" / "circuits.cat"):
        m = cg.load(path)
        for name in m.names():
            try:
                f = m[name]
            except cg.CatgradError:  # generic in a dimension other than the samples
                continue
            body = as_diagram(f)
            if any(isinstance(d, str) for t in body.dom @ body.cod for d in t.shape[1:]):
                continue
            d = m.definition(name)
            names = [p.name for p in getattr(f, "params", ())] + ([p.name for p in d.params] if d.params else [])
            out.append((f"{path.stem}.{name}", f, names))
    return out


def random_diagram(seed: int, n_x: int = 5, n_ops: int = 14, k: int = 2, m: int = 3, use_w: bool = True):
    """A random diagram ``(x : bit[N, n_x], w : bit[k, m]) -> (bit[N], bit[N], bit[N, 2])``.
    ``use_w=False``: w is not read (so R of it needs no sum over the samples)."""
    rng = np.random.default_rng(seed)

    def body(b, ins):
        x, w = ins
        pool = [cg.ops.slice(x, axis=1, start=i, stop=i + 1).reshape("N") for i in range(n_x)]

        def pick():
            return pool[int(rng.integers(len(pool)))]

        def stack(ws):
            cols = [a.reshape("N", 1) for a in ws]
            n = len(cols)
            out = cg.ops.pad(cols[0], axis=1, before=0, after=n - 1)
            for i, c in enumerate(cols[1:], 1):
                out = out ^ cg.ops.pad(c, axis=1, before=i, after=n - 1 - i)
            return out

        for _ in range(n_ops):
            r = int(rng.integers(8 if use_w else 6))
            if r == 0:
                pool.append(pick() ^ pick())
            elif r == 1:
                pool.append(pick() & pick())
            elif r == 2:
                pool.append(pick() | pick())
            elif r == 3:
                pool.append(~pick())
            elif r == 4:
                pool.append(cg.ops.eq(pick(), pick()) if rng.random() < 0.5 else pick() ^ pick().const(1))
            elif r == 5:  # parity of a few wires
                pool.append(stack([pick() for _ in range(3)]).sum(axes=1))
            elif r == 6:  # an XOR-linear layer with the fixed-shape input as weights, one column kept
                y = cg.ops.einsum(stack([pick() for _ in range(k)]), w, spec="bi,ij->bj")
                j = int(rng.integers(m))
                pool.append(cg.ops.slice(y, axis=1, start=j, stop=j + 1).reshape("N"))
            else:  # transpose of a (N, 2, 2) block, and a broadcast of a weight bit
                t = stack([pick() for _ in range(4)]).reshape("N", 2, 2).transpose(0, 2, 1).reshape("N", 4)
                wb = cg.ops.slice(cg.ops.slice(w, axis=0, start=0, stop=1), axis=1, start=1, stop=2)
                t = t & wb.reshape(1).broadcast("N", 4)
                pool.append(t.sum(axes=1))
        return [pool[-1], pool[-2], stack([pool[-3], pool[-4]])]

    return cg.build([bit["N", n_x], bit[k, m]], body)


def random_netlist(seed: int, n_in: int = 8, n_gates: int = 40, n_out: int = 4, consts: bool = True) -> Netlist:
    """A raw random netlist (constants, repeated and dead gates included)."""
    rng = np.random.default_rng(seed)
    nl = Netlist([Port("x", n_in)], [Port("y", n_out)])
    lo = 0 if consts else 2
    for _ in range(n_gates):
        kind = ("and", "or", "xor", "not")[int(rng.integers(4))]
        a = int(rng.integers(lo, nl.n_nets))
        b = int(rng.integers(lo, nl.n_nets)) if kind != "not" else -1
        nl.add(kind, a, b)
    nl.outputs = [int(rng.integers(max(lo, nl.n_nets - 10), nl.n_nets)) for _ in range(n_out)]
    return nl


def scalar_eval(nl: Netlist, x) -> list:
    """One sample through the netlist, gate by gate with Python bools: the independent reference."""
    v = [False, True] + [bool(b) for b in x]
    for kind, a, b in nl.gates:
        v.append({"and": lambda: v[a] and v[b], "or": lambda: v[a] or v[b], "xor": lambda: v[a] != v[b],
                  "not": lambda: not v[a]}[kind]())
    return [v[o] for o in nl.outputs]


def all_inputs(n: int) -> np.ndarray:
    """Every assignment of n bits, one per row (row r has bit i = bit i of r)."""
    r = np.arange(2 ** n)
    return ((r[:, None] >> np.arange(n)) & 1).astype(bool)
