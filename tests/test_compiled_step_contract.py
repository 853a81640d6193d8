"""``cg.compile`` and :class:`Step` as a user sees them: defaults (optimizer, dtype),
the state it threads (the step counter, which keys, the model state), its messages
for bad input (each checked from its first word), and what ``signature``, ``repr``,
``to_backend`` and ``predict`` give back."""

from __future__ import annotations

import numpy as np
import pytest

import catgrad as cg
from catgrad.compiler.compiled_step import _float_dtype, _world_size
from catgrad.frontend.module import loads


def dense(name, i, o, dtype=cg.f64):
    @cg.trace(dtype[i, o], dtype[o], dtype["B", i])
    def body(W, b, x):
        return cg.ops.tanh(x @ W + b.reshape(1, o).broadcast("B", o))

    return cg.Para([cg.Param(f"{name}.W", dtype[i, o]), cg.Param(f"{name}.b", dtype[o], cg.init.normal(0.1))], body)


def mlp(dtype=cg.f64):
    return dense("l1", 3, 4, dtype) >> dense("l2", 4, 2, dtype)


def batch(n=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(dtype), rng.normal(size=(n, 2)).astype(dtype)


def flat(state):
    return [np.asarray(v) for v in [*state.params.values(), *state.opt_state.values()]]


def test_the_default_optimizer_is_sgd_with_rate_one_hundredth():
    a = cg.compile(mlp(), loss="mse")
    b = cg.compile(mlp(), loss="mse", optimizer=cg.optim.sgd(0.01))
    c = cg.compile(mlp(), loss="mse", optimizer="sgd(lr=0.02)")
    sa, sb, sc = a.init(1), b.init(1), c.init(1)
    x, y = batch()
    for _ in range(3):
        sa, oa = a(sa, x, y)
        sb, ob = b(sb, x, y)
        sc, _ = c(sc, x, y)
        assert oa.loss == ob.loss
    for u, v, w in zip(flat(sa), flat(sb), flat(sc)):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, w) for u, w in zip(flat(sa)[:4], flat(sc)[:4]))
    assert repr(a.optimizer) == repr(b.optimizer)


def test_each_call_counts_one_step_and_returns_loss_and_prediction():
    step = cg.compile(mlp(), loss="mse", optimizer="momentum(lr=0.1, gamma=0.9)")
    s = step.init(0)
    x, y = batch()
    s1, out = step(s, x, y)
    s2, out2 = step(s1, x, y)
    assert (s.step, s1.step, s2.step) == (0, 1, 2)
    assert type(out.loss) is float and out.pred.shape == (5, 2)
    ref = cg.evaluate(step.diagram, *flat(s), x, y)
    n = len(s.params) + len(s.opt_state)
    assert out.loss == float(ref[n]) and np.array_equal(out.pred, ref[n + 1])
    for got, want in zip(flat(s1), ref[:n]):
        np.testing.assert_array_equal(got, want)
    assert list(s1.params) == step.param_names and list(s1.opt_state) == step.opt_keys and s1.model_state == {}
    np.testing.assert_array_equal(step.predict(s1, x), cg.evaluate(mlp().body, *s1.params.values(), x)[0])


def test_a_bit_model_reports_the_number_of_wrong_bits_as_its_loss():
    f = cg.Para([cg.Param("t", cg.bit[3])], cg.trace(cg.bit[3], cg.bit["B", 3])(
        lambda t, a: a & t.reshape(1, 3).broadcast("B", 3)))
    step = cg.compile(f, loss=cg.loss.xor, optimizer=cg.optim.gradient_update())
    s = cg.TrainState({"t": np.array([True, False, True])}, step.init().opt_state)
    x = np.array([[1, 1, 1], [0, 1, 1]], bool)
    y = np.array([[1, 1, 0], [1, 1, 1]], bool)
    _, out = step(s, x, y)
    # prediction [[1,0,1],[0,0,1]] against y: 2 + 2 wrong bits
    assert out.loss == 4.0 and out.pred.tolist() == [[True, False, True], [False, False, True]]


