"""The training loop: the compiled step, iterated over seeded mini-batches.

The loop adds no learning of its own: every update is one call of the compiled step
program ``step(state, x, y) -> (state', out)`` (``cg.compile``), which is the closed
supervised step of docs/mathematics.md, section 3 -- optimizer, model, loss and learning rate as one
diagram. The loop only decides which examples go into each call, and in what order:

* Epoch e visits the training rows in the order ``permutation_e`` drawn by
  ``numpy.random.default_rng(SeedSequence([seed, e]))``; batch b of that epoch is rows
  ``permutation_e[b * batch : (b + 1) * batch]`` (the last batch may be smaller, unless
  ``drop_last``). The order is a pure function of ``(seed, e)``, so the loop's whole
  random state is the triple (seed, epoch, batch) -- which is what a checkpoint stores.
* A model whose input type has no batch axis (``f64[d]``) is trained per example
  (``batch`` must be 1); one with a symbolic leading axis (``f64["B", d]``) takes batches.

Data-parallel (a step compiled with ``distributed=True``, one process per rank): every
process visits the same order and takes its equal share of each global batch (``batch``
must divide by the number of processes; a last batch that does not fill it is dropped, so
the run does not depend on how many processes share it); the step all-reduces gradients
and loss, the correct count is summed over processes, and rank 0 alone writes checkpoints.

Metrics: the training loss of an epoch is the batch-size-weighted mean of the loss the
step reports for each batch (with a per-example or mean-reduced loss, the mean loss per
example); accuracy compares ``argmax`` of the prediction with ``argmax`` of the one-hot
label. :func:`evaluate` measures accuracy of given parameters on a whole dataset.

Validation: with ``validation=`` (a dataset or an ``(x, y)`` tuple) every epoch's record in
``history`` also holds ``val_loss`` (the step's loss on the whole validation set, one batch) and,
for classes, ``val_accuracy``. ``patience=k`` stops when the monitored metric (``val_loss`` by
default) has not improved for k epochs and returns the best epoch's state (also written to the
checkpoint, as the position after that epoch, so a resume continues from it).

Data may be a :class:`~catgrad.data.Dataset` or a tuple ``(x, y)`` of arrays: ``x`` a numeric
matrix (float64 is cast to the model's dtype), ``y`` integer class labels (n,), one-hot rows or
float regression targets (n, k).

A loss that is NaN or infinite stops training with :class:`NonFiniteLossError` naming the
step; the bad update is discarded and the checkpoint file (the last good one) is left as is.

Donation: the loop owns every state it makes, so on the numpy and torch backends it runs
the step compiled with ``donate=True`` (:meth:`~catgrad.compiler.compiled_step.Step.donating`):
each step writes the new parameters and optimizer state into the arrays (tensors) of the
old one, as ``torch.optim`` does, instead of allocating a new state (the peak memory of
one state instead of two; on torch, faster too). A state the caller passes in is copied
once first, and the best epoch's state (``patience``) is a copy, so nothing the caller
holds is overwritten. The
price: the state before a non-finite loss is gone (the error's ``state`` is None; the
checkpoint file still holds the last good one). ``donate=False`` keeps the functional step.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import CatgradError, ShapeError
from ..files import signals_held
from ..step import to_host
from . import checkpoint as ckpt


class NonFiniteLossError(CatgradError, ArithmeticError):
    """The loss became NaN or infinite; carries the step number and the last good state."""

    def __init__(self, message: str, step: int, state=None):
        super().__init__(message)
        self.step, self.state = step, state


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` rows (a pure function of its arguments)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)])).permutation(n)


@dataclass
class FitResult:
    """What :func:`fit` returns. ``history`` has one dict per finished epoch."""

    state: object
    history: list = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    train_loss: float = float("nan")
    train_accuracy: Optional[float] = None
    test_accuracy: Optional[float] = None
    stopped_early: bool = False
    best_epoch: Optional[int] = None

    def summary(self) -> dict:
        return {
            "epochs": self.epochs, "steps": self.steps, "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy, "test_accuracy": self.test_accuracy,
            "stopped_early": self.stopped_early, "best_epoch": self.best_epoch,
        }


@dataclass
class _Layout:
    """How dataset rows become the step's ``x`` and ``y`` arrays."""

    x_type: object
    y_type: object
    batched: bool
    fixed_batch: Optional[int]

    @classmethod
    def of(cls, step) -> "_Layout":
        dom = step.diagram.dom
        x_t, y_t = dom[-2], dom[-1]
        if x_t.rank == 0:
            raise ShapeError(f"the training loop feeds rows of a table: the model's input must be a vector, "
                             f"a batch of vectors or a batch of images, got {x_t}")
        batched = x_t.rank >= 2
        lead = x_t.shape[0] if batched else None
        return cls(x_t, y_t, batched, lead if isinstance(lead, int) else None)

    def check(self, data, batch_size: int) -> None:
        if self.x_type.rank > 2:  # image-shaped examples: [B, C, H, W]
            shape = self.x_type.shape[1:]
            want = data.example_shape or (data.n_features,)
            if math.prod(d for d in shape if isinstance(d, int)) != data.n_features or (
                    data.example_shape and tuple(shape) != tuple(data.example_shape)):
                raise ShapeError(f"the model takes examples of shape {tuple(shape)} ({self.x_type}) but {data.name} "
                                 f"has examples of shape {tuple(want)}")
        else:
            d_model, d_data = self.x_type.shape[-1], data.n_features
            if isinstance(d_model, int) and d_model != d_data:
                raise ShapeError(
                    f"the model takes inputs of width {d_model} ({self.x_type}) but {data.name} has {d_data} features"
                )
        k_model, k_data = self.y_type.shape[-1] if self.y_type.rank else 1, data.target_width
        if self.y_type.rank != min(self.x_type.rank, 2) or (isinstance(k_model, int) and k_model != k_data):
            what = f"{k_data} classes (one-hot labels of width {k_data})" if data.is_classification else f"targets of width {k_data}"
            raise ShapeError(f"labels do not fit the model: the model outputs {self.y_type} but {data.name} has {what}")
        if not self.batched and batch_size != 1:
            raise ShapeError(f"the model's input {self.x_type} has no batch axis, so the batch size must be 1, got {batch_size}")
        if self.fixed_batch is not None and self.fixed_batch != batch_size:
            raise ShapeError(f"the model's input {self.x_type} fixes the batch size to {self.fixed_batch}, got {batch_size}")

    def arrays(self, data):
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.ascontiguousarray(data.x, dtype=self.x_type.dtype.numpy)
            y = data.targets(self.y_type.dtype.numpy)
        for what, a, src in (("feature", x, data.x), ("target", y, None)):
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                k, j = (int(v) for v in np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0])
                v = (src if src is not None else data.y.reshape(len(a), -1))[k, j]
                name = data.feature_names[j] if what == "feature" and j < len(data.feature_names) else f"column {j + 1}"
                raise ShapeError(f"{data.name}: {what} {name!r} of row {k + 1} is {v:.6g}, which does not fit the "
                                 f"model's {a.dtype} (largest {np.finfo(a.dtype).max:.3g}); scale the data or use f64")
        if self.x_type.rank > 2:  # image-shaped examples: rows reshaped to the model's input
            x = x.reshape((len(x),) + tuple(self.x_type.shape[1:]))
        return x, y


