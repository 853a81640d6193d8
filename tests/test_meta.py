"""Unrolled meta-gradients: cg.grad of k = 5 composed Adam steps (cg.optim.unrolled) with
respect to the initial weights and the hyperparameters, against torch.func.grad of the same
five steps written by hand in torch."""

import numpy as np
import pytest
import torch

import catgrad as cg
import models

B, K = 4, 5


def test_unrolled_adam_meta_gradient_matches_torch_func():
    model = models.mlp([3, 4, 2], act="tanh", last=None, batch=B)
    opt = cg.optim.adam(0.05, b1=0.8, b2=0.95, eps=1e-6)
    U, lens = cg.optim.unrolled(model, cg.loss.mse, opt, K)
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(t.shape) * 0.8 for t in model.P]
    batches = [(rng.standard_normal((B, 3)), rng.standard_normal((B, 2))) for _ in range(K + 1)]
    state = lens.init(ps)
    flat = [a for xy in batches for a in xy]
    grads = cg.evaluate(cg.grad(U), *ps, *(state[k] for k in lens.keys), *flat)
    n = len(ps)
    ours = dict(zip(lens.keys, grads[n : n + len(lens.keys)]))

    def run(params, lr, b1, b2, eps):
        params = list(params)
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        for t in range(1, K + 1):
            x, y = (torch.tensor(a) for a in batches[t - 1])
            (pred,) = cg.evaluate(model.body, *params, x, backend="torch")
            g = torch.autograd.grad(torch.mean((pred - y) ** 2), params, create_graph=True)
            for i in range(n):
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                params[i] = params[i] - (lr / (1 - b1**t)) * m[i] / (torch.sqrt(v[i]) / torch.sqrt(1 - b2**t) + eps)
        x, y = (torch.tensor(a) for a in batches[K])
        (pred,) = cg.evaluate(model.body, *params, x, backend="torch")
        return torch.mean((pred - y) ** 2)

    hyper = [torch.tensor(h, dtype=torch.float64) for h in (0.05, 0.8, 0.95, 1e-6)]
    tp = [torch.tensor(p) for p in ps]
    theirs = torch.func.grad(lambda p, h: run(p, *h), argnums=(0, 1))(tp, hyper)
    for ours_p, their_p in zip(grads[:n], theirs[0]):
        np.testing.assert_allclose(ours_p, their_p.numpy(), rtol=1e-9, atol=1e-12)
    first = model.names[0]
    for name, t in zip(("lr", "b1", "b2", "eps"), theirs[1]):
        # every parameter's adam stage holds its own copy of the hyperparameter: their sum is d/d h
        total = sum(ours[f"{p}/adam.{name}"] for p in model.names)
        np.testing.assert_allclose(total, t.item(), rtol=1e-9)
    assert abs(float(ours[f"{first}/adam.lr"])) > 1e-6


def test_unrolled_checks_k():
    model = models.mlp([3, 2], batch=B)
    with pytest.raises(cg.CatgradError, match="positive number of steps"):
        cg.optim.unrolled(model, cg.loss.mse, cg.optim.sgd(0.1), 0)
