"""Fuzzing the command line's inputs (see tests/fuzz_inputs.py for the bar every case must
meet). The default suite runs a few cases of each kind; ``CATGRAD_FUZZ=200 pytest
tests/test_fuzz_inputs.py`` (or benchmarks/fuzz_inputs.py) runs more."""

import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings

import fuzz_inputs as F

N = int(os.environ.get("CATGRAD_FUZZ", "12"))
FUZZ = settings(max_examples=N, deadline=None, derandomize=not os.environ.get("CATGRAD_FUZZ"),
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    F.valid_checkpoint(str(d))
    return str(d)


def _clean(folder, keep=("m.cat", "d.npz", "good.npz")):
    for name in os.listdir(folder):
        if name not in keep:
            p = os.path.join(folder, name)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)


@FUZZ
@given(F.csv_texts())
def test_csv_data(folder, text):
    _clean(folder)
    with open(os.path.join(folder, "x.csv"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    F.run_cli(["train", "m.cat", "--model", "m", "--data", "x.csv", "--epochs", "1", "--batch", "2", "--quiet"], folder)


@FUZZ
@given(F.npz_blobs())
def test_npz_data(folder, blob):
    _clean(folder)
    with open(os.path.join(folder, "x.npz"), "wb") as f:
        f.write(blob)
    F.run_cli(["train", "m.cat", "--model", "m", "--data", "x.npz", "--epochs", "1", "--batch", "2", "--quiet"], folder)


_GOOD = {}


def _good(folder):
    if folder not in _GOOD:
        with open(os.path.join(folder, "good.npz"), "rb") as f:
            _GOOD[folder] = f.read()
    return _GOOD[folder]


@FUZZ
@given(data=__import__("hypothesis").strategies.data())
def test_checkpoints(folder, data):
    _clean(folder)
    blob = data.draw(F.tampered_checkpoints(_good(folder)))
    with open(os.path.join(folder, "bad.npz"), "wb") as f:
        f.write(blob)
    F.run_cli(["train", "m.cat", "--model", "m", "--data", "d.npz", "--epochs", "2", "--batch", "4", "--quiet",
               "--resume", "bad.npz", "--checkpoint", "bad.npz"], folder, outputs=("bad.npz",))


@FUZZ
@given(F.optimizer_strings())
def test_optimizer_strings(folder, text):
    from catgrad.errors import CatgradError
    from catgrad.optim.parse import parse

    with F.time_limit(F.LIMIT):
        try:
            parse(text)
        except CatgradError:
            pass


@FUZZ
@given(F.train_arguments())
def test_arguments(folder, args):
    _clean(folder)
    os.mkdir(os.path.join(folder, "sub"))
    F.run_cli(args, folder, outputs=("out.npz", "sub"))
