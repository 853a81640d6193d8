"""Cases the optimizer tests did not reach, found by mutation testing of catgrad/optim (see
docs/testing.md, "catgrad/optim -- the other files"): each compares whole results (parameters
and every optimizer state entry, or the exact message) against an independent reference.

- Adafactor on parameters of rank 3 (factored over the last two axes, batched over the first)
  and with ``lr`` above ``1/sqrt(t)``, against torch.optim.Adafactor;
- the initial state in the state types' dtype when the parameters are given in another dtype,
  and never sharing memory with the caller's arrays (DoG's ``x0``, Lookahead's slow weights),
  so a step that writes in place (the donating numpy step) leaves them alone;
- cautious masking where the gradient has exact zeros;
- ``unrolled`` with one step and with a learning-rate lens, ``sam_step`` with its default radius
  and a learning-rate lens, against torch; their messages; ``repr`` of SAM with a scheduled
  radius and of ASAM.
"""

import numpy as np
import pytest
import torch

import catgrad as cg
import models
from optim_util import Driver, assert_close
from test_optim_papers_state import adam_fields, adam_rule, nested, per_param, run as run_papers, zeros
from test_optim_torch_state import compare
from test_sam import reference as sam_reference, setup as sam_setup, sgd_update, torch_grad

O = cg.optim
T = torch.optim


# -- Adafactor beyond matrices -----------------------------------------------------------------

RANK3 = ((2, 3, 4), (3, 5), (4,), ())


@pytest.mark.parametrize("ours,theirs", [
    (lambda: O.adafactor(), lambda p: T.Adafactor(p)),
    # lr = 0.5 > 1/sqrt(t) from t = 5 on: the relative step size rho = min(lr, 1/sqrt(t)) takes its second branch
    (lambda: O.adafactor(0.5, weight_decay=0.05), lambda p: T.Adafactor(p, lr=0.5, weight_decay=0.05)),
], ids=["defaults", "large-lr"])
def test_adafactor_factors_the_last_two_axes_of_a_rank_3_parameter(ours, theirs):
    """Row and column moments of shapes (2, 3, 1) and (2, 1, 4), one factorisation per leading index."""
    drv = compare(ours(), theirs, shapes=RANK3)
    assert drv.state["p0/adafactor.row"].shape == (2, 3, 1)
    assert drv.state["p0/adafactor.col"].shape == (2, 1, 4)


# -- the initial state: the state types' dtype, and copies ------------------------------------


def _f32_lens(opt, arrays):
    return opt.lens([(f"p{i}", cg.f32[np.shape(a)]) for i, a in enumerate(arrays)])


F64_VALUES = [np.array([[0.1, -0.7, 1.0 / 3.0], [2.5, 0.3, -1.1]]), np.array([1.0 / 7.0, -4.0])]


def _expected_initial(opt_name, ps):
    """Independent expectations for the initial state of f32 parameters ``ps`` (float64 arrays)."""
    f32 = np.float32
    eps32 = np.finfo(np.float32).eps
    out = {}
    for i, p in enumerate(ps):
        n = f"p{i}"
        if opt_name == "adagrad":
            out.update({f"{n}/adagrad.lr": f32(0.01), f"{n}/adagrad.eps": f32(1e-10),
                        f"{n}/adagrad.sum": np.full(p.shape, 0.25, f32)})
        elif opt_name == "ldog":
            out.update({f"{n}/ldog.reps_rel": f32(1e-6), f"{n}/ldog.eps": f32(1e-8), f"{n}/ldog.x0": p.astype(f32),
                        f"{n}/ldog.rbar": f32(0), f"{n}/ldog.G": f32(0)})
        elif opt_name == "dog":
            if i == 0:
                out.update({f"{n}/dog.reps_rel": f32(1e-6), f"{n}/dog.eps": f32(1e-8)})
            out.update({f"{n}/dog.x0": p.astype(f32), f"{n}/dog.rbar": f32(0), f"{n}/dog.G": f32(0)})
        elif opt_name == "lookahead":
            out.update({f"{n}/lookahead.k": f32(5), f"{n}/lookahead.alpha": f32(0.5),
                        f"{n}/lookahead.sgd.lr": f32(0.1), f"{n}/lookahead.slow": p.astype(f32),
                        f"{n}/lookahead.t": f32(0)})
        elif opt_name == "adafactor":
            out.update({f"{n}/adafactor.{k}": f32(v) for k, v in
                        dict(lr=0.01, decay=-0.8, eps2=1e-3, d=1.0, weight_decay=0.0, eps1=eps32).items()})
            if p.ndim >= 2:
                out.update({f"{n}/adafactor.row": np.zeros(p.shape[:-1] + (1,), f32),
                            f"{n}/adafactor.col": np.zeros(p.shape[:-2] + (1, p.shape[-1]), f32)})
            else:
                out[f"{n}/adafactor.v"] = np.zeros(p.shape, f32)
            out[f"{n}/adafactor.t"] = f32(0)
    return out


