"""Benchmark: build an L-layer dense MLP diagram by repeated ``>>``, flatten it, take R.

Each layer is ``x |-> act(x @ W + bcast b)`` on a symbolic batch ``B`` and width 64,
a Para with parameters (W, b). Timed separately and together, for L = 8, 32, 128, 512:

- build:   composing the L layers with ``>>`` (Para composition);
- flatten: the first ``.graph`` of the composite body (the tree is flattened once);
- R:       ``cg.R`` of the composite body (a new diagram, flattened as part of R).

The peer, measured in the same run, is torch.fx symbolic tracing of the same MLP
written as a torch.nn.Module (trace + recompile), a standard "build a static graph
of a model" operation. A second, naive peer rebuilds the flat graph on every ``>>``
(the O(L^2) strategy that the lazy tree avoids).

Per-layer times should be flat in L (linear growth); a least-squares slope of
total time against L (ms per layer) is printed.

Run:  python benchmarks/bench_build_r.py [--width 64] [--layers 8 32 128 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

import catgrad as cg


def layer(width: int, act: str = "tanh") -> cg.Para:
    x_t = cg.f32["B", width]
    W_t, b_t = cg.f32[width, width], cg.f32[width]

    @cg.trace(W_t, b_t, x_t)
    def body(W, b, x):
        return getattr(cg.ops, act)(x @ W + b.broadcast("B", width))

    return cg.Para([cg.Param("W", W_t, cg.init.glorot()), cg.Param("b", b_t, cg.init.zeros())], body)


def time_catgrad(L: int, width: int) -> dict:
    t0 = time.perf_counter()
    layers = [layer(width) for _ in range(L)]
    model = layers[0]
    for f in layers[1:]:
        model = model >> f
    t1 = time.perf_counter()
    g = model.body.graph
    t2 = time.perf_counter()
    r = cg.R(model)
    t3 = time.perf_counter()
    assert len(g) == 4 * L and len(r.dom) == 2 * L + 2
    return {"build": t1 - t0, "flatten": t2 - t1, "R": t3 - t2, "total": t3 - t0, "boxes": len(g), "R boxes": len(r.graph)}


def time_naive(L: int, width: int) -> float:
    """The same composition, but flattening the whole graph again after every ``>>``."""
    t0 = time.perf_counter()
    model = layer(width)
    model.body.graph
    for _ in range(L - 1):
        model = model >> layer(width)
        model = cg.Para(model.params, cg.Diagram(model.body.graph))
    return time.perf_counter() - t0


def time_torch_fx(L: int, width: int) -> float:
    import torch
    import torch.fx

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(L))

        def forward(self, x):
            for lin in self.layers:
                x = torch.tanh(lin(x))
            return x

    m = MLP()
    t0 = time.perf_counter()
    gm = torch.fx.symbolic_trace(m)
    t1 = time.perf_counter()
    assert len([n for n in gm.graph.nodes if n.op == "call_module"]) == L
    return t1 - t0


def best(fn, repeat, gc_off=True):
    """Best of ``repeat`` runs; like timeit, the garbage collector is paused while timing
    (its passes over all live objects otherwise add noise that grows with L)."""
    runs = []
    for _ in range(repeat):
        gc.collect()
        if gc_off:
            gc.disable()
        try:
            runs.append(fn())
        finally:
            gc.enable()
    if isinstance(runs[0], dict):
        return min(runs, key=lambda r: r["total"])
    return min(runs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, nargs="+", default=[8, 32, 128, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gc", action="store_true", help="leave the garbage collector on while timing")
    ap.add_argument("--naive-max", type=int, default=128, help="skip the O(L^2) peer above this L")
    args = ap.parse_args(argv)

    time_catgrad(8, args.width)  # warm up imports and caches outside the timings
    time_torch_fx(8, args.width)
    rows = []
    for L in args.layers:
        c = best(lambda: time_catgrad(L, args.width), args.repeat, not args.gc)
        fx = best(lambda: time_torch_fx(L, args.width), args.repeat, not args.gc)
        naive = best(lambda: time_naive(L, args.width), 1, not args.gc) if L <= args.naive_max else float("nan")
        rows.append((L, c, fx, naive))

    ms = lambda s, L: 1e3 * s / L  # noqa: E731
    gc_note = "gc on" if args.gc else "gc paused while timing"
    print(f"width {args.width}, symbolic batch, best of {args.repeat}, {gc_note}; times in ms per layer")
    hdr = f"{'L':>5} {'boxes':>6} {'R boxes':>8} {'build':>7} {'flatten':>8} {'R':>7} {'total':>7} {'torch.fx':>9} {'ratio':>6} {'naive>>':>8}"
    print(hdr)
    print("-" * len(hdr))
    for L, c, fx, naive in rows:
        print(
            f"{L:>5} {c['boxes']:>6} {c['R boxes']:>8} {ms(c['build'], L):>7.3f} {ms(c['flatten'], L):>8.3f} "
            f"{ms(c['R'], L):>7.3f} {ms(c['total'], L):>7.3f} {ms(fx, L):>9.3f} {fx / c['total']:>6.2f} "
            f"{ms(naive, L):>8.3f}"
        )
    Ls = np.array([r[0] for r in rows], dtype=float)
    tot = np.array([1e3 * r[1]["total"] for r in rows])
    slope, intercept = np.polyfit(Ls, tot, 1)
    print(f"least-squares fit: total ms = {slope:.3f} * L + {intercept:.2f}   (goal: <= 5 ms per layer)")
    per_layer = tot / Ls
    print(f"per-layer total, largest / smallest L: {per_layer[-1] / per_layer[0]:.2f}  (about 1 means linear growth)")
    print("ratio = torch.fx trace time / catgrad build+flatten+R time (higher is better for catgrad)")


if __name__ == "__main__":
    main()
