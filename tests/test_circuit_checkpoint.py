"""Checkpoints of bit models: ``catgrad predict`` / ``evaluate`` / ``compile`` use the trained
circuit exactly as training measured it, and ``catgrad train --resume`` continues an RDA run
bit for bit, also after SIGKILL mid-epoch."""

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest

from catgrad.circuit import Evaluator, tools
from catgrad.cli import main
from catgrad.data import load
from catgrad.train import checkpoint as ckpt
from catgrad.train.circuit import netlist_of
from circuit_models import ROOT
from kill_util import kill_three_times_then_finish

_spec = importlib.util.spec_from_file_location("rda_digits10", ROOT / "examples" / "rda_digits10.py")
rda_digits10 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rda_digits10)


def run(*args):
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main([str(a) for a in args])
    assert rc == 0
    return out.getvalue()


def test_a_ten_class_circuit_predicts_evaluates_and_compiles_as_it_was_trained(tmp_path):
    cat, ck = tmp_path / "d.cat", tmp_path / "d.ck"
    cat.write_text(rda_digits10.model_source(8, 0))
    res = json.loads(run("train", cat, "--model", "digits10", "--data", "digits", "--encode", "thermometer:3",
                         "--encode-scale", "global", "--batch", "2000", "--combine", "balanced", "--epochs", "1",
                         "--checkpoint", ck, "--json", "--quiet").splitlines()[-1])
    assert res["test_accuracy"] >= 0.8 and res["two_input_gates"] < 2500  # 0.842 and 1,889 measured (seed 0)
    ev = json.loads(run("evaluate", "--checkpoint", ck, "--data", "digits", "--json").splitlines()[-1])
    assert ev["n"] == res["n_test"] == 360 and ev["accuracy"] == res["test_accuracy"]
    rows = list(csv.reader(io.StringIO(run("predict", "--checkpoint", ck, "--data", "digits"))))
    assert rows[0] == ["predicted"] + [f"votes_{c}" for c in range(10)]
    pred = np.array([int(r[0]) for r in rows[1:]])
    votes = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_array_equal(pred, votes.argmax(1))
    assert (votes.sum(1) <= 8 * 10).all()
    ds = load("digits")
    _, test = ds.split(test_fraction=0.2, seed=0)
    # the compiled classifier (with its vote readout) gives the same classes
    nl, _ = netlist_of(str(cat), "digits10", str(ck))
    assert nl.report()["two_input_gates"] == res["two_input_gates"]
    flat, meta = ckpt.load(ck)
    from catgrad.train.encode import Encoder

    bits = Evaluator(nl)(Encoder.from_state(meta["encoder"])(ds.x)).astype(np.int64)
    np.testing.assert_array_equal(bits @ (1 << np.arange(4)), pred)
    assert np.mean((bits @ (1 << np.arange(4)))[_test_rows(ds, test)] == test.y) == res["test_accuracy"]
    for target, suffix in (("blif", "blif"), ("aiger", "aig")):
        run("compile", cat, "--model", "digits10", "--checkpoint", ck, "--target", target, "-o", tmp_path / f"d.{suffix}")
    if tools.which(*tools.ABC):
        assert tools.cec(str(tmp_path / "d.blif"), str(tmp_path / "d.aig"))


def _test_rows(ds, test):
    """Indices of the test rows in the full dataset (rows are unique up to their label)."""
    index = {(r.tobytes(), int(y)): i for i, (r, y) in enumerate(zip(ds.x, ds.y))}
    return np.array([index[(r.tobytes(), int(y))] for r, y in zip(test.x, test.y)])


def test_two_class_checkpoints_evaluate_on_the_held_out_rows_of_those_classes(tmp_path):
    ck = tmp_path / "d01.ck"
    res = json.loads(run("train", ROOT / "examples" / "rda.cat", "--model", "digits01_t8", "--data", "digits",
                         "--classes", "0,1", "--encode", "thermometer:8", "--encode-scale", "global", "--checkpoint",
                         ck, "--json", "--quiet").splitlines()[-1])
    ev = json.loads(run("evaluate", "--checkpoint", ck, "--data", "digits", "--json").splitlines()[-1])
    assert ev["n"] == res["n_test"] == 72 and ev["accuracy"] == res["test_accuracy"] and ev["classes"] == ["0", "1"]


