"""A fuzz harness for the command line's inputs other than ``.cat`` sources (those are
fuzzed by :mod:`catgrad.frontend.fuzz`): CSV and ``.npz`` data, checkpoints (truncated,
bytes flipped, tampered metadata, wrong shapes, pickles), optimizer strings and arguments.

Used by tests/test_fuzz_inputs.py (a few dozen cases in the default suite; set
``CATGRAD_FUZZ=N`` for N cases per input kind) and benchmarks/fuzz_inputs.py (long runs).

The bar for every case (:func:`run_cli`): exit status 0 or 1 (2 for arguments argparse
itself rejects), no "internal error" and no traceback, done within ``LIMIT`` seconds, memory
bounded by ``CATGRAD_MAX_BYTES`` (set small here, so size checks are exercised), and no file
in the working folder touched except the run's own declared output.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import zipfile

import numpy as np
from hypothesis import strategies as st

LIMIT = 5.0  # seconds per case
MAX_BYTES = str(64 << 20)

MODEL = """\
import nn
def m = nn.dense[2, 3]
def r(x : f64[B, 2]) -> f64[B, 1] {
  param W : f64[2, 1] ~ glorot
  x @ W
}
"""


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def snapshot(folder) -> dict:
    """name -> sha256 of every file in ``folder`` (not following links)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as fh:
                out[name] = hashlib.sha256(fh.read()).hexdigest()
        else:
            out[name] = "special"
    return out


def run_cli(args, folder, outputs=()) -> tuple:
    """Run ``catgrad ARGS`` in-process in ``folder``; check the bar; return (rc, stderr)."""
    from catgrad.cli import main

    before = snapshot(folder)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    old_env = os.environ.get("CATGRAD_MAX_BYTES")
    os.environ["CATGRAD_MAX_BYTES"] = MAX_BYTES
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), np.errstate(all="ignore"):
            with time_limit(LIMIT):
                try:
                    rc = main([str(a) for a in args])
                except SystemExit as e:  # argparse: usage error
                    rc = e.code
    finally:
        os.chdir(cwd)
        if old_env is None:
            os.environ.pop("CATGRAD_MAX_BYTES", None)
        else:
            os.environ["CATGRAD_MAX_BYTES"] = old_env
    text = err.getvalue()
    shown = str(args)[:300]
    assert rc in (0, 1, 2), (shown, rc, text[:2000])
    assert "internal error" not in text and "Traceback" not in text, (shown, text[:2000])
    if rc == 1:
        assert text.strip().startswith("catgrad: error: ") or ": error: " in text, (shown, text[:2000])
    after = snapshot(folder)
    for name in set(before) | set(after):
        if name in outputs:
            continue
        assert before.get(name) == after.get(name), (shown, name, "touched")
    return rc, text


# -- strategies --------------------------------------------------------------------------------

CELLS = ["0", "1", "2", "-1", "0.5", "1e308", "-1e308", "1e39", "nan", "inf", "-inf", "", " ", "a", "b", "x y",
         '"q"', '"1,2"', "1e-320", "9" * 400, "0x10", "1_0", "\u00e9", "true", "None"]


@st.composite
def csv_texts(draw):
    ncol = draw(st.integers(1, 5))
    header = draw(st.sampled_from([None, ["a", "b", "y"][:ncol] + [f"c{i}" for i in range(ncol - 3)],
                                   draw(st.lists(st.sampled_from(CELLS), min_size=ncol, max_size=ncol))]))
    rows = draw(st.lists(st.lists(st.sampled_from(CELLS), min_size=max(0, ncol - 1), max_size=ncol + 1),
                         max_size=12))
    lines = ([",".join(header)] if header is not None else []) + [",".join(r) for r in rows]
    sep = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    tail = draw(st.sampled_from(["", "\n", "\x00", "\ufeff", '"unclosed']))
    return sep.join(lines) + tail


DTYPES = ["f8", "f4", "i8", "u1", "b1", "c16", "U3", "O", "V4", "M8[s]"]


@st.composite
def npz_blobs(draw):
    """The bytes of an .npz: arrays of odd dtypes and shapes, or a damaged archive."""
    keys = draw(st.lists(st.sampled_from(["x", "y", "z", "x/y", "__meta__"]), max_size=3, unique=True))
    buf = io.BytesIO()
    arrays = {}
    for k in keys:
        dt = draw(st.sampled_from(DTYPES))
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        if dt == "O":
            a = np.empty(shape, dtype=object)
        else:
            a = np.zeros(shape, dtype=dt)
        arrays[k] = a
    np.savez(buf, **arrays) if arrays else zipfile.ZipFile(buf, "w").close()
    data = bytearray(buf.getvalue())
    how = draw(st.sampled_from(["keep", "truncate", "flip", "append", "member"]))
    if how == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
    elif how == "append":
        data += draw(st.binary(max_size=40))
    elif how == "member":
        b2 = io.BytesIO()
        with zipfile.ZipFile(b2, "w") as z:
            z.writestr(draw(st.sampled_from(["x.npy", "y.txt", "dir/", "x.npy.npy"])), draw(st.binary(max_size=200)))
        data = bytearray(b2.getvalue())
    return bytes(data)


