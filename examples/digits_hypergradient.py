"""Adam-HD, DoG and SAM on scikit-learn's digits, next to fixed-rate Adam.

The digits split, model and batches of ``examples/digits_adam.py`` (64 -> 64 relu -> 10,
float64, softmax cross-entropy, batch 32, seed 0). Fixed-rate Adam runs at several learning
rates; Adam-HD (``cg.optim.hypergradient(adam(lr=1e-5), beta)``) starts from the smallest and
learns its rate online; DoG and L-DoG (no learning rate at all) for scale; SAM and ASAM
(``cg.optim.sam(adam(lr=1e-3), rho)``, ``adaptive=True``) around the best fixed-rate Adam.
Prints, per run, the test accuracy after the last epoch, the first epoch after which the test
accuracy reached 97 %, and Adam-HD's final learning rate.

Run:  python examples/digits_hypergradient.py              (30 epochs)
      python examples/digits_hypergradient.py --epochs 10 --beta 1e-3
"""

from __future__ import annotations

import argparse

import catgrad as cg
from catgrad import data
from catgrad.train import fit

from digits_adam import mlp

O = cg.optim


def run(opt, train, test, epochs, seed=0):
    step = cg.compile(mlp(64), loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer=opt)
    # the test set as validation data only records its accuracy after every epoch
    return fit(step, train, test=test, validation=test, epochs=epochs, batch_size=32, seed=seed,
               state=step.init(seed=seed))


def first_epoch(res, level=0.97):
    return next((r["epoch"] for r in res.history if r["val_accuracy"] >= level), None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--beta", type=float, default=3e-5)
    args = ap.parse_args(argv)
    train, test = data.prepare("digits", test_fraction=0.2, seed=0)
    runs = [(f"adam(lr={lr:g})", O.adam(lr=lr)) for lr in (1e-2, 3e-3, 1e-3, 1e-5)]
    runs.append((f"hypergradient(adam(lr=1e-5), beta={args.beta:g})", O.hypergradient(O.adam(lr=1e-5), beta=args.beta)))
    runs += [("dog()", O.dog()), ("ldog()", O.ldog())]  # parameter-free, for scale
    runs += [(f"sam(adam(lr=1e-3), rho={rho:g})", O.sam(O.adam(lr=1e-3), rho=rho)) for rho in (0.05, 0.1)]
    runs += [(f"sam(adam(lr=1e-3), rho={rho:g}, adaptive=True)", O.sam(O.adam(lr=1e-3), rho=rho, adaptive=True))
             for rho in (0.5, 1.0)]
    for name, opt in runs:
        res = run(opt, train, test, args.epochs)
        lr = [float(v) for k, v in res.state.opt_state.items() if k.endswith("/hypergradient.lr")]
        extra = f" final lr {lr[0]:.3g}" if lr else ""
        print(f"{name:50s} test accuracy {res.test_accuracy:.4f}  >= 97 % after epoch {first_epoch(res)}{extra}")


if __name__ == "__main__":
    main()
