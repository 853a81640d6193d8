"""Optimizers torch.optim lacks (Lion, AdEMAMix, NovoGrad, diffGrad, LAMB, LARS, DoG,
L-DoG, cautious, lookahead), against NumPy transcriptions of their papers' rules: the
WHOLE result after some float64 steps -- parameters and every state entry, hyperparameters
included -- to 1e-12 relative, for the defaults and, by hypothesis, other hyperparameters.

A reference is ``step(ps, gs, st) -> (ps, st)`` over every parameter at once (whole-model
rules need that); ``st`` maps catgrad's full state keys to arrays, so an unmapped,
missing or renamed key fails the comparison."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg
from optim_util import Driver, assert_close as _close, grads_of, problem

O = cg.optim


def run(opt, init, step, steps=15, seed=0, shapes=((3, 4), (4,), ()), zero=()):
    """``init(params) -> state dict`` (full keys) and ``step``: compare everything after ``steps``.
    The parameters named in ``zero`` start at 0 (a trust ratio's "either norm is 0" case)."""
    params, loss = problem(seed, shapes)
    params.update({k: np.zeros_like(params[k]) for k in zero})
    drv = Driver(opt, params)
    ps = {k: np.array(v) for k, v in params.items()}
    state = init(ps)
    assert list(drv.state) == list(state), f"keys {list(drv.state)} != reference {list(state)}"
    for k in state:
        _close(drv.state[k], state[k], f"initial {k}")
    for _ in range(steps):
        g = grads_of(loss, ps)
        drv.step(g)
        ps, state = step(ps, g, state)
    for k in params:
        _close(drv.params[k], ps[k], f"parameter {k}")
        assert np.max(np.abs(ps[k] - params[k])) > 1e-6, f"{k} did not move"
    for k in state:
        _close(drv.state[k], state[k], k)


def hyper(ps, kind, **h):
    """Hyperparameter entries of a per-parameter stage, on every parameter."""
    return {f"{n}/{kind}.{k}": np.float64(v) for n in ps for k, v in h.items()}


def per_param(kind, hypers, fields, rule):
    """init and step for a per-parameter stage: ``fields(p) -> {field: init}``,
    ``rule(p, g, s) -> (p, s)`` on ``s`` = {field: value} (hyperparameters included)."""

    def init(ps):
        out = {}
        for n, p in ps.items():
            out.update({f"{n}/{kind}.{k}": np.float64(v) for k, v in hypers.items()})
            out.update({f"{n}/{kind}.{k}": v for k, v in fields(p).items()})
        return out

    def step(ps, gs, state):
        new_ps, new_state = {}, dict(state)
        for n, p in ps.items():
            pre = f"{n}/{kind}."
            s = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}
            new_ps[n], s2 = rule(p, gs[n], s)
            new_state.update({pre + k: v for k, v in s2.items()})
        return new_ps, new_state

    return init, step


# -- per-parameter rules ---------------------------------------------------------------------


def lion_rule(p, g, s):
    c = s["b1"] * s["m"] + (1 - s["b1"]) * g
    p = p - s["lr"] * (np.sign(c) + s["weight_decay"] * p)
    return p, {"m": s["b2"] * s["m"] + (1 - s["b2"]) * g}


def ademamix_rule(p, g, s):
    t = s["t"] + 1
    b1, b2, b3, alpha, T = s["b1"], s["b2"], s["b3"], s["alpha"], s["warmup"]
    if T > 0:
        alpha = min(t * alpha / T, alpha)
        b3 = min(np.exp(np.log(b1) * np.log(b3) / ((1 - t / T) * np.log(b3) + (t / T) * np.log(b1))), b3)
    m1 = b1 * s["m1"] + (1 - b1) * g
    m2 = b3 * s["m2"] + (1 - b3) * g
    v = b2 * s["v"] + (1 - b2) * g * g
    num = m1 / (1 - b1**t) + alpha * m2
    p = p - s["lr"] * (num / (np.sqrt(v / (1 - b2**t)) + s["eps"]) + s["weight_decay"] * p)
    return p, {"m1": m1, "m2": m2, "v": v, "t": t}


