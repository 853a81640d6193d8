"""``prepare`` (load, split, standardise) passes its options through, and a dataset's repr says
what it holds."""

import numpy as np

from catgrad import data
from catgrad.data import Dataset, Standardizer


def test_repr_names_examples_features_and_the_kind_of_target():
    assert repr(data.load("iris")) == "Dataset('iris': 150 examples, 4 features, 3 classes)"
    reg = Dataset("r", np.zeros((3, 2)), np.zeros((3, 5)))
    assert repr(reg) == "Dataset('r': 3 examples, 2 features, targets of width 5)"


def test_prepare_passes_the_label_column_and_defaults_to_a_fifth_and_seed_zero(tmp_path):
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=(20, 3)), 3)
    kind = np.arange(20) % 2
    p = tmp_path / "t.csv"
    p.write_text("kind,a,b,c\n" + "".join(f"{k},{r[0]},{r[1]},{r[2]}\n" for k, r in zip(kind, x)))
    train, test = data.prepare(p, label="kind", scale=False)
    ref_train, ref_test = data.load(p, label="kind").split(0.2, 0)
    for got, ref in ((train, ref_train), (test, ref_test)):
        assert np.array_equal(got.x, ref.x) and np.array_equal(got.y, ref.y) and got.feature_names == ("a", "b", "c")
    assert len(test) == 4
    scaled, scaled_test = data.prepare(p, label="kind", test_fraction=0.25, seed=3)
    raw, raw_test = data.load(p, label="kind").split(0.25, 3)
    mu, sd = raw.x.mean(axis=0), raw.x.std(axis=0)
    np.testing.assert_allclose(scaled.x, (raw.x - mu) / sd, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(scaled_test.x, (raw_test.x - mu) / sd, rtol=1e-13, atol=1e-15)


def test_standardising_columns_near_the_float64_limit_stays_finite():
    # a column of +-1e308: its plain sum overflows; the statistics are those of x / 1e308, times 1e308
    x = np.array([[1e308, 1.0], [-1e308, 2.0], [5e307, 4.0]])
    s = Standardizer.fit(x)
    u = x[:, 0] / 1e308
    np.testing.assert_allclose(s.mean, [u.mean() * 1e308, 7 / 3], rtol=1e-15)
    np.testing.assert_allclose(s.std, [u.std() * 1e308, np.std([1.0, 2.0, 4.0])], rtol=1e-15)
    assert np.all(np.isfinite(s(Dataset("big", x, np.zeros(3))).x))
