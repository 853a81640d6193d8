"""The compiled numpy step against the same step written by hand in numpy.

Models: the Iris MLP 4 -> 20 -> 3 (sigmoid layers, float64, full batch of 150) and
tanh MLPs of width 256 (float32, batch 128) with 4, 16 and 64 layers; squared-error
loss (``half_sum``), plain SGD. The hand-written step computes the same algorithm in
the same dtype (sigmoid as ``0.5 (1 + tanh(x / 2))``, as catgrad's kernel does) and
updates its parameters in place, as one would write it. Both run on one BLAS thread
(set below, before numpy loads).

Reported per model: microseconds per step (best of 5 rounds in which the two take turns), the ratio compiled/hand
(goal <= 1.05), and the bytes allocated per step after the first (tracemalloc, one
step, after warm-up) as a fraction of the parameters' size (goal <= 5%).

Run: ``python benchmarks/bench_numpy_step.py`` (``--quick`` for fewer steps).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

import catgrad as cg  # noqa: E402


def dense(name, i, o, dt, act):
    @cg.trace(dt[i, o], dt[o], dt["B", i])
    def body(W, b, x):
        y = x @ W + b.reshape(1, o).broadcast("B", o)
        return act(y) if act else y

    return cg.Para([cg.Param(f"{name}.W", dt[i, o]), cg.Param(f"{name}.b", dt[o], cg.init.zeros())], body)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def hand_step(Ws, bs, act, lr):
    """A hand-written SGD step for ``act(... act(x W1 + b1) ...) W_n + b_n`` (the last
    layer also through ``act`` when ``act`` is sigmoid), loss 1/2 sum (pred - y)^2."""
    last_act = act == "sigmoid"
    f = _sigmoid if act == "sigmoid" else np.tanh

    def step(x, y):
        hs = [x]
        for k, (W, b) in enumerate(zip(Ws, bs)):
            z = hs[-1] @ W + b
            hs.append(f(z) if (k < len(Ws) - 1 or last_act) else z)
        d = hs[-1] - y
        loss = 0.5 * np.sum(d * d)
        g = d * hs[-1] * (1.0 - hs[-1]) if last_act else d
        for k in range(len(Ws) - 1, -1, -1):
            gW = hs[k].T @ g
            gb = g.sum(axis=0)
            if k:
                h = hs[k]
                g = (g @ Ws[k].T) * (h * (1.0 - h) if act == "sigmoid" else 1.0 - h * h)
            Ws[k] -= lr * gW
            bs[k] -= lr * gb
        return loss

    return step


def timeit(fns, n, rounds=5, clock=time.thread_time):
    """Best time per call of each of ``fns``, in microseconds; the functions take turns
    within every round, so a change of load on a shared machine hits them alike. The
    clock is the calling thread's CPU time: with one BLAS thread that is all the work,
    and time spent waiting for a core on a busy machine is not counted."""
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t = clock()
            for _ in range(n):
                fn()
            best[k] = min(best[k], (clock() - t) / n)
    return [b * 1e6 for b in best]


def allocated(fn):
    """Bytes allocated (peak over one call) by ``fn`` after it has run twice."""
    fn()
    fn()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def bench(name, sizes, dt, act, batch, n, **opts):
    cgact = cg.ops.sigmoid if act == "sigmoid" else cg.ops.tanh
    layers = [dense(f"l{k}", a, b, dt, cgact if (k < len(sizes) - 2 or act == "sigmoid") else None)
              for k, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    model = layers[0]
    for layer in layers[1:]:
        model = model >> layer
    lr = 0.01
    t0 = time.perf_counter()
    step = cg.compile(model, loss=cg.loss.mse(reduction="half_sum"), optimizer=cg.optim.sgd(lr), **opts)
    state = step.init(0)
    npdt = np.dtype(dt.numpy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, sizes[0])).astype(npdt)
    y = np.eye(sizes[-1], dtype=npdt)[rng.integers(0, sizes[-1], batch)]
    box = [state]

    def ours():
        box[0], _ = step(box[0], x, y)

    ours()
    t_compile = time.perf_counter() - t0
    nlayers = len(sizes) - 1
    Ws = [np.array(state.params[f"l{k}.W"]) for k in range(nlayers)]
    bs = [np.array(state.params[f"l{k}.b"]) for k in range(nlayers)]
    hand = hand_step(Ws, bs, act, npdt.type(lr))
    param_bytes = sum(w.nbytes + b.nbytes for w, b in zip(Ws, bs))
    t_ours, t_hand = timeit([ours, lambda: hand(x, y)], n)
    a_ours, a_hand = allocated(ours), allocated(lambda: hand(x, y))
    return dict(name=name, ours=t_ours, hand=t_hand, ratio=t_ours / t_hand, alloc=a_ours, alloc_hand=a_hand,
                frac=a_ours / param_bytes, params=param_bytes, compile_ms_per_layer=1e3 * t_compile / nlayers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--donate", action="store_true", help="compile with donate=True (parameters updated in place)")
    args = ap.parse_args()
    q = 5 if args.quick else 1
    opts = {"donate": True} if args.donate else {}
    cases = [("iris 4-20-3", (4, 20, 3), cg.f64, "sigmoid", 150, 4000 // q)]
    for depth in (4, 16, 64):
        cases.append((f"mlp256 depth {depth}", (256,) * (depth + 1), cg.f32, "tanh", 128, max(10, 4000 // depth // q)))
    print(f"{'model':<18}{'compiled us':>12}{'hand us':>10}{'ratio':>7}{'alloc/step':>12}{'hand alloc':>12}"
          f"{'% params':>9}{'compile ms/layer':>18}")
    for name, sizes, dt, act, batch, n in cases:
        r = bench(name, sizes, dt, act, batch, n, **opts)
        print(f"{r['name']:<18}{r['ours']:>12.1f}{r['hand']:>10.1f}{r['ratio']:>7.2f}{r['alloc']:>12,}"
              f"{r['alloc_hand']:>12,}{100 * r['frac']:>8.1f}%{r['compile_ms_per_layer']:>18.1f}")


if __name__ == "__main__":
    main()
