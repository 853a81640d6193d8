"""What the CSV and ``.npz`` readers and the built-in datasets produce from good input:
features and targets against independent readings (numpy's ``loadtxt``, the arrays saved,
scikit-learn's own loaders), the label column and its kind, names, dtypes and shapes."""

import csv
import io
import zipfile

import numpy as np
import pytest
from sklearn import datasets as skd

from catgrad import data

BLOCK = data._CSV_BLOCK


def _table(n, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(size=(n, d)) * 100, 3), rng.integers(0, 4, size=n)


def _write_csv(path, x, y, label_at=None, names=None):
    d = x.shape[1]
    names = names or [f"f{j}" for j in range(d)]
    label_at = d if label_at is None else label_at
    header = names[:label_at] + ["label"] + names[label_at:]
    rows = [[repr(float(v)) for v in r[:label_at]] + [str(lab)] + [repr(float(v)) for v in r[label_at:]]
            for r, lab in zip(x, y)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header] + rows)
    path.write_text(buf.getvalue())


@pytest.mark.parametrize("n", [1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 2 * BLOCK + 3])
def test_rows_across_block_boundaries_are_read_in_order(n, tmp_path):
    x, y = _table(n)
    p = tmp_path / "t.csv"
    _write_csv(p, x, y, label_at=1)  # the label between two features
    ds = data.load(p, label="label")
    ref = np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2)
    assert ds.x.dtype == np.float64 and ds.x.shape == (n, 3)
    assert np.array_equal(ds.x, ref[:, [0, 2, 3]]) and np.array_equal(ds.x, x)
    uniq = np.unique(y)
    assert np.array_equal(ds.y, np.searchsorted(uniq, y)) and ds.classes == tuple(str(u) for u in uniq)
    assert ds.feature_names == ("f0", "f1", "f2") and ds.name == "t.csv"


@pytest.mark.parametrize("label,column", [(None, 3), (0, 0), (-1, 3), (-4, 0), (3, 3), ("1", 1), (" -3 ", 1),
                                          ("c", 2), ("2", 2)])
def test_the_label_column_by_name_index_or_index_from_the_end(label, column, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n5,0,3,4\n")
    table = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [5, 0, 3, 4]], float)
    ds = data.load(p, label=label)
    rest = [j for j in range(4) if j != column]
    assert np.array_equal(ds.x, table[:, rest]) and ds.feature_names == tuple("abcd"[j] for j in rest)
    uniq = np.unique(table[:, column])
    assert ds.classes == tuple(str(int(u)) for u in uniq)
    assert np.array_equal(ds.y, np.searchsorted(uniq, table[:, column])) and ds.y.dtype == np.int64