def _correct(pred: np.ndarray, y: np.ndarray) -> int:
    pred, y = to_host(pred), np.asarray(y)
    if pred.ndim == 1:
        return int(np.argmax(pred) == np.argmax(y))
    return int(np.sum(np.argmax(pred, -1) == np.argmax(y, -1)))


def as_dataset(obj, what: str, width=None):
    """A :class:`~catgrad.data.Dataset` from a Dataset or an ``(x, y)`` tuple (see the module
    docstring); ``width`` is the model's output width, the number of classes for integer labels."""
    from ..data import Dataset

    if obj is None or isinstance(obj, Dataset):
        return obj
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise CatgradError(f"{what}: give a catgrad.data.Dataset or a tuple (x, y) of arrays, got {type(obj).__name__}")
    x, y = (np.asarray(a) for a in obj)
    if x.dtype.kind not in "biuf":
        raise CatgradError(f"{what}: x must hold numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise CatgradError(f"{what}: x must be a matrix (examples x features), got shape {x.shape}")
    if y.ndim == 0 or len(y) != len(x):
        raise CatgradError(f"{what}: x has {len(x)} rows but y has {len(y) if y.ndim else 'no'} labels")
    if y.dtype.kind not in "biuf":
        raise CatgradError(f"{what}: y must hold numbers (class indices or targets), got dtype {y.dtype}")
    k = width if isinstance(width, int) else None
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(1) == 1):
        y = np.argmax(y, 1)  # one-hot rows: class labels
    if y.ndim == 1 and y.dtype.kind in "biu":
        y = y.astype(np.int64)
        n = k if k is not None else int(y.max()) + 1 if len(y) else 0
        if len(y) and (y.min() < 0 or y.max() >= n):
            raise CatgradError(f"{what}: class labels must lie in [0, {n}) for a model with {n} outputs,"
                               f" got {y.min()}..{y.max()}")
        return Dataset(what, x, y, tuple(str(i) for i in range(n)))
    if y.ndim == 1:  # float labels: a regression target of width 1, if the model has one output
        if k not in (None, 1):
            raise CatgradError(f"{what}: y holds floats, one per row, but the model has {k} outputs;"
                               " give integer class labels (y.astype(int)) or targets of shape (n, k)")
        y = y.reshape(-1, 1)
    if y.ndim != 2:
        raise CatgradError(f"{what}: y must be class labels (n,) or targets (n, k), got shape {y.shape}")
    return Dataset(what, x, y.astype(np.float64), None)