def novograd_rule(averaging):
    def rule(p, g, s):
        n = np.sum(g * g)
        v = n if s["t"] == 0 else s["b2"] * s["v"] + (1 - s["b2"]) * n
        scaled = g / (np.sqrt(v) + s["eps"])
        if averaging:
            scaled = (1 - s["b1"]) * scaled
        m = s["b1"] * s["m"] + scaled + s["weight_decay"] * p
        return p - s["lr"] * m, {"m": m, "v": v, "t": s["t"] + 1}

    return rule


def diffgrad_rule(p, g, s):
    t = s["t"] + 1
    xi = 1 / (1 + np.exp(-np.abs(s["prev"] - g)))
    m = s["b1"] * s["m"] + (1 - s["b1"]) * g
    v = s["b2"] * s["v"] + (1 - s["b2"]) * g * g
    p = p - s["lr"] * xi * (m / (1 - s["b1"] ** t)) / (np.sqrt(v / (1 - s["b2"] ** t)) + s["eps"])
    return p, {"m": m, "v": v, "prev": g, "t": t}


def zeros(*names, scalars=()):
    def f(p):
        out = {n: np.zeros_like(p) for n in names}
        out.update({n: np.float64(0) for n in scalars})
        return out

    return f


def test_lion_defaults():
    h = dict(lr=1e-4, b1=0.9, b2=0.99, weight_decay=0.0)
    run(O.lion(), *per_param("lion", h, zeros("m"), lion_rule))


def test_ademamix_defaults():
    h = dict(lr=1e-3, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, weight_decay=0.0, warmup=0.0)
    run(O.ademamix(), *per_param("ademamix", h, zeros("m1", "m2", "v", scalars=("t",)), ademamix_rule))


def test_novograd_defaults():
    h = dict(lr=1e-2, b1=0.95, b2=0.98, eps=1e-8, weight_decay=0.0)
    run(O.novograd(), *per_param("novograd", h, zeros("m", scalars=("v", "t")), novograd_rule(False)))


def test_diffgrad_defaults():
    h = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8)
    run(O.diffgrad(), *per_param("diffgrad", h, zeros("m", "v", "prev", scalars=("t",)), diffgrad_rule))


unit = st.floats(0.5, 0.99)


@settings(max_examples=4, deadline=None)
@given(lr=st.floats(1e-3, 5e-2), b1=unit, b2=unit, wd=st.floats(0.0, 0.3))
def test_lion_over_hyperparameters(lr, b1, b2, wd):
    h = dict(lr=lr, b1=b1, b2=b2, weight_decay=wd)
    run(O.lion(lr, b1, b2, wd), *per_param("lion", h, zeros("m"), lion_rule))


@settings(max_examples=4, deadline=None)
@given(lr=st.floats(1e-3, 5e-2), b1=unit, b2=st.floats(0.9, 0.999), b3=st.floats(0.99, 0.9999),
       alpha=st.floats(0.5, 8.0), eps=st.floats(1e-4, 1e-1), wd=st.floats(0.0, 0.3), warmup=st.integers(0, 25))
def test_ademamix_over_hyperparameters(lr, b1, b2, b3, alpha, eps, wd, warmup):
    h = dict(lr=lr, b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps, weight_decay=wd, warmup=float(warmup))
    run(O.ademamix(lr, b1, b2, b3, alpha, eps, wd, warmup),
        *per_param("ademamix", h, zeros("m1", "m2", "v", scalars=("t",)), ademamix_rule))


@settings(max_examples=4, deadline=None)
@given(lr=st.floats(1e-3, 5e-2), b1=unit, b2=unit, eps=st.floats(1e-4, 1e-1), wd=st.floats(0.0, 0.3),
       averaging=st.booleans())
def test_novograd_over_hyperparameters(lr, b1, b2, eps, wd, averaging):
    h = dict(lr=lr, b1=b1, b2=b2, eps=eps, weight_decay=wd)
    run(O.novograd(lr, b1, b2, eps, wd, grad_averaging=averaging),
        *per_param("novograd", h, zeros("m", scalars=("v", "t")), novograd_rule(averaging)))


