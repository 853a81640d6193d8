"""The dtype-generic prelude: one `nn` (and `loss`) serves f32, f64 and bf16 models, its
`float[...]` types bound where a layer is used; mismatched dtypes stay located errors
that suggest `cast`."""

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.core.retype import retype
from catgrad.frontend.diagnostics import FrontendError
from catgrad.frontend.module import loads
from test_rd_references import rel_err

LAYERS = """import nn
import loss
def mlp(x : DT[B, 4]) = nn.mlp2[4, 8, 3](x)
def deep(x : DT[B, 4]) = nn.layernorm[3](nn.residual[3](nn.layer[4, 3](nn.gelu)(x)))
def cnn(x : DT[B, 1, 6, 6]) = nn.dense[18, 2](nn.flatten[2, 3, 3](nn.maxpool2d[2](nn.conv2d_sp[1, 2, 3, 1, 1](x))))
def seq(x : DT[B, 5, 4]) = nn.pointwise[4, 2](nn.mha[4, 2, 2](nn.layernorm_seq[4](x)))
def drop(k : i64[], x : DT[B, 4]) = nn.dropout[10](k, nn.dense[4, 4](x))
def ce(y : DT[B, 3], p : DT[B, 3]) = loss.softmax_cross_entropy(y, p)
"""
NAMES = ["mlp", "deep", "cnn", "seq", "drop", "ce"]


def test_f64_and_bf16_models_are_the_f32_model_retyped():
    """Written at f64 or bf16, each layer elaborates to exactly the diagram of its f32 use
    with every float wire retyped: the prelude has no f32 left in it."""
    mods = {dt: loads(LAYERS.replace("DT", dt), f"<{dt}>") for dt in ("f32", "f64", "bf16")}
    for name in NAMES:
        a = mods["f32"][name]
        for dt in ("f64", "bf16"):
            b = mods[dt][name]
            d = getattr(b, "train", getattr(b, "body", b))
            want = retype(getattr(a, "train", getattr(a, "body", a)), {cg.f32: cg.DTYPES[dt]})
            assert d.graph.canonical() == want.graph.canonical(), (name, dt)
            assert all(t.dtype.name == dt for t in d.cod), (name, dt)
            assert all(p.type.dtype.name == dt for p in getattr(b, "params", ())), (name, dt)


def test_f64_mlp_trains_against_torch():
    m = loads(LAYERS.replace("DT", "f64"))["mlp"]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), np.eye(3)[rng.integers(0, 3, 8)]
    step = cg.compile(m, loss="softmax_cross_entropy", optimizer="sgd(lr=0.1)")
    state = step.init(0)
    ps = [torch.tensor(state.params[n], requires_grad=True) for n in m.names]
    for _ in range(3):
        state, out = step(state, x, y)
        logits = torch.relu(torch.tensor(x) @ ps[0] + ps[1]) @ ps[2] + ps[3]
        ref = torch.nn.functional.cross_entropy(logits, torch.tensor(y.argmax(1)), reduction="mean")
        grads = torch.autograd.grad(ref, ps)
        with torch.no_grad():
            for p, g in zip(ps, grads):
                p -= 0.1 * g
        assert abs(out.loss - float(ref.detach())) <= 1e-12 * abs(float(ref.detach()))
    assert rel_err([state.params[n] for n in m.names], [p.detach().numpy() for p in ps]) <= 1e-12


def test_bf16_model_trains_on_the_torch_backend():
    m = loads(LAYERS.replace("DT", "bf16"))["mlp"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)]
    # sgd: Adam's b2 = 0.999 rounds to 1 in bf16 (its hyperparameters take the parameters' dtype)
    step = cg.compile(m, loss="softmax_cross_entropy", optimizer="sgd(lr=0.5)", backend="torch")
    state = step.init(0)
    assert {str(v.dtype) for v in state.params.values()} == {"torch.bfloat16"}
    xt, yt = torch.tensor(x, dtype=torch.bfloat16), torch.tensor(y, dtype=torch.bfloat16)
    losses = []
    for _ in range(60):
        state, out = step(state, xt, yt)
        losses.append(out.loss)
    assert losses[-1] < 0.6 * losses[0]
    p = {n: v.float() for n, v in state.params.items()}
    ref = torch.relu(xt.float() @ p["mlp2.dense.W"] + p["mlp2.dense.b"]) @ p["mlp2.dense_2.W"] + p["mlp2.dense_2.b"]
    pred = step.predict(state, xt)
    assert pred.dtype == torch.bfloat16
    assert torch.allclose(pred.float(), ref, rtol=0.05, atol=0.05)


