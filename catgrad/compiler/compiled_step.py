"""``cg.compile``: the supervised step diagram, lowered by a backend, as a callable.

:func:`compile` builds the closed step of :mod:`catgrad.step` from a model, a
loss and an optimizer, runs it through the one pipeline (lower, optimize) and hands
the optimized Program to a backend; :class:`Step` threads a
:class:`~catgrad.step.TrainState` through the compiled program. Values in the state
are whatever the backend computes on: numpy arrays, or torch tensors on a device.
"""

from __future__ import annotations

import builtins
import copy
import gc
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from .. import loss as losses
from ..calculus.para import Para, as_para
from ..calculus.stateful import Stateful, keyed, takes_key
from ..core.diagram import Diagram
from ..core.types import DTYPES, DType, TensorType, bind_shape
from ..errors import CatgradError, CatgradTypeError, ShapeError
from ..optim.base import Optimizer, OptimizerLens
from ..step import TrainState, lr_put, step_diagram
from .backends import backend_factory
from .pipeline import prepare


class StepOutput(NamedTuple):
    loss: float
    pred: np.ndarray


def _type_str(t: TensorType) -> str:
    return str(t)


class Step:
    """A compiled supervised step: ``new_state, out = step(state, x, y)``."""

    def __init__(self, model: Para, loss: Para, optimizer: Optimizer, opt: OptimizerLens, diagram: Diagram,
                 run, predict_run, backend: str):
        self.model, self.loss, self.optimizer, self.opt = model, loss, optimizer, opt
        self.diagram, self.backend = diagram, backend
        # the forward-only program is built on first use: training never needs it
        self._run, self._predict, self._predict_thunk = run, None, predict_run
        self._call = _plain(run)
        # backends that compute on their own arrays (torch tensors) convert host values
        self._to_backend = getattr(run, "asarray", lambda x, t: x)
        self.param_names = list(model.names)
        self.opt_keys = list(opt.keys)
        self.state_params = list(getattr(model, "state", ()))  # a Stateful model's state wires
        self.state_names = [p.name for p in self.state_params]
        self._n, self._k, self._m = len(self.param_names), len(self.opt_keys), len(self.state_names)
        self._checked: set = set()
        self._bits = model.cod[0].dtype.name == "bit"
        # the program's arguments from a state and a batch, and the new state's values put back
        self._args, self._put = _plumbing(self.param_names, self.opt_keys, self.state_names)
        self.donates = False  # compiled with donate=True: each call uses up the state it is given
        self._donating_run = None  # () -> the same program compiled to donate, where the backend can
        self._donating = None  # ... that program as a Step, once made
        self.world_size = None  # None: one process; else each call takes this process's shard of the batch

    @property
    def program(self):
        return self._run

    @property
    def graph_module(self):
        """The step's ``torch.fx.GraphModule`` (torch backend only)."""
        gm = getattr(self._run, "graph_module", None)
        if gm is None:
            raise CatgradError(f"the {self.backend} backend builds no torch graph; compile with backend='torch'")
        return gm

    def init(self, seed=0) -> TrainState:
        values = self.model.init(seed)
        opt_state = self.opt.init(values)
        conv = self._to_backend
        params = {n: conv(v, p.type) for n, v, p in zip(self.param_names, values, self.model.params)}
        opt_state = {k: conv(opt_state[k], t) for k, t in zip(self.opt_keys, self.opt.state_types)}
        mstate = {}
        if self.state_params:
            mstate = {p.name: conv(v, p.type) for p, v in zip(self.state_params, self.model.init_state(seed))}
        return TrainState(params, opt_state, 0, mstate)

    def to_backend(self, state: TrainState) -> TrainState:
        """``state`` (numpy arrays from a checkpoint, say) as this step's backend values."""
        conv = self._to_backend
        params = {n: conv(state.params[n], p.type) for n, p in zip(self.param_names, self.model.params)
                  if n in state.params}
        opt = {k: conv(state.opt_state[k], t) for k, t in zip(self.opt_keys, self.opt.state_types)
               if k in state.opt_state}
        mstate = {p.name: conv(state.model_state[p.name], p.type) for p in self.state_params
                  if p.name in state.model_state}
        return TrainState(params, opt, state.step, mstate)

    def _check(self, state: TrainState, key: tuple) -> None:
        xs, ys = map(tuple, key)
        A, B = self.model.dom[0], self.model.cod[0]
        binding: dict = {}
        bind_shape(A, xs, binding, "inputs")
        try:
            bind_shape(B, ys, binding, "labels")
        except ShapeError:
            raise ShapeError(
                f"labels of shape {ys} do not fit the model's output type {B}"
                f" (with inputs of shape {xs}); for classification give one-hot labels"
            ) from None
        self._check_keys(state)
        self._checked.add(key)

    def _check_keys(self, state: TrainState) -> None:
        missing = [n for n in self.param_names if n not in state.params]
        missing += [k for k in self.opt_keys if k not in state.opt_state]
        missing += [k for k in self.state_names if k not in state.model_state]
        if missing:
            raise CatgradError(f"the train state lacks {', '.join(missing[:5])}: it belongs to a different model or optimizer")

    def __call__(self, state: TrainState, x, y):
        outs = self._outputs(state, x, y)
        n, k, m = self._n, self._k, self._m
        return (TrainState(dict(zip(self.param_names, outs)), dict(zip(self.opt_keys, outs[n:])), state.step + 1,
                           dict(zip(self.state_names, outs[n + k :])) if m else {}),
                StepOutput(self._loss(outs[n + k + m]), outs[n + k + m + 1]))

    def update(self, state: TrainState, x, y) -> float:
        """One step that advances ``state`` itself and returns the loss: afterwards
        ``state`` holds what ``step(state, x, y)[0]`` would. Its arrays are overwritten
        where the backend can (the step compiled to donate, :meth:`donating`); the
        predictions are not handed back. On numpy, once the shapes have been seen, a call
        makes no Python object but the step counter's new ``int`` (past step 256) and,
        with 20 or more state arrays, the tuples of the program's arguments and outputs: the form for a
        training loop of one's own, as ``optimizer.step()`` is in torch.
        Arrays of ``state`` held elsewhere change with it; copy them first to keep them."""
        run = self.donating() or self
        outs = run._outputs(state, x, y)
        self._put(outs, state.params, state.opt_state, state.model_state)
        state.step += 1
        return self._loss(outs[self._n + self._k + self._m])

    def _outputs(self, state: TrainState, x, y) -> tuple:
        try:
            key = (x.shape, y.shape)  # (a torch.Size is a tuple too)
        except AttributeError:
            key = (_shape(x), _shape(y))
        if key not in self._checked:  # once per pair of shapes
            self._check(state, key)
        try:
            args = self._args(state.params, state.opt_state, state.model_state, x, y)
        except KeyError:
            self._check_keys(state)
            raise
        return self._call(*args)

    def _loss(self, loss) -> float:
        return float(loss.sum()) if self._bits else float(loss)

    def donating(self) -> "Step | None":
        """This step compiled with ``donate=True`` (made on first use, then kept): each call
        writes the new state into the arrays of the state it is given, which is used up.
        For a loop that owns its state (:func:`catgrad.train.fit`); the step itself where
        there is nothing to donate (``torch_compile``: no fused kernels), ``None`` where the
        backend cannot donate."""
        if self.donates:
            return self
        twin = self._donating
        if twin is None and self._donating_run is not None:
            run = self._donating_run()
            if not run.donate:  # nothing to donate (torch_compile: no fused kernels)
                twin = self
            else:
                twin = copy.copy(self)
                twin._run, twin.donates, twin._checked, twin._donating_run = run, True, set(), None
                twin._call = _plain(run)
            self._donating = twin
        return twin

    def predict(self, state: TrainState, x) -> np.ndarray:
        """The model's output on ``x`` in evaluation mode (running statistics, no dropout)."""
        p, ms = state.params, state.model_state
        if self._predict is None:
            self._predict = self._predict_thunk()
        missing = [k for k in self.state_names if k not in ms]
        if missing:
            raise CatgradError(f"the train state lacks the model state {', '.join(missing[:5])}")
        return self._predict(*[p[n] for n in self.param_names], *[ms[k] for k in self.state_names], x)[0]

    def signature(self) -> dict:
        out = {
            "params": {p.name: _type_str(p.type) for p in self.model.params},
            "opt_state": dict(zip(self.opt_keys, map(_type_str, self.opt.state_types))),
            "optimizer": repr(self.optimizer),
            "input": _type_str(self.model.dom[0]),
            "output": _type_str(self.model.cod[0]),
        }
        if self.state_params:
            out["model_state"] = {p.name: _type_str(p.type) for p in self.state_params}
        return out

    def __repr__(self):
        return f"<Step {self.model!r} optimizer={self.optimizer!r} backend={self.backend!r}>"