@settings(max_examples=4, deadline=None)
@given(lr=st.floats(1e-3, 5e-2), b1=unit, b2=st.floats(0.9, 0.999), eps=st.floats(1e-4, 1e-1))
def test_diffgrad_over_hyperparameters(lr, b1, b2, eps):
    h = dict(lr=lr, b1=b1, b2=b2, eps=eps)
    run(O.diffgrad(lr, b1, b2, eps),
        *per_param("diffgrad", h, zeros("m", "v", "prev", scalars=("t",)), diffgrad_rule))


# -- whole-model and layer-wise rules --------------------------------------------------------


def trust(num, den):
    return num / den if num > 0 and den > 0 else 1.0


def whole(kind, hypers, fields, rule):
    """A whole-model stage: hyperparameters once, under the first parameter; ``rule(h, ps, gs, ss)``."""

    def init(ps):
        out = {}
        for i, (n, p) in enumerate(ps.items()):
            if i == 0:
                out.update({f"{n}/{kind}.{k}": np.float64(v) for k, v in hypers.items()})
            out.update({f"{n}/{kind}.{k}": v for k, v in fields(p).items()})
        return out

    def step(ps, gs, state):
        names = list(ps)
        ss = [{k[len(f"{n}/{kind}."):]: v for k, v in state.items() if k.startswith(f"{n}/{kind}.")} for n in names]
        new_ps, new_ss = rule(hypers, [ps[n] for n in names], [gs[n] for n in names], ss)
        new_state = dict(state)
        for n, s in zip(names, new_ss):
            new_state.update({f"{n}/{kind}.{k}": v for k, v in s.items()})
        return dict(zip(names, new_ps)), new_state

    return init, step


def lamb_rule(h, ps, gs, ss):
    out_p, out_s = [], []
    for p, g, s in zip(ps, gs, ss):
        t = s["t"] + 1
        m = h["b1"] * s["m"] + (1 - h["b1"]) * g
        v = h["b2"] * s["v"] + (1 - h["b2"]) * g * g
        r = (m / (1 - h["b1"] ** t)) / (np.sqrt(v / (1 - h["b2"] ** t)) + h["eps"])
        d = r + h["weight_decay"] * p
        out_p.append(p - h["lr"] * trust(np.linalg.norm(p), np.linalg.norm(d)) * d)
        out_s.append({"m": m, "v": v, "t": t})
    return out_p, out_s


def lars_rule(h, ps, gs, ss):
    out_p, out_s = [], []
    for p, g, s in zip(ps, gs, ss):
        pn = np.linalg.norm(p)
        local = h["trust_coefficient"] * trust(pn, np.linalg.norm(g) + h["weight_decay"] * pn)
        v = h["momentum"] * s["v"] + h["lr"] * local * (g + h["weight_decay"] * p)
        out_p.append(p - v)
        out_s.append({"v": v})
    return out_p, out_s


def dog_rule(h, ps, gs, ss):
    x0s = [s["x0"] for s in ss]
    dist = np.sqrt(sum(np.sum((p - x0) ** 2) for p, x0 in zip(ps, x0s)))
    floor = h["reps_rel"] * (1 + np.sqrt(sum(np.sum(x0 * x0) for x0 in x0s)))
    rbar = max(ss[0]["rbar"], dist, floor)
    G = ss[0]["G"] + sum(np.sum(g * g) for g in gs)
    eta = rbar / np.sqrt(G + h["eps"])
    return [p - eta * g for p, g in zip(ps, gs)], [{"x0": s["x0"], "rbar": rbar, "G": G} for s in ss]


def dog_fields(p):
    return {"x0": p.copy(), "rbar": np.float64(0), "G": np.float64(0)}


@settings(max_examples=3, deadline=None)
@given(lr=st.floats(1e-3, 5e-2), b1=unit, b2=st.floats(0.9, 0.999), eps=st.floats(1e-6, 1e-2), wd=st.floats(0.0, 0.3))
def test_lamb_over_hyperparameters(lr, b1, b2, eps, wd):
    h = dict(lr=lr, b1=b1, b2=b2, eps=eps, weight_decay=wd)
    run(O.lamb(lr, b1, b2, eps, wd), *whole("lamb", h, zeros("m", "v", scalars=("t",)), lamb_rule))


