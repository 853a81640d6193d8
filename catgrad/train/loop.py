"""The training loop: the compiled step, iterated over seeded mini-batches.

The loop adds no learning of its own: every update is one call of the compiled step
program ``step(state, x, y) -> (state', out)`` (``cg.compile``), which is the closed
supervised step of MATH.md §3 -- optimizer, model, loss and learning rate as one
diagram. The loop only decides which examples go into each call, and in what order:

* Epoch e visits the training rows in the order ``permutation_e`` drawn by
  ``numpy.random.default_rng(SeedSequence([seed, e]))``; batch b of that epoch is rows
  ``permutation_e[b * batch : (b + 1) * batch]`` (the last batch may be smaller, unless
  ``drop_last``). The order is a pure function of ``(seed, e)``, so the loop's whole
  random state is the triple (seed, epoch, batch) -- which is what a checkpoint stores.
* A model whose input type has no batch axis (``f64[d]``) is trained per example
  (``batch`` must be 1); one with a symbolic leading axis (``f64["B", d]``) takes batches.

Metrics: the training loss of an epoch is the batch-size-weighted mean of the loss the
step reports for each batch (with a per-example or mean-reduced loss, the mean loss per
example); accuracy compares ``argmax`` of the prediction with ``argmax`` of the one-hot
label. :func:`evaluate` measures accuracy of given parameters on a whole dataset.

A loss that is NaN or infinite stops training with :class:`NonFiniteLossError` naming the
step; the bad update is discarded and the checkpoint file (the last good one) is left as is.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import CatgradError, ShapeError
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

    def summary(self) -> dict:
        return {
            "epochs": self.epochs, "steps": self.steps, "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy, "test_accuracy": self.test_accuracy,
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
        x = np.ascontiguousarray(data.x, dtype=self.x_type.dtype.numpy)
        if self.x_type.rank > 2:
            x = x.reshape((len(x),) + tuple(self.x_type.shape[1:]))
        return x, data.targets(self.y_type.dtype.numpy)


def _correct(pred: np.ndarray, y: np.ndarray) -> int:
    pred, y = np.asarray(pred), np.asarray(y)
    if pred.ndim == 1:
        return int(np.argmax(pred) == np.argmax(y))
    return int(np.sum(np.argmax(pred, -1) == np.argmax(y, -1)))


def predict(step, state, data, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs on every row of ``data`` with the parameters in ``state``."""
    lay = _Layout.of(step)
    x, _ = lay.arrays(data)
    if not lay.batched:
        return np.stack([np.asarray(step.predict(state, row)) for row in x]) if len(x) else np.zeros((0,))
    if lay.fixed_batch is not None:
        batch_size = lay.fixed_batch
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        if lay.fixed_batch is not None and len(xb) < batch_size:  # pad the last batch, then cut
            xb = np.concatenate([xb, np.zeros((batch_size - len(xb),) + xb.shape[1:], xb.dtype)])
            outs.append(np.asarray(step.predict(state, xb))[: len(x) - i])
        else:
            outs.append(np.asarray(step.predict(state, xb)))
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


def save_checkpoint(path, step, state, meta: dict) -> None:
    ckpt.save(path, state.flat(), dict(meta, signature=step.signature()))


def load_checkpoint(path, step, init_seed: int = 0):
    """``(state, meta)`` from ``path``, after checking it belongs to ``step``'s model and optimizer."""
    flat, meta = ckpt.load(path)
    ckpt.check_signature(path, meta.get("signature"), step.signature())
    template = step.init(seed=init_seed)
    ckpt.check_arrays(path, flat, template.flat())
    return type(template).from_flat(flat), meta


