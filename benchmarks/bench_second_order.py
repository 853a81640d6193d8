"""Second-order costs as ratios measured in the same run, on the digits MLP
(64 -> 32 -> 32 -> 10, tanh, softmax cross-entropy, float64, batch 256, numpy backend):

- ``cg.hvp(f)`` against ``cg.grad(f)`` for f = model >> loss (target: hvp at most 4x);
- the compiled step with ``hypergradient(adam)`` against the plain adam step (target: at most 3x),
  and, for scale, ``hypergradient(clip_norm(1) >> adam)`` (a whole-model stage inside) and
  ``sam(adam)`` (two gradients per step) against the same;
- for scale, torch's own ``hvp`` against its gradient on the same MLP (eager, 1 thread).

Run: ``python benchmarks/bench_second_order.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

import catgrad as cg
from catgrad.compiler.numpy_backend import compile_numpy
from catgrad.compiler.pipeline import prepare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import timeit as _timeit  # noqa: E402

B = 256


def dense(name, i, o, act=True):
    @cg.trace(cg.f64[i, o], cg.f64[o], cg.f64[B, i])
    def body(W, b, x):
        y = x @ W + b.reshape(1, o).broadcast(B, o)
        return cg.ops.tanh(y) if act else y

    return cg.Para([cg.Param(f"{name}.W", cg.f64[i, o]), cg.Param(f"{name}.b", cg.f64[o], cg.init.zeros())], body)


def timeit(fn, n=50):
    """Milliseconds per call, best of 5 rounds (bench_step's timer)."""
    return _timeit(fn, n, rounds=5) / 1e3


def main():
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    x, t = X[:B] / 16.0, np.eye(10)[y[:B]]
    model = dense("l1", 64, 32) >> dense("l2", 32, 32) >> dense("l3", 32, 10, act=False)
    f = (model >> cg.loss.softmax_cross_entropy(cg.f64[B, 10])).diagram  # (label, params..., x) -> loss
    ps = model.init(0)
    ins = [t, *ps, x]
    vs = [np.random.default_rng(1).normal(size=a.shape) for a in ins]
    g, h = compile_numpy(prepare(cg.grad(f))), compile_numpy(prepare(cg.hvp(f)))
    t_g, t_h = timeit(lambda: g(*ins)), timeit(lambda: h(*ins, *vs))
    print(f"grad {t_g:.3f} ms   hvp {t_h:.3f} ms   ratio {t_h / t_g:.2f}x (target <= 4x)")

    tx = [torch.tensor(a) for a in ins]
    tv = [torch.tensor(a) for a in vs]
    fn = lambda *a: cg.evaluate(f, *a, backend="torch")[0]  # noqa: E731

    def tgrad():
        a = [u.clone().requires_grad_() for u in tx]
        torch.autograd.grad(fn(*a), a)

    tt_g = timeit(tgrad, 20)
    tt_h = timeit(lambda: torch.autograd.functional.hvp(fn, tuple(tx), tuple(tv)), 20)
    print(f"torch eager: grad {tt_g:.3f} ms   hvp {tt_h:.3f} ms   ratio {tt_h / tt_g:.2f}x")

    steps = {}
    O = cg.optim
    for name, opt in [("adam", O.adam(1e-3)), ("hypergradient(adam)", O.hypergradient(O.adam(1e-3), 1e-7)),
                      ("hypergradient(clip_norm >> adam)", O.hypergradient(O.clip_norm(1.0) >> O.adam(1e-3), 1e-7)),
                      ("sam(adam)", O.sam(O.adam(1e-3), rho=0.05))]:
        step = cg.compile(model, loss=cg.loss.softmax_cross_entropy, optimizer=opt)
        box = [step.init(0)]

        def run():
            box[0], _ = step(box[0], x, t)

        steps[name] = timeit(run)
    for name, ms in steps.items():
        if name != "adam":
            target = " (target <= 3x)" if name == "hypergradient(adam)" else ""
            print(f"step: adam {steps['adam']:.3f} ms   {name} {ms:.3f} ms   ratio {ms / steps['adam']:.2f}x{target}")


if __name__ == "__main__":
    main()
