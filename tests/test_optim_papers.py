"""Optimizers torch.optim lacks, against direct NumPy transcriptions of their papers'
update rules (100 float64 steps), plus docs/mathematics.md's worked numbers."""

import numpy as np
import pytest

import catgrad as cg
from optim_util import Driver, grads_of, problem


def run_both(opt, reference, steps=100, seed=0):
    params, loss = problem(seed)
    drv = Driver(opt, params)
    ref = {k: np.array(v) for k, v in params.items()}
    st = {k: None for k in params}
    for _ in range(steps):
        g = grads_of(loss, ref)
        drv.step(g)
        for k in params:
            ref[k], st[k] = reference(ref[k], g[k], st[k])
    worst = max(np.max(np.abs(drv.params[k] - ref[k])) for k in params)
    assert worst <= 1e-9, worst
    assert max(np.max(np.abs(ref[k] - params[k])) for k in params) > 1e-3


def lion_ref(lr=1e-3, b1=0.9, b2=0.99, wd=0.1):
    def step(p, g, m):
        m = np.zeros_like(p) if m is None else m
        c = b1 * m + (1 - b1) * g
        p = p - lr * (np.sign(c) + wd * p)
        return p, b2 * m + (1 - b2) * g

    return step


def ademamix_ref(lr=1e-2, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, wd=0.01, T=0):
    def step(p, g, s):
        m1, m2, v, t = s or (0 * p, 0 * p, 0 * p, 0)
        t += 1
        a, bb3 = alpha, b3
        if T:
            a = min(t * alpha / T, alpha)
            bb3 = min(np.exp(np.log(b1) * np.log(b3) / ((1 - t / T) * np.log(b3) + (t / T) * np.log(b1))), b3)
        m1 = b1 * m1 + (1 - b1) * g
        m2 = bb3 * m2 + (1 - bb3) * g
        v = b2 * v + (1 - b2) * g * g
        m1h, vh = m1 / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * ((m1h + a * m2) / (np.sqrt(vh) + eps) + wd * p)
        return p, (m1, m2, v, t)

    return step


def novograd_ref(lr=1e-2, b1=0.95, b2=0.98, eps=1e-8, wd=0.01):
    def step(p, g, s):
        n = np.sum(g * g)
        if s is None:
            v, m = n, 0 * p
        else:
            m, v = s
            v = b2 * v + (1 - b2) * n
        m = b1 * m + g / (np.sqrt(v) + eps) + wd * p
        return p - lr * m, (m, v)

    return step


def diffgrad_ref(lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    def step(p, g, s):
        m, v, prev, t = s or (0 * p, 0 * p, 0 * p, 0)
        t += 1
        xi = 1 / (1 + np.exp(-np.abs(prev - g)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * xi * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        return p, (m, v, g, t)

    return step


def adam_ref(lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    """torch-style Adam, as a step returning the proposed new p (for the wrappers)."""

    def step(p, g, s):
        m, v, t = s or (0 * p, 0 * p, 0)
        t += 1
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        d = (lr / (1 - b1**t)) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
        return p - d, (m, v, t)

    return step


def cautious_ref(inner):
    def step(p, g, s):
        q, s = inner(p, g, s)
        d = q - p  # proposed update (downhill)
        phi = (d * (-g) > 0).astype(float)
        return p + d * phi * (phi.size / (phi.sum() + 1)), s

    return step


def lookahead_ref(inner, k=3, alpha=0.5):
    def step(p, g, s):
        inner_s, slow, t = s if s is not None else (None, p.copy(), 0)
        q, inner_s = inner(p, g, inner_s)
        t += 1
        if t % k == 0:
            slow = slow + alpha * (q - slow)
            q = slow
        return q, (inner_s, slow, t)

    return step


def test_lion():
    run_both(cg.optim.lion(1e-3, weight_decay=0.1), lion_ref())


def test_ademamix():
    run_both(cg.optim.ademamix(1e-2, weight_decay=0.01), ademamix_ref())


def test_ademamix_with_warmup_schedulers():
    run_both(cg.optim.ademamix(1e-2, weight_decay=0.01, warmup=50), ademamix_ref(T=50))


def test_novograd():
    run_both(cg.optim.novograd(1e-2, weight_decay=0.01), novograd_ref())


def test_diffgrad():
    run_both(cg.optim.diffgrad(1e-2), diffgrad_ref())


def test_cautious_adam():
    run_both(cg.optim.cautious(cg.optim.adam(1e-2)), cautious_ref(adam_ref()))


def test_cautious_momentum():
    def mom(p, g, s):
        s = 0.9 * (0 * p if s is None else s) + g
        return p - 0.02 * s, s

    run_both(cg.optim.cautious(cg.optim.momentum(0.02, 0.9)), cautious_ref(mom))


def test_lookahead_adam():
    run_both(cg.optim.lookahead(cg.optim.adam(1e-2), k=3, alpha=0.5), lookahead_ref(adam_ref(), 3, 0.5))


# -- docs/mathematics.md section 3 worked numbers (scalar, s = 1, p = 2, p' = -0.5, gamma = 0.9) --------


def put1(opt, s: dict, p, dp):
    L = opt.lens([("p", cg.f64[()])])
    state = {k: np.asarray(s.get(k.split(".")[-1], v)) for k, v in L.init([np.float64(p)]).items()}
    outs = cg.evaluate(L.lens.put, np.float64(p), *state.values(), np.float64(dp))
    return float(outs[0]), dict(zip(L.keys, (float(o) for o in outs[1:])))


def test_momentum_worked_numbers():
    p, st = put1(cg.optim.momentum(lr=1.0, gamma=0.9), {"s": 1.0}, 2.0, -0.5)
    assert st["p/momentum.s"] == pytest.approx(0.4) and p == pytest.approx(2.4)
    # the paper's sign: s' = -gamma s + p'
    p, st = put1(cg.optim.momentum(lr=1.0, gamma=0.9, paper_sign=True), {"s": 1.0}, 2.0, -0.5)
    assert st["p/momentum.s"] == pytest.approx(-1.4) and p == pytest.approx(0.6)


def test_nesterov_get_worked_number():
    lens = cg.optim.nesterov(lr=1.0, gamma=0.9).for_type(cg.f64[()])
    # docs/mathematics.md's order (s..., p): state is (lr, gamma, dampening, s)
    got = cg.evaluate(lens.get, 1.0, 0.9, 0.0, 1.0, 2.0)[0]
    assert float(got) == pytest.approx(2.9)


def test_adagrad_worked_numbers():
    # docs/mathematics.md: g' = g + p'^2, p + eps / (delta + sqrt g') p'  with eps = lr = 0.1, delta = 1e-7
    p, st = put1(cg.optim.adagrad(lr=0.1, eps=1e-7), {"sum": 1.0}, 2.0, -0.5)
    assert st["p/adagrad.sum"] == pytest.approx(1.25)
    assert p == pytest.approx(1.9552786, abs=1e-7)


def test_nesterov_lookahead_form_matches_torch_form():
    """The look-ahead Nesterov (get = p + lr gamma s) and torch's reformulation agree:
    torch's parameter is the look-ahead point of ours."""
    params, loss = problem(5)
    a = Driver(cg.optim.nesterov(0.02, 0.9), params)
    b = Driver(cg.optim.sgd(0.02, momentum=0.9, nesterov=True), params)
    for _ in range(30):
        ga = grads_of(loss, a.point())
        a.step(ga)
        b.step(grads_of(loss, b.params))
    pa = a.point()
    for k in params:
        np.testing.assert_allclose(pa[k], b.params[k], rtol=1e-9, atol=1e-12)
