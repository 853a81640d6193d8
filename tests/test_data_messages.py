"""What a user is told about each bad data file: the whole message, naming the file, what is
wrong and where (line and column of a CSV, the array of an ``.npz``), from the API
(``catgrad.data.load`` raises it) and from the command line (``catgrad train --data``
prints it after ``catgrad: error:`` and exits 1)."""

import os
import zipfile

import numpy as np
import pytest

from catgrad import data
from catgrad.cli import main
from catgrad.data import DataError

IRIS_CAT = os.path.join(os.path.dirname(__file__), "..", "examples", "iris.cat")
BUILTINS = "iris, digits, wine, breast_cancer"
SIZE_NOTE = ("(a quarter of the memory limit, which is half the physical memory or CATGRAD_MAX_BYTES; "
             "raise it, or convert the data to .npz)")


def _text(text):
    return lambda p: p.write_bytes(text.encode() if isinstance(text, str) else text)


def _npz(**arrays):
    return lambda p: np.savez(p, **arrays)


def _corrupt(member, **arrays):
    """An .npz whose ``member`` has a valid .npy header but a damaged payload (bad CRC), far
    enough from the header that checking the headers does not read it."""

    def make(p):
        np.savez(p, **arrays)
        raw = bytearray(p.read_bytes())
        with zipfile.ZipFile(p) as z:
            info = z.getinfo(member + ".npy")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 400_000
        raw[start] ^= 0xFF
        p.write_bytes(bytes(raw))

    return make


def _dir(p):
    p.mkdir()


def _dangling(p):
    os.symlink(str(p) + ".gone", p)


X3 = np.arange(6.0).reshape(3, 2)
Y3 = np.array([0, 1, 0])

