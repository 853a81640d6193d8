"""Whole-model stages: global-norm clipping against torch.nn.utils.clip_grad_norm_,
LAMB and LARS against NumPy transcriptions of their papers (whole state, float64),
their composition with per-parameter stages, and the two optimizer regressions
(schedules as ``lr=``; cautious AdamW decays every coordinate)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import catgrad as cg
from catgrad.compiler import compile_numpy
from optim_util import Driver, grads_of, problem

O = cg.optim
SHAPES = [(3, 4), (4,), (), (2, 2)]


def directions(opt, grads: list):
    """The outgoing directions of ``opt`` at p = 0 for incoming directions ``grads``."""
    L = opt.lens([(f"p{i}", cg.f64[np.shape(g)]) for i, g in enumerate(grads)])
    ps = [np.zeros(np.shape(g)) for g in grads]
    outs = cg.evaluate(L.lens.put, *ps, *L.init(ps).values(), *grads)
    return outs[: len(grads)]


def torch_clipped(grads: list, max_norm: float, per_tensor=False) -> list:
    ts = [torch.zeros(np.shape(g), dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(ts, grads):
        t.grad = torch.tensor(g)
    groups = [[t] for t in ts] if per_tensor else [ts]
    for grp in groups:
        torch.nn.utils.clip_grad_norm_(grp, max_norm)
    return [t.grad.numpy() for t in ts]


def test_clip_norm_is_global_worked_example():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 4.0])
    got = directions(O.clip_norm(1.0), [a, b])
    ref = torch_clipped([a, b], 1.0)
    for x, y in zip(got, ref):
        np.testing.assert_allclose(x, y, rtol=1e-15, atol=0)
    np.testing.assert_allclose(got[0], [0.6, 0.0], rtol=1e-6)  # torch's eps 1e-6 in the norm
    np.testing.assert_allclose(got[1], [0.0, 0.8], rtol=1e-6)
    per = directions(O.clip_norm_per_tensor(1.0), [a, b])  # the explicit per-tensor variant
    np.testing.assert_allclose(per[0], [1.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(per[1], [0.0, 1.0], rtol=1e-6)


class Clipper:
    """One compiled put per optimizer, reused across hypothesis examples."""

    def __init__(self, opt):
        self.L = opt.lens([(f"p{i}", cg.f64[s]) for i, s in enumerate(SHAPES)])
        self.put = compile_numpy(self.L.lens.put)

    def __call__(self, grads):
        ps = [np.zeros(s) for s in SHAPES]
        return self.put(*ps, *self.L.init(ps).values(), *grads)[: len(SHAPES)]


GLOBAL, PER = Clipper(O.clip_norm(1.5)), Clipper(O.clip_norm_per_tensor(1.5))
arrays = st.tuples(*(st.lists(st.floats(-3, 3), min_size=int(np.prod(s)), max_size=int(np.prod(s))) for s in SHAPES))


@settings(max_examples=40, deadline=None)
@given(arrays, st.sampled_from([0.01, 0.3, 1.0, 10.0]))
def test_clip_norm_equals_torch_clip_grad_norm(values, scale):
    grads = [scale * np.reshape(np.array(v, dtype=float), s) for v, s in zip(values, SHAPES)]
    for ours, per in ((GLOBAL, False), (PER, True)):
        for x, y in zip(ours(grads), torch_clipped(grads, 1.5, per_tensor=per)):
            np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-300)


def test_whole_model_stage_spans_what_it_is_applied_to():
    a, b, c = np.array([3.0, 0.0]), np.array([0.0, 4.0]), np.array([12.0])
    # under @, a whole-model stage sees only its own wire: per-tensor clipping
    got = directions(O.clip_norm(1.0) @ O.clip_norm(1.0) @ O.identity(), [a, b, c])
    ref = directions(O.clip_norm_per_tensor(1.0) @ O.clip_norm_per_tensor(1.0) @ O.identity(), [a, b, c])
    for x, y in zip(got, ref):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(got[2], c)
    # under assign, it spans the wires its rule matched: a and b jointly, c alone
    L = O.assign({"[ab]": O.clip_norm(1.0)}, default=O.clip_norm(1.0)).lens(
        [("a", cg.f64[2]), ("b", cg.f64[2]), ("c", cg.f64[1])])
    assert [k for k in L.keys if k.endswith("max_norm")] == ["a/clip_norm.max_norm", "c/clip_norm.max_norm"]
    ps = [np.zeros(2), np.zeros(2), np.zeros(1)]
    outs = cg.evaluate(L.lens.put, *ps, *L.init(ps).values(), a, b, c)
    ref = torch_clipped([a, b], 1.0) + torch_clipped([c], 1.0)
    for x, y in zip(outs[:3], ref):
        np.testing.assert_allclose(x, y, rtol=1e-15)


def test_whole_model_hyperparameters_are_state_of_the_first_wire():
    L = (O.clip_norm(1.0) >> O.sgd(1.0)).lens([("W", cg.f64[2]), ("b", cg.f64[2])])
    assert L.keys == ["W/clip_norm.max_norm", "W/clip_norm.eps", "W/sgd.lr", "b/sgd.lr"]
    ps = [np.zeros(2), np.zeros(2)]
    s = L.init(ps)
    s["W/clip_norm.max_norm"] = np.float64(2.0)  # edited as data: the bound changes
    outs = cg.evaluate(L.lens.put, *ps, *s.values(), np.array([3.0, 0.0]), np.array([0.0, 4.0]))
    np.testing.assert_allclose(outs[0], [1.2, 0.0], rtol=1e-6)


def test_whole_model_bad_input():
    with pytest.raises(cg.CatgradTypeError, match="one dtype"):
        O.clip_norm(1.0).lens([("W", cg.f64[2]), ("b", cg.f32[2])])
    with pytest.raises(cg.CatgradError, match="cautious.*must be per-parameter.*clip_norm is a whole-model stage"):
        O.cautious(O.clip_norm(1.0) >> O.adam()).lens([("W", cg.f64[2])])
    with pytest.raises(cg.CatgradTypeError, match="lamb optimizer needs float"):
        O.lamb().lens([("W", cg.bit[2])])
    with pytest.raises(cg.CatgradError, match="names must be distinct.*'W'"):
        O.clip_norm(1.0).lens([("W", cg.f64[2]), ("W", cg.f64[2])])


def test_compiled_step_with_global_clipping_equals_torch():
    @cg.trace(cg.f64[3, 2], cg.f64[2], cg.f64["B", 3])
    def body(W, b, x):
        return x @ W + b.reshape(1, 2).broadcast("B", 2)

    model = cg.Para([cg.Param("W", cg.f64[3, 2]), cg.Param("b", cg.f64[2])], body)
    step = cg.compile(model, loss=cg.loss.mse(reduction="half_sum"), optimizer=O.clip_norm(0.5) >> O.sgd(0.1))
    state = step.init(1)
    tw = {k: torch.tensor(v, requires_grad=True) for k, v in state.params.items()}
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(size=(4, 3)) * 3, rng.normal(size=(4, 2))
        state, out = step(state, x, y)
        pred = torch.tensor(x) @ tw["W"] + tw["b"]
        loss = 0.5 * ((pred - torch.tensor(y)) ** 2).sum()
        loss.backward()
        total = torch.nn.utils.clip_grad_norm_(list(tw.values()), 0.5)
        assert total > 0.5  # clipping is active
        with torch.no_grad():
            for t in tw.values():
                t -= 0.1 * t.grad
                t.grad = None
        assert out.loss == pytest.approx(loss.item(), rel=1e-12)
    for k, t in tw.items():
        np.testing.assert_allclose(state.params[k], t.detach().numpy(), rtol=1e-12, atol=1e-14)


# -- LAMB and LARS against the papers' updates ---------------------------------------------


def tnorm(x):
    return float(np.sqrt(np.sum(x * x)))


def ratio(a, b):
    return a / b if a > 0 and b > 0 else 1.0


def lamb_ref(ps, gs, st, lr=1e-2, b1=0.9, b2=0.999, eps=1e-6, wd=0.01):
    """You et al. 2019, Algorithm 2 (phi = identity), layer = parameter tensor."""
    out = {}
    for k, p in ps.items():
        m, v, t = st.get(k, (0 * p, 0 * p, 0))
        t += 1
        m = b1 * m + (1 - b1) * gs[k]
        v = b2 * v + (1 - b2) * gs[k] ** 2
        r = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        d = r + wd * p
        out[k] = p - lr * ratio(tnorm(p), tnorm(d)) * d
        st[k] = (m, v, t)
    return out


def lars_ref(ps, gs, st, lr=0.5, mu=0.9, wd=5e-4, eta=1e-3):
    """You, Gitman, Ginsburg 2017, Algorithm 1."""
    out = {}
    for k, p in ps.items():
        g = gs[k]
        local = eta * ratio(tnorm(p), tnorm(g) + wd * tnorm(p))
        v = mu * st.get(k, 0 * p) + lr * local * (g + wd * p)
        out[k] = p - v
        st[k] = v
    return out


@pytest.mark.parametrize("name", ["lamb", "lars"])
def test_trust_ratio_optimizers_equal_the_papers(name):
    params, loss = problem(seed=4)
    params["p3"] = np.zeros(3)  # a zero-initialised bias: the ratio falls back to 1
    opt, ref_step = (O.lamb(1e-2), lamb_ref) if name == "lamb" else (O.lars(0.5), lars_ref)
    drv = Driver(opt, params)
    ref, st = {k: np.array(v) for k, v in params.items()}, {}
    for _ in range(60):
        g = grads_of(lambda tp: loss({k: v for k, v in tp.items() if k != "p3"}) + (tp["p3"] - 1.0).pow(2).sum(), ref)
        drv.step(g)
        ref = ref_step(ref, g, st)
    for k in params:
        np.testing.assert_allclose(drv.params[k], ref[k], rtol=1e-12, atol=1e-14)
        if name == "lamb":
            m, v, t = st[k]
            np.testing.assert_allclose(drv.state[f"{k}/lamb.m"], m, rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(drv.state[f"{k}/lamb.v"], v, rtol=1e-12, atol=1e-300)
            assert drv.state[f"{k}/lamb.t"] == t == 60
        else:
            np.testing.assert_allclose(drv.state[f"{k}/lars.v"], st[k], rtol=1e-12, atol=1e-300)
    assert max(np.max(np.abs(ref[k] - params[k])) for k in params) > 1e-2  # it moved


# -- regressions ---------------------------------------------------------------------------


def test_every_lr_accepts_a_schedule():
    sched = cg.schedule.cosine(0.1, 100)
    for make in (O.sgd, O.momentum, O.nesterov, O.adafactor, O.adam, O.adamw, O.lion, O.lamb, O.lars, O.rmsprop,
                 O.adagrad, O.nadam, O.radam, O.adamax, O.adadelta, O.ademamix, O.novograd, O.diffgrad):
        L = make(lr=sched).lens([("W", cg.f64[2, 2])])
        assert "W/" + make.__name__ + ".lr.peak" in L.keys, make.__name__
    with pytest.raises(cg.CatgradError, match="^nesterov: hyperparameter lr"):
        O.nesterov(lr="fast")
    with pytest.raises(cg.CatgradTypeError, match="lr 0 or 1.*cosine"):
        O.sgd(lr=sched).lens([("t", cg.bit[2])])


def test_constant_schedule_is_the_constant_lr():
    """A schedule in any stage reads as its current value: ``constant(v)`` is ``v``,
    in get (Nesterov's look-ahead) as in put."""
    params, loss = problem(seed=2)
    for make in (O.nesterov, O.adafactor, O.lamb, O.sgd):
        a, b = Driver(make(lr=0.02), params), Driver(make(lr=cg.schedule.constant(0.02)), params)
        for _ in range(10):
            ga, gb = grads_of(loss, a.point()), grads_of(loss, b.point())
            a.step(ga)
            b.step(gb)
        for k in params:
            np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-14, atol=1e-15)


