"""Convolution, pooling, unfold/fold, concat/split, take/scatter_add, mean and the
random-number ops: forward and reverse derivative against torch.nn.functional and
torch.autograd on random geometries (float64, relative error <= 1e-9), the torch
rules against the numpy ones, and bad geometry rejected when the op is built."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import catgrad as cg
from catgrad.errors import CatgradTypeError, ShapeError
from test_rd_references import rel_err

O = cg.ops
TOL = 1e-9


def against_torch(f, ref, xs, rng, diff=None):
    """f's numpy and torch kernels against ``ref`` (a torch function), and R[f]
    against torch.autograd of ``ref`` (for the inputs listed in ``diff``)."""
    diff = range(len(xs)) if diff is None else diff
    ts = [torch.tensor(x, requires_grad=i in diff and x.dtype.kind == "f") for i, x in enumerate(xs)]
    want = ref(*ts)
    want = want if isinstance(want, (tuple, list)) else [want]
    ours = cg.evaluate(f, *xs)
    assert rel_err(ours, [w.detach().numpy() for w in want]) <= TOL
    theirs = cg.evaluate(f, *[torch.tensor(x) for x in xs], backend="torch")
    assert rel_err(ours, [t.numpy() for t in theirs]) <= TOL
    vs = [rng.standard_normal(w.shape) for w in want]
    grads = torch.autograd.grad(want, [ts[i] for i in diff], [torch.tensor(v) for v in vs], allow_unused=True)
    dxs = cg.evaluate(cg.R(f), *xs, *vs)
    for i, g in zip(diff, grads):
        g = np.zeros_like(xs[i]) if g is None else g.numpy()
        assert rel_err([dxs[i]], [g]) <= TOL, f"R, input {i}"
    return ours


# -- random geometries --------------------------------------------------------------------------


@st.composite
def conv_cases(draw):
    n = draw(st.integers(1, 3))
    g = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 3))
    K = tuple(draw(st.integers(1, 3)) for _ in range(n))
    s = tuple(draw(st.integers(1, 3)) for _ in range(n))
    p = tuple(draw(st.integers(0, 2)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2)) for _ in range(n))
    S = tuple(max(1, d[i] * (K[i] - 1) + 1 - 2 * p[i] + draw(st.integers(0, 4 if n < 3 else 2))) for i in range(n))
    N = draw(st.integers(1, 3))
    return n, g, (N, cin) + S, (cout, cin // g) + K, s, p, d


@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_conv_against_torch(case, seed):
    n, g, xs, ws, s, p, d = case
    rng = np.random.default_rng(seed)
    f = O.conv(cg.f64[xs], cg.f64[ws], stride=s, padding=p, dilation=d, groups=g)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    against_torch(f, lambda x, w: fn(x, w, stride=s, padding=p, dilation=d, groups=g),
                  [rng.standard_normal(xs), rng.standard_normal(ws)], rng)


@st.composite
def pool_cases(draw):
    n = draw(st.integers(1, 3))
    K = tuple(draw(st.integers(1, 3)) for _ in range(n))
    s = tuple(draw(st.integers(1, 3)) for _ in range(n))
    p = tuple(draw(st.integers(0, k // 2)) for k in K)
    d = tuple(draw(st.integers(1, 2)) for _ in range(n))
    S = tuple(max(1, d[i] * (K[i] - 1) + 1 - 2 * p[i] + draw(st.integers(0, 4))) for i in range(n))
    try:
        O.maxpool(cg.f64[(1, 1) + S], kernel=K, stride=s, padding=p, dilation=d)
    except CatgradTypeError:  # a window wholly in the padding
        assume(False)
    return n, (draw(st.integers(1, 3)), draw(st.integers(1, 2))) + S, K, s, p, d


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.integers(0, 2**32 - 1))
def test_maxpool_against_torch(case, seed):
    n, xs, K, s, p, d = case
    rng = np.random.default_rng(seed)
    f = O.maxpool(cg.f64[xs], kernel=K, stride=s, padding=p, dilation=d)
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
    against_torch(f, lambda x: fn(x, K, s, p, d), [rng.standard_normal(xs)], rng)


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.integers(0, 2**32 - 1))
def test_avgpool_against_torch(case, seed):
    n, xs, K, s, p, d = case
    assume(all(a >= k for a, k in zip(xs[2:], K)))  # torch's avg_pool3d wants that even with padding
    rng = np.random.default_rng(seed)
    f = O.avgpool(cg.f64[xs], kernel=K, stride=s, padding=p)  # torch's avg_pool has no dilation
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]
    against_torch(f, lambda x: fn(x, K, s, p), [rng.standard_normal(xs)], rng)


def test_maxpool_splits_ties_as_max_does():
    x = np.array([[[1.0, 3.0, 3.0, 2.0, 0.0, 0.0]]])
    (dx,) = cg.evaluate(cg.R(O.maxpool(cg.f64[1, 1, 6], kernel=2)), x, np.ones((1, 1, 3)))
    np.testing.assert_array_equal(dx, [[[0.0, 1.0, 1.0, 0.0, 0.5, 0.5]]])


def test_dilated_avgpool_is_the_mean_of_dilated_windows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    f = O.avgpool(cg.f64[2, 3, 9, 8], kernel=(2, 3), stride=(3, 1), dilation=(2, 3))
    # the same windows as a dilated max-free conv with a constant kernel, per channel
    w = np.full((3, 1, 2, 3), 1 / 6)
    ref = F.conv2d(torch.tensor(x), torch.tensor(w), stride=(3, 1), dilation=(2, 3), groups=3).numpy()
    assert rel_err(cg.evaluate(f, x), [ref]) <= 1e-13
    assert rel_err(cg.evaluate(f, torch.tensor(x), backend="torch"), [ref]) <= 1e-13


@settings(max_examples=40, deadline=None)
@given(pool_cases(), st.integers(0, 2**32 - 1))
def test_unfold_and_fold_are_adjoint(case, seed):
    """<unfold x, c> = <x, fold c>, and F.unfold agrees on 2-d inputs; torch rules agree."""
    n, xs, K, s, p, d = case
    rng = np.random.default_rng(seed)
    u = O.unfold(cg.f64[xs], kernel=K, stride=s, padding=p, dilation=d)
    fo = O.fold(u.cod[0], kernel=K, stride=s, padding=p, dilation=d, size=xs[2:])
    x, c = rng.standard_normal(xs), rng.standard_normal(u.cod[0].shape)
    (ux,), (fc,) = cg.evaluate(u, x), cg.evaluate(fo, c)
    assert abs(np.sum(ux * c) - np.sum(x * fc)) <= 1e-12 * (1 + np.abs(ux * c).sum())
    for f, a in ((u, x), (fo, c)):
        assert rel_err(cg.evaluate(f, torch.tensor(a), backend="torch"), cg.evaluate(f, a)) <= 1e-13
    if n == 2:
        ref = F.unfold(torch.tensor(x), K, dilation=d, padding=p, stride=s).numpy()
        N, C = xs[:2]
        assert np.array_equal(ux.reshape(N, C, -1, np.prod(K)).transpose(0, 1, 3, 2).reshape(ref.shape), ref)


# -- concat / split / take / scatter_add / mean ----------------------------------------------------


def test_concat_and_split_against_torch():
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, k, 3)) for k in (1, 3, 2)]
    f = O.concat(*[cg.f64[x.shape] for x in xs], axis=1)
    against_torch(f, lambda *ts: torch.cat(ts, dim=1), xs, rng)
    x = rng.standard_normal((4, 6))
    f = O.split(cg.f64[4, 6], axis=-1, sizes=(1, 3, 2))
    against_torch(f, lambda t: torch.split(t, [1, 3, 2], dim=-1), [x], rng)


def test_split_cotangents_of_unused_pieces_are_zero():
    f = cg.trace(cg.f64[5])(lambda x: O.split(x, axis=0, sizes=(2, 3))[1])
    (dx,) = cg.evaluate(cg.R(f), np.arange(5.0), np.ones(3))
    np.testing.assert_array_equal(dx, [0, 0, 1, 1, 1])


def test_take_and_scatter_add_against_torch():
    rng = np.random.default_rng(2)
    table, idx = rng.standard_normal((6, 3)), rng.integers(0, 6, size=(4, 5))
    f = O.take(cg.f64[6, 3], cg.i64[4, 5])
    against_torch(f, lambda t, i: F.embedding(i, t), [table, idx], rng, diff=[0])
    src = rng.standard_normal((4, 5, 3))
    f = O.scatter_add(cg.i64[4, 5], cg.f64[4, 5, 3], size=7)
    ref = lambda i, s: torch.zeros(7, 3, dtype=torch.float64).index_add(0, i.reshape(-1), s.reshape(-1, 3))
    against_torch(f, ref, [idx, src], rng, diff=[1])


def test_take_index_out_of_range_is_a_clear_error():
    f = O.take(cg.f64[3, 2], cg.i64[2])
    with pytest.raises(ShapeError, match=r"index 3 is out of range for a table of 3 rows \(-3 .. 2\)"):
        cg.evaluate(f, np.zeros((3, 2)), np.array([0, 3]))
    with pytest.raises(ShapeError, match="index -4"):
        cg.evaluate(f, np.zeros((3, 2)), np.array([-4, 0]))
    table = np.arange(6.0).reshape(3, 2)  # negative indices count from the end, as in numpy and torch
    np.testing.assert_array_equal(cg.evaluate(f, table, np.array([-1, 0]))[0], table[[2, 0]])


@pytest.mark.parametrize("axes,keep", [(None, False), ((0,), True), ((0, 2), False), (-1, False)])
def test_mean_against_torch(axes, keep):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 2))
    f = O.mean(cg.f64[3, 4, 2], axes=axes, keepdims=keep)
    dims = tuple(range(3)) if axes is None else axes
    against_torch(f, lambda t: torch.mean(t, dim=dims, keepdim=keep), [x], rng)


def test_mean_over_a_symbolic_batch():
    f = O.mean(cg.f64["B", 3], axes=0)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3))
    against_torch(f, lambda t: t.mean(0), [x], rng)


# -- random numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("op,attrs", [("uniform", {"low": -1.0, "high": 2.0}), ("normal", {}),
                                      ("bernoulli", {"p": 0.25})])
@pytest.mark.parametrize("dtype", [cg.f32, cg.f64])
def test_random_is_a_function_of_the_key_on_both_backends(op, attrs, dtype):
    f = O.get(op)(cg.i64[()], type=dtype[64, 33], **attrs)
    a, a2, b = (cg.evaluate(f, np.int64(k))[0] for k in (7, 7, 8))
    t = cg.evaluate(f, torch.tensor(7), backend="torch")[0].numpy()
    assert a.dtype == np.dtype(dtype.numpy) and np.array_equal(a, a2) and not np.array_equal(a, b)
    if op == "normal":
        np.testing.assert_allclose(t, a, rtol=1e-12, atol=1e-12)
    else:
        assert np.array_equal(t, a)


def test_random_statistics():
    n = 200_000
    u = cg.evaluate(O.uniform(cg.i64[()], type=cg.f32[n]), np.int64(1))[0]
    z = cg.evaluate(O.normal(cg.i64[()], type=cg.f64[n], mean=1.0, std=2.0), np.int64(2))[0]
    m = cg.evaluate(O.bernoulli(cg.i64[()], type=cg.f64[n], p=0.1), np.int64(3))[0]
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(z.mean() - 1.0) < 0.02 and abs(z.std() - 2.0) < 0.02
    assert set(np.unique(m)) == {0.0, 1.0} and abs(m.mean() - 0.1) < 0.005
    # neighbouring entries are uncorrelated
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01


def test_random_split_gives_distinct_reproducible_keys():
    f = O.random_split(cg.i64[()])
    k1, k2 = cg.evaluate(f, np.int64(5))
    t1, t2 = cg.evaluate(f, torch.tensor(5), backend="torch")
    assert (int(k1), int(k2)) == (int(t1), int(t2)) and k1 != k2 and 5 not in (k1, k2)
    u = O.uniform(cg.i64[()], type=cg.f64[1000])
    a, b = cg.evaluate(u, k1)[0], cg.evaluate(u, k2)[0]
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1


def test_random_ops_have_zero_derivative():
    f = cg.trace(cg.i64[()], cg.f64[4])(lambda k, x: x * O.uniform(k, type=cg.f64[4]))
    dk, dx = cg.evaluate(cg.R(f), np.int64(3), np.ones(4), np.ones(4))
    np.testing.assert_array_equal(dx, cg.evaluate(O.uniform(cg.i64[()], type=cg.f64[4]), np.int64(3))[0])


# -- bad geometry, at construction -------------------------------------------------------------------


@pytest.mark.parametrize("build,match", [
    (lambda: O.conv(cg.f64["B", 1, 4, 4], cg.f64[2, 1, 5, 3]), r"kernel spans 5 pixels on spatial axis 0 .* only 4"),
    (lambda: O.conv(cg.f64["B", 1, 4, 4], cg.f64[2, 1, 3, 3], dilation=2), r"kernel spans 5 pixels"),
    (lambda: O.conv(cg.f64["B", 3, 4, 4], cg.f64[4, 1, 3, 3], groups=2), r"3 input and 4 output channels must both divide by groups = 2"),
    (lambda: O.conv(cg.f64["B", 4, 4, 4], cg.f64[4, 4, 3, 3], groups=2), r"should have 2 input channels"),
    (lambda: O.conv(cg.f64["B", 2, 5], cg.f32[3, 2, 2]), r"share a dtype"),
    (lambda: O.conv(cg.f64["B", 2, 5], cg.f64[3, 2, 2], stride=(1, 2)), r"stride must be an int >= 1 or 1 of them"),
    (lambda: O.maxpool(cg.f64["B", 2, 5, 5], kernel=2, padding=2), r"padding \(2, 2\) must be at most half"),
    (lambda: O.maxpool(cg.f64["B", 2, 1, 5], kernel=2), r"kernel spans 2 pixels on spatial axis 0"),
    (lambda: O.maxpool(cg.f64["B", 2, 1, 5], kernel=2, dilation=2, padding=1), r"window 0 on spatial axis 0 .* wholly in"),
    (lambda: O.concat(cg.f64[2, 3], cg.f64[3, 3], axis=1), r"differ only along axis 1"),
    (lambda: O.split(cg.f64[2, 3], axis=1, sizes=(1, 1)), r"add up to 2 but axis 1"),
    (lambda: O.take(cg.f64[2, 3], cg.f64[2]), r"indices must be i64"),
    (lambda: O.uniform(cg.f64[()], type=cg.f64[2]), r"key must be an i64\[\] wire"),
    (lambda: O.bernoulli(cg.i64[()], type=cg.f64[2], p=1.5), r"p must lie in \[0, 1\]"),
])
def test_bad_geometry_is_a_type_error(build, match):
    with pytest.raises(CatgradTypeError, match=match):
        build()


# -- the reverse-derivative axioms on random diagrams built from these ops -----------------------------


@st.composite
def image_diagrams(draw):
    """x : f64[2, 2, 6, 5] and w : f64[2, 2, 3, 2] through a random chain of
    conv / pooling / unfold-fold / concat-split / mean / smooth maps."""
    steps = draw(st.lists(st.sampled_from(["conv", "maxpool", "avgpool", "foldunfold", "concat", "tanh",
                                           "mean", "mul"]), min_size=1, max_size=4))

    def body(x, w):
        for kind in steps:
            H, W = x.shape[2:]
            if kind == "conv" and H >= 3 and W >= 2:
                x = O.conv(x, w, padding=(1, 0), stride=(1, draw(st.integers(1, 2))))
            elif kind == "maxpool" and H >= 2 and W >= 2:
                x = O.maxpool(x, kernel=2, stride=1)
            elif kind == "avgpool" and H >= 2 and W >= 2:
                x = O.avgpool(x, kernel=(2, 1), padding=(1, 0))
            elif kind == "foldunfold" and H >= 2:
                u = O.unfold(x, kernel=(2, 1), stride=1) * 1.5
                x = O.fold(u, kernel=(2, 1), stride=1, size=(H, W))
            elif kind == "concat":
                a, b = O.split(x, axis=1, sizes=(1, 1))
                x = O.concat(O.sin(b), a, axis=1)
            elif kind == "tanh":
                x = O.tanh(x)
            elif kind == "mean":
                x = x - O.mean(x, axes=(2, 3), keepdims=True).broadcast(x.shape)
            elif kind == "mul":
                x = x * O.cos(x)
        return x

    return cg.trace(cg.f64[2, 2, 6, 5], cg.f64[2, 2, 3, 2])(body)


def _inputs(rng, ob):
    return [rng.standard_normal(t.shape) for t in ob]


@settings(max_examples=25, deadline=None)
@given(image_diagrams(), st.integers(0, 2**32 - 1))
def test_rd_axioms_on_image_diagrams(f, seed):
    import strategies as S

    rng = np.random.default_rng(seed)
    a, b, c = _inputs(rng, f.dom), _inputs(rng, f.cod), _inputs(rng, f.cod)
    Rf = cg.R(f)
    ev = cg.evaluate
    # RD.2: linear in the cotangent
    S.assert_close(ev(Rf, *a, *S.add_values(b, c)), S.add_values(ev(Rf, *a, *b), ev(Rf, *a, *c)), rtol=1e-9)
    # R against autograd
    ts = [torch.tensor(x, requires_grad=True) for x in a]
    (y,) = cg.evaluate(f, *ts, backend="torch")
    grads = torch.autograd.grad(y, ts, torch.tensor(b[0]), allow_unused=True)
    grads = [np.zeros_like(x) if g is None else g.numpy() for x, g in zip(a, grads)]
    assert rel_err(ev(Rf, *a, *b), grads) <= TOL
    # RD.6: pi1 R[R[R[f]]](((a, b), 0), (0, c)) = R[f](a, c)
    zeros = [np.zeros_like(x) for x in a]
    out = ev(cg.R(cg.R(Rf)), *a, *b, *zeros, *zeros, *c)
    S.assert_close(out[len(a) + len(b):], ev(Rf, *a, *c), rtol=1e-9)
    # RD.5 with g = tanh: R[f >> g](a, c) = R[f](a, R[g](f(a), c))
    g = O.tanh(f.cod[0])
    fa = ev(f, *a)
    S.assert_close(ev(cg.R(f >> g), *a, *c), ev(Rf, *a, *ev(cg.R(g), *fa, *c)), rtol=1e-9)
    # R[R[f]] against torch's double backward: the Hessian-vector product in the primal argument
    da = _inputs(rng, f.dom)
    hv = ev(cg.R(Rf), *a, *b, *da)[: len(a)]
    ts = [torch.tensor(x, requires_grad=True) for x in a]
    (y,) = cg.evaluate(f, *ts, backend="torch")
    gs = torch.autograd.grad(y, ts, torch.tensor(b[0]), create_graph=True, allow_unused=True)
    inner = sum((gi * torch.tensor(di)).sum() for gi, di in zip(gs, da) if gi is not None)
    want = torch.autograd.grad(inner, ts, allow_unused=True) if torch.is_tensor(inner) and inner.requires_grad \
        else [None] * len(ts)
    want = [np.zeros_like(x) if w is None else w.detach().numpy() for x, w in zip(a, want)]
    assert rel_err(hv, want) <= 1e-8


def test_R_of_conv_is_convolution_again():
    """dx (stride 1) and dw (groups 1) are convolutions; R[R[conv]] is built from the same ops."""
    f = O.conv(cg.f64["B", 2, 6, 5], cg.f64[3, 2, 3, 2], padding=1, dilation=(1, 2))
    names = [b.op.name for b in cg.R(f).boxes]
    assert names.count("conv") == 2 and "fold" not in names and "einsum" not in names  # dx and dw
    strided = [b.op.name for b in cg.R(O.conv(cg.f64["B", 2, 6, 5], cg.f64[3, 2, 3, 2], stride=2)).boxes]
    assert "fold" in strided  # the transposed convolution of a strided one goes through col2im
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((3, 2, 3, 2))
    v, dx, dw = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    # R[R[f]] against torch's double backward (the second derivative in the weights and input)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tv = torch.tensor(v, requires_grad=True)
    y = F.conv2d(tx, tw, padding=1, dilation=(1, 2))
    gx, gw = torch.autograd.grad(y, (tx, tw), tv, create_graph=True)
    inner = (gx * torch.tensor(dx)).sum() + (gw * torch.tensor(dw)).sum()
    want = torch.autograd.grad(inner, (tx, tw, tv))
    got = cg.evaluate(cg.R(cg.R(f)), x, w, v, dx, dw)
    assert rel_err(got, [t.numpy() for t in want]) <= TOL


def test_numpy_conv_results_do_not_share_its_scratch_memory():
    """The numpy conv keeps working arrays between calls; what it returns is always
    fresh, even where the result is laid out as the working array (1x1 output)."""
    from catgrad.core.primitive import bind

    x_t, w_t = cg.f64[2, 3, 3, 3], cg.f64[4, 3, 3, 3]
    op = cg.ops.conv(x_t, w_t).graph.boxes[0][0]
    kernel = bind(op, "numpy")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 3, 3)), rng.standard_normal((4, 3, 3, 3))
    y1 = kernel(x, w)
    keep = y1.copy()
    y2 = kernel(x * 2.0, w)
    assert y1.shape == (2, 4, 1, 1)
    np.testing.assert_array_equal(y1, keep)
    np.testing.assert_allclose(y2, 2.0 * keep, rtol=1e-12)