def test_a_column_named_like_a_number_is_taken_by_name_first(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("x, b ,y\n1,2,0\n3,4,1\n")  # names are stripped
    assert data.load(p, label="b").feature_names == ("x", "y")


def test_whole_number_labels_are_classes_in_numeric_order(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,y\n1,10\n2,2\n3,-1\n4,2.0\n5,1e1\n")
    ds = data.load(p)
    assert ds.classes == ("-1", "2", "10") and ds.y.tolist() == [2, 1, 0, 1, 2] and ds.y.dtype == np.int64


def test_real_labels_are_a_regression_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,y\n1,0.5\n2,-3\n3,1e-3\n")
    ds = data.load(p)
    assert ds.classes is None and ds.y.dtype == np.float64 and np.array_equal(ds.y, [[0.5], [-3.0], [1e-3]])


def test_text_labels_are_sorted_class_names_and_mixed_labels_are_text(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,y\n1,b\n2,10\n3,a\n4,b\n")
    ds = data.load(p)
    assert ds.classes == ("10", "a", "b") and ds.y.tolist() == [2, 0, 1, 2] and ds.y.dtype == np.int64


def test_quoted_cells_keep_their_line_breaks_exactly(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b'a,y\r\n1,"p\r\nq"\r\n2,r\r\n3,"p\r\nq"\r\n')
    ds = data.load(p)
    assert ds.classes == ("p\r\nq", "r") and ds.y.tolist() == [0, 1, 0]


@pytest.mark.parametrize("name", ["t.txt", "T.CSV", "t.Csv"])
def test_txt_and_any_case_of_csv_are_read_as_csv(name, tmp_path):
    p = tmp_path / name
    p.write_text("a,y\n1,0\n2,1\n")
    ds = data.load(p)
    assert ds.x.tolist() == [[1.0], [2.0]] and ds.classes == ("0", "1") and ds.name == name


def _npz(tmp_path, name="a.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, bool])
def test_npz_features_of_any_real_dtype_become_float64(dtype, tmp_path):
    x = (np.arange(12).reshape(4, 3) % 3).astype(dtype)
    ds = data.load(_npz(tmp_path, x=x, y=np.array([0, 1, 0, 1])))
    assert ds.x.dtype == np.float64 and np.array_equal(ds.x, x.astype(np.float64))


@pytest.mark.parametrize("y,classes,index", [
    (np.array([7, 3, 7, 9], np.int32), ("3", "7", "9"), [1, 0, 1, 2]),
    (np.array([200, 3, 3, 200], np.uint8), ("3", "200"), [1, 0, 0, 1]),
    (np.array([True, False, True, True]), ("0", "1"), [1, 0, 1, 1]),
])
def test_npz_integer_and_boolean_labels_are_classes(y, classes, index, tmp_path):
    ds = data.load(_npz(tmp_path, "c.npz", x=np.zeros((4, 2)), y=y))
    assert ds.classes == classes and ds.y.tolist() == index and ds.y.dtype == np.int64 and ds.name == "c.npz"


@pytest.mark.parametrize("y", [np.array([0.5, 1.0, -2.0, 3.0]), np.array([1, 2, 3, 4], np.float32)])
def test_npz_float_labels_are_one_regression_column(y, tmp_path):
    ds = data.load(_npz(tmp_path, "r.npz", x=np.zeros((4, 2)), y=y))
    assert ds.classes is None and ds.y.shape == (4, 1) and ds.y.dtype == np.float64
    assert np.array_equal(ds.y[:, 0], y.astype(np.float64)) and ds.name == "r.npz"


@pytest.mark.parametrize("y", [np.arange(8).reshape(4, 2), np.arange(8, dtype=np.float32).reshape(4, 2),
                               np.ones((4, 1), bool)])
def test_npz_label_matrices_are_float64_targets(y, tmp_path):
    ds = data.load(_npz(tmp_path, "m.npz", x=np.zeros((4, 2)), y=y))
    assert ds.classes is None and ds.y.dtype == np.float64 and np.array_equal(ds.y, y.astype(np.float64))
    assert ds.name == "m.npz" and ds.target_width == y.shape[1]


def test_npz_reads_only_the_two_arrays_it_needs(tmp_path):
    # a third array whose contents are damaged far from its header: never read
    x, y = np.arange(6.0).reshape(3, 2), np.array([0, 1, 1])
    p = _npz(tmp_path, "extra.npz", x=x, y=y, notes=np.arange(100_000.0))
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("notes.npy")
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 400_000] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile):  # the damage is real
        np.load(p)["notes"]
    ds = data.load(p)
    assert np.array_equal(ds.x, x) and ds.y.tolist() == [0, 1, 1]


@pytest.mark.parametrize("name,loader,shape", [
    ("iris", skd.load_iris, ()),
    ("wine", skd.load_wine, ()),
    ("breast_cancer", skd.load_breast_cancer, ()),
    ("digits", skd.load_digits, (1, 8, 8)),
])
def test_builtins_are_scikit_learns_tables(name, loader, shape):
    ds, ref = data.load(name), loader()
    assert ds.name == name and ds.example_shape == shape
    assert ds.x.dtype == np.float64 and np.array_equal(ds.x, ref.data)
    assert ds.y.dtype == np.int64 and np.array_equal(ds.y, ref.target)
    assert ds.classes == tuple(str(t) for t in ref.target_names)
    assert ds.feature_names == tuple(str(f) for f in ref.feature_names) and len(ds.feature_names) == ds.n_features
