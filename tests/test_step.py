"""The closed supervised step: docs/mathematics.md worked numbers, RDA over Z2, torch.autograd
agreement, the TrainState contract and bad input."""

import numpy as np
import pytest
import torch

import catgrad as cg


def dense(name, i, o, act=True, dtype=cg.f64):
    @cg.trace(dtype[i, o], dtype[o], dtype["B", i])
    def body(W, b, x):
        y = x @ W + b.reshape(1, o).broadcast("B", o)
        return cg.ops.sigmoid(y) if act else y

    return cg.Para([cg.Param(f"{name}.W", dtype[i, o]), cg.Param(f"{name}.b", dtype[o], cg.init.zeros())], body)


def mlp(dtype=cg.f64):
    return dense("l1", 4, 5, dtype=dtype) >> dense("l2", 5, 3, act=False, dtype=dtype)


def test_worked_example_math_section_3():
    # f(p, a) = p . a, p = (0.5, -1), a = (2, 1), b_t = 1, quadratic loss, alpha = -0.1, plain update
    f = cg.Para([cg.Param("p", cg.f64[2])], cg.trace(cg.f64[2], cg.f64[2])(lambda p, a: (p * a).sum().reshape(1)))
    step = cg.compile(f, loss=cg.loss.mse(reduction="half_sum"), optimizer=cg.optim.gradient_update(), lr_lens=-0.1)
    state = cg.TrainState({"p": np.array([0.5, -1.0])}, step.init().opt_state)
    new, out = step(state, np.array([2.0, 1.0]), np.array([1.0]))
    np.testing.assert_allclose(new.params["p"], [0.7, -0.9], rtol=1e-12)
    np.testing.assert_allclose(out.pred, [0.0])
    assert out.loss == pytest.approx(0.5)
    # functional: the input state is untouched
    np.testing.assert_array_equal(state.params["p"], [0.5, -1.0])
    assert new.step == 1 and state.step == 0
    # sgd with lr 0.1 and the default alpha = -1 is the same update
    step2 = cg.compile(f, loss=cg.loss.mse(reduction="half_sum"), optimizer=cg.optim.sgd(0.1))
    new2, _ = step2(cg.TrainState({"p": np.array([0.5, -1.0])}, step2.init().opt_state), np.array([2.0, 1.0]),
                    np.array([1.0]))
    np.testing.assert_allclose(new2.params["p"], [0.7, -0.9], rtol=1e-12)


@pytest.mark.parametrize("theta,x,y,expected", [(0, 1, 1, 1), (1, 1, 0, 0), (0, 0, 1, 0), (1, 0, 0, 1)])
def test_reverse_derivative_ascent_table(theta, x, y, expected):
    f = cg.Para([cg.Param("theta", cg.bit[1])], cg.trace(cg.bit[1], cg.bit[1])(lambda t, a: t & a))
    step = cg.compile(f, loss=cg.loss.xor, optimizer=cg.optim.gradient_update())
    state = cg.TrainState({"theta": np.array([bool(theta)])}, step.init().opt_state)
    new, out = step(state, np.array([bool(x)]), np.array([bool(y)]))
    assert new.params["theta"].dtype == np.bool_
    assert bool(new.params["theta"][0]) == bool(expected)
    assert out.loss == float(bool(y) != (bool(theta) and bool(x)))


