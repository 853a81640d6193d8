"""The torch backend: the step as one torch.fx GraphModule, agreeing with numpy.

Cross-backend agreement (100 float64 steps of every example's training step, digits
accuracy), the properties the GraphModule promises (placeholders in, outputs out,
functional, constants as buffers, torch targets, one graph for every batch size,
cached by structure, ``.to(device)``, ``torch.compile`` with no graph break), dtypes
(f32, f64, bf16, bits as torch.bool) and the errors at compile time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad import data
from catgrad.compiler import torch_backend, torch_fusion
from catgrad.step import to_host

EXAMPLES = "examples"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def _model(name, file="iris.cat"):
    return cg.load(f"{EXAMPLES}/{file}")[name]


def _batches(n_in, n_out, seed=0, batch=8, steps=100, classes=True):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((batch, n_in))
        y = np.eye(n_out)[rng.integers(0, n_out, batch)] if classes else rng.standard_normal((batch, n_out))
        yield x, y


def _rel(a, b):
    a, b = to_host(a).astype(np.float64), to_host(b).astype(np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b))))) if b.size else 0.0


def _assert_states_close(s1, s2, tol):
    assert s1.params.keys() == s2.params.keys() and s1.opt_state.keys() == s2.opt_state.keys()
    for k in s1.params:
        assert _rel(s1.params[k], s2.params[k]) <= tol, k
    for k in s1.opt_state:  # the whole optimizer state, not only the parameters
        assert _rel(s1.opt_state[k], s2.opt_state[k]) <= tol, k
    assert s1.step == s2.step


@pytest.mark.parametrize("file, name, n_in, n_out, optimizer, loss", [
    ("iris.cat", "mlp", 4, 3, "adam(lr=1e-2)", "softmax_cross_entropy"),
    ("iris.cat", "mlp_pointful", 4, 3, "clip_norm(1.0) >> momentum(lr=0.05, gamma=0.9)", "softmax_cross_entropy"),
    ("digits.cat", "mlp", 64, 10, "adamw(lr=1e-3, weight_decay=0.01)", "softmax_cross_entropy"),
    ("digits.cat", "mlp", 64, 10, "rmsprop(lr=1e-3)", "mse"),
])
def test_torch_and_numpy_agree_for_100_float64_steps(file, name, n_in, n_out, optimizer, loss):
    model = _model(name, file)
    steps = {b: cg.compile(model, loss=loss, optimizer=optimizer, backend=b, dtype="f64") for b in ("numpy", "torch")}
    states = {b: s.init(seed=1) for b, s in steps.items()}
    for x, y in _batches(n_in, n_out):
        outs = {}
        for b, s in steps.items():
            states[b], outs[b] = s(states[b], x, y)
        assert outs["torch"].loss == pytest.approx(outs["numpy"].loss, rel=1e-9, abs=1e-12)
    assert isinstance(states["torch"].params[steps["torch"].param_names[0]], torch.Tensor)
    _assert_states_close(states["torch"], states["numpy"], 1e-9)


@pytest.mark.parametrize("name", ["or_neuron", "polynomial", "affine"])
def test_rda_step_on_bits_is_the_same_on_both_backends(name):
    """Bits are torch.bool with XOR/AND semantics: Reverse Derivative Ascent gives the
    very same parameters, for every bit model of the examples."""
    model = cg.load(f"{EXAMPLES}/rda_iris.cat")[name]
    steps = {b: cg.compile(model, loss="xor", optimizer="gradient_update()", backend=b) for b in ("numpy", "torch")}
    states = {b: s.init(seed=0) for b, s in steps.items()}
    rng = np.random.default_rng(0)
    for _ in range(100):
        x = rng.integers(0, 2, 4).astype(bool)
        y = np.asarray(rng.integers(0, 2) == 1)
        for b, s in steps.items():
            states[b], _ = s(states[b], x, y)
    for k in states["numpy"].params:
        t = states["torch"].params[k]
        assert t.dtype == torch.bool
        np.testing.assert_array_equal(to_host(t), states["numpy"].params[k])


def test_the_step_is_one_functional_graph_module():
    model = _model("mlp")
    step = cg.compile(model, loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", backend="torch")
    gm = step.graph_module
    assert isinstance(gm, torch.fx.GraphModule)
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    assert len(placeholders) == len(step.param_names) + len(step.opt_keys) + 2
    assert [n.target for n in placeholders[-2:]] == ["x", "y"]
    (out,) = [n for n in nodes if n.op == "output"]
    assert len(out.args[0]) == len(step.param_names) + len(step.opt_keys) + 2
    import operator

    for n in nodes:
        if n.op == "call_function" and n.target is not operator.getitem:
            # torch functions, or a named kernel of catgrad's fusion table; never a lambda of ours
            assert getattr(n.target, "__module__", "").startswith("torch") \
                or n.target in (torch_fusion.onednn_linear,), n.target
            assert not n.target.__name__.endswith("_"), f"in-place {n.target}"
            assert n.target not in (torch.full, torch.tensor, torch.zeros, torch.ones), "constants must be buffers"
        if n.op == "call_method":
            assert not n.target.endswith("_"), f"in-place method {n.target}"
    buffers = dict(gm.named_buffers())
    assert buffers and all(n.target in buffers for n in nodes if n.op == "get_attr")
    code = gm.code
    assert "torch.tanh(" in code and "torch.logsumexp(" in code and "def forward(self, p_dense_w" in code


def test_independent_elementwise_ops_run_as_multi_tensor_calls():
    """Grouping the parameters' updates into torch._foreach_* calls changes the number of
    calls, not a single bit of the result."""
    model = _model("mlp", "digits.cat")
    steps = [cg.compile(model, loss="softmax_cross_entropy", optimizer="adam(lr=1e-3)", backend="torch",
                        foreach=f, fused=False) for f in (True, False)]  # (fused: Adam would be one kernel)
    grouped, plain = (s.graph_module for s in steps)
    n_calls = lambda gm: sum(n.op in ("call_function", "call_method") and "getitem" not in str(n.target)  # noqa: E731
                             for n in gm.graph.nodes)
    assert "_foreach_mul" in grouped.code and "_foreach" not in plain.code
    assert n_calls(grouped) < 0.6 * n_calls(plain)
    states = [s.init(0) for s in steps]
    for x, y in _batches(64, 10, steps=5):
        x, y = x.astype(np.float32), y.astype(np.float32)
        states = [s(st, x, y)[0] for s, st in zip(steps, states)]
    for k in states[0].params:
        assert torch.equal(states[0].params[k], states[1].params[k]), k
    for k in states[0].opt_state:
        assert torch.equal(states[0].opt_state[k], states[1].opt_state[k]), k


def test_one_graph_for_every_batch_size_and_cached_by_structure():
    model = _model("mlp")
    step = cg.compile(model, loss="softmax_cross_entropy", optimizer="sgd(lr=0.1)", backend="torch")
    gm = step.graph_module
    state = step.init(0)
    for batch in (1, 5, 17):
        x, y = next(_batches(4, 3, batch=batch, steps=1))
        x, y = x.astype(np.float32), y.astype(np.float32)
        state, out = step(state, x, y)
        assert tuple(out.pred.shape) == (batch, 3)
    assert step.graph_module is gm
    again = cg.compile(model, loss="softmax_cross_entropy", optimizer="sgd(lr=0.1)", backend="torch")
    assert again.graph_module is gm  # the same program: the cached graph
    other = cg.compile(model, loss="softmax_cross_entropy", optimizer="sgd(lr=0.2)", backend="torch")
    assert other.graph_module is gm  # hyperparameters are optimizer state, not constants
    other = cg.compile(model, loss="mse", optimizer="sgd(lr=0.1)", backend="torch")
    assert other.graph_module is not gm


def test_graph_module_moves_with_to():
    step = cg.compile(_model("mlp"), loss="softmax_cross_entropy", backend="torch")
    gm = torch_backend.graph_module(step._run.program, ["p" + str(i) for i in range(len(step.diagram.dom))])
    moved = gm.to(torch.float64).to("meta")
    assert all(b.device.type == "meta" for b in moved.buffers())


@pytest.mark.parametrize("dtype", ["f32", "f64", "bf16"])
def test_dtypes_for_the_forward_model_and_the_step(dtype):
    model = _model("mlp")
    ref = cg.compile(model, loss="softmax_cross_entropy", optimizer="sgd(lr=0.1)", backend="numpy", dtype="f64")
    step = cg.compile(model, loss="softmax_cross_entropy", optimizer="sgd(lr=0.1)", backend="torch", dtype=dtype)
    tdt = {"f32": torch.float32, "f64": torch.float64, "bf16": torch.bfloat16}[dtype]
    s_ref, s = ref.init(0), step.init(0)
    assert all(v.dtype == tdt for v in s.params.values())
    tol = {"f32": 1e-5, "f64": 1e-12, "bf16": 5e-2}[dtype]
    for x, y in _batches(4, 3, steps=5):
        s_ref, o_ref = ref(s_ref, x, y)
        s, o = step(s, x, y)
        assert o.pred.dtype == tdt
        assert abs(o.loss - o_ref.loss) <= tol * max(1.0, abs(o_ref.loss))
    assert _rel(step.predict(s, x), ref.predict(s_ref, x)) <= tol * 4


@pytest.mark.parametrize("opt", ["adam(lr=0.01)", "clip_norm(1) >> adam(lr=0.01, weight_decay=0.01)"])
def test_bf16_parameters_keep_f32_optimizer_state_and_arithmetic(opt):
    # in bf16, Adam's b2 = 0.999 rounds to 1 and the step turns to NaN; the optimizer computes in f32
    model = _model("mlp")
    ref = cg.compile(model, loss="softmax_cross_entropy", optimizer=opt, backend="numpy", dtype="f64")
    step = cg.compile(model, loss="softmax_cross_entropy", optimizer=opt, backend="torch", dtype="bf16")
    s_ref, s = ref.init(0), step.init(0)
    assert {v.dtype for v in s.params.values()} == {torch.bfloat16}
    assert {v.dtype for v in s.opt_state.values()} == {torch.float32}
    for x, y in _batches(4, 3, steps=20):
        s_ref, o_ref = ref(s_ref, x, y)
        s, o = step(s, x, y)
        assert abs(o.loss - o_ref.loss) <= 5e-2 * max(1.0, abs(o_ref.loss))
    assert {v.dtype for v in s.params.values()} == {torch.bfloat16}
    for k, v in s.opt_state.items():
        assert _rel(v.double().numpy(), s_ref.opt_state[k]) <= 0.1, k


def test_numpy_backend_refuses_bf16_with_the_op_named():
    with pytest.raises(cg.CatgradError, match=r"numpy backend cannot run op 'einsum' on \(bf16\[B, 4\], bf16\[4, 16\]\)"):
        cg.compile(_model("mlp"), loss="mse", backend="numpy", dtype="bf16")


def test_torch_compile_captures_the_whole_step_without_a_graph_break():
    torch._dynamo.reset()
    step = cg.compile(_model("mlp"), loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", backend="torch",
                      torch_compile="eager")  # dynamo's capture with fullgraph=True; the eager backend runs it
    plain = cg.compile(_model("mlp"), loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", backend="torch")
    s1, s2 = step.init(0), plain.init(0)
    for x, y in _batches(4, 3, steps=3):
        x, y = x.astype(np.float32), y.astype(np.float32)
        s1, o1 = step(s1, x, y)
        s2, o2 = plain(s2, x, y)
        assert o1.loss == pytest.approx(o2.loss, rel=1e-6)
    from torch._dynamo.utils import counters

    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"]


def test_cuda_device_is_rejected_cleanly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(cg.CatgradError, match=r"^device 'cuda' is not available: this torch \(.*\) sees no CUDA device$"):
        cg.compile(_model("mlp"), loss="mse", backend="torch", device="cuda")
    with pytest.raises(cg.CatgradError, match=r"^device 'gpu0' is not a torch device \(.*\)$"):
        cg.compile(_model("mlp"), loss="mse", backend="torch", device="gpu0")
    with pytest.raises(cg.CatgradError, match=r"^device 'meta': the torch backend runs on cpu or cuda$"):
        cg.compile(_model("mlp"), loss="mse", backend="torch", device="meta")
    step = cg.compile(_model("mlp"), loss="mse", backend="torch", device="cpu:0")  # an explicit index is fine
    assert next(iter(step.init(0).params.values())).device.type == "cpu"


def test_a_bad_torch_compile_backend_is_a_clear_error():
    with pytest.raises(cg.CatgradError, match=r"^torch_compile='bogus' is not a torch.compile backend; "
                                              r"torch has: .*\beager\b.*\binductor\b") as e:
        cg.compile(_model("mlp"), loss="mse", backend="torch", torch_compile="bogus")
    # every backend torch has, debugging ones too (aot_eager), but not its own test fixtures
    assert "aot_eager" in str(e.value) and "TESTING" not in str(e.value) and "minifier" not in str(e.value)
    with pytest.raises(cg.CatgradError, match=r"^torch_compile must be True, False or the name of a "
                                              r"torch.compile backend, got 1$"):
        cg.compile(_model("mlp"), loss="mse", backend="torch", torch_compile=1)


@cuda
def test_step_on_cuda_agrees_with_cpu():
    model = _model("mlp", "digits.cat")
    steps = [cg.compile(model, loss="softmax_cross_entropy", optimizer="adam(lr=1e-3)", backend="torch",
                        device=d, dtype="f64") for d in ("cpu", "cuda")]
    states = [s.init(0) for s in steps]
    for x, y in _batches(64, 10, steps=20):
        states = [s(st, x, y)[0] for s, st in zip(steps, states)]
    assert next(iter(states[1].params.values())).device.type == "cuda"
    _assert_states_close(states[1], states[0], 1e-9)


def test_digits_accuracy_within_half_a_point_on_both_backends():
    from catgrad.train import accuracy, fit

    train, test = data.prepare("digits", test_fraction=0.2, seed=0)
    model = _model("mlp", "digits.cat")
    acc = {}
    for b in ("numpy", "torch"):
        step = cg.compile(model, loss="softmax_cross_entropy", optimizer="adam(lr=1e-3)", backend=b)
        res = fit(step, train, epochs=10, batch_size=32, seed=0)
        acc[b] = accuracy(step, res.state, test)
    assert acc["numpy"] > 0.9
    assert abs(acc["numpy"] - acc["torch"]) <= 0.005


def test_every_foreach_op_is_grouped():
    """Independent copies of each elementwise op with a multi-tensor form become one
    ``torch._foreach_*`` call, and compute what the plain ops compute."""
    import re

    from catgrad.compiler.torch_backend import FOREACH

    unary = [n for n in FOREACH if cg.ops.get(n).prim.arity == 1]
    binary = [n for n in FOREACH if cg.ops.get(n).prim.arity == 2]
    ts = [cg.f64[3], cg.f64[2, 2]]

    @cg.trace(*ts, *ts)
    def f(a, b, c, d):
        outs = []
        for x, y in ((a, c), (b, d)):  # two independent copies of every op
            x2 = x * x + 1.0  # positive, for log and sqrt
            outs += [cg.ops.get(n)(x2) for n in unary] + [cg.ops.get(n)(x2, y) for n in binary]
        return tuple(outs)

    prog = cg.compiler.prepare(f)
    gm = torch_backend.graph_module(prog)
    grouped = set(re.findall(r"torch\._foreach_(\w+)\(", gm.code))
    assert {FOREACH[n].removeprefix("_foreach_") for n in FOREACH} <= grouped
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(tuple(t.shape)) for t in (*ts, *ts)]
    got = gm(*[torch.as_tensor(x) for x in xs])
    for g, w in zip(got, cg.evaluate(f, *xs)):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-13, atol=1e-13)


# -- fused lowerings (catgrad.compiler.torch_fusion) -------------------------------------------

CNN = """
def cnn(x : f32[B, 1, 8, 8]) -> f32[B, 10] = nn.dense[64, 10](nn.flatten[16, 2, 2](
    (nn.conv2d_sp[1, 8, 3, 1, 1] >> relu >> nn.maxpool2d[2] >> nn.conv2d_sp[8, 16, 3, 1, 1] >> relu
     >> nn.maxpool2d[2])(x)))
