"""catgrad's numpy step against the statusfailed/catgrad numpy step on Iris.

statusfailed/catgrad (PyPI package ``catgrad``, the project that compiles reverse
derivatives of string diagrams to Python) pins numpy 1.26, so it cannot share this
environment: the script builds a virtual environment for it (once; ``--venv`` says
where, default ``~/.cache/catgrad-bench/statusfailed``), pip-installs the package
there and times its step in a subprocess with that environment's interpreter. That
package imports torch for its torch array backend without declaring the dependency;
only its numpy backend is timed, so the worker puts a stub ``torch`` module in
``sys.modules`` rather than install torch.

The model is statusfailed's own Iris example, ``hidden``: two sigmoid dense layers
4 -> 20 -> 3, float32, the full batch of 150, SGD with learning rate 0.01 and its MSE
loss (whose reverse map is ``pred - label``). (Its bias parameters have the batch's
shape, 150 x 20 and 150 x 3, as its ``dense`` layer declares them.) Ours is the same network with
bias vectors broadcast over the batch, float32, SGD 0.01 and ``mse(reduction="half_sum")``
(gradient ``pred - label``). Both on one BLAS thread, timed with the thread's CPU time,
best of the rounds; the two programs alternate (theirs, ours, theirs, ours) so a
change of load hits both. Goal: ours / theirs <= 0.6.

Run: ``python benchmarks/bench_statusfailed.py [--steps 4000] [--venv DIR]``.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

PACKAGE = "catgrad==0.2.2"

WORKER = r'''
import json, sys, time, types
torch = types.ModuleType("torch")  # imported by its torch backend only; never used here
torch.Tensor = object
sys.modules["torch"] = torch
import numpy as np
from catgrad import *
from catgrad.target.python.array_backend import Numpy

steps, rounds = int(sys.argv[1]), int(sys.argv[2])
B = NdArrayType((150,), Dtype.float32)
I, H, O = (NdArrayType((n,), Dtype.float32) for n in (4, 20, 3))
model = layers.dense(B, I, H, activation=layers.sigmoid) >> layers.dense(B, H, O, activation=layers.sigmoid)
Compiled, ParamType, _ = compile_model(model, layers.sgd(0.01), layers.mse)
m = Compiled(Numpy)
rng = np.random.default_rng(0)
p = [rng.normal(0, 0.1, T.shape).astype(np.float32) for T in ParamType]
x = rng.normal(size=(150, 4)).astype(np.float32)
y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 150)]
for _ in range(10):
    p = m.step(*p, x, y)
best = float("inf")
for _ in range(rounds):
    t = time.thread_time()
    for _ in range(steps):
        p = m.step(*p, x, y)
    best = min(best, (time.thread_time() - t) / steps)
print(json.dumps({"us": best * 1e6, "numpy": np.__version__, "params": [list(T.shape) for T in ParamType]}))
'''


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtual environment with statusfailed/catgrad, made if missing."""
    py = venv / "bin" / "python"
    marker = venv / ".catgrad-bench-ok"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", PACKAGE], check=True)
        marker.write_text(PACKAGE)
    return py


def theirs(py: Path, steps: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "statusfailed_iris.py"
        script.write_text(WORKER)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not this checkout's catgrad
        out = subprocess.run([str(py), str(script), str(steps), str(rounds)], cwd=d, env=env, check=True,
                             capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours(steps: int, rounds: int) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import catgrad as cg
    from bench_numpy_step import dense

    model = dense("l0", 4, 20, cg.f32, cg.ops.sigmoid) >> dense("l1", 20, 3, cg.f32, cg.ops.sigmoid)
    step = cg.compile(model, loss=cg.loss.mse(reduction="half_sum"), optimizer=cg.optim.sgd(0.01))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 150)]
    state = step.init(0)
    for _ in range(10):
        state, _ = step(state, x, y)
    best = float("inf")
    for _ in range(rounds):
        t = time.thread_time()
        for _ in range(steps):
            state, _ = step(state, x, y)
        best = min(best, (time.thread_time() - t) / steps)
    return best * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "catgrad-bench" / "statusfailed")
    args = ap.parse_args(argv)
    try:
        py = venv_python(args.venv)
    except subprocess.CalledProcessError as e:
        print(f"could not install {PACKAGE} into {args.venv}: {e}")
        return 1
    t_theirs, t_ours = [], []
    for _ in range(2):
        r = theirs(py, args.steps, args.rounds)
        t_theirs.append(r["us"])
        t_ours.append(ours(args.steps, args.rounds))
    a, b = min(t_ours), min(t_theirs)
    print(f"Iris 4-20-3, float32, batch 150, sgd, 1 thread (best of {2 * args.rounds} x {args.steps} steps)")
    print(f"  statusfailed/catgrad {PACKAGE.split('==')[1]} (numpy {r['numpy']}): {b:8.1f} us/step")
    print(f"  catgrad (this checkout, numpy {np.__version__}):           {a:8.1f} us/step")
    print(f"  ratio ours / theirs: {a / b:.2f}  (goal <= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
