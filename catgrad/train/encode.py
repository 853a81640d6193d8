"""Encoders from real features to bits, fitted on the training rows only.

- ``threshold``: min-max scale each feature with the training rows' minimum and
  maximum, then ``bit = [scaled >= 0.5]`` (one bit per feature);
- ``thermometer:K``: the same scaling, then ``K - 1`` bits per feature,
  ``bit_k = [scaled >= k / K]`` for ``k = 1 .. K-1``: K levels, each level's code
  having the bits below it set (so ``thermometer:2`` is ``threshold``). Nearby values
  share most bits, which is what lets a boolean model generalise across levels.

Test rows are scaled with the training statistics (values outside the training range
just saturate). A feature that is constant on the training rows carries no
information and cannot be scaled: it is an error, as is a non-finite value. Features
that share one scale (the pixels of an image) use ``scale="global"``: one minimum and
maximum over all training values, so a pixel that is always blank is no error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import DataError


@dataclass
class Encoder:
    levels: int  # K; threshold is K = 2
    scale: str = "feature"  # or "global": one range for all features
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    @property
    def name(self) -> str:
        return "threshold" if self.levels == 2 else f"thermometer:{self.levels}"

    def fit(self, x: np.ndarray, what: str = "the training rows") -> "Encoder":
        x = _check(x, what)
        if len(x) == 0:
            raise DataError(f"{what}: no rows to fit the encoder on")
        axis = 0 if self.scale == "feature" else None
        self.lo = np.broadcast_to(x.min(axis=axis), x.shape[1:]).copy()
        self.hi = np.broadcast_to(x.max(axis=axis), x.shape[1:]).copy()
        flat = np.flatnonzero(self.hi == self.lo)
        if flat.size:
            raise DataError(f"feature {int(flat[0])} is constant ({self.lo[flat[0]]:g}) on {what}: "
                            f"it cannot be binarised ({flat.size} constant feature(s))")
        return self

    def width(self, n_features: int) -> int:
        return n_features * (self.levels - 1)

    def __call__(self, x: np.ndarray, what: str = "the data") -> np.ndarray:
        """Bool ``(n, d * (K - 1))``: feature j's bits are columns ``j (K-1) .. (j+1)(K-1) - 1``."""
        x = _check(x, what)
        if self.lo.ndim and x.shape[1] != len(self.lo):
            raise DataError(f"{what}: the encoder was fitted on {len(self.lo)} features, got {x.shape[1]}")
        s = (x - self.lo) / (self.hi - self.lo)
        cuts = np.arange(1, self.levels) / self.levels
        return (s[:, :, None] >= cuts).reshape(len(x), -1)

    def state(self) -> dict:
        return {"encoder": self.name, "scale": self.scale, "lo": self.lo.tolist(), "hi": self.hi.tolist()}

    @classmethod
    def from_state(cls, state, what: str = "the checkpoint") -> "Encoder":
        """The fitted encoder :meth:`state` describes."""
        try:
            enc = parse(state["encoder"], state["scale"])
            enc.lo, enc.hi = (np.asarray(state[k], np.float64) for k in ("lo", "hi"))
        except (KeyError, TypeError, ValueError, DataError) as e:
            raise DataError(f"{what}: damaged encoder description ({e})") from None
        if enc.lo.shape != enc.hi.shape or enc.lo.ndim > 1 or not np.all(enc.hi > enc.lo):
            raise DataError(f"{what}: damaged encoder description (ranges {enc.lo.shape}, {enc.hi.shape})")
        return enc


def _check(x, what) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: features must be numbers to be binarised, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.ndim != 2:
        raise DataError(f"{what}: features must be a matrix, got shape {x.shape}")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        r, c = bad[0]
        raise DataError(f"{what}: row {r}, feature {c} is {x[r, c]}: only finite numbers can be binarised")
    return x


def parse(spec: str, scale: str = "feature") -> Encoder:
    """``"threshold"`` or ``"thermometer:K"`` (K >= 2); ``scale``: ``"feature"`` or ``"global"``."""
    spec = str(spec).strip()
    if scale not in ("feature", "global"):
        raise DataError(f"the encoder's scale is per feature or global, not {scale!r}")
    if spec == "threshold":
        return Encoder(2, scale)
    name, _, k = spec.partition(":")
    if name == "thermometer":
        try:
            levels = int(k)
        except ValueError:
            raise DataError(f"--encode thermometer:K needs an integer K >= 2, got {k!r}") from None
        if levels < 2:
            raise DataError(f"--encode thermometer:K needs K >= 2 levels, got {levels}")
        return Encoder(levels, scale)
    raise DataError(f"unknown encoding {spec!r}: use threshold or thermometer:K")


__all__ = ["Encoder", "parse"]