def test_lamb_defaults_and_a_zero_parameter():
    h = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01)
    init, step = whole("lamb", h, zeros("m", "v", scalars=("t",)), lamb_rule)
    run(O.lamb(), init, step, zero=("p1",))


@settings(max_examples=3, deadline=None)
@given(lr=st.floats(0.1, 2.0), mu=st.floats(0.0, 0.95), wd=st.floats(0.0, 0.1), tc=st.floats(1e-3, 1e-1))
def test_lars_over_hyperparameters(lr, mu, wd, tc):
    h = dict(lr=lr, momentum=mu, weight_decay=wd, trust_coefficient=tc)
    run(O.lars(lr, mu, wd, tc), *whole("lars", h, zeros("v"), lars_rule))


def test_lars_defaults_and_a_zero_parameter():
    h = dict(lr=1.0, momentum=0.9, weight_decay=5e-4, trust_coefficient=1e-3)
    run(O.lars(), *whole("lars", h, zeros("v"), lars_rule), zero=("p1",))


@pytest.mark.parametrize("reps_rel,eps", [(1e-6, 1e-8), (1e-2, 1e-3), (0.5, 0.25)])
def test_dog_is_global(reps_rel, eps):
    h = dict(reps_rel=reps_rel, eps=eps)
    opt = O.dog() if (reps_rel, eps) == (1e-6, 1e-8) else O.dog(reps_rel, eps)
    run(opt, *whole("dog", h, dog_fields, dog_rule))


@pytest.mark.parametrize("reps_rel,eps", [(1e-6, 1e-8), (1e-2, 1e-3), (0.5, 0.25)])
def test_ldog_is_per_tensor(reps_rel, eps):
    h = dict(reps_rel=reps_rel, eps=eps)
    opt = O.ldog() if (reps_rel, eps) == (1e-6, 1e-8) else O.ldog(reps_rel, eps)

    def rule(p, g, s):
        (p2,), (s2,) = dog_rule(s, [p], [g], [s])
        return p2, s2

    run(opt, *per_param("ldog", h, dog_fields, rule))


# -- wrappers: state nested under the wrapper's key -------------------------------------------


def adam_rule(p, g, s):
    t = s["t"] + 1
    m = s["b1"] * s["m"] + (1 - s["b1"]) * g
    v = s["b2"] * s["v"] + (1 - s["b2"]) * g * g
    d = (s["lr"] / (1 - s["b1"] ** t)) * m / (np.sqrt(v) / np.sqrt(1 - s["b2"] ** t) + s["eps"])
    out = {"m": m, "v": v, "t": t}
    if "weight_decay" in s:  # adamw: decoupled
        return p - d - s["lr"] * s["weight_decay"] * p, out, -d
    return p - d, out, -d


def nested(prefix, s):
    return {k[len(prefix):]: v for k, v in s.items() if k.startswith(prefix)}


def adam_fields(kind, **h):
    return lambda p: {**{f"{kind}.{k}": np.float64(v) for k, v in h.items()},
                      f"{kind}.m": np.zeros_like(p), f"{kind}.v": np.zeros_like(p), f"{kind}.t": np.float64(0)}


@pytest.mark.parametrize("kind,make,h", [
    ("adam", lambda: O.adam(0.01, b1=0.8), dict(lr=0.01, b1=0.8, b2=0.999, eps=1e-8)),
    ("adamw", lambda: O.adamw(0.01, weight_decay=0.3), dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.3)),
])
def test_cautious_masks_the_inner_step(kind, make, h):
    def rule(p, g, s):
        inner = nested(f"{kind}.", s)
        _, out, d = adam_rule(p, g, inner)
        phi = (d * (-g) > 0).astype(float)
        step = d * phi * (phi.size / (phi.sum() + 1))
        if "weight_decay" in inner:
            step = step - inner["lr"] * inner["weight_decay"] * p
        return p + step, {f"{kind}.{k}": v for k, v in out.items()}

    run(O.cautious(make()), *per_param("cautious", {}, adam_fields(kind, **h), rule))