def test_nesterov_schedule_lookahead():
    """get = p + lr_t gamma s, put: s' = gamma s + u, p' = p + lr_t s' (lr_t the schedule's
    value at this update), against a NumPy transcription."""
    sched = cg.schedule.exponential(0.05, 0.9)
    params, loss = problem(seed=3)
    drv = Driver(O.nesterov(lr=sched, gamma=0.9), params)
    p, s = {k: np.array(v) for k, v in params.items()}, {k: 0 * v for k, v in params.items()}
    for t in range(20):
        lr = 0.05 * 0.9**t
        look = {k: p[k] + lr * 0.9 * s[k] for k in p}
        for k, v in drv.point().items():
            np.testing.assert_allclose(v, look[k], rtol=1e-13, atol=1e-15)
        g = grads_of(loss, look)
        drv.step(g)
        for k in p:
            s[k] = 0.9 * s[k] - g[k]
            p[k] = p[k] + lr * s[k]
    for k in p:
        np.testing.assert_allclose(drv.params[k], p[k], rtol=1e-12, atol=1e-14)


def c_adamw_ref(lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, wd=0.1):
    """The authors' C-AdamW: decay every coordinate, mask only the Adam step."""

    def step(p, g, s):
        m, v, t = s or (0 * p, 0 * p, 0)
        t += 1
        p = p * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        norm_grad = m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
        mask = (m * g > 0).astype(float)
        mask = mask * (mask.size / (mask.sum() + 1))
        return p - (lr / (1 - b1**t)) * norm_grad * mask, (m, v, t)

    return step