MAKERS = {
    "adagrad": lambda: O.adagrad(initial_accumulator_value=0.25),
    "dog": O.dog,
    "ldog": O.ldog,
    "lookahead": lambda: O.lookahead(O.sgd(0.1)),
    "adafactor": O.adafactor,
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_initial_state_of_f32_parameters_given_as_float64_is_f32(name):
    """Every entry in its state type's dtype, with the expected value (Adafactor's eps1: float32's epsilon)."""
    lens = _f32_lens(MAKERS[name](), F64_VALUES)
    state = lens.init(F64_VALUES)
    expected = _expected_initial(name, F64_VALUES)
    assert sorted(state) == sorted(expected)
    for (k, v), t in zip(state.items(), lens.state_types):
        v = np.asarray(v)
        assert v.dtype == np.float32 and np.dtype(t.dtype.numpy) == np.float32, f"{k}: {v.dtype}"
        assert v.shape == t.shape == np.shape(expected[k]), f"{k}: {v.shape}"
        np.testing.assert_array_equal(v, expected[k], err_msg=k)


@pytest.mark.parametrize("make,field", [(O.dog, "dog.x0"), (O.ldog, "ldog.x0"),
                                        (lambda: O.lookahead(O.adam(0.01)), "lookahead.slow")])
def test_initial_copies_of_the_parameters_are_copies(make, field):
    """x0 / the slow weights hold the initial values even after the caller's arrays change."""
    ps = [np.array(a) for a in F64_VALUES]
    lens = make().lens([(f"p{i}", cg.f64[a.shape]) for i, a in enumerate(ps)])
    state = lens.init(ps)
    for i, p in enumerate(ps):
        assert not np.shares_memory(state[f"p{i}/{field}"], p)
        p[...] = 99.0
        np.testing.assert_array_equal(state[f"p{i}/{field}"], F64_VALUES[i])


@pytest.mark.parametrize("optimizer", ["dog()", "ldog()", "lookahead(adam(lr=0.01), k=2)"])
def test_the_donating_numpy_step_equals_the_plain_one_for_optimizers_that_copy_the_parameters(optimizer):
    """The donating step writes the new state into the arrays it is given; the initial-parameter
    copies must not be those arrays."""
    model = models.mlp([3, 4, 2], act="tanh", last=None, batch=5)
    plain = cg.compile(model, loss=cg.loss.mse, optimizer=optimizer, backend="numpy")
    donated = plain.donating()
    assert donated.donates
    s1, s2 = plain.init(0), donated.init(0)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
        s1, o1 = plain(s1, x, y)
        s2, o2 = donated(s2, x, y)
        assert o1.loss == o2.loss
    for d1, d2 in ((s1.params, s2.params), (s1.opt_state, s2.opt_state)):
        assert d1.keys() == d2.keys()
        for k in d1:
            np.testing.assert_array_equal(np.asarray(d2[k]), np.asarray(d1[k]), err_msg=k)


# -- cautious where the gradient is exactly zero -----------------------------------------------


def test_cautious_drops_coordinates_whose_gradient_is_zero():
    """phi = [d u > 0] is 0 where u = 0, whatever the inner step d (Adam's momentum keeps d != 0)."""
    h = dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8)

    def rule(p, g, s):
        _, out, d = adam_rule(p, g, nested("adam.", s))
        phi = (d * (-g) > 0).astype(float)
        return p + d * phi * (phi.size / (phi.sum() + 1)), {f"adam.{k}": v for k, v in out.items()}

    init, step = per_param("cautious", {}, adam_fields("adam", **h), rule)
    rng = np.random.default_rng(3)
    params = {"p0": rng.standard_normal((4, 5)), "p1": rng.standard_normal(7)}
    drv = Driver(O.cautious(O.adam(0.01)), params)
    ps, state = dict(params), init(params)
    zeros_seen = 0
    for t in range(6):
        g = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        if t:  # after the first step: a third of the coordinates get an exact zero gradient
            for k in g:
                g[k][rng.random(g[k].shape) < 1 / 3] = 0.0
                zeros_seen += int(np.sum(g[k] == 0))
        drv.step(g)
        ps, state = step(ps, g, state)
    assert zeros_seen > 10
    assert list(drv.state) == list(state)
    for k in params:
        assert_close(drv.params[k], ps[k], f"parameter {k}")
    for k in state:
        assert_close(drv.state[k], state[k], k)