def _plain(run):
    """``run`` as a plain function where the backend has one (the numpy program's ``fast``)."""
    return getattr(run, "fast", run)


def _plumbing(params, opt_keys, state_names):
    """``args(P, S, M, x, y)``: the program's arguments, the values of ``P``, ``S`` and
    ``M`` (parameters, optimizer state, model state) under these names in order, then
    ``x`` and ``y``; ``put(outs, P, S, M)``: the new state's values (the program's
    first outputs, in the same order) put back under the names. Written out as
    straight-line code, which makes no Python object but the tuple of arguments."""
    names = [("P", n) for n in params] + [("S", k) for k in opt_keys] + [("M", n) for n in state_names]
    src = (f"def args(P, S, M, x, y):\n    return ({''.join(f'{d}[{n!r}], ' for d, n in names)}x, y)\n\n\n"
           f"def put(outs, P, S, M):\n" + "".join(f"    {d}[{n!r}] = outs[{i}]\n" for i, (d, n) in enumerate(names))
           + "    return None\n")
    env: dict = {}
    exec(builtins.compile(src, "<catgrad step plumbing>", "exec"), env)  # noqa: S102 - our own generated code
    return env["args"], env["put"]


def _shape(x) -> tuple:
    return tuple(np.shape(x))  # (np.shape reads x.shape where x has one: a torch tensor is not converted)