def test_a_layer_whose_inputs_fix_no_float_dtype_is_f32_and_cast_changes_it():
    mod = loads("import nn\ndef e(ids : i64[B, 3]) = nn.embedding[5, 2](ids)\n"
                "def e64(ids : i64[B, 3]) = cast(nn.embedding[5, 2](ids), dtype=f64)\n"
                "def g = nn.dense[2, 2]\n")
    assert mod["e"].cod[0] == cg.f32["B", 3, 2] and mod["e64"].cod[0] == cg.f64["B", 3, 2]
    assert mod["g"].dom[0] == cg.f32["B", 2]  # on its own, a generic layer is f32


@pytest.mark.parametrize("src, message", [
    ("def f(x : f64[B, 4], y : f32[B, 3]) = nn.concat2(x, y)",
     "expects f64[B, m] (its dtype is the variable float, fixed to f64 by an earlier input) but the argument has "
     "type f32[B, 3]; convert it with cast, e.g. cast(<argument>, dtype=f64)"),
    ("def f(x : f64[B, 4]) = nn.dense[4, 3](x) + nn.dense[4, 3](cast(x, dtype=f32))",
     "add needs inputs of one type, got f64[B, 3] and f32[B, 3]; convert one of them with cast"),
    ("def f(x : i64[B, 4]) = nn.dense[4, 3](x)", "expects float[B, 4] (any float dtype) but the argument has type i64[B, 4]"),
    ("def f(x : flot[B, 4]) = x", "unknown dtype 'flot' (did you mean 'float'?)"),
])
def test_mismatched_dtypes_are_located_errors_suggesting_cast(src, message):
    with pytest.raises(FrontendError) as e:
        loads("import nn\n" + src, "<test>")
    text = str(e.value)
    assert message in text and "<test>:2:" in text, text


def test_the_dtype_variable_in_a_users_definition():
    mod = loads("def twice(x : float[B, n]) -> float[B, n] {\n  param s : float[n] ~ ones\n  x * s * 2.0\n}\n"
                "def a(x : bf16[B, 2]) = twice(x)\ndef b(x : f64[B, 3]) = twice(x)\n")
    assert mod["a"].params[0].type == cg.bf16[2] and mod["b"].params[0].type == cg.f64[3]
    assert np.array_equal(cg.evaluate(mod["b"], np.ones(3), np.full((2, 3), 1.5))[0], np.full((2, 3), 3.0))


def test_bf16_batchnorm_and_dropout_model_steps_on_torch():
    """State takes the model's dtype too: bf16 running statistics, an i64 key."""
    m = loads("import nn\ndef f(k : i64[], x : bf16[B, 4]) = nn.dense[4, 3](nn.dropout[20](k, nn.batchnorm[4](x)))")["f"]
    step = cg.compile(m, loss="mse", optimizer="sgd(lr=0.1)", backend="torch")
    state = step.init(0)
    x = torch.randn(16, 4, dtype=torch.bfloat16, generator=torch.Generator().manual_seed(0))
    new, out = step(state, x * 3 + 1, torch.zeros(16, 3, dtype=torch.bfloat16))
    ms = new.model_state
    assert ms["batchnorm.running_mean"].dtype == torch.bfloat16 and ms["key"].dtype == torch.int64
    want = 0.1 * (x * 3 + 1).float().mean(0)
    assert torch.allclose(ms["batchnorm.running_mean"].float(), want, rtol=0.05, atol=0.02)
    assert np.isfinite(out.loss) and int(ms["key"]) != int(state.model_state["key"])