def test_step_matches_torch_autograd_sgd():
    model = mlp()
    step = cg.compile(model, loss=cg.loss.softmax_cross_entropy, optimizer=cg.optim.sgd(0.05))
    state = step.init(seed=3)
    rng = np.random.default_rng(0)
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in state.params.items()}
    opt = torch.optim.SGD(list(ps.values()), lr=0.05)
    for _ in range(5):
        x = rng.normal(size=(7, 4))
        y = np.eye(3)[rng.integers(0, 3, 7)]
        state, out = step(state, x, y)
        h = torch.sigmoid(torch.tensor(x) @ ps["l1.W"] + ps["l1.b"])
        logits = h @ ps["l2.W"] + ps["l2.b"]
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))  # both default to the batch mean
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert out.loss == pytest.approx(loss.item(), rel=1e-10)
        np.testing.assert_allclose(out.pred, logits.detach().numpy(), rtol=1e-10)
    for k in ps:
        np.testing.assert_allclose(state.params[k], ps[k].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_compiled_step_equals_evaluate_of_its_diagram():
    step = cg.compile(mlp(), loss="mse", optimizer=cg.optim.momentum(0.1, 0.9))
    state = step.init(1)
    x, y = np.random.default_rng(1).normal(size=(3, 4)), np.eye(3)[[0, 2, 1]]
    args = [*state.params.values(), *state.opt_state.values(), x, y]
    ref = cg.evaluate(step.diagram, *args)
    got = step.program(*args)
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    n, k = len(state.params), len(state.opt_state)
    assert step.diagram.dom[n + k :] == cg.Ob(cg.f64['B', 4], cg.f64['B', 3])
    assert step.diagram.cod[n + k :] == cg.Ob(cg.f64[()], cg.f64['B', 3])


def test_trainstate_flat_roundtrip_and_signature():
    step = cg.compile(mlp(), loss="mse", optimizer=cg.optim.momentum(0.1))
    state = step.init(0)
    flat = state.flat()
    assert set(flat) == {*(f"param/{n}" for n in state.params), *(f"opt/{k}" for k in state.opt_state), "step"}
    back = cg.TrainState.from_flat(flat)
    assert back.step == 0 and list(back.params) == list(state.params)
    for k in state.params:
        np.testing.assert_array_equal(back.params[k], state.params[k])
    sig = step.signature()
    assert list(sig["params"]) == ["l2.W", "l2.b", "l1.W", "l1.b"]
    assert sig["opt_state"]["l1.W/momentum.s"] == "f64[4, 5]"
    assert step.predict(state, np.zeros((2, 4))).shape == (2, 3)


def test_changing_lr_is_data_not_a_recompile():
    step = cg.compile(mlp(), loss="mse", optimizer=cg.optim.sgd(0.1))
    state = step.init(0)
    x, y = np.ones((2, 4)), np.eye(3)[[0, 1]]
    zero = state.with_hyper("lr", 0.0)
    new, _ = step(zero, x, y)
    for k in state.params:
        np.testing.assert_array_equal(new.params[k], state.params[k])
    moved, _ = step(state, x, y)
    assert any(not np.array_equal(moved.params[k], state.params[k]) for k in state.params)
    with pytest.raises(cg.CatgradError, match="did you mean 'lr'"):
        state.with_hyper("lrr", 0.1)


def test_float32_step_keeps_dtype():
    step = cg.compile(mlp(cg.f32), loss="mse", optimizer=cg.optim.sgd(0.1))
    state = step.init(0)
    new, out = step(state, np.ones((2, 4), np.float32), np.eye(3, dtype=np.float32)[[0, 1]])
    assert all(v.dtype == np.float32 for v in new.params.values())
    assert all(v.dtype == np.float32 for v in new.opt_state.values())


def test_bad_labels_and_backend():
    step = cg.compile(mlp(), loss="mse")
    state = step.init(0)
    with pytest.raises(cg.ShapeError, match="labels of shape \\(2, 4\\) do not fit"):
        step(state, np.ones((2, 4)), np.ones((2, 4)))
    with pytest.raises(cg.CatgradError, match="unknown backend 'nupmy'.*did you mean 'numpy'"):
        cg.compile(mlp(), loss="mse", backend="nupmy")
    with pytest.raises(cg.CatgradError, match="unknown loss 'mes'.*did you mean 'mse'"):
        cg.compile(mlp(), loss="mes")
    with pytest.raises(cg.CatgradError, match="unknown optimizer 'adma'"):
        cg.compile(mlp(), loss="mse", optimizer="adma(lr=1)")
    with pytest.raises(cg.CatgradError, match="lacks"):
        step(cg.TrainState({}, {}), np.ones((2, 4)), np.ones((2, 3)))
