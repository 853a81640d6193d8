"""A small transformer written in ``.cat`` (examples/transformer.cat) learns to reverse
sequences of 8 tokens; its torch twin, from the same initial weights on the same
batches, gives the same losses.

Task: token ids ``x`` uniform in 0..9, shape [8]; the target is ``x`` reversed. Every
batch (64 sequences) is drawn from a seeded numpy generator, so both twins see the
same data. The model (embedding, learned positions, a pre-norm block of 4-head
self-attention and a relu MLP, final layer norm, per-token logits) is trained with
softmax cross-entropy averaged over every token (``reduction="mean"``, as torch's), and
Adam (lr 3e-3). The torch twin writes the same network with ``torch.nn.functional``
(embedding lookup by indexing, ``F.layer_norm``, einsum attention) and uses
``torch.optim.Adam``.

The script prints the per-token loss of the first steps of both, their largest
difference over the first 20 steps (target <= 1e-5), and the token accuracy of the
catgrad model on 2000 fresh sequences after training (target >= 99%).

Run:  python examples/transformer.py [--steps 500]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only contend

import numpy as np  # noqa: E402

import catgrad as cg  # noqa: E402
from catgrad.frontend.module import load  # noqa: E402

HERE = Path(__file__).resolve().parent
T, V = 8, 10


def batch(rng, n):
    x = rng.integers(0, V, size=(n, T))
    return x, x[:, ::-1].copy()


def one_hot(y):
    return np.eye(V, dtype=np.float32)[y]


def torch_model(p):
    import torch
    import torch.nn.functional as F

    def ln(x, name):
        return F.layer_norm(x, (x.shape[-1],), p[name + ".g"], p[name + ".b"], eps=1e-5)

    def dense(x, name):
        return torch.einsum("btn,nm->btm", x, p[name + ".W"]) + p[name + ".b"]

    def mha(x):
        q, k, v = (torch.einsum("btn,nhe->bhte", x, p[f"block.mha.W{c}"]) for c in "qkv")
        a = torch.softmax(torch.einsum("bhse,bhte->bhst", q, k) / torch.sqrt(torch.tensor(8.0)), dim=3)
        return torch.einsum("bhse,hen->bsn", torch.einsum("bhst,bhte->bhse", a, v), p["block.mha.Wo"])

    def forward(ids):
        x = p["embedding.E"][ids] + p["pos"]
        a = x + mha(ln(x, "block.layernorm_seq"))
        y = a + dense(F.relu(dense(ln(a, "block.layernorm_seq_2"), "block.pointwise")), "block.pointwise_2")
        return dense(ln(y, "layernorm_seq"), "pointwise")

    return forward


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--compare", type=int, default=20, help="steps run by both twins and compared")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    model = load(HERE / "transformer.cat")["transformer"]
    step = cg.compile(model, loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer=cg.optim.adam(lr=args.lr))
    state = init = step.init(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    batches = [batch(rng, args.batch) for _ in range(args.steps)]

    t0 = time.perf_counter()
    ours = []
    for x, y in batches:
        state, out = step(state, x, one_hot(y))
        ours.append(out.loss)
    t1 = time.perf_counter()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in init.params.items()}
    opt = torch.optim.Adam(list(p.values()), lr=args.lr)
    forward = torch_model(p)
    theirs = []
    for x, y in batches[: args.compare]:
        opt.zero_grad()
        logits = forward(torch.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, V), torch.tensor(y).reshape(-1))  # mean over every token
        loss.backward()
        opt.step()
        theirs.append(float(loss.detach()))

    test_x, test_y = batch(np.random.default_rng(args.seed + 1), 2000)
    pred = step.predict(state, test_x).argmax(-1)
    acc = float((pred == test_y).mean())
    gap = max(abs(a - b) for a, b in zip(ours, theirs))
    print(f"transformer of examples/transformer.cat reversing {T} tokens (vocab {V}), batch {args.batch}, "
          f"adam(lr={args.lr}), seed {args.seed}")
    print("step  catgrad loss  torch loss   (per token)")
    for i in (0, 1, 2, 5, 10, args.compare - 1):
        if i < len(theirs):
            print(f"{i:4d}  {ours[i]:.7f}     {theirs[i]:.7f}")
    print(f"largest loss difference over the first {len(theirs)} steps: {gap:.2e} (target <= 1e-5: "
          f"{'met' if gap <= 1e-5 else 'MISSED'})")
    print(f"after {args.steps} steps ({t1 - t0:.1f} s): loss {ours[-1]:.5f}, token accuracy on 2000 new sequences "
          f"{acc:.4f} (target >= 0.99: {'met' if acc >= 0.99 else 'MISSED'})")
    return ours, theirs, acc


if __name__ == "__main__":
    main()