# (file name, how to make it, load keyword arguments, the message after "PATH: ")
CASES = [
    ("e.csv", _text(""), {}, "the file is empty (expected a header row, then data rows)"),
    ("blank.csv", _text("\n  \n , \n"), {}, "the file is empty (expected a header row, then data rows)"),
    ("headerless.csv", _text("\n\n1,2,3\n4,5,6\n"), {},
     "line 3 looks like data ('1' is a number), but the first row must be a header of column names; add a header line"),
    ("halfheader.csv", _text("name, 1e3 ,7\n1,2,3\n"), {},
     "line 1 looks like data ('1e3' is a number), but the first row must be a header of column names; add a header line"),
    ("one.csv", _text("only\n1\n"), {}, "need at least one feature column and a label column, got ['only']"),
    ("ragged.csv", _text("a,b,y\n1,2,0\n\n3,4\n"), {}, "line 4 has 2 cells but the header has 3 columns (ragged row)"),
    ("wide.csv", _text("a,b,y\n1,2,0,9\n"), {}, "line 2 has 4 cells but the header has 3 columns (ragged row)"),
    ("hole.csv", _text("a,b,y\n1,2,0\n4, ,1\n"), {}, "line 3, column 2 ('b'): an empty cell"),
    ("word.csv", _text("a,b,y\n1,2,0\n3, x1 ,1\n"), {}, "line 3, column 2 ('b'): 'x1' is not a number"),
    ("nan.csv", _text("a,b,y\n1,nan,0\n"), {}, "line 2, column 2 ('b'): not a finite number"),
    ("inf.csv", _text("a,b,y\n1,2,0\n-inf,2,0\n"), {}, "line 3, column 1 ('a'): not a finite number"),
    ("nolabel.csv", _text("y,a,b\n0,1,2\n ,1,2\n"), {"label": 0}, "line 3, column 1 ('y'): empty label"),
    ("rowless.csv", _text("a,b,y\n\n\n"), {}, "a header row but no data rows"),
    ("nanlabel.csv", _text("a,y,b\n1,0,1\n\n2,nan,2\n3,inf,3\n"), {"label": "y"},
     "data row 2, column 2 ('y'): label is not a finite number"),
    ("big_label.csv", _text("a,b,y\n1,2,0\n"), {"label": 3},
     "label column 3 is out of range: the file has 3 columns (0..2, or -3..-1 from the end)"),
    ("neg_label.csv", _text("a,b,y\n1,2,0\n"), {"label": -4},
     "label column -4 is out of range: the file has 3 columns (0..2, or -3..-1 from the end)"),
    ("str_label.csv", _text("a,b,c,d,y\n1,2,3,4,0\n"), {"label": "9"},
     "label column 9 is out of range: the file has 5 columns (0..4, or -5..-1 from the end)"),
    ("typo.csv", _text("alpha,beta,gamma\n1,2,0\n"), {"label": "gama"},
     "no column named 'gama' (did you mean 'gamma'?); columns: alpha, beta, gamma"),
    ("xlabel.csv", _text("a,b,y\n1,2,0\n"), {"label": "X1"}, "no column named 'X1'; columns: a, b, y"),
    ("far.csv", _text("a,b,y\n1,2,0\n"), {"label": "zzz"}, "no column named 'zzz'; columns: a, b, y"),
    ("latin1.csv", _text(b"a,b,y\n1,2,\xe9t\xe9\n"), {}, "not a UTF-8 text file (invalid continuation byte at byte 10, line 2)"),
    ("huge_cell.csv", _text("a,b,y\n1,2,0\n\n" + "1" * 140000 + ",2,0\n"), {},
     "line 4: malformed CSV: field larger than field limit (131072)"),
    ("data.json", _text("{}"), {}, "unknown data format '.json'; use .csv or .npz"),
    ("data", _text("a,y\n1,0\n"), {}, "unknown data format '(no extension)'; use .csv or .npz"),
    ("folder.csv", _dir, {}, "is a directory, not a regular data file (.csv or .npz)"),
    ("dangling.csv", _dangling, {}, "no such data file (.csv or .npz)"),
    ("zip.npz", _text("x,y\n"), {}, "not a valid .npz file (not a zip archive)"),
    ("empty.npz", _npz(), {}, "no array named 'x' or 'y'; the file holds no arrays (features go in 'x', labels in 'y')"),
    ("noy.npz", _npz(x=X3), {}, "no array named 'y'; the file holds ['x'] (features go in 'x', labels in 'y')"),
    ("keys.npz", _npz(x=X3, y=Y3), {"x_key": "feats"},
     "no array named 'feats'; the file holds ['x', 'y'] (features go in 'feats', labels in 'y')"),
    ("text.npz", _npz(x=np.array([["a", "b"]]), y=np.zeros(1, int)), {}, "array 'x' must be numeric, got dtype <U1"),
    ("complex.npz", _npz(x=np.ones((1, 2), complex), y=np.zeros(1, int)), {},
     "array 'x' must be numeric, got dtype complex128"),
    ("flat.npz", _npz(x=np.arange(3.0), y=Y3), {}, "array 'x' must be 2-D (examples x features), got shape (3,)"),
    ("cube.npz", _npz(x=np.zeros((3, 1, 1)), y=Y3), {}, "array 'x' must be 2-D (examples x features), got shape (3, 1, 1)"),
    ("scalar.npz", _npz(x=X3, y=np.int64(1)), {}, "'y' must hold one label per row, got a single number"),
    ("rows.npz", _npz(f=X3, t=Y3[:2]), {"x_key": "f", "y_key": "t"}, "'f' has 3 rows but 't' has 2"),
    ("nanx.npz", _npz(f=np.array([[0, 1], [np.nan, 2], [3, np.inf]]), y=Y3), {"x_key": "f"}, "f[1, 0] is not a finite number"),
    ("y3d.npz", _npz(x=X3, y=np.zeros((3, 1, 1), np.int64)), {},
     "array 'y' must hold class indices (n,) or targets (n, k), got shape (3, 1, 1) dtype int64"),
    ("ytext.npz", _npz(x=X3, lab=np.array(["a", "b", "a"])), {"y_key": "lab"},
     "array 'lab' must hold class indices (n,) or targets (n, k), got shape (3,) dtype <U1"),
    ("ycomplex.npz", _npz(x=X3, y=np.ones((3, 1), complex)), {},
     "array 'y' must hold class indices (n,) or targets (n, k), got shape (3, 1) dtype complex128"),
    ("crc.npz", _corrupt("x", x=np.zeros((50_000, 2)), y=np.zeros(50_000, int)), {},
     "unreadable .npz archive (Bad CRC-32 for file 'x.npy')"),
]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def bad_file(request, tmp_path):
    name, make, kwargs, message = request.param
    p = tmp_path / name
    make(p)
    return str(p), kwargs, f"{p}: {message}"