def fit(step, train, *, epochs: int, batch_size: int = 32, seed: int = 0, test=None, state=None,
        init_seed: Optional[int] = None, checkpoint=None, checkpoint_every: Optional[int] = None,
        resume=None, max_steps: Optional[int] = None, drop_last: bool = False, progress: bool = False,
        log=None) -> FitResult:
    """Train ``step`` (a compiled step program) on the :class:`~catgrad.data.Dataset` ``train``.

    ``state`` defaults to ``step.init(seed=init_seed if given else seed)``. With ``resume``, the
    state and loop position come from that checkpoint (which must match the model, optimizer,
    data, seed and batch size). With ``checkpoint``, the state is saved there after every epoch,
    every ``checkpoint_every`` steps, and when ``max_steps`` stops the run early. ``progress``
    shows a tqdm bar on stderr; ``log(record)`` is called with each epoch's metrics.
    """
    if epochs < 0 or batch_size < 1:
        raise CatgradError(f"epochs must be >= 0 and the batch size >= 1, got epochs={epochs}, batch={batch_size}")
    if len(train) == 0:
        raise CatgradError(f"{train.name}: no training examples")
    lay = _Layout.of(step)
    lay.check(train, batch_size)
    if test is not None and len(test):
        lay.check(test, batch_size)
    X, Y = lay.arrays(train)
    n = len(X)
    n_batches = n // batch_size if (drop_last or lay.fixed_batch is not None) else math.ceil(n / batch_size)
    if n_batches == 0:
        raise CatgradError(f"{train.name}: {n} examples are fewer than one batch of {batch_size}")

    epoch0, batch0, sums = 0, 0, [0.0, 0, 0]
    if resume is not None:
        state, meta = load_checkpoint(resume, step, init_seed if init_seed is not None else seed)
        want = _loop_meta(seed, batch_size, drop_last or lay.fixed_batch is not None, train, 0, 0, sums)["loop"]
        have = meta.get("loop", {})
        for key, what in (("data", "training data"), ("seed", "--seed"), ("batch_size", "batch size"), ("drop_last", "drop_last")):
            if have.get(key) != want[key]:
                raise ckpt.CheckpointError(
                    f"{resume}: the checkpoint was written with a different {what} ({have.get(key)!r}, now {want[key]!r});"
                    " resuming would not continue the same run"
                )
        pos, run = meta["position"], meta["running"]
        epoch0, batch0, sums = int(pos["epoch"]), int(pos["batch"]), [float(run["loss"]), int(run["correct"]), int(run["count"])]
    elif state is None:
        state = step.init(seed=init_seed if init_seed is not None else seed)

    result = FitResult(state=state)
    total = max(0, epochs * n_batches - (epoch0 * n_batches + batch0))
    if max_steps is not None:
        total = min(total, max_steps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True, mininterval=0.25, leave=False)

    def save(epoch, batch):
        if checkpoint is not None:
            save_checkpoint(checkpoint, step, state,
                            _loop_meta(seed, batch_size, drop_last or lay.fixed_batch is not None, train, epoch, batch, sums))

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
                if lay.batched:
                    xb, yb = X[rows], Y[rows]
                else:
                    xb, yb = X[rows[0]], Y[rows[0]]
                new_state, out = step(state, xb, yb)
                loss = float(out.loss)
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"the loss became {loss} at step {state.step + 1} (epoch {epoch + 1}, batch {b + 1});"
                        " training stopped" + (f", the last good checkpoint {checkpoint} is kept" if checkpoint else ""),
                        step=state.step + 1, state=state,
                    )
                state = new_state
                done += 1
                sums[0] += loss * len(rows)
                sums[2] += len(rows)
                if classify:
                    sums[1] += _correct(out.pred, yb)
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
            result.history.append(record)
            sums = [0.0, 0, 0]
            save(epoch + 1, 0)
            if log is not None:
                log(record)
        return _finish(result, step, state, train, test, sums, epochs)
    finally:
        if bar is not None:
            bar.close()


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


__all__ = ["FitResult", "NonFiniteLossError", "accuracy", "epoch_order", "fit", "load_checkpoint", "predict", "save_checkpoint"]
