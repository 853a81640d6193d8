"""cg.optim.sam (and the step builder sam_step) against a transcription of SAM / ASAM
(Foret et al. 2021; Kwon et al. 2021, as in the authors' reference code) whose gradients come
from torch.autograd on the same model run with the torch kernels; the compiled step on both
backends, composition with chains and per-parameter assignment, parsing, and the command line
with checkpoint and resume."""

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import catgrad as cg
import models
from catgrad.cli import main

O = cg.optim

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


def reference(model, ps, x, y, rho, adaptive, update, steps, members=None, clip=None):
    """The SAM algorithm in numpy; ``update(ps, grads, t)`` is the base optimizer. ``members``
    (indices): SAM on those parameters only, the others get the gradient at ``w``; ``clip``:
    clip the gradient handed to ``update`` by its global norm (torch's clip_grad_norm_)."""
    ps = [p.copy() for p in ps]
    members = range(len(ps)) if members is None else members
    losses = []
    for t in range(1, steps + 1):
        g, loss = torch_grad(model, ps, x, y)
        losses.append(loss)
        T = {i: np.abs(ps[i]) if adaptive else np.ones_like(ps[i]) for i in members}
        norm = np.sqrt(sum(np.sum((T[i] * g[i]) ** 2) for i in members))
        e = {i: T[i] * T[i] * g[i] * rho / (norm + 1e-12) for i in members}
        g2, _ = torch_grad(model, [p + e[i] if i in e else p for i, p in enumerate(ps)], x, y)
        g2 = [g2[i] if i in e else g[i] for i in range(len(ps))]
        if clip is not None:
            total = np.sqrt(sum(np.sum(gi * gi) for gi in g2))
            g2 = [gi * min(1.0, clip / (total + 1e-6)) for gi in g2]
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

    update.m, update.v = m, v  # the moments, to compare whole optimizer states
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


# -- sam as an optimizer: cg.compile, composition, parsing, the command line ---------------------


def run_compiled(model, ps, x, y, opt, steps, backend="numpy"):
    step = cg.compile(model, loss=cg.loss.mse, optimizer=opt, backend=backend)
    state = step.init(seed=0)
    state = step.to_backend(cg.TrainState(dict(zip(model.names, ps)), {k: np.asarray(v) for k, v in state.opt_state.items()}))
    losses = []
    for _ in range(steps):
        state, out = step(state, x, y)
        losses.append(out.loss)
    host = state.flat()
    return [host[f"param/{n}"] for n in model.names], host, losses


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("adaptive", [False, True])
def test_compiled_sam_adam_matches_transcription_whole_state(backend, adaptive):
    """cg.compile(model, loss, sam(adam)) on both backends: parameters, Adam's moments and
    step counts, and the losses (at w) equal the transcription's, float64."""
    model, ps, x, y = setup(1)
    rho, steps, lr = 0.2, 6, 0.05
    ours, flat, our_losses = run_compiled(model, ps, x, y, O.sam(O.adam(lr), rho=rho, adaptive=adaptive), steps, backend)
    update = adam_update(lr)
    theirs, their_losses = reference(model, ps, x, y, rho, adaptive, update, steps)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for i, n in enumerate(model.names):
        np.testing.assert_allclose(flat[f"opt/{n}/adam.m"], update.m[i], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(flat[f"opt/{n}/adam.v"], update.v[i], rtol=1e-10, atol=1e-15)
        assert float(flat[f"opt/{n}/adam.t"]) == steps
    assert float(flat[f"opt/{model.names[0]}/sam.rho"]) == rho  # rho is state, passed through
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-12)


def test_compiled_step_is_the_sam_step():
    model, ps, x, y = setup(2)
    opt = O.adam(0.03)
    d, lens = O.sam_step(model, cg.loss.mse, opt, rho=0.1, adaptive=True)
    step = cg.compile(model, loss=cg.loss.mse, optimizer=O.sam(opt, rho=0.1, adaptive=True))
    assert step.opt_keys == lens.keys
    state = lens.init(ps)
    outs = cg.evaluate(d, *ps, *(state[k] for k in lens.keys), x, y)
    new, out = step(cg.TrainState(dict(zip(model.names, ps)), state), x, y)
    n = len(ps)
    for a, name in zip(outs[:n], model.names):
        np.testing.assert_allclose(new.params[name], a, rtol=1e-13, atol=1e-15)
    assert out.loss == pytest.approx(float(outs[-2]), rel=1e-13)


