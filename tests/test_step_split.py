"""The step split at the gradient: gradient diagram against torch.autograd, the step as
gradient -> gradient transform -> optimizer put (one diagram), and bad transforms."""

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.step import gradient_diagram, lr_put, step_diagram
from test_step import mlp

O = cg.optim


def setup(opt):
    model = mlp()
    loss = cg.loss.softmax_cross_entropy(model.cod[0], reduction="sum")
    L = opt.lens(model.params)
    values = model.init(2)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 4)), np.eye(3)[rng.integers(0, 3, 6)]
    return model, loss, L, values, x, y


def torch_grads(names, values, x, y):
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in zip(names, values)}
    h = torch.sigmoid(torch.tensor(x) @ ps["l1.W"] + ps["l1.b"])
    logits = h @ ps["l2.W"] + ps["l2.b"]
    loss = -(torch.tensor(y) * torch.log_softmax(logits, -1)).sum()
    loss.backward()
    return [ps[k].grad.numpy() for k in names], loss.item(), logits.detach().numpy()


@pytest.mark.parametrize("opt", [O.sgd(0.1), O.nesterov(0.1, 0.9)], ids=["sgd", "nesterov"])
def test_gradient_diagram_equals_torch_autograd_at_the_optimizers_point(opt):
    model, loss, L, values, x, y = setup(opt)
    state = L.init(values)
    if "nesterov" in repr(opt):  # a nonzero buffer, so the look-ahead point differs from p
        state = {k: (np.full_like(v, 0.3) if k.endswith(".s") else v) for k, v in state.items()}
    G = gradient_diagram(model, loss, L, lr_put(None, loss.cod))
    outs = cg.evaluate(G, *values, *state.values(), x, y)
    n = len(values)
    point = cg.evaluate(L.lens.get, *values, *state.values())
    if "nesterov" in repr(opt):
        assert not np.allclose(point[0], values[0])
    grads, lv, logits = torch_grads(model.names, point, x, y)
    for d, g in zip(outs[:n], grads):
        np.testing.assert_allclose(d, -g, rtol=1e-12, atol=1e-15)  # downhill
    assert float(outs[n]) == pytest.approx(lv, rel=1e-12)
    np.testing.assert_allclose(outs[n + 1], logits, rtol=1e-12)


def test_step_is_put_after_gradient():
    opt = O.clip_norm(0.5) >> O.adam(1e-2)
    model, loss, L, values, x, y = setup(opt)
    lp = lr_put(None, loss.cod)
    state = list(L.init(values).values())
    step = cg.evaluate(step_diagram(model, loss, L, lp), *values, *state, x, y)
    n = len(values)
    g = cg.evaluate(gradient_diagram(model, loss, L, lp), *values, *state, x, y)
    upd = cg.evaluate(L.lens.put, *values, *state, *g[:n])
    for a, b in zip(step, list(upd) + list(g[n:])):
        np.testing.assert_array_equal(a, b)


def test_gradient_transform_sits_between_gradient_and_update():
    model, loss, L, values, x, y = setup(O.sgd(0.1))
    lp = lr_put(None, loss.cod)
    P = model.P
    n = len(P)

    def halve(b, ins):
        return [0.5 * d for d in ins[n:]]

    half = cg.core.diagram.build(P @ P, halve)
    state = list(L.init(values).values())
    got = cg.evaluate(step_diagram(model, loss, L, lp, gradient_transform=half), *values, *state, x, y)
    L2 = O.sgd(0.05).lens(model.params)
    ref = cg.evaluate(step_diagram(model, loss, L2, lp), *values, *L2.init(values).values(), x, y)
    for a, b in zip(got[:n], ref[:n]):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-17)
    assert not np.allclose(got[0], cg.evaluate(step_diagram(model, loss, L, lp), *values, *state, x, y)[0])
    # a stateless optimizer is a transform too: identity changes nothing
    same = cg.evaluate(step_diagram(model, loss, L, lp, gradient_transform=O.identity()), *values, *state, x, y)
    plain = cg.evaluate(step_diagram(model, loss, L, lp), *values, *state, x, y)
    for a, b in zip(same, plain):
        np.testing.assert_array_equal(a, b)


def test_bad_gradient_transforms():
    model, loss, L, values, x, y = setup(O.sgd(0.1))
    lp = lr_put(None, loss.cod)
    with pytest.raises(cg.CatgradError, match="must be stateless.*clip_norm.max_norm"):
        step_diagram(model, loss, L, lp, gradient_transform=O.clip_norm(1.0))
    with pytest.raises(cg.CatgradTypeError, match="maps \\(params, directions\\)"):
        step_diagram(model, loss, L, lp, gradient_transform=cg.core.diagram.id(*model.P))
    with pytest.raises(cg.CatgradError, match="a gradient transform is a diagram"):
        step_diagram(model, loss, L, lp, gradient_transform="allreduce")