"""


def _cnn_inputs(seed=0, batch=6):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 8, 8))
    x[:, :, :3] = 0.0  # constant rows: after conv and relu, whole pooling windows tie
    return x, np.eye(10)[rng.integers(0, 10, batch)]


def test_fused_lowerings_compute_what_the_plain_graph_computes():
    """The CNN step with Adam on torch, fused (max-pool R, conv weight gradient and Adam
    each one torch kernel) and plain, against the numpy reference: float64, 5 steps, the
    whole state, with ties in the pooling windows."""
    model = cg.loads("import nn\n" + CNN)["cnn"]
    kw = dict(loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", dtype="f64")
    fused = cg.compile(model, backend="torch", **kw)
    plain = cg.compile(model, backend="torch", fused=False, **kw)
    ref = cg.compile(model, backend="numpy", **kw)
    code = fused.graph_module.code
    for kernel in ("_fused_adam", "convolution_backward", "avg_pool2d", "interpolate"):
        assert kernel in code and kernel not in plain.graph_module.code, kernel
    assert code.count("aten._fused_adam.default(") == len(fused.param_names)
    states = [s.init(0) for s in (fused, plain, ref)]
    for k in range(5):
        x, y = _cnn_inputs(k)
        states = [s(st, x, y)[0] for s, st in zip((fused, plain, ref), states)]
    _assert_states_close(states[0], states[2], 1e-12)
    _assert_states_close(states[1], states[2], 1e-12)


def test_fused_max_pool_rd_splits_ties_equally():
    """R of max pooling routes the cotangent to the window's maximum, split equally among
    ties; torch's own max_pool2d backward would give it all to one entry."""
    pool = cg.ops.maxpool(cg.f64["B", 2, 4, 6], kernel=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4, 6))
    x[0, 0, :2, :2] = 5.0  # a four-way tie
    x[1, 1, 2:, 4:] = [[7.0, 7.0], [-1.0, 7.0]]  # a three-way tie
    dy = rng.standard_normal((3, 2, 2, 3))
    gm = torch_backend.graph_module(cg.compiler.prepare(cg.R(pool)))
    assert "avg_pool2d" in gm.code
    (dx,) = gm(torch.as_tensor(x), torch.as_tensor(dy))
    want = np.zeros_like(x)  # by hand: window by window
    for n, c, i, j in np.ndindex(3, 2, 2, 3):
        win = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        ties = win == win.max()
        want[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = ties * dy[n, c, i, j] / ties.sum()
    np.testing.assert_allclose(dx.numpy(), want, rtol=1e-15, atol=0)
    assert dx[0, 0, 0, 0] == dx[0, 0, 1, 1] == dy[0, 0, 0, 0] / 4


@pytest.mark.parametrize("shape, attrs, fused", [
    ((2, 3, 4, 6), dict(kernel=2), True),  # windows that tile the input
    ((2, 3, 6, 6), dict(kernel=(3, 2)), True),  # ... not square
    ((2, 3, 4, 6), dict(kernel=2, stride=1), False),  # overlapping windows
    ((2, 3, 4, 6), dict(kernel=2, stride=(2, 3)), False),  # gaps between windows
    ((2, 3, 4, 6), dict(kernel=2, padding=1), False),
    ((2, 3, 6, 6), dict(kernel=2, dilation=2), False),
    ((2, 3, 5, 6), dict(kernel=2), False),  # a row left over
    ((2, 3, 4, 5), dict(kernel=2), False),  # a column left over
    ((2, 3, 8), dict(kernel=2), False),  # one spatial axis
    ((2, 3, 4, 4, 4), dict(kernel=2), False),  # three
])
def test_max_pool_rd_is_fused_only_where_the_windows_tile_the_input(shape, attrs, fused):
    """The fused R of max pooling (a mask from nearest upsampling, ties counted by an
    average pool) assumes windows that tile the input exactly: it is used for those and
    no others, and either way the torch graph computes what numpy computes."""
    pool = cg.ops.maxpool(cg.f64[shape], **attrs)
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, size=shape).astype(np.float64)  # small integers: many ties
    dy = rng.standard_normal(pool.cod[0].shape)
    prog = cg.compiler.prepare(cg.R(pool))
    gm = torch_backend.graph_module(prog)
    assert ("avg_pool2d" in gm.code) == fused
    (dx,) = gm(torch.as_tensor(x), torch.as_tensor(dy))
    (want,) = cg.compiler.compile_numpy(prog)(x, dy)
    np.testing.assert_allclose(dx.numpy(), want, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("y_shape", [(24,), (2, 2, 3, 2)])
def test_max_pool_rd_written_with_maxima_of_another_shape_is_not_fused(y_shape):
    """The R of max pooling written by hand with the window maxima given flat, or as an
    image of another shape, reshaped to the windows' shape by the program, matches the
    fused pattern's form; but the fused kernel upsamples Y as the [B, C, O1, O2] image it
    is in R of max pooling: this is left to the plain graph, which computes it."""
    x_t, K = cg.f64[2, 2, 4, 6], (2, 2)
    geo = dict(kernel=K, stride=K, padding=(0, 0), dilation=(1, 1))

    @cg.trace(x_t, cg.f64[y_shape], cg.f64[2, 2, 2, 3])
    def f(x, y_given, dy):
        win = cg.ops.unfold(x, fill=float("-inf"), **geo)
        full = (2, 2, 2, 3) + K
        mask = cg.ops.eq(win, y_given.reshape(2, 2, 2, 3, 1, 1).broadcast(*full))
        share = dy / mask.sum(axes=(4, 5))
        return cg.ops.fold(mask * share.reshape(2, 2, 2, 3, 1, 1).broadcast(*full), size=(4, 6), **geo)

    rng = np.random.default_rng(8)
    x = rng.integers(-2, 3, size=(2, 2, 4, 6)).astype(np.float64)
    y = np.asarray(cg.evaluate(cg.ops.maxpool(x_t, kernel=2), x)[0]).reshape(y_shape)
    dy = rng.standard_normal((2, 2, 2, 3))
    prog = cg.compiler.prepare(f)
    gm = torch_backend.graph_module(prog)
    assert "avg_pool2d" not in gm.code
    (got,) = gm(*map(torch.as_tensor, (x, y, dy)))
    (want,) = cg.compiler.compile_numpy(prog)(x, y, dy)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-15, atol=1e-15)


