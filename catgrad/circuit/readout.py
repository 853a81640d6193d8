"""The vote readout: a class decision from one-vs-rest heads, as gates.

A model with ``H * C`` output bits, laid out as ``H`` heads of ``C`` class bits (bit
``h C + c`` is head h's vote for class c), classifies by counting votes: the class is

    argmax_c  #{h : y[h, c] = 1}          (ties go to the lowest class index)

:func:`vote_readout` appends this decision to a netlist as gates, so the circuit a
trained model compiles to outputs the class index itself (``ceil(log2 C)`` bits, least
significant first):

- each class's votes are counted by a carry-save adder tree: bits of equal weight are
  taken three at a time into a full adder (sum, carry: 5 gates) or two at a time into a
  half adder (2 gates) until every weight holds one bit;
- the counts meet in a tournament of comparators (``a > b`` from the least significant
  bit up: ``gt' = a_i (not b_i) or (a_i == b_i) gt``) and multiplexers; the right-hand
  (higher-index) side wins only when its count is strictly larger, which keeps ties on
  the lowest index.

:func:`votes` is the same decision in numpy, the reference the tests compare with.
"""

from __future__ import annotations

import numpy as np

from .netlist import AND, FALSE, NOT, OR, TRUE, XOR, Netlist, Port, simplify


def votes(outputs: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices ``(N,)`` from bool outputs ``(N, H * C)``: the most votes, ties to the lowest."""
    n = len(outputs)
    return np.asarray(outputs, bool).reshape(n, -1, n_classes).sum(axis=1).argmax(axis=1)


def index_width(n_classes: int) -> int:
    return max(1, (n_classes - 1).bit_length())


class _Builder:
    def __init__(self, nl: Netlist):
        self.nl = nl

    def g(self, kind, a, b=-1):
        return self.nl.add(kind, a, b)

    def full(self, a, b, c):
        s1 = self.g(XOR, a, b)
        return self.g(XOR, s1, c), self.g(OR, self.g(AND, a, b), self.g(AND, s1, c))

    def popcount(self, bits) -> list:
        cols = [list(bits)]
        w = 0
        while w < len(cols):
            col = cols[w]
            while len(col) > 1:
                if len(cols) == w + 1:
                    cols.append([])
                if len(col) >= 3:
                    s, c = self.full(col.pop(0), col.pop(0), col.pop(0))
                else:
                    a, b = col.pop(0), col.pop(0)
                    s, c = self.g(XOR, a, b), self.g(AND, a, b)
                col.append(s)
                cols[w + 1].append(c)
            w += 1
        return [col[0] if col else FALSE for col in cols]

    def greater(self, a, b):
        """``a > b`` for unsigned numbers given as nets, least significant first."""
        gt = FALSE
        for x, y in zip(a, b):
            eq = self.g(NOT, self.g(XOR, x, y))
            gt = self.g(OR, self.g(AND, x, self.g(NOT, y)), self.g(AND, eq, gt))
        return gt

    def mux(self, s, x, y):
        """``y if s else x``, bitwise."""
        ns = self.g(NOT, s)
        return [self.g(OR, self.g(AND, s, b), self.g(AND, ns, a)) for a, b in zip(x, y)]


def vote_readout(nl: Netlist, n_classes: int) -> Netlist:
    """``nl`` (outputs: ``H * C`` head bits) followed by the vote decision; the new
    netlist's one output port ``class`` is the class index, least significant bit first."""
    n_out = len(nl.outputs)
    if n_classes < 2 or n_out % n_classes:
        raise ValueError(f"a vote readout needs a multiple of {n_classes} output bits, the netlist has {n_out}")
    out = nl.copy()
    b = _Builder(out)
    heads = np.asarray(out.outputs).reshape(-1, n_classes)
    counts = [b.popcount(heads[:, c].tolist()) for c in range(n_classes)]
    width = max(len(c) for c in counts)
    iw = index_width(n_classes)
    items = [(c + [FALSE] * (width - len(c)), [TRUE if k >> i & 1 else FALSE for i in range(iw)])
             for k, c in enumerate(counts)]
    while len(items) > 1:
        nxt = []
        for j in range(0, len(items) - 1, 2):
            (ca, ia), (cb, ib) = items[j], items[j + 1]
            s = b.greater(cb, ca)  # the higher indices win only when strictly ahead
            nxt.append((b.mux(s, ca, cb), b.mux(s, ia, ib)))
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    out.outputs = list(items[0][1])
    out.out_ports = [Port("class", iw)]
    return simplify(out)


__all__ = ["votes", "vote_readout", "index_width"]
