"""Bit-parallel circuit evaluation against the machine's copy bandwidth, and RDA training
throughput against the float MLP step, measured in the same run.

1. A random netlist of G two-input gates (AND/OR/XOR, operands drawn from the inputs and
   the earlier gates) over N samples packed 64 to a uint64 word. One gate evaluation on
   64 samples reads two words and writes one: 24 bytes. The ceiling is therefore
   ``copy bandwidth / 24 * 64`` gate-evaluations per second, with the copy bandwidth
   measured here by ``np.copyto`` on arrays far larger than the caches (bytes read plus
   bytes written) immediately before each timed evaluation, so that every ratio compares
   two measurements taken under the same load; the median ratio over the trials is the
   figure, on the process's CPU clock (on a shared machine the wall clock also counts the
   time the process waits for a core), with the wall-clock ratio next to it. Printed: gate-evaluations/s of :class:`catgrad.circuit.Evaluator`
   for several chunk sizes, and of a plain numpy loop (one ufunc per gate over the whole
   sample axis, every net kept), as fractions of the ceiling.
2. RDA on the bit-parallel evaluator (examples/rda.cat, digits 0 vs 1) in examples per
   second, one example per step and batches of 64 (vote), against ``cg.compile``'s float
   MLP step (64 -> 32 -> 2, sgd) on the same examples, per example and batch 32.

Run: ``python benchmarks/bench_circuit.py [--gates 10000] [--samples 1000000]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import catgrad as cg
from catgrad.circuit import Evaluator, Netlist, Port

ROOT = Path(__file__).resolve().parent.parent


def random_circuit(n_gates: int, n_in: int = 64, n_out: int = 64, seed: int = 0) -> Netlist:
    rng = np.random.default_rng(seed)
    nl = Netlist([Port("x", n_in)], [Port("y", n_out)])
    kinds = ("and", "or", "xor")
    for _ in range(n_gates):
        nl.add(kinds[int(rng.integers(3))], int(rng.integers(2, nl.n_nets)), int(rng.integers(2, nl.n_nets)))
    nl.outputs = list(range(nl.n_nets - n_out, nl.n_nets))
    return nl


def best_of(fn, repeat=3, clock=time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def copy_bandwidth(nbytes: int = 512 << 20, clock=time.perf_counter) -> float:
    src = np.ones(nbytes // 8, np.uint64)
    dst = np.empty_like(src)
    t = best_of(lambda: np.copyto(dst, src), 5, clock)
    return 2 * nbytes / t


def plain_loop(nl: Netlist, x: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
    """The peer: every net kept in one (nets, words) array ``v`` (allocated once by the caller,
    so its page faults are not timed), one ufunc per gate."""
    v = np.empty((nl.n_nets, x.shape[1]), np.uint64) if v is None else v
    v[0], v[1] = 0, np.uint64(0xFFFFFFFFFFFFFFFF)
    v[2:nl.first_gate] = x
    fn = {"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}
    base = nl.first_gate
    for j, (k, a, b) in enumerate(nl.gates):
        fn[k](v[a], v[b], out=v[base + j])
    return v[nl.outputs]


def paired(fn, trials: int) -> list:
    """``trials`` rows (copy bandwidth, evaluation time), each pair measured back to back so
    that it sees the same load on a shared machine, on two clocks: wall time and the
    process's CPU time (which leaves out the time the process waits for a core; both
    operations are single-threaded). The ratios are taken within each pair."""
    out = []
    for _ in range(trials):
        row = []
        for clock in (time.perf_counter, time.process_time):
            row += [copy_bandwidth(clock=clock), best_of(fn, 1, clock)]
        out.append(row)
    return np.array(out)


def bench_eval(gates: int, samples: int, trials: int = 7) -> None:
    nl = random_circuit(gates)
    words = -(-samples // 64)
    x = np.random.default_rng(1).integers(0, 2**63, size=(nl.n_inputs, words), dtype=np.uint64)
    evals = gates * words * 64
    rows = []
    ref = None
    for chunk in (256, 4096, None):
        ev = Evaluator(nl, chunk_words=chunk)
        y = ev.packed(x)
        ref = y if ref is None else ref
        assert np.array_equal(y, ref)
        rows.append((f"catgrad Evaluator, chunk {ev.chunk_words} words{'' if chunk else ' (default)'}, "
                     f"{ev.n_slots} buffers", paired(lambda: ev.packed(x), trials)))
    if nl.n_nets * words * 8 < 6 << 30:
        v = np.zeros((nl.n_nets, words), np.uint64)  # touched once here
        assert np.array_equal(plain_loop(nl, x, v), ref)
        rows.append(("plain numpy loop, all nets kept (one preallocated array)", paired(lambda: plain_loop(nl, x, v), trials)))
        del v
    print(f"random netlist: {gates} two-input gates, {samples} samples ({words} words); {trials} trials per row, "
          "each a copy-bandwidth measurement followed at once by one evaluation, on the wall clock and on the "
          "process's CPU clock")
    print("| evaluator | copy GB/s, CPU clock (median) | G gate-evals/s, CPU clock (median) | fraction of ceiling, "
          "CPU clock: median (min-max) | fraction of ceiling, wall clock: median (min-max) |")
    print("|---|---|---|---|---|")
    for name, m in rows:
        # the ceiling: 24 bytes per 64 gate-evaluations at the copy bandwidth of the same trial
        wall, cpu = evals / m[:, 1] / (m[:, 0] / 24 * 64), evals / m[:, 3] / (m[:, 2] / 24 * 64)
        print(f"| {name} | {np.median(m[:, 2]) / 1e9:.1f} | {np.median(evals / m[:, 3]) / 1e9:.1f} | "
              f"**{np.median(cpu):.2f}** ({cpu.min():.2f}-{cpu.max():.2f}) | "
              f"{np.median(wall):.2f} ({wall.min():.2f}-{wall.max():.2f}) |")


def bench_rda() -> None:
    from catgrad.circuit.rda import RDATrainer
    from catgrad.train.encode import parse
    from catgrad.data import load

    ds = load("digits")
    keep = ds.y < 2
    x, y = ds.x[keep], ds.y[keep]
    bits = parse("threshold", "global").fit(x)(x)
    model = cg.load(ROOT / "examples" / "rda.cat")["digits01"]
    print(f"\nRDA vs float step on digits 0/1 ({len(x)} examples per epoch)")
    print("| trainer | batch | examples/s |")
    print("|---|---|---|")
    for combine, batch in (("parity", 1), ("vote", 64)):
        tr = RDATrainer(model, combine)
        th = tr.flatten(model.init(0))
        t = best_of(lambda: tr.epoch(th, bits, (y == 1)[:, None], batch))
        print(f"| RDA, bit-parallel netlists ({combine}) | {batch} | {len(x) / t:,.0f} |")
    step_rda = cg.compile(model, loss="xor", optimizer="gradient_update()")
    st = step_rda.init(0)

    def per_example_step():
        s = st
        for xi, yi in zip(bits, y == 1):
            s, _ = step_rda(s, xi, np.bool_(yi))

    t = best_of(per_example_step)
    print(f"| RDA, cg.compile numpy step | 1 | {len(x) / t:,.0f} |")
    mlp = cg.load(ROOT / "examples" / "digits.cat")["mlp"]
    xf = ((x - x.mean(0)) / (x.std(0) + 1e-9)).astype(np.float32)
    yf = np.eye(10, dtype=np.float32)[y]
    step = cg.compile(mlp, loss="softmax_cross_entropy", optimizer="sgd(lr=0.01)")
    s0 = step.init(0)
    for batch in (1, 32):
        def epoch():
            s = s0
            for lo in range(0, len(xf) - batch + 1, batch):
                s, _ = step(s, xf[lo:lo + batch], yf[lo:lo + batch])

        t = best_of(epoch)
        print(f"| float MLP 64-32-32-10 (examples/digits.cat), cg.compile numpy step | {batch} | {len(x) / t:,.0f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gates", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--skip-rda", action="store_true")
    args = ap.parse_args(argv)
    bench_eval(args.gates, args.samples, args.trials)
    if not args.skip_rda:
        bench_rda()


if __name__ == "__main__":
    main()
