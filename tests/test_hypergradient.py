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


B1, B2 = 0.9, 0.99


def t_adam(eps=1e-8):
    """Adam's direction per parameter, in torch: ``(state, theta, g, alpha) -> (state', dirs)``."""
    def run(st, theta, g, alpha):
        out_st, dirs = [], []
        for (m, v, t), gi in zip(st, g):
            m, v, t = B1 * m + (1 - B1) * gi, B2 * v + (1 - B2) * gi * gi, t + 1
            out_st.append((m, v, t))
            dirs.append(-alpha * (m / (1 - B1**t)) / (torch.sqrt(v) / np.sqrt(1 - B2**t) + eps))
        return out_st, dirs
    return run


def t_lamb(eps=1e-6, wd=0.01):
    """LAMB (You et al. 2019, Algorithm 2) in torch: Adam's ratio plus ``wd p``, scaled per
    parameter by ``||p|| / ||step||``; the learning rate is a whole-model hyperparameter."""
    def run(st, theta, g, alpha):
        out_st, dirs = [], []
        for (m, v, t), th, gi in zip(st, theta, g):
            m, v, t = B1 * m + (1 - B1) * gi, B2 * v + (1 - B2) * gi * gi, t + 1
            d = (m / (1 - B1**t)) / (torch.sqrt(v / (1 - B2**t)) + eps) + wd * th
            out_st.append((m, v, t))
            dirs.append(-alpha * torch.linalg.norm(th) / torch.linalg.norm(d) * d)
        return out_st, dirs
    return run


def t_clip(c):
    """torch.nn.utils.clip_grad_norm_'s rule on a list of tensors (global norm, eps 1e-6)."""
    def clip(us):
        total = torch.sqrt(sum(torch.sum(u * u) for u in us))
        return [u * torch.clamp(c / (total + 1e-6), max=1.0) for u in us]
    return clip


def t_weight_decay(wd):
    return lambda gs, thetas: [g + wd * th for g, th in zip(gs, thetas)]


O = cg.optim
CHAINS = {  # (catgrad optimizer given lr, torch direction (state, theta, g, alpha) -> (state', dirs))
    "weight_decay >> adam": (lambda lr: O.weight_decay(0.01) >> O.adam(lr, B1, B2, 1e-8),
                             lambda st, th, g, a: t_adam()(st, th, t_weight_decay(0.01)(g, th), a)),
    "clip_norm >> adam": (lambda lr: O.clip_norm(0.5) >> O.adam(lr, B1, B2, 1e-8),  # the gradient is clipped
                          lambda st, th, g, a: t_adam()(st, th, t_clip(0.5)(g), a)),
    "adam >> clip_norm": (lambda lr: O.adam(lr, B1, B2, 1e-8) >> O.clip_norm(0.13),  # the step is clipped (at first)
                          lambda st, th, g, a: (lambda r: (r[0], t_clip(0.13)(r[1])))(t_adam()(st, th, g, a))),
    "lamb": (lambda lr: O.lamb(lr, B1, B2, 1e-6, 0.01), lambda st, th, g, a: t_lamb()(st, th, g, a)),
}


@pytest.mark.parametrize("chain", list(CHAINS))
def test_composed_optimizer_matches_torch_grad_through_the_unrolled_step(chain):
    """hypergradient(chain), whole-model stages included: alpha_t - alpha_{t-1} = -beta d/d alpha
    of L(theta_{t-2} + dir(state_{t-2}, theta_{t-2}, g_{t-1}; alpha)), asked of torch.func.grad
    through the two unrolled steps written in torch; d (d theta / d alpha, over every parameter
    at once) against torch.func.jacfwd; parameters and the rate along 6 steps, float64."""
    make, t_dir = CHAINS[chain]
    rng = np.random.default_rng(3)
    X = torch.tensor(rng.standard_normal((4, 2)))
    Y = torch.tensor(rng.standard_normal((4, 2)))

    def loss(W, b):  # W: [3], b: [2, 2]
        return torch.sum((torch.sin(X @ b) * W[0] + W[1] - Y) ** 2) / 10 + torch.sum(torch.tanh(W) ** 2)

    def torch_grad(ps):
        ts = [torch.tensor(p, requires_grad=True) for p in ps]
        return [g.numpy() for g in torch.autograd.grad(loss(*ts), ts)]

    def step(st, theta, g, alpha):  # (new state, new theta)
        st, dirs = t_dir(st, theta, g, alpha)
        return st, [th + d for th, d in zip(theta, dirs)]

    beta = 1e-3
    alpha = torch.tensor(0.05, dtype=torch.float64)
    ps = [rng.standard_normal(s) for s in SHAPES]
    run = Runner(cg.optim.hypergradient(make(0.05), beta), ps)
    theta = [torch.tensor(p) for p in ps]
    st = [(torch.zeros(s, dtype=torch.float64), torch.zeros(s, dtype=torch.float64), 0) for s in SHAPES]
    prev = None
    for _ in range(6):
        g = [torch.tensor(x) for x in torch_grad([t.numpy() for t in theta])]
        run.step(torch_grad(run.ps))
        if prev is not None:
            pst, pth, pg = prev
            hg = torch.func.grad(lambda a: loss(*step(pst, pth, pg, a)[1]))(alpha)
            alpha = alpha - beta * hg
        prev = (st, theta, g)
        d = torch.func.jacfwd(lambda a: torch.cat([x.reshape(-1) for x in step(st, theta, g, a)[1]]))(alpha)
        st, theta = step(st, theta, g, alpha)
        close(run.state["p0/hypergradient.lr"], alpha.item())
        ours_d = np.concatenate([run.state[f"p{i}/hypergradient.d"].reshape(-1) for i in range(len(SHAPES))])
        assert np.linalg.norm(ours_d - d.numpy()) <= 1e-10 * np.linalg.norm(d.numpy())
        for i in range(len(SHAPES)):
            close(run.ps[i], theta[i].numpy())
    assert abs(alpha.item() - 0.05) > 1e-5


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
    with pytest.raises(cg.CatgradError, match="sam takes the gradient again"):
        cg.optim.hypergradient(cg.optim.sam(cg.optim.adam(1e-3)))
    with pytest.raises(cg.CatgradError, match="the same on every parameter"):
        cg.optim.hypergradient(cg.optim.assign({"W": cg.optim.clip_norm(1.0) >> cg.optim.sgd(0.1)},
                                               default=cg.optim.sgd(0.1))).lens([("W", cg.f64[2]), ("b", cg.f64[2])])
    with pytest.raises(cg.CatgradError, match=r"hypergradient: the wrapped optimizer must be the same on every "
                                              r"parameter \(use assign outside the wrapper\); no optimizer is "
                                              r"assigned to parameter"):
        cg.optim.hypergradient(cg.optim.assign({"W": cg.optim.sgd(0.1)}))  # no default: was "parameter 'p'"
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
