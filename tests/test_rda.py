"""Reverse Derivative Ascent (docs/mathematics.md section 5) with the compiled Z2 step.

The step's parameter trajectory is compared with a numpy transcription of the update
using formal derivatives worked out by hand, on random bit data (hypothesis), and the
two-class Iris protocol must meet the published 98 % test accuracy.
"""

import importlib.util
import itertools
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import catgrad as cg

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_spec = importlib.util.spec_from_file_location("rda_iris", EXAMPLES / "rda_iris.py")
rda_iris = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rda_iris)
MODULE = cg.load(EXAMPLES / "rda_iris.cat")
MONOMIALS = [S for r in range(5) for S in itertools.combinations(range(4), r)]  # the .cat file's order


def or_neuron_numpy(w, x, y):
    """One RDA step of f(w, x) = OR_i (w_i x_i): d f / d w_i = x_i prod_{j != i} (1 + w_j x_j)."""
    t = w & x
    dy = y ^ t.any()
    grad = np.array([x[i] & ~np.delete(t, i).any() for i in range(4)])
    return w ^ (grad & dy)


def polynomial_numpy(c, x, y):
    """One RDA step of f(c, x) = sum_S c_S prod_{i in S} x_i: d f / d c_S = prod_{i in S} x_i."""
    mono = np.array([all(x[i] for i in S) for S in MONOMIALS])
    dy = y ^ np.logical_xor.reduce(c & mono)
    return c ^ (mono & dy)


def trajectory(name, x, y, epochs):
    step = cg.compile(MODULE[name], loss="xor", optimizer="gradient_update()")
    state, out = step.init(), []
    for _ in range(epochs):
        for xi, yi in zip(x, y):
            state, _ = step(state, xi, np.bool_(yi))
            out.append(np.concatenate([np.ravel(v) for v in state.params.values()]))
    return out


bit_data = st.integers(1, 12).flatmap(
    lambda n: st.tuples(arrays(np.bool_, (n, 4)), arrays(np.bool_, (n,)))
)


@settings(max_examples=25)
@given(bit_data)
def test_compiled_rda_matches_the_hand_derived_update(data):
    x, y = data
    for name, ref, size in (("or_neuron", or_neuron_numpy, 4), ("polynomial", polynomial_numpy, 16)):
        theta = np.zeros(size, dtype=bool)
        expected = []
        for _ in range(2):
            for xi, yi in zip(x, y):
                theta = ref(theta, xi, yi)
                expected.append(theta.copy())
        got = trajectory(name, x, y, 2)
        assert all(np.array_equal(g, e) for g, e in zip(got, expected)), name


def test_iris_meets_the_published_accuracy():
    xtr, ytr, xte, yte = rda_iris.iris_bits()
    assert xtr.shape == (50, 4) and xte.shape == (50, 4) and ytr.sum() == yte.sum() == 25
    for name in ("or_neuron", "polynomial"):
        step, state, mistakes = rda_iris.train_rda(MODULE[name], xtr, ytr, epochs=5)
        assert mistakes[-1] == 0, (name, mistakes)  # converged: a whole epoch without an update
        assert rda_iris.accuracy(step, state, xte, yte) >= 0.98, name
