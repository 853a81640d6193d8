"""Parameter initialisers: how a parameter wire gets its first value.

Each initialiser is a small frozen dataclass, called as ``init(rng, shape, dtype)``
with a :class:`numpy.random.Generator`, so initialisation is reproducible from a seed.
``glorot`` (Glorot & Bengio, 2010) is uniform on ``[-l, l]`` with
``l = sqrt(6 / (fan_in + fan_out))``; a dense weight ``[in, out]`` has fans ``in`` and
``out``, a convolution weight ``[out, in, *kernel]`` has ``in * prod(kernel)`` and
``out * prod(kernel)`` (as torch counts them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import CatgradError


class Init:
    def __call__(self, rng: np.random.Generator, shape: tuple, dtype: str) -> np.ndarray:
        for d in shape:
            if not isinstance(d, int):
                raise CatgradError(f"cannot initialise a parameter of symbolic shape {shape}")
        return np.asarray(self.sample(rng, tuple(shape)), dtype=dtype)

    def sample(self, rng, shape):  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class zeros(Init):
    def sample(self, rng, shape):
        return np.zeros(shape)


@dataclass(frozen=True)
class ones(Init):
    def sample(self, rng, shape):
        return np.ones(shape)


@dataclass(frozen=True)
class constant(Init):
    value: float = 0.0

    def sample(self, rng, shape):
        return np.full(shape, self.value)


@dataclass(frozen=True)
class normal(Init):
    """N(mean, std^2)."""

    std: float = 1.0
    mean: float = 0.0

    def sample(self, rng, shape):
        return rng.normal(self.mean, self.std, size=shape)


@dataclass(frozen=True)
class uniform(Init):
    """U[low, high)."""

    low: float = -1.0
    high: float = 1.0

    def sample(self, rng, shape):
        return rng.uniform(self.low, self.high, size=shape)


def _fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:  # a dense weight [in, out]
        return shape[0], shape[1]
    # a convolution weight [out, in, *kernel], as torch counts it
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


@dataclass(frozen=True)
class glorot(Init):
    """Glorot/Xavier uniform, scaled by ``gain``."""

    gain: float = 1.0

    def sample(self, rng, shape):
        fan_in, fan_out = _fans(shape)
        limit = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)


@dataclass(frozen=True)
class he(Init):
    """He/Kaiming normal: N(0, 2 / fan_in), for relu layers."""

    def sample(self, rng, shape):
        fan_in, _ = _fans(shape)
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


@dataclass(frozen=True)
class bits(Init):
    """Independent bits, 1 with probability ``p`` (Z2 parameters)."""

    p: float = 0.5

    def sample(self, rng, shape):
        return rng.random(size=shape) < self.p


@dataclass(frozen=True)
class key(Init):
    """A random key (an ``i64`` wire of :mod:`catgrad.ops.random`), drawn from the seed."""

    def sample(self, rng, shape):
        return rng.integers(0, 2**62, size=shape, dtype=np.int64)


INITS = {c.__name__: c for c in (zeros, ones, constant, normal, uniform, glorot, he, bits, key)}