@pytest.mark.parametrize("k,alpha", [(5, 0.5), (3, 0.3), (1, 1.0)])
def test_lookahead_pulls_the_slow_weights(k, alpha):
    h = dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8)

    def fields(p):
        return {**adam_fields("adam", **h)(p), "slow": p.copy(), "t": np.float64(0)}

    def rule(p, g, s):
        q, out, _ = adam_rule(p, g, nested("adam.", s))
        t = s["t"] + 1
        slow = s["slow"]
        if t % k == 0:
            slow = slow + alpha * (q - slow)
            q = slow
        return q, {**{f"adam.{kk}": v for kk, v in out.items()}, "slow": slow, "t": t}

    opt = O.lookahead(O.adam(0.01)) if (k, alpha) == (5, 0.5) else O.lookahead(O.adam(0.01), k=k, alpha=alpha)
    run(opt, *per_param("lookahead", dict(k=k, alpha=alpha), fields, rule), steps=11)


def coupled_adam_fields(p):
    return {"weight_decay.rate": np.float64(0.2), **adam_fields("adam", lr=0.01, b1=0.9, b2=0.999, eps=1e-8)(p)}


def coupled_adam(p, g, s):
    """``weight_decay(0.2) >> adam(0.01)``: torch's Adam(weight_decay=0.2); the gradient gains 0.2 p."""
    return adam_rule(p, g + s["weight_decay.rate"] * p, nested("adam.", s))


def test_wrappers_give_every_inner_stage_the_parameter():
    """The inner chain's first stage (coupled decay) reads p, inside cautious and lookahead."""

    def cautious_rule(p, g, s):
        _, out, d = coupled_adam(p, g, s)
        phi = (d * (-g) > 0).astype(float)  # against the direction cautious receives
        return p + d * phi * (phi.size / (phi.sum() + 1)), {f"adam.{k}": v for k, v in out.items()}

    run(O.cautious(O.adam(0.01, weight_decay=0.2)), *per_param("cautious", {}, coupled_adam_fields, cautious_rule))

    def lookahead_rule(p, g, s):
        q, out, _ = coupled_adam(p, g, s)
        t = s["t"] + 1
        slow = s["slow"]
        if t % 2 == 0:
            slow = slow + 0.5 * (q - slow)
            q = slow
        return q, {**{f"adam.{k}": v for k, v in out.items()}, "slow": slow, "t": t}

    def fields(p):
        return {**coupled_adam_fields(p), "slow": p.copy(), "t": np.float64(0)}

    run(O.lookahead(O.adam(0.01, weight_decay=0.2), k=2), *per_param("lookahead", dict(k=2, alpha=0.5), fields, lookahead_rule),
        steps=7)


def test_cautious_around_a_three_stage_chain():
    """scale(0.5) >> weight_decay(0.2) >> adam(0.01) inside cautious: every inner stage runs once, in order."""

    def fields(p):
        return {"scale.factor": np.float64(0.5), **coupled_adam_fields(p)}

    def rule(p, g, s):
        _, out, d = coupled_adam(p, 0.5 * g, s)
        phi = (d * (-g) > 0).astype(float)
        return p + d * phi * (phi.size / (phi.sum() + 1)), {f"adam.{k}": v for k, v in out.items()}

    run(O.cautious(O.scale(0.5) >> O.adam(0.01, weight_decay=0.2)), *per_param("cautious", {}, fields, rule))


def test_lion_where_the_interpolated_gradient_is_zero_leaves_the_parameter_alone():
    """sign(0) = 0: an entry whose gradient and momentum are both zero does not move (Lion's
    update is lr * sign(c), and c = 0 there), while the other entries move by exactly lr."""
    d = Driver(O.lion(0.5), {"w": np.array([1.0, -2.0, 3.0])})
    for _ in range(2):
        new = d.step({"w": np.array([0.0, 0.25, -4.0])})["w"]
    np.testing.assert_array_equal(new, [1.0, -3.0, 4.0])
    g = np.array([0.0, 0.25, -4.0])
    m1 = (1 - 0.99) * g
    np.testing.assert_array_equal(d.state["w/lion.m"], 0.99 * m1 + (1 - 0.99) * g)
