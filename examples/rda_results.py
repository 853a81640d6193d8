"""The RDA results table of docs/results.md: each row is ``catgrad train`` run for five seeds.

Run: python examples/rda_results.py   (prints a markdown table; about a minute)
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

from catgrad.cli import main as catgrad

HERE = Path(__file__).resolve().parent

RUNS = [  # (label, file, model, arguments)
    ("two-class Iris", "rda_iris.cat", "or_neuron",
     "--data iris --classes 0,1 --test-fraction 0.5 --encode threshold --epochs 5"),
    ("two-class Iris", "rda_iris.cat", "polynomial",
     "--data iris --classes 0,1 --test-fraction 0.5 --encode threshold --epochs 5"),
    ("three-class Iris", "rda.cat", "iris3", "--data iris --encode thermometer:3 --epochs 10"),
    ("three-class Iris", "rda.cat", "iris3", "--data iris --encode thermometer:3 --epochs 10 --batch 8 --combine parity"),
    ("three-class Iris", "rda.cat", "iris3", "--data iris --encode thermometer:3 --epochs 10 --batch 8 --combine vote"),
    ("digits 0 vs 1", "rda.cat", "digits01",
     "--data digits --classes 0,1 --encode threshold --encode-scale global --epochs 10"),
    ("digits 0 vs 1", "rda.cat", "digits01",
     "--data digits --classes 0,1 --encode threshold --encode-scale global --epochs 10 --batch 32 --combine parity"),
    ("digits 0 vs 1", "rda.cat", "digits01",
     "--data digits --classes 0,1 --encode threshold --encode-scale global --epochs 10 --batch 32 --combine vote"),
    ("digits 0 vs 1", "rda.cat", "digits01_t8",
     "--data digits --classes 0,1 --encode thermometer:8 --encode-scale global --epochs 10"),
    ("digits 0 vs 1", "rda.cat", "digits01_t8",
     "--data digits --classes 0,1 --encode thermometer:8 --encode-scale global --epochs 10 --batch 32 --combine vote"),
    ("digits 0 vs 1", "rda.cat", "digits01_vote",
     "--data digits --classes 0,1 --encode threshold --encode-scale global --epochs 10"),
]
SEEDS = range(5)


def run(file, model, args, seed) -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = catgrad(["train", str(HERE / file), "--model", model, *args.split(), "--seed", str(seed), "--json", "--quiet"])
    assert rc == 0
    return json.loads(out.getvalue().splitlines()[-1])


def main():
    print("| task | model | options | test accuracy, seeds 0-4 | mean | two-input gates |")
    print("|---|---|---|---|---|---|")
    for label, file, model, args in RUNS:
        res = [run(file, model, args, s) for s in SEEDS]
        accs = [r["test_accuracy"] for r in res]
        gates = sorted({r["two_input_gates"] for r in res})
        print(f"| {label} | {model} | `{args}` | {', '.join(f'{a:.3f}' for a in accs)} | {np.mean(accs):.3f} | "
              f"{gates[0]}–{gates[-1]} |" if len(gates) > 1 else
              f"| {label} | {model} | `{args}` | {', '.join(f'{a:.3f}' for a in accs)} | {np.mean(accs):.3f} | "
              f"{gates[0]} |")


if __name__ == "__main__":
    main()