@pytest.mark.parametrize("given,name", [(None, None), ("f32", "f32"), ("float32", "f32"), ("float64", "f64"),
                                        ("torch.float32", "f32"), ("bfloat16", "bf16"), ("bf16", "bf16")])
def test_float_dtypes_by_any_of_their_names(given, name):
    d = _float_dtype(given)
    assert (d is None) if name is None else d.name == name
    assert _float_dtype(cg.f32) is cg.f32


@pytest.mark.parametrize("bad", ["i64", "bit", "float16", "f3", 7])
def test_other_dtypes_are_refused_with_the_choices(bad):
    with pytest.raises(cg.CatgradError, match=r"^dtype must be one of f32, f64, bf16 \(or float32, float64, bfloat16\), "
                                              r"got " + repr(bad).replace("(", r"\(") + "$"):
        _float_dtype(bad)


def test_dtype_retypes_every_float_wire_of_the_model():
    step = cg.compile(mlp(cg.f64), loss="mse", dtype="f32")
    s = step.init(0)
    assert all(v.dtype == np.float32 for v in flat(s))
    x, y = batch(dtype=np.float32)
    s1, out = step(s, x, y)
    assert out.pred.dtype == np.float32 and all(v.dtype == np.float32 for v in flat(s1))
    assert step.signature()["input"] == "f32[B, 3]" and step.signature()["output"] == "f32[B, 2]"
    same = cg.compile(mlp(cg.f32), loss="mse", dtype=cg.f32)
    assert same.signature() == step.signature()


def test_distributed_needs_the_torch_backend_and_a_process_group():
    with pytest.raises(cg.CatgradError, match=r"^distributed training runs on the torch backend \(torch.distributed\), "
                                              r"not 'numpy'$"):
        cg.compile(mlp(), loss="mse", distributed=True)
    with pytest.raises(cg.CatgradError, match=r"^distributed=True needs a torch.distributed process group: call "
                                              r"torch.distributed.init_process_group first"):
        _world_size("torch")
    assert cg.compile(mlp(), loss="mse").world_size is None


def test_bad_optimizers_and_models_are_refused_by_name():
    with pytest.raises(cg.CatgradError, match=r"^optimizer must be a cg.optim optimizer or a string, got 3$"):
        cg.compile(mlp(), loss="mse", optimizer=3)
    two = cg.Para([cg.Param("w", cg.f64[2])], cg.trace(cg.f64[2], cg.f64["B", 2])(lambda w, x: (x * w.reshape(1, 2)
                                                                                               .broadcast("B", 2), x)))
    with pytest.raises(cg.CatgradTypeError, match=r"^the step needs a model with one output wire, got "):
        cg.compile(two, loss="mse")


def test_inputs_labels_and_state_are_checked_with_located_messages():
    step = cg.compile(mlp(), loss="mse")
    s = step.init(0)
    x, y = batch()
    with pytest.raises(cg.ShapeError, match=r"^labels of shape \(5, 3\) do not fit the model's output type f64\[B, 2\] "
                                            r"\(with inputs of shape \(5, 3\)\); for classification give one-hot labels$"):
        step(s, x, np.zeros((5, 3)))
    with pytest.raises(cg.ShapeError, match=r"^inputs: expected f64\[B, 3\] but got an array of shape \(5, 4\)$"):
        step(s, np.zeros((5, 4)), y)
    with pytest.raises(cg.ShapeError, match=r"^labels of shape \(4, 2\)"):
        step(s, x, y[:4])  # the batch sizes must agree
    partial = cg.TrainState({k: v for k, v in s.params.items() if k != "l1.W"}, s.opt_state)
    with pytest.raises(cg.CatgradError, match=r"^the train state lacks l1.W: it belongs to a different model or "
                                              r"optimizer$"):
        step(partial, x, y)
    step(s, x, y)  # the shapes are now known; a bad state is still caught by name
    with pytest.raises(cg.CatgradError, match=r"^the train state lacks l1.W: "):
        step(partial, x, y)
    empty = cg.TrainState({}, {})
    adam = cg.compile(mlp(), loss="mse", optimizer="adam(lr=0.1)")
    with pytest.raises(cg.CatgradError, match=r"^the train state lacks l2.W, l2.b, l1.W, l1.b, l2.W/adam.lr: "):
        adam(empty, x, y)
    # lists are fine for data
    s2, out = step(s, x.tolist(), y.tolist())
    assert out.pred.shape == (5, 2)


