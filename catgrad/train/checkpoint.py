"""Checkpoints: everything needed to continue a training run bit for bit, and to use the
trained model, in one safetensors file.

A checkpoint is a `safetensors <https://huggingface.co/docs/safetensors>`_ file, so torch
(``safetensors.torch.load_file``), JAX, numpy and any other safetensors reader open it
without catgrad. Its tensors are

* the flat train state (``TrainState.flat()``): ``param/<name>``, ``opt/<key>`` and ``step``;
* the preprocessing fitted on the training rows: ``preprocess/mean`` and
  ``preprocess/scale`` (the standardisation ``x |-> (x - mean) / scale``), when there is one.

Its string metadata holds ``format`` (``catgrad-checkpoint/2``) and ``catgrad``, a JSON
document with the compiled step's ``signature()`` (parameter names and types, optimizer-state
keys), the model (its name, the ``.cat`` source it came from and a hash of its elaborated
diagram), the label encoding (class names), the feature names, and the loop position: epoch,
index of the next batch, shuffle seed, batch size, the data's fingerprint and the running sums
of the current epoch's metrics.

The shuffle order of epoch e is a pure function of (seed, e) (see :mod:`catgrad.train.loop`),
so (seed, epoch, batch) *is* the shuffle RNG state; nothing else is random during training.

Writing is atomic: the bytes go to a temporary file in the target's directory, are flushed
and fsync'ed, and the temporary file is renamed over the target with :func:`os.replace`
(atomic on POSIX). A crash therefore leaves either the old checkpoint or the new one, never a
torn file, and an error removes the temporary file. Reading never runs code: safetensors holds
raw arrays and JSON only. Checkpoints of the first format (``.npz`` archives with a
``__meta__`` entry) are still read, with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .. import files
from ..errors import CatgradError

FORMAT = "catgrad-checkpoint/2"
FORMAT_NPZ = "catgrad-checkpoint/1"  # the first format: an .npz archive, still readable
META = "__meta__"
META_KEY = "catgrad"


class CheckpointError(CatgradError, ValueError):
    """A checkpoint that cannot be written, read, or does not belong to this model/run."""


def _safetensors_meta(path) -> dict | None:
    """The string metadata of a safetensors file, or None if ``path`` is not one. Reads the
    header only (its length is checked before it is read)."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 2 <= n <= 100 << 20 or n + 8 > os.fstat(fh.fileno()).st_size:
                return None
            header = json.loads(fh.read(n))
    except (OSError, ValueError, RecursionError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else ({} if isinstance(header, dict) else None)


def _ours(head: bytes, path) -> bool:
    """A checkpoint catgrad wrote: a safetensors file with our format tag, or a first-format .npz."""
    if head.startswith(b"PK"):
        return files.is_checkpoint_file(path)
    meta = _safetensors_meta(path)
    return meta is not None and meta.get("format") in (FORMAT,)


def is_checkpoint(path) -> bool:
    """Whether ``path`` holds a checkpoint catgrad wrote (either format)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return _ours(head, path)


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
    from safetensors.numpy import save as st_save

    if META in flat:
        raise CheckpointError(f"{META!r} is reserved")
    arrays = {}
    for k, v in flat.items():
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: entry {k!r} has dtype {a.dtype}; only numeric arrays are stored")
        arrays[k] = a if a.flags.c_contiguous else a.copy(order="C")  # (ascontiguousarray would make 0-d 1-d)
    doc = json.dumps(_canon(dict(meta, format=FORMAT)), sort_keys=True)
    data = st_save(arrays, metadata={"format": FORMAT, META_KEY: doc})
    atomic_write(path, lambda fh: fh.write(data), force=force, protect=protect)


def load(path) -> tuple:
    """Read ``(flat, meta)`` from a checkpoint written by :func:`save` (or by the first,
    ``.npz`` format)."""
    path = files.check_readable(path, "checkpoint file", CheckpointError)
    if zipfile.is_zipfile(path):
        return _load_npz(path)
    from safetensors.numpy import load as st_load

    size, limit = os.path.getsize(path), files.memory_limit()
    if size > limit:  # checked before a byte is read
        raise CheckpointError(f"{path}: the file is {files.human_bytes(size)}, more than the "
                              f"{files.human_bytes(limit)} a checkpoint may take (CATGRAD_MAX_BYTES)")
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        # the header: 8 bytes of little-endian length, then JSON with the string metadata
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n]).get("__metadata__") or {} if 8 + n <= len(data) else None
        flat = st_load(data) if isinstance(header, dict) else None
    except Exception as e:  # safetensors reports a torn or foreign file with its own error type
        raise CheckpointError(f"{path}: not a catgrad checkpoint (neither safetensors nor .npz: {e})") from None
    if flat is None:
        raise CheckpointError(f"{path}: not a catgrad checkpoint (neither safetensors nor .npz)")
    try:
        meta = json.loads(header.get(META_KEY, ""))
    except ValueError:
        meta = None
    if header.get("format") != FORMAT or not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file but not a catgrad checkpoint (no {FORMAT} metadata)")
    return flat, meta


def _load_npz(path: str) -> tuple:
    heads = files.npz_headers(path, CheckpointError)  # sizes and dtypes before decompressing
    if META not in heads or heads[META][0] != np.uint8 or len(heads[META][1]) != 1 or heads[META][1][0] > 1 << 24:
        raise CheckpointError(f"{path}: not a catgrad checkpoint (an .npz archive without the {FORMAT_NPZ} tag)")
    for k, (dtype, _) in heads.items():
        if dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: entry {k!r} has dtype {dtype}; a checkpoint holds only numeric arrays")
    flat = files.read_npz(path, CheckpointError)
    raw = flat.pop(META, None)
    try:
        meta = json.loads(bytes(raw).decode()) if raw is not None else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NPZ:
        raise CheckpointError(f"{path}: not a catgrad checkpoint (an .npz archive without the {FORMAT_NPZ} tag)")
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


def model_hash(model) -> str:
    """A hash of an elaborated model: its parameters (names, types) and its diagram's canonical
    form. Two loads of the same definition agree; editing comments or layout changes nothing."""
    import hashlib

    state = [(p.name, str(p.type)) for p in getattr(model, "state", ())]
    text = repr(([(p.name, str(p.type)) for p in model.params], model.body.graph.canonical()) + ((state,) if state else ()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


__all__ = ["CheckpointError", "FORMAT", "FORMAT_NPZ", "atomic_write", "check_arrays", "check_meta", "check_path", "is_checkpoint",
           "check_signature", "load", "model_hash", "save"]
