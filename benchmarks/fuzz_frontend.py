"""Fuzz the front end: hypothesis-generated programs and random mutations of the
examples and the prelude. For every case, the `catgrad check` logic must return 0 or
1: no exception may escape, and no case may run past the time limit (a hang).

    python benchmarks/fuzz_frontend.py [--programs 5000] [--mutations 5000] [--seed 0]

Prints the counts (accepted / rejected / crashed / hung) and the time; exits 1 if
anything crashed or hung, printing the first offending inputs.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=5000)
    ap.add_argument("--mutations", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=10.0, help="seconds per case before it counts as a hang")
    args = ap.parse_args(argv)

    from hypothesis import HealthCheck, given, seed, settings

    from catgrad.frontend.fuzz import Hang, check_exit_code, mutate, programs, time_limit

    counts = {"accepted": 0, "rejected": 0, "crashed": 0, "hung": 0}
    bad = []

    def run(text):
        try:
            with time_limit(args.limit):
                code = check_exit_code(text)
            counts["accepted" if code == 0 else "rejected"] += 1
        except Hang:
            counts["hung"] += 1
            bad.append(("hang", text, ""))
        except BaseException:  # noqa: BLE001 - anything escaping is the bug we look for
            counts["crashed"] += 1
            bad.append(("crash", text, traceback.format_exc()))

    t0 = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.programs, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def generated(text):
        run(text)

    if args.programs:
        generated()
    t1 = time.perf_counter()
    n_generated = sum(counts.values())

    seeds = [p.read_text() for p in sorted(ROOT.glob("examples/*.cat")) + sorted((ROOT / "lang/prelude").glob("*.cat"))]
    rng = random.Random(args.seed)
    for i in range(args.mutations):
        run(mutate(seeds[i % len(seeds)], rng, rounds=rng.choice([1, 2, 4, 8])))
    t2 = time.perf_counter()

    total = sum(counts.values())
    print(f"hypothesis programs: {n_generated} in {t1 - t0:.1f} s")
    print(f"mutations:           {total - n_generated} in {t2 - t1:.1f} s")
    print(f"total {total} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for kind, text, tb in bad[:3]:
        print(f"--- {kind} on input:\n{text[:2000]}\n{tb}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
