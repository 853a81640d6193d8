"""Buffer planning: which values of a shape-specialised Program a backend may compute
into storage it keeps across calls, and which into arrays the caller gave up.

A value is *planned* when its kernel can write into a given array (``out=``) and
returns nothing but that array or fresh memory. Other kernels (a reshape, a
transpose, an implicit broadcast) may hand back a view of an input, so their output
is taken to share storage with every input: an *alias*. For a value ``v`` let
``last(v)`` be the last instruction that reads ``v`` or any alias derived from it,
and say ``v`` *escapes* when it or such an alias is an output of the program.

- A value that escapes is never planned: what the caller receives is never written
  again by a later call.
- Every other planned value gets a buffer of its shape and dtype that is free, i.e.
  whose previous value had ``last < j`` at the writing instruction ``j`` (so no
  kernel reads and writes the same buffer). Buffers are reused greedily in program
  order: liveness intervals of one shape and dtype share storage.
- ``donate``: ``{output position: input position}``. The output is written into the
  caller's input array when the types agree, the writing kernel is planned-capable,
  and the input (with its aliases) is read by nothing after that instruction; an
  elementwise kernel may also be its last reader (it reads each entry before writing it).
- Every other value that escapes and is written by a planned-capable kernel gets a
  *ring*: a few arrays handed back by earlier calls, of which the backend reuses one
  only when nothing but the ring refers to it any more (its reference count), so
  the caller can no longer see it. A training loop that keeps only the latest state
  then allocates nothing per step; one that keeps every state gets fresh arrays.

:func:`plan` returns ``{instruction index: ("buf", k) | ("in", input position) | ("ring", r)}``,
the list of buffer types, the list of ring types and each buffer's span (the
instructions from its first write to its last read); the backend allocates the
buffers once per specialisation and the ring arrays when first needed. Buffers of
different types whose spans are disjoint share memory (:func:`arena`), so the
program holds about its largest set of values live at once, not one array per type.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Plan:
    target: dict  # instruction index -> ("buf", k), ("in", input position) or ("ring", r)
    buffers: list  # buffer k's TensorType
    rings: list = field(default_factory=list)  # ring r's TensorType
    spans: list = field(default_factory=list)  # buffer k is in use from instruction spans[k][0] to spans[k][1]


def arena(spans, sizes, align: int = 64):
    """Byte offsets for buffers of ``sizes`` bytes in one block of memory, and the block's
    size: two buffers may overlap in memory only when their ``spans`` (closed intervals
    of instruction indices) are disjoint, i.e. one is last read before the other is first
    written within a call (planned buffers carry nothing from one call to the next).
    Greedy: largest first, each at the lowest aligned offset clear of every placed buffer
    whose span meets its own."""
    order = sorted(range(len(sizes)), key=lambda k: (-sizes[k], k))
    offsets = [0] * len(sizes)
    placed: list = []
    for k in order:
        (a, b), size = spans[k], sizes[k]
        clash = sorted((offsets[i], offsets[i] + sizes[i]) for i in placed
                       if spans[i][0] <= b and a <= spans[i][1])
        off = 0
        for lo, hi in clash:
            if off + size <= lo:
                break
            off = max(off, -(-hi // align) * align)
        offsets[k] = off
        placed.append(k)
    return offsets, max((offsets[k] + sizes[k] for k in range(len(sizes))), default=0)


def plan(prog, writes_out, elementwise_inplace, donate: dict | None = None, rings: bool = False) -> Plan:
    """``writes_out(j)``: instruction ``j``'s kernel takes ``out=`` and returns fresh
    memory otherwise; ``elementwise_inplace(j)``: it may write over an operand of the
    output's shape that it reads (an elementwise ufunc). ``rings``: give escaping
    values rings (the backend must then check reference counts before reusing)."""
    n = len(prog.instrs)
    fresh = [writes_out(j) for j in range(n)]
    last: dict = {}
    for j, ins in enumerate(prog.instrs):
        for v in ins.ins:
            last[v] = j
    outputs = set(prog.outputs)
    # alias closure, backwards: a non-fresh instruction's outputs may share its inputs'
    # storage; via[v]: the last read of any value derived from v that way
    via: dict = {}
    esc = {v: True for v in outputs}
    for j in range(n - 1, -1, -1):
        ins = prog.instrs[j]
        if fresh[j]:
            continue
        for v in ins.ins:
            for o in ins.outs:
                via[v] = max(via.get(v, -1), last.get(o, -1), via.get(o, -1))
                esc[v] = esc.get(v, False) or esc.get(o, False)

    target: dict = {}
    buffers: list = []
    busy: list = []  # buffer k holds a value read up to instruction busy[k]
    first: list = []  # buffer k is first written at instruction first[k]
    of_type: dict = {}
    pos = {v: i for i, v in enumerate(prog.inputs)}
    donors = {prog.outputs[p]: prog.inputs[i] for p, i in (donate or {}).items()}
    used_donors: set = set()
    ring_types: list = []
    for j, ins in enumerate(prog.instrs):
        if not fresh[j] or len(ins.outs) != 1:
            continue
        o = ins.outs[0]
        t = prog.types[o]
        if t.rank == 0 or any(prog.types[v].dtype != t.dtype for v in ins.ins):
            continue
        if esc.get(o, False):
            u = donors.get(o)
            if (u is not None and u not in used_donors and prog.types[u] == t and not esc.get(u, False)
                    and via.get(u, -1) < j and (last.get(u, -1) < j or (last[u] == j and elementwise_inplace(j)))):
                used_donors.add(u)
                target[j] = ("in", pos[u])
            elif rings:
                target[j] = ("ring", len(ring_types))
                ring_types.append(t)
            continue
        same = of_type.setdefault(t, [])  # the buffers of this type, in order of creation
        for k in same:
            if busy[k] < j:
                break
        else:
            k = len(buffers)
            buffers.append(t)
            busy.append(-1)
            first.append(j)
            same.append(k)
        busy[k] = max(last.get(o, -1), via.get(o, -1), j)
        target[j] = ("buf", k)
    return Plan(target, buffers, ring_types, list(zip(first, busy)))


__all__ = ["Plan", "arena", "plan"]