def _float_dtype(dtype) -> DType | None:
    if dtype is None or isinstance(dtype, DType):
        return dtype
    name = {"float32": "f32", "float64": "f64", "bfloat16": "bf16"}.get(str(dtype).replace("torch.", ""), str(dtype))
    d = DTYPES.get(name)
    if d is None or not d.is_float:
        raise CatgradError(f"dtype must be one of f32, f64, bf16 (or float32, float64, bfloat16), got {dtype!r}")
    return d


def _world_size(backend: str) -> int:
    if backend != "torch":
        raise CatgradError(f"distributed training runs on the torch backend (torch.distributed), not {backend!r}")
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise CatgradError("distributed=True needs a torch.distributed process group: call "
                           "torch.distributed.init_process_group first, or launch with "
                           "`torchrun --nproc_per_node=N -m catgrad train ... --distributed`")
    return dist.get_world_size()


@contextmanager
def _no_gc_pauses():
    """Keep the cyclic garbage collector from running while a step is built: building
    allocates tens of thousands of small, long-lived objects (boxes, types, fx nodes),
    which makes the collector rescan its whole older generations again and again
    (about 40% of the compile time of a deep MLP). Cycles made meanwhile are collected
    at the next run after it is back on."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def compile(model, loss=None, optimizer: Optimizer | None = None, backend: str = "numpy", lr_lens=None,
            dtype=None, distributed: bool = False, **backend_options) -> Step:
    """Build the supervised step for ``model``, optimize it once and lower it with ``backend``.

    ``loss``: a name (``"mse"``, ``"softmax_cross_entropy"``...), a constructor from
    :mod:`catgrad.loss`, a ready Para or a diagram ``(label, pred) -> L``; left out, it is
    ``xor`` for a bit output and otherwise an error asking for one (see ``cg.loss.default_for``). ``optimizer``: an :class:`~catgrad.optim.Optimizer`
    or a string such as ``"adam(lr=1e-3)"`` (default ``sgd(lr=0.01)``).
    ``lr_lens`` overrides the learning-rate lens (default ``-1`` on floats, the
    identity on bits). ``dtype`` (``"f32"``, ``"f64"``, ``"bf16"`` or a torch dtype)
    retypes every float wire of the model before the step is built. Other keywords go
    to the backend: for ``backend="torch"``, ``device="cpu"|"cuda"`` and
    ``torch_compile=True``. ``distributed=True`` (torch backend, after
    ``torch.distributed.init_process_group``) builds the data-parallel step: each process
    passes its shard of the global batch and gradients and loss are all-reduced inside
    the step (:func:`catgrad.step.step_diagram`'s ``world_size``). For ``backend="numpy"``
    and ``backend="torch"``, ``donate=True`` lets each step write the new parameters and
    optimizer state into the arrays of the state it is given (numpy: no allocation per
    step; torch: the fused optimizer kernels update in place, as ``torch.optim`` does): a
    state passed to the step is used up, keep only the one it returns.
    """
    with _no_gc_pauses():
        return _compile(model, loss, optimizer, backend, lr_lens, dtype, distributed, backend_options)


def _compile(model, loss, optimizer, backend, lr_lens, dtype, distributed, backend_options) -> Step:
    from ..optim import parse, sgd

    model = model if isinstance(model, Stateful) else as_para(model)
    if takes_key(model):  # (key, x) -> y: the key becomes state, split at every step
        model = keyed(model)
    factory = backend_factory(backend)
    dtype = _float_dtype(dtype)
    if dtype is not None:
        model = model.retype({d: dtype for d in DTYPES.values() if d.is_float and d is not dtype})
    if optimizer is None:
        optimizer = sgd(0.01)
    elif isinstance(optimizer, str):
        optimizer = parse(optimizer)
    if not isinstance(optimizer, Optimizer):
        raise CatgradError(f"optimizer must be a cg.optim optimizer or a string, got {optimizer!r}")
    if len(model.cod) != 1:
        raise CatgradTypeError(f"the step needs a model with one output wire, got {model.cod}")
    loss_para = losses.resolve(loss, model.cod[0])
    opt = optimizer.lens(model.params)
    world = _world_size(backend) if distributed else None
    d = step_diagram(model, loss_para, opt, lr_put(lr_lens, loss_para.cod), world_size=world)
    state_names = [f"m_{p.name}" for p in getattr(model, "state", ())]
    names = [f"p_{n}" for n in model.names] + [f"s_{k}" for k in opt.keys] + state_names + ["x", "y"]
    donate = backend_options.pop("donate", False)
    if donate and backend not in ("numpy", "torch"):
        raise CatgradError(f"donate=True is an option of the numpy and torch backends, not of {backend!r}")
    prog = prepare(d)
    run = factory(prog, input_names=names, **backend_options, **({"donate": True} if donate else {}))

    def predict_run():  # the evaluation form: running statistics, no dropout
        body = model.forward("eval").body if isinstance(model, Stateful) else model.body
        return factory(prepare(body), input_names=names[: len(model.names)] + state_names + ["x"], **backend_options)

    step = Step(model, loss_para, optimizer, opt, d, run, predict_run, backend)
    step.donates = bool(donate)
    if not donate and backend in ("numpy", "torch"):  # the same program, compiled to update in place
        step._donating_run = lambda: factory(prog.copy(), input_names=names, **backend_options, donate=True)
    step.world_size = world
    return step


__all__ = ["compile", "Step", "StepOutput"]
