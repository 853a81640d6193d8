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

from ..files import atomic_write as _atomic_write
from ..errors import CatgradError

FORMAT = "catgrad-checkpoint/2"
FORMAT_NPZ = "catgrad-checkpoint/1"  # the first format: an .npz archive, still readable
META = "__meta__"
META_KEY = "catgrad"


class CheckpointError(CatgradError, ValueError):
    """A checkpoint that cannot be written, read, or does not belong to this model/run."""


def atomic_write(path, write) -> None:
    """Write a checkpoint file atomically (see :func:`catgrad.files.atomic_write`)."""
    _atomic_write(path, write, what="a checkpoint", error=CheckpointError)


def _canon(obj):
    """A JSON-comparable form (tuples -> lists, unknown objects -> str)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def save(path, flat: dict, meta: dict) -> None:
    """Write ``flat`` (name -> array) and ``meta`` (JSON-able) to ``path`` atomically."""
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
    atomic_write(path, lambda fh: fh.write(data))


def load(path) -> tuple:
    """Read ``(flat, meta)`` from a checkpoint written by :func:`save` (or by the first,
    ``.npz`` format)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if zipfile.is_zipfile(path):
        return _load_npz(path)
    from safetensors.numpy import load as st_load

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
    try:
        with np.load(path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.keys()}
    except ValueError as e:
        raise CheckpointError(f"{path}: refusing to load: {e}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: not a catgrad checkpoint (unreadable .npz: {e})") from None
    raw = flat.pop(META, None)
    try:
        meta = json.loads(bytes(raw).decode()) if raw is not None else None
    except (ValueError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NPZ:
        raise CheckpointError(f"{path}: not a catgrad checkpoint (an .npz archive without the {FORMAT_NPZ} tag)")
    return flat, meta


def model_hash(model) -> str:
    """A hash of an elaborated model: its parameters (names, types) and its diagram's canonical
    form. Two loads of the same definition agree; editing comments or layout changes nothing."""
    import hashlib

    text = repr(([(p.name, str(p.type)) for p in model.params], model.body.graph.canonical()))
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


__all__ = ["CheckpointError", "FORMAT", "FORMAT_NPZ", "atomic_write", "check_arrays", "model_hash", "check_signature", "load", "save"]
