"""Datasets: built-ins, splits, standardisation, one-hot, and the user's CSV / npz files."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catgrad import data
from catgrad.data import DataError, Dataset


@pytest.mark.parametrize("name,n,d,k", [("iris", 150, 4, 3), ("digits", 1797, 64, 10), ("wine", 178, 13, 3),
                                        ("breast_cancer", 569, 30, 2)])
def test_builtin_shapes(name, n, d, k):
    ds = data.load(name)
    assert ds.x.shape == (n, d) and ds.x.dtype == np.float64
    assert ds.y.shape == (n,) and ds.y.dtype == np.int64
    assert ds.n_classes == k and set(np.unique(ds.y)) == set(range(k))


def test_split_is_fixed_stratified_and_a_partition():
    ds = data.load("wine")
    tr, te = ds.split(0.25, seed=3)
    tr2, te2 = ds.split(0.25, seed=3)
    assert np.array_equal(tr.x, tr2.x) and np.array_equal(te.y, te2.y)  # same seed, same split
    # partition: every row exactly once
    rows = np.concatenate([tr.x, te.x])
    assert len(rows) == len(ds) and len(np.unique(rows, axis=0)) == len(np.unique(ds.x, axis=0))
    # stratified: ceil(0.25 n) test rows, each class within one row of its share
    counts = np.bincount(ds.y)
    assert len(te) == int(np.ceil(0.25 * len(ds)))
    assert np.all(np.abs(np.bincount(te.y, minlength=3) - 0.25 * counts) <= 1)
    _, te3 = ds.split(0.25, seed=4)
    assert not np.array_equal(te.x, te3.x)  # another seed, another split


@pytest.mark.parametrize("name,frac,seed", [("iris", 0.2, 7), ("wine", 0.3, 0), ("digits", 0.2, 0)])
def test_split_is_scikit_learns_stratified_split(name, frac, seed):
    from sklearn.model_selection import train_test_split

    ds = data.load(name)
    want_tr, want_te = train_test_split(ds.x, test_size=frac, random_state=seed, stratify=ds.y)
    tr, te = ds.split(frac, seed=seed)
    key = lambda a: sorted(map(tuple, a))  # noqa: E731 -- the same rows, in the original order
    assert key(te.x) == key(want_te) and key(tr.x) == key(want_tr)


def test_split_seed_outside_32_bits_is_a_clear_error():
    with pytest.raises(DataError, match=r"seed must be a whole number in \[0, 2\^32\)"):
        data.load("iris").split(0.2, seed=2**32)


def test_split_unstratified_when_a_class_is_too_small():
    from sklearn.model_selection import train_test_split

    y = np.array([0, 0, 0, 0, 1, 2, 2, 2])  # class 1 has one row: cannot be on both sides
    ds = Dataset("t", np.arange(8, dtype=float).reshape(8, 1), y, ("a", "b", "c"))
    _, te = ds.split(0.25, seed=5)
    assert te.x[:, 0].tolist() == sorted(train_test_split(np.arange(8.0), test_size=0.25, random_state=5)[1])


def test_standardize_uses_train_statistics_only():
    tr, te = data.load("iris").split(0.2, seed=0)
    s_tr, s_te = data.standardize(tr, te)
    assert np.allclose(s_tr.x.mean(0), 0, atol=1e-12) and np.allclose(s_tr.x.std(0), 1)
    mu, sd = tr.x.mean(0), tr.x.std(0)
    assert np.allclose(s_te.x, (te.x - mu) / sd)
    assert not np.allclose(s_te.x.mean(0), 0, atol=1e-3)  # not re-fitted on test


def test_standardize_constant_feature_is_zero_not_nan():
    tr, _ = data.load("digits").split(0.2, seed=0)
    (s,) = data.standardize(tr)
    assert np.all(np.isfinite(s.x))
    const = tr.x.std(0) == 0
    assert const.any() and np.all(s.x[:, const] == 0)


@settings(max_examples=30)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=30))
def test_one_hot_inverse_of_argmax(labels):
    y = np.array(labels)
    oh = data.one_hot(y, 7)
    assert oh.shape == (len(y), 7)
    assert np.array_equal(oh.argmax(1), y) and np.all(oh.sum(1) == 1) and set(np.unique(oh)) <= {0.0, 1.0}


def test_one_hot_rejects_out_of_range():
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        data.one_hot(np.array([0, 3]), 3)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_csv_numeric_labels_last_column(tmp_path):
    p = _write(tmp_path, "d.csv", "a,b,label\n1,2,0\n3,4.5,1\n\n5,6,1\n")
    ds = data.load(p)
    assert ds.x.tolist() == [[1, 2], [3, 4.5], [5, 6]] and ds.y.tolist() == [0, 1, 1]
    assert ds.classes == ("0", "1") and ds.feature_names == ("a", "b")


def test_csv_label_by_name_and_string_classes(tmp_path):
    p = _write(tmp_path, "d.csv", "kind,a,b\ncat,1,2\ndog,3,4\ncat,5,6\n")
    ds = data.load(p, label="kind")
    assert ds.x.tolist() == [[1, 2], [3, 4], [5, 6]] and ds.y.tolist() == [0, 1, 0] and ds.classes == ("cat", "dog")


def test_csv_real_labels_are_regression(tmp_path):
    ds = data.load(_write(tmp_path, "r.csv", "a,t\n1,0.5\n2,1.25\n"))
    assert ds.classes is None and ds.y.shape == (2, 1) and ds.targets().tolist() == [[0.5], [1.25]]


@pytest.mark.parametrize("text,pattern", [
    ("a,b,y\n1,2,0\n3,x,1\n", r"line 3, column 2 \('b'\): 'x' is not a number"),
    ("a,b,y\n1,2,0\n3,,1\n", r"line 3, column 2 \('b'\): an empty cell"),
    ("a,b,y\n1,2,0\n3,4\n", r"line 3 has 2 cells but the header has 3 columns"),
    ("", r"empty"),
    ("a,b,y\n", r"no data rows"),
    ("1,2,3\n4,5,6\n", r"header"),
    ("a,b,y\n1,2,\n", r"line 2, column 3 \('y'\): empty label"),
    ("a,b,y\n1,inf,0\n", r"line 2, column 2 \('b'\): not a finite number"),
])
def test_csv_errors_name_file_and_place(tmp_path, text, pattern):
    p = _write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError, match=pattern) as e:
        data.load(p)
    assert "bad.csv" in str(e.value)


def test_csv_unknown_label_column(tmp_path):
    p = _write(tmp_path, "d.csv", "alpha,beta,gamma\n1,2,0\n")
    with pytest.raises(DataError, match=r"no column named 'gama'.*did you mean 'gamma'"):
        data.load(p, label="gama")


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.load(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="built-in datasets: iris"):
        data.load("irs")
    p = _write(tmp_path, "d.json", "{}")
    with pytest.raises(DataError, match="unknown data format '.json'"):
        data.load(p)


def test_npz_default_and_custom_keys(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(6, 3)), np.array([2, 0, 2, 5, 0, 5])
    np.savez(tmp_path / "a.npz", x=x, y=y)
    ds = data.load(tmp_path / "a.npz")
    assert np.array_equal(ds.x, x) and ds.y.tolist() == [1, 0, 1, 2, 0, 2] and ds.classes == ("0", "2", "5")
    np.savez(tmp_path / "b.npz", features=x, targets=x[:, :2])
    ds = data.load(tmp_path / "b.npz", x_key="features", y_key="targets")
    assert ds.classes is None and np.array_equal(ds.y, x[:, :2])


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "k.npz", X=np.zeros((2, 2)), labels=np.zeros(2, int))
    with pytest.raises(DataError, match=r"k.npz: no array named 'x' or 'y'; the file holds \['X', 'labels'\]"):
        data.load(tmp_path / "k.npz")
    np.savez(tmp_path / "o.npz", x=np.array([[1, "a"]], dtype=object), y=np.zeros(1, int))
    with pytest.raises(DataError, match="o.npz: refusing to load .* cannot be read without unpickling"):
        data.load(tmp_path / "o.npz")
    np.savez(tmp_path / "n.npz", x=np.zeros((3, 2)), y=np.zeros(2, int))
    with pytest.raises(DataError, match="'x' has 3 rows but 'y' has 2"):
        data.load(tmp_path / "n.npz")
    (tmp_path / "z.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="z.npz: not a valid .npz"):
        data.load(tmp_path / "z.npz")


def test_fingerprint_tracks_content():
    ds = data.load("iris")
    a = ds.fingerprint()
    assert a == data.load("iris").fingerprint()
    assert ds.subset(np.arange(149)).fingerprint() != a
