"""Checkpoints: everything needed to continue a training run bit for bit, in one ``.npz`` file.

A checkpoint holds

* the flat train state (``TrainState.flat()``): ``param/<name>``, ``opt/<key>`` and ``step``;
* ``__meta__``: a UTF-8 JSON document (stored as a uint8 array) with the format tag, the
  compiled step's ``signature()`` (parameter names and types, optimizer-state keys) and the
  loop position: epoch, index of the next batch, shuffle seed, batch size, the data's
  fingerprint and the running sums of the current epoch's metrics.

The shuffle order of epoch e is a pure function of (seed, e) (see :mod:`catgrad.train.loop`),
so (seed, epoch, batch) *is* the shuffle RNG state; nothing else is random during training.

Writing is atomic: the bytes go to a temporary file in the target's directory, are flushed
and fsync'ed, and the temporary file is renamed over the target with :func:`os.replace`
(atomic on POSIX). A crash therefore leaves either the old checkpoint or the new one, never a
torn file, and an error removes the temporary file. Reading uses ``allow_pickle=False``, so
loading a checkpoint can never run code.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .. import files
from ..errors import CatgradError

FORMAT = "catgrad-checkpoint/1"
META = "__meta__"


class CheckpointError(CatgradError, ValueError):
    """A checkpoint that cannot be written, read, or does not belong to this model/run."""


def _ours(head: bytes, path) -> bool:
    return head.startswith(b"PK") and files.is_checkpoint_file(path)


def check_path(path, force: bool = False, protect=()) -> str:
    """Refuse, before training starts, a checkpoint path whose current contents would be
    lost: only a checkpoint (or an empty file) is replaced, unless ``force``; never one of
    the run's inputs (``protect``), a directory, FIFO or device (see :mod:`catgrad.files`)."""
    return files.check_output(path, "a checkpoint", ours=_ours, force=force, protect=protect, error=CheckpointError)


def atomic_write(path, write, force: bool = False, protect=()) -> None:
    """Write a checkpoint file atomically (see :func:`catgrad.files.atomic_write`)."""
    files.atomic_write(path, write, what="a checkpoint", error=CheckpointError, ours=_ours, force=force,
                       protect=protect)


