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
- Every other planned value computed at instruction ``j`` by an elementwise kernel
  that reads, itself (not through a view), an operand of the same type for the last
  time is written over that operand (each entry is read before it is written): it
  continues the operand's storage. Any other planned value gets a new buffer. So a
  buffer holds a chain of values, each written over the one before, and is in use
  from its first write to the last read of its last value (its *span*).
- ``donate``: ``{output position: input position}``. The output is written into the
  caller's input array when the types agree, the writing kernel is planned-capable,
  and the input (with its aliases) is read by nothing after that instruction; an
  elementwise kernel may also be its last reader. Before that, the input's array may
  hold values written over the input the same way (Adam's ``b2 v`` over ``v``), as long
  as each is dead by the time the output is written, or read there last by the
  elementwise kernel writing it.
- Every other value that escapes and is written by a planned-capable kernel gets a
  *ring*: a few arrays handed back by earlier calls, of which the backend reuses one
  only when nothing but the ring refers to it any more (its reference count), so
  the caller can no longer see it. A training loop that keeps only the latest state
  then allocates nothing per step; one that keeps every state gets fresh arrays.

:func:`plan` returns ``{instruction index: ("buf", k) | ("in", input position) | ("ring", r)}``,
the list of buffer types, the list of ring types and each buffer's span; the backend
allocates the buffers once per specialisation and the ring arrays when first needed.
Buffers whose spans are disjoint share memory (:func:`arena`), so the program holds
about its largest set of values live at once. How large that set is depends on the
order of the instructions: :func:`order` finds one that keeps it small (a step that
donates its state then holds one gradient and one temporary of the largest
parameter's size at a time, besides the activations the backward pass still needs).
"""

from __future__ import annotations

import heapq
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


def _escaping(prog, fresh) -> set:
    """The values that are outputs, or from which a non-fresh instruction (whose outputs
    may share its inputs' storage) derives one, transitively."""
    esc = set(prog.outputs)
    for j in range(len(prog.instrs) - 1, -1, -1):
        ins = prog.instrs[j]
        if not fresh[j] and any(o in esc for o in ins.outs):
            esc.update(ins.ins)
    return esc


def held_at_once(spans, sizes) -> int:
    """The most bytes of buffers in use at one instruction: a lower bound of the
    :func:`arena`'s size."""
    change: dict = {}
    for (a, b), size in zip(spans, sizes):
        change[a] = change.get(a, 0) + size
        change[b + 1] = change.get(b + 1, 0) - size
    most = now = 0
    for j in sorted(change):
        now += change[j]
        most = max(most, now)
    return most


def plan(prog, writes_out, elementwise_inplace, donate: dict | None = None, rings: bool = False) -> Plan:
    """``writes_out(j)``: instruction ``j``'s kernel takes ``out=`` and returns fresh
    memory otherwise; ``elementwise_inplace(j)``: it may write over an operand of the
    output's shape that it reads (an elementwise ufunc). ``rings``: give escaping
    values rings (the backend must then check reference counts before reusing)."""
    n = len(prog.instrs)
    fresh = [writes_out(j) for j in range(n)]
    types = prog.types
    last: dict = {}
    for j, ins in enumerate(prog.instrs):
        for v in ins.ins:
            last[v] = j
    # alias closure, backwards: a non-fresh instruction's outputs may share its inputs'
    # storage; via[v]: the last read of any value derived from v that way
    via: dict = {}
    for j in range(n - 1, -1, -1):
        ins = prog.instrs[j]
        if fresh[j]:
            continue
        for v in ins.ins:
            for o in ins.outs:
                via[v] = max(via.get(v, -1), last.get(o, -1), via.get(o, -1))
    esc = _escaping(prog, fresh)

    def end(v):  # the last read of v or of any view of it
        return max(last.get(v, -1), via.get(v, -1))

    def over(w, j):  # kernel j reads w itself (no view of it) for the last time and may write over it
        return last.get(w) == j and via.get(w, -1) < j and elementwise_inplace(j)

    def eligible(j):
        ins = prog.instrs[j]
        if not fresh[j] or len(ins.outs) != 1:
            return False
        t = types[ins.outs[0]]
        return all(types[v].dtype == t.dtype for v in ins.ins)

    # donation: output o is written into input u by its instruction j when nothing reads u
    # (or a view of it) after j, and j reads u directly only if it may write over it; of
    # several outputs donated into one input, the first so written gets it
    writer = {o: j for j, ins in enumerate(prog.instrs) for o in ins.outs}
    pos = {v: i for i, v in enumerate(prog.inputs)}
    due: dict = {}  # donated input -> (the instruction writing its output into it, that output)
    for p, i in (donate or {}).items():
        o, u = prog.outputs[p], prog.inputs[i]
        j = writer.get(o)
        if (j is not None and eligible(j) and types[u] == types[o] and u not in esc
                and via.get(u, -1) < j and (last.get(u, -1) < j or over(u, j)) and j < due.get(u, (n,))[0]):
            due[u] = (j, o)
    into = {o: u for u, (_, o) in due.items()}

    def keeps(o, u):  # a value o may live in u's array before u's output is written there
        j = due[u][0]
        return end(o) < j or over(o, j)

    target: dict = {}
    buffers: list = []  # buffer k's type ...
    spans: list = []  # ... and the instructions from its first write to its last read
    home: dict = {u: ("in", pos[u]) for u in due}  # the storage of each value planned so far
    ring_types: list = []
    for j, ins in enumerate(prog.instrs):
        if not eligible(j):
            continue
        o = ins.outs[0]
        t = types[o]
        if o in esc:
            if o in into:  # (u's array is free by now: see keeps)
                target[j] = ("in", pos[into[o]])
            elif rings:
                target[j] = ("ring", len(ring_types))
                ring_types.append(t)
            continue
        for w in ins.ins:  # in place: over an operand of o's type read here for the last time
            h = home.get(w)
            if h is not None and types[w] == t and over(w, j) and (h[0] == "buf" or keeps(o, prog.inputs[h[1]])):
                break
        else:
            h = ("buf", len(buffers))
            buffers.append(t)
            spans.append((j, j))
        if h[0] == "buf":
            k = h[1]
            spans[k] = (spans[k][0], max(spans[k][1], end(o), j))
        home[o] = h
        target[j] = h
    return Plan(target, buffers, ring_types, spans)


def order(prog, writes_out, elementwise_inplace, nbytes, donate: dict | None = None) -> list:
    """An order of ``prog``'s instructions (a list of their indices) that keeps few bytes
    of planned values alive at once: list scheduling, each time running, of the
    instructions whose operands are computed, the one that adds the fewest bytes, i.e.
    the bytes of what it computes (nothing for an output, a view, or a value written into
    a donated input's array, as :func:`plan` may) less the bytes of what it reads last,
    counting also the cheapest step it opens (an instruction it computes the last operand
    of, or whose operand it stops sharing) when that one frees bytes; ties go to the
    earlier instruction in the given order. So a gradient is used up
    before the next one is computed, and a value that frees two is computed before one
    that frees nothing. ``nbytes(v)``: the size of value ``v``.

    As in :func:`~catgrad.compiler.passes.schedule`, an instruction nothing reads that
    reads a donated input (a parameter update) waits for every other reader of that
    input (or of a view of it), so that it can write its output there."""
    instrs, types = prog.instrs, prog.types
    n = len(instrs)
    fresh = [writes_out(j) for j in range(n)]
    esc = _escaping(prog, fresh)
    donated = {prog.inputs[i] for i in (donate or {}).values()}
    roots: dict = {v: (v,) for v in prog.inputs}  # the storage each value may share
    producer: dict = {}
    for j, ins in enumerate(instrs):
        r = None if fresh[j] else tuple(dict.fromkeys(x for v in ins.ins for x in roots.get(v, ())))
        for o in ins.outs:
            roots[o] = (o,) if r is None else r
            producer[o] = j
    touch = [tuple(dict.fromkeys(x for v in ins.ins for x in roots.get(v, ()))) for ins in instrs]
    readers: dict = {}
    for j, rs in enumerate(touch):
        for x in rs:
            readers.setdefault(x, []).append(j)
    left = {x: len(js) for x, js in readers.items()}  # readers not run yet
    held = {o: nbytes(o) for j, ins in enumerate(instrs) if fresh[j] for o in ins.outs if o not in esc}
    read = {v for ins in instrs for v in ins.ins}
    into = {prog.outputs[p]: prog.inputs[i] for p, i in (donate or {}).items()}
    succ: list = [[] for _ in range(n)]
    need: list = []  # per instruction: operands not computed yet, and readers waited for
    owed: list = []  # per instruction: operands not computed yet
    for j, ins in enumerate(instrs):
        deps = {producer[v] for v in ins.ins if v in producer}
        wait = set()
        if not any(o in read for o in ins.outs):  # a sink: after the other readers of what it is donated into
            wait = {r for o in ins.outs if o in into for r in readers.get(into[o], ()) if r != j} - deps
        for d in deps:
            succ[d].append((j, 1))
        for d in wait:
            succ[d].append((j, 0))
        need.append(len(deps) + len(wait))
        owed.append(len(deps))

    # per instruction: its operands it might write over (elementwise, of its output's type),
    # the bytes it computes, and the values it reads that hold bytes
    over = [tuple(w for w in ins.ins if types[w] == types[ins.outs[0]]) if len(ins.outs) == 1 and elementwise_inplace(j)
            else () for j, ins in enumerate(instrs)]
    adds = [sum(held.get(o, 0) for o in ins.outs) for ins in instrs]
    holds = [tuple(x for x in touch[j] if x in held) for j in range(n)]

    def over_donated(j):  # j may write its output over a donated input (or what lives there) it reads last
        return any(w in donated and left.get(w) == 1 for w in over[j])

    def cost(j):  # the bytes held after j less those held before it
        add = 0 if over[j] and over_donated(j) else adds[j]
        return add - sum(held[x] for x in holds[j] if left[x] == 1)

    def score(j):
        """j's cost plus the least cost, if negative, of an instruction that j lets run
        (j computes its last operand) or makes cheaper (j was the other reader of a value
        it reads last)."""
        c = cost(j)
        follow = [s for s, _ in succ[j] if need[s] == 1]
        for x in touch[j]:
            if left[x] == 2:
                r = next(r for r in readers[x] if r != j and not done[r])
                if need[r] == 0:
                    follow.append(r)
        if not follow:
            return c
        for x in touch[j]:
            left[x] -= 1
        best = min(cost(s) for s in follow)
        for x in touch[j]:
            left[x] += 1
        return c + min(best, 0)

    done = [False] * n
    now: dict = {}  # the score an instruction was last queued with
    heap = []
    for j in range(n):
        if need[j] == 0:
            now[j] = score(j)
            heap.append((now[j], j))
    heapq.heapify(heap)
    out: list = []
    while len(out) < n:
        if heap:
            c, j = heapq.heappop(heap)
            if done[j] or c != now[j]:  # done, or queued since with another score
                continue
        else:  # sinks waiting for one another (outputs donated crosswise): the first goes
            j = next(j for j in range(n) if not done[j] and owed[j] == 0)
            need[j] = 0
        if over[j] and over_donated(j):  # what j computes lives in a donated input's array
            donated.add(instrs[j].outs[0])
            held[instrs[j].outs[0]] = 0
        done[j] = True
        out.append(j)
        for x in touch[j]:
            left[x] -= 1
        for s, dep in succ[j]:
            need[s] -= 1
            owed[s] -= dep
        # rescored: what is ready now, and the ready readers of what j read whose cost or
        # score may have changed
        again = {s for s, _ in succ[j] if need[s] == 0 and not done[s]}
        for x in touch[j]:
            if 1 <= left[x] <= 2:
                again.update(r for r in readers[x] if not done[r] and need[r] == 0)
        for r in again:
            now[r] = score(r)
            heapq.heappush(heap, (now[r], r))
    return out


__all__ = ["Plan", "arena", "held_at_once", "order", "plan"]
