"""Reverse Derivative Ascent on the bit-parallel evaluator, one example or a batch per step.

For a model ``f : P x A -> B`` over bits, RDA with the xor loss and the identity
learning rate updates on an example ``(x, y)``

    dy = y + f(theta, x)                  (which output bits are wrong)
    theta <- theta + pi_P R[f]((theta, x), dy)

(docs/mathematics.md section 5, written in this project's docs/circuits.md). Here ``f`` and
``pi_P R[f]`` are each lowered once to a netlist whose inputs are *all* per-sample
(parameters, example, cotangent), so a batch of B examples is B lanes of one
bit-parallel evaluation and gives the B per-example updates ``g_1 .. g_B`` at once.
They are combined into one update of theta:

- ``parity``: ``g = g_1 + ... + g_B`` (XOR). This is R of the batched model, where
  the parameter is broadcast over the batch and R of broadcast sums; B = 1 is plain RDA.
- ``vote``: flip bit j when more than half of the examples that bit j matters to ask
  for it. Bit j matters to example b when ``h_bj = 1``, with ``h_b = pi_P R[f]((theta, x_b), 1)``
  the update the example would ask for if every output bit were wrong (the sum over
  outputs of the formal partial derivatives). ``g_j = [2 #{b : g_bj = 1} > #{b : h_bj = 1}]``.
  For a look-up table this sets each entry to the majority label of the batch's examples
  that address it; two examples asking for the same flip never cancel as in parity.
- ``balanced``: vote, with each request weighted by the inverse frequency of the target
  bit it comes from. The cotangent is split by target value, ``dy = dy y + dy (1 + y)``,
  each part is pulled back separately (``g+ = pi_P R[f](.., dy y)``, ``g- = .. dy (1 + y)``,
  and ``h+``, ``h-`` likewise from ``y`` and ``1 + y``), and bit j flips when
  ``2 (w1 #g+_j + w0 #g-_j) > w1 #h+_j + w0 #h-_j`` with ``w1 = 1 / #{target bits = 1}``,
  ``w0 = 1 / #{target bits = 0}`` over the batch. For one-vs-rest heads of C classes a
  target bit is 1 only once in C, so plain vote leaves almost every entry 0; the
  balanced vote sets a table entry for class c when the examples of c reach its cell
  more often, in proportion, than the examples of the other classes.

Within a batch every example sees the same theta (the update is applied after the
batch), so batch 1 with either rule equals the per-example step of ``cg.compile``.
"""

from __future__ import annotations

import numpy as np

from ..calculus.para import as_para
from ..calculus.rdc import R
from ..compiler.pipeline import prepare
from ..core.diagram import build
from ..errors import CatgradError
from .bitparallel import Evaluator, pack, unpack
from .lower import to_netlist

COMBINE = ("parity", "vote", "balanced")


def _flat(t) -> int:
    return int(np.prod([d for d in t.shape], dtype=np.int64))


class RDATrainer:
    """Bit-parallel RDA for a Para over bits (every parameter, input and output a bit wire
    without a symbolic dimension: one example per lane)."""

    def __init__(self, model, combine: str = "parity"):
        if combine not in COMBINE:
            raise CatgradError(f"batched RDA combines updates by {' or '.join(COMBINE)}, not {combine!r}")
        self.model = model = as_para(model)
        self.combine = combine
        body = model.body
        for t in (*body.dom, *body.cod):
            if t.dtype.name != "bit" or t.symbols:
                raise CatgradError(f"RDA here trains models over bit wires of fixed shape, one example at a time; "
                                   f"this model has a {t} wire")
        self.param_types = [p.type for p in model.params]
        self.n_p = sum(_flat(t) for t in self.param_types)
        self.n_x = sum(_flat(t) for t in model.dom)
        self.n_y = sum(_flat(t) for t in model.cod)
        n = len(self.param_types)
        rf = R(body)
        grad = build(rf.dom, lambda b, ins: b.call(rf, ins)[:n])  # drop the input cotangent
        self.forward = Evaluator(to_netlist(prepare(body)))
        self.backward = Evaluator(to_netlist(prepare(grad)))

    def flatten(self, params) -> np.ndarray:
        return np.concatenate([np.asarray(p, dtype=bool).ravel() for p in params]) if params else np.zeros(0, bool)

    def unflatten(self, theta) -> list:
        out, k = [], 0
        for t in self.param_types:
            w = _flat(t)
            out.append(theta[k:k + w].reshape(t.shape))
            k += w
        return out

    def _lanes(self, theta, *cols):
        """Packed words for ``(theta broadcast, cols...)``: one lane per row of the columns."""
        n = len(cols[0])
        words = -(-n // 64)
        th = np.where(theta, np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0))[:, None]
        return np.concatenate([np.broadcast_to(th, (len(theta), words))] + [pack(c) for c in cols], axis=0), n

    def predict(self, theta, X) -> np.ndarray:
        """Bool ``(N, n_y)`` outputs for the rows of X (bool ``(N, n_x)``)."""
        x, n = self._lanes(theta, X)
        return unpack(self.forward.packed(x), n)

    def update(self, theta, X, Y):
        """One step on a batch: ``(theta_new, number of wrong examples)``."""
        x, n = self._lanes(theta, X)
        out = self.forward.packed(x)
        want = pack(Y)
        dy = out ^ want
        dy &= pack(np.ones((n, 1), bool))  # lanes past the last example (padding) are never wrong
        wrong_lanes = np.bitwise_or.reduce(dy, axis=0) if len(dy) else np.zeros(x.shape[1], np.uint64)
        m = int(np.unpackbits(wrong_lanes.view(np.uint8)).sum())
        if m == 0:
            return theta, 0
        g = unpack(self.backward.packed(np.concatenate([x, dy], axis=0)), n)  # (n, n_p) per-example updates
        if self.combine == "parity":
            flip = np.logical_xor.reduce(g, axis=0)
        elif self.combine == "balanced":
            pad = pack(np.ones((n, 1), bool))
            pos, neg = want & pad, ~want & pad
            n1 = int(Y.sum())
            w1, w0 = 1.0 / max(1, n1), 1.0 / max(1, Y.size - n1)
            count = lambda d: unpack(self.backward.packed(np.concatenate([x, d], axis=0)), n).sum(axis=0)  # noqa: E731
            asks = w1 * count(dy & pos) + w0 * count(dy & neg)
            flip = 2 * asks > w1 * count(pos) + w0 * count(neg)
        else:
            ones = np.full_like(dy, np.uint64(0xFFFFFFFFFFFFFFFF))
            h = unpack(self.backward.packed(np.concatenate([x, ones], axis=0)), n)
            flip = g.sum(axis=0) * 2 > h.sum(axis=0)
        return theta ^ flip, m

    def epoch(self, theta, X, Y, batch: int, order=None):
        """One pass over the rows (in ``order``); returns ``(theta, wrong examples seen)``."""
        idx = np.arange(len(X)) if order is None else order
        wrong = 0
        for lo in range(0, len(idx), batch):
            b = idx[lo:lo + batch]
            theta, m = self.update(theta, X[b], Y[b])
            wrong += m
        return theta, wrong


__all__ = ["RDATrainer", "COMBINE"]