# -- unrolled and sam_step ---------------------------------------------------------------------

B = 4


@pytest.mark.parametrize("k,c", [(1, None), (2, -0.5)])
def test_unrolled_sgd_with_one_step_and_with_a_learning_rate_lens_against_torch(k, c):
    """U_k's value and its gradient (initial weights and learning rate), against torch.func;
    ``lr_lens = c`` is the loss cotangent, so the direction is ``c grad`` (default c = -1)."""
    model = models.mlp([3, 4, 2], act="tanh", last=None, batch=B)
    U, lens = O.unrolled(model, cg.loss.mse, O.sgd(0.3), k, **({} if c is None else {"lr_lens": c}))
    cc = -1.0 if c is None else c
    rng = np.random.default_rng(7)
    ps = [rng.standard_normal(t.shape) * 0.8 for t in model.P]
    batches = [(rng.standard_normal((B, 3)), rng.standard_normal((B, 2))) for _ in range(k + 1)]
    state = lens.init(ps)
    flat = [a for xy in batches for a in xy]
    args = [*ps, *(state[key] for key in lens.keys), *flat]
    (value,) = cg.evaluate(U, *args)
    grads = cg.evaluate(cg.grad(U), *args)
    n = len(ps)

    def run(params, lr):
        params = list(params)
        for t in range(k):
            x, y = (torch.tensor(a) for a in batches[t])
            (pred,) = cg.evaluate(model.body, *params, x, backend="torch")
            g = torch.autograd.grad(torch.mean((pred - y) ** 2), params, create_graph=True)
            params = [p + lr * cc * gi for p, gi in zip(params, g)]
        x, y = (torch.tensor(a) for a in batches[k])
        (pred,) = cg.evaluate(model.body, *params, x, backend="torch")
        return torch.mean((pred - y) ** 2)

    tp, lr = [torch.tensor(p) for p in ps], torch.tensor(0.3, dtype=torch.float64)
    assert_close(value, run([t.requires_grad_() for t in tp], lr).item(), "U_k", rtol=1e-12)
    tp = [t.detach() for t in tp]
    theirs_p, theirs_lr = torch.func.grad(run, argnums=(0, 1))(tp, lr)
    for i, t in enumerate(theirs_p):
        assert_close(grads[i], t.numpy(), f"d U / d {model.names[i]}", rtol=1e-10)
    ours = dict(zip(lens.keys, grads[n: n + len(lens.keys)]))
    assert_close(sum(ours[f"{p}/sgd.lr"] for p in model.names), theirs_lr.item(), "d U / d lr", rtol=1e-10)


def test_unrolled_messages():
    model = models.mlp([3, 2], batch=B)
    with pytest.raises(cg.CatgradError, match=r"unrolled: optimizer must be a cg\.optim optimizer, got 'adam'"):
        O.unrolled(model, cg.loss.mse, "adam", 2)
    with pytest.raises(cg.CatgradError, match="unrolled: k must be a positive number of steps, got True"):
        O.unrolled(model, cg.loss.mse, O.sgd(0.1), True)
    with pytest.raises(cg.CatgradError, match="unrolled: k must be a positive number of steps, got 2.0"):
        O.unrolled(model, cg.loss.mse, O.sgd(0.1), 2.0)


def _run_sam_step(model, ps, x, y, steps, **kw):
    d, lens = O.sam_step(model, cg.loss.mse, O.sgd(0.2), **kw)
    state = lens.init(ps)
    first = state[f"{model.names[0]}/sam.rho"]
    ps, n = [p.copy() for p in ps], len(ps)
    for _ in range(steps):
        out = cg.evaluate(d, *ps, *(state[k] for k in lens.keys), x, y)
        ps = [np.asarray(o) for o in out[:n]]
        state = dict(zip(lens.keys, out[n:-2]))
    return ps, state, first


def test_sam_step_default_radius_is_0_05():
    model, ps, x, y = sam_setup(2)
    ours, state, rho = _run_sam_step(model, ps, x, y, 3)
    assert float(rho) == 0.05 and float(state[f"{model.names[0]}/sam.rho"]) == 0.05
    theirs, _ = sam_reference(model, ps, x, y, 0.05, False, sgd_update(0.2), 3)
    for n, a, b in zip(model.names, ours, theirs):
        assert_close(a, b, n, rtol=1e-10)