def _loss_program(step):
    """The step's loss ``(label, pred) -> L`` alone, compiled like the step (for validation)."""
    from ..compiler.backends import backend_factory

    return backend_factory(step.backend)(step.loss.body)


def _metrics(step, state, data, lay, loss_run) -> tuple:
    """``(loss, accuracy or None)`` of ``state`` on ``data``: the loss on the whole set at once
    (a fixed-batch or per-example model: the mean of the loss over its batches or rows)."""
    pred = predict(step, state, data)
    _, y = lay.arrays(data)
    pred = pred.astype(y.dtype, copy=False)
    if lay.batched and lay.fixed_batch is None:
        losses, weights = [np.sum(to_host(loss_run(y, pred)[0]))], [1]
    else:
        size = lay.fixed_batch or 1
        chunks = [(y[i : i + size], pred[i : i + size]) for i in range(0, len(y) - size + 1, size)]
        if not lay.batched:
            chunks = [(a[0], b[0]) for a, b in chunks]
        losses, weights = [np.sum(to_host(loss_run(a, b)[0])) for a, b in chunks], [1] * len(chunks)
    loss = float(np.average(losses, weights=weights)) if losses else float("nan")
    acc = float(np.mean(np.argmax(pred, -1) == data.y)) if data.is_classification and len(data) else None
    return loss, acc


