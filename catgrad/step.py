"""The supervised training step as one diagram, and ``cg.compile``.

Given an optimizer lens ``U : (P x S, P x S) -> (P, P')``, a model
``f : P x A -> B``, a loss ``loss : B x B -> L`` (parameter: the label) and a
learning-rate lens ``alpha : (L, L') -> (1, 1)``, the closed step of MATH.md
section 3 is

    p_bar = U.get(p, s)                               the optimizer picks the point
    b_p = f(p_bar, a)
    (_, b_p') = R[loss](b_t, b_p, alpha(loss(b_t, b_p)))
    (p', _) = R[f](p_bar, a, b_p')                    R[f] taken at p_bar
    (p_new, s_new) = U.put(p, s, p')

It is built by composing the pieces, not written by hand: the model and the loss
become parametric lenses ``(f, R[f])`` and ``(loss, R[loss])`` and are composed in
Para(Lens) (so the label is just the loss's parameter); the learning-rate lens
closes the backward pass; the optimizer lens reparametrises the result. The
resulting diagram is

    (params..., opt_state..., x, y) -> (params'..., opt_state'..., loss, pred)

and a backend lowers it (``backend="numpy"`` here; others register with
:func:`register_backend`). Over Z2 with the xor loss, the identity learning
rate and ``gradient_update`` this is Reverse Derivative Ascent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from .calculus.lens import Lens
from .calculus.para import Para, ParaLens, as_para
from .core.diagram import Builder, Diagram, build, id as identity_diagram
from .core.types import Ob, TensorType, bind_shape
from .errors import CatgradError, CatgradTypeError, ShapeError, did_you_mean
from . import loss as losses
from .optim.base import Optimizer, OptimizerLens

BACKENDS: dict[str, Callable] = {}


def register_backend(name: str, factory: Callable) -> None:
    """``factory(diagram) -> callable(*arrays) -> tuple of arrays``."""
    BACKENDS[name] = factory


def _backend(name: str) -> Callable:
    if name not in BACKENDS:
        # backends live in catgrad.compile (and later packages); importing it registers them
        import importlib

        importlib.import_module("catgrad.compile")
    try:
        return BACKENDS[name]
    except KeyError:
        raise CatgradError(
            f"unknown backend {name!r}{did_you_mean(str(name), BACKENDS)}; available: {', '.join(sorted(BACKENDS))}"
        ) from None


# -- learning rates ----------------------------------------------------------------------


def learning_rate(value=-1.0, loss_type: Ob | None = None) -> Diagram:
    """The put of the learning-rate lens ``(L, L') -> (1, 1)`` as a diagram ``L -> L'``:
    the constant ``value`` (``-1``: descent, the optimizer carries the step size)."""
    L = Ob(*loss_type)

    def put(b, ins):
        return [w.const(value) for w in ins]

    return build(L, put)


def identity_learning_rate(loss_type) -> Diagram:
    """The Z2 learning rate ``alpha(l) = l``."""
    return identity_diagram(Ob(*loss_type))


def _lr_put(lr_lens, L: Ob) -> Diagram:
    if lr_lens is None:
        if all(t.dtype.name == "bit" for t in L):
            return identity_learning_rate(L)
        return learning_rate(-1.0, L)
    if isinstance(lr_lens, (int, float)) and not isinstance(lr_lens, bool):
        return learning_rate(float(lr_lens), L)
    if isinstance(lr_lens, Lens):
        if lr_lens.A != L or lr_lens.B != Ob() or lr_lens.B_ != Ob() or lr_lens.A_ != L:
            raise CatgradTypeError(f"a learning rate is a lens ({L}, {L}) -> ((), ()), got {lr_lens!r}")
        return lr_lens.put
    if isinstance(lr_lens, Diagram):
        if lr_lens.dom != L or lr_lens.cod != L:
            raise CatgradTypeError(f"a learning rate put must map the loss type {L} to itself, got {lr_lens.dom} -> {lr_lens.cod}")
        return lr_lens
    raise CatgradError(f"lr_lens must be a number, a Lens to the unit or a diagram L -> L, got {lr_lens!r}")


# -- the step diagram ----------------------------------------------------------------------


def step_diagram(model: Para, loss: Para, opt: OptimizerLens, lr_put: Diagram) -> Diagram:
    """The closed supervised step (see the module docstring)."""
    n, k = len(model.P), len(opt.S)
    if len(model.dom) != 1 or len(model.cod) != 1:
        raise CatgradTypeError(f"the step needs a model with one input and one output wire, got {model.dom} -> {model.cod}")
    ml = ParaLens.of(model) >> ParaLens.of(loss)  # parameters (label, P...)
    U = opt.lens
    A, B = model.dom, model.cod

    def body(b: Builder, ins):
        ps, ss, x, y = ins[:n], ins[n : n + k], ins[n + k], ins[n + k + 1]
        pbar = b.call(U.get, ps + ss)
        pred = b.call(model.body, pbar + [x])
        ls = b.call(ml.get, [y] + pbar + [x])
        dl = b.call(lr_put, ls)
        back = b.call(ml.put, [y] + pbar + [x] + dl)  # (label', P', x')
        dp = back[1 : 1 + n]
        new = b.call(U.put, ps + ss + dp)
        return new + ls + pred

    return build(model.P @ opt.S @ A @ B, body)


# -- state ---------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Parameters, optimizer state and the number of updates done."""

    params: dict
    opt_state: dict = field(default_factory=dict)
    step: int = 0

    def flat(self) -> dict:
        """``{"param/<name>": ..., "opt/<key>": ..., "step": int64 scalar}``."""
        out = {f"param/{k}": v for k, v in self.params.items()}
        out.update({f"opt/{k}": v for k, v in self.opt_state.items()})
        out["step"] = np.asarray(self.step, dtype=np.int64)
        return out

    @classmethod
    def from_flat(cls, d: dict) -> "TrainState":
        params, opt = {}, {}
        step = 0
        for k, v in d.items():
            if k.startswith("param/"):
                params[k[6:]] = np.asarray(v)
            elif k.startswith("opt/"):
                opt[k[4:]] = np.asarray(v)
            elif k == "step":
                step = int(np.asarray(v))
            else:
                raise CatgradError(f"unexpected entry {k!r} in a flat train state")
        return cls(params, opt, step)

    def with_hyper(self, name: str, value: float) -> "TrainState":
        """A copy with every optimizer hyperparameter called ``name`` (e.g. ``"lr"``) set to
        ``value``; raises if there is none. The step is not recompiled: it is data."""
        keys = [k for k in self.opt_state if k.rsplit(".", 1)[-1] == name]
        if not keys:
            fields = sorted({k.rsplit(".", 1)[-1] for k in self.opt_state})
            raise CatgradError(f"no optimizer hyperparameter {name!r}{did_you_mean(name, fields)}")
        opt = dict(self.opt_state)
        for k in keys:
            opt[k] = np.asarray(value, dtype=opt[k].dtype)
        return TrainState(dict(self.params), opt, self.step)


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
        self._run, self._predict = run, predict_run
        self.param_names = list(model.names)
        self.opt_keys = list(opt.keys)
        self._n, self._k = len(self.param_names), len(self.opt_keys)
        self._checked: set = set()
        self._bits = model.cod[0].dtype.name == "bit"

    @property
    def program(self):
        return self._run

    def init(self, seed=0) -> TrainState:
        values = self.model.init(seed)
        params = dict(zip(self.param_names, values))
        return TrainState(params, self.opt.init(values), 0)

    def _check(self, state: TrainState, x, y) -> None:
        key = (tuple(np.shape(x)), tuple(np.shape(y)))
        if key in self._checked:
            return
        A, B = self.model.dom[0], self.model.cod[0]
        binding: dict = {}
        bind_shape(A, tuple(np.shape(x)), binding, "inputs")
        try:
            bind_shape(B, tuple(np.shape(y)), binding, "labels")
        except ShapeError:
            raise ShapeError(
                f"labels of shape {tuple(np.shape(y))} do not fit the model's output type {B}"
                f" (with inputs of shape {tuple(np.shape(x))}); for classification give one-hot labels"
            ) from None
        missing = [n for n in self.param_names if n not in state.params]
        missing += [k for k in self.opt_keys if k not in state.opt_state]
        if missing:
            raise CatgradError(f"the train state lacks {', '.join(missing[:5])}: it belongs to a different model or optimizer")
        self._checked.add(key)

    def __call__(self, state: TrainState, x, y):
        self._check(state, x, y)
        p, s = state.params, state.opt_state
        outs = self._run(*[p[n] for n in self.param_names], *[s[k] for k in self.opt_keys], x, y)
        n, k = self._n, self._k
        loss = outs[n + k]
        loss = float(np.sum(loss)) if self._bits else float(loss)
        new = TrainState(dict(zip(self.param_names, outs[:n])), dict(zip(self.opt_keys, outs[n : n + k])),
                         state.step + 1)
        return new, StepOutput(loss, outs[n + k + 1])

    def predict(self, state: TrainState, x) -> np.ndarray:
        p = state.params
        return self._predict(*[p[n] for n in self.param_names], x)[0]

    def signature(self) -> dict:
        return {
            "params": {p.name: _type_str(p.type) for p in self.model.params},
            "opt_state": dict(zip(self.opt_keys, map(_type_str, self.opt.state_types))),
            "optimizer": repr(self.optimizer),
            "input": _type_str(self.model.dom[0]),
            "output": _type_str(self.model.cod[0]),
        }

    def __repr__(self):
        return f"<Step {self.model!r} optimizer={self.optimizer!r} backend={self.backend!r}>"


def compile(model, loss="mse", optimizer: Optimizer | None = None, backend: str = "numpy", lr_lens=None,
            **backend_options) -> Step:
    """Build the supervised step for ``model`` and lower it with ``backend``.

    ``loss``: a name (``"mse"``, ``"softmax_cross_entropy"``...), a constructor from
    :mod:`catgrad.loss` or a ready Para. ``optimizer``: an :class:`~catgrad.optim.Optimizer`
    or a string such as ``"adam(lr=1e-3)"`` (default ``sgd(lr=0.01)``).
    ``lr_lens`` overrides the learning-rate lens (default ``-1`` on floats, the
    identity on bits).
    """
    from .optim import parse, sgd

    model = as_para(model)
    factory = _backend(backend)
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
    d = step_diagram(model, loss_para, opt, _lr_put(lr_lens, loss_para.cod))
    run = factory(d, **backend_options)
    predict_run = factory(model.body, **backend_options)
    return Step(model, loss_para, optimizer, opt, d, run, predict_run, backend)


__all__ = ["compile", "Step", "StepOutput", "TrainState", "step_diagram", "register_backend", "learning_rate",
           "identity_learning_rate", "BACKENDS"]
