"""Datasets: the four small tables shipped with scikit-learn, and the user's CSV / ``.npz`` files.

A :class:`Dataset` is a feature matrix ``x`` (n x d, float64) and targets ``y``: for
classification, class indices (n,) with the class names in ``classes``; for regression,
a float matrix (n x k). Everything a training run does to the data is a pure function
of the data and a seed:

* :meth:`Dataset.split` -- a fixed, stratified train/test split, made by scikit-learn's
  ``train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=labels)``:
  ``ceil(test_fraction * n)`` test rows, shared among the classes in proportion to their
  sizes (:class:`sklearn.model_selection.StratifiedShuffleSplit`). When some class is too
  small to appear on both sides (fewer than 2 rows, or fewer test or training rows than
  classes) the split is the unstratified seeded shuffle instead. Both halves keep the
  original row order, so the split depends only on (data, test_fraction, seed).
* :func:`standardize` -- the affine map ``x |-> (x - mu) / sigma`` with mu and sigma the
  per-feature mean and (population) standard deviation of the *training* rows only; a
  constant feature (sigma = 0) gets sigma = 1, so it maps to 0 instead of NaN.
* :func:`one_hot` -- class index k |-> the k-th standard basis vector e_k.

Sources accepted by :func:`load`:

* ``"iris"``, ``"digits"``, ``"wine"``, ``"breast_cancer"`` (no download);
* ``PATH.csv``: a header row (column names; none of them a number), then one example per
  row. The label column is chosen by name or index (``label=...``, an index in [-n, n)),
  otherwise the last column. The file is read in one streaming pass into float64 blocks; a
  file larger than a quarter of :func:`catgrad.files.memory_limit` is refused. Feature cells must be numbers; label
  cells may be numbers or names (names become classes, sorted).
* ``PATH.npz``: arrays ``x`` (n x d) and ``y`` (n class indices, or n x k targets); other
  key names via ``x_key`` / ``y_key``. Loaded with ``allow_pickle=False``, after every
  member's ``.npy`` header (dtype, shape, hence size) is checked.

Every problem with a file is a :class:`DataError` that names the file and the place.

>>> ds = load("iris")
>>> ds.x.shape, ds.n_classes
((150, 4), 3)
>>> train, test = ds.split(test_fraction=0.2, seed=0)
>>> len(train), len(test), sorted(np.bincount(test.y).tolist())
(120, 30, [10, 10, 10])
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import math
import os
import zipfile
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from .errors import CatgradError
from .files import check_readable, human_bytes, memory_limit, npz_headers, read_npz

BUILTIN = ("iris", "digits", "wine", "breast_cancer")
#: names the rule of :meth:`Dataset.split`; a checkpoint records it, so that ``catgrad evaluate``
#: recomputes a held-out split only when it would pick the same rows
SPLIT_RULE = "sklearn-train_test_split-stratified"


class DataError(CatgradError, ValueError):
    """A dataset that cannot be read or does not fit: names the file and the place."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features ``x`` (n x d) and targets ``y``; ``classes`` is None for regression."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: Optional[tuple] = None
    feature_names: tuple = ()
    #: the shape of one example when the features are an image (digits: (1, 8, 8)); rows
    #: stay flat here, and models whose input is image-shaped get them reshaped to it
    example_shape: tuple = ()

    def __post_init__(self):
        if self.x.ndim != 2:
            raise DataError(f"{self.name}: features must be a matrix (examples x features), got shape {self.x.shape}")
        if len(self.y) != len(self.x):
            raise DataError(f"{self.name}: {len(self.x)} feature rows but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def is_classification(self) -> bool:
        return self.classes is not None

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    @property
    def n_classes(self) -> int:
        if self.classes is None:
            raise DataError(f"{self.name}: a regression dataset has no classes")
        return len(self.classes)

    @property
    def target_width(self) -> int:
        """Width of one target vector: the number of classes, or the regression width."""
        return len(self.classes) if self.classes is not None else self.y.shape[1]

    def targets(self, dtype="float64") -> np.ndarray:
        """The targets as the model's output type sees them: one-hot rows, or the float targets."""
        if self.classes is not None:
            return one_hot(self.y, len(self.classes), dtype)
        return np.ascontiguousarray(self.y, dtype=dtype)

    def subset(self, rows, name: Optional[str] = None) -> "Dataset":
        rows = np.asarray(rows)
        return replace(self, name=name or self.name, x=self.x[rows], y=self.y[rows])

    def split(self, test_fraction: float = 0.2, seed: int = 0, stratify: bool = True):
        """A fixed ``(train, test)`` split; see the module docstring for the exact rule."""
        test = split_indices(self.y if (stratify and self.classes is not None) else None, len(self), test_fraction, seed)
        mask = np.zeros(len(self), bool)
        mask[test] = True
        return self.subset(np.flatnonzero(~mask), f"{self.name}[train]"), self.subset(np.flatnonzero(mask), f"{self.name}[test]")

    def fingerprint(self) -> str:
        """A short hash of the arrays: a resumed run checks it trains on the same data."""
        h = hashlib.sha256()
        for a in (self.x, self.y):
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        kind = f"{self.n_classes} classes" if self.classes is not None else f"targets of width {self.y.shape[1]}"
        return f"Dataset({self.name!r}: {len(self)} examples, {self.n_features} features, {kind})"


def split_indices(labels, n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Sorted test-row indices: scikit-learn's seeded ``train_test_split`` of ``range(n)``,
    stratified by ``labels`` when given and possible (see the module docstring)."""
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2**32):
        raise DataError(f"the split's seed must be a whole number in [0, 2^32) (scikit-learn's random_state), got {seed!r}")
    n_test = math.ceil(test_fraction * n)  # scikit-learn's count, computed here to catch the ends
    if n_test == 0:
        return np.zeros(0, np.int64)
    if n_test >= n:  # nothing left to train on: every row is a test row (callers say so)
        return np.arange(n)
    from sklearn.model_selection import train_test_split  # imported lazily: slow to import

    rows = np.arange(n)
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and min(n_test, n - n_test) >= len(counts):
            return np.sort(train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=labels)[1])
    return np.sort(train_test_split(rows, test_size=test_fraction, random_state=seed)[1])


def one_hot(labels, n_classes: int, dtype="float64") -> np.ndarray:
    """Row k of the result is e_{labels[k]}, the standard basis vector of R^n_classes.

    >>> one_hot(np.array([2, 0]), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"one_hot needs a vector of class indices, got shape {labels.shape} dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"class indices must lie in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    out = np.zeros((len(labels), n_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


@dataclass(frozen=True)
class Standardizer:
    """The affine map x |-> (x - mean) / std, fitted on training rows."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        # mean and std of x/m, times m (m = max |x| per column): the same numbers, but a
        # column near the float64 limit (1e308) does not overflow into inf/nan
        if len(x) == 0:  # no training rows: the identity map
            return cls(np.zeros(x.shape[1:]), np.ones(x.shape[1:]))
        from sklearn.preprocessing import StandardScaler

        m = np.max(np.abs(x), axis=0)
        m = np.where(m > 0, m, 1.0)
        s = StandardScaler().fit(x / m)
        std = np.sqrt(s.var_) * m
        return cls(s.mean_ * m, np.where(std > 0, std, 1.0))

    def __call__(self, ds: Dataset) -> Dataset:
        return replace(ds, x=(ds.x - self.mean) / self.std)


def standardize(train: Dataset, *others: Dataset) -> tuple:
    """Standardise ``train`` and ``others`` with statistics of ``train`` alone (no test leakage)."""
    s = Standardizer.fit(train.x)
    return tuple(s(d) for d in (train, *others))


def prepare(source, *, test_fraction: float = 0.2, seed: int = 0, scale: bool = True, **load_kwargs):
    """``load`` + ``split`` + (optionally) ``standardize``: returns ``(train, test)``."""
    train, test = load(source, **load_kwargs).split(test_fraction, seed)
    return standardize(train, test) if scale else (train, test)


# -- loading ----------------------------------------------------------------------------------


def load(source, *, label=None, x_key: str = "x", y_key: str = "y") -> Dataset:
    """A dataset by built-in name or from a ``.csv`` / ``.npz`` path."""
    source = os.fspath(source)
    if source in BUILTIN:
        return _builtin(source)
    if not os.path.lexists(source):
        hint = "" if os.sep in source or "." in source else f" (built-in datasets: {', '.join(BUILTIN)})"
        raise DataError(f"{source}: no such file{hint}")
    check_readable(source, "data file (.csv or .npz)", DataError)
    ext = os.path.splitext(source)[1].lower()
    if ext == ".npz":
        return _load_npz(source, x_key, y_key)
    if ext == ".csv" or ext == ".txt":
        return _load_csv(source, label)
    raise DataError(f"{source}: unknown data format {ext or '(no extension)'!r}; use .csv or .npz")


def _builtin(name: str) -> Dataset:
    from sklearn import datasets as skd  # imported lazily: scikit-learn is slow to import

    b = getattr(skd, f"load_{name}")()
    names = tuple(str(t) for t in b.target_names)
    images = getattr(b, "images", None)
    return Dataset(name, np.asarray(b.data, np.float64), np.asarray(b.target, np.int64), names,
                   tuple(str(f) for f in getattr(b, "feature_names", ())),
                   (1,) + images.shape[1:] if images is not None else ())


def _number(cell: str):
    try:
        return float(cell)
    except ValueError:
        return None


def _label_column(path: str, header: list, label) -> int:
    if label is None:
        return len(header) - 1
    if isinstance(label, str) and label in header:
        return header.index(label)
    if isinstance(label, int) or (isinstance(label, str) and label.strip().lstrip("-").isdigit()):
        k, n = int(label), len(header)
        if not -n <= k < n:
            raise DataError(f"{path}: label column {k} is out of range: the file has {n} columns "
                            f"(0..{n - 1}, or -{n}..-1 from the end)")
        return k % n
    from .errors import did_you_mean

    raise DataError(f"{path}: no column named {label!r}{did_you_mean(label, header)}; columns: {', '.join(header)}")


#: rows are parsed into float64 blocks of this many rows, so memory is the table itself
_CSV_BLOCK = 4096


def _load_csv(path: str, label) -> Dataset:
    limit = memory_limit()
    size = os.path.getsize(path)
    if size > limit // 4:  # each cell becomes 8 bytes (at least 2 bytes of text each), plus the parser's work
        raise DataError(f"{path}: {human_bytes(size)} is larger than the limit for CSV files of {human_bytes(limit // 4)}"
                        " (a quarter of the memory limit, which is half the physical memory or CATGRAD_MAX_BYTES;"
                        " raise it, or convert the data to .npz)")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            return _parse_csv(path, reader, label)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file ({_first_bad_utf8(path)})") from None
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV: {e}") from None


def _first_bad_utf8(path: str) -> str:
    """Where the first byte sequence that is not UTF-8 lies in the file: the text reader's
    error counts bytes from the start of the chunk it was decoding, not of the file."""
    dec, seen, lines = codecs.getincrementaldecoder("utf-8")(), 0, 1
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 16)
            pending = dec.getstate()[0]  # bytes of a character split across chunks
            try:
                dec.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                at = seen - len(pending) + e.start
                lines += (pending + chunk)[: e.start].count(b"\n") - pending.count(b"\n")
                return f"{e.reason} at byte {at}, line {lines}"
            if not chunk:  # pragma: no cover - only called after the text reader failed
                return "undecodable bytes"
            seen += len(chunk)
            lines += chunk.count(b"\n")


def _parse_csv(path: str, reader, label) -> Dataset:
    """One pass over the rows: features into float64 blocks, labels kept as text."""
    line, header = 0, None
    for r in reader:
        line = reader.line_num
        if any(c.strip() for c in r):
            header = [h.strip() for h in r]
            break
    if header is None:
        raise DataError(f"{path}: the file is empty (expected a header row, then data rows)")
    numeric = [h for h in header if _number(h) is not None]
    if numeric:
        raise DataError(f"{path}: line {line} looks like data ({numeric[0]!r} is a number), but the first row must be "
                        "a header of column names; add a header line")
    col = _label_column(path, header, label)
    if len(header) < 2:
        raise DataError(f"{path}: need at least one feature column and a label column, got {header}")
    feats = [j for j in range(len(header)) if j != col]
    blocks, block, raw_labels, lines = [], np.empty((_CSV_BLOCK, len(feats))), [], []
    k = 0
    for r in reader:
        line = reader.line_num
        if not any(c.strip() for c in r):
            continue
        if len(r) != len(header):
            raise DataError(f"{path}: line {line} has {len(r)} cells but the header has {len(header)} columns (ragged row)")
        if k == _CSV_BLOCK:
            blocks.append(block)
            block, k = np.empty((_CSV_BLOCK, len(feats))), 0
        for jj, j in enumerate(feats):
            v = _number(r[j].strip())
            if v is None or not np.isfinite(v):
                what = ("an empty cell" if not r[j].strip() else
                        f"{r[j].strip()!r} is not a number" if v is None else "not a finite number")
                raise DataError(f"{path}: line {line}, column {j + 1} ({header[j]!r}): {what}")
            block[k, jj] = v
        lab = r[col].strip()
        if not lab:
            raise DataError(f"{path}: line {line}, column {col + 1} ({header[col]!r}): empty label")
        raw_labels.append(lab)
        k += 1
    if not raw_labels:
        raise DataError(f"{path}: a header row but no data rows")
    x = np.concatenate(blocks + [block[:k]]) if blocks else block[:k]
    nums = [_number(s) for s in raw_labels]
    if all(v is not None for v in nums):
        vals = np.asarray(nums)
        if not np.all(np.isfinite(vals)):
            i = int(np.flatnonzero(~np.isfinite(vals))[0])
            raise DataError(f"{path}: data row {i + 1}, column {col + 1} ({header[col]!r}): label is not a finite number")
        if np.all(vals == np.round(vals)):  # integral labels: classes
            uniq = np.unique(vals)
            y = np.searchsorted(uniq, vals).astype(np.int64)
            classes = tuple(str(int(u)) for u in uniq)
        else:  # real-valued labels: a regression target of width 1
            y, classes = vals.reshape(-1, 1), None
    else:
        uniq = sorted(set(raw_labels))
        index = {c: i for i, c in enumerate(uniq)}
        y, classes = np.array([index[s] for s in raw_labels], np.int64), tuple(uniq)
    return Dataset(os.path.basename(path), x, y, classes, tuple(header[j] for j in feats))


def _load_npz(path: str, x_key: str, y_key: str) -> Dataset:
    if not zipfile.is_zipfile(path):  # else numpy would try to read it as a pickle
        raise DataError(f"{path}: not a valid .npz file (not a zip archive)")
    keys = list(npz_headers(path, DataError))  # members, dtypes and sizes checked before decompressing
    missing = [k for k in (x_key, y_key) if k not in keys]
    if missing:
        raise DataError(
            f"{path}: no array named {' or '.join(map(repr, missing))}; the file holds {keys or 'no arrays'}"
            f" (features go in {x_key!r}, labels in {y_key!r})"
        )
    arrays = read_npz(path, DataError, keys=(x_key, y_key))
    x, y = arrays[x_key], arrays[y_key]
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {x_key!r} must be numeric, got dtype {x.dtype}")
    if x.ndim != 2:
        raise DataError(f"{path}: array {x_key!r} must be 2-D (examples x features), got shape {x.shape}")
    if y.ndim == 0:
        raise DataError(f"{path}: {y_key!r} must hold one label per row, got a single number")
    if len(y) != len(x):
        raise DataError(f"{path}: {x_key!r} has {len(x)} rows but {y_key!r} has {len(y)}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        k, j = map(int, np.argwhere(~np.isfinite(x))[0])
        raise DataError(f"{path}: {x_key}[{k}, {j}] is not a finite number")
    name = os.path.basename(path)
    if y.ndim == 1 and y.dtype.kind in "iub":
        uniq = np.unique(y)
        return Dataset(name, x, np.searchsorted(uniq, y).astype(np.int64), tuple(str(int(u)) for u in uniq))
    if y.ndim == 2 and y.dtype.kind in "biuf":
        return Dataset(name, x, y.astype(np.float64), None)
    if y.ndim == 1 and y.dtype.kind == "f":
        return Dataset(name, x, y.astype(np.float64).reshape(-1, 1), None)
    raise DataError(
        f"{path}: array {y_key!r} must hold class indices (n,) or targets (n, k), got shape {y.shape} dtype {y.dtype}"
    )


__all__ = [
    "BUILTIN", "SPLIT_RULE", "DataError", "Dataset", "Standardizer", "load", "one_hot", "prepare", "split_indices", "standardize",
]
