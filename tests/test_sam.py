"""cg.optim.sam_step against a transcription of SAM / ASAM (Foret et al. 2021; Kwon et al.
2021, as in the authors' reference code) whose gradients come from torch.autograd on the
same model run with the torch kernels."""

import numpy as np
import pytest
import torch

import catgrad as cg
import models

B = 6


def setup(seed=0):
    model = models.mlp([3, 5, 2], act="tanh", last=None, batch=B)
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(t.shape) * 0.7 for t in model.P]
    x, y = rng.standard_normal((B, 3)), rng.standard_normal((B, 2))
    return model, ps, x, y


def torch_grad(model, ps, x, y):
    ts = [torch.tensor(p, requires_grad=True) for p in ps]
    (pred,) = cg.evaluate(model.body, *ts, torch.tensor(x), backend="torch")
    loss = torch.mean((pred - torch.tensor(y)) ** 2)
    return [g.numpy() for g in torch.autograd.grad(loss, ts)], loss.item()


def reference(model, ps, x, y, rho, adaptive, update, steps):
    """The SAM algorithm in numpy; ``update(ps, grads, t)`` is the base optimizer."""
    ps = [p.copy() for p in ps]
    losses = []
    for t in range(1, steps + 1):
        g, loss = torch_grad(model, ps, x, y)
        losses.append(loss)
        T = [np.abs(p) if adaptive else np.ones_like(p) for p in ps]
        norm = np.sqrt(sum(np.sum((ti * gi) ** 2) for ti, gi in zip(T, g)))
        e = [ti * ti * gi * rho / (norm + 1e-12) for ti, gi in zip(T, g)]
        g2, _ = torch_grad(model, [p + ei for p, ei in zip(ps, e)], x, y)
        ps = update(ps, g2, t)
    return ps, losses


def sgd_update(lr):
    return lambda ps, g, t: [p - lr * gi for p, gi in zip(ps, g)]


def adam_update(lr, b1=0.9, b2=0.999, eps=1e-8):
    m, v = {}, {}

    def update(ps, g, t):
        out = []
        for i, (p, gi) in enumerate(zip(ps, g)):
            m[i] = b1 * m.get(i, 0) + (1 - b1) * gi
            v[i] = b2 * v.get(i, 0) + (1 - b2) * gi * gi
            out.append(p - lr * (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + eps))
        return out

    return update


def run_ours(model, ps, x, y, opt, rho, adaptive, steps):
    d, lens = cg.optim.sam_step(model, cg.loss.mse, opt, rho=rho, adaptive=adaptive)
    state = lens.init(ps)
    ps, losses = [p.copy() for p in ps], []
    n = len(ps)
    for _ in range(steps):
        out = cg.evaluate(d, *ps, *(state[k] for k in lens.keys), x, y)
        ps = [np.asarray(o) for o in out[:n]]
        state = dict(zip(lens.keys, out[n:-2]))
        losses.append(float(out[-2]))
    return ps, losses


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_sam_matches_transcription(base, adaptive):
    model, ps, x, y = setup()
    rho, steps = 0.1, 6
    opt, update = (cg.optim.sgd(0.2), sgd_update(0.2)) if base == "sgd" else (cg.optim.adam(0.05), adam_update(0.05))
    ours, our_losses = run_ours(model, ps, x, y, opt, rho, adaptive, steps)
    theirs, their_losses = reference(model, ps, x, y, rho, adaptive, update, steps)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-12)
    # SAM is not plain descent: rho = 0 gives a different trajectory
    plain, _ = reference(model, ps, x, y, 0.0, adaptive, sgd_update(0.2) if base == "sgd" else adam_update(0.05), steps)
    assert max(np.max(np.abs(a - b)) for a, b in zip(ours, plain)) > 1e-6


def test_bad_rho_is_a_clear_error():
    model, *_ = setup()
    with pytest.raises(cg.CatgradError, match="rho"):
        cg.optim.sam_step(model, cg.loss.mse, cg.optim.sgd(0.1), rho=-1.0)


def test_sam_on_digits_matches_hand_written_torch_sam_for_50_steps():
    """The digits MLP (64 -> 32 relu -> 10, softmax cross-entropy), SAM over SGD, 50 steps,
    against SAM written in plain torch (torch.nn.functional, torch.optim.SGD)."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    from catgrad.compiler.numpy_backend import compile_numpy
    from catgrad.compiler.pipeline import prepare

    Bd = 32
    X, labels = load_digits(return_X_y=True)
    X = X / 16.0
    model = models.dense(64, 32, act="relu", batch=Bd, prefix="l0.") >> models.dense(32, 10, act=None, batch=Bd, prefix="l1.")
    d, lens = cg.optim.sam_step(model, cg.loss.softmax_cross_entropy, cg.optim.sgd(0.1), rho=0.05)
    prog = compile_numpy(prepare(d))
    ps = [np.asarray(p) for p in model.init(0)]
    names = list(model.names)
    torch_ps = {n: torch.tensor(p, requires_grad=True) for n, p in zip(names, ps)}
    sgd = torch.optim.SGD(list(torch_ps.values()), lr=0.1)
    state = lens.init(ps)

    def torch_loss(x, y):
        h = F.relu(x @ torch_ps["l0.W"] + torch_ps["l0.b"])
        return F.cross_entropy(h @ torch_ps["l1.W"] + torch_ps["l1.b"], y)

    for t in range(50):
        idx = np.arange(t * Bd, (t + 1) * Bd) % len(X)
        x, y = X[idx], np.eye(10)[labels[idx]]
        out = prog(*ps, *(state[k] for k in lens.keys), x, y)
        ps = [np.asarray(o) for o in out[: len(ps)]]
        state = dict(zip(lens.keys, out[len(ps) : -2]))

        tx, ty = torch.tensor(x), torch.tensor(labels[idx])
        loss = torch_loss(tx, ty)
        grads = torch.autograd.grad(loss, list(torch_ps.values()))
        norm = torch.sqrt(sum((g**2).sum() for g in grads))
        with torch.no_grad():
            es = [0.05 * g / (norm + 1e-12) for g in grads]
            for p, e in zip(torch_ps.values(), es):
                p.add_(e)
        sgd.zero_grad()
        torch_loss(tx, ty).backward()
        with torch.no_grad():
            for p, e in zip(torch_ps.values(), es):
                p.sub_(e)
        sgd.step()
        assert abs(float(out[-2]) - loss.item()) <= 1e-9 * abs(loss.item())
    for n, p in zip(names, ps):
        np.testing.assert_allclose(p, torch_ps[n].detach().numpy(), rtol=1e-10, atol=1e-12)
