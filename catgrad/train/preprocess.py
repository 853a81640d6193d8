"""Preprocessing fitted on the training rows, kept with the model so inference sees the same inputs.

A :class:`Preprocessing` is what stands between a table and the model:

* the feature columns, by name, in the order the model reads them;
* the standardisation ``x |-> (x - mean) / scale``, a scikit-learn ``StandardScaler``
  fitted on the training rows only (``scale`` is the population standard deviation, 1 for a
  constant feature), or none;
* the label encoding: class ``k`` is ``classes[k]``, the k-th standard basis vector as a label
  (one-hot), or ``None`` for regression targets.

It travels in the checkpoint: the two vectors as tensors ``preprocess/mean`` and
``preprocess/scale``, the names as JSON metadata (:meth:`to_checkpoint`, :meth:`from_checkpoint`).

>>> import numpy as np
>>> from catgrad.data import Dataset
>>> ds = Dataset("t", np.array([[0.0, 5.0], [2.0, 5.0]]), np.array([0, 1]), ("no", "yes"), ("a", "b"))
>>> pre = Preprocessing.fit(ds)
>>> pre.transform(np.array([[1.0, 5.0], [3.0, 5.0]])).tolist()
[[0.0, 0.0], [2.0, 0.0]]
>>> pre.decode(np.array([1, 0]))
['yes', 'no']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..errors import CatgradError


@dataclass(frozen=True)
class Preprocessing:
    """Feature names, an optional fitted scaler and the label encoding (see the module docstring)."""

    feature_names: tuple = ()
    mean: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    classes: Optional[tuple] = None
    label: Optional[str] = None
    split: Optional[dict] = None  # how the training rows were chosen: data, fingerprint, test_fraction, seed

    @classmethod
    def fit(cls, train, scale: bool = True, label: Optional[str] = None, split: Optional[dict] = None) -> "Preprocessing":
        """Fit on the training rows of a :class:`~catgrad.data.Dataset` (never on test rows)."""
        mean = sd = None
        if len(train) == 0:
            raise CatgradError(f"{train.name}: no training rows are left after the held-out split"
                               " (lower --test-fraction or --val-fraction)")
        if scale:
            from ..data import Standardizer

            s = Standardizer.fit(np.asarray(train.x, np.float64))  # scikit-learn's, safe near the float64 limit
            mean, sd = np.asarray(s.mean, np.float64), np.asarray(s.std, np.float64)
        return cls(tuple(train.feature_names), mean, sd, train.classes, label, split)

    @property
    def n_features(self) -> Optional[int]:
        if self.mean is not None:
            return len(self.mean)
        return len(self.feature_names) or None

    def transform(self, x) -> np.ndarray:
        """The model's input for raw feature rows ``x`` (n x d)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise CatgradError(f"features must be a matrix (examples x features), got shape {x.shape}")
        if self.n_features is not None and x.shape[1] != self.n_features:
            raise CatgradError(f"the model was trained on {self.n_features} features, got {x.shape[1]}")
        if self.mean is None:
            return x
        return (x - self.mean) / self.scale

    def apply(self, ds):
        """A dataset with transformed features (labels untouched)."""
        return replace(ds, x=self.transform(ds.x))

    def decode(self, indices) -> list:
        """Class names for predicted class indices."""
        if self.classes is None:
            raise CatgradError("a regression model has no class names")
        return [self.classes[int(i)] for i in np.asarray(indices)]

    def to_checkpoint(self) -> tuple:
        """``(arrays, meta)``: tensors for the checkpoint and a JSON-able description."""
        arrays = {}
        if self.mean is not None:
            arrays = {"preprocess/mean": self.mean, "preprocess/scale": self.scale}
        meta = {"standardize": self.mean is not None, "feature_names": list(self.feature_names),
                "classes": None if self.classes is None else list(self.classes), "label": self.label,
                "split": self.split}
        return arrays, meta

    @classmethod
    def from_checkpoint(cls, arrays: dict, meta: Optional[dict]) -> "Preprocessing":
        if not meta:
            return cls()
        mean, scale = arrays.get("preprocess/mean"), arrays.get("preprocess/scale")
        if meta.get("standardize") and (mean is None or scale is None):
            raise CatgradError("the checkpoint says the features were standardised but holds no preprocess/mean, scale")
        classes = meta.get("classes")
        return cls(tuple(meta.get("feature_names") or ()), mean, scale,
                   None if classes is None else tuple(classes), meta.get("label"), meta.get("split"))


__all__ = ["Preprocessing"]