def test_fused_adam_matches_torch_optim_adam():
    """The step's fused Adam against torch.optim.Adam on the same gradients (float64),
    with parameters that are not contiguous (a transposed view) and a descending lens."""
    p0 = np.random.default_rng(1).standard_normal((5, 3))

    @cg.trace(cg.f64[3, 5], cg.f64["B", 3])
    def body(W, x):
        return x @ W

    model = cg.Para([cg.Param("W", cg.f64[3, 5], cg.init.zeros())], body)
    step = cg.compile(model, loss="mse", optimizer="adam(lr=0.1, b1=0.8, b2=0.99, eps=1e-6)", backend="torch")
    assert "_fused_adam" in step.graph_module.code
    state = step.init(0)
    state.params["W"] = torch.as_tensor(p0).T  # a view with transposed strides
    ref = torch.nn.Parameter(torch.as_tensor(p0).T.clone())
    opt = torch.optim.Adam([ref], lr=0.1, betas=(0.8, 0.99), eps=1e-6)
    rng = np.random.default_rng(2)
    for _ in range(4):
        x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 5))
        state, _ = step(state, x, y)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(torch.as_tensor(x) @ ref, torch.as_tensor(y))
        loss.backward()
        opt.step()
    np.testing.assert_allclose(state.params["W"].numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state.opt_state["W/adam.m"].numpy(), opt.state[ref]["exp_avg"].numpy(), rtol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(stride=2, padding=1)),
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(stride=(2, 1), dilation=(1, 2), padding=(0, 2))),
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(stride=3, dilation=2)),
    ((2, 3, 11), (4, 3, 3), dict(stride=2, dilation=2, padding=1)),
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(stride=2)),
    ((2, 2, 6, 5, 7), (3, 2, 3, 1, 3), dict(stride=(1, 2, 2), padding=1)),
])
def test_fused_conv_weight_gradient_with_strides_and_dilations(x_shape, w_shape, attrs):
    """R of conv on torch, its weight gradient one convolution_backward, against
    torch.autograd (float64): strides, dilations and padding, in 1, 2 and 3 dimensions,
    odd and even kernel sizes, attributes given as one number or per axis."""
    f = cg.ops.conv(cg.f64[x_shape], cg.f64[w_shape], **attrs)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    xt, wt = (torch.tensor(a, requires_grad=True) for a in (x, w))
    conv = {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d, 5: torch.nn.functional.conv3d}[len(x_shape)]
    y = conv(xt, wt, **attrs)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.as_tensor(dy))
    gm = torch_backend.graph_module(cg.compiler.prepare(cg.R(f)))
    assert "convolution_backward" in gm.code
    dx, dw = gm(torch.as_tensor(x), torch.as_tensor(w), torch.as_tensor(dy))
    np.testing.assert_allclose(dw.numpy(), wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_weight_gradient_written_by_hand_with_default_attributes_is_fused_right():
    """conv(x^T, dy^T)^T (batch and channels swapped) with no attributes is the weight
    gradient of a plain convolution: fused, it is still that."""
    swap = (1, 0, 2, 3)

    @cg.trace(cg.f64[2, 3, 7, 6], cg.f64[2, 4, 5, 4])
    def dw(x, dy):
        return cg.ops.transpose(cg.ops.conv(cg.ops.transpose(x, perm=swap), cg.ops.transpose(dy, perm=swap)),
                                perm=swap)

    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((2, 4, 5, 4))
    gm = torch_backend.graph_module(cg.compiler.prepare(dw))
    assert "convolution_backward" in gm.code
    (got,) = gm(torch.as_tensor(x), torch.as_tensor(dy))
    xt = torch.tensor(x)
    wt = torch.zeros((4, 3, 3, 3), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.conv2d(xt, wt).backward(torch.as_tensor(dy))
    np.testing.assert_allclose(got.numpy(), wt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_kernel_of_symbolic_size_is_differentiated_without_the_fused_kernel():
    """With the number of output channels a symbol, the weight gradient's shape is known
    only at run time: the plain graph computes it (convolution_backward needs it before)."""
    f = cg.ops.conv(cg.f64["B", 3, 9, 8], cg.f64["C", 3, 3, 3])
    gm = torch_backend.graph_module(cg.compiler.prepare(cg.R(f)))
    assert "convolution_backward" not in gm.code
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((5, 3, 3, 3))
    xt, wt = (torch.tensor(a, requires_grad=True) for a in (x, w))
    y = torch.nn.functional.conv2d(xt, wt)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.as_tensor(dy))
    dx, dw = gm(torch.as_tensor(x), torch.as_tensor(w), torch.as_tensor(dy))
    np.testing.assert_allclose(dw.numpy(), wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("use, message", [("if", "a traced value used in control flow"),
                                          ("len", "the length of a traced value"),
                                          ("unpack", "a traced value iterated")])
def test_what_the_source_writer_cannot_record_is_traced_by_torch_fx(monkeypatch, use, message):
    """A torch rule that uses a value in Python control flow, takes its length or
    iterates it cannot be written down as source lines (the writer says which use
    stopped it). The module is then traced by torch.fx, which records an unpacking of
    known length, and computes the same."""
    from catgrad.core.primitive import RULES, Rule

    def exp(x):
        if use == "if":
            return torch.exp(x) if bool(x.sum() == x.sum()) else x
        if use == "len":
            return torch.exp(x) * (len(x) / len(x))
        a, b, c = torch.unbind(x)
        return torch.stack([torch.exp(a), torch.exp(b), torch.exp(c)])

    monkeypatch.setitem(RULES["torch"], cg.ops.exp.prim, Rule(exp))
    prog = cg.compiler.prepare(cg.ops.exp(cg.f64[3, 2]))
    src = torch_backend._Source()
    with pytest.raises(torch_backend._Untraceable, match=f"^{message}$"):
        torch_backend._lower(prog, {v: torch_backend._Var(src, "x") for v in prog.inputs}, True, src.call)
    if use == "unpack":
        mod = torch_backend.program_module(prog)
        assert isinstance(mod, torch.fx.GraphModule)
        x = np.arange(6.0).reshape(3, 2) / 4
        (got,) = mod(torch.as_tensor(x))
        np.testing.assert_allclose(got.numpy(), np.exp(x), rtol=1e-15)


@pytest.mark.parametrize("lr_lens", [None, 1.0])
def test_fused_adam_descending_and_ascending(lr_lens):
    """Under the default learning-rate lens (-1, descent) and under +1 (ascent) the step's
    Adam update is one fused kernel per parameter, and the whole state is what the numpy
    step computes (float64, 4 steps). (Adam written by hand, with the gradient's sign
    either way, is in tests/test_compiler_mutants.py.)"""
    model = cg.load("examples/iris.cat")["mlp"]
    kw = dict(loss="mse", optimizer="adam(lr=1e-2)", dtype="f64", lr_lens=lr_lens)
    fused, ref = cg.compile(model, backend="torch", **kw), cg.compile(model, backend="numpy", **kw)
    assert fused.graph_module.code.count("aten._fused_adam.default(") == len(fused.param_names)
    states = [s.init(0) for s in (fused, ref)]
    rng = np.random.default_rng(5)
    for _ in range(4):
        x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
        states = [s(st, x, y)[0] for s, st in zip((fused, ref), states)]
    _assert_states_close(states[0], states[1], 1e-12)


@pytest.mark.parametrize("spec, shapes, kind", [
    # matrix products: oneDNN (float32) for operands stored as [rows, k] and [k, cols]; a
    # narrow result (few columns, many rows) as a transposed torch.mm (any float); the
    # other orientations to torch's own kernels
    ("ab,bc->ac", ((6, 5), (5, 4)), "onednn"), ("bc,ab->ac", ((5, 4), (6, 5)), "onednn"),
    ("a b, b c -> a c", ((6, 5), (5, 4)), "onednn"), ("ab,bc->ac", ((3, 5), (5, 40)), "onednn"),
    ("ab,bc->ac", ((40, 5), (5, 3)), "mm"), ("ab,cb->ac", ((40, 5), (3, 5)), "mm"),
    ("ab,cb->ac", ((6, 5), (4, 5)), None), ("ba,bc->ac", ((5, 6), (5, 4)), None), ("ab,bc->ca", ((6, 5), (5, 4)), None),
    # no matrix products: left alone
    ("abc,acd->abd", ((2, 3, 4), (2, 4, 5)), None), ("a,a->", ((5,), (5,)), None),
    ("ab,ab->ab", ((3, 4), (3, 4)), None), ("ab,bc->abc", ((3, 4), (4, 2)), None), ("ab,b->a", ((3, 4), (4,)), None),
    ("abc,cd->abd", ((2, 3, 4), (4, 5)), None),
])
@pytest.mark.parametrize("dt", [cg.f32, cg.f64, cg.i64])
def test_two_operand_einsums_on_cpu_compute_what_numpy_computes(spec, shapes, kind, dt):
    """The CPU lowering of a two-operand einsum takes a matrix product to the kernel that
    suits its shape and layout and leaves everything else to torch's own: which kernel
    runs, and that all compute what numpy's einsum does."""
    f = cg.ops.einsum(*(dt[s] for s in shapes), spec=spec)
    gm = torch_backend.graph_module(cg.compiler.prepare(f), cpu=True)
    expect = kind if dt.is_float and (kind == "mm" or (dt is cg.f32 and torch_fusion._ONEDNN)) else None
    assert ("onednn_linear" in gm.code) == (expect == "onednn") and ("torch.mm(" in gm.code) == (expect == "mm")
    rng = np.random.default_rng(6)
    xs = [(rng.standard_normal(s) if dt.is_float else rng.integers(-9, 9, s)).astype(np.dtype(dt.numpy))
          for s in shapes]
    (got,) = gm(*map(torch.as_tensor, xs))
    want = np.einsum(spec, *(x.astype(np.float64) for x in xs))
    tol = 1e-5 if dt is cg.f32 else 1e-12
    np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("reader", ["param", "broadcast"])
def test_a_donated_input_read_after_its_fused_update_is_not_overwritten(reader):
    """A fused Adam may update a parameter in place only when nothing outside it reads the
    parameter afterwards, itself or through a broadcast (a view): here one more
    instruction at the end of the step reads it together with its update, and must see
    the old value."""
    from catgrad.compiler.program import Instr

    step = cg.compile(cg.load("examples/iris.cat")["mlp"], loss="mse", optimizer="adam(lr=1e-2)", dtype="f64",
                      backend="torch")
    prog = cg.compiler.prepare(step.diagram).copy()
    k = step.param_names.index("dense_2.b")  # a vector: its broadcast is a view
    p = prog.inputs[k]

    def emit(op, ins, at=None):
        v = len(prog.types)
        prog.types.append(op.cod[0])
        prog.instrs.insert(len(prog.instrs) if at is None else at, Instr(op, tuple(ins), (v,)))
        return v

    t, new = prog.types[p], prog.outputs[k]  # (the updated parameter: read first, so it comes after Adam)

    def seen(v, at=None):
        return v if reader == "param" else emit(cg.ops.broadcast.prim.op((t,), shape=(2,) + t.shape), (v,), at)

    a, b = seen(new), seen(p, at=0)  # (the view of the old value made first, read last)
    prog.outputs.append(emit(cg.ops.mul.prim.op((prog.types[a],) * 2), (a, b)))
    state = step.init(0)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    args = list(step._args(state.params, state.opt_state, {}, torch.as_tensor(x), torch.as_tensor(y)))
    want = torch_backend.graph_module(prog, fused=False)(*[a.clone() for a in args])
    donated = torch_backend.graph_module(prog, donate=True)
    assert "_fused_adam_" in donated.code  # (the others still update in place)
    got = donated(*[a.clone() for a in args])
    old = args[k].numpy()
    np.testing.assert_array_equal(got[-1].numpy(), np.broadcast_to(got[k].numpy() * old, got[-1].shape))
    assert not np.array_equal(got[k].numpy(), old)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


def _dense_relu_dense():
    @cg.trace(cg.f64[5, 7], cg.f64[7], cg.f64[7, 3], cg.f64[3], cg.f64["B", 5])
    def mlp(W1, b1, W2, b2, x):
        h = cg.ops.relu(x @ W1 + b1.broadcast("B", 7))
        return b2.broadcast("B", 3) + h @ W2  # the bias on the left: add matches either way round

    return mlp


def test_fused_dense_layer_and_relu_rd_match_the_plain_graph_and_autograd():
    """x @ W + b as one addmm and R of relu as one threshold_backward (float64): the
    forward and R of a dense-relu-dense network, fused against unfused and against
    torch.autograd of nn.functional.linear, with exact zeros and negatives in the
    pre-activation so the mask's edge (z = 0: derivative 0) is taken."""
    f = _dense_relu_dense()
    fused_f, plain_f = (torch_backend.graph_module(cg.compiler.prepare(f), fused=k) for k in (True, False))
    fused_r, plain_r = (torch_backend.graph_module(cg.compiler.prepare(cg.R(f)), fused=k) for k in (True, False))
    assert fused_f.code.count("torch.addmm(") == 2 and "addmm" not in plain_f.code
    assert "threshold_backward" in fused_r.code and "threshold_backward" not in plain_r.code
    rng = np.random.default_rng(0)
    W1, b1, W2, b2, x = (rng.standard_normal(s) for s in ((5, 7), (7,), (7, 3), (3,), (6, 5)))
    W1[:, 0], b1[0] = 0.0, 0.0  # a pre-activation column of exact zeros
    dy = rng.standard_normal((6, 3))
    ts = [torch.tensor(a, requires_grad=True) for a in (W1, b1, W2, b2, x)]
    F = torch.nn.functional
    y = F.linear(torch.relu(F.linear(ts[4], ts[0].T, ts[1])), ts[2].T, ts[3])
    y.backward(torch.as_tensor(dy))
    args = [torch.as_tensor(a) for a in (W1, b1, W2, b2, x)]
    (got,), (plain,) = fused_f(*args), plain_f(*args)
    np.testing.assert_allclose(got.numpy(), y.detach().numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got.numpy(), plain.numpy(), rtol=1e-13, atol=1e-14)
    grads, plain_grads = fused_r(*args, torch.as_tensor(dy)), plain_r(*args, torch.as_tensor(dy))
    for g, p, t in zip(grads, plain_grads, ts):
        np.testing.assert_allclose(g.numpy(), t.grad.numpy(), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(g.numpy(), p.numpy(), rtol=1e-13, atol=1e-14)
    assert not grads[0][:, 0].any()  # no gradient through the units that sit at z = 0
    # the fused instructions by name, for the forward and R, and on CPU (its matrix kernels)
    for d, cpu, names in ((f, False, ["affine", "affine"]), (cg.R(f), False, ["affine", "relu_rd"]),
                          (cg.R(f), True, ["affine", "narrow_matmul", "narrow_matmul", "relu_rd"])):
        prog = torch_fusion.fuse(cg.compiler.prepare(d), cpu=cpu)
        assert sorted(repr(i.op) for i in prog.instrs if isinstance(i.op, torch_fusion.FusedOp)) == [
            f"fused:{n}" for n in names]


@pytest.mark.skipif(not torch_fusion._ONEDNN, reason="this torch has no oneDNN kernels")
def test_a_float32_dense_layer_on_cpu_is_one_onednn_call_named_affine():
    """x @ W + b in float32 on CPU, of a fixed batch: one fused instruction (oneDNN's
    linear with the bias), named affine, computing what numpy computes."""
    g = cg.Para([cg.Param("W", cg.f32[5, 7]), cg.Param("b", cg.f32[7])],
                cg.trace(cg.f32[5, 7], cg.f32[7], cg.f32[6, 5])(lambda W, b, x: x @ W + b.broadcast(6, 7)))
    prog = cg.compiler.prepare(g.body)
    fused = torch_fusion.fuse(prog, cpu=True)
    assert [repr(i.op) for i in fused.instrs if isinstance(i.op, torch_fusion.FusedOp)] == ["fused:affine"]
    rng = np.random.default_rng(9)
    W, b, x = (rng.standard_normal(s).astype(np.float32) for s in ((5, 7), (7,), (6, 5)))
    gm = torch_backend.graph_module(prog, cpu=True)
    assert "onednn_linear" in gm.code
    (got,) = gm(*map(torch.as_tensor, (W, b, x)))
    np.testing.assert_allclose(got.numpy(), x @ W + b, rtol=1e-5, atol=1e-5)


def test_dense_layers_of_the_step_run_as_addmm():
    """The MLP training step on torch: every dense layer's forward is one addmm, every
    hidden relu's R one threshold_backward, and 5 float64 steps equal the numpy step."""
    model = _model("mlp", "digits.cat")
    kw = dict(loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", dtype="f64")
    step, ref = cg.compile(model, backend="torch", **kw), cg.compile(model, backend="numpy", **kw)
    code = step.graph_module.code
    assert "torch.matmul(x" not in code and code.count("torch.addmm(") == len(step.param_names) // 2
    assert "threshold_backward" in code and "heaviside" not in code and "torch.gt(" not in code
    states = [step.init(0), ref.init(0)]
    for x, y in _batches(64, 10, steps=5):
        states = [s(st, x, y)[0] for s, st in zip((step, ref), states)]
    _assert_states_close(states[0], states[1], 1e-12)


def test_the_step_runs_source_written_directly_and_its_fx_trace_computes_the_same():
    """The step's module is written as Python source from the Program (no fx); the
    GraphModule asked for afterwards is that module traced by fx, and both compute the
    numpy step (float64)."""
    model = _model("mlp", "digits.cat")
    kw = dict(loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", dtype="f64")
    step, ref = cg.compile(model, backend="torch", **kw), cg.compile(model, backend="numpy", **kw)
    mod = step._run.module
    assert isinstance(mod, torch_backend.ProgramModule) and not isinstance(mod, torch.fx.GraphModule)
    assert "torch.addmm" not in mod.code and "addmm_g" in mod.code  # its own source, not fx's
    fresh = torch_backend.program_module(step._run.program)  # (the step's module is cached, maybe traced)
    assert "_gm" not in fresh.__dict__  # not traced until asked for
    assert isinstance(fresh.graph_module, torch.fx.GraphModule) and "_gm" in fresh.__dict__
    gm = step.graph_module
    assert isinstance(gm, torch.fx.GraphModule) and step.graph_module is gm
    s, r = step.init(0), ref.init(0)
    for x, y in _batches(64, 10, steps=3):
        args = [*s.params.values(), *s.opt_state.values(), torch.as_tensor(x), torch.as_tensor(y)]
        via_fx = gm(*args)
        s, _ = step(s, x, y)
        r, _ = ref(r, x, y)
        for a, b in zip(via_fx, [*s.params.values(), *s.opt_state.values()]):
            assert torch.equal(a, b)
    _assert_states_close(s, r, 1e-12)


def test_the_source_writer_records_functions_methods_and_operators():
    """Whatever a rule does to a tensor (torch functions, methods, attributes, operators
    on either side, indexing) the writer records as source computing the same thing."""

    def rule(x, y):
        a = 2.0 - x / 3 + (1 - y) * x ** 2 @ y.T
        b = torch.where(x > 0, -a, a.new_zeros(x.shape)).sum(0, keepdim=True)
        return [b[0, 1:], torch.cat([a, b], 0).to(torch.float32), (x <= y) & ~(x == y), 5 % (abs(x) + 1)]

    src = torch_backend._Source()
    outs = rule(torch_backend._Var(src, "x"), torch_backend._Var(src, "y"))
    code = "def f(x, y):\n" + "\n".join(src.lines) + f"\n    return {src.ref(outs)}\n"
    scope = dict(src.globals)
    exec(code, scope)
    x, y = (torch.as_tensor(np.random.default_rng(k).standard_normal((3, 3))) for k in (0, 1))
    for got, want in zip(scope["f"](x, y), rule(x, y)):
        assert got.dtype == want.dtype and torch.equal(got, want)


def test_a_rule_the_writer_cannot_record_falls_back_to_fx(monkeypatch):
    """A rule that branches on a traced value cannot be written down as straight-line
    source: program_module then traces with torch.fx instead (the same results)."""
    f = _dense_relu_dense()
    prog = cg.compiler.prepare(f)
    real_bind = torch_backend.bind

    def branching_bind(op, backend, binding):
        rule = real_bind(op, backend, binding)
        if op.name != "relu":
            return rule

        def branching(x):
            if isinstance(x, torch.fx.Proxy) or bool(x.new_ones(())):  # Python control flow on a traced value
                return rule(x)
        return branching

    monkeypatch.setattr(torch_backend, "bind", branching_bind)
    mod = torch_backend.program_module(prog)
    assert isinstance(mod, torch.fx.GraphModule)
    rng = np.random.default_rng(0)
    args = [torch.as_tensor(rng.standard_normal(s)) for s in ((5, 7), (7,), (7, 3), (3,), (6, 5))]
    monkeypatch.undo()
    (want,) = torch_backend.program_module(prog)(*args)
    assert torch.equal(mod(*args)[0], want)


def test_donated_state_is_updated_in_place_with_the_same_result():
    """donate=True: the fused Adam writes the new parameters and moments into the
    tensors of the state it is given, and computes what the functional step computes."""
    model = _model("mlp", "digits.cat")
    kw = dict(loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", backend="torch", dtype="f64")
    plain, donated = cg.compile(model, **kw), cg.compile(model, donate=True, **kw)
    assert "torch._fused_adam_(" in donated.graph_module.code and "_fused_adam_(" not in plain.graph_module.code
    s1, s2 = plain.init(0), donated.init(0)
    s2.opt_state["dense.W/adam.v"] = s2.opt_state["dense.W/adam.m"]  # both zeros, one tensor: copied first
    for x, y in _batches(64, 10, steps=3):
        before = s2.params["dense.W"]
        s1, _ = plain(s1, x, y)
        s2, _ = donated(s2, x, y)
        assert s2.params["dense.W"] is before  # written in place
    _assert_states_close(s2, s1, 1e-13)


@pytest.mark.parametrize("spec, a, b", [("ab,bc->ac", (6, 20), (20, 10)), ("ba,bc->ac", (20, 6), (20, 10)),
                                        ("ab,cb->ac", (6, 20), (10, 20)), ("ba,cb->ac", (20, 6), (10, 20)),
                                        ("ab,bc->ca", (10, 20), (20, 17)), ("ab,bc->ac", (10, 20), (20, 17))])
def test_narrow_matrix_products_run_transposed_on_cpu(spec, a, b):
    """A product with a narrow result ([M, N], 2 <= N < 16, M a batch or >= 16) runs on
    CPU as the transpose of the wide product, in every transposition of the spec, and
    equals the plain graph and numpy's einsum (float64); not on other devices, and not
    for wide results."""
    ta = cg.f64[tuple("B" if d == 6 else d for d in a)]
    f = cg.ops.einsum(ta, cg.f64[b], spec=spec)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(a), rng.standard_normal(b)
    prog = cg.compiler.prepare(f)
    on_cpu, elsewhere, plain = (torch_backend.graph_module(prog, fused=True, cpu=True),
                                torch_backend.graph_module(prog, fused=True, cpu=False),
                                torch_backend.graph_module(prog, fused=False))
    narrow = b != (20, 17) or spec == "ab,bc->ca"  # [10, 17]: wide, it stays as it is; [17, 10]: narrow
    assert ("torch.mm(" in on_cpu.code) == narrow and "torch.mm(" not in elsewhere.code
    want = np.einsum(spec, x, y)
    for gm in (on_cpu, elsewhere, plain):
        (got,) = gm(torch.as_tensor(x), torch.as_tensor(y))
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=1e-14)


needs_onednn = pytest.mark.skipif(not torch_fusion._ONEDNN, reason="this torch has no oneDNN kernels")


def _within_float32_dot_bound(got, a, b, bias=None):
    """``got`` is ``a @ b (+ bias)`` as a float32 sum of products may round it: every
    entry within ``gamma_k sum_i |a_i b_i|`` (+ one rounding of the bias add) of the exact
    value, ``gamma_k = k u / (1 - k u)``, ``u = 2^-24`` (the textbook bound for any order
    of summation)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = a64 @ b64 + (0 if bias is None else bias.astype(np.float64))
    k, u = a.shape[1], 2.0 ** -24
    bound = (k + 1) * u / (1 - (k + 1) * u) * (np.abs(a64) @ np.abs(b64) + (0 if bias is None else np.abs(bias)))
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= bound + 1e-30), float((err - bound).max())


@needs_onednn
@pytest.mark.parametrize("spec, a, b", [("ab,bc->ac", (6, 20), (20, 30)), ("ba,bc->ac", (20, 6), (20, 30)),
                                        ("ab,cb->ac", (6, 20), (30, 20)), ("ba,cb->ac", (20, 6), (30, 20)),
                                        ("ab,bc->ca", (6, 20), (20, 30)), ("bc,ab->ac", (20, 30), (6, 20)),
                                        ("ab,bc->ac", (6, 0), (0, 30)), ("ab,bc->ac", (0, 20), (20, 30))])
def test_wide_float32_products_run_on_onednn_on_cpu(spec, a, b):
    """A float32 matrix product whose result is not narrow runs on CPU as oneDNN's
    inner product (``onednn_linear``) when its operands are ``[rows, k]`` and
    ``[k, cols]``, and as ``torch.matmul`` otherwise (oneDNN would copy or repack one);
    in every transposition of the spec and with an empty contraction or an empty batch,
    within float32's rounding bound of the exact product; float64, other devices and a
    torch with oneDNN switched off keep ``torch.matmul``."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(a).astype(np.float32), rng.standard_normal(b).astype(np.float32)
    lhs, out = spec.split("->")
    ta, tb = lhs.split(",")
    k = (set(ta) & set(tb)).pop()
    rows_term, cols_term = (ta, tb) if out[0] in ta else (tb, ta)
    natural = rows_term == out[0] + k and cols_term == k + out[1]  # r: [rows, k], s: [k, cols]
    for dt, expect in ((cg.f32, natural), (cg.f64, False)):
        f = cg.ops.einsum(dt[tuple("B" if d == 6 else d for d in a)], dt[b], spec=spec)
        prog = cg.compiler.prepare(f)
        on_cpu = torch_backend.program_module(prog, fused=True, cpu=True)
        assert ("onednn_linear" in on_cpu.code) == expect
        assert "onednn_linear" not in torch_backend.program_module(prog, fused=True, cpu=False).code
        torch.backends.mkldnn.enabled = False
        try:
            assert "onednn_linear" not in torch_backend.program_module(prog, fused=True, cpu=True).code
        finally:
            torch.backends.mkldnn.enabled = True
        (got,) = on_cpu(torch.as_tensor(x).to(dt.torch()), torch.as_tensor(y).to(dt.torch()))
        am = x if ta.endswith(k) else x.T  # [rows, k]
        bm = y if tb.startswith(k) else y.T  # [k, cols]
        want_order = out == ta.replace(k, "") + tb.replace(k, "")
        got = got.numpy()
        _within_float32_dot_bound(got if want_order else got.T, am, bm)


@needs_onednn
def test_the_float32_dense_layer_runs_on_onednn_with_its_bias():
    """x @ W + b in float32 on CPU: one ``onednn_linear(x, W^T, b)``, within the rounding
    bound of the exact affine map, for a batch of 5 and an empty batch."""
    @cg.trace(cg.f32[7, 20], cg.f32[20], cg.f32["B", 7])
    def affine(W, b, x):
        return x @ W + b.broadcast("B", 20)

    mod = torch_backend.program_module(cg.compiler.prepare(affine), fused=True, cpu=True)
    assert mod.code.count("= onednn_linear_g") == 1 and "addmm" not in mod.code
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((7, 20)).astype(np.float32), rng.standard_normal(20).astype(np.float32)
    for n in (5, 0):
        x = rng.standard_normal((n, 7)).astype(np.float32)
        (got,) = mod(torch.as_tensor(W), torch.as_tensor(b), torch.as_tensor(x))
        assert got.shape == (n, 20)
        _within_float32_dot_bound(got.numpy(), x, W, b)


@needs_onednn
def test_onednn_linear_over_an_empty_contraction_is_the_bias():
    """oneDNN has no product over K = 0: ``onednn_linear`` gives torch's, zeros plus the
    bias when there is one."""
    x, w = torch.zeros(5, 0), torch.zeros(20, 0)
    b = torch.arange(20, dtype=torch.float32)
    assert torch.equal(torch_fusion.onednn_linear(x, w), torch.zeros(5, 20))
    assert torch.equal(torch_fusion.onednn_linear(x, w, b), b.expand(5, 20))


@needs_onednn
def test_switching_onednn_off_gives_a_program_without_it():
    """The compiled-module cache tells programs apart by the oneDNN switch: the same
    program compiled with ``torch.backends.mkldnn.enabled = False`` runs plain torch
    products, and both give the same numbers to float32 rounding."""
    @cg.trace(cg.f32["B", 30], cg.f32[30, 40])
    def mm(x, W):
        return x @ W

    on = torch_backend.compile_torch(mm)
    torch.backends.mkldnn.enabled = False
    try:
        off = torch_backend.compile_torch(mm)
    finally:
        torch.backends.mkldnn.enabled = True
    assert "onednn_linear" in on.code and "onednn_linear" not in off.code
    rng = np.random.default_rng(2)
    x, W = rng.standard_normal((9, 30)).astype(np.float32), rng.standard_normal((30, 40)).astype(np.float32)
    for prog in (on, off):
        _within_float32_dot_bound(prog(x, W)[0].numpy(), x, W)


@needs_onednn
def test_a_float32_step_on_onednn_follows_the_float64_step():
    """Five Adam steps of the digits MLP in float32 on CPU (its products on oneDNN) stay
    within float32 rounding of the float64 step: the kernel choice changes rounding only."""
    model = _model("mlp", "digits.cat")
    kw = dict(loss="softmax_cross_entropy", optimizer="adam(lr=1e-3)", backend="torch")
    s32, s64 = cg.compile(model, dtype="f32", **kw), cg.compile(model, dtype="f64", **kw)
    assert "onednn_linear" in s32._run.module.code
    states = [s32.init(0), s64.init(0)]
    for x, y in _batches(64, 10, steps=5):
        states = [s(st, x, y)[0] for s, st in zip((s32, s64), states)]
    for k, v in states[1].params.items():
        np.testing.assert_allclose(to_host(states[0].params[k]).astype(np.float64), to_host(v), rtol=0, atol=2e-5)


def test_the_narrow_output_layer_of_the_step_runs_transposed():
    """The digits step (10 classes) on CPU: the output layer's addmm and its weight
    gradient are transposed wide products, and 5 float64 steps equal the numpy step."""
    model = _model("mlp", "digits.cat")
    kw = dict(loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", dtype="f64")
    step, ref = cg.compile(model, backend="torch", **kw), cg.compile(model, backend="numpy", **kw)
    code = step._run.module.code
    assert "unsqueeze" in code and "mm_g" in code.replace("addmm_g", "")
    # R of relu reads the forward's relu(z), so z (the addmm) is freed right after the forward's relu
    import re
    assert len(re.findall(r"threshold_backward_g\d+\(\w+, relu_\d+, 0\)", code)) == 2
    z = re.search(r"(addmm_\d+) = addmm_g\d+\(p_dense_b, x,", code).group(1)
    assert re.search(rf"relu_\d+ = relu_g\d+\({z}\)\n    del {z}\n", code)
    # every value the forward makes is returned or deleted after the last line that reads it
    lines = code.splitlines()[1:]
    returned = lines[-1]
    for k, ln in enumerate(lines):
        if " = " in ln:
            name = ln.split(" = ")[0].strip()
            readers = [j for j, other in enumerate(lines) if j > k and not other.strip().startswith("del ")
                       and re.search(rf"(?<![\w.]){name}\b", other.split(" = ")[-1])]
            if not re.search(rf"(?<![\w.]){name}\b", returned):
                last = max(readers, default=k)
                freed = [j for j, other in enumerate(lines) if other.strip().startswith("del ")
                         and name in other[8:].split(", ")]
                assert freed == [last + 1], name  # right after its last reader
    states = [step.init(0), ref.init(0)]
    for x, y in _batches(64, 10, steps=5):
        states = [s(st, x, y)[0] for s, st in zip((step, ref), states)]
    _assert_states_close(states[0], states[1], 1e-12)
