"""An MLP on scikit-learn's digits with Adam, in catgrad and in plain torch, side by side.

Data: the 1797 8x8 digit images (64 features, 10 classes), split by
``catgrad.data.prepare("digits", test_fraction=0.2, seed=0)``: a stratified, seeded
80/20 split (scikit-learn's train_test_split: 1437 train / 360 test), standardised with training statistics.

Model: 64 -> 64 (relu) -> 10 logits, float64, glorot weights, zero biases; loss: softmax
cross-entropy averaged over the batch; optimizer: Adam (lr 1e-3, betas 0.9/0.999,
eps 1e-8); batch 32, seeded shuffling (``catgrad.train.epoch_order``).

The torch twin uses the *same* initial arrays, the *same* batches in the same order and
the same number of epochs, with ``torch.nn.functional`` layers and ``torch.optim.Adam``
(one torch thread).
The script prints both test accuracies and their difference in points.

Run:  python examples/digits_adam.py               (30 epochs, ~20 s)
      python examples/digits_adam.py --epochs 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import catgrad as cg
from catgrad import data
from catgrad.train import epoch_order, fit


def dense(d_in: int, d_out: int, name: str, relu: bool) -> cg.Para:
    """x W + b (then relu) on a batch x : f64[B, d_in]."""

    def body(b, ins):
        W, bias, x = ins
        z = x @ W + bias.broadcast("B", d_out)
        return [cg.ops.relu(z) if relu else z]

    return cg.Para([cg.Param(f"{name}.W", cg.f64[d_in, d_out], cg.init.glorot()),
                    cg.Param(f"{name}.b", cg.f64[d_out], cg.init.zeros())],
                   cg.build(cg.Ob(cg.f64[d_in, d_out], cg.f64[d_out], cg.f64["B", d_in]), body))


def mlp(hidden: int = 64) -> cg.Para:
    return dense(64, hidden, "l0", relu=True) >> dense(hidden, 10, "l1", relu=False)


def run_catgrad(train, test, epochs, batch, seed, lr, hidden):
    step = cg.compile(mlp(hidden), loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer=cg.optim.adam(lr=lr))
    init = step.init(seed=seed)
    res = fit(step, train, test=test, epochs=epochs, batch_size=batch, seed=seed, state=init)
    return res, init


def run_torch(train, test, init, epochs, batch, seed, lr):
    """The same model, init, batches and epochs in plain torch."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared machine
    try:
        return _train_torch(torch, F, train, test, init, epochs, batch, seed, lr)
    finally:
        torch.set_num_threads(threads)


def _train_torch(torch, F, train, test, init, epochs, batch, seed, lr):
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in init.params.items()}
    opt = torch.optim.Adam(list(p.values()), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    X, Y = torch.tensor(train.x), torch.tensor(train.y)

    def forward(x):
        return F.relu(x @ p["l0.W"] + p["l0.b"]) @ p["l1.W"] + p["l1.b"]

    n = len(X)
    for e in range(epochs):
        order = torch.from_numpy(epoch_order(seed, e, n))
        for i in range(0, n, batch):
            rows = order[i : i + batch]
            opt.zero_grad()
            F.cross_entropy(forward(X[rows]), Y[rows]).backward()
            opt.step()
    with torch.no_grad():
        acc = lambda ds: float((forward(torch.tensor(ds.x)).argmax(1).numpy() == ds.y).mean())  # noqa: E731
        return acc(train), acc(test), {k: v.detach().numpy() for k, v in p.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    train, test = data.prepare("digits", test_fraction=0.2, seed=0)
    t0 = time.perf_counter()
    res, init = run_catgrad(train, test, args.epochs, args.batch, args.seed, args.lr, args.hidden)
    t1 = time.perf_counter()
    tr_acc, te_acc, tparams = run_torch(train, test, init, args.epochs, args.batch, args.seed, args.lr)
    t2 = time.perf_counter()
    gap = max(float(np.max(np.abs(res.state.params[k] - tparams[k]))) for k in tparams)
    print(f"digits {len(train)} train / {len(test)} test, MLP 64-{args.hidden}-10, adam(lr={args.lr}), "
          f"batch {args.batch}, {args.epochs} epochs, seed {args.seed}")
    print(f"catgrad: train accuracy {res.train_accuracy:.4f}, test accuracy {res.test_accuracy:.4f}, "
          f"final epoch loss {res.train_loss:.5f} ({t1 - t0:.1f} s, {res.steps} steps)")
    print(f"torch:   train accuracy {tr_acc:.4f}, test accuracy {te_acc:.4f} ({t2 - t1:.1f} s)")
    diff = 100 * (res.test_accuracy - te_acc)
    print(f"difference: {diff:+.2f} points (target: |diff| <= 0.5, catgrad >= 97%: "
          f"{'met' if abs(diff) <= 0.5 and res.test_accuracy >= 0.97 else 'MISSED'}); "
          f"max |param difference| {gap:.2e}")
    return res, te_acc


if __name__ == "__main__":
    main()
