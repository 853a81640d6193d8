"""The torch backend: an optimized Program as a torch module (and a ``torch.fx.GraphModule``).

The backend walks the Program once and applies each primitive's rule from the
``torch`` rule table (the same rules ``cg.evaluate(..., backend="torch")`` runs
eagerly) to stand-ins for tensors that write every torch call down as one line of
Python: the ``forward`` of the module that runs (:func:`program_module`). The same
module traced by ``torch.fx`` is the GraphModule (made on first use;
:func:`graph_module` builds one with fx directly):

- the Program's inputs (parameters, optimizer state, data) are placeholders and its
  outputs the graph's output: the module is functional, nothing is updated in place;
- constants are registered buffers (``get_attr`` nodes), made once, and move with
  ``.to(device)``;
- targets are torch functions, so ``print(gm.code)`` reads like hand-written torch;
- symbolic dimensions (the batch) are read from the inputs (``x.size(0)``), so one
  graph serves every batch size and ``torch.compile`` can treat them as dynamic;
- independent elementwise ops of one kind (the same Adam update of every parameter,
  say) run as one multi-tensor ``torch._foreach_*`` call: instructions are grouped by
  their depth in the program, so a group never waits on one of its own members. On
  CPU this is what makes the graph cheaper than eager torch, whose backward pass
  runs in C++ but whose every op here would otherwise cost a Python call.

Graphs are cached by the structural hash of the Program (and the device).
``torch_compile=True`` wraps the module in ``torch.compile(fullgraph=True)`` (a
graph break is an error, not a silent fallback); a string names the
``torch.compile`` backend instead of inductor.
"""

from __future__ import annotations

import hashlib
import operator
import re

import numpy as np
import torch
import torch.fx as fx

from ..core.primitive import bind, check_lowerable
from ..core.types import bind_shape
from ..errors import CatgradError, ShapeError
from .pipeline import as_program, implicit_broadcasts, value_names
from .program import Program
from .torch_fusion import FusedOp, fuse, may_view

_CACHE: dict = {}


def structural_key(prog: Program, input_names=None) -> tuple:
    """Equal for programs that compute the same thing the same way (same instructions,
    types and constant values), so their graphs can be shared."""
    h = hashlib.sha1()
    for v in sorted(prog.consts):
        c = np.ascontiguousarray(prog.consts[v])
        h.update(f"{v}:{c.dtype.str}:{c.shape}".encode())
        h.update(c.tobytes())
    instrs = tuple((i.op, i.ins, i.outs) for i in prog.instrs)
    return (tuple(prog.types), tuple(prog.inputs), tuple(prog.outputs), instrs, h.hexdigest(),
            tuple(input_names or ()))


