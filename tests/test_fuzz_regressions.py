"""The corpus of what fuzzing the CLI's inputs found (tests/fuzz_inputs.py,
benchmarks/fuzz_inputs.py), kept as regression tests: each was an "internal error", a hang
or an accepted bad input before issue 12. The bar is the fuzzer's (run_cli)."""

import io
import json
import os

import numpy as np
import pytest

import fuzz_inputs as F


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("corpus"))
    F.valid_checkpoint(d)
    return d


def _write_ckpt(folder, name, change):
    with open(os.path.join(folder, "good.npz"), "rb") as f:
        arrays, meta = F.read_checkpoint(f.read())
    change(meta, arrays)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(F.write_checkpoint(arrays, meta))


FIELDS = [("position", "batch"), ("position", "epoch"), ("running", "loss"), ("running", "correct"),
          ("running", "count"), ("loop", "batch_size"), ("loop", "n_train"), ("loop", "seed"), ("loop", "data")]


@pytest.mark.parametrize("section, key", FIELDS)
@pytest.mark.parametrize("value", [None, -1, "x", 2**70, 1.5, [], {}, True])
def test_tampered_metadata_is_one_error_line(folder, section, key, value):
    # found: {"position": {"batch": null}} was "internal error: TypeError: int() argument ..."
    _write_ckpt(folder, "t.npz", lambda m, a: m[section].__setitem__(key, value))
    rc, err = F.run_cli(["train", "m.cat", "--model", "m", "--data", "d.npz", "--epochs", "2", "--batch", "4",
                         "--quiet", "--resume", "t.npz"], folder)
    if (section, key) == ("running", "loss") and isinstance(value, (int, float)) and not isinstance(value, bool):
        assert rc == 0, err  # any finite sum of losses is possible (dot losses are negative)
    else:
        assert rc == 1 and err.startswith("catgrad: error: t.npz: "), err


@pytest.mark.parametrize("change", [
    lambda m, a: a.update(step=np.int64(-1)),
    lambda m, a: a.update(step=np.zeros(3, np.int64)),
    lambda m, a: a.update(step=np.float64(2.0)),
    lambda m, a: a.pop("step"),
    lambda m, a: m.pop("signature"),
    lambda m, a: m.__setitem__("loop", [1, 2]),
    lambda m, a: m.__setitem__("running", None),
])
def test_tampered_state_is_one_error_line(folder, change):
    _write_ckpt(folder, "s.npz", change)
    rc, err = F.run_cli(["train", "m.cat", "--model", "m", "--data", "d.npz", "--epochs", "2", "--batch", "4",
                         "--quiet", "--resume", "s.npz"], folder)
    assert rc == 1 and err.startswith("catgrad: error: s.npz: "), err


@pytest.mark.parametrize("text, msg", [
    ("adam(", "expected a name or number"),
    ("adam(lr=1e-3", "expected ')'"),
    (">>", "expected a name or number"),
    ("sgd >> 1", "'>>' at column 5 combines optimizers"),
    ("adam(lr=1,lr=2)", "given twice"),
    ("adam(1, lr=2)", "multiple values"),
    ("clip_norm(1)" + " >> clip_norm(1)" * 3000, "combines more than 256 optimizers"),
    ("(-adam)", "'-' at column 2 applies to numbers only"),
    ("adam(lr=9" + "9" * 400 + ")", "too large"),
    ("lookahead(adam(), k=-1)", None),
])
def test_optimizer_strings(folder, text, msg):
    rc, err = F.run_cli(["train", "m.cat", "--model", "m", "--data", "d.npz", "--epochs", "1", "--batch", "4",
                         "--quiet", "--optimizer", text], folder)
    if msg is not None:
        assert rc == 1 and msg in err, err


@pytest.mark.parametrize("args, msg", [
    (["--epochs", "99999999999999999999999"], "--epochs must be at most"),
    (["--test-fraction", "nan"], "--test-fraction must be in [0, 1)"),
    (["--checkpoint", "."], "is a directory"),
    (["--checkpoint", "d.npz"], "an input of this run"),
    (["--data", "."], "is a directory"),
    (["--data", "m.cat"], "unknown data format"),
    (["--label", "-3"], None),
])
def test_arguments(folder, args, msg):
    rc, err = F.run_cli(["train", "m.cat", "--model", "m", "--data", "d.npz", "--epochs", "1", "--batch", "4",
                         "--quiet", *args], folder)
    if msg is not None:
        assert rc == 1 and msg in err, err
