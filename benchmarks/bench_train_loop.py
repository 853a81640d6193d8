"""The training loop's own cost: ``catgrad.train.fit`` against a bare Python loop over the
same compiled step (same batches), on the CFGBL Iris protocol (per example) and on
digits (batch 32, Adam). The difference is what the loop adds: row gathering, metrics,
the NaN check, and (in the third column) an end-of-epoch checkpoint.

Run: python benchmarks/bench_train_loop.py
"""

import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import catgrad as cg  # noqa: E402
from catgrad import data  # noqa: E402
from catgrad.train import epoch_order, fit  # noqa: E402
from digits_adam import mlp as digits_mlp  # noqa: E402
from iris_cfgbl import model as iris_model  # noqa: E402


def bare(step, ds, epochs, batch, seed, batched):
    state, X, Y = step.init(seed=seed), ds.x, ds.targets()
    for e in range(epochs):
        order = epoch_order(seed, e, len(X))
        for i in range(0, len(X), batch):
            rows = order[i : i + batch]
            state, out = step(state, X[rows], Y[rows]) if batched else step(state, X[rows[0]], Y[rows[0]])
    return state


def best(fn, reps=5):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    iris = data.load("iris")
    digits, _ = data.prepare("digits", test_fraction=0.2, seed=0)
    cases = [
        ("iris 4-20-3 per example, sgd", cg.compile(iris_model([4, 20, 3], 0.01), loss=cg.loss.mse(reduction="half_sum"),
                                                   optimizer=cg.optim.sgd(lr=0.01)), iris, 20, 1, False),
        ("digits 64-64-10 batch 32, adam", cg.compile(digits_mlp(), loss=cg.loss.softmax_cross_entropy(reduction="mean"),
                                                     optimizer=cg.optim.adam(lr=1e-3)), digits, 10, 32, True),
    ]
    print("| case | steps | bare loop µs/step | fit µs/step | fit + checkpoint/epoch µs/step | fit / bare |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name, step, ds, epochs, batch, batched in cases:
            n = epochs * -(-len(ds) // batch)
            t_bare = best(lambda: bare(step, ds, epochs, batch, 0, batched))
            t_fit = best(lambda: fit(step, ds, epochs=epochs, batch_size=batch, seed=0))
            t_ck = best(lambda: fit(step, ds, epochs=epochs, batch_size=batch, seed=0, checkpoint=os.path.join(d, "c.npz")))
            a = fit(step, ds, epochs=epochs, batch_size=batch, seed=0).state
            b = bare(step, ds, epochs, batch, 0, batched)
            assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)  # same computation
            print(f"| {name} | {n} | {1e6 * t_bare / n:.1f} | {1e6 * t_fit / n:.1f} | {1e6 * t_ck / n:.1f} "
                  f"| {t_fit / t_bare:.2f} |")


if __name__ == "__main__":
    main()
