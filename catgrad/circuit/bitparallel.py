"""Bit-parallel evaluation of a :class:`~catgrad.circuit.netlist.Netlist`.

Samples are packed 64 to a ``uint64`` word (sample ``s`` is bit ``s % 64`` of word
``s // 64``), so one vectorised bitwise operation evaluates one gate on 64 samples
per word. The netlist is turned once into straight-line Python, one numpy ufunc call
per gate writing into a preallocated buffer (``out=``); buffers are reused as soon as
the last reader of a net has run (liveness), and the samples are processed in chunks
of ``chunk_words`` words, so memory stays bounded whatever the number of samples (by
default the chunk is as long as a budget of :data:`BUFFER_BYTES` for all live buffers
allows, at most :data:`MAX_CHUNK` words: long chunks amortise the per-gate call, which
costs about a microsecond).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .netlist import AND, NOT, OR, XOR, Netlist

_UFUNC = {AND: "_and", OR: "_or", XOR: "_xor", NOT: "_not"}
BUFFER_BYTES = 512 << 20
MAX_CHUNK = 16384


def pack(bits: np.ndarray) -> np.ndarray:
    """Bool ``(N, k)`` -> ``uint64`` ``(k, ceil(N / 64))``: column j's samples, 64 per word."""
    bits = np.asarray(bits, dtype=bool)
    n, k = bits.shape
    words = -(-n // 64)
    padded = np.zeros((k, words * 64), dtype=bool)
    padded[:, :n] = bits.T
    return np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64, copy=False)


def unpack(words: np.ndarray, n: int) -> np.ndarray:
    """The inverse of :func:`pack`: ``uint64`` ``(k, W)`` -> bool ``(n, k)``."""
    words = np.ascontiguousarray(words, dtype="<u8")
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :n]
    return bits.T.astype(bool)


def _schedule(nl: Netlist):
    """Straight-line code for one chunk and the number of buffers it needs."""
    base = nl.first_gate
    last = {}
    for j, (_, a, b) in enumerate(nl.gates):
        last[a] = j
        if b >= 0:
            last[b] = j
    keep = set(nl.outputs)
    free: list = []
    slot: dict = {}
    n_slots = 0

    def ref(net):
        if net < 2:
            return f"c{net}"
        if net < base:
            return f"x[{net - 2}]"
        return f"s{slot[net]}"

    lines = []
    for j, (kind, a, b) in enumerate(nl.gates):
        args = [ref(a)] + ([ref(b)] if b >= 0 else [])
        for v in {a, b}:  # a buffer whose last reader is this gate may be this gate's output
            if v >= base and last.get(v) == j and v not in keep:
                free.append(slot[v])
        net = base + j
        if free:
            slot[net] = free.pop()
        else:
            slot[net] = n_slots
            n_slots += 1
        lines.append(f"    {_UFUNC[kind]}({', '.join(args)}, out=s{slot[net]})")
    for k, o in enumerate(nl.outputs):
        lines.append(f"    _copy(y[{k}], {ref(o)})")
    head = [f"    s{i} = S[{i}]" for i in range(n_slots)]
    src = ("def run(x, y, S, c0, c1, _and=_and, _or=_or, _xor=_xor, _not=_not, _copy=_copy):\n"
           + "\n".join(head + lines + ["    return y"]))
    return src, n_slots


class Evaluator:
    """``Evaluator(netlist)(bits)``: bool ``(N, n_inputs)`` -> bool ``(N, n_outputs)``;
    :meth:`packed` works on packed words directly."""

    def __init__(self, nl: Netlist, chunk_words: int | None = None):
        self.netlist = nl
        src, self.n_slots = _schedule(nl)
        if chunk_words is None:
            chunk_words = max(64, min(MAX_CHUNK, BUFFER_BYTES // (8 * max(1, self.n_slots))))
        self.chunk_words = int(chunk_words)
        env = {"_and": np.bitwise_and, "_or": np.bitwise_or, "_xor": np.bitwise_xor, "_not": np.invert,
               "_copy": np.copyto}
        exec(compile(src, "<catgrad bit-parallel netlist>", "exec"), env)  # noqa: S102 - our own generated code
        self._run = env["run"]
        self.source = src
        self._buf = None

    def packed(self, x: np.ndarray) -> np.ndarray:
        """``uint64`` ``(n_inputs, W)`` -> ``uint64`` ``(n_outputs, W)``."""
        nl = self.netlist
        x = np.asarray(x)
        if x.dtype != np.uint64 or x.ndim != 2 or x.shape[0] != nl.n_inputs:
            raise ShapeError(f"the netlist takes uint64 words of shape ({nl.n_inputs}, W), got {x.dtype} {x.shape}")
        words = x.shape[1]
        y = np.empty((len(nl.outputs), words), dtype=np.uint64)
        cw = max(1, min(self.chunk_words, words))
        if self._buf is None or self._buf.shape[1] < cw:
            self._buf = np.empty((self.n_slots, cw), dtype=np.uint64)
            self._c0 = np.zeros(cw, dtype=np.uint64)
            self._c1 = np.full(cw, np.uint64(0xFFFFFFFFFFFFFFFF))
        for lo in range(0, words, cw):
            hi = min(words, lo + cw)
            w = hi - lo
            self._run(x[:, lo:hi], y[:, lo:hi], self._buf[:, :w], self._c0[:w], self._c1[:w])
        return y

    def __call__(self, bits: np.ndarray) -> np.ndarray:
        bits = np.asarray(bits, dtype=bool)
        if bits.ndim != 2 or bits.shape[1] != self.netlist.n_inputs:
            raise ShapeError(f"the netlist takes bits of shape (N, {self.netlist.n_inputs}), got {bits.shape}")
        return unpack(self.packed(pack(bits)), bits.shape[0])


__all__ = ["Evaluator", "pack", "unpack"]