def test_cautious_adamw_decays_every_coordinate():
    params, loss = problem(seed=6)
    drv = Driver(O.cautious(O.adamw(1e-2, weight_decay=0.1)), params)
    ref, st = {k: np.array(v) for k, v in params.items()}, {k: None for k in params}
    ref_step = c_adamw_ref()
    masked = 0
    for _ in range(60):
        g = grads_of(loss, ref)
        drv.step(g)
        for k in params:
            m_prev = st[k][0] if st[k] else 0 * ref[k]
            masked += int(np.sum((0.9 * m_prev + 0.1 * g[k]) * g[k] <= 0))
            ref[k], st[k] = ref_step(ref[k], g[k], st[k])
    assert masked > 0  # some coordinates were masked: the decay there is what is tested
    for k in params:
        np.testing.assert_allclose(drv.params[k], ref[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(drv.state[f"{k}/cautious.adamw.m"], st[k][0], rtol=1e-12, atol=1e-300)


# -- mixing the two kinds of stage ----------------------------------------------------------


def test_per_parameter_stages_around_a_whole_model_stage():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 4.0])
    got = directions(O.scale(2.0) >> O.clip_norm(1.0) >> O.scale(3.0), [a, b])
    ref = torch_clipped([2 * a, 2 * b], 1.0)
    for x, y in zip(got, ref):
        np.testing.assert_allclose(x, 3 * y, rtol=1e-15)


