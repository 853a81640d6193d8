"""cg.optim.hypergradient against the closed forms of Baydin et al. (2018) and against
torch autograd through an unrolled step.

The wrapper derives the learning-rate derivative of the step with cg.D; the references
here never differentiate: SGD-HD and Adam-HD are the paper's algorithms transcribed in
numpy (global learning rate, gradients of a fixed quadratic), and the composed case asks
torch.func.grad for d/d alpha of the next loss through a hand-written torch step.
"""

import numpy as np
import pytest
import torch

import catgrad as cg

SHAPES = [(3,), (2, 2)]


def quadratic(seed=0):
    rng = np.random.default_rng(seed)
    As = []
    for s in SHAPES:
        n = int(np.prod(s))
        M = rng.standard_normal((n, n))
        As.append(M @ M.T / n + np.eye(n))
    bs = [rng.standard_normal(s) for s in SHAPES]

    def grad(ps):
        return [(A @ p.ravel()).reshape(p.shape) - b for A, p, b in zip(As, ps, bs)]

    return grad


class Runner:
    """Steps an optimizer lens's put on given gradients (p' = -g), keeping flat state."""

    def __init__(self, opt, ps):
        self.ol = opt.lens([(f"p{i}", cg.f64[s]) for i, s in enumerate(SHAPES)])
        self.put = self.ol.lens.put
        self.ps = [np.array(p) for p in ps]
        self.state = self.ol.init(self.ps)

    def step(self, grads):
        out = cg.evaluate(self.put, *self.ps, *(self.state[k] for k in self.ol.keys), *(-g for g in grads))
        n = len(self.ps)
        self.ps = [np.asarray(o) for o in out[:n]]
        self.state = {k: np.asarray(v) for k, v in zip(self.ol.keys, out[n:])}


def close(a, b, tol=1e-10):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert np.linalg.norm(a - b) <= tol * max(np.linalg.norm(b), 1e-3), (a, b)


def test_sgd_hd_closed_form():
    grad, alpha, beta = quadratic(), 0.05, 0.02
    ps = [np.ones(s) for s in SHAPES]
    run = Runner(cg.optim.hypergradient(cg.optim.sgd(alpha), beta=beta), ps)
    theta, prev = [p.copy() for p in ps], [np.zeros(s) for s in SHAPES]
    alphas = []
    for _ in range(8):
        g = grad(theta)
        run.step(grad(run.ps))
        alpha = alpha + beta * sum(np.sum(a * b) for a, b in zip(g, prev))  # SGD-HD
        theta = [t - alpha * gi for t, gi in zip(theta, g)]
        prev = g
        alphas.append(alpha)
        close(run.state["p0/hypergradient.lr"], alpha)
        for i in range(len(SHAPES)):
            close(run.ps[i], theta[i])
            close(run.state[f"p{i}/hypergradient.d"], -g[i])  # d theta / d alpha
            close(run.state[f"p{i}/hypergradient.sgd.lr"], alpha)
    assert len(set(np.round(alphas, 12))) > 4  # the learning rate really moved


