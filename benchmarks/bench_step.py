"""Compiled numpy step vs its peers, measured in the same run.

For a sigmoid MLP 4 -> 20 -> 3 (the CFGBL Iris shape) and a 64 -> 64 -> 10 MLP, with
sgd and with adam, per-example (batch 1) and batch 32, this times

- ``cg.compile(...)`` on numpy (the Program backend),
- ``cg.evaluate`` of the very same step diagram (the reference interpreter),
- an equivalent hand-written torch training step (eager, CPU, float64, 1 thread),

and prints microseconds per step and the ratios. Run: ``python benchmarks/bench_step.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import catgrad as cg


def dense(name, i, o, act=True):
    @cg.trace(cg.f64[i, o], cg.f64[o], cg.f64["B", i])
    def body(W, b, x):
        y = x @ W + b.reshape(1, o).broadcast("B", o)
        return cg.ops.sigmoid(y) if act else y

    return cg.Para([cg.Param(f"{name}.W", cg.f64[i, o]), cg.Param(f"{name}.b", cg.f64[o], cg.init.zeros())], body)


def timeit(fn, n, rounds=3):
    """Microseconds per call of ``fn``: the best of ``rounds`` runs of ``n`` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def bench(sizes, opt_name, batch, n):
    (i, h, o) = sizes
    model = dense("l1", i, h) >> dense("l2", h, o)
    opt = cg.optim.sgd(0.01) if opt_name == "sgd" else cg.optim.adam(1e-3)
    step = cg.compile(model, loss=cg.loss.mse(reduction="half_sum"), optimizer=opt)
    state = step.init(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(batch, i)), np.eye(o)[rng.integers(0, o, batch)]

    box = [state]

    def ours():
        box[0], _ = step(box[0], x, y)

    t_ours = timeit(ours, n)
    args = [*state.params.values(), *state.opt_state.values(), x, y]
    t_eval = timeit(lambda: cg.evaluate(step.diagram, *args), max(1, n // 10))

    torch.set_num_threads(1)
    tp = [torch.tensor(v, requires_grad=True) for v in state.params.values()]
    W2, b2, W1, b1 = tp
    topt = torch.optim.SGD(tp, lr=0.01) if opt_name == "sgd" else torch.optim.Adam(tp, lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def theirs():
        pred = torch.sigmoid(torch.sigmoid(tx @ W1 + b1) @ W2 + b2)
        loss = 0.5 * ((pred - ty) ** 2).sum()
        topt.zero_grad()
        loss.backward()
        topt.step()

    t_torch = timeit(theirs, n)
    return t_ours, t_eval, t_torch, len(step.program.specialise(tuple(np.shape(a) for a in args)).program)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    args = ap.parse_args()
    print(f"{'model':<14}{'opt':<6}{'batch':>6}{'instrs':>8}{'compiled us':>13}{'evaluate us':>13}{'torch us':>10}"
          f"{'eval/comp':>11}{'torch/comp':>11}")
    for sizes in [(4, 20, 3), (64, 64, 10)]:
        for opt in ("sgd", "adam"):
            for batch in (1, 32):
                ours, ev, th, k = bench(sizes, opt, batch, args.n)
                name = "-".join(map(str, sizes))
                print(f"{name:<14}{opt:<6}{batch:>6}{k:>8}{ours:>13.1f}{ev:>13.1f}{th:>10.1f}{ev / ours:>11.1f}"
                      f"{th / ours:>11.1f}")


if __name__ == "__main__":
    main()
