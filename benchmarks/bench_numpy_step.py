"""The compiled numpy step against the same step written by hand in numpy.

Models: the Iris MLP 4 -> 20 -> 3 (sigmoid layers, float64, full batch of 150) and
tanh MLPs of width 256 (float32, batch 128) with 4, 16 and 64 layers, squared-error
loss (``half_sum``) and plain SGD; and the digits MLP 64 -> 256 -> 256 -> 10 (relu,
float32, batch 128) with softmax cross-entropy (batch mean) and Adam. The hand-written
steps compute the same algorithm in the same dtype (sigmoid as scipy's ``expit``,
as catgrad's kernel does; Adam as torch.optim.Adam). Both run on one BLAS thread (set
below, before numpy loads).

Two fair pairs: catgrad's default step hands back new parameter arrays (an array it
returned is never overwritten while the caller holds it), so it is set against the
hand-written step that also makes new arrays (``W = W - lr gW``); with ``donate=True``
it writes into the state it is given, so it is set against the hand-written step that
updates in place (``W -= lr gW``), the way one writes it by hand.

A third catgrad form, ``step.update(state, x, y)``, advances the state itself (the
donating program underneath) and returns only the loss, as ``optimizer.step()`` does in
torch; it is set against the hand-written in-place step too.

Reported per model: microseconds per step (thread CPU time, best of 5 rounds in which
all five take turns), the ratios (goal <= 1.05), the bytes allocated per step after
the first (tracemalloc peak over one step, after warm-up) as a fraction of the
parameters' size (goal <= 5%), the same for the compiled program alone ("program":
without the step's new ``TrainState``, its dicts and the loss as a float), and the CPU time from ``cg.compile`` to the end of the
first step (building, optimizing, specialising, one step) per layer (goal <= 5 ms).

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
from scipy.special import expit  # noqa: E402

import catgrad as cg  # noqa: E402


def dense(name, i, o, dt, act):
    @cg.trace(dt[i, o], dt[o], dt["B", i])
    def body(W, b, x):
        y = x @ W + b.reshape(1, o).broadcast("B", o)
        return act(y) if act else y

    return cg.Para([cg.Param(f"{name}.W", dt[i, o]), cg.Param(f"{name}.b", dt[o], cg.init.zeros())], body)


def _sigmoid(x):
    return expit(x)


def hand_step(Ws, bs, act, lr, inplace=True):
    """A hand-written SGD step for ``act(... act(x W1 + b1) ...) W_n + b_n`` (the last
    layer also through ``act`` when ``act`` is sigmoid), loss 1/2 sum (pred - y)^2.
    ``inplace``: update the arrays in ``Ws``, ``bs``; else put new arrays there."""
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
            if inplace:
                Ws[k] -= lr * gW
                bs[k] -= lr * gb
            else:
                Ws[k] = Ws[k] - lr * gW
                bs[k] = bs[k] - lr * gb
        return loss

    return step


def hand_adam_step(Ws, bs, lr, inplace=True, b1=0.9, b2=0.999, eps=1e-8):
    """A hand-written step of a relu MLP (last layer linear), softmax cross-entropy
    averaged over the batch, and Adam as torch.optim.Adam computes it."""
    ps = [a for pair in zip(Ws, bs) for a in pair]
    ms = [np.zeros_like(p) for p in ps]
    vs = [np.zeros_like(p) for p in ps]
    t = [0]
    dt = Ws[0].dtype.type

    def step(x, y):
        hs = [x]
        for k, (W, b) in enumerate(zip(Ws, bs)):
            z = hs[-1] @ W + b
            hs.append(np.maximum(z, 0) if k < len(Ws) - 1 else z)
        z = hs[-1]
        zmax = z.max(axis=1, keepdims=True)
        e = np.exp(z - zmax)
        se = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(se[:, 0]) + zmax[:, 0] - (y * z).sum(axis=1))
        g = (e / se - y) * dt(1.0 / len(x))
        grads = [None] * len(ps)
        for k in range(len(Ws) - 1, -1, -1):
            grads[2 * k], grads[2 * k + 1] = hs[k].T @ g, g.sum(axis=0)
            if k:
                g = (g @ Ws[k].T) * (hs[k] > 0)
        t[0] += 1
        c1, c2 = dt(1 - b1 ** t[0]), dt(np.sqrt(1 - b2 ** t[0]))
        for i, gr in enumerate(grads):
            m, v = ms[i], vs[i]
            if inplace:
                m *= dt(b1)
                m += dt(1 - b1) * gr
                v *= dt(b2)
                v += dt(1 - b2) * gr * gr
                ps[i] -= dt(lr) / c1 * m / (np.sqrt(v) / c2 + dt(eps))
            else:
                ms[i] = m = dt(b1) * m + dt(1 - b1) * gr
                vs[i] = v = dt(b2) * v + dt(1 - b2) * gr * gr
                ps[i] = ps[i] - dt(lr) / c1 * m / (np.sqrt(v) / c2 + dt(eps))
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


def build(sizes, dt, act):
    """Dense layers ``l0, l1, ...``; ``act`` after each but the last (after the last too for sigmoid)."""
    cgact = {"sigmoid": cg.ops.sigmoid, "tanh": cg.ops.tanh, "relu": cg.ops.relu}[act]
    layers = [dense(f"l{k}", a, b, dt, cgact if (k < len(sizes) - 2 or act == "sigmoid") else None)
              for k, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    model = layers[0]
    for layer in layers[1:]:
        model = model >> layer
    return model


def bench(name, sizes, dt, act, batch, n, adam=False):
    model = build(sizes, dt, act)
    lr = 1e-3 if adam else 0.01
    loss = cg.loss.softmax_cross_entropy(reduction="mean") if adam else cg.loss.mse(reduction="half_sum")
    opt = cg.optim.adam(lr) if adam else cg.optim.sgd(lr)
    npdt = np.dtype(dt.numpy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, sizes[0])).astype(npdt)
    y = np.eye(sizes[-1], dtype=npdt)[rng.integers(0, sizes[-1], batch)]
    nlayers = len(sizes) - 1
    fns, compile_ms = [], None
    for donate in (False, True):
        t0 = time.process_time()  # CPU time: on a busy machine the wall clock counts the waits too
        step = cg.compile(model, loss=loss, optimizer=opt, donate=donate)
        box = [step.init(0)]

        def ours(step=step, box=box):
            box[0], _ = step(box[0], x, y)

        ours()
        if not donate:
            compile_ms = 1e3 * (time.process_time() - t0) / nlayers
            init = step.init(0).params
            s0 = step.init(0)
            args = ([s0.params[n] for n in step.param_names] + [s0.opt_state[k] for k in step.opt_keys]
                    + [x, y])
            held = [None]

            def program_only(run=step.program, args=args, held=held):  # no TrainState, dicts, float
                held[0] = None
                held[0] = run(*args)

            prog_alloc = allocated(program_only)
        fns.append(ours)
    for inplace in (False, True):
        Ws = [np.array(init[f"l{k}.W"]) for k in range(nlayers)]
        bs = [np.array(init[f"l{k}.b"]) for k in range(nlayers)]
        h = hand_adam_step(Ws, bs, lr, inplace) if adam else hand_step(Ws, bs, act, npdt.type(lr), inplace)
        fns.append(lambda h=h: h(x, y))
    state = step.init(0)
    state.step = 10**6  # (from here on the step counter is a new int every step)
    fns.append(lambda: step.update(state, x, y))  # the state advanced in place
    param_bytes = sum(a.nbytes for a in init.values())
    t = timeit(fns, n)
    a = [allocated(f) for f in fns]
    return dict(name=name, t=t, alloc=a, params=param_bytes, compile_ms_per_layer=compile_ms, prog_alloc=prog_alloc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    q = 5 if args.quick else 1
    cases = [("iris 4-20-3", (4, 20, 3), cg.f64, "sigmoid", 150, 4000 // q, False),
             ("digits mlp, adam", (64, 256, 256, 10), cg.f32, "relu", 128, 1000 // q, True)]
    for depth in (4, 16, 64):
        cases.append((f"mlp256 depth {depth}", (256,) * (depth + 1), cg.f32, "tanh", 128, max(10, 4000 // depth // q),
                      False))
    print("us per step (thread CPU time); ours: the default step / donate=True / step.update (in place);"
          " hand: new arrays / in place")
    print(f"{'model':<18}{'ours':>9}{'donate':>9}{'update':>9}{'hand new':>10}{'hand inpl':>10}{'ratio':>7}"
          f"{'ratio d':>8}{'ratio u':>8}{'alloc/step':>12}{'donate':>9}{'update':>8}{'hand new':>11}"
          f"{'% params':>9}{'update %':>9}{'program':>9}{'ms/layer':>9}")
    for name, sizes, dt, act, batch, n, adam in cases:
        r = bench(name, sizes, dt, act, batch, n, adam)
        t, a = r["t"], r["alloc"]
        print(f"{r['name']:<18}{t[0]:>9.1f}{t[1]:>9.1f}{t[4]:>9.1f}{t[2]:>10.1f}{t[3]:>10.1f}{t[0] / t[2]:>7.2f}"
              f"{t[1] / t[3]:>8.2f}{t[4] / t[3]:>8.2f}{a[0]:>12,}{a[1]:>9,}{a[4]:>8,}{a[2]:>11,}"
              f"{100 * a[0] / r['params']:>8.1f}%{100 * a[4] / r['params']:>8.1f}%{r['prog_alloc']:>9,}"
              f"{r['compile_ms_per_layer']:>9.1f}")


if __name__ == "__main__":
    main()
