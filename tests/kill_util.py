"""Kill a training run with SIGKILL three times, resuming it each time (shared by the
float and the bit-model kill tests)."""

import os
import random
import signal
import subprocess
import sys
import time

from catgrad.train import checkpoint as ckpt


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_env() -> dict:
    """The environment for a ``catgrad`` subprocess that imports this checkout."""
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def train_cmd(cat, model: str, epochs: int, ck, *extra) -> list:
    """``catgrad train`` on iris with Adam, a checkpoint after every step."""
    return [sys.executable, "-m", "catgrad", "train", str(cat), "--model", model, "--data", "iris",
            "--epochs", str(epochs), "--batch", "8", "--optimizer", "adam(lr=1e-2)", "--seed", "3",
            "--checkpoint", str(ck), "--checkpoint-every", "1", "--quiet", *extra]


def kill_three_times_then_finish(cmd, ck, env) -> list:
    """Run ``cmd(resume)`` (``resume``: whether to add ``--resume``) until it finishes, killing
    the first three processes at a random moment after each has written ``ck`` itself. Returns
    the checkpoint's step after each kill."""
    rng = random.Random(0)
    kills, steps = 0, []
    for _ in range(12):
        p = subprocess.Popen(cmd(ck.exists()), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
                steps.append(int(ckpt.load(ck)[0]["step"]))
                continue
        err = p.communicate(timeout=300)[1]
        assert p.returncode == 0, err
        break
    assert kills == 3, steps
    return steps