def _canon(obj):
    """A JSON-comparable form (tuples -> lists, unknown objects -> str)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def save(path, flat: dict, meta: dict, force: bool = False, protect=()) -> None:
    """Write ``flat`` (name -> array) and ``meta`` (JSON-able) to ``path`` atomically
    (refusing a path that holds something other than a checkpoint, see :func:`check_path`)."""
    if META in flat:
        raise CheckpointError(f"{META!r} is reserved")
    arrays = {k: np.asarray(v) for k, v in flat.items()}
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: entry {k!r} has dtype {a.dtype}; only numeric arrays are stored")
    doc = dict(meta, format=FORMAT)
    arrays[META] = np.frombuffer(json.dumps(_canon(doc), sort_keys=True).encode(), dtype=np.uint8)
    atomic_write(path, lambda fh: np.savez(fh, **arrays), force=force, protect=protect)


def load(path) -> tuple:
    """Read ``(flat, meta)`` from a checkpoint written by :func:`save`."""
    path = files.check_readable(path, "checkpoint file", CheckpointError)
    if not zipfile.is_zipfile(path):  # else numpy would try to read it as a pickle
        raise CheckpointError(f"{path}: not a catgrad checkpoint (not an .npz archive)")
    heads = files.npz_headers(path, CheckpointError)  # sizes and dtypes before decompressing
    if META not in heads or heads[META][0] != np.uint8 or len(heads[META][1]) != 1 or heads[META][1][0] > 1 << 24:
        raise CheckpointError(f"{path}: not a catgrad checkpoint (missing or unknown format tag; expected {FORMAT})")
    for k, (dtype, _) in heads.items():
        if dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: entry {k!r} has dtype {dtype}; a checkpoint holds only numeric arrays")
    flat = files.read_npz(path, CheckpointError)
    raw = flat.pop(META, None)
    try:
        meta = json.loads(bytes(raw).decode()) if raw is not None else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a catgrad checkpoint (missing or unknown format tag; expected {FORMAT})")
    return flat, meta


def check_meta(path, meta: dict, flat: dict) -> tuple:
    """The loop position ``(epoch, batch, [loss_sum, correct, count])`` of a checkpoint,
    after checking the metadata is well-formed (a tampered file is refused here, by name,
    instead of failing somewhere inside the loop)."""

    def bad(what):
        return CheckpointError(f"{path}: damaged checkpoint metadata ({what})")

    def integer(v, what, lo=0, hi=10**12):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise bad(f"{what} must be a whole number in [{lo}, {hi}], got {_short(v)}")
        return v

    pos, run, loop = meta.get("position"), meta.get("running"), meta.get("loop")
    for name, v in (("position", pos), ("running", run), ("loop", loop)):
        if not isinstance(v, dict):
            raise bad(f"'{name}' is missing")
    epoch, batch = integer(pos.get("epoch"), "position.epoch", 0, 10**9), integer(pos.get("batch"), "position.batch")
    loss = run.get("loss")
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or loss != loss:
        raise bad(f"running.loss must be a number, got {_short(loss)}")
    if isinstance(loss, float) and abs(loss) == float("inf"):
        raise bad("running.loss is infinite")
    n_train = integer(loop.get("n_train"), "loop.n_train", 1)
    integer(loop.get("batch_size"), "loop.batch_size", 1)
    count = integer(run.get("count"), "running.count", 0, n_train)  # the unfinished epoch's rows
    correct = integer(run.get("correct"), "running.correct", 0, count)
    step = flat.get("step")
    if step is not None:
        s = np.asarray(step)
        if s.size != 1 or s.dtype.kind not in "iu" or int(s.reshape(-1)[0]) < 0:
            raise CheckpointError(f"{path}: damaged checkpoint (the step counter is {s.reshape(-1)[:3].tolist()}, "
                                  "expected a whole number >= 0)")
    return epoch, batch, [float(loss), correct, count]


def check_signature(path, saved, current) -> None:
    """Refuse a checkpoint whose model/optimizer signature differs from the current one."""
    a, b = _canon(saved), _canon(current)
    if a == b:
        return
    diffs = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                diffs.append(f"{k}: checkpoint has {_short(a.get(k))}, this model has {_short(b.get(k))}")
    detail = "; ".join(diffs[:4]) or f"checkpoint {_short(a)} vs model {_short(b)}"
    raise CheckpointError(f"{path}: this checkpoint was written for a different model or optimizer ({detail})")


def check_arrays(path, flat: dict, template: dict) -> None:
    """Every array the current state needs is present with the same shape and dtype."""
    missing = sorted(set(template) - set(flat))
    extra = sorted(set(flat) - set(template))
    if missing or extra:
        raise CheckpointError(
            f"{path}: this checkpoint was written for a different model or optimizer"
            + (f" (missing {', '.join(missing[:5])})" if missing else "")
            + (f" (unexpected {', '.join(extra[:5])})" if extra else "")
        )
    for k, t in template.items():
        a, t = np.asarray(flat[k]), np.asarray(t)
        if a.shape != t.shape or a.dtype != t.dtype:
            raise CheckpointError(
                f"{path}: entry {k!r} is {a.dtype}{list(a.shape)} but this model needs {t.dtype}{list(t.shape)}"
                " (a checkpoint from a different model)"
            )


def _short(x, n: int = 80) -> str:
    s = json.dumps(x, sort_keys=True) if not isinstance(x, str) else x
    return s if len(s) <= n else s[: n - 3] + "..."


__all__ = ["CheckpointError", "FORMAT", "atomic_write", "check_path", "check_arrays", "check_meta", "check_signature", "load", "save"]