class Shift(O.WholeModelStage):
    """A test-only whole-model stage with a get: every point moves by ``c p / ||p||``
    (``||p||`` over all wires), the shape of SAM's perturbation."""

    kind = "shift"

    def __init__(self, c=0.5):
        super().__init__(c=c)

    def get(self, h, ss, ps):
        total = cg.ops.sqrt(sum(((p * p).sum() for p in ps[1:]), (ps[0] * ps[0]).sum()))
        return [p + h["c"] * p / total for p in ps]

    def update(self, h, ss, ps, us):
        return [{} for _ in us], us


def test_whole_model_get_moves_every_point():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 4.0])
    L = (O.sgd(1.0) >> Shift(0.5)).lens([("a", cg.f64[2]), ("b", cg.f64[2])])
    got = cg.evaluate(L.lens.get, a, b, *L.init([a, b]).values())
    np.testing.assert_allclose(got[0], a * 1.1, rtol=1e-15)
    np.testing.assert_allclose(got[1], b * 1.1, rtol=1e-15)


class Crossed(O.Optimizer):
    """A recipe putting two whole-model stages in opposite orders on two wires."""

    def resolve(self, params):
        from catgrad.optim.base import Group

        g1, g2 = Group(O.clip_norm(1.0), [0, 1]), Group(O.clip_norm(2.0), [0, 1])
        return [[g1, g2], [g2, g1]]


def test_whole_model_stages_in_crossed_orders_are_refused():
    L = Crossed().lens([("a", cg.f64[2]), ("b", cg.f64[2])])
    with pytest.raises(cg.CatgradError, match="wait for each other"):
        L.lens.put
