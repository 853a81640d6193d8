"""The digits CNN of ``examples/digits_cnn.cat``, in catgrad and in plain torch, side by side.

Data: the 1797 8x8 digit images as ``f32[B, 1, 8, 8]``, raw pixel values 0..16 (the model
divides by 16), split by ``catgrad.data.prepare("digits", test_fraction=0.2, seed=0,
scale=False)``: the same fixed, stratified 80/20 split the CLI uses with ``--seed 0``.

Model ``cnn``: conv 3x3 1 -> 64 (padding 1), relu, 2x2 max pool, conv 3x3 64 -> 64
(padding 1), relu, 2x2 max pool, flatten, dense 256 -> 10; He-initialised conv weights,
glorot dense weights, zero biases. Loss: softmax cross-entropy averaged over the batch;
Adam (lr 3e-3); batch 32; seeded shuffling (``catgrad.train.epoch_order``). Seed 0 is
the network, initial weights and batches of ``catgrad train examples/digits_cnn.cat --model
cnn --data digits --no-standardize --optimizer "adam(lr=3e-3)" --epochs 20 --batch 32
--seed 0`` (the two programs round differently in float32: see docs/results.md).

The torch twin uses the same initial arrays and the same batches in the same order, with
``torch.nn.functional`` (conv2d, max_pool2d, cross_entropy) and ``torch.optim.Adam``.

In float64 (``--dtype f64``) the final parameters of the two agree to about 1e-12 and so do
the accuracies: they are the same computation. In float32 they round differently (summation
orders in the convolutions and in Adam's update), and training amplifies rounding: after the
first epoch (45 steps) the parameters already differ by 5 %, and torch's own parameters
differ by 30 % when its initial weights are moved by one ulp (the first conv's bias gradient
is mostly cancellation: one ulp changes torch's first SGD step there by 38 % and flips the
sign of some of Adam's). One seed's final test accuracies therefore differ by a few test
images either way, torch against itself as well (seed 0: torch 0.9889, torch from weights
one ulp away 0.9861). The agreement is measured over several seeds instead
(``--seeds``, default 5; seeds 0..4 seed the initial weights and the batch order of both
runs, the split is the fixed one): the mean test accuracies must be within 0.5 points, and
catgrad must reach 98.5 % on the first seed (the CLI command above) and on average.

Run:  python examples/digits_cnn.py            (5 seeds x 20 epochs, about 3 minutes on one core)
      python examples/digits_cnn.py --dtype f64
      python examples/digits_cnn.py --seeds 1     (seed 0 only)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only contend

import numpy as np  # noqa: E402

import catgrad as cg  # noqa: E402
from catgrad import data  # noqa: E402
from catgrad.frontend.module import load  # noqa: E402
from catgrad.train import epoch_order, fit  # noqa: E402

HERE = Path(__file__).resolve().parent


def torch_forward(F, p, x):
    h = F.max_pool2d(F.relu(F.conv2d(x / 16, p["features.conv2d_sp.W"], p["features.conv2d_sp.b"].reshape(-1),
                                     padding=1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, p["features.conv2d_sp_2.W"], p["features.conv2d_sp_2.b"].reshape(-1),
                                     padding=1)), 2)
    return h.flatten(1) @ p["dense.W"] + p["dense.b"]


def run_torch(train, test, init, epochs, batch, seed, lr, dtype="f32"):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    tdt = {"f32": torch.float32, "f64": torch.float64}[dtype]
    p = {k: torch.tensor(v, dtype=tdt, requires_grad=True) for k, v in init.params.items()}
    opt = torch.optim.Adam(list(p.values()), lr=lr)
    images = lambda ds: torch.tensor(ds.x.reshape(-1, 1, 8, 8), dtype=tdt)  # noqa: E731
    X, Y = images(train), torch.tensor(train.y)
    n = len(X)
    for e in range(epochs):
        order = torch.from_numpy(epoch_order(seed, e, n))
        for i in range(0, n, batch):
            rows = order[i : i + batch]
            opt.zero_grad()
            F.cross_entropy(torch_forward(F, p, X[rows]), Y[rows]).backward()
            opt.step()
    with torch.no_grad():
        acc = lambda ds: float((torch_forward(F, p, images(ds)).argmax(1).numpy() == ds.y).mean())  # noqa: E731
        return acc(train), acc(test), {k: v.detach().numpy() for k, v in p.items()}


def one_seed(args, seed, train, test, model):
    """catgrad and torch from the same initial weights (``seed``) on the same batches."""
    step = cg.compile(model, loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer=cg.optim.adam(lr=args.lr),
                      dtype=args.dtype)
    init = step.init(seed=seed)
    t0 = time.perf_counter()
    res = fit(step, train, test=test, epochs=args.epochs, batch_size=args.batch, seed=seed, state=init)
    t1 = time.perf_counter()
    tr_acc, te_acc, theirs = run_torch(train, test, init, args.epochs, args.batch, seed, args.lr, args.dtype)
    t2 = time.perf_counter()
    gap = max(float(np.abs(np.asarray(res.state.params[k], dtype=np.float64) - v).max() /
                    max(1e-300, np.abs(v).max())) for k, v in theirs.items())
    print(f"seed {seed}: catgrad train {res.train_accuracy:.4f} test {res.test_accuracy:.4f} ({t1 - t0:.1f} s, "
          f"{res.steps} steps) | torch train {tr_acc:.4f} test {te_acc:.4f} ({t2 - t1:.1f} s) | "
          f"difference {100 * (res.test_accuracy - te_acc):+.2f} points, parameters {gap:.1e} apart", flush=True)
    return res, te_acc, gap


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0, help="the first seed of initial weights and batch order")
    ap.add_argument("--seeds", type=int, default=5, help="how many seeds (seed, seed + 1, ...), the same for both")
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32",
                    help="f64: both runs in float64, where they agree to rounding (see the docstring)")
    args = ap.parse_args(argv)
    train, test = data.prepare("digits", test_fraction=0.2, seed=0, scale=False)  # the fixed split
    model = load(HERE / "digits_cnn.cat")["cnn"]
    print(f"digits {len(train)} train / {len(test)} test as {args.dtype}[B, 1, 8, 8], cnn of examples/digits_cnn.cat, "
          f"adam(lr={args.lr}), batch {args.batch}, {args.epochs} epochs")
    rows = [one_seed(args, seed, train, test, model) for seed in range(args.seed, args.seed + args.seeds)]
    ours = 100 * np.array([r[0].test_accuracy for r in rows])
    theirs = 100 * np.array([r[1] for r in rows])
    spread = lambda a: f"{a.mean():.2f} % (min {a.min():.2f}, max {a.max():.2f}, std {a.std():.2f})"  # noqa: E731
    print(f"test accuracy over {len(rows)} seed(s): catgrad {spread(ours)}; torch {spread(theirs)}")
    diff = ours.mean() - theirs.mean()
    ok = abs(diff) <= 0.5 and ours.mean() >= 98.5 and ours[0] >= 98.5
    print(f"difference of the means: {diff:+.2f} points (target: |difference| <= 0.5, catgrad >= 98.5 % on seed "
          f"{args.seed} and on average: {'met' if ok else 'MISSED'})")
    return rows


if __name__ == "__main__":
    main()
