"""The digits CNN training step: catgrad's numpy backend vs the same step in torch eager.

The model is ``cnn`` of ``examples/digits_cnn.cat`` (two 3x3 convolutions with 64
channels, relu and 2x2 max pooling, then a dense layer; float32 images [128, 1, 8, 8]), trained with
softmax cross-entropy (batch mean) and Adam. The torch step is the same network written
with ``torch.nn.functional`` (conv2d, max_pool2d, cross_entropy) and ``torch.optim.Adam``
from the same initial weights. Both run on one CPU thread (BLAS and torch), so the ratio
compares the kernels and not how many cores a shared machine happens to give; the
torch backend of catgrad is timed too when it is available.

The variants take turns within each round; each round's ratio is taken between times
measured within the same seconds, and the median over the rounds is reported with their
range.

Run: ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=134217728 python
benchmarks/bench_cnn.py --cpu-clock [--batch 128] [--steps 30] [--rounds 7]`` (the
allocator settings: see docs/benchmarks.md).
"""

from __future__ import annotations

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import catgrad as cg  # noqa: E402
from catgrad.frontend.module import load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples")]
from digits_cnn import torch_forward  # noqa: E402  (the same network in torch.nn.functional)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30, help="steps per round and variant")
    ap.add_argument("--rounds", type=int, default=7, help="rounds; the variants take turns within each")
    ap.add_argument("--cpu-clock", action="store_true",
                    help="time with the calling thread's CPU time (both run on that one thread), not the wall clock")
    args = ap.parse_args(argv)
    clock = time.thread_time if args.cpu_clock else time.perf_counter  # CPU time: waiting for a core is not counted
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

    p = {k: torch.tensor(v, requires_grad=True) for k, v in init.params.items()}
    topt = torch.optim.Adam(list(p.values()), lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(labels)

    def theirs():
        topt.zero_grad()
        F.cross_entropy(torch_forward(F, p, tx), ty).backward()
        topt.step()

    variants = {"catgrad numpy backend": ours, "torch eager": theirs}
    try:
        tstep = cg.compile(model, loss=loss, optimizer=opt, backend="torch")
        tbox = [tstep.init(0)]

        def ours_torch():
            tbox[0], _ = tstep(tbox[0], x, y)

        variants["catgrad torch backend"] = ours_torch
    except Exception as e:  # the torch backend may be missing (an older torch)
        print(f"catgrad torch backend: not available here ({type(e).__name__}: {e})")
    times = {k: [] for k in variants}  # ms per step, one entry per round
    for fn in variants.values():
        fn(), fn()
    for _ in range(args.rounds):
        for k, fn in variants.items():
            t = clock()
            for _ in range(args.steps):
                fn()
            times[k].append((clock() - t) / args.steps * 1e3)
    print(f"digits CNN training step, batch {args.batch}, float32, adam, 1 thread; {args.rounds} rounds of "
          f"{args.steps} steps, the variants taking turns ({'thread CPU time' if args.cpu_clock else 'wall clock'})")
    for k, ts in times.items():
        print(f"  {k + ':':24s} median {np.median(ts):7.2f} ms/step, best {min(ts):7.2f}")
    torch_t = np.array(times["torch eager"])
    for k, target in (("catgrad numpy backend", 2.0), ("catgrad torch backend", 1.0)):
        if k in times:
            r = np.array(times[k]) / torch_t  # each round's ratio: the two ran within the same seconds
            print(f"  {k} / torch eager: median {np.median(r):.2f} (rounds {r.min():.2f}-{r.max():.2f}; "
                  f"bests {min(times[k]) / torch_t.min():.2f}), target <= {target:g}")


if __name__ == "__main__":
    main()
