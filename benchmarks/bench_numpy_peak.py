"""Peak memory of the numpy backend's training step against torch eager's, same model.

The model is the torch benchmark's MLP (``bench_torch_step.catgrad_mlp``: 64 inputs,
``depth`` relu layers of width 256, 10 outputs, float32, batch 128, softmax cross-entropy,
Adam). Both sides count everything the step owns, from before it is built: parameters,
optimizer state, gradients, activations, planned buffers and temporaries; the batches are
made beforehand and are not counted.

- numpy: tracemalloc's peak (numpy reports its array memory to tracemalloc), from before
  ``cg.compile`` to the end of the measured steps, the default step and ``donate=True``;
- torch eager, ``nn.Module`` + ``Adam(foreach=True)``: the most bytes live in torch's CPU
  allocator (``bench_torch_step.peak_memory``, a fresh process, ``torch.profiler``).

Run: python benchmarks/bench_numpy_peak.py [--depths 2 4 16] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import bench_torch_step as bt  # noqa: E402
import catgrad as cg  # noqa: E402


def numpy_peak(depth: int, steps: int, donate: bool, warmup: int = 3) -> float:
    """MiB: the most bytes live at once while the numpy step is built and takes its steps."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(warmup + steps, bt.BATCH, bt.N_IN)).astype(np.float32)
    ys = np.eye(bt.N_OUT, dtype=np.float32)[rng.integers(0, bt.N_OUT, (warmup + steps, bt.BATCH))]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step = cg.compile(bt.catgrad_mlp(depth), loss=cg.loss.softmax_cross_entropy(reduction="mean"),
                      optimizer="adam(lr=1e-3)", donate=donate)
    state = step.init(seed=0)
    for x, y in zip(xs, ys):
        state, _ = step(state, x, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 4, 16])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    print("peak memory per training step (MiB), float32, batch 128, Adam, CPU")
    print(f"{'depth':>5}{'torch eager':>13}{'numpy':>9}{'donate':>9}{'ratio':>8}{'ratio d':>9}")
    for depth in args.depths:
        a = bt.peak_memory("a", depth, "cpu", args.steps)
        n, d = numpy_peak(depth, args.steps, False), numpy_peak(depth, args.steps, True)
        print(f"{depth:>5}{a:>13.3f}{n:>9.3f}{d:>9.3f}{n / a:>8.2f}{d / a:>9.2f}")


if __name__ == "__main__":
    main()