IRIS3 = ["train", str(ROOT / "examples" / "rda.cat"), "--model", "iris3", "--data", "iris", "--encode", "thermometer:3",
         "--seed", "2", "--quiet"]


def test_resume_continues_an_rda_run_exactly(tmp_path):
    a, b = tmp_path / "a.ck", tmp_path / "b.ck"
    run(*IRIS3, "--epochs", "6", "--batch", "4", "--combine", "vote", "--checkpoint", a)
    run(*IRIS3, "--epochs", "2", "--batch", "4", "--combine", "vote", "--checkpoint", b)
    out = run(*IRIS3, "--epochs", "6", "--batch", "4", "--combine", "vote", "--checkpoint", b, "--resume", b, "--json")
    fa, ma = ckpt.load(a)
    fb, mb = ckpt.load(b)
    assert sorted(fa) == sorted(fb) and all(np.array_equal(fa[k], fb[k]) and fa[k].dtype == fb[k].dtype for k in fa)
    assert ma == mb and int(fb["step"]) == 6 * 30
    assert json.loads(out.splitlines()[-1])["mistakes_per_epoch"] == ma["rda"]["mistakes_per_epoch"]


@pytest.mark.parametrize("change,msg", [(["--seed", "3"], "seed"), (["--combine", "parity"], "combine"),
                                        (["--encode", "thermometer:4"], "encode")])
def test_resume_with_other_options_is_refused(tmp_path, change, msg, capsys):
    ck = tmp_path / "c.ck"
    run(*IRIS3, "--epochs", "1", "--batch", "4", "--combine", "vote", "--checkpoint", ck)
    args = IRIS3 + ["--epochs", "2", "--batch", "4", "--combine", "vote", "--resume", str(ck)]
    for i, a in enumerate(args):
        if a == change[0]:
            args[i + 1] = change[1]
    if change[0] not in IRIS3 + ["--combine"]:
        args += change
    assert main(args) == 1
    assert msg in capsys.readouterr().err


def _cmd(ck, *extra):
    return [sys.executable, "-m", "catgrad", *IRIS3, "--epochs", "6", "--checkpoint", str(ck), *extra]


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_rda_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ref = tmp_path / "ref.ck"
    subprocess.run(_cmd(ref), env=env, check=True, capture_output=True, timeout=300)  # checkpoints once per epoch
    ck = tmp_path / "run.ck"
    steps = kill_three_times_then_finish(
        lambda resume: _cmd(ck, "--checkpoint-every", "3", *(["--resume", str(ck)] if resume else [])), ck, env, 6 * 120)
    assert steps == sorted(steps) and 0 < steps[0] < 6 * 120, steps
    (fa, ma), (fb, mb) = ckpt.load(ref), ckpt.load(ck)
    assert sorted(fa) == sorted(fb) and all(np.array_equal(fa[k], fb[k]) for k in fa)
    assert ma == mb and int(fb["step"]) == 6 * 120
    assert sorted(os.listdir(tmp_path)) == ["ref.ck", "run.ck"]


@pytest.mark.parametrize("damage,msg", [(lambda m: m["rda"].pop("n_classes"), "the classes of the bit model"),
                                        (lambda m: m["encoder"].pop("lo"), "damaged encoder description")])
def test_a_damaged_bit_checkpoint_is_a_clear_error(tmp_path, damage, msg, capsys):
    ck = tmp_path / "c.ck"
    run(*IRIS3, "--epochs", "1", "--checkpoint", ck)
    flat, meta = ckpt.load(ck)
    damage(meta)
    ckpt.save(ck, flat, meta)
    assert main(["evaluate", "--checkpoint", str(ck), "--data", "iris"]) == 1
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