def predict(step, state, data, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs on every row of ``data`` with the parameters in ``state``."""
    lay = _Layout.of(step)
    x, _ = lay.arrays(data)
    return apply_rows(lambda xb: step.predict(state, xb), x, lay.x_type, batch_size)


def apply_rows(fn, x: np.ndarray, x_type, batch_size: int = 1024) -> np.ndarray:
    """``fn`` (a model's forward map) on every row of the matrix ``x``, in batches its input type
    ``x_type`` accepts: one row at a time for ``f[d]``, chunks for ``f[B, d]``, and for a fixed
    batch size the last chunk padded with zeros, then cut."""
    if x_type.rank == 1:
        return np.stack([to_host(fn(row)) for row in x]) if len(x) else np.zeros((0,))
    lead = x_type.shape[0]
    fixed = lead if isinstance(lead, int) else None
    size = fixed or batch_size
    outs = []
    for i in range(0, len(x), size):
        xb = x[i : i + size]
        if fixed is not None and len(xb) < size:
            xb = np.concatenate([xb, np.zeros((size - len(xb),) + xb.shape[1:], xb.dtype)])
            outs.append(to_host(fn(xb))[: len(x) - i])
        else:
            outs.append(to_host(fn(xb)))
    return np.concatenate(outs) if outs else np.zeros((0,))


def accuracy(step, state, data) -> Optional[float]:
    """Fraction of rows whose predicted class (argmax) is the label; None for regression data."""
    if not data.is_classification or len(data) == 0:
        return None
    pred = predict(step, state, data)
    return float(np.mean(np.argmax(pred, -1) == data.y))


def _loop_meta(seed, batch_size, drop_last, data, epoch, batch, sums) -> dict:
    return {
        "loop": {"seed": int(seed), "batch_size": int(batch_size), "drop_last": bool(drop_last),
                 "data": data.fingerprint(), "n_train": len(data)},
        "position": {"epoch": int(epoch), "batch": int(batch)},
        # running sums of the unfinished epoch, so its metrics survive a resume unchanged
        "running": {"loss": sums[0], "correct": sums[1], "count": sums[2]},
    }


def save_checkpoint(path, step, state, meta: dict, preprocessing=None, source=None, force: bool = False,
                    protect=()) -> None:
    """Write ``state`` and ``meta`` to ``path``, with what inference needs: the model's hash,
    name and ``.cat`` source (``source = {"name", "path", "text"}``, when known), the loss, and
    the preprocessing fitted on the training rows."""
    flat = state.flat()
    model = {"hash": ckpt.model_hash(step.model)}
    if source:
        model.update(source)
    meta = dict(meta, signature=step.signature(), model=model)
    if preprocessing is not None:
        arrays, meta["preprocess"] = preprocessing.to_checkpoint()
        flat.update(arrays)
    ckpt.save(path, flat, meta, force=force, protect=protect)


def _state_entries(flat: dict) -> dict:
    return {k: v for k, v in flat.items() if k == "step" or k.startswith(("param/", "opt/", "state/"))}


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt (see :mod:`catgrad.cli`); ``kept`` says what
    became of the checkpoint."""

    kept = ""


def _same(a, b) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return os.path.abspath(os.fspath(a)) == os.path.abspath(os.fspath(b))


def _canon(x):
    import json

    return json.loads(json.dumps(x, sort_keys=True, default=str))


def _nan_causes(state, X, Y) -> str:
    """A short guess at why the loss stopped being finite: a learning rate too large for
    the data's range, or data of a very large magnitude."""
    big = [f"inputs reach {np.max(np.abs(X)):.3g}" if X.size and np.max(np.abs(X)) > 1e3 else "",
           f"targets reach {np.max(np.abs(Y)):.3g}" if Y.size and np.max(np.abs(Y)) > 1e3 else ""]
    big = [b for b in big if b]
    params = [np.max(np.abs(to_host(v))) for v in state.params.values() if np.size(to_host(v))]
    pmax = max(params) if params else 0.0
    parts = ["a learning rate too large (try a smaller lr)"]
    if big:
        parts.append("data of a large range (" + ", ".join(big) + "; standardise it)")
    if pmax > 1e6:
        parts.append(f"parameters already diverging (largest |value| {pmax:.3g})")
    return "; ".join(parts)


def load_checkpoint(path, step, init_seed: int = 0):
    """``(state, meta)`` from ``path``, after checking it belongs to ``step``'s model and optimizer."""
    flat, meta = ckpt.load(path)
    flat = _state_entries(flat)
    ckpt.check_signature(path, meta.get("signature"), step.signature())
    template = step.init(seed=init_seed)
    ckpt.check_arrays(path, flat, template.flat())
    return step.to_backend(type(template).from_flat(flat)), meta


def fit(step, train, *, epochs: int, batch_size: int = 32, seed: int = 0, test=None, validation=None,
        patience: Optional[int] = None, monitor: str = "val_loss", state=None,
        init_seed: Optional[int] = None, checkpoint=None, checkpoint_every: Optional[int] = None,
        resume=None, max_steps: Optional[int] = None, drop_last: bool = False, progress: bool = False,
        log=None, preprocessing=None, source: Optional[dict] = None, force: bool = False, protect=(),
        run_info: Optional[dict] = None, donate: Optional[bool] = None) -> FitResult:
    """Train ``step`` (a compiled step program) on the :class:`~catgrad.data.Dataset` ``train``.

    ``state`` defaults to ``step.init(seed=init_seed if given else seed)``. With ``resume``, the
    state and loop position come from that checkpoint (which must match the model, optimizer,
    data, seed and batch size). With ``checkpoint``, the state is saved there after every epoch,
    every ``checkpoint_every`` steps, and when ``max_steps`` stops the run early. ``progress``
    shows a tqdm bar on stderr; ``log(record)`` is called with each epoch's metrics.
    ``train``, ``test`` and ``validation`` are datasets or ``(x, y)`` tuples; ``validation``
    adds ``val_loss`` / ``val_accuracy`` to every epoch's record, and ``patience`` stops early on
    ``monitor`` (see the module docstring). ``preprocessing`` (a
    :class:`~catgrad.train.preprocess.Preprocessing`) and ``source`` (the model's ``.cat``
    ``name``, ``path`` and ``text``) go into the checkpoint for :func:`catgrad.load_checkpoint`.

    The checkpoint path is checked before the first step: an existing file there is replaced
    only if it is a checkpoint (or ``force``), never if it is one of ``protect`` (the run's
    inputs) or not a regular file. ``run_info`` (JSON-able, e.g. the loss name) is stored in
    the checkpoint and must be equal when resuming.

    ``donate``: run the step in place (see the module docstring); default (None) on wherever
    the step can (the numpy and torch backends), ``True`` makes it an error where it cannot,
    ``False`` keeps the functional step (and the last good state of a diverging run).
    """
    if checkpoint is not None:
        ckpt.check_path(checkpoint, force=force, protect=tuple(protect) + ((resume,) if resume is not None
                                                                           and not _same(resume, checkpoint) else ()))
    if epochs < 0 or batch_size < 1:
        raise CatgradError(f"epochs must be >= 0 and the batch size >= 1, got epochs={epochs}, batch={batch_size}")
    lay = _Layout.of(step)
    width = lay.y_type.shape[-1] if lay.y_type.rank else 1
    train, test, validation = (as_dataset(d, w, width) for d, w in
                               ((train, "train"), (test, "test"), (validation, "validation")))
    if len(train) == 0:
        raise CatgradError(f"{train.name}: no training examples")
    rank, world = _process_group(step)
    if world is not None:
        if batch_size % world:
            raise CatgradError(f"the global batch of {batch_size} does not divide by the {world} processes; "
                               f"use a multiple of {world}")
        drop_last = True  # equal shards of full batches: the run does not depend on the number of processes
    lay.check(train, batch_size)
    for other in (test, validation):
        if other is not None and len(other):
            lay.check(other, batch_size)
    if validation is not None and len(validation) == 0:
        validation = None
    if patience is not None:
        if patience < 1:
            raise CatgradError(f"patience must be >= 1 epoch, got {patience}")
        if monitor.startswith("val_") and validation is None:
            raise CatgradError(f"early stopping on {monitor!r} needs validation data (fit(..., validation=...))")
        if monitor not in ("val_loss", "val_accuracy", "train_loss"):
            raise CatgradError(f"monitor must be 'val_loss', 'val_accuracy' or 'train_loss', got {monitor!r}")
    loss_run = _loss_program(step) if validation is not None else None
    X, Y = lay.arrays(train)
    n = len(X)
    n_batches = n // batch_size if (drop_last or lay.fixed_batch is not None) else math.ceil(n / batch_size)
    if n_batches == 0:
        raise CatgradError(f"{train.name}: {n} examples are fewer than one batch of {batch_size}")

    call = _donating(step, donate)
    donated = bool(getattr(call, "donates", False))  # (also a step the caller compiled with donate=True)
    epoch0, batch0, sums = 0, 0, [0.0, 0, 0]
    if resume is not None:
        state, meta = load_checkpoint(resume, step, init_seed if init_seed is not None else seed)
        epoch0, batch0, sums = ckpt.check_meta(resume, meta, state.flat())
        want = _loop_meta(seed, batch_size, drop_last or lay.fixed_batch is not None, train, 0, 0, sums)["loop"]
        have = meta["loop"]
        for key, what in (("data", "training data"), ("seed", "--seed"), ("batch_size", "batch size"), ("drop_last", "drop_last")):
            if have.get(key) != want[key]:
                raise ckpt.CheckpointError(
                    f"{resume}: the checkpoint was written with a different {what} ({have.get(key)!r}, now {want[key]!r});"
                    " resuming would not continue the same run"
                )
        if _canon(have.get("run")) != _canon(run_info):
            a, b = have.get("run") if isinstance(have.get("run"), dict) else {}, run_info or {}
            diff = ", ".join(f"{k} {a.get(k)!r}, now {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
            raise ckpt.CheckpointError(
                f"{resume}: the checkpoint was written by a run with other settings ({diff or 'none recorded'});"
                " resuming would not continue the same run"
            )
        if batch0 >= n_batches:
            raise ckpt.CheckpointError(f"{resume}: damaged checkpoint metadata (position: batch {batch0}, "
                                       f"but an epoch has {n_batches} batches)")
    elif state is None:
        state = step.init(seed=init_seed if init_seed is not None else seed)
    elif donated:
        state = _copied(state)  # the caller's state is the caller's: the donating step writes into its own copy

    result = FitResult(state=state)
    total = max(0, epochs * n_batches - (epoch0 * n_batches + batch0))
    if max_steps is not None:
        total = min(total, max_steps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True, mininterval=0.25, leave=False)

    saved = [False]  # whether this run has written its checkpoint (the "last good" one)

    def save(epoch, batch, at=None):
        if checkpoint is not None and rank == 0:  # one writer; every rank holds the same state
            meta = _loop_meta(seed, batch_size, drop_last or lay.fixed_batch is not None, train, epoch, batch, sums)
            meta["loop"]["run"] = run_info
            with signals_held():  # an interrupt lands after the flag, so its message names this file
                save_checkpoint(checkpoint, step, state if at is None else at, meta, preprocessing, source,
                                force=force or saved[0], protect=protect)
                saved[0] = True

    def kept() -> str:
        if checkpoint is None:
            return ""
        if saved[0]:
            return f"; the last good checkpoint {checkpoint} is kept"
        if resume is not None and _same(resume, checkpoint):
            return f"; the checkpoint {checkpoint} it resumed from is kept"
        return "; no checkpoint was written yet"

    better = (lambda a, b: a > b) if monitor.endswith("accuracy") else (lambda a, b: a < b)
    best = None  # (score, epoch, state) of the best epoch so far

    done = 0
    classify = train.is_classification
    try:
        for epoch in range(epoch0, epochs):
            order = epoch_order(seed, epoch, n)
            for b in range(batch0 if epoch == epoch0 else 0, n_batches):
                if max_steps is not None and done >= max_steps:
                    save(epoch, b)
                    result.stopped_early = True
                    return _finish(result, step, state, train, test, sums, epoch)
                rows = order[b * batch_size : (b + 1) * batch_size]
                if world is not None:  # this process's shard of the global batch
                    share = batch_size // world
                    mine = rows[rank * share : (rank + 1) * share]
                    xb, yb = X[mine], Y[mine]
                elif lay.batched:
                    xb, yb = X[rows], Y[rows]
                else:
                    xb, yb = X[rows[0]], Y[rows[0]]
                new_state, out = call(state, xb, yb)
                loss = float(out.loss)
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"the loss became {loss} at step {state.step + 1} (epoch {epoch + 1}, batch {b + 1});"
                        f" training stopped{kept()}. Likely causes: {_nan_causes(new_state if donated else state, X, Y)}"
                        + ("; the state in memory was updated in place (fit(..., donate=False) keeps the last good"
                           " one)" if donated else ""),
                        step=state.step + 1, state=None if donated else state,
                    )
                state = new_state
                done += 1
                sums[0] += loss * len(rows)
                sums[2] += len(rows)
                if classify:  # the step's loss is already the global batch's; the correct count is summed here
                    sums[1] += _correct(out.pred, yb) if world is None else _sum_over_processes(_correct(out.pred, yb))
                if bar is not None:
                    bar.update(1)
                    if done % 50 == 0 or b == n_batches - 1:
                        bar.set_description(f"epoch {epoch + 1}/{epochs}", refresh=False)
                        bar.set_postfix(loss=f"{sums[0] / sums[2]:.4g}", refresh=False)
                if checkpoint_every and state.step % checkpoint_every == 0 and b + 1 < n_batches:
                    save(epoch, b + 1)
            record = {"epoch": epoch + 1, "step": int(state.step), "train_loss": sums[0] / sums[2]}
            if classify:
                record["train_accuracy_running"] = sums[1] / sums[2]
            if validation is not None:
                record["val_loss"], acc = _metrics(step, state, validation, lay, loss_run)
                if acc is not None:
                    record["val_accuracy"] = acc
            result.history.append(record)
            sums = [0.0, 0, 0]
            save(epoch + 1, 0)
            if log is not None:
                log(record)
            if patience is not None:
                score = record.get(monitor)
                if score is None:
                    raise CatgradError(f"cannot monitor {monitor!r}: the data has no classes")
                if best is None or better(score, best[0]):
                    best = (score, epoch + 1, _copied(state) if donated else state)
                elif epoch + 1 - best[1] >= patience:
                    state = best[2]
                    save(best[1], 0)
                    result.stopped_early, result.best_epoch = True, best[1]
                    return _finish(result, step, state, train, test, [0.0, 0, 0], epoch + 1)
        if best is not None:
            result.best_epoch = best[1]
        return _finish(result, step, state, train, test, sums, epochs)
    except (KeyboardInterrupt, Interrupted) as e:
        e.kept = kept()
        raise
    finally:
        if bar is not None:
            bar.close()


def _donating(step, donate: Optional[bool]):
    """What the loop calls: ``step`` compiled to update its state in place
    (:meth:`Step.donating`) unless ``donate`` is False (None: where the step can), else ``step``."""
    from ..compiler.compiled_step import Step

    if donate is False:
        return step
    twin = step.donating() if isinstance(step, Step) else None
    if twin is None:
        if donate:
            raise CatgradError(f"donate=True: this step ({type(step).__name__}, backend "
                               f"{getattr(step, 'backend', '?')!r}) cannot update its state in place")
        return step
    return twin


def _copied(state):
    """``state`` with every array copied (torch tensors stay tensors, on their device)."""
    from dataclasses import replace

    copy = lambda d: {k: v.clone() if hasattr(v, "clone") else np.array(v, copy=True) for k, v in d.items()}  # noqa: E731
    return replace(state, params=copy(state.params), opt_state=copy(state.opt_state),
                   model_state=copy(state.model_state))


def _process_group(step):
    """``(rank, world size)`` of a data-parallel step (``cg.compile(..., distributed=True)``),
    ``(0, None)`` for a one-process one."""
    world = getattr(step, "world_size", None)
    if world is None:
        return 0, None
    import torch.distributed as dist

    return dist.get_rank(), world


def _sum_over_processes(k: int) -> int:
    import torch
    import torch.distributed as dist

    t = torch.tensor([k], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())


def _finish(result, step, state, train, test, sums, epoch) -> FitResult:
    result.state = state
    result.steps = int(state.step)
    result.epochs = int(epoch)
    if result.history:
        result.train_loss = float(result.history[-1]["train_loss"])
    elif sums[2]:
        result.train_loss = sums[0] / sums[2]
    result.train_accuracy = accuracy(step, state, train)
    result.test_accuracy = accuracy(step, state, test) if test is not None and len(test) else None
    return result


__all__ = ["FitResult", "Interrupted", "NonFiniteLossError", "accuracy", "apply_rows", "as_dataset", "epoch_order", "fit", "load_checkpoint", "predict", "save_checkpoint"]
