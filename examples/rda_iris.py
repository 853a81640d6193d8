"""Reverse Derivative Ascent learns boolean classifiers of two-class Iris (docs/mathematics.md section 5).

The protocol of Wilson and Zanasi: setosa against versicolor (the first 100 rows of
Iris); each feature min-max normalised over those rows and thresholded at 0.5, giving
4 bits; per class the first 25 rows train and the last 25 test. Parameters start at
0. Training is the closed supervised step of catgrad over Z2: XOR loss, identity
learning rate and gradient update, so each example does
theta <- theta XOR R[f]((theta, x), y XOR f(theta, x)). The published result to meet
and beat is 98.0 % test accuracy.

Run: python examples/rda_iris.py [--epochs N] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

import catgrad as cg

HERE = Path(__file__).resolve().parent
MODELS = ("or_neuron", "polynomial", "affine")


def iris_bits():
    """(x_train, y_train, x_test, y_test) as bool arrays, per the protocol above."""
    X, y = load_iris(return_X_y=True)
    X, y = X[:100], y[:100].astype(bool)  # setosa (0) and versicolor (1)
    lo, hi = X.min(axis=0), X.max(axis=0)
    bits = (X - lo) / (hi - lo) >= 0.5
    train = np.r_[0:25, 50:75]
    test = np.r_[25:50, 75:100]
    return bits[train], y[train], bits[test], y[test]


def train_rda(model, x, y, epochs: int):
    """Per-example RDA with the compiled step; returns (step, state, mistakes per epoch)."""
    step = cg.compile(model, loss="xor", optimizer="gradient_update()")
    state = step.init(seed=0)  # every parameter is declared `~ zeros`: theta_0 = 0
    mistakes = []
    for _ in range(epochs):
        wrong = 0
        for xi, yi in zip(x, y):
            state, out = step(state, xi, np.bool_(yi))
            wrong += int(out.loss)  # the XOR loss is 1 exactly when the prediction was wrong
        mistakes.append(wrong)
    return step, state, mistakes


def accuracy(step, state, x, y) -> float:
    return float(np.mean([step.predict(state, xi) == yi for xi, yi in zip(x, y)]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    module = cg.load(HERE / "rda_iris.cat")
    xtr, ytr, xte, yte = iris_bits()
    results = {}
    for name in MODELS:
        step, state, mistakes = train_rda(module[name], xtr, ytr, args.epochs)
        results[name] = {
            "train_accuracy": accuracy(step, state, xtr, ytr),
            "test_accuracy": accuracy(step, state, xte, yte),
            "mistakes_per_epoch": mistakes,
            "params": {k: v.astype(int).tolist() for k, v in state.params.items()},
        }
    if args.json:
        print(json.dumps(results))
    else:
        for name, r in results.items():
            print(f"{name:11s} train {r['train_accuracy']:.3f}  test {r['test_accuracy']:.3f}  "
                  f"mistakes/epoch {r['mistakes_per_epoch']}  params {r['params']}")
        print("published result to meet: test accuracy 0.980")


if __name__ == "__main__":
    main()