def valid_checkpoint(folder) -> str:
    """A real checkpoint of model ``m`` (written once per folder) to tamper with."""
    path = os.path.join(folder, "good.npz")
    if not os.path.exists(path):
        with open(os.path.join(folder, "m.cat"), "w") as f:
            f.write(MODEL)
        write_data(folder)
        rc, text = run_cli(["train", "m.cat", "--model", "m", "--data", "d.npz", "--epochs", "1", "--batch", "4",
                            "--checkpoint", "good.npz", "--quiet"], folder, outputs=("good.npz",))
        assert rc == 0, text
    return path


def write_data(folder) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 2))
    np.savez(os.path.join(folder, "d.npz"), x=x, y=(x[:, 0] > 0).astype(int) + (x[:, 1] > 0))


def read_checkpoint(data: bytes) -> tuple:
    """``(arrays, meta)`` of a checkpoint's bytes (safetensors, the current format)."""
    from safetensors.numpy import load

    n = int.from_bytes(data[:8], "little")
    return dict(load(data)), json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["catgrad"])


def write_checkpoint(arrays: dict, meta, meta_text: str | None = None) -> bytes:
    """The bytes of a checkpoint holding ``arrays`` and ``meta`` (or the raw ``meta_text``),
    written without any of catgrad's checks, so tampered contents get through."""
    from safetensors.numpy import save

    from catgrad.train.checkpoint import FORMAT

    arrays = {k: np.array(v, order="C") for k, v in arrays.items()}
    text = meta_text if meta_text is not None else json.dumps(meta, allow_nan=True)
    return save(arrays, metadata={"format": FORMAT, "catgrad": text})


META_VALUES = [None, -1, 0, 1, 2**70, 1.5, float("inf"), "x", [], {}, True, [1, 2], {"epoch": -1}]


@st.composite
def tampered_checkpoints(draw, good: bytes):
    """A checkpoint made from ``good``: metadata fields replaced, arrays reshaped or
    retyped, pickles added, or the bytes truncated/flipped."""
    how = draw(st.sampled_from(["meta", "meta", "array", "pickle", "truncate", "flip", "drop"]))
    if how in ("truncate", "flip"):
        data = bytearray(good)
        if how == "truncate":
            return bytes(data[: draw(st.integers(0, len(data) - 1))])
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        return bytes(data)
    arrays, meta = read_checkpoint(good)
    if how == "pickle":  # the first format (.npz) is still read: a pickle in one must be refused
        arrays = dict(arrays, **{"__meta__": np.frombuffer(json.dumps(dict(meta, format="catgrad-checkpoint/1")).encode(), np.uint8)})
        arrays[draw(st.sampled_from(["param/dense.W", "extra"]))] = np.array([{"a": 1}], dtype=object)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()
    text = None
    if how == "meta":
        section = draw(st.sampled_from(["position", "running", "loop", "signature", None]))
        value = draw(st.sampled_from(META_VALUES))
        if section is None:
            meta[draw(st.sampled_from(["position", "running", "loop", "format", "signature"]))] = value
        elif isinstance(meta.get(section), dict) and meta[section]:
            meta[section][draw(st.sampled_from(sorted(meta[section])))] = value
        text = json.dumps(meta, allow_nan=True)
    elif how == "array":
        k = draw(st.sampled_from(sorted(arrays)))
        arrays[k] = np.zeros(tuple(draw(st.lists(st.integers(0, 3), max_size=2))), draw(st.sampled_from(["f4", "f8", "i8", "u1"])))
    elif how == "drop":
        arrays.pop(draw(st.sampled_from(sorted(arrays))))
    return write_checkpoint(arrays, meta, text)


OPT_TOKENS = ["adam", "sgd", "lion", "lookahead", "cosine", "clip_norm", "(", ")", ",", "=", "lr", "b1", "eps", ">>",
              "@", "-", "+", "1", "0", "1e-3", "1e39", "nan", "inf", "True", ".", "'x'", "__import__", "k", " ", "_"]


def optimizer_strings():
    return st.one_of(
        st.lists(st.sampled_from(OPT_TOKENS), max_size=14).map("".join),
        st.text(max_size=30),
        st.builds(lambda n, s: " >> ".join([s] * n), st.integers(1, 3000), st.sampled_from(["sgd", "clip_norm(1)", "adam("])),
    )


NUMBERS = ["0", "1", "-1", "2", "-5", "1e9", "99999999999999999999999", "nan", "inf", "0.5", "-0.0", "x", ""]
FLAGS = {
    "--epochs": NUMBERS, "--batch": NUMBERS, "--seed": NUMBERS, "--test-fraction": NUMBERS + ["0.99", "1"],
    "--checkpoint-every": NUMBERS, "--label": NUMBERS + ["y", "a", "-3"], "--loss": ["mse", "nope", "", "dot"],
    "--model": ["m", "r", "nope", "", "nn"], "--data": ["d.npz", "iris", "missing.csv", ".", "/dev/null", "m.cat"],
    "--checkpoint": ["out.npz", "m.cat", "d.npz", ".", "/dev/null", "sub/x.npz", "out.npz"],
    "--resume": ["out.npz", "good.npz", "m.cat", "missing.npz"],
}


@st.composite
def train_arguments(draw):
    args = ["train", "m.cat", "--quiet"]
    chosen = draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=5, unique=True))
    flags = {"--model": "m", "--data": "d.npz", "--epochs": "1", "--batch": "4"}
    for f in chosen:
        flags[f] = draw(st.sampled_from(FLAGS[f]))
    for f, v in flags.items():
        args += [f, v]
    if draw(st.booleans()):
        args.append("--force")
    return args
