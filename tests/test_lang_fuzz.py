"""A small sample of the front-end fuzzer (benchmarks/fuzz_frontend.py runs >= 10,000
cases): no input may raise, hang, or give an exit code other than 0 or 1."""

import random
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from catgrad.frontend.fuzz import check_exit_code, mutate, programs, time_limit

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [p.read_text() for p in sorted(ROOT.glob("examples/*.cat")) + sorted((ROOT / "lang/prelude").glob("*.cat"))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_generated_programs_never_crash(text):
    with time_limit(10):
        assert check_exit_code(text) in (0, 1)


def test_mutations_of_examples_never_crash():
    rng = random.Random(1234)
    codes = []
    for i in range(300):
        text = mutate(SEEDS[i % len(SEEDS)], rng)
        with time_limit(10):
            codes.append(check_exit_code(text))
    assert set(codes) <= {0, 1}
    assert codes.count(1) > 100  # mutations really do break programs


def test_pathological_inputs():
    cases = ["", "\n" * 50, "(" * 3000, "def f = " + "(" * 3000 + "x" + ")" * 3000, "def f = " + " >> ".join(["exp"] * 3000),
             "\x00\x01", "def f(x : f32[99999999999999999999]) = x", "def f = 1e999", "def f(x : f64[3]) = x ** 1e308 ** 9",
             "def a : f64[2] -> f64[2] = exp\n" + "".join(f"def a{i} = a{i - 1 if i else ''} @ a{i - 1 if i else ''}\n" for i in range(40))
             + "def use(x : f64[2]) = x"]
    for text in cases:
        with time_limit(20):
            assert check_exit_code(text) in (0, 1)


def test_cli_exit_codes_on_garbage(tmp_path):
    p = tmp_path / "garbage.cat"
    p.write_text(mutate(SEEDS[0], random.Random(7), rounds=6) + "\n)))")
    r = subprocess.run([sys.executable, "-m", "catgrad", "check", str(p)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and ": error: " in r.stderr
