"""Adam with hypergradient descent (Adam-HD) on scikit-learn's digits, next to fixed-rate Adam.

The digits split, model and batches of ``examples/digits_adam.py`` (64 -> 64 relu -> 10,
float64, softmax cross-entropy, batch 32, seed 0). Fixed-rate Adam runs at several learning
rates; Adam-HD (``cg.optim.hypergradient(adam(lr=1e-5), beta)``) starts from the smallest and
learns its rate online; DoG and L-DoG (no learning rate at all) for scale. Prints test
accuracy per run and Adam-HD's final learning rate.

Run:  python examples/digits_hypergradient.py              (30 epochs)
      python examples/digits_hypergradient.py --epochs 10 --beta 1e-3
"""

from __future__ import annotations

import argparse

import catgrad as cg
from catgrad import data
from catgrad.train import fit

from digits_adam import mlp


def run(opt, train, test, epochs, seed=0):
    step = cg.compile(mlp(64), loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer=opt)
    res = fit(step, train, test=test, epochs=epochs, batch_size=32, seed=seed, state=step.init(seed=seed))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--beta", type=float, default=1e-4)
    args = ap.parse_args(argv)
    train, test = data.prepare("digits", test_fraction=0.2, seed=0)
    rows = []
    for lr in (1e-2, 3e-3, 1e-3, 1e-5):
        res = run(cg.optim.adam(lr=lr), train, test, args.epochs)
        rows.append((f"adam(lr={lr:g})", res.test_accuracy, ""))
    res = run(cg.optim.hypergradient(cg.optim.adam(lr=1e-5), beta=args.beta), train, test, args.epochs)
    lr_end = float(next(v for k, v in res.state.opt_state.items() if k.endswith("/hypergradient.lr")))
    rows.append((f"hypergradient(adam(lr=1e-5), beta={args.beta:g})", res.test_accuracy, f"final lr {lr_end:.3g}"))
    for name, opt in (("dog()", cg.optim.dog()), ("ldog()", cg.optim.ldog())):  # parameter-free, for scale
        rows.append((name, run(opt, train, test, args.epochs).test_accuracy, ""))
    for name, acc, extra in rows:
        print(f"{name:45s} test accuracy {acc:.4f} {extra}")


if __name__ == "__main__":
    main()
