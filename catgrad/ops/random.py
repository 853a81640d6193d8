"""Random numbers as wires: a key in, numbers out, so every run is reproducible.

A key is an ``i64[]`` wire. ``random_split(key) -> (key, key)`` derives two fresh
keys; ``uniform``, ``normal`` and ``bernoulli`` turn a key into a tensor of the
requested type. The numbers are a pure function of the key and the entry's
position: a counter-based hash (32-bit ``lowbias32`` mixing, computed in int64
lanes so numpy and torch give the same bits), 53 random bits per entry, rounded
down to the output dtype's precision, so uniform numbers lie in ``[0, 1)`` exactly
and numpy and torch produce identical uniform and Bernoulli draws (normal draws
agree to the last bit or two of float64 ``log``/``cos``).

All of them are locally constant in the key: their reverse derivative is zero.
Dropout is a composite: ``x * bernoulli(key, p=1-rate) / (1 - rate)``.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.primitive import Sample
from ..core.types import Ob, TensorType, f32, f64, i64
from ..errors import CatgradTypeError, did_you_mean
from ._base import declare, torch

M32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9


def _mix(x):
    """lowbias32 on int64 values in [0, 2^32); products wrap identically in numpy and torch."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def _seed(key, stream: int):
    lo, hi = key & M32, (key >> 32) & M32
    return _mix(_mix(lo) ^ hi ^ ((stream * GOLDEN) & M32))


def _bits(key, counter, stream: int, mantissa: int):
    """``mantissa`` random bits (<= 53) per counter entry, as int64."""
    s = _seed(key, stream)
    h1, h2 = _mix(_mix((2 * counter) & M32) ^ s), _mix(_mix((2 * counter + 1) & M32) ^ s)
    return ((h1 << 21) | (h2 >> 11)) >> (53 - mantissa)


def _key_rule(name, numbers: tuple):
    """The type rule of a sampler: a key wire in, a wire of ``type`` out; ``numbers`` are the
    optional numeric attributes it takes (any other attribute is refused by name)."""
    def rule(dom, type, **attrs):
        for k in attrs:
            if k not in numbers:
                raise CatgradTypeError(f"{name}: unknown attribute '{k}'{did_you_mean(k, numbers)}; "
                                       f"it takes: {', '.join(('type', *numbers))}")
        if dom[0] != i64[()]:
            raise CatgradTypeError(f"{name}: the key must be an i64[] wire, got {dom[0]}")
        if not isinstance(type, TensorType) or not type.dtype.is_float:
            raise CatgradTypeError(f"{name} needs type=<a float wire type>, got {type!r}")
        for k, v in attrs.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise CatgradTypeError(f"{name}: {k} must be a number, got {v!r}")
        if name == "bernoulli" and not 0.0 <= attrs.get("p", 0.5) <= 1.0:
            raise CatgradTypeError(f"bernoulli: p must lie in [0, 1], got {attrs['p']}")
        return type

    return rule


def _np_mantissa(dtype) -> int:
    return min(53, np.finfo(dtype).nmant + 1)


def _torch_mantissa(dtype) -> int:
    return min(53, round(-math.log2(torch.finfo(dtype).eps)) + 1)


def _np_uniform01(key, shape, dtype, stream=0):
    n = math.prod(shape)
    m = _np_mantissa(dtype)
    counter = np.arange(n, dtype=np.int64).reshape(shape)
    with np.errstate(over="ignore"):  # the products wrap on purpose
        return _bits(np.asarray(key, dtype=np.int64), counter, stream, m).astype(np.float64) * 2.0 ** -m


def _np_split(key):
    key = np.asarray(key, dtype=np.int64)
    with np.errstate(over="ignore"):
        return np.asarray(_derive(key, 11)), np.asarray(_derive(key, 13))


def _torch_uniform01(key, shape, dtype, stream=0):
    n = math.prod(shape)
    m = _torch_mantissa(dtype)
    counter = torch.arange(n, dtype=torch.int64, device=key.device).reshape(shape)
    return _bits(key, counter, stream, m).to(torch.float64) * 2.0 ** -m


def _np_normal01(key, shape, dtype):
    u0, u1 = _np_uniform01(key, shape, np.float64, 1), _np_uniform01(key, shape, np.float64, 2)
    return np.sqrt(-2.0 * np.log1p(-u0)) * np.cos(2.0 * math.pi * u1)


def _torch_normal01(key, shape, dtype):
    u0, u1 = _torch_uniform01(key, shape, torch.float64, 1), _torch_uniform01(key, shape, torch.float64, 2)
    return torch.sqrt(-2.0 * torch.log1p(-u0)) * torch.cos(2.0 * math.pi * u1)


def _samples(**attrs):
    return lambda: [Sample(Ob(i64[()]), {"type": f64[3, 4], **attrs}),
                    Sample(Ob(i64[()]), {"type": f32[5], **attrs})]


uniform = declare(
    "uniform",
    _key_rule("uniform", ("low", "high")),
    numpy=lambda key, type, shape, dtype, low=0.0, high=1.0: (
        low + (high - low) * _np_uniform01(key, shape, dtype)).astype(dtype),
    torch=lambda key, type, shape, dtype, low=0.0, high=1.0: (
        low + (high - low) * _torch_uniform01(key, shape, dtype)).to(dtype),
    needs=("shape", "dtype"), kind="other", samples=_samples(low=-1.0, high=2.0),
    doc="Uniform numbers in [low, high) of the given type, a function of the key. R = 0.",
)

normal = declare(
    "normal",
    _key_rule("normal", ("mean", "std")),
    numpy=lambda key, type, shape, dtype, mean=0.0, std=1.0: (mean + std * _np_normal01(key, shape, dtype)).astype(dtype),
    torch=lambda key, type, shape, dtype, mean=0.0, std=1.0: (
        mean + std * _torch_normal01(key, shape, dtype)).to(dtype),
    needs=("shape", "dtype"), kind="other", samples=_samples(),
    doc="Normal numbers (Box-Muller) of the given type, a function of the key. R = 0.",
)

bernoulli = declare(
    "bernoulli",
    _key_rule("bernoulli", ("p",)),
    numpy=lambda key, type, shape, dtype, p=0.5: (_np_uniform01(key, shape, dtype) < p).astype(dtype),
    torch=lambda key, type, shape, dtype, p=0.5: torch.lt(_torch_uniform01(key, shape, dtype), p).to(dtype),
    needs=("shape", "dtype"), kind="other", samples=_samples(p=0.3),
    doc="1 with probability p, else 0, in the given float type, a function of the key. R = 0.",
)


def _split_rule(dom):
    if dom[0] != i64[()]:
        raise CatgradTypeError(f"random_split: the key must be an i64[] wire, got {dom[0]}")
    return Ob(dom[0], dom[0])


def _derive(key, stream):
    return (_mix(_seed(key, stream) ^ 0x5BD1E995) << 32) | _seed(key, stream + 1)


random_split = declare(
    "random_split",
    _split_rule,
    numpy=_np_split,
    torch=lambda key: (_derive(key, 11), _derive(key, 13)),
    kind="other", samples=lambda: [Sample(Ob(i64[()]), {})],
    doc="Two new keys from one (a hash of it); use each key once. R = 0.",
)
