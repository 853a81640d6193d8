"""Model state and modes: batch norm's running statistics and dropout's key, threaded
through the step like optimizer state (train: read and written; predict: read only).

Batch norm against torch.nn.BatchNorm1d/2d in float64 (train-mode outputs, R against
autograd, running statistics after several SGD steps, eval-mode outputs); dropout's key
derived from the seed and the step count, the same numbers on numpy and torch, off in
predict; kill + resume of a CLI run equal to an uninterrupted one."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.calculus.stateful import Stateful, keyed
from catgrad.frontend.diagnostics import FrontendError
from catgrad.frontend.module import loads
from catgrad.step import TrainState
from catgrad.train import checkpoint as ckpt
from kill_util import kill_three_times_then_finish, run_env, train_cmd
from test_rd_references import rel_err

TOL = 1e-9


def model(src: str, name: str = "f"):
    return loads("import nn\n" + src, "<test>")[name]


BN1 = "def f : f64[B, 3] -> f64[B, 3] = nn.batchnorm[3]"
BN2 = "def f : f64[B, 2, 3, 4] -> f64[B, 2, 3, 4] = nn.batchnorm2d[2]"
CASES = [(BN1, torch.nn.BatchNorm1d, (6, 3)), (BN2, torch.nn.BatchNorm2d, (5, 2, 3, 4))]


@pytest.mark.parametrize("src, Torch, shape", CASES)
def test_batchnorm_train_step_running_stats_and_eval_against_torch(src, Torch, shape):
    """Five SGD steps of batch norm (then mse) on numpy and torch backends, against the
    torch module with torch.optim.SGD: the training-mode outputs, the parameters, the
    running statistics after each step, and the evaluation-mode outputs."""
    m = model(src)
    assert isinstance(m, Stateful) and [p.name.split(".")[1] for p in m.state] == ["running_mean", "running_var"]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape) * 3 + 1 for _ in range(5)]
    ys = [rng.standard_normal(shape) for _ in range(5)]
    ref = Torch(shape[1]).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal(shape[1])))
        ref.bias.copy_(torch.tensor(rng.standard_normal(shape[1])))
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    g0, b0 = ref.weight.detach().numpy().copy(), ref.bias.detach().numpy().copy()
    want_preds, want_stats = [], []
    for x, y in zip(xs, ys):
        opt.zero_grad()
        out = ref(torch.tensor(x))
        torch.mean((out - torch.tensor(y)) ** 2).backward()
        opt.step()
        want_preds.append(out.detach().numpy())
        want_stats.append((ref.running_mean.numpy().copy(), ref.running_var.numpy().copy()))
    ref.eval()
    x_eval = rng.standard_normal(shape)
    want_eval = ref(torch.tensor(x_eval)).detach().numpy()
    for backend in ("numpy", "torch"):
        step = cg.compile(m, loss="mse", optimizer="sgd(lr=0.1)", backend=backend)
        state = step.init(0)
        assert [float(np.asarray(v).sum()) for v in state.model_state.values()] == [0.0, float(shape[1])]
        pshape = m.params[0].type.shape
        flat = dict(state.flat(), **{f"param/{m.names[0]}": g0.reshape(pshape), f"param/{m.names[1]}": b0.reshape(pshape)})
        state = step.to_backend(TrainState.from_flat(flat))
        for x, y, wp, (wm, wv) in zip(xs, ys, want_preds, want_stats):
            state, out = step(state, x, y)
            assert rel_err([cg.step.to_host(out.pred)], [wp]) <= TOL
            got = [cg.step.to_host(state.model_state[n]) for n in m.state_names]
            assert rel_err(got, [wm, wv]) <= TOL, backend
        params = [cg.step.to_host(state.params[n]).reshape(-1) for n in m.names]
        assert rel_err(params, [ref.weight.detach().numpy(), ref.bias.detach().numpy()]) <= TOL
        assert rel_err([cg.step.to_host(step.predict(state, x_eval))], [want_eval]) <= TOL


@pytest.mark.parametrize("src, Torch, shape", CASES)
def test_batchnorm_reverse_derivative_against_autograd(src, Torch, shape):
    """R of the training form (parameters, state, input) against torch autograd; the
    state gets no gradient, and R[R[f]] is still a diagram that evaluates."""
    m = model(src)
    f = m.forward("train").body
    rng = np.random.default_rng(1)
    g, b = (rng.standard_normal(p.type.shape) for p in m.params)
    rm, rv = rng.standard_normal(m.S[0].shape), rng.random(m.S[1].shape) + 0.5
    x = rng.standard_normal(shape)
    tg, tb, tx = (torch.tensor(a.reshape(-1) if a is not x else a, requires_grad=True) for a in (g, b, x))
    out = torch.nn.functional.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), tg, tb, training=True, eps=1e-5)
    assert rel_err(cg.evaluate(f, g, b, rm, rv, x), [out.detach().numpy()]) <= TOL
    v = rng.standard_normal(shape)
    want = torch.autograd.grad(out, [tg, tb, tx], torch.tensor(v))
    got = cg.evaluate(cg.R(f), g, b, rm, rv, x, v)
    assert rel_err([got[0].reshape(-1), got[1].reshape(-1), got[4]], [w.numpy() for w in want]) <= TOL
    assert not np.any(got[2]) and not np.any(got[3])
    rr = cg.R(cg.R(f))
    assert len(cg.evaluate(rr, g, b, rm, rv, x, v, *got)) == len(rr.cod)


def test_state_is_checkpointed_and_resumed_with_fit(tmp_path):
    """fit with a checkpoint after 7 steps, then resume: equal to an uninterrupted run,
    running statistics and dropout key included, bit for bit."""
    m = model("def f(k : i64[], x : f32[B, 4]) = nn.dense[6, 3](nn.dropout[30](k, nn.batchnorm[6](tanh(nn.dense[4, 6](x)))))")
    data = cg.data.load("iris")
    step = cg.compile(m, loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)")
    assert step.state_names == ["batchnorm.running_mean", "batchnorm.running_var", "key"]
    full = cg.fit(step, data, epochs=2, batch_size=16, seed=4)
    ck = tmp_path / "c.safetensors"
    cg.fit(step, data, epochs=2, batch_size=16, seed=4, checkpoint=ck, max_steps=7)
    assert int(ckpt.load(ck)[0]["step"]) == 7 and "state/key" in ckpt.load(ck)[0]
    resumed = cg.fit(step, data, epochs=2, batch_size=16, seed=4, checkpoint=ck, resume=ck)
    a, b = full.state.flat(), resumed.state.flat()
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["state/key"], step.init(4).flat()["state/key"])


def test_dropout_key_per_step_same_numbers_on_numpy_and_torch_and_off_in_predict():
    m = model("def f(k : i64[], x : f64[B, 4]) = nn.dense[8, 3](nn.dropout[50](k, tanh(nn.dense[4, 8](x))))")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((16, 4)), np.eye(3)[rng.integers(0, 3, 16)]
    runs = {}
    for backend in ("numpy", "torch"):
        step = cg.compile(m, loss="softmax_cross_entropy", optimizer="sgd(lr=0.5)", backend=backend)
        state, losses, keys = step.init(5), [], []
        for _ in range(4):
            keys.append(int(cg.step.to_host(state.model_state["key"])))
            state, out = step(state, x, y)
            losses.append(out.loss)
        runs[backend] = (losses, keys, state)
        # predict: no dropout, so it equals the dense layers alone and does not depend on the key
        p = {n: cg.step.to_host(v) for n, v in state.params.items()}
        h = np.tanh(x @ p["dense.W"] + p["dense.b"]) @ p["dense_2.W"] + p["dense_2.b"]
        a = cg.step.to_host(step.predict(state, x))
        other = TrainState(state.params, state.opt_state, state.step, {"key": step.to_backend(step.init(9)).model_state["key"]})
        assert rel_err([a], [h]) <= 1e-12 and np.array_equal(a, cg.step.to_host(step.predict(other, x)))
    (ln, kn, sn), (lt, kt, st) = runs["numpy"], runs["torch"]
    assert kn == kt and len(set(kn)) == 4  # a fresh key each step, the same on both backends
    assert rel_err([np.array(ln)], [np.array(lt)]) <= 1e-12 and len(set(ln)) == 4
    assert rel_err([cg.step.to_host(sn.params[n]) for n in sn.params], [cg.step.to_host(st.params[n]) for n in sn.params]) <= 1e-12
    # the training step really drops: with the key fixed, dropout 50% changes the loss
    f = m.train
    assert not np.allclose(cg.evaluate(keyed(m).train, *m.init(0), np.int64(1), x)[0], cg.evaluate(keyed(m).eval, *m.init(0), np.int64(1), x)[0])
    assert f.dom[len(m.P)] == cg.i64[()]


CLI_MODEL = ("import nn\n"
             "def net(k : i64[], x : f32[B, 4]) = nn.dense[8, 3](nn.dropout[20](k, nn.batchnorm[8](tanh(nn.dense[4, 8](x)))))\n")


def _cmd(cat, ck, *extra):
    return train_cmd(cat, "net", 16, ck, *extra)


def test_cli_train_with_dropout_and_batchnorm_kill_resume_equals_uninterrupted_and_predict_is_deterministic(tmp_path):
    env = run_env()
    cat = tmp_path / "m.cat"
    cat.write_text(CLI_MODEL)
    ref = tmp_path / "ref.safetensors"
    subprocess.run(_cmd(cat, ref), env=env, check=True, capture_output=True, timeout=300)
    ck = tmp_path / "run.safetensors"
    steps = kill_three_times_then_finish(lambda resume: _cmd(cat, ck, *(["--resume", str(ck)] if resume else [])),
                                         ck, env, 240)
    assert all(0 < s < 240 for s in steps), steps  # killed mid-run, three times
    a, b = ckpt.load(ref)[0], ckpt.load(ck)[0]
    assert sorted(a) == sorted(b) and {"state/key", "state/batchnorm.running_var"} <= set(a)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    outs = [subprocess.run([sys.executable, "-m", "catgrad", "predict", "--checkpoint", str(ck), "--data", "iris"],
                           env=env, capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert outs[0].returncode == 0, outs[0].stderr
    assert outs[0].stdout == outs[1].stdout and len(outs[0].stdout.splitlines()) > 100
    trained = cg.load_checkpoint(ck)
    assert isinstance(trained.model, Stateful) and np.array_equal(trained.state["key"], a["state/key"])


@pytest.mark.parametrize("src, message", [
    ("def f(x : f32[B, 3]) {\n  update s = x\n  x\n}", "'update s' needs a state declared before it"),
    ("def f(x : f32[B, 3]) {\n  state s : f32[3] ~ zeros\n  update s = x\n  x\n}",
     "state 's' has type f32[3] but its update has type f32[B, 3]"),
    ("def f(x : f32[B, 3]) {\n  state s : f32[3] ~ zeros\n  update s = s\n  update s = s\n  x\n}", "updated twice"),
    ("def f(x : f32[B, 3]) = train_eval(x, sum(x, axes=1))", "the two values of train_eval must have one type"),
    ("def f(x : f32[B, 3]) = train_eval(x)", "train_eval takes two values"),
])
def test_state_errors_are_located(src, message):
    with pytest.raises(FrontendError) as e:
        loads(src, "<test>")
    assert message in str(e.value) and "<test>:" in str(e.value)


def test_dropout_layer_keeps_its_own_key_in_a_point_free_model(tmp_path):
    """nn.dropout_layer: a fresh key every training step from its state, none in predict;
    two such layers get different keys; a resumed fit equals the uninterrupted one."""
    m = model("def f = nn.dense[4, 8] >> tanh >> nn.dropout_layer[40] >> nn.dense[8, 8] >> nn.dropout_layer[40]"
              " >> nn.dense[8, 3]")
    assert m.state_names == ("dropout_layer.key", "dropout_layer_2.key") and m.dom[0] == cg.f32["B", 4]
    step = cg.compile(m, loss="softmax_cross_entropy", optimizer="sgd(lr=0.1)", dtype="f64")
    s0 = step.init(1)
    k = [int(s0.model_state[n]) for n in m.state_names]
    assert k[0] != k[1]
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 4)), np.eye(3)[rng.integers(0, 3, 32)]
    s1, o1 = step(s0, x, y)
    s1b, o1b = step(s0, x, y)
    assert o1.loss == o1b.loss and [int(s1.model_state[n]) for n in m.state_names] != k
    s2, o2 = step(TrainState(s0.params, s0.opt_state, 0, s1.model_state), x, y)  # same weights, the next keys
    assert o2.loss != o1.loss
    p = s0.params
    h = np.tanh(x @ p["dense.W"] + p["dense.b"]) @ p["dense_2.W"] + p["dense_2.b"]
    assert rel_err([step.predict(s0, x)], [h @ p["dense_3.W"] + p["dense_3.b"]]) <= 1e-12
    data = cg.data.load("iris")
    full = cg.fit(step, data, epochs=2, batch_size=16, seed=2)
    ck = tmp_path / "c.safetensors"
    cg.fit(step, data, epochs=2, batch_size=16, seed=2, checkpoint=ck, max_steps=5)
    resumed = cg.fit(step, data, epochs=2, batch_size=16, seed=2, checkpoint=ck, resume=ck)
    a, b = full.state.flat(), resumed.state.flat()
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_show_and_draw_name_the_state(tmp_path, capsys):
    from catgrad.cli import main

    cat = tmp_path / "m.cat"
    cat.write_text(CLI_MODEL + "def bn : f32[B, 4] -> f32[B, 4] = nn.batchnorm[4]\n")
    assert main(["show", str(cat)]) == 0
    out = capsys.readouterr().out
    assert "net : (i64[], f32[B, 4]) -> f32[B, 3]   [params, state]" in out and "bn  : f32[B, 4] -> f32[B, 4]   [params, state]" in out
    assert main(["show", str(cat), "bn"]) == 0
    out = capsys.readouterr().out
    assert "state:\n  batchnorm.running_mean : f32[4] ~ zeros()" in out and "evaluation:" in out
    assert main(["draw", str(cat), "bn"]) == 0
    assert "batchnorm.running_var'" in capsys.readouterr().out
    assert main(["draw", str(cat), "bn", "--grad"]) == 0
    assert "dbatchnorm.running_var" in capsys.readouterr().out


def test_a_batch_of_one_keeps_the_running_statistics_finite():
    """torch refuses a training batch of one; ours moves the running variance towards 0."""
    m = model(BN1)
    step = cg.compile(m, loss="mse")
    state, _ = step(step.init(0), np.full((1, 3), 2.0), np.ones((1, 3)))
    assert np.array_equal(state.model_state["batchnorm.running_mean"], np.full(3, 0.2))
    assert np.array_equal(state.model_state["batchnorm.running_var"], np.full(3, 0.9))
