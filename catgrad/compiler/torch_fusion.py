"""Fused lowerings for the torch backend: subgraphs of a Program that torch has one
kernel for.

Reverse derivatives and optimizers are written with a few general primitives (R of
max pooling is ``fold(mask * dy / count)`` over the unfolded windows; Adam is a
dozen elementwise ops per parameter). That keeps R closed and every backend small,
but on torch each op is a pass over memory, where torch has a fused kernel for the
whole subgraph. This module holds, in one table, the subgraphs the torch backend
recognises and the torch code it emits for each instead. A pattern is written as a
term over the primitives (the same terms the op's ``rd`` or the optimizer builds); a
match replaces its instructions by one *fused* instruction, which the backend places
where the last of them stood. A match is taken only where it is exact:

- ``maxpool_rd``: R of 2-d max pooling over tiling windows (stride = kernel, no
  padding, no dilation). Ties are split equally, as catgrad's R does, so torch's
  ``max_pool2d_with_indices_backward`` (which routes a tie to one entry) is not used;
  instead ``dx = mask * up(dy / count)`` with ``mask = (x == up(y))``,
  ``count = sumpool(mask)`` and ``up`` nearest-neighbour upsampling: a few passes
  over ``x`` in its own memory layout, instead of unfold's copy, a 6-d broadcast
  compare, a reduction, a 6-d multiply and col2im.
- ``conv_weight_grad``: the weight gradient of a convolution, which R writes as a
  convolution over the batch axis (``conv(x^T, dy^T)^T``), is torch's
  ``convolution_backward`` for the weight (the kernel autograd uses).
- ``affine``: a dense layer ``x @ W + broadcast(b)`` is ``torch.addmm(b, x, W)`` (the
  bias added inside the matrix kernel; equal to rounding).
- ``relu_rd``: R of relu, ``dy * heaviside(z)``, is ``threshold_backward(dy, z, 0)``
  (reading ``relu(z)`` instead of ``z`` where the program has it, so ``z`` dies early).
- ``cpu_matmul`` (CPU only): a two-operand matrix product. One whose result has few
  columns (``2 <= N < 16``) and many rows, such as a classifier's output layer
  ``[B, 10]`` or the weight gradient ``x^T dy`` of one, is computed transposed,
  ``(b^T a^T)^T``; the dense layer ``affine`` likewise. MKL's single-threaded kernels
  are about three times slower for a narrow result (31 against 12 us for
  ``[128, 256] @ [256, 10]``) and as fast for a wide one, so the result is a transposed
  view of a ``[N, M]`` product. A float32 product ``x @ W`` with both operands in that
  orientation (a dense layer's forward pass, as ``affine`` too) runs on oneDNN's
  inner-product kernel, :func:`onednn_linear`, where torch has it: on the AMD EPYC this
  was measured on, 81 us against MKL's 155 us for the ``[128, 256] x [256, 256]``
  product of a 256-wide layer, with the same float32 accumulation (errors against a
  float64 product of the size of MKL's). The gradients ``dy @ W^T`` and ``x^T dy`` stay
  on MKL: oneDNN runs them as fast, but repacks ``W`` into a scratch buffer or copies
  ``x`` on every call, transients that raised the digits step's peak memory by 3%.
- ``adam``: the Adam update of one parameter
  ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2``,
  ``p' = p - (lr / (1 - b1^t')) m' / (sqrt(v') / sqrt(1 - b2^t') + eps)`` is
  ``torch.ops.aten._fused_adam`` (the functional form of the kernel behind
  ``torch.optim.Adam(fused=True)``): one pass over the parameter instead of about
  thirteen, after copying its inputs (the functional form copies; with ``donate`` the
  in-place ``torch._fused_adam_`` updates the given state instead). Its
  hyperparameters are Python floats, read from the state's scalar tensors at run time
  (``.item()``).

Fusion is off under ``torch_compile`` (inductor fuses by itself, and ``.item()`` would
break the graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch
import torch.fx as fx

from ..core.primitive import RULES
from ..core.types import Ob
from .program import Instr, Program

# -- a small term matcher over the Program ---------------------------------------------------
#
# A term is a variable name (a str: binds the value, or checks it equals the value bound
# before), a number (a constant filled with it), ("bc", term) (the term, or a broadcast
# of it), or (op_name, term, ...) (the value is made by that op from values matching the
# terms; add and mul also match with their arguments swapped).

_COMMUTATIVE = {"add", "mul"}


class _Matcher:
    def __init__(self, prog: Program, cpu: bool = False):
        self.prog, self.cpu = prog, cpu
        self.made_by = {o: j for j, ins in enumerate(prog.instrs) for o in ins.outs}

    def relu_of(self) -> dict:
        """value z -> the value relu(z), where the program computes it."""
        if not hasattr(self, "_relu"):
            self._relu = {i.ins[0]: i.outs[0] for i in self.prog.instrs if i.op.name == "relu" and len(i.ins) == 1}
        return self._relu

    def instr(self, v):
        j = self.made_by.get(v)
        return (j, self.prog.instrs[j]) if j is not None else (None, None)

    def match(self, term, v, env: dict, covered: set) -> bool:
        if isinstance(term, str):
            if term in env:
                return env[term] == v
            env[term] = v
            return True
        if isinstance(term, float):
            c = self.prog.consts.get(v)
            return c is not None and np.asarray(c).size > 0 and bool(np.all(np.asarray(c) == term))
        head, *args = term
        j, ins = self.instr(v)
        if head == "bc":
            if ins is not None and ins.op.name == "broadcast" and self._try(args[0], ins.ins[0], env, covered):
                covered.add(j)
                return True
            return self.match(args[0], v, env, covered)
        if ins is None or ins.op.name != head or len(ins.ins) != len(args) or len(ins.outs) != 1:
            return False
        orders = [ins.ins, ins.ins[::-1]] if head in _COMMUTATIVE else [ins.ins]
        for vals in orders:
            e, c = dict(env), set(covered)
            if all(self.match(a, x, e, c) for a, x in zip(args, vals)):
                env.clear(), env.update(e)
                covered.clear(), covered.update(c)
                covered.add(j)
                return True
        return False

    def _try(self, term, v, env, covered) -> bool:
        e, c = dict(env), set(covered)
        if self.match(term, v, e, c):
            env.clear(), env.update(e)
            covered.clear(), covered.update(c)
            return True
        return False


@dataclass
class Fusion:
    """A matched subgraph: the instructions it replaces, the values it reads and the
    values it gives (read outside it), and ``emit(env) -> {value: torch value}`` that
    computes those from ``env`` (value -> torch value of every value it reads). With
    ``donates``, ``emit(env, inplace=True)`` writes its outputs into those inputs."""

    name: str
    covered: set
    ins: tuple
    outs: tuple
    emit: Callable
    donates: tuple = ()  # inputs that ``emit(env, inplace=True)`` overwrites with outputs


# -- R of max pooling ------------------------------------------------------------------------

_MAXPOOL_RD = ("fold", ("mul", "MASK", ("bc", ("reshape", ("div", "DY", "COUNT")))))
_MASK = ("eq", ("unfold", "X"), ("bc", ("reshape", "Y")))


def _maxpool_rd(m: _Matcher, j: int):
    env, covered = {}, set()
    out = m.prog.instrs[j].outs[0]
    if not (m.match(_MAXPOOL_RD, out, env, covered) and m.match(("sum", "MASK"), env["COUNT"], env, covered)
            and m.match(_MASK, env["MASK"], env, covered)):
        return None
    X, Y, DY = env["X"], env["Y"], env["DY"]
    x_t = m.prog.types[X]
    unfold = m.instr(m.instr(env["MASK"])[1].ins[0])[1]
    count = m.instr(env["COUNT"])[1]
    geo = lambda op: tuple(tuple(dict(op.attrs)[k]) for k in ("kernel", "stride", "padding", "dilation"))  # noqa: E731
    K, s, p, d = geo(m.prog.instrs[j].op)
    S = x_t.shape[2:]
    O = tuple(a // k if isinstance(a, int) else None for a, k in zip(S, K))
    # The fused form holds where the windows tile X: stride = kernel, no padding (so the
    # unfold's fill is never read), no dilation, sizes divisible; the unfold and the fold
    # take the same windows, the fold gives X's type, Y and DY are [B, C, O1, O2] (they are
    # upsampled), and the ties are counted over the window axes of 2-d pooling, (4, 5).
    tiling = s == K and not any(p) and all(v == 1 for v in d) and all(isinstance(a, int) and a % k == 0
                                                                        for a, k in zip(S, K))
    if not (tiling and geo(unfold.op) == (K, s, p, d) and m.prog.types[out] == x_t
            and m.prog.types[Y].shape == m.prog.types[DY].shape == x_t.shape[:2] + O
            and tuple(dict(count.op.attrs).get("axes") or ()) == (4, 5)):
        return None
    dtype = x_t.dtype.torch()

    def emit(v):
        x, y, dy = v[X], v[Y], v[DY]
        F = torch.nn.functional
        mask = torch.eq(x, F.interpolate(y, scale_factor=K, mode="nearest")).to(dtype)
        count = F.avg_pool2d(mask, K, K, divisor_override=1)  # the number of ties, >= 1
        return {out: torch.mul(mask, F.interpolate(torch.div(dy, count), scale_factor=K, mode="nearest"))}

    return Fusion("maxpool_rd", covered, (X, Y, DY), (out,), emit)


# -- the weight gradient of a convolution ------------------------------------------------------

_CONV_DW = ("conv", ("transpose", "X"), ("transpose", "DY"))


def _conv_weight_grad(m: _Matcher, j: int):
    out = m.prog.instrs[j].outs[0]
    covered = {j}
    v = m.prog.instrs[j].ins[0]
    while True:  # R cuts the correlation to the kernel's size (stride > 1) with slices
        k, cut = m.instr(v)
        if cut is None or cut.op.name != "slice":
            break
        a = dict(cut.op.attrs)
        if a["axis"] < 2 or a["start"] != 0:
            return None
        covered.add(k)
        v = cut.ins[0]
    env = {}
    if not m.match(_CONV_DW, v, env, covered):
        return None
    conv = m.instr(v)[1]
    swaps = [m.prog.instrs[j]] + [m.instr(a)[1] for a in conv.ins]
    if any(tuple(dict(t.op.attrs)["perm"]) != (1, 0) + tuple(range(2, t.op.cod[0].rank)) for t in swaps):
        return None
    x_t, w_t = m.prog.types[env["X"]], m.prog.types[out]
    n = x_t.rank - 2
    if n not in (1, 2, 3) or not all(isinstance(k, int) for k in w_t.shape):
        return None
    a = dict(conv.op.attrs)
    if int(a.get("groups", 1)) != 1:
        return None
    # R's conv over the batch has stride = the forward dilation, dilation = the forward
    # stride and the same padding
    tup = lambda v: (v,) * n if isinstance(v, int) else tuple(v)  # noqa: E731
    fwd_dilation, pad, fwd_stride = tup(a.get("stride", 1)), tup(a.get("padding", 0)), tup(a.get("dilation", 1))
    X, DY = env["X"], env["DY"]
    # ... and dy has the size of that forward convolution's output, with the result's
    # kernel K: O = (S + 2p - d (K - 1) - 1) // s + 1 (R's programs do; a correlation
    # cut to some other length is no weight gradient torch has a kernel for)
    S, O, K = x_t.shape[2:], m.prog.types[DY].shape[2:], w_t.shape[2:]
    if not all(isinstance(v, int) for v in S + O) or any(
            o != (s_ + 2 * p - d * (k - 1) - 1) // st + 1
            for s_, o, k, p, d, st in zip(S, O, K, pad, fwd_dilation, fwd_stride)):
        return None
    shape = list(w_t.shape)

    def emit(v):
        x, dy = v[X], v[DY]
        weight = x.new_empty((1,)).expand(shape)  # only its shape is read
        return torch.ops.aten.convolution_backward(dy, x, weight, None, list(fwd_stride), list(pad),
                                                   list(fwd_dilation), False, [0] * n, 1, [False, True, False])[1]

    return Fusion("conv_weight_grad", covered, (X, DY), (out,), lambda v: {out: emit(v)})


# -- Adam ------------------------------------------------------------------------------------

_ADAM = ("sub", "P", ("div", ("mul", ("bc", ("div", "LR", ("sub", 1.0, ("exp", ("mul", "T1", ("log", "B1")))))), "M1"),
                      ("add", ("div", ("sqrt", "V1"), ("bc", ("sqrt", ("sub", 1.0, ("exp", ("mul", "T1", ("log", "B2"))))))),
                       ("bc", "EPS"))))
_ADAM_M = ("add", ("mul", ("bc", "B1"), "M"), ("mul", ("bc", ("sub", 1.0, "B1")), "X"))
# the same with g = -X: the step hands Adam the negated gradient, and the sign simplification
# folds that negation into the sum (an explicit neg of X does not survive the passes)
_ADAM_M_NEG = ("sub", ("mul", ("bc", "B1"), "M"), ("mul", ("bc", ("sub", 1.0, "B1")), "X"))
_ADAM_V = ("add", ("mul", ("bc", "B2"), "V"), ("mul", ("bc", ("sub", 1.0, "B2")), ("mul", "X", "X")))


def _adam(m: _Matcher, j: int):
    env, covered = {}, set()
    out = m.prog.instrs[j].outs[0]
    if not m.match(_ADAM, out, env, covered):
        return None
    negated = not m._try(_ADAM_M, env["M1"], env, covered)
    if negated and not m._try(_ADAM_M_NEG, env["M1"], env, covered):
        return None
    if not m.match(_ADAM_V, env["V1"], env, covered):
        return None
    # (P, M, V, X, M1 and V1 share one float type: the elementwise ops' type rules see to that)
    if any(m.prog.types[env[k]].shape != () for k in ("LR", "B1", "B2", "EPS", "T1")):
        return None
    P, M, V, X, T1 = (env[k] for k in ("P", "M", "V", "X", "T1"))
    hyper = {k: env[k] for k in ("LR", "B1", "B2", "EPS")}
    M1, V1 = env["M1"], env["V1"]

    def emit(v, inplace=False):
        h = dict(lr=_method("item", v[hyper["LR"]]), beta1=_method("item", v[hyper["B1"]]),
                 beta2=_method("item", v[hyper["B2"]]), eps=_method("item", v[hyper["EPS"]]),
                 weight_decay=0.0, amsgrad=False, maximize=negated)  # (g = -X: flipped back)
        # the kernel walks the four tensors as flat arrays: give them one (dense) layout
        p, g, m_, v_ = (_method("contiguous", v[k]) for k in (P, X, M, V))
        if inplace:  # donated: p, m and v become p', m' and v'
            _call(torch._fused_adam_, [p], [g], [m_], [v_], [], [v[T1]], **h)
            return {out: p, M1: m_, V1: v_}
        res = _call(torch.ops.aten._fused_adam.default, [p], [g], [m_], [v_], [], [v[T1]], **h)
        return {out: res[0][0], M1: res[2][0], V1: res[3][0]}

    return Fusion("adam", covered, (P, M, V, X, T1) + tuple(hyper.values()), (out, M1, V1), emit, donates=(P, M, V))


# -- dense layers: x @ W + b and R of relu --------------------------------------------------

_AFFINE = ("add", ("einsum", "X", "W"), ("bc", "B"))


def _affine(m: _Matcher, j: int):
    """``x @ W + broadcast(b)`` (x: [n, k], W: [k, m], b: [m]) is one ``torch.addmm(b, x, W)``:
    the product is accumulated onto the bias inside the matrix kernel instead of in a
    second pass over the [n, m] result (torch's ``nn.Linear``). It rounds the sum once
    where the plain graph rounds the product and then the sum, so the two agree to
    rounding, not bit for bit."""
    env, covered = {}, set()
    out = m.prog.instrs[j].outs[0]
    if not m.match(_AFFINE, out, env, covered):
        return None
    # the product is either argument of the add (it matches with its arguments swapped)
    mm = next(i for i in (m.instr(a)[1] for a in m.prog.instrs[j].ins)
              if i is not None and i.op.name == "einsum" and i.ins == (env["X"], env["W"]))
    X, W, B = env["X"], env["W"], env["B"]
    tb, to = m.prog.types[B], m.prog.types[out]
    # (one dtype throughout: einsum's and add's type rules see to that)
    if dict(mm.op.attrs).get("spec") != "ab,bc->ac" or not to.dtype.is_float or tb.rank != 1 \
            or tb.shape[0] != to.shape[1]:
        return None
    if m.cpu and _narrow(to.shape):  # (W^T x^T + b)^T: the wide product MKL is fast at
        return Fusion("affine", covered, (X, W, B), (out,),
                      lambda v: {out: torch.t(torch.addmm(torch.unsqueeze(v[B], 1), torch.t(v[W]), torch.t(v[X])))})
    if m.cpu and _onednn(to.dtype):
        return Fusion("affine", covered, (X, W, B), (out,), lambda v: {out: onednn_linear(v[X], torch.t(v[W]), v[B])})
    return Fusion("affine", covered, (X, W, B), (out,), lambda v: {out: torch.addmm(v[B], v[X], v[W])})


_ONEDNN = bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def _onednn(dtype) -> bool:
    """Whether a product of this catgrad dtype runs on :func:`onednn_linear`: float32,
    with oneDNN built into torch and not switched off (``torch.backends.mkldnn.enabled``),
    read when the program is compiled."""
    return _ONEDNN and dtype.torch() == torch.float32 and bool(torch.backends.mkldnn.enabled)


@torch.overrides.wrap_torch_function(lambda x, w, bias=None: (x, w, bias))
def onednn_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w^T (+ bias)`` for ``x: [M, K]``, ``w: [N, K]`` (any strides, so ``w`` may
    be the transposed view of a ``[K, N]`` matrix), float32 on CPU, by oneDNN's
    inner-product kernel (``torch.ops.mkldnn._linear_pointwise``, the kernel behind
    torch's own CPU ``linear`` fusions). oneDNN has no product over an empty ``K``, so
    that one is ``torch.mm``'s (zeros, or the bias). One node in a traced graph."""
    if x.shape[1] == 0:
        out = torch.mm(x, torch.t(w))
        return out if bias is None else out + bias
    return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")


def _narrow(shape) -> bool:
    """A ``[M, N]`` result that MKL computes faster as the transpose of a ``[N, M]`` one:
    ``2 <= N < 16`` columns (a static size) and ``M >= 16`` rows (or a symbolic batch)."""
    rows, cols = shape
    return isinstance(cols, int) and 2 <= cols < 16 and not (isinstance(rows, int) and rows < 16)


def _cpu_matmul(m: _Matcher, j: int):
    """A two-operand matrix product ``einsum`` (any transposition of ``ab,bc->ac``) on CPU,
    with ``r @ s`` the product in its own orientation: for a narrow result
    (:func:`_narrow`) as ``(s^T r^T)^T``, for another float32 one whose operands are
    stored as ``[rows, k]`` and ``[k, cols]`` as ``onednn_linear(r, s^T)``: the same
    sums, taken by the kernel that is fast for the shape."""
    ins = m.prog.instrs[j]
    if not m.cpu or len(ins.ins) != 2:
        return None
    # (einsum's type rule has checked the spec's form, that the operands share a dtype, and
    # that every index of one operand only is kept)
    lhs, out = dict(ins.op.attrs)["spec"].replace(" ", "").split("->")
    terms = lhs.split(",")
    to = m.prog.types[ins.outs[0]]
    if len(out) != 2 or any(len(t) != 2 for t in terms) or not to.dtype.is_float:
        return None
    shared = set(terms[0]) & set(terms[1])
    if len(shared) != 1 or shared & set(out) or set(out) != set(terms[0] + terms[1]) - shared:
        return None
    (k,) = shared
    rows, cols = out
    # r: the operand with the row index, as [rows, k]; s: the other one, as [k, cols]
    ri = 0 if rows in terms[0] else 1
    r_t, s_t = terms[ri] == rows + k, terms[1 - ri] == k + cols
    R, S, res = ins.ins[ri], ins.ins[1 - ri], ins.outs[0]
    narrow = _narrow(to.shape)
    # oneDNN without copies wants r with k innermost and s with the columns innermost (the
    # plain x @ W of a layer without bias): given r^T (a weight gradient x^T dy, summed over
    # the batch) it copies r first, given s^T (an input gradient dy @ W^T) it repacks s in
    # a scratch buffer on every call; both transients raise the step's peak memory, and MKL
    # takes transposed operands as they are
    if not narrow and not (r_t and s_t and _onednn(to.dtype)):
        return None

    def emit(v):
        r = v[R] if r_t else torch.t(v[R])
        s = v[S] if s_t else torch.t(v[S])
        if narrow:
            return {res: torch.t(torch.mm(torch.t(s), torch.t(r)))}
        return {res: onednn_linear(r, torch.t(s))}

    return Fusion("narrow_matmul" if narrow else "onednn_matmul", {j}, (R, S), (res,), emit)


_RELU_RD = ("mul", "DY", ("heaviside", "Z"))


def _relu_rd(m: _Matcher, j: int):
    """``dy * heaviside(z)`` (R of relu) is ``threshold_backward(dy, z, 0)``, the kernel
    torch's own relu backward runs: one pass instead of a compare, a cast and a product.
    Equal to the plain graph for every finite ``dy`` and non-NaN ``z`` (where the mask
    is 0 the kernel writes +0, the product -0 for a negative ``dy``; the two compare equal)."""
    env, covered = {}, set()
    out = m.prog.instrs[j].outs[0]
    if not m.match(_RELU_RD, out, env, covered):
        return None
    DY, Z = env["DY"], env["Z"]  # (of one float type: heaviside's and mul's type rules see to that)
    # relu(z) > 0 exactly where z > 0 (and both are NaN together): reading the forward's
    # relu(z) instead of z, as torch's autograd does, lets z be freed after the forward
    r = m.relu_of().get(Z)
    if r is not None and m.made_by[r] < max(covered):  # (made before the fused op's place)
        Z = r
    return Fusion("relu_rd", covered, (DY, Z), (out,),
                  lambda v: {out: torch.ops.aten.threshold_backward(v[DY], v[Z], 0)})


def _call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; on fx proxies, recorded as one node directly (a
    multi-tensor op's ``__torch_function__`` dispatch costs milliseconds to trace)."""
    proxy = next((a for a in args if isinstance(a, fx.Proxy)), None) or \
        next((a[0] for a in args if isinstance(a, list) and a and isinstance(a[0], fx.Proxy)), None)
    if proxy is None:
        return fn(*args, **kwargs)
    return proxy.tracer.create_proxy("call_function", fn, args, kwargs)


def _method(name: str, x):
    """``x.name()``, recorded directly on an fx proxy."""
    if isinstance(x, fx.Proxy):
        return x.tracer.create_proxy("call_method", name, (x,), {})
    return getattr(x, name)()


#: The table: the op at the root of a pattern -> the matchers tried there.
PATTERNS: dict[str, list] = {"fold": [_maxpool_rd], "transpose": [_conv_weight_grad], "sub": [_adam],
                             "add": [_affine], "mul": [_relu_rd],
                             "einsum": [_cpu_matmul]}


def fuse(prog: Program, donate: bool = False, cpu: bool = False) -> Program:
    """``prog`` with every match of :data:`PATTERNS` replaced by one fused instruction
    (an :class:`Instr` whose op is a :class:`FusedOp`), placed where the last of the
    replaced instructions stood. A match is dropped when another one took some of its
    instructions, or when a value it drops is read outside it.

    ``donate``: the program's inputs may be overwritten. A fusion that can update its
    inputs in place does so when they are program inputs that no output returns, nor
    any value that may share their memory (:func:`may_view`), and that nothing outside
    it reads, directly or through such a value, after it (the backend schedules it
    after those readers). ``cpu``: the program runs on CPU (the ``cpu_matmul`` kernel
    choices)."""
    m = _Matcher(prog, cpu)
    readers: dict = {}
    for k, ins in enumerate(prog.instrs):
        for a in ins.ins:
            readers.setdefault(a, set()).add(k)
    outputs = set(prog.outputs)
    taken: set = set()
    fusions = []
    for j in reversed(range(len(prog.instrs))):
        if j in taken:
            continue
        for pattern in PATTERNS.get(prog.instrs[j].op.name, ()):
            f = pattern(m, j)
            if f is None or f.covered & taken:
                continue
            last = max(f.covered)
            made = {o for k in f.covered for o in prog.instrs[k].outs}
            dropped = made - set(f.outs)
            if any(v in outputs or readers.get(v, set()) - f.covered for v in dropped):
                continue  # an intermediate value is needed elsewhere
            if any(r <= last for v in f.outs for r in readers.get(v, set()) - f.covered):
                continue
            taken |= f.covered
            fusions.append((last, f))
            break
    if not fusions:
        return prog
    at = {last: f for last, f in fusions}
    inputs = set(prog.inputs)

    def sharing(v) -> set:  # v and the values that may share its memory (views of it, of those...)
        out, todo = {v}, [v]
        while todo:
            for r in readers.get(todo.pop(), ()):
                if may_view(prog.instrs[r].op):
                    new = set(prog.instrs[r].outs) - out
                    out |= new
                    todo.extend(new)
        return out

    def overwritable(v, k, covered) -> bool:  # an input nothing returns or reads after k, through views too
        shared = sharing(v)
        return v in inputs and not shared & outputs and \
            all(r < k for w in shared for r in readers.get(w, ()) if r not in covered)

    instrs = []
    for k, ins in enumerate(prog.instrs):
        if k in at:
            f = at[k]
            inplace = donate and f.donates and all(overwritable(v, k, f.covered) for v in f.donates)
            emit = (lambda env, f=f: f.emit(env, inplace=True)) if inplace else f.emit
            op = FusedOp(f.name, Ob(*(prog.types[v] for v in f.outs)), emit, f.donates if inplace else ())
            instrs.append(Instr(op, tuple(f.ins), tuple(f.outs)))
        elif k not in taken:
            instrs.append(ins)
    q = prog.copy()
    q.instrs = instrs
    return q


class FusedOp:
    """The op of a fused instruction: ``emit(env) -> {value: torch value}``; it writes
    into the input values ``overwrites`` (donated), so it must run after their readers."""

    prim = SimpleNamespace(elementwise=False, kind="fused")
    attrs = ()

    def __init__(self, name: str, cod: Ob, emit: Callable, overwrites: tuple = ()):
        self.name, self.cod, self.emit, self.overwrites = name, cod, emit, overwrites

    def __repr__(self):
        return f"fused:{self.name}"


def may_view(op) -> bool:
    """Whether ``op``'s result on torch may share memory with one of its inputs: its torch
    rule is marked ``views`` (a reshape, a transpose, a broadcast...), or it is a fused
    update made in place, which hands back the inputs it wrote into."""
    if isinstance(op, FusedOp):
        return bool(op.overwrites)
    rule = RULES["torch"].lookup(op.prim)
    return rule is not None and rule.may_view(op)


__all__ = ["PATTERNS", "Fusion", "FusedOp", "fuse", "may_view", "onednn_linear"]
