"""SIGKILL during training, then --resume, several times: the final parameters and
optimizer state equal those of an uninterrupted run, bit for bit, and no temporary file of
an interrupted checkpoint write is left behind."""

import os
import subprocess

import numpy as np

from catgrad.train import checkpoint as ckpt
from kill_util import kill_three_times_then_finish, run_env, train_cmd

MODEL = "import nn\ndef mlp = nn.dense[4, 8] >> tanh >> nn.dense[8, 3]\n"


def _cmd(cat, ck, *extra):
    return train_cmd(cat, "mlp", 12, ck, *extra)


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    env = run_env()
    cat = tmp_path / "m.cat"
    cat.write_text(MODEL)
    ref = tmp_path / "ref.npz"
    subprocess.run(_cmd(cat, ref), env=env, check=True, capture_output=True, timeout=300)

    ck = tmp_path / "run.npz"
    steps_seen = kill_three_times_then_finish(lambda resume: _cmd(cat, ck, *(["--resume", str(ck)] if resume else [])),
                                              ck, env, 180)
    assert steps_seen == sorted(steps_seen) and 0 < steps_seen[0] < 180, steps_seen
    a, b = ckpt.load(ref)[0], ckpt.load(ck)[0]
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert int(b["step"]) == 180
    assert sorted(os.listdir(tmp_path)) == ["m.cat", "ref.npz", "run.npz"]
