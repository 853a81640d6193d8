"""The nn prelude's new layers, written in .cat, against torch: layer norm, attention,
conv/pool layers, embedding, dropout; image-shaped data through the CLI; bad geometry
as a located error at check time."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import catgrad as cg
from catgrad.errors import ShapeError
from catgrad.frontend.diagnostics import FrontendError
from catgrad.core.retype import retype
from catgrad.frontend.module import loads
from test_rd_references import rel_err

TOL = 1e-9


def model(src: str, name: str):
    return loads("import nn\n" + src, "<test>")[name]


def check_against_torch(para, ref, xs, rng, int_inputs=()):
    """Forward and R (parameters and float inputs) of a model, retyped to float64,
    against torch autograd."""
    d = retype(para, {cg.f32: cg.f64})
    params = [rng.standard_normal(p.type.shape) for p in para.params]
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    ts = [torch.tensor(x, requires_grad=i not in int_inputs) for i, x in enumerate(xs)]
    want = ref(dict(zip([p.name for p in para.params], ps)), *ts)
    ours = cg.evaluate(d, *params, *xs)
    assert rel_err(ours, [want.detach().numpy()]) <= TOL
    v = rng.standard_normal(want.shape)
    leaves = ps + [t for i, t in enumerate(ts) if i not in int_inputs]
    grads = torch.autograd.grad(want, leaves, torch.tensor(v))
    got = cg.evaluate(cg.R(d), *params, *xs, v)
    got = list(got[: len(params)]) + [g for i, g in enumerate(got[len(params):]) if i not in int_inputs]
    assert rel_err(got, [g.numpy() for g in grads]) <= TOL


def test_layernorm_against_torch():
    rng = np.random.default_rng(0)
    m = model("def f = nn.layernorm[5]", "f")
    check_against_torch(m, lambda p, x: F.layer_norm(x, (5,), p["layernorm.g"], p["layernorm.b"], eps=1e-5),
                        [rng.standard_normal((4, 5))], rng)
    m = model("def f = nn.layernorm_seq[3]", "f")
    check_against_torch(m, lambda p, x: F.layer_norm(x, (3,), p["layernorm_seq.g"], p["layernorm_seq.b"], eps=1e-5),
                        [rng.standard_normal((2, 4, 3))], rng)


def test_attention_against_torch():
    rng = np.random.default_rng(1)

    def ref(p, x):
        q, k, v = (x @ p[f"attention.W{c}"] for c in "qkv")
        a = torch.softmax(q @ k.transpose(1, 2) / np.sqrt(4.0), dim=2)
        return (a @ v) @ p["attention.Wo"]

    check_against_torch(model("def f = nn.attention[4]", "f"), ref, [rng.standard_normal((2, 3, 4))], rng)

    def ref_mha(p, x):  # torch's own multi-head attention with our weights laid out as its in/out projections
        d, h, e = 6, 2, 3
        w_in = torch.cat([p[f"mha.W{c}"].reshape(d, h * e).T for c in "qkv"])
        out, _ = F.multi_head_attention_forward(
            x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), d, h, w_in, None, None, None, False, 0.0,
            p["mha.Wo"].reshape(h * e, d).T, None, training=False, need_weights=False)
        return out.transpose(0, 1)

    check_against_torch(model("def f = nn.mha[6, 2, 3]", "f"), ref_mha, [rng.standard_normal((2, 4, 6))], rng)


def test_conv_layers_against_torch():
    rng = np.random.default_rng(2)
    src = """def f : f32[B, 2, 9, 10] -> f32[B, 5] =
      nn.conv2d_sp[2, 3, 3, 2, 1] >> relu >> nn.avgpool2d[2] >> nn.conv2d[3, 5, 1] >> nn.maxpool2d[2]
      >> nn.flatten[5, 1, 1]"""

    def ref(p, x):
        h = F.avg_pool2d(F.relu(F.conv2d(x, p["conv2d_sp.W"], p["conv2d_sp.b"].reshape(-1), stride=2, padding=1)), 2)
        h = F.max_pool2d(F.conv2d(h, p["conv2d.conv2d_sp.W"], p["conv2d.conv2d_sp.b"].reshape(-1)), 2)
        return h.flatten(1)

    check_against_torch(model(src, "f"), ref, [rng.standard_normal((3, 2, 9, 10))], rng)


def test_embedding_against_torch():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 7, size=(3, 4))
    check_against_torch(model("def f = nn.embedding[7, 2]", "f"), lambda p, i: F.embedding(i, p["embedding.E"]),
                        [ids], rng, int_inputs=(0,))


def test_dropout_keeps_the_mean_and_is_reproducible():
    m = model("def f(k : i64[], x : f32[B, 4]) = nn.dropout[25](k, x)", "f")
    f = m.train  # training drops; evaluation is the identity
    x = np.ones((20000, 4), np.float32)
    assert np.array_equal(cg.evaluate(m.eval, np.int64(1), x)[0], x)
    a, b, c = (cg.evaluate(f, np.int64(k), x)[0] for k in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(np.unique(a)) == {0.0, np.float32(4 / 3)}
    assert abs((a == 0).mean() - 0.25) < 0.01 and abs(a.mean() - 1.0) < 0.02
    t = cg.evaluate(f, torch.tensor(1), torch.tensor(x), backend="torch")[0].numpy()
    assert np.array_equal(a, t)


def test_concat_layer_and_mean():
    f = model("def f(x : f32[B, 2], y : f32[B, 3]) = nn.mean_rows(nn.concat2(x, y))", "f")
    x, y = np.ones((2, 2), np.float32), np.zeros((2, 3), np.float32)
    np.testing.assert_allclose(cg.evaluate(f, x, y)[0], [0.4, 0.4])


# -- errors where the shapes are known ----------------------------------------------------------


@pytest.mark.parametrize("src,message", [
    ("def f : f32[B, 1, 4, 4] -> f32[B, 2, 0, 0] = nn.conv2d[1, 2, 5]",
     "conv: the kernel spans 5 pixels on spatial axis 0 but the padded input has only 4"),
    ("def f(x : f32[B, 3, 6, 6], w : f32[4, 1, 3, 3]) = conv(x, w, groups=2)",
     "conv: 3 input and 4 output channels must both divide by groups = 2"),
    ("def f(x : f32[B, 3, 1, 6]) = nn.maxpool2d[2](x)", "maxpool: the kernel spans 2 pixels on spatial axis 0"),
    ("def f(x : f32[B, 3]) = nn.flatten[3, 2, 2](x)", "expects f32[B, 3, 2, 2] but the argument has type f32[B, 3]"),
])
def test_bad_geometry_is_a_located_error(src, message):
    with pytest.raises(FrontendError) as e:
        loads("import nn\n" + src, "<test>")
    text = str(e.value)
    assert message in text and "<test>:2:" in text


def test_embedding_index_out_of_range_is_a_clear_runtime_error():
    m = model("def f = nn.embedding[5, 2]", "f")
    with pytest.raises(ShapeError, match="index 5 is out of range for a table of 5 rows"):
        cg.evaluate(m, np.zeros((5, 2), np.float32), np.array([[0, 5]]))


# -- image-shaped data through the training loop and the CLI ----------------------------------------


def test_digits_are_image_shaped_for_conv_models(tmp_path):
    src = tmp_path / "tiny.cat"
    src.write_text("import nn\n"
                   "def cnn(x : f32[B, 1, 8, 8]) -> f32[B, 10] =\n"
                   "  nn.dense[64, 10](nn.flatten[4, 4, 4](nn.maxpool2d[2](relu(nn.conv2d_sp[1, 4, 3, 1, 1](x)))))\n"
                   "def wrong(x : f32[B, 1, 4, 16]) -> f32[B, 10] = nn.dense[64, 10](nn.flatten[1, 4, 16](x))\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "catgrad", "train", str(src), "--data", "digits",  # noqa: E731
                                     "--quiet", *a], capture_output=True, text=True, timeout=300)
    ok = run("--model", "cnn", "--epochs", "2", "--optimizer", "adam(lr=1e-2)")
    assert ok.returncode == 0, ok.stderr
    acc = float(ok.stdout.split("test accuracy ")[1])
    assert acc > 0.85
    bad = run("--model", "wrong", "--epochs", "1")
    assert bad.returncode == 1
    assert "takes examples of shape (1, 4, 16)" in bad.stderr and "(1, 8, 8)" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_mixed_dtypes_suggest_cast():
    with pytest.raises(FrontendError, match=r"convert one of them with cast"):
        loads("def f(x : f32[3], y : f64[3]) = x + y", "<test>")
    f = loads("def f(x : f32[3], y : f64[3]) = cast(x, dtype=f64) + y", "<test>")["f"]
    assert cg.evaluate(f, np.ones(3, np.float32), np.ones(3))[0].dtype == np.float64

# batch norm (training and evaluation, running statistics): tests/test_model_state.py
