"""SIGKILL during training, then --resume, several times: the final parameters and
optimizer state equal those of an uninterrupted run, bit for bit, and no temporary file of
an interrupted checkpoint write is left behind."""

import os
import subprocess
import sys

import numpy as np

from catgrad.train import checkpoint as ckpt
from kill_util import kill_three_times_then_finish

MODEL = "import nn\ndef mlp = nn.dense[4, 8] >> tanh >> nn.dense[8, 3]\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cmd(cat, ck, *extra):
    return [sys.executable, "-m", "catgrad", "train", str(cat), "--model", "mlp", "--data", "iris", "--epochs", "12",
            "--batch", "8", "--optimizer", "adam(lr=1e-2)", "--seed", "3", "--checkpoint", str(ck),
            "--checkpoint-every", "1", "--quiet", *extra]


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cat = tmp_path / "m.cat"
    cat.write_text(MODEL)
    ref = tmp_path / "ref.npz"
    subprocess.run(_cmd(cat, ref), env=env, check=True, capture_output=True, timeout=300)

    ck = tmp_path / "run.npz"
    steps_seen = kill_three_times_then_finish(lambda resume: _cmd(cat, ck, *(["--resume", str(ck)] if resume else [])),
                                              ck, env)
    assert steps_seen == sorted(steps_seen) and 0 < steps_seen[0] < 180, steps_seen
    a, b = ckpt.load(ref)[0], ckpt.load(ck)[0]
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert int(b["step"]) == 180
    assert sorted(os.listdir(tmp_path)) == ["m.cat", "ref.npz", "run.npz"]