def test_sam_inside_and_around_a_chain_clips_the_perturbed_gradient():
    """sam(clip_norm(c) >> adam) and clip_norm(c) >> sam(adam) both clip the gradient taken
    at w + e by its global norm, then run Adam (the transcription does the same)."""
    model, ps, x, y = setup(3)
    rho, c, lr, steps = 0.1, 0.05, 0.05, 5
    theirs, _ = reference(model, ps, x, y, rho, False, adam_update(lr), steps, clip=c)
    inside, _, _ = run_compiled(model, ps, x, y, O.sam(O.clip_norm(c) >> O.adam(lr), rho=rho), steps)
    outside, _, _ = run_compiled(model, ps, x, y, O.clip_norm(c) >> O.sam(O.adam(lr), rho=rho), steps)
    unclipped, _ = reference(model, ps, x, y, rho, False, adam_update(lr), steps)
    for a, b, u in zip(inside, theirs, unclipped):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(outside, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert max(np.max(np.abs(a - u)) for a, u in zip(inside, unclipped)) > 1e-6  # the clip was active


def test_sam_on_some_parameters_perturbs_only_those():
    """Under assign, sam spans the parameters its rule matched: the perturbation's norm is
    theirs, and the other parameters get the gradient at w."""
    model, ps, x, y = setup(4)
    rho, lr, steps = 0.3, 0.2, 4
    opt = O.assign({"l0.*": O.sam(O.sgd(lr), rho=rho)}, default=O.sgd(lr))
    ours, flat, _ = run_compiled(model, ps, x, y, opt, steps)
    members = [i for i, n in enumerate(model.names) if n.startswith("l0.")]
    theirs, _ = reference(model, ps, x, y, rho, False, sgd_update(lr), steps, members=members)
    everywhere, _ = reference(model, ps, x, y, rho, False, sgd_update(lr), steps)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert max(np.max(np.abs(a - b)) for a, b in zip(ours, everywhere)) > 1e-6
    assert [k for k in flat if k.endswith("sam.rho")] == ["opt/l0.W/sam.rho"]


def test_rho_zero_is_the_wrapped_optimizer_and_rho_is_editable_state():
    model, ps, x, y = setup(5)
    plain, _, _ = run_compiled(model, ps, x, y, O.adam(0.05), 4)
    zero, _, _ = run_compiled(model, ps, x, y, O.sam(O.adam(0.05), rho=0.0), 4)
    for a, b in zip(plain, zero):
        np.testing.assert_array_equal(a, b)
    step = cg.compile(model, loss=cg.loss.mse, optimizer=O.sam(O.sgd(0.2), rho=0.0))
    state = cg.TrainState(dict(zip(model.names, ps)), step.init(0).opt_state).with_hyper("rho", 0.1)
    for _ in range(3):
        state, _ = step(state, x, y)
    theirs, _ = reference(model, ps, x, y, 0.1, False, sgd_update(0.2), 3)
    for n, b in zip(model.names, theirs):  # same compiled step, rho changed as data
        np.testing.assert_allclose(state.params[n], b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("text", [
    "sam(adam(lr=1e-3), rho=0.05)",
    "sam(clip_norm(1) >> adam(lr=1e-3), rho=0.05, adaptive=True)",
    "clip_norm(0.5) >> sam(sgd(lr=0.1, momentum=0.9), rho=2)",  # ASAM-sized radii are fine
    "sam(adam(lr=cosine(1e-3, 100)), rho=0.1) @ sgd(0.1)",
    "sam(hypergradient(adam(lr=1e-3), beta=1e-7), rho=0.05)",
])
def test_parse_round_trips(text):
    opt = O.parse(text)
    again = O.parse(repr(opt))
    assert repr(again) == repr(opt)
    params = [("W", cg.f64[3, 2]), ("b", cg.f64[2])]
    assert again.lens(params).keys == opt.lens(params).keys
    assert "W/sam.rho" in opt.lens(params).keys


@pytest.mark.parametrize("make, match", [
    (lambda: O.sam(O.adam(), rho=-0.1), "rho"),
    (lambda: O.sam(O.adam(), rho=float("nan")), "rho"),
    (lambda: O.sam(O.adam(), rho="0.05"), "rho"),
    (lambda: O.sam(O.adam(), rho=True), "rho"),
    (lambda: O.sam(O.adam(), adaptive=1), "adaptive"),
    (lambda: O.sam("adam"), "wraps an optimizer"),
    (lambda: O.parse("sam(adam(), rho=-1)"), "rho"),
    (lambda: O.parse("sam(adam(), rh=0.1)"), "rho"),  # did you mean
    (lambda: O.hypergradient(O.sam(O.adam())), "sam"),
    (lambda: O.cautious(O.sam(O.adam())).lens([("W", cg.f64[2])]), "per-parameter"),
])
def test_bad_sam_is_a_clear_error(make, match):
    with pytest.raises(cg.CatgradError, match=match):
        make()


WINE = """\
def wine(x : f64[B, 13]) -> f64[B, 3] {
  param W : f64[13, 3] ~ glorot
  param b : f64[3] ~ zeros
  x @ W + b
}
"""


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cli_train_and_resume_is_bit_identical(backend, tmp_path, capsys):
    cat = tmp_path / "m.cat"
    cat.write_text(WINE)
    common = [str(cat), "--model", "wine", "--data", "wine", "--optimizer", "sam(adam(lr=1e-2), rho=0.05)",
              "--batch", "16", "--seed", "3", "--json", "--quiet", "--backend", backend]
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["train", *common, "--epochs", "4", "--checkpoint", str(a)]) == 0
    out_a = capsys.readouterr().out
    assert main(["train", *common, "--epochs", "2", "--checkpoint", str(b)]) == 0
    capsys.readouterr()
    assert main(["train", *common, "--epochs", "4", "--resume", str(b), "--checkpoint", str(b)]) == 0
    out_b = capsys.readouterr().out
    ja, jb = json.loads(out_a.splitlines()[-1]), json.loads(out_b.splitlines()[-1])
    for k in ("train_loss", "train_accuracy", "test_accuracy", "steps", "epochs"):
        assert ja[k] == jb[k], k
    za, zb = load_file(a), load_file(b)
    assert "opt/W/sam.rho" in za and sorted(za) == sorted(zb)
    for k in za:
        assert za[k].tobytes() == zb[k].tobytes(), k
    assert ja["optimizer"] == "sam(adam(lr=1e-2), rho=0.05)" and ja["test_accuracy"] > 0.8
