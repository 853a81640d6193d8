"""Printed hyperparameters are exact: ``parse(repr(opt))`` builds the optimizer with the very
same floats, for any finite value the parser accepts -- not the value rounded to 6 digits.
(The checkpoint signature is the repr, so a rounded spelling would also let two different
optimizers share one signature.)"""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.core.types import number_source

O = cg.optim
F32_MAX = 3.4028234663852886e38
PARAMS = [("W", cg.f64[3, 2]), ("b", cg.f64[2])]

finite = st.floats(allow_nan=False, allow_infinity=False)
nonneg = st.floats(min_value=0.0, max_value=F32_MAX)
unit = st.floats(min_value=0.0, max_value=1.0)


@given(finite)
def test_number_source_reads_back_as_the_same_float(x):
    s = number_source(x)
    assert float(s) == x and math.copysign(1.0, float(s)) == math.copysign(1.0, x)
    assert not s.endswith(".0")


@pytest.mark.parametrize("x,spelling", [
    (1.23456789e-3, "0.00123456789"), (1e-8, "1e-08"), (3.0, "3"), (0.1, "0.1"), (-2.5, "-2.5"),
    (1234567.0, "1234567"), (1e16, "1e+16"), (0.30000000000000004, "0.30000000000000004"),
    (np.float64(0.7), "0.7"), (np.float32(0.5), "0.5"), (7, "7"),
])
def test_number_source_spellings(x, spelling):
    assert number_source(x) == spelling


def stages(opt):
    """The hyperparameter dicts of every stage ``opt`` resolves to, on PARAMS' names."""
    out = []
    for lst in opt.resolve(list(enumerate(name for name, _ in PARAMS))):
        for st_ in lst:
            out.append((type(st_).__name__, dict(getattr(st_, "hypers", {})),
                        getattr(st_, "initial", None)))
    return out


def same(a, b):
    la, lb = a.lens(PARAMS), b.lens(PARAMS)
    assert la.keys == lb.keys
    assert la.lens.get == lb.lens.get and la.lens.put == lb.lens.put


MAKERS = {
    "sgd": lambda x, u: O.sgd(x),
    "momentum": lambda x, u: O.momentum(x, u),
    "adam": lambda x, u: O.adam(x, b1=u, b2=u),
    "rmsprop": lambda x, u: O.rmsprop(x, alpha=u, eps=x),
    "lion": lambda x, u: O.lion(x, b1=u, weight_decay=x),
    "adagrad": lambda x, u: O.adagrad(0.1, initial_accumulator_value=x),
    "sam": lambda x, u: O.sam(O.sgd(0.1), rho=x),
    "hypergradient": lambda x, u: O.hypergradient(O.sgd(0.1), beta=x),
    "schedule": lambda x, u: O.adam(lr=cg.schedule.cosine(x, 10, final=x * u)),
    "chain": lambda x, u: O.weight_decay(x) >> O.scale(u) >> O.sgd(x),
}


@pytest.mark.parametrize("name", list(MAKERS))
@settings(max_examples=25, deadline=None)
@given(x=nonneg, u=unit)
def test_repr_parses_back_to_the_same_floats(name, x, u):
    opt = MAKERS[name](x, u)
    text = repr(opt)
    back = O.parse(text)
    assert repr(back) == text
    assert stages(back) == stages(opt)  # the numbers themselves, compared exactly
    if name in ("sam", "hypergradient", "schedule"):  # their numbers are not stage hypers
        assert text.count(number_source(x)) >= 1
    same(back, opt)


def test_a_value_with_more_than_six_digits_is_printed_in_full():
    assert repr(O.adam(1.23456789e-3)) == "adam(lr=0.00123456789, b1=0.9, b2=0.999, eps=1e-08)"
    assert repr(O.sam(O.sgd(0.1), rho=0.0512345678)) == "sam(sgd(lr=0.1), rho=0.0512345678)"
    assert repr(O.hypergradient(O.sgd(0.1), beta=1.0000001e-4)) == "hypergradient(sgd(lr=0.1), beta=0.00010000001)"
    assert repr(O.adagrad(0.1, initial_accumulator_value=0.123456789)) == \
        "adagrad(lr=0.1, eps=1e-10, initial_accumulator_value=0.123456789)"
    assert repr(cg.schedule.cosine(0.1234567891, 10)) == \
        "cosine(peak=0.1234567891, decay_steps=10, final=0, warmup_steps=0)"
    # two optimizers that differ in the 7th digit print differently
    assert repr(O.sgd(0.1234567)) != repr(O.sgd(0.1234568))


def test_the_bit_sgd_message_shows_the_exact_rate():
    lens_params = [("w", cg.bit[3])]
    with pytest.raises(cg.errors.CatgradTypeError, match=r"^sgd on bit parameters needs lr 0 or 1 \(a bit\), got 0\.50000001$"):
        O.sgd(0.50000001).lens(lens_params)
