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
the list of buffer types and the list of ring types; the backend allocates the
buffers once per specialisation and the ring arrays when first needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Plan:
    target: dict  # instruction index -> ("buf", k), ("in", input position) or ("ring", r)
    buffers: list  # buffer k's TensorType
    rings: list = field(default_factory=list)  # ring r's TensorType


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
            same.append(k)
        busy[k] = max(last.get(o, -1), via.get(o, -1), j)
        target[j] = ("buf", k)
    return Plan(target, buffers, ring_types)


__all__ = ["Plan", "plan"]
