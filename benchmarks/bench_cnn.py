"""The digits CNN training step: catgrad's numpy backend vs the same step in torch eager.

The model is ``cnn`` of ``examples/digits_cnn.cat`` (two 3x3 convolutions with 64
channels, relu and 2x2 max pooling, then a dense layer; float32 images [128, 1, 8, 8]), trained with
softmax cross-entropy (batch mean) and Adam. The torch step is the same network written
with ``torch.nn.functional`` (conv2d, max_pool2d, cross_entropy) and ``torch.optim.Adam``
from the same initial weights. Both run on one CPU thread (BLAS and torch), so the ratio
compares the kernels and not how many cores a shared machine happens to give; the
torch backend of catgrad is timed too when it is available.

Run: ``python benchmarks/bench_cnn.py [--batch 128] [--steps 30]``.
"""

from __future__ import annotations

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import catgrad as cg  # noqa: E402
from catgrad.frontend.module import load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks")]
from bench_step import timeit  # noqa: E402  (microseconds, best of 3)
from digits_cnn import torch_forward  # noqa: E402  (the same network in torch.nn.functional)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cpu-clock", action="store_true",
                    help="time with the calling thread's CPU time (both run on that one thread), not the wall clock")
    args = ap.parse_args(argv)
    timer = timeit
    if args.cpu_clock:  # waiting for a core on a busy machine is then not counted
        from bench_numpy_step import timeit as turns

        timer = lambda fn, n: turns([fn], n, rounds=3)[0]  # noqa: E731
    torch.set_num_threads(1)
    model = load(ROOT / "examples" / "digits_cnn.cat")["cnn"]
    loss, opt = cg.loss.softmax_cross_entropy(reduction="mean"), cg.optim.adam(lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, args.batch)
    y = np.eye(10, dtype=np.float32)[labels]

    step = cg.compile(model, loss=loss, optimizer=opt, backend="numpy")
    init = step.init(0)
    box = [init]

    def ours():
        box[0], _ = step(box[0], x, y)

    t_numpy = timer(ours, args.steps) / 1e3

    p = {k: torch.tensor(v, requires_grad=True) for k, v in init.params.items()}
    topt = torch.optim.Adam(list(p.values()), lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(labels)

    def theirs():
        topt.zero_grad()
        F.cross_entropy(torch_forward(F, p, tx), ty).backward()
        topt.step()

    t_torch = timer(theirs, args.steps) / 1e3
    print(f"digits CNN training step, batch {args.batch}, float32, adam, 1 thread (best of 3 x {args.steps} steps)")
    print(f"  catgrad numpy backend: {t_numpy:8.2f} ms/step")
    print(f"  torch eager:           {t_torch:8.2f} ms/step")
    print(f"  ratio numpy / torch:   {t_numpy / t_torch:8.2f}  (target <= 2)")
    try:
        tstep = cg.compile(model, loss=loss, optimizer=opt, backend="torch")
    except Exception as e:  # the torch backend is built in another branch
        print(f"  catgrad torch backend: not available here ({type(e).__name__}: {e})")
        return
    tbox = [tstep.init(0)]

    def ours_torch():
        tbox[0], _ = tstep(tbox[0], x, y)

    t_tb = timer(ours_torch, args.steps) / 1e3
    print(f"  catgrad torch backend: {t_tb:8.2f} ms/step  (ratio to torch eager {t_tb / t_torch:.2f}, target <= 1)")


if __name__ == "__main__":
    main()