def test_sam_step_with_a_learning_rate_lens():
    """lr_lens = c: every direction (the one SAM normalises, and the one at w + e) is c grad."""
    model, ps, x, y = sam_setup(4)
    c, rho, lr = -0.5, 0.1, 0.2
    ours, _, _ = _run_sam_step(model, ps, x, y, 3, rho=rho, lr_lens=c)
    theirs = [p.copy() for p in ps]
    for _ in range(3):
        u = [c * g for g in torch_grad(model, theirs, x, y)[0]]
        norm = np.sqrt(sum(np.sum(ui * ui) for ui in u))
        perturbed = [p - rho * ui / (norm + 1e-12) for p, ui in zip(theirs, u)]
        u2 = [c * g for g in torch_grad(model, perturbed, x, y)[0]]
        theirs = [p + lr * ui for p, ui in zip(theirs, u2)]
    for n, a, b in zip(model.names, ours, theirs):
        assert_close(a, b, n, rtol=1e-10)
    plain, _, _ = _run_sam_step(model, ps, x, y, 3, rho=rho)
    assert max(np.max(np.abs(a - b)) for a, b in zip(ours, plain)) > 1e-4  # the lens made a difference


def test_sam_repr_with_a_scheduled_radius_and_asam():
    inner = O.adam(0.001)
    assert repr(O.sam(inner, rho=0.1, adaptive=True)) == "sam(adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08), rho=0.1, adaptive=True)"
    assert repr(O.sam(inner, rho=0.1)) == "sam(adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08), rho=0.1)"
    sched = O.sam(O.sgd(0.1), rho=cg.schedule.cosine(0.1, 100))
    text = "sam(sgd(lr=0.1), rho=cosine(peak=0.1, decay_steps=100, final=0, warmup_steps=0))"
    assert repr(sched) == text
    assert repr(O.parse(text)) == text


# -- hypergradient: a wrapped get that reads the learning rate, and its messages ---------------


def test_hypergradient_of_nesterov_reads_the_current_rate_in_the_get():
    """Nesterov-HD: the gradient is taken at ``p + alpha_{t-1} gamma s``; then
    ``alpha_t = alpha_{t-1} - beta <g, d>``, ``s' = gamma s - g``, ``p' = p + alpha_t s'`` and
    ``d' = d(alpha s')/d alpha = s'`` (transcribed from the paper's rule, not differentiated)."""
    from test_hypergradient import SHAPES, quadratic

    grad, alpha, beta, gamma = quadratic(2), 0.05, 0.02, 0.9
    ps = [np.full(s, 0.7) for s in SHAPES]
    drv = Driver(O.hypergradient(O.nesterov(alpha, gamma), beta=beta), {f"p{i}": p for i, p in enumerate(ps)})
    p, s, d = [x.copy() for x in ps], [np.zeros(sh) for sh in SHAPES], [np.zeros(sh) for sh in SHAPES]
    alphas = []
    for _ in range(8):
        point = [pi + alpha * gamma * si for pi, si in zip(p, s)]
        ours = drv.point()
        for i in range(len(SHAPES)):
            assert_close(ours[f"p{i}"], point[i], f"get of p{i}")
        g = grad(point)
        drv.step({f"p{i}": gi for i, gi in enumerate(g)})
        alpha = alpha - beta * sum(np.sum(gi * di) for gi, di in zip(g, d))
        s = [gamma * si - gi for si, gi in zip(s, g)]
        p = [pi + alpha * si for pi, si in zip(p, s)]
        d = [si.copy() for si in s]
        alphas.append(alpha)
    assert len(set(np.round(alphas, 12))) > 4  # the rate moved
    expected = {"p0/hypergradient.lr": alpha, "p0/hypergradient.beta": beta}
    for i in range(len(SHAPES)):
        expected.update({f"p{i}/hypergradient.nesterov.lr": alpha, f"p{i}/hypergradient.nesterov.gamma": gamma,
                         f"p{i}/hypergradient.nesterov.dampening": 0.0, f"p{i}/hypergradient.nesterov.s": s[i],
                         f"p{i}/hypergradient.d": d[i]})
        assert_close(drv.params[f"p{i}"], p[i], f"p{i}")
    assert sorted(drv.state) == sorted(expected)
    for k, v in expected.items():
        assert_close(drv.state[k], v, k)


