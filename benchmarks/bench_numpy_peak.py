"""Peak memory of the numpy backend's training step against torch eager's, same model.

The model is the torch benchmark's MLP (``bench_torch_step.catgrad_mlp``: 64 inputs,
``depth`` relu layers of width 256, 10 outputs, float32, batch 128, softmax cross-entropy,
Adam). Both sides count everything the step owns, from before it is built: parameters,
optimizer state, gradients, activations, planned buffers and temporaries; the batches are
made beforehand and are not counted.

- numpy (the default step and ``donate=True``): the arrays live after the steps, in numpy's
  own tracemalloc domain (so the compiled program's Python objects do not count, as torch's
  allocator does not see them either), plus the most one step allocates of anything;
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
    """MiB: an upper bound of the most bytes of arrays live at once while the numpy step
    takes its steps: the arrays it keeps (numpy's tracemalloc domain, counted from before
    ``cg.compile``: parameters, optimizer state, planned buffers, output rings) plus the
    most any one step allocates beyond them (everything tracemalloc sees, Python objects
    included, hence an upper bound)."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(warmup + steps, bt.BATCH, bt.N_IN)).astype(np.float32)
    ys = np.eye(bt.N_OUT, dtype=np.float32)[rng.integers(0, bt.N_OUT, (warmup + steps, bt.BATCH))]
    tracemalloc.start()
    step = cg.compile(bt.catgrad_mlp(depth), loss=cg.loss.softmax_cross_entropy(reduction="mean"),
                      optimizer="adam(lr=1e-3)", donate=donate)
    state = step.init(seed=0)
    transient = 0
    for i, (x, y) in enumerate(zip(xs, ys)):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        state, _ = step(state, x, y)
        if i >= warmup:
            transient = max(transient, tracemalloc.get_traced_memory()[1] - before)
    arrays = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)])
    tracemalloc.stop()
    return (sum(t.size for t in arrays.traces) + transient) / 2**20


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
