"""The edges of catgrad.data that mutation testing found unchecked: the split's boundaries
and defaults (against scikit-learn itself), names of the parts, fingerprints, the empty
standardiser, targets' dtype and the messages of malformed datasets."""

import math

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from catgrad import data
from catgrad.data import DataError, Dataset, Standardizer, one_hot, split_indices


def _ds(n=20, classes=2, name="toy"):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    return Dataset(name, rng.normal(size=(n, 3)), y, classes=tuple(range(classes)))


def _sk(n, fraction, seed, labels=None):
    return np.sort(train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=labels)[1])


def test_malformed_datasets_name_what_is_wrong():
    with pytest.raises(DataError, match=r"^toy: features must be a matrix \(examples x features\), got shape \(4,\)"):
        Dataset("toy", np.zeros(4), np.zeros(4))
    with pytest.raises(DataError, match=r"^toy: 4 feature rows but 3 labels$"):
        Dataset("toy", np.zeros((4, 2)), np.zeros(3))


def test_targets_take_the_asked_dtype():
    reg = Dataset("r", np.zeros((3, 2)), np.arange(6, dtype=np.float64).reshape(3, 2))
    assert reg.targets("float32").dtype == np.float32 and reg.targets().dtype == np.float64
    assert _ds().targets("float32").dtype == np.float32


def test_parts_are_named_after_the_dataset():
    ds = _ds()
    train, test = ds.split()
    assert (train.name, test.name) == ("toy[train]", "toy[test]")
    assert ds.subset([0, 1]).name == "toy" and ds.subset([0, 1], "two").name == "two"


def test_split_defaults_are_a_fifth_and_seed_zero_stratified():
    ds = _ds(n=40, classes=4)
    train, test = ds.split()
    expect = _sk(40, 0.2, 0, ds.y)
    assert len(test) == 8 and np.array_equal(np.sort(test.x[:, 0]), np.sort(ds.x[expect, 0]))
    assert len(train) + len(test) == 40


def test_unstratified_split_ignores_the_labels():
    ds = _ds(n=40, classes=4)
    _, test = ds.split(0.25, seed=3, stratify=False)
    plain, strat = _sk(40, 0.25, 3), _sk(40, 0.25, 3, ds.y)
    assert not np.array_equal(plain, strat)  # the two rules differ here, so the test can tell
    assert np.array_equal(np.sort(test.x[:, 0]), np.sort(ds.x[plain, 0]))


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1])
def test_test_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(DataError, match=r"^test_fraction must be in \[0, 1\), got"):
        split_indices(None, 10, fraction, 0)


def test_split_ends():
    empty = split_indices(None, 10, 0.0, 0)
    assert empty.dtype == np.int64 and empty.shape == (0,)
    assert np.array_equal(split_indices(None, 2, 0.99, 0), [0, 1])  # every row a test row
    for n, f in [(10, 0.2), (7, 0.3), (3, 0.5)]:  # scikit-learn's count and rows, fraction passed through
        got = split_indices(None, n, f, 5)
        assert len(got) == math.ceil(f * n) and np.array_equal(got, _sk(n, f, 5))


def test_large_seeds_within_32_bits_are_accepted():
    for seed in (64, 100, 2**32 - 1):
        assert np.array_equal(split_indices(None, 10, 0.3, seed), _sk(10, 0.3, seed))


def test_stratification_at_its_boundaries():
    # every class has exactly two rows, and the test part has exactly one row per class
    labels = np.repeat(np.arange(3), 2)
    assert np.array_equal(split_indices(labels, 6, 0.5, 1), _sk(6, 0.5, 1, labels))
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    assert np.array_equal(split_indices(labels, 10, 0.3, 2), _sk(10, 0.3, 2, labels))
    # a class of one row: not stratified (scikit-learn would refuse), the plain split instead
    single = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
    assert np.array_equal(split_indices(single, 10, 0.3, 2), _sk(10, 0.3, 2))
    # fewer training rows than classes (test fraction above one half): the plain split too
    pairs = np.repeat(np.arange(3), 2)
    assert np.array_equal(split_indices(pairs, 6, 0.75, 1), _sk(6, 0.75, 1))


def test_fingerprint_sees_dtype_and_shape():
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    a = Dataset("a", x, np.zeros(6))
    assert len(a.fingerprint()) == 16
    assert a.fingerprint() != Dataset("a", x.astype(np.float32), np.zeros(6)).fingerprint()
    same_bytes = Dataset("a", x, np.zeros(6, dtype=np.int64).view(np.float64))
    assert a.fingerprint() == same_bytes.fingerprint()  # the same bytes, dtype and shape
    assert a.fingerprint() != Dataset("a", x, np.zeros((6, 1))).fingerprint()  # y reshaped


def test_one_hot_refuses_float_and_matrix_labels():
    with pytest.raises(DataError, match="one_hot needs a vector of class indices"):
        one_hot(np.array([0.0, 1.0]), 2)
    with pytest.raises(DataError, match="one_hot needs a vector of class indices"):
        one_hot(np.array([[0, 1]]), 2)


def test_standardizer_of_no_rows_is_the_identity_and_of_one_row_centres_it():
    s = Standardizer.fit(np.zeros((0, 3)))
    assert np.array_equal(s.mean, np.zeros(3)) and np.array_equal(s.std, np.ones(3))
    one = Standardizer.fit(np.array([[2.0, -4.0, 0.0]]))
    assert np.array_equal(one.mean, [2.0, -4.0, 0.0]) and np.array_equal(one.std, np.ones(3))
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    fitted = Standardizer.fit(x)
    assert np.allclose(fitted.mean, x.mean(axis=0), rtol=1e-15) and np.allclose(fitted.std, x.std(axis=0), rtol=1e-14)


def test_prepare_scales_with_training_rows_only():
    train, test = data.prepare("iris", seed=0)
    raw_train, _ = data.prepare("iris", seed=0, scale=False)
    assert np.allclose(train.x.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(train.x * raw_train.x.std(axis=0) + raw_train.x.mean(axis=0), raw_train.x, rtol=1e-12)
