"""Fuzz the command line's inputs for longer than the default suite does: CSV and .npz
data, checkpoints (truncated, flipped, tampered metadata, wrong shapes, pickles),
optimizer strings and arguments (tests/fuzz_inputs.py has the strategies and the bar:
exit 0/1/2, no internal error or traceback, < 5 s per case, memory within
CATGRAD_MAX_BYTES, no file but the run's own output touched).

    python benchmarks/fuzz_inputs.py [--cases 500] [--seed S]

Runs tests/test_fuzz_inputs.py with CATGRAD_FUZZ=cases (random, not derandomized) and
prints the time; exits non-zero on the first failing case, which hypothesis prints
minimised -- add it to tests/test_fuzz_regressions.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=500, help="cases per input kind")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    env = dict(os.environ, CATGRAD_FUZZ=str(args.cases), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/test_fuzz_inputs.py")]
    if args.seed is not None:
        cmd.append(f"--hypothesis-seed={args.seed}")
    t = time.time()
    rc = subprocess.call(cmd, env=env, cwd=ROOT)
    print(f"{args.cases} cases per input kind, 5 kinds: {time.time() - t:.1f} s, {'ok' if rc == 0 else 'FAILED'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