def test_signature_repr_and_graph_module():
    step = cg.compile(mlp(), loss="mse", optimizer="momentum(lr=0.1, gamma=0.5)")
    sig = step.signature()
    assert sig == {
        "params": {"l2.W": "f64[4, 2]", "l2.b": "f64[2]", "l1.W": "f64[3, 4]", "l1.b": "f64[4]"},
        "opt_state": {k: t for k, t in sig["opt_state"].items()},
        "optimizer": "momentum(lr=0.1, gamma=0.5, dampening=0)",
        "input": "f64[B, 3]",
        "output": "f64[B, 2]",
    }
    assert sig["opt_state"]["l1.W/momentum.s"] == "f64[3, 4]" and list(sig["opt_state"]) == step.opt_keys
    assert "model_state" not in sig
    assert repr(step) == f"<Step {step.model!r} optimizer={step.optimizer!r} backend='numpy'>"
    with pytest.raises(cg.CatgradError, match=r"^the numpy backend builds no torch graph; compile with "
                                              r"backend='torch'$"):
        step.graph_module


def test_a_stateful_model_threads_its_state_and_predicts_in_eval_mode():
    m = loads("import nn\ndef f : f64[B, 3] -> f64[B, 3] = nn.batchnorm[3]\n", "<test>")["f"]
    step = cg.compile(m, loss="mse", optimizer="sgd(lr=0.1)")
    s = step.init(0)
    names = step.state_names
    assert list(s.model_state) == names and len(names) == 2
    sig = step.signature()
    assert list(sig["model_state"]) == names and all(v == "f64[3]" for v in sig["model_state"].values())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)) * 3 + 1
    s1, out = step(s, x, x)
    assert s1.step == 1 and list(s1.model_state) == names
    assert not np.array_equal(s1.model_state[names[0]], s.model_state[names[0]])
    # eval mode uses the running statistics, not the batch's: one row alone is not normalised to 0
    pred = step.predict(s1, x[:1])
    assert pred.shape == (1, 3) and np.abs(pred).max() > 1e-3
    with pytest.raises(cg.CatgradError, match=r"^the train state lacks the model state " + names[0]):
        step.predict(cg.TrainState(s1.params, s1.opt_state, 1, {}), x)
    with pytest.raises(cg.CatgradError, match=r"^the train state lacks " + names[0]):
        step(cg.TrainState(s1.params, s1.opt_state, 1, {}), x[:2], x[:2])
    three = loads("import nn\ndef f : f64[B, 3] -> f64[B, 3] = nn.batchnorm[3] >> nn.batchnorm[3] >> nn.batchnorm[3]\n",
                  "<test>")["f"]
    step3 = cg.compile(three, loss="mse")
    s3 = step3.init(0)
    with pytest.raises(cg.CatgradError) as err:  # (the first five named, of six)
        step3.predict(cg.TrainState(s3.params, s3.opt_state, 0, {}), x)
    assert str(err.value) == ("the train state lacks the model state " + ", ".join(step3.state_names[:5])
                              ) and len(step3.state_names) == 6
    back = step.to_backend(cg.TrainState(s1.params, s1.opt_state, 7, s1.model_state))
    assert back.step == 7 and list(back.model_state) == names and list(back.params) == step.param_names


