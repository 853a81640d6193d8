"""Op attributes that depend on dimensions: ``slice(x, start=i, stop=i + 1)`` in a
generic definition is elaborated per use, with the sizes known there."""

import itertools

import numpy as np
import pytest

import catgrad as cg

AT = """
## bit i of an n-bit word
def at[n, i](x : bit[n]) -> bit[] = sum(slice(x, axis=0, start=i, stop=i + 1))

def second(x : bit[4]) -> bit[] = at[4, 1](x)

## an OR of learned AND gates
def or_neuron(x : bit[4]) -> bit[] {
  param w : bit[4] ~ zeros
  let t = w & x
  at[4, 0](t) | at[4, 1](t) | at[4, 2](t) | at[4, 3](t)
}

def window[n, k](x : f64[B, n]) -> f64[B, k] = slice(x, axis=1, start=n - k, stop=n)
def tail3(x : f64[B, 5]) -> f64[B, 3] = window[5, 3](x)
"""


def test_dimension_arithmetic_in_attributes_elaborates_per_use():
    mod = cg.loads(AT)
    for bits in itertools.product([False, True], repeat=4):
        (out,) = cg.evaluate(mod["second"], np.array(bits))
        assert bool(out) == bits[1]
        for w in itertools.product([False, True], repeat=4):
            (y,) = cg.evaluate(mod["or_neuron"], np.array(w), np.array(bits))
            assert bool(y) == any(a and b for a, b in zip(w, bits))
    x = np.arange(10.0).reshape(2, 5)
    np.testing.assert_array_equal(cg.evaluate(mod["tail3"], x)[0], x[:, 2:])
    # R of the slice is a pad: the cotangent lands on the last three columns only
    (dx,) = cg.evaluate(cg.R(mod["tail3"]), x, np.ones((2, 3)))
    np.testing.assert_array_equal(dx, np.c_[np.zeros((2, 2)), np.ones((2, 3))])


def test_generic_definition_is_listed_as_checked_where_used():
    mod = cg.loads(AT)
    assert "generic: checked where used" in mod.signature("at")
    assert mod.signature("second") == "bit[4] -> bit[]"


def test_a_bad_instance_is_reported_with_the_sizes():
    src = AT + "\ndef bad(x : bit[4]) -> bit[] = at[4, 7](x)\n"
    with pytest.raises(cg.CatgradError, match=r"slice: need 0 <= start <= stop <= 4 .* got 7:8"):
        cg.loads(src)


def test_arithmetic_needs_whole_numbers():
    src = "def f(x : f64[B, 4]) -> f64[B, 4] = slice(x, axis=1, start=0, stop=B * 1)\n"
    with pytest.raises(cg.CatgradError, match="arithmetic in an op attribute needs whole numbers"):
        cg.loads(src)
