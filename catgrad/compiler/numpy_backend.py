"""The numpy backend: an optimized Program specialised per call shape and emitted as
one straight-line Python function.

The backend receives the Program that :func:`~catgrad.compiler.pipeline.prepare`
already lowered and optimized. On the first call with a given tuple of input shapes
it binds the symbolic dimensions, folds the constants that now have known shapes,
and generates code such as ``tanh_12 = np.tanh(add_11)`` whose kernels come from
the numpy rule table (:func:`~catgrad.core.primitive.bind`): staged rules do their
type-only work here, once (a BLAS plan for each two-operand einsum, normalised
reduction axes). A later call whose arguments have the last call's shapes and dtypes
goes straight to its function (``fits``: straight-line checks that make no objects);
others look theirs up by shapes.

Intermediate values are written with ``out=`` into buffers planned once per shape
(:mod:`.buffers`) and reused by later calls; outputs are never such buffers, so what a
call hands back is never changed by a later call while anything refers to it. Outputs
are written into arrays recycled from earlier calls (a *ring* per output) only when
the reference count says nothing outside the ring holds them any more: numpy views,
``memoryview``s and ``torch.from_numpy`` tensors all hold a reference, so they keep
an array from being recycled; a raw pointer (``a.ctypes.data``) or a weak reference
does not. Outputs may share memory with inputs (an input handed straight back, a
reshaped view): treat arrays as immutable. Input arrays are only written when
donated (``donate=``).

A step on a small model is mostly Python: each Python object a call makes (a view for
``.T``, a numpy scalar) costs about as much as a small kernel, and all of it is memory
allocated per step. So the generated code makes none where it can: views of values in
planned buffers are made once, scalars (a loss) are written into 0-d buffers and rings
like any value, and a donating program keeps the views it takes of its inputs
(``x.T``) with the array they came from, for as long as the same array comes in (it
holds a reference to that array meanwhile, as to the donated arrays its checks passed).
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections import Counter

import numpy as np

from ..core.evaluate import _as_array
from ..core.primitive import bind, check_lowerable
from ..core.types import bind_shape, resolve_shape
from ..errors import CatgradError, ShapeError
from .buffers import Plan, arena, held_at_once, order, plan
from .passes import optimize
from .pipeline import as_program, implicit_broadcasts, value_names
from .program import Program


def _numpy_name(fn) -> str | None:
    """``np.tanh`` for a kernel that is a public numpy function, so the code says so."""
    name = getattr(fn, "__name__", None)
    return f"np.{name}" if name and getattr(np, name, None) is fn else None


def _inline_call(kernel) -> tuple | None:
    """``("np.f", ", k=v")`` for a numpy function, possibly under a
    ``functools.partial`` with literal keywords: the call is then written out and costs
    no partial indirection per call."""
    if isinstance(kernel, functools.partial) and not kernel.args:
        head = _numpy_name(kernel.func)
        kws = kernel.keywords
        if head is None or not all(_literal(v) for v in kws.values()):
            return None
        return head, "".join(f", {k}={v!r}" for k, v in kws.items())
    head = _numpy_name(kernel)
    return None if head is None else (head, "")


def _literal(v) -> bool:
    if isinstance(v, tuple):
        return all(_literal(x) for x in v)
    return v is None or type(v) in (int, bool, str)


def _scalar_consts(prog: Program) -> dict:
    """Folded constants whose entries are all equal and whose every reader is an
    elementwise op with another operand of the full shape: numpy's broadcasting of a
    0-d array of the same dtype gives the same numbers, without reading a whole array.
    (That other operand is no constant and no broadcast, which may be passed unbroadcast.)"""
    bcast = {i.outs[0] for i in prog.instrs if i.op.name == "broadcast"}
    readers: dict = {}
    for ins in prog.instrs:
        for v in ins.ins:
            readers.setdefault(v, []).append(ins)
    out = {}
    for v, c in prog.consts.items():
        c = np.asarray(c)
        if v in prog.outputs or c.ndim == 0 or c.size == 0 or c.dtype == object or v not in readers:
            continue
        flat = c.reshape(-1)
        if not (flat == flat[0]).all():  # (NaN never equals itself: left as it is)
            continue
        full = prog.types[v].shape
        if all(r.op.prim.elementwise and r.op.cod[0].shape == full
               and any(u not in prog.consts and u not in bcast and prog.types[u].shape == full for u in r.ins)
               for r in readers[v]):
            out[v] = np.array(flat[0], dtype=c.dtype)
    return out


def _refs_when_free() -> int:
    """What ``sys.getrefcount(a)`` says in :func:`_take` when only the list ``ring``
    holds the array (the list, the local name and the call's argument)."""
    ring = [np.empty(0)]
    a = ring[0]
    return sys.getrefcount(a)


_FREE = _refs_when_free()


def _take(ring: list, shape: tuple, dtype):
    """An array of ``ring`` (two slots) that nothing outside the ring refers to any more,
    or a new one that replaces the older (which the caller still holds, so it lives on
    outside the ring). A call rather than a conditional expression written out per
    output: the generated code compiles a fifth faster, for some 50 ns per output."""
    a = ring[0]
    if sys.getrefcount(a) == _FREE:
        return a
    a = ring[1]
    if sys.getrefcount(a) == _FREE:
        return a
    a = np.empty(shape, dtype)
    ring.pop(0)
    ring.append(a)
    return a


class _CopyTo:
    """The kernel of a planned broadcast: a marker only, as the generator writes
    ``np.copyto(out, x)`` in its place; it writes into ``out``."""

    writes_out = True


_COPYTO = _CopyTo()


def _nbytes(t, binding) -> int:
    """The bytes of a value of type ``t`` with the symbolic dimensions of ``binding``."""
    return math.prod(resolve_shape(t.shape, binding)) * np.dtype(t.dtype.numpy).itemsize


def _writes_out(kernel) -> bool:
    """A kernel that takes ``out=`` and otherwise returns fresh memory: a numpy ufunc,
    or a rule's kernel marked ``writes_out``. (A kernel may also carry ``inline``: its
    call as a template, ``{0}``, ``{1}``... the operands and ``{out}`` the keyword
    arguments, written into the generated code in place of a call to the kernel.)"""
    if isinstance(kernel, functools.partial):  # a rule whose attributes bind() filled in
        kernel = kernel.func
    return isinstance(kernel, np.ufunc) or getattr(kernel, "writes_out", False) is True


# an operand's view in a kernel's call template: ``{0}.T``, ``{1}.reshape(-1)``
_OPERAND_VIEW = re.compile(r"\{(\d+)\}\.(T\b|reshape\((?:[^()]|\([^()]*\))*\))")


@functools.lru_cache(maxsize=1024)
def _view_maker(suffix: str):
    """``lambda a: a.<suffix>`` (``T``, ``reshape((2, 3))``...), compiled once per suffix."""
    return eval(f"lambda a: a.{suffix}")  # noqa: S307 - our own suffix


def _keep_view(cell: list, a, make):
    """``make(a)``, remembered in ``cell`` with ``a`` until another array comes in."""
    cell[0], cell[1] = a, make(a)
    return cell[1]


class _Views:
    """Views (``.T``, ``.reshape(...)``) the generated code would otherwise make on every
    call, each a new Python object: of a value that lives in a planned buffer, made once
    here (``resident``: value name -> the array it lives in); of an input that keeps its
    identity from call to call (``kept``), made on the first call with that array and kept
    with it until another comes in (which holds a reference to it meanwhile)."""

    def __init__(self, env: dict, lines: list, kept: set):
        self.env, self.lines, self.kept = env, lines, set(kept)
        self.resident: dict = {}
        self._made: dict = {}

    def of(self, value: str, suffix: str) -> str | None:
        """The name of ``value.<suffix>`` made once or kept, or None (written as it is)."""
        key = (value, suffix)
        view = self._made.get(key)
        if view is not None:
            return view
        view = f"_h{len(self._made)}"
        if value in self.resident:
            self.env[view] = _view_maker(suffix)(self.env[self.resident[value]])
            self.resident[view] = view
        elif value in self.kept:
            self.env[f"{view}_c"] = [None, None]
            self.env[f"{view}_m"] = _view_maker(suffix)
            self.lines.append(f"    {view} = {view}_c[1] if {view}_c[0] is {value} else "
                              f"_keep_view({view}_c, {value}, {view}_m)")
            self.kept.add(view)
        else:
            return None
        self._made[key] = view
        return view


def _view_method(op, binding) -> str | None:
    """``reshape((2, 3))``, ``T`` or ``transpose((1, 2, 0))``: the array method that makes
    the view a reshape or a transpose op computes."""
    if op.name == "reshape":
        return f"reshape({resolve_shape(op.cod[0].shape, binding)!r})"
    if op.name == "transpose":
        perm = op.kwargs.get("perm")
        return "T" if perm is None else f"transpose({tuple(int(i) for i in perm)!r})"
    return None


def _kept_inputs(prog: Program, planned: Plan, donate: dict | None) -> set:
    """Positions of inputs that a loop feeding a donating program its own outputs passes
    the same array every call: those not donated, and donated ones whose output is the
    input itself or written into its array. (Not without donation: there the state
    comes back in new arrays, or ring arrays that a kept view would hold on to.)"""
    if not donate:
        return set()
    writer = {ins.outs[0]: j for j, ins in enumerate(prog.instrs) if len(ins.outs) == 1}
    kept = set(range(len(prog.inputs)))
    for p, i in donate.items():
        o = prog.outputs[p]
        if o != prog.inputs[i] and planned.target.get(writer.get(o)) != ("in", i):
            kept.discard(i)
    return kept


def _leading_one_reshapes(prog: Program, kernels: list) -> set:
    """Reshapes that only add or drop leading axes of length 1 and are read only by
    broadcasts into planned arrays: ``np.copyto`` broadcasts the operand as it is."""
    readers: dict = {}
    for j, ins in enumerate(prog.instrs):
        for v in ins.ins:
            readers.setdefault(v, []).append(j)

    def core(shape):
        shape = list(shape)
        while shape and shape[0] == 1:
            shape.pop(0)
        return shape

    return {j for j, ins in enumerate(prog.instrs)
            if ins.op.name == "reshape" and ins.outs[0] not in prog.outputs
            and core(prog.types[ins.outs[0]].shape) == core(prog.types[ins.ins[0]].shape)
            and readers.get(ins.outs[0]) and all(kernels[r] is _COPYTO for r in readers[ins.outs[0]])}


def generate(prog: Program, binding: dict, input_names=None, reuse: bool = True, donate: dict | None = None):
    """Straight-line Python for ``prog`` (already folded for ``binding``). ``reuse``:
    kernels that can write into preallocated buffers do so (:mod:`.buffers`);
    ``donate`` (``{output position: input position}``) lets them write outputs into
    the caller's input arrays."""
    env = {"np": np, "_asarray": np.asarray, "_keep_view": _keep_view}
    name = value_names(prog, input_names)
    lines = []
    scalars = _scalar_consts(prog)
    for v, c in sorted(prog.consts.items()):
        if v in name and v not in prog.inputs:
            c = scalars.get(v, c)
            env[name[v]] = c
            c = np.asarray(c)
            shown = repr(c.item()) if c.size == 1 else f"array of shape {c.shape}"
            lines.append(f"    # {name[v]} = {shown} ({c.dtype})")
    # numpy's own broadcasting in the readers does a broadcast of one number for free;
    # a broadcast of a vector costs every reader a buffered iteration that allocates
    # (about 13-34 kB a call) and loops once per row, so it is written into a planned
    # buffer instead (``np.copyto``), once, and read as a plain array
    implicit = {j for j in implicit_broadcasts(prog) if math.prod(prog.types[prog.instrs[j].ins[0]].shape) == 1}
    bound: dict = {}  # op -> kernel (kernels are pure functions of their operands: shared)

    def kernel_of(op):
        k = bound.get(op)
        if k is None:
            k = bound[op] = bind(op, "numpy", binding)
        return k

    kernels = [None if j in implicit else _COPYTO if ins.op.name == "broadcast" else kernel_of(ins.op)
               for j, ins in enumerate(prog.instrs)]
    if reuse:
        # the plan for the given order, and, where inputs are donated, for an order that
        # keeps few bytes alive at once (list scheduling, :func:`.buffers.order`): the one
        # that holds fewer bytes at once. (Without donation the step holds its old state
        # and its new one anyway, and the search would only lengthen the compile.)
        def writes(j):  # instruction j (in prog's order) writes into a given out=
            return _writes_out(kernels[j])

        def in_place(j):  # ... and may write over an operand it reads last
            return prog.instrs[j].op.prim.elementwise and writes(j)

        def planned_in(perm):
            p = prog.copy()
            p.instrs = [prog.instrs[j] for j in perm]
            pl = plan(p, lambda i: writes(perm[i]), lambda i: in_place(perm[i]), donate, rings=True)
            return held_at_once(pl.spans, [_nbytes(t, binding) for t in pl.buffers]), perm, p, pl

        options = [planned_in(range(len(prog.instrs)))]
        if donate:
            options.append(planned_in(order(prog, writes, in_place, lambda v: _nbytes(prog.types[v], binding), donate)))
        _, perm, prog, planned = min(options, key=lambda c: c[0])
        kernels = [kernels[j] for j in perm]
        implicit = {i for i, j in enumerate(perm) if j in implicit}
    else:
        planned = Plan({}, [])
    shapes = [resolve_shape(t.shape, binding) for t in planned.buffers]
    dts = [np.dtype(t.dtype.numpy) for t in planned.buffers]
    sizes = [_nbytes(t, binding) for t in planned.buffers]
    offsets, total = arena(planned.spans, sizes)
    block = np.empty(total, np.uint8)
    for k, (sh, dt, off, size) in enumerate(zip(shapes, dts, offsets, sizes)):
        env[f"_buf{k}"] = block[off:off + size].view(dt).reshape(sh)
    for r, t in enumerate(planned.rings):
        env[f"_R{r}"] = [None, None]
        env[f"_F{r}"] = functools.partial(_take, env[f"_R{r}"], resolve_shape(t.shape, binding),
                                          np.dtype(t.dtype.numpy))
    if planned.rings:
        lines.append(f"    # {len(planned.rings)} output ring(s) (_F0()...): an array handed back earlier is reused "
                     f"once nothing else refers to it")
    if planned.buffers:
        lines.append(f"    # {len(planned.buffers)} buffer(s) in one block of {total} bytes kept across calls: "
                     + ", ".join(f"_buf{k}: {t}" for k, t in enumerate(planned.buffers)))
    views = _Views(env, lines, {name[prog.inputs[i]] for i in _kept_inputs(prog, planned, donate)})
    bypass = _leading_one_reshapes(prog, kernels)
    storage = {name[v]: name[v] for v in prog.inputs}  # value -> the array it was written into
    for j, ins in enumerate(prog.instrs):
        if j in implicit or j in bypass:  # numpy's own broadcasting in the readers (or np.copyto) does it
            name[ins.outs[0]] = name[ins.ins[0]]
            continue
        kernel = kernels[j]
        method = _view_method(ins.op, binding)
        if method is not None:  # the method itself: the rules' np.reshape, np.transpose are Python wrappers
            view = views.of(name[ins.ins[0]], method)
            if view is not None:  # a view made once, or kept while the same array comes in
                name[ins.outs[0]] = view
                continue
            lines.append(f"    {name[ins.outs[0]]} = {name[ins.ins[0]]}.{method}")
            continue
        where = planned.target.get(j)
        if kernel is _COPYTO:  # a broadcast into the array planned for it, or a new one
            shape = resolve_shape(ins.op.cod[0].shape, binding)
            if where is None:
                dst = f"np.empty({shape!r}, {name[ins.ins[0]]}.dtype)"
            elif where[0] == "ring":
                lines.append(f"    _o = _F{where[1]}()")
                dst = "_o"
            else:
                dst = f"_buf{where[1]}" if where[0] == "buf" else name[prog.inputs[where[1]]]
            lines.append(f"    {name[ins.outs[0]]} = {dst}; np.copyto({name[ins.outs[0]]}, {name[ins.ins[0]]})")
            if where is not None and where[0] == "buf":
                views.resident[name[ins.outs[0]]] = dst
            continue
        template = getattr(kernel, "inline", None)  # a kernel that says how to write its call out
        at = getattr(kernel, "inline_at", None)  # ... or how, given the operands' shapes
        if at is not None:
            r = at([resolve_shape(prog.types[v].shape, binding) for v in ins.ins],
                   [np.dtype(prog.types[v].dtype.numpy) for v in ins.ins])
            if r is not None:
                template, consts = r
                for k, c in enumerate(consts):
                    env[f"_k{j}_{k}"] = c
                    template = template.replace(f"{{c{k}}}", f"_k{j}_{k}")
        call, kws = _inline_call(kernel) or (f"_{name[ins.outs[0]]}", "")
        if call.startswith("_") and template is None:
            env[call] = kernel
        dst = None  # the array written into, when the kernel's result is taken from it
        scratch = None  # ... through this one first
        if where is not None and where[0] == "ring":
            lines.append(f"    _o = _F{where[1]}()")
            kws += ", out=_o"
            dst = "_o"
        elif where is not None:
            dst = f"_buf{where[1]}" if where[0] == "buf" else name[prog.inputs[where[1]]]
            t = prog.types[ins.outs[0]]
            if (ins.op.prim.elementwise and dst in {storage.get(name[i]) for i in ins.ins}
                    and math.prod(resolve_shape(t.shape, binding)) == 1):
                # numpy copies an operand that overlaps out= when they have one entry (about
                # 1 kB allocated per call, as Adam's step count t + 1): written next to it
                scratch = f"_one{j}"
                env[scratch] = np.empty(resolve_shape(t.shape, binding), np.dtype(t.dtype.numpy))
            kws += f", out={scratch or dst}"
        lhs = ", ".join(name[o] for o in ins.outs) + ("," if len(ins.outs) > 1 else "")
        if template is not None:
            operands = [name[i] for i in ins.ins]
            if "}." in template:  # an operand's view
                template = _OPERAND_VIEW.sub(lambda m: views.of(operands[int(m[1])], m[2]) or m[0], template)
            call = template.format(*operands, out=kws)
        else:
            call = f"{call}({', '.join(name[i] for i in ins.ins)}{kws})"
        if scratch is not None:
            lines.append(f"    {call}; np.copyto({dst}, {scratch}); {lhs} = {dst}")
        elif dst is not None and prog.types[ins.outs[0]].rank == 0 and not isinstance(kernel, np.ufunc):
            # (kernels such as np.dot hand back a new numpy scalar even when they write out=;
            # a ufunc hands back the out= array itself)
            lines.append(f"    {call}; {lhs} = {dst}")
        else:
            lines.append(f"    {lhs} = {call}")
        if where is not None and where[0] != "ring":
            storage[name[ins.outs[0]]] = dst
        if where is not None and where[0] == "buf":
            views.resident[name[ins.outs[0]]] = dst
    rets = []
    # kernels may give numpy scalars for rank 0: hand back 0-d arrays of the declared dtype
    # (a value planned into an array is that array already)
    loose = {o for ins in prog.instrs for o in ins.outs} - {prog.instrs[j].outs[0] for j in planned.target}
    for v in prog.outputs:
        rets.append(f"_asarray({name[v]})" if prog.types[v].rank == 0 and v in loose else name[v])
    lines.append(f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    args = ", ".join(name[v] for v in prog.inputs)
    src = f"def run({args}):\n" + "\n".join(lines)
    exec(compile(src, "<catgrad numpy program>", "exec"), env)  # noqa: S102 - our own generated code
    fn = env["run"]
    fn.source = src
    fn.program = prog  # (in the order the code runs it)
    env["_owned"] = fn.owned = [None] * len(prog.inputs)
    # compiled on the function's second call (a shape met once, as an epoch's last short
    # batch, never needs it; compiling it takes about a quarter of the time ``run`` takes)
    fn.fits = _not_yet
    fn.fits_source = functools.partial(_fits_source, prog, {v: name[v] for v in prog.inputs}, binding, donate, env)
    return fn


def _fits_source(prog: Program, name: dict, binding: dict, donate: dict | None, env: dict) -> str:
    """The source of ``fits(*args)`` (``name``: each input's name in the generated code):
    whether a call may skip NumpyProgram's checks and run the generated function: every
    argument a numpy array of the shape and dtype bound here,
    every donated one the array the checks passed last time (``_owned[i]``: C-contiguous,
    passed once), still writeable, and not passed again in another place of its shape
    and dtype. Straight-line code, which makes no Python object but the flags it reads."""
    env["_nd"] = np.ndarray
    donated = set((donate or {}).values())
    checks, kinds = [], []
    for k, v in enumerate(prog.inputs):
        env[f"_dt{k}"] = np.dtype(prog.types[v].dtype.numpy)
        kinds.append((resolve_shape(prog.types[v].shape, binding), env[f"_dt{k}"]))
        same = f"{name[v]} is _owned[{k}] and {name[v]}.flags.writeable" if k in donated else f"type({name[v]}) is _nd"
        checks.append(f"{same} and {name[v]}.shape == {kinds[k][0]!r} and {name[v]}.dtype is _dt{k}")
    checks += [f"{name[prog.inputs[i]]} is not {name[prog.inputs[k]]}" for i in range(len(kinds)) if i not in donated
               for k in sorted(donated) if kinds[k] == kinds[i]]
    return f"def fits({', '.join(name[v] for v in prog.inputs)}):\n    return ({' and '.join(checks) or 'True'})\n"


def _not_yet(*args) -> bool:
    return False


def _make_fits(fn) -> None:
    """Compile ``fn.fits`` from its source (see :func:`generate`)."""
    code = compile(fn.fits_source(), "<catgrad numpy program>", "exec")
    exec(code, fn.__globals__)  # noqa: S102 - our own generated code (beside run, in its globals)
    fn.fits = fn.__globals__["fits"]


class NumpyProgram:
    """A compiled program on numpy: ``prog(*arrays) -> tuple of arrays``.

    ``reuse`` (default on): intermediate values are computed into buffers allocated
    once per input shapes and reused by every later call with those shapes; nothing
    handed back to the caller lives in such a buffer, so an output of one call is never
    changed by a later call. (Concurrent calls with the same shapes from several
    threads would share the buffers: give each thread its own compiled program.)

    ``donate``: ``True`` (output ``i`` may be written into input ``i``'s array, for every
    ``i`` where the types agree; the training step's parameters and optimizer state
    come first on both sides) or ``{output position: input position}``. A donated input
    array may be overwritten by the call: the caller gives it up and uses the returned
    arrays instead. Arrays that are not writeable numpy arrays, or that are passed in
    two places at once, or not C-contiguous, are copied first (views of one another are
    not detected). The program keeps a reference to the donated arrays of its last
    call (passed again, they skip the checks) and to the inputs it took views of,
    until other arrays come in.
    """

    def __init__(self, program: Program, passes: bool = True, input_names=None, reuse: bool = True,
                 donate=None):
        check_lowerable({i.op: None for i in program.instrs}, "numpy")  # (each distinct op once, in order)
        self.program = program
        self.passes = passes
        self.input_names = input_names
        self.dom = program.dom
        self.cod = program.cod
        self.reuse = reuse
        if donate is True:
            donate = {i: i for i in range(min(len(self.dom), len(self.cod))) if self.dom[i] == self.cod[i]}
        self.donate = dict(donate or {})
        bad = [(o, i) for o, i in self.donate.items()
               if not (0 <= o < len(self.cod) and 0 <= i < len(self.dom) and self.cod[o] == self.dom[i])]
        if bad:
            raise CatgradError(f"donate: output/input pairs {bad} do not exist or differ in type")
        self._donated = sorted(set(self.donate.values()))
        self._dtypes = [np.dtype(t.dtype.numpy) for t in self.dom]
        self._arity = len(self.dom)
        self._cache: dict = {}
        self._hot = None
        self.fast = self._entry()  # the same as calling the program, without the cost of a method call

    def specialise(self, shapes: tuple):
        binding: dict = {}
        for i, (t, s) in enumerate(zip(self.dom, shapes)):
            bind_shape(t, s, binding, f"input {i}")
        prog = optimize(self.program, binding) if self.passes else self.program
        return generate(prog, binding, self.input_names, reuse=self.reuse, donate=self.donate)

    def _own(self, args):
        """Donated arguments the generated code may write into (copies where needed)."""
        shared: frozenset | set = frozenset()  # (the empty one is a shared constant)
        if len(dict.fromkeys(map(id, args))) < len(args):  # (rare: an array passed in two places)
            shared = {k for k, n in Counter(map(id, args)).items() if n > 1}
        for i in self._donated:
            a = args[i]
            # (C-contiguous too: some generated calls, np.dot, write only into such arrays;
            # the dtype is already the declared one, as __call__ converted the arguments)
            if type(a) is not np.ndarray or not a.flags.writeable or not a.flags.c_contiguous or id(a) in shared:
                args[i] = np.array(a, order="C")
        return args

    def __call__(self, *args):
        return self.fast(*args)

    def _entry(self):
        """The program as a plain function. (Calling the object or a bound method of it
        with more than four arguments makes CPython copy them into a new array first.)"""
        slow, arity = self._call, self._arity

        def fast(*args):
            fn = self._hot  # the function of the last call: a loop calls with the same shapes
            if fn is not None and len(args) == arity and fn.fits(*args):
                return fn(*args)
            return slow(args)

        return fast

    def _call(self, args):
        # the shapes (the cache key) and the dtypes, compared with the declared ones
        # (identical dtype objects compare fast)
        try:
            key = tuple([a.shape for a in args])
            ok = [a.dtype for a in args] == self._dtypes
        except AttributeError:
            ok = False
        if not ok:
            args = self._convert(args)
            key = tuple([a.shape for a in args])
        if self._donated:
            args = self._own(list(args))
        fn = self._cache.get(key)
        if fn is None:
            fn = self._cache[key] = self.specialise(key)
        for i in self._donated:  # (checked by _own: fn.fits lets the same arrays through next time)
            fn.owned[i] = args[i]
        if self._hot is fn and fn.fits is _not_yet:  # called twice in a row: worth the checks in one
            _make_fits(fn)
        self._hot = fn
        return fn(*args)

    def _convert(self, args):
        """The arguments as numpy arrays of the declared dtypes, or a located error."""
        if len(args) != len(self.dom):
            raise ShapeError(f"the program takes {len(self.dom)} input(s) of types {self.dom}, got {len(args)}")
        names = self.input_names or range(len(self.dom))
        return [_as_array(a, t, f"input {n}") for n, a, t in zip(names, args, self.dom)]

    def source(self, *shapes) -> str:
        """The generated code for inputs of these shapes (for inspection)."""
        return self.specialise(tuple(shapes)).source


def compile_numpy(program, passes: bool = True, input_names=None, reuse: bool = True, donate=None) -> NumpyProgram:
    """The numpy backend's factory. ``program``: an optimized :class:`Program`, or a
    diagram (lowered and optimized here, as :func:`~catgrad.compiler.prepare` does).
    ``reuse`` and ``donate``: see :class:`NumpyProgram`."""
    return NumpyProgram(as_program(program, passes), passes=passes, input_names=input_names, reuse=reuse,
                        donate=donate)


__all__ = ["NumpyProgram", "compile_numpy", "generate"]