def test_to_backend_keeps_the_keys_it_knows_and_drops_the_rest():
    step = cg.compile(mlp(), loss="mse", optimizer="momentum(lr=0.1)")
    s = step.init(3)
    extra = cg.TrainState({**s.params, "other": np.zeros(2)}, {**s.opt_state, "zz": np.zeros(1)}, 4)
    back = step.to_backend(extra)
    assert list(back.params) == step.param_names and list(back.opt_state) == step.opt_keys and back.step == 4
    for k in step.param_names:
        np.testing.assert_array_equal(back.params[k], s.params[k])
    fewer = step.to_backend(cg.TrainState({"l1.W": s.params["l1.W"]}, {}, 0))
    assert list(fewer.params) == ["l1.W"] and fewer.opt_state == {}


def test_init_depends_on_the_seed_only():
    step = cg.compile(mlp(), loss="mse", optimizer="adam(lr=0.1)")
    a, b, c = step.init(1), step.init(1), step.init(2)
    for u, v in zip(flat(a), flat(b)):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.params["l1.W"], c.params["l1.W"])
    assert a.step == 0 and a.model_state == {}
    np.testing.assert_array_equal(step.init().params["l1.W"], step.init(0).params["l1.W"])
    ref = mlp().init(1)
    for name, v in zip(mlp().names, ref):
        np.testing.assert_array_equal(a.params[name], v)


def test_the_step_keeps_the_optimizer_it_was_given_and_whether_it_donates():
    opt = cg.optim.adam(lr=0.01)
    step = cg.compile(mlp(), loss="mse", optimizer=opt)
    assert step.optimizer is opt and step.donates is False
    donating = cg.compile(mlp(), loss="mse", optimizer=opt, donate=True)
    assert donating.donates is True and donating.donating() is donating


def test_a_backend_that_cannot_donate_has_no_donating_twin():
    from test_circuit_rda import RDA

    step = cg.compile(RDA["iris3"], loss="xor", optimizer="gradient_update()", backend="circuit")
    assert step.donating() is None
    assert cg.compile(mlp(), loss="mse").donating().donates is True


def test_the_programs_name_their_inputs_and_the_prediction_keeps_the_backend_options():
    """The step's program takes ``p_<param>, s_<state>, x, y``; the prediction's takes the
    parameters and ``x``, with the options the step was compiled with."""
    step = cg.compile(mlp(), loss="mse", optimizer="momentum(lr=0.1)", reuse=False)
    assert step._run.input_names == [f"p_{n}" for n in step.param_names] + [f"s_{k}" for k in step.opt_keys] + ["x", "y"]
    assert step._run.reuse is False
    step.predict(step.init(0), batch()[0])
    assert step._predict.input_names == [f"p_{n}" for n in step.param_names] + ["x"]
    assert step._predict.reuse is False


def test_a_distributed_step_averages_gradients_over_the_world(monkeypatch):
    """``distributed=True`` puts one all_reduce into the step, for the world size the
    process group reports, and the step shards its batch by it (here a world of 2
    stands in for a process group, which a test in one process does not have)."""
    import catgrad.compiler.compiled_step as cs

    monkeypatch.setattr(cs, "_world_size", lambda backend: 2)
    step = cg.compile(mlp(), loss="mse", backend="torch", distributed=True)
    assert step.world_size == 2
    assert [b.prim.name for b, *_ in step.diagram.graph.boxes].count("all_reduce") == 1
    plain = cg.compile(mlp(), loss="mse", backend="torch")
    assert plain.world_size is None and "all_reduce" not in [b.prim.name for b, *_ in plain.diagram.graph.boxes]


def test_a_stateful_model_runs_in_train_or_eval_mode_only():
    m = loads("import nn\ndef f : f64[B, 3] -> f64[B, 3] = nn.batchnorm[3]\n", "<test>")["f"]
    assert m.forward("eval").body != m.forward("train").body
    with pytest.raises(cg.CatgradError) as e:
        m.forward("evaluate")
    assert str(e.value) == "a stateful model runs in mode 'train' or 'eval', got 'evaluate'"
