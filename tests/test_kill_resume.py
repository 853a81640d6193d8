"""SIGKILL during training, then --resume, several times: the final parameters and
optimizer state equal those of an uninterrupted run, bit for bit, and no temporary file of
an interrupted checkpoint write is left behind."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from catgrad.train import checkpoint as ckpt

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
    rng = random.Random(0)
    kills, steps_seen = 0, []
    for attempt in range(12):
        p = subprocess.Popen(_cmd(cat, ck, *(["--resume", str(ck)] if ck.exists() else [])), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 3:
            t0 = os.path.getmtime(ck) if ck.exists() else 0
            deadline = time.time() + 120
            while (not ck.exists() or os.path.getmtime(ck) == t0) and p.poll() is None and time.time() < deadline:
                time.sleep(0.01)  # wait until this process has written a checkpoint itself
            time.sleep(rng.uniform(0.0, 0.1))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=60)
                kills += 1
                steps_seen.append(int(ckpt.load(ck)[0]["step"]))
                continue
        err = p.communicate(timeout=300)[1]
        assert p.returncode == 0, err
        break
    assert kills == 3 and steps_seen == sorted(steps_seen) and 0 < steps_seen[0] < 180, steps_seen
    a, b = ckpt.load(ref)[0], ckpt.load(ck)[0]
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert int(b["step"]) == 180
    assert sorted(os.listdir(tmp_path)) == ["m.cat", "ref.npz", "run.npz"]