def test_hypergradient_messages():
    import re

    with pytest.raises(cg.CatgradError, match=re.escape(
            "hypergradient: the wrapped optimizer must be the same on every parameter (use assign outside the wrapper)")):
        O.hypergradient(O.assign({"W": O.sgd(0.2)}, default=O.sgd(0.1))).lens([("W", cg.f64[2]), ("b", cg.f64[2])])
    scheduled = O.adam(lr=cg.schedule.cosine(1e-3, 100))
    with pytest.raises(cg.CatgradError, match=re.escape(
            f"hypergradient needs exactly one stage with a numeric learning rate lr in {scheduled!r}, found 1")):
        O.hypergradient(scheduled)
    two = O.sgd(lr=cg.schedule.cosine(0.1, 100)) >> O.sgd(0.1)  # a numeric lr and a scheduled one: which to adapt?
    with pytest.raises(cg.CatgradError, match=re.escape(
            f"hypergradient needs exactly one stage with a numeric learning rate lr in {two!r}, found 2")):
        O.hypergradient(two)


# -- parse: edges of the number rules, the messages the other tests did not reach --------------


def test_parse_accepts_the_closed_unit_interval_bounds():
    """Decay rates lie in [0, 1] and Lookahead's alpha in (0, 1]: 1 itself is accepted."""
    assert repr(O.parse("sgd(lr=0.1, momentum=1)")) == "momentum(lr=0.1, gamma=1, dampening=0)"
    assert repr(O.parse("lookahead(sgd(lr=0.1), alpha=1)")) == "lookahead(sgd(lr=0.1), k=5, alpha=1)"
    assert repr(O.parse("nesterov(lr=0.1, gamma=1)")) == "nesterov(lr=0.1, gamma=1)"


@pytest.mark.parametrize("text,message", [
    ("adam(lr=1", "cannot parse optimizer 'adam(lr=1': expected ')' at column 10, found the end"),
    ("(sgd", "cannot parse optimizer '(sgd': expected ')' at column 5, found the end"),
    ("(sgd adam)", "cannot parse optimizer '(sgd adam)': expected ')' at column 6, found 'adam'"),
    ("sgd(lr=1_.5)", "cannot parse optimizer 'sgd(lr=1_.5)': bad number '1_.5' at column 8"),
    # underscores follow Python's rules in integers too: only single ones, between digits
    ("sgd(lr=1__0)", "cannot parse optimizer 'sgd(lr=1__0)': bad number '1__0' at column 8"),
    ("sgd(lr=1_)", "cannot parse optimizer 'sgd(lr=1_)': bad number '1_' at column 8"),
], ids=["unclosed", "unclosed-paren", "paren-then-name", "bad-float", "double-underscore", "trailing-underscore"])
def test_parse_messages(text, message):
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(text)
    assert str(e.value) == message


def test_an_error_inside_a_factory_names_the_factory(monkeypatch):
    """A TypeError or ValueError raised while building becomes a syntax error that starts with the name."""
    import sys

    P = sys.modules["catgrad.optim.parse"]  # (catgrad.optim.parse, the attribute, is the function)

    def broken(lr=0.1):
        raise ValueError("no such thing")

    real = P._registry()
    monkeypatch.setattr(P, "_registry", lambda: {**real, "broken": broken})
    with pytest.raises(O.OptimizerSyntaxError, match=r"^broken\(\): no such thing$"):
        O.parse("broken(0.5)")
    assert repr(O.parse("sgd(lr=1_000)")) == "sgd(lr=1000)"


# -- AdEMAMix's b3 scheduler at b1 = 0 ----------------------------------------------------------


def test_ademamix_warmup_with_b1_zero_is_finite_and_takes_the_limit():
    """At b1 = 0 the scheduler's exponent ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1) is inf/inf;
    its limit gives b3_t = min(b3^(T/t), b3). (It was NaN: every parameter became NaN.)"""
    T = 6.0

    def rule(p, g, s):
        t = s["t"] + 1
        b3 = min(s["b3"] ** (T / t), s["b3"])
        alpha = min(t * s["alpha"] / T, s["alpha"])
        m1 = g  # b1 = 0
        m2 = b3 * s["m2"] + (1 - b3) * g
        v = s["b2"] * s["v"] + (1 - s["b2"]) * g * g
        p = p - s["lr"] * ((m1 + alpha * m2) / (np.sqrt(v / (1 - s["b2"] ** t)) + s["eps"]) + s["weight_decay"] * p)
        return p, {"m1": m1, "m2": m2, "v": v, "t": t}

    h = dict(lr=0.01, b1=0.0, b2=0.99, b3=0.95, alpha=2.0, eps=1e-8, weight_decay=0.1, warmup=T)
    run_papers(O.ademamix(0.01, b1=0.0, b2=0.99, b3=0.95, alpha=2.0, weight_decay=0.1, warmup=6),
               *per_param("ademamix", h, zeros("m1", "m2", "v", scalars=("t",)), rule), steps=10)