def test_the_api_says_what_is_wrong_and_where(bad_file):
    path, kwargs, message = bad_file
    with pytest.raises(DataError) as e:
        data.load(path, **kwargs)
    assert str(e.value) == message


# one case per reader: the command line adds nothing to the message but its prefix
ON_THE_COMMAND_LINE = ["headerless.csv", "word.csv", "str_label.csv", "latin1.csv", "data.json", "folder.csv",
                       "noy.npz", "flat.npz", "crc.npz"]


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ON_THE_COMMAND_LINE], ids=ON_THE_COMMAND_LINE)
def test_the_command_line_prints_the_same_message_and_fails(case, tmp_path, capsys):
    name, make, kwargs, message = case
    p = tmp_path / name
    make(p)
    args = ["train", IRIS_CAT, "--model", "mlp", "--data", str(p), "--quiet"]
    if "label" in kwargs:
        args += ["--label", str(kwargs["label"])]
    capsys.readouterr()
    assert main(args) == 1
    assert capsys.readouterr().err == f"catgrad: error: {p}: {message}\n"


@pytest.mark.parametrize("source,message", [
    ("irs", f"irs: no such file (built-in datasets: {BUILTINS})"),
    ("nope.csv", "nope.csv: no such file"),  # a file name, not a built-in's: no list of built-ins
    (os.path.join("folder", "nope"), f"{os.path.join('folder', 'nope')}: no such file"),
])
def test_a_missing_source_is_named_and_a_bare_word_lists_the_built_ins(source, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        data.load(source)
    assert str(e.value) == message


ROWS = b"a,b,y\n" + b"1,2,0\n" * 10921  # 65,532 bytes: the text reader decodes 64 KiB chunks


@pytest.mark.parametrize("body", [
    b"a,b,y\n1,2,\xff\n",
    b"a,b,y\n" + b"1,2,0\n" * 5000 + b"1,2,\xff\n",  # past the first chunk
    ROWS + b"1,2\xe2\x82\n",  # a broken character across two chunks
    ROWS + b"1,2,\xe2\x82\n",  # a broken character at the start of the second chunk
    ROWS + b"1,\xc3",  # cut off at the end of the file
    ("a,b,y\n" + "1,2,é\n" * 20000).encode() + b"\x80",  # valid multi-byte characters before the bad one
], ids=["small", "second_chunk", "across_chunks", "chunk_start", "cut_off", "multibyte"])
def test_a_non_utf8_csv_names_the_byte_and_line_of_the_file(body, tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(body)
    with pytest.raises(UnicodeDecodeError) as ref:  # Python's own decoder of the whole file
        body.decode("utf-8")
    at = ref.value.start
    with pytest.raises(DataError) as e:
        data.load(p)
    line = body[:at].count(b"\n") + 1
    assert str(e.value) == f"{p}: not a UTF-8 text file ({ref.value.reason} at byte {at}, line {line})"


def _csv_of(path, n_bytes):
    """A valid 3-column CSV of exactly ``n_bytes`` bytes (the first number padded with zeros)."""
    body = "a,b,y\n" + "1.5,2.5,0\n" * ((n_bytes - 6) // 10)
    pad = n_bytes - len(body)
    path.write_text(body.replace("1.5", "1.5" + "0" * pad, 1))
    assert path.stat().st_size == n_bytes


def test_a_csv_over_the_size_limit_says_both_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("CATGRAD_MAX_BYTES", "4003")  # CSV files may be a quarter of it: 1000 bytes
    p = tmp_path / "d.csv"
    _csv_of(p, 1001)
    with pytest.raises(DataError) as e:
        data.load(p)
    assert str(e.value) == f"{p}: 1001 B is larger than the limit for CSV files of 1000 B {SIZE_NOTE}"
    _csv_of(p, 1000)  # at the limit: read
    assert len(data.load(p)) == 99
