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


def _step(ck):
    """The step recorded in checkpoint ``ck``, or -1 while there is none to read yet."""
    try:
        return int(ckpt.load(ck)[0]["step"])
    except Exception:  # not written yet; writes are atomic renames, so never half a file
        return -1


def kill_three_times_then_finish(cmd, ck, env, total: int) -> list:
    """Run ``cmd(resume)`` (``resume``: whether to add ``--resume``) until it finishes, killing
    each of the first three processes once its checkpoint ``ck`` has reached a step target, plus
    a random few milliseconds (so some kills land inside a checkpoint write). The targets are
    drawn in the first three quarters of the run's ``total`` steps: a fast machine cannot run
    past them between polls, a slow one only waits longer. Returns the checkpoint's step after
    each kill."""
    rng = random.Random(0)
    targets = sorted(rng.sample(range(1, max(4, total * 3 // 4)), 3))
    kills, steps = 0, []
    for _ in range(12):
        p = subprocess.Popen(cmd(ck.exists()), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 3:
            deadline = time.time() + 120
            while p.poll() is None and time.time() < deadline and _step(ck) < targets[kills]:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.005))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=60)
                kills += 1
                steps.append(_step(ck))
                continue
        err = p.communicate(timeout=300)[1]
        assert p.returncode == 0, err
        break
    assert kills == 3, (targets, steps)
    return steps