def _device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise CatgradError(f"device {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CatgradError(f"device {device!r} is not available: this torch ({torch.__version__}) sees no CUDA device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CatgradError(f"device {device!r} is not available: there are {torch.cuda.device_count()} CUDA devices")
    if dev.type not in ("cpu", "cuda"):
        raise CatgradError(f"device {device!r}: the torch backend runs on cpu or cuda")
    return dev


#: Multi-tensor versions of elementwise primitives (float values only).
FOREACH = {"add": "_foreach_add", "sub": "_foreach_sub", "mul": "_foreach_mul", "div": "_foreach_div",
           "maximum": "_foreach_maximum", "minimum": "_foreach_minimum", "neg": "_foreach_neg",
           "sqrt": "_foreach_sqrt", "exp": "_foreach_exp", "log": "_foreach_log", "abs": "_foreach_abs",
           "sign": "_foreach_sign", "sigmoid": "_foreach_sigmoid", "tanh": "_foreach_tanh", "sin": "_foreach_sin",
           "cos": "_foreach_cos", "floor": "_foreach_floor"}


def _schedule(prog: Program, skip: set) -> list:
    """The instructions as a list of groups to emit in order: a group of several
    independent instructions of one foreach-able op at the same depth, or one
    instruction. Depth = 1 + the deepest input, so no group depends on itself."""
    depth: dict = {}
    key_of: dict = {}
    read_at: dict = {}  # value -> the greatest depth of an instruction reading it (or a view of it)
    shares: dict = {}  # a value that may share memory (an alias, a view) -> the values it shares
    for j, ins in enumerate(prog.instrs):
        d = max((depth.get(a, 0) for a in ins.ins), default=0)
        # an op that overwrites a donated input runs after every other reader of it or of its views
        d = max([d] + [read_at.get(a, 0) for a in getattr(ins.op, "overwrites", ())])
        for a in ins.ins:
            for s in shares.get(a, (a,)):
                read_at[s] = max(read_at.get(s, 0), d + 1)
        if j in skip or may_view(ins.op):
            shared = {s for a in ins.ins for s in shares.get(a, (a,))}
            shares.update({o: shared for o in ins.outs})
        if j in skip:  # an alias (implicit broadcast) costs nothing and adds no depth
            depth[ins.outs[0]] = d
            continue
        depth.update({o: d + 1 for o in ins.outs})  # every output (multi-output ops: all_reduce)
        op = ins.op
        if op.name in FOREACH and op.cod[0].dtype.is_float and not op.attrs and len(op.cod) == 1:
            key_of[j] = (d + 1, op.name, op.cod[0].dtype.name)
    groups: dict = {}
    for j, key in key_of.items():
        groups.setdefault(key, []).append(j)
    order = sorted(range(len(prog.instrs)), key=lambda j: (depth[prog.instrs[j].outs[0]], j))
    out, done = [], set()
    for j in order:
        if j in done:
            continue
        members = groups.get(key_of.get(j), [j]) if j in key_of else [j]
        members = members if len(members) > 1 else [j]
        done.update(members)
        out.append(members)
    return out


def graph_module(prog: Program, input_names=None, class_name: str = "CatgradProgram",
                 foreach: bool = True, fused: bool = True, donate: bool = False, cpu: bool = False) -> fx.GraphModule:
    """``prog`` traced through the torch rule table into a GraphModule (not cached).
    ``fused``: run the subgraphs torch has one kernel for as that kernel
    (:mod:`catgrad.compiler.torch_fusion`); ``donate``: those kernels may update the
    program's inputs in place (the graph is then no longer functional); ``cpu``: choose
    the layouts that are fast on CPU (see :mod:`~catgrad.compiler.torch_fusion`)."""
    check_lowerable((i.op for i in prog.instrs), "torch")
    if fused:
        prog = fuse(prog, donate, cpu)
    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    root = torch.nn.Module()
    # fx keeps node names snake_case; lower-case them here so the code shows no renaming
    names = value_names(prog, [n.lower() for n in input_names] if input_names else None)
    env = {v: fx.Proxy(graph.placeholder(names[v]), tracer) for v in prog.inputs}
    for v in _buffers(prog, root, names):
        env[v] = fx.Proxy(graph.get_attr(names[v]), tracer)

    def held(v, t):  # made from no input (a constant op): a buffer, as the program's constants
        root.register_buffer(names[v], t)
        return fx.Proxy(graph.get_attr(names[v]), tracer)

    _lower(prog, env, foreach, lambda fn, lists: fn(*lists), held)
    outs = tuple(env[v].node for v in prog.outputs)  # (every value is a proxy: see held)
    graph.output(outs)
    graph.lint()
    return fx.GraphModule(root, graph, class_name=class_name)



# -- the module's source, written directly ----------------------------------------------------
#
# Tracing with torch.fx costs most of the compile time of a deep step (a proxy, a node
# and a unique name per op, then fx's general code generator). The step only needs the
# Python code, so ``program_module`` runs the same rules on light recording values
# (``_Var``) that write one source line per torch call, and execs the lines as the
# ``forward`` of an ``nn.Module`` holding the constants as buffers. The GraphModule is
# made from that module by ``torch.fx.symbolic_trace`` only when someone asks for it.


class _Untraceable(Exception):
    """A rule did something the recorder cannot write down (used a value in Python
    control flow, iterated it...): the backend falls back to tracing with torch.fx."""


class _Source:
    def __init__(self):
        self.lines: list = []
        self.globals: dict = {}  # (what the lines call, by the names glob gives)
        self._ids: dict = {}
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def ref(self, x) -> str:
        """Python source for an argument."""
        if isinstance(x, _Var):
            return x._name
        if isinstance(x, (list, tuple)):
            inner = ", ".join(self.ref(a) for a in x)
            return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
        if isinstance(x, dict):
            return "{" + ", ".join(f"{self.ref(k)}: {self.ref(v)}" for k, v in x.items()) + "}"
        if x is None or isinstance(x, (bool, int, str)) or (isinstance(x, float) and np.isfinite(x)):
            return repr(x)
        return self.glob(x)

    def glob(self, obj) -> str:
        """A name for ``obj`` in the module's globals (functions, dtypes, inf...)."""
        key = id(obj)
        if key not in self._ids:
            base = getattr(obj, "__name__", None) or type(obj).__name__
            base = "".join(c if c.isalnum() else "_" for c in str(base)).strip("_") or "g"
            name = f"{base}_g{len(self._ids)}"
            self._ids[key] = (name, obj)
            self.globals[name] = obj
        return self._ids[key][0]

    def emit(self, hint: str, expr: str) -> "_Var":
        name = self.fresh(hint)
        self.lines.append(f"    {name} = {expr}")
        return _Var(self, name)

    def call(self, fn, args, kwargs=None) -> "_Var":
        parts = [self.ref(a) for a in args] + [f"{k}={self.ref(v)}" for k, v in (kwargs or {}).items()]
        hint = getattr(fn, "__name__", "v").strip("_").split(".")[-1] or "v"
        return self.emit(hint, f"{self.glob(fn)}({', '.join(parts)})")


def _find_source(x):
    if isinstance(x, _Var):
        return x._src
    if isinstance(x, (list, tuple)):
        for a in x:
            s = _find_source(a)
            if s is not None:
                return s
    if isinstance(x, dict):
        return _find_source(list(x.values()))
    return None


class _Var:
    """A torch value the module computes, standing for it while the rules run: torch
    functions, methods and operators applied to it are written down as source lines."""

    __slots__ = ("_src", "_name")

    def __init__(self, src: _Source, name: str):
        self._src, self._name = src, name

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        src = _find_source(args) or _find_source(kwargs or {})
        return src.call(func, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if callable(getattr(torch.Tensor, name, None)):
            return lambda *a, **k: self._src.emit(name, f"{self._name}.{name}(" + ", ".join(
                [self._src.ref(x) for x in a] + [f"{kk}={self._src.ref(v)}" for kk, v in k.items()]) + ")")
        return self._src.emit(name, f"{self._name}.{name}")

    def __getitem__(self, k):
        return self._src.emit("getitem", f"{self._name}[{self._src.ref(k)}]")

    def __bool__(self):
        raise _Untraceable("a traced value used in control flow")

    def __iter__(self):
        raise _Untraceable("a traced value iterated")

    def __len__(self):
        raise _Untraceable("the length of a traced value")


def _magic(sym: str, reflected: bool = False, unary: bool = False):
    if unary:
        return lambda a: a._src.emit("v", f"{sym}{a._name}")

    def f(a, b):
        l, r = (a._src.ref(b), a._name) if reflected else (a._name, a._src.ref(b))
        return a._src.emit("v", f"({l} {sym} {r})")
    return f


for _op, _sym in {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%", "pow": "**",
                  "matmul": "@", "and": "&", "or": "|", "xor": "^", "lshift": "<<", "rshift": ">>"}.items():
    setattr(_Var, f"__{_op}__", _magic(_sym))
    setattr(_Var, f"__r{_op}__", _magic(_sym, reflected=True))
for _op, _sym in {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}.items():
    setattr(_Var, f"__{_op}__", _magic(_sym))
for _op, _sym in {"neg": "-", "pos": "+", "invert": "~"}.items():
    setattr(_Var, f"__{_op}__", _magic(_sym, unary=True))
_Var.__abs__ = lambda a: a._src.emit("abs", f"abs({a._name})")
_Var.__hash__ = object.__hash__


class ProgramModule(torch.nn.Module):
    """The program as an ``nn.Module`` whose ``forward`` was written directly from its
    instructions (see :func:`program_module`); ``.code`` is that source and
    ``.graph_module`` the same module traced by torch.fx (made on first use)."""

    code: str = ""

    @property
    def graph_module(self) -> fx.GraphModule:
        gm = self.__dict__.get("_gm")
        if gm is None:
            gm = self.__dict__["_gm"] = fx.symbolic_trace(self)
        return gm


def program_module(prog: Program, input_names=None, class_name: str = "CatgradProgram",
                   foreach: bool = True, fused: bool = True, donate: bool = False,
                   cpu: bool = False) -> torch.nn.Module:
    """``prog`` as an ``nn.Module`` computing what :func:`graph_module` computes, with
    the source of its ``forward`` written directly (one line per torch call) rather
    than generated by torch.fx; falls back to :func:`graph_module` where a rule does
    something the writer cannot record."""
    check_lowerable((i.op for i in prog.instrs), "torch")
    plain = prog
    if fused:
        prog = fuse(prog, donate, cpu)
    names = value_names(prog, [n.lower() for n in input_names] if input_names else None)
    src = _Source()
    env = {v: _Var(src, names[v]) for v in prog.inputs}
    root = type(class_name, (ProgramModule,), {})()
    for v in _buffers(prog, root, names):
        env[v] = src.emit(names[v], f"self.{names[v]}")
    try:
        _lower(prog, env, foreach, src.call)
    except _Untraceable:
        return graph_module(plain, input_names, class_name, foreach, fused, donate, cpu)
    outs = ", ".join(src.ref(env[v]) for v in prog.outputs)
    args = ", ".join(names[v] for v in prog.inputs)
    code = (f"def forward(self, {args}):\n" + "\n".join(_free_after_last_use(src.lines, outs))
            + f"\n    return ({outs}{',' if len(prog.outputs) == 1 else ''})\n")
    scope = dict(src.globals)
    exec(compile(code, f"<catgrad {class_name}>", "exec"), scope)  # noqa: S102 - our own generated source
    type(root).forward = scope["forward"]
    type(root).code = code
    return root


_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*")


def _free_after_last_use(lines: list, returned: str) -> list:
    """``lines`` (``    name = expr``) with ``del`` statements after the last line that
    reads each name, so that an intermediate tensor is freed as soon as nothing needs it
    (as fx's generated code does), not when ``forward`` returns: the peak memory of a
    step is then its live set, not everything it computed."""
    parts = [ln.split(" = ", 1) for ln in lines]
    local = {lhs.strip() for lhs, _ in parts}
    last: dict = {}
    for i, (lhs, rhs) in enumerate(parts):
        last.setdefault(lhs.strip(), i)  # (a name nothing reads dies where it is made)
        for name in _NAME.findall(rhs):
            if name in local:
                last[name] = i
    keep = set(_NAME.findall(returned))
    dead: dict = {}
    for name, i in last.items():
        if name not in keep:
            dead.setdefault(i, []).append(name)
    out = []
    for i, ln in enumerate(lines):
        out.append(ln)
        if i in dead:
            out.append("    del " + ", ".join(sorted(dead[i])))
    return out


def _buffers(prog: Program, root: torch.nn.Module, names: dict) -> list:
    """Register the constants the program reads as buffers of ``root``; their values."""
    used = {a for i in prog.instrs for a in i.ins} | set(prog.outputs)
    inputs = set(prog.inputs)
    out = []
    for v, c in sorted(prog.consts.items()):
        if v in used and v not in inputs:
            root.register_buffer(names[v], torch.as_tensor(np.asarray(c)).to(prog.types[v].dtype.torch()))
            out.append(v)
    return out


def _lower(prog: Program, env: dict, foreach: bool, many, held=None) -> None:
    """Run the torch rule of every instruction on the stand-ins in ``env`` (value ->
    fx proxy or recorded value; the inputs and constants on entry, every value on
    return). ``many(fn, lists)`` makes one multi-tensor call of a foreach group;
    ``held(value, tensor)``, if given, is the stand-in for a tensor a rule computed
    from no stand-in (fx would otherwise write the tensor's repr into the code)."""
    binding = _Sizes({d: (env[v], k) for v in reversed(prog.inputs)
                      for k, d in enumerate(prog.types[v].shape) if isinstance(d, str)})
    implicit = implicit_broadcasts(prog)
    schedule = _schedule(prog, implicit) if foreach else [[j] for j in range(len(prog.instrs))]
    for group in schedule:
        if len(group) > 1:  # one multi-tensor call for the whole group
            instrs = [prog.instrs[j] for j in group]
            lists = [[env[i.ins[k]] for i in instrs] for k in range(len(instrs[0].ins))]
            res = many(getattr(torch, FOREACH[instrs[0].op.name]), lists)
            for k, i in enumerate(instrs):
                env[i.outs[0]] = res[k]
            continue
        (j,) = group
        ins = prog.instrs[j]
        if j in implicit:  # the elementwise readers broadcast by themselves
            env[ins.outs[0]] = env[ins.ins[0]]
            continue
        if isinstance(ins.op, FusedOp):
            env.update(ins.op.emit({v: env[v] for v in ins.ins}))
            continue
        res = bind(ins.op, "torch", binding)(*(env[v] for v in ins.ins))
        if len(ins.outs) == 1:
            res = (res,)
        elif isinstance(res, (fx.Proxy, _Var)):
            res = [res[k] for k in range(len(ins.outs))]
        for o, r in zip(ins.outs, res):
            env[o] = held(o, r) if held is not None and isinstance(r, torch.Tensor) else r


class _Sizes(dict):
    """Symbolic dimension -> its size read off the first input that has it
    (``x.size(0)``), recorded in the graph only when a rule asks for it."""

    def __init__(self, where: dict):
        super().__init__()
        self._where = where

    def __missing__(self, d):
        proxy, k = self._where[d]
        self[d] = size = proxy.size(k)
        return size


class TorchProgram:
    """A compiled program on torch: ``prog(*tensors) -> tuple of tensors``. numpy
    arrays are accepted too and moved to the device with the wire's dtype."""

    def __init__(self, program: Program, device="cpu", torch_compile: bool = False, input_names=None,
                 class_name: str = "CatgradProgram", foreach: bool | None = None, fused: bool | None = None,
                 donate: bool = False):
        self.program = program
        self.device = _device(device)
        self.dom, self.cod = program.dom, program.cod
        if foreach is None:  # inductor fuses by itself and prefers plain ops to multi-tensor ones
            foreach = not torch_compile
        if fused is None:  # likewise; and the fused Adam reads its hyperparameters with .item()
            fused = not torch_compile
        self.donate = donate = bool(donate and fused)
        # (the oneDNN switch too: the CPU kernels chosen depend on it)
        key = (structural_key(program, input_names), str(self.device), class_name, foreach, fused, donate,
               bool(torch.backends.mkldnn.enabled))
        mod = _CACHE.get(key)
        if mod is None:
            mod = _CACHE[key] = program_module(program, input_names, class_name, foreach, fused, donate,
                                               cpu=self.device.type == "cpu").to(self.device)
        self.module = gm = mod
        self._dtypes = [t.dtype.torch() for t in self.dom]
        if torch_compile:  # True: inductor; or the name of a torch.compile backend ("eager", "aot_eager"...)
            backend = "inductor" if torch_compile is True else torch_compile
            if not isinstance(backend, str):
                raise CatgradError(f"torch_compile must be True, False or the name of a torch.compile backend, "
                                   f"got {torch_compile!r}")
            from torch._dynamo.exc import InvalidBackend

            try:
                self._fn = torch.compile(gm, fullgraph=True, backend=backend)
            except InvalidBackend:
                from torch._dynamo import list_backends

                known = [b for b in list_backends(exclude_tags=()) if "TESTING" not in b and "minifier" not in b]
                raise CatgradError(f"torch_compile={backend!r} is not a torch.compile backend; torch has: "
                                   f"{', '.join(known)}") from None
        else:
            self._fn = gm
        self._checked: set = set()
        # The leading inputs that the same position of the output gives back (a step's
        # parameters and optimizer state), of static shape: when they are passed back as
        # the very tensors the last call returned, they are known to have the right
        # dtype, device and shape, and are not checked again (the loop's common case).
        self._carry = next((i for i, (a, b) in enumerate(zip(self.dom, self.cod))
                            if a != b or not all(isinstance(d, int) for d in a.shape)), min(len(self.dom), len(self.cod)))
        self._last: tuple = ()

    def asarray(self, x, t):
        """A host value as a tensor of wire type ``t`` on this program's device."""
        if isinstance(x, torch.Tensor):
            return x.to(device=self.device, dtype=t.dtype.torch())
        return torch.as_tensor(np.asarray(x), device=self.device).to(t.dtype.torch())

    def _convert(self, args, start: int = 0) -> list:
        dev, dts, dom = self.device, self._dtypes, self.dom
        return [a if isinstance(a, torch.Tensor) and a.dtype == dts[i] and a.device == dev else self.asarray(a, dom[i])
                for i, a in enumerate(args, start)]

    def _check(self, args, start: int = 0) -> None:
        key = (start,) + tuple(tuple(a.shape) for a in args)
        if key in self._checked:
            return
        binding: dict = {}
        for i, (t, a) in enumerate(zip(self.dom[start:], args), start):
            bind_shape(t, tuple(a.shape), binding, f"input {i}")
        self._checked.add(key)

    def __call__(self, *args):
        if len(args) != len(self.dom):
            raise ShapeError(f"the program takes {len(self.dom)} input(s) of types {self.dom}, got {len(args)}")
        c, last = self._carry, self._last
        if c and len(last) == c and all(map(operator.is_, args[:c], last)):
            rest = self._convert(args[c:], c)  # only what the last call did not give back
            self._check(rest, c)
            args = [*args[:c], *rest]
        else:
            args = self._convert(args)
            self._check(args)
        if self.donate:
            args = _unaliased(args)
        with torch.no_grad():  # the program is its own derivative: no autograd tape is wanted
            outs = tuple(self._fn(*args))
        if c:
            self._last = outs[:c]
        return outs

    @property
    def graph_module(self) -> fx.GraphModule:
        """The program as a ``torch.fx.GraphModule`` (traced from the module on first use)."""
        return self.module if isinstance(self.module, fx.GraphModule) else self.module.graph_module

    @property
    def code(self) -> str:
        return self.graph_module.code


def _unaliased(args: list) -> list:
    """``args`` where no two tensors share memory (a later one is copied), so that
    writing into one donated input never changes another."""
    seen: set = set()
    out = []
    for a in args:
        ptr = a.untyped_storage().data_ptr()
        if ptr in seen and a.numel():
            a = a.clone()
        seen.add(ptr)
        out.append(a)
    return out


def compile_torch(program, device="cpu", torch_compile: bool = False, input_names=None, passes: bool = True,
                  class_name: str = "CatgradProgram", foreach: bool | None = None,
                  fused: bool | None = None, donate: bool = False) -> TorchProgram:
    """The torch backend's factory: ``program`` (an optimized Program, or a diagram,
    lowered and optimized here) as a :class:`TorchProgram` on ``device``. ``foreach``
    groups independent elementwise ops into multi-tensor calls (default: unless
    ``torch_compile``); ``fused`` runs the subgraphs of
    :data:`catgrad.compiler.torch_fusion.PATTERNS` as torch's fused kernels (likewise).
    ``donate=True``: the tensors passed in may be overwritten (the fused optimizer
    updates write the new parameters and state into the old ones), so a value passed
    to the program is used up; keep only what it returns."""
    return TorchProgram(as_program(program, passes), device=device, torch_compile=torch_compile,
                        input_names=input_names, class_name=class_name, foreach=foreach, fused=fused,
                        donate=donate)


__all__ = ["ProgramModule", "TorchProgram", "compile_torch", "graph_module", "program_module", "structural_key"]