def test_adam_hd_closed_form():
    grad, alpha, beta = quadratic(1), 0.02, 1e-3
    b1, b2, eps = 0.9, 0.999, 1e-8
    ps = [np.full(s, 0.5) for s in SHAPES]
    run = Runner(cg.optim.hypergradient(cg.optim.adam(alpha, b1, b2, eps), beta=beta), ps)
    theta = [p.copy() for p in ps]
    m, v = [np.zeros(s) for s in SHAPES], [np.zeros(s) for s in SHAPES]
    du = [np.zeros(s) for s in SHAPES]  # d u_{t-1} / d alpha
    for t in range(1, 11):
        g = grad(theta)
        run.step(grad(run.ps))
        h = sum(np.sum(a * b) for a, b in zip(g, du))  # Adam-HD: h_t = g_t . grad_alpha u_{t-1}
        alpha = alpha - beta * h
        for i in range(len(SHAPES)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            mhat, vhat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            du[i] = -mhat / (np.sqrt(vhat) + eps)
            theta[i] = theta[i] + alpha * du[i]
        close(run.state["p0/hypergradient.lr"], alpha)
        for i in range(len(SHAPES)):
            close(run.ps[i], theta[i])
            close(run.state[f"p{i}/hypergradient.adam.m"], m[i])
            close(run.state[f"p{i}/hypergradient.adam.v"], v[i])
            close(run.state[f"p{i}/hypergradient.adam.t"], t)
            close(run.state[f"p{i}/hypergradient.d"], du[i])


def test_composed_optimizer_matches_torch_grad_through_the_unrolled_step():
    """hypergradient(weight_decay >> adam): alpha_t - alpha_{t-1} = -beta d/d alpha of
    L(theta_{t-2} + dir(state_{t-2}, theta_{t-2}, g_{t-1}; alpha)), asked of torch.func.grad."""
    rng = np.random.default_rng(3)
    X = torch.tensor(rng.standard_normal((4, 2)))
    Y = torch.tensor(rng.standard_normal((4, 2)))

    def loss(W, b):  # W: [3], b: [2, 2]
        return torch.sum((torch.sin(X @ b) * W[0] + W[1] - Y) ** 2) / 10 + torch.sum(torch.tanh(W) ** 2)

    def torch_grad(ps):
        ts = [torch.tensor(p, requires_grad=True) for p in ps]
        return [g.numpy() for g in torch.autograd.grad(loss(*ts), ts)]

    wd, b1, b2, eps, beta = 0.01, 0.9, 0.99, 1e-8, 1e-3

    def step(st, theta, g, alpha):  # weight_decay >> adam in torch; returns (new state, new theta)
        out_st, out_th = [], []
        for (m, v, t), th, gi in zip(st, theta, g):
            gi = gi + wd * th
            m, v, t = b1 * m + (1 - b1) * gi, b2 * v + (1 - b2) * gi * gi, t + 1
            d = (m / (1 - b1**t)) / (torch.sqrt(v) / np.sqrt(1 - b2**t) + eps)
            out_st.append((m, v, t))
            out_th.append(th - alpha * d)
        return out_st, out_th

    alpha = torch.tensor(0.05, dtype=torch.float64)
    ps = [rng.standard_normal(s) for s in SHAPES]
    run = Runner(cg.optim.hypergradient(cg.optim.weight_decay(wd) >> cg.optim.adam(0.05, b1, b2, eps), beta), ps)
    theta = [torch.tensor(p) for p in ps]
    st = [(torch.zeros(s, dtype=torch.float64), torch.zeros(s, dtype=torch.float64), 0) for s in SHAPES]
    prev = None
    for _ in range(5):
        g = [torch.tensor(x) for x in torch_grad([t.numpy() for t in theta])]
        run.step(torch_grad(run.ps))
        if prev is not None:
            pst, pth, pg = prev
            hg = torch.func.grad(lambda a: loss(*step(pst, pth, pg, a)[1]))(alpha)
            alpha = alpha - beta * hg
        prev = (st, theta, g)
        st, theta = step(st, theta, g, alpha)
        close(run.state["p0/hypergradient.lr"], alpha.item())
        for i in range(len(SHAPES)):
            close(run.ps[i], theta[i].numpy())
    assert abs(alpha.item() - 0.05) > 1e-6


def test_compiled_step_adapts_the_learning_rate():
    model = cg.Para([cg.Param("W", cg.f64[3, 2])], cg.build(cg.Ob(cg.f64[3, 2], cg.f64[5, 3]),
                                                           lambda b, ins: [ins[1] @ ins[0]]))
    opt = cg.optim.hypergradient(cg.optim.sgd(0.01), beta=0.1)
    step = cg.compile(model, loss=cg.loss.mse, optimizer=opt)
    state = step.init(seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    lrs = []
    for _ in range(4):
        state, out = step(state, x, y)
        lrs.append(float(state.opt_state["W/hypergradient.lr"]))
    assert lrs[0] == 0.01 and lrs[-1] > lrs[0]  # consistent descent directions raise the rate


def test_bad_wrapped_optimizers_are_clear_errors():
    with pytest.raises(cg.CatgradError, match="exactly one stage"):
        cg.optim.hypergradient(cg.optim.clip_value(1.0))
    with pytest.raises(cg.CatgradError, match="per-parameter"):
        cg.optim.hypergradient(cg.optim.clip_norm(1.0) >> cg.optim.sgd(0.1))
    with pytest.raises(cg.CatgradError, match="wraps an optimizer"):
        cg.optim.hypergradient("adam")


def test_parse_round_trips():
    opt = cg.optim.parse("hypergradient(weight_decay(0.01) >> adam(lr=1e-3), beta=1e-7)")
    assert cg.optim.parse(repr(opt)).lens([("W", cg.f64[2])]).keys == opt.lens([("W", cg.f64[2])]).keys
    assert "W/hypergradient.adam.lr" in opt.lens([("W", cg.f64[2])]).keys


def test_adam_hd_stays_finite_where_a_gradient_entry_is_always_zero():
    """Regression: d/d lr of Adam's direction must not touch sqrt's derivative at v = 0
    (a zero tangent times an infinite derivative was NaN)."""
    run = Runner(cg.optim.hypergradient(cg.optim.adam(0.01), beta=1e-3), [np.ones(s) for s in SHAPES])
    g = [np.array([0.0, 1.0, -2.0]), np.array([[0.5, 0.0], [0.0, 0.0]])]
    for _ in range(3):
        run.step(g)
    assert all(np.isfinite(v).all() for v in run.state.values())
    assert all(np.isfinite(p).all() for p in run.ps)
