"""The numpy kernels of conv, unfold and fold against torch, in every memory layout and
block size they choose between.

The numpy conv picks its product by the operands' strides (batch-first for ordinary
weights, channels-first when the weight's channel axes are swapped views, as in the
weight gradient R[conv] builds) and cuts the im2col matrix into cache-sized blocks;
unfold and fold copy several numbers at a time where the layouts allow. Each choice
is forced here and must give torch's numbers.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_nn_ops import conv_cases, pool_cases
from test_rd_references import rel_err

import catgrad as cg
from catgrad.core.primitive import bind
from catgrad.ops import convolution

O = cg.ops


def stored_swapped(a):
    """The same values, stored with axes 0 and 1 swapped (a view whose axis 0 runs faster)."""
    return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)


def kernel_of(f):
    return bind(f.graph.boxes[0][0], "numpy")


@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.integers(0, 2**32 - 1), st.sampled_from([1, 7, 1 << 18]))
def test_numpy_conv_in_every_layout_and_block_size(case, seed, chunk):
    n, g, xs, ws, s, p, d = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    want = fn(torch.tensor(x), torch.tensor(w), stride=s, padding=p, dilation=d, groups=g).numpy()
    run = kernel_of(O.conv(cg.f64[xs], cg.f64[ws], stride=s, padding=p, dilation=d, groups=g))
    old, convolution._CHUNK = convolution._CHUNK, chunk
    try:
        for a in (x, stored_swapped(x)):
            for b in (w, stored_swapped(w)):
                assert rel_err([run(a, b)], [want]) <= 1e-12
                out = np.full(want.shape, np.nan)
                assert run(a, b, out=out) is out and rel_err([out], [want]) <= 1e-12
    finally:
        convolution._CHUNK = old


def test_the_weight_gradient_takes_the_channels_first_product(monkeypatch):
    """R[conv]'s dw is a conv whose weight is the batch-swapped cotangent, larger than
    the image it slides over: the kernel takes the channels-first product there (dx the
    batch-first one) and agrees with torch (float32 as the CNN step)."""
    seen = []
    real = np.matmul
    monkeypatch.setattr(convolution.np, "matmul", lambda *a, **k: seen.append(a[0].shape) or real(*a, **k))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((16, 5, 6, 6)).astype(np.float32)
    f = O.conv(cg.f32[16, 8, 6, 6], cg.f32[5, 8, 3, 3], padding=1)
    dx, dw = cg.evaluate(cg.R(f), x, w, dy)
    monkeypatch.undo()
    assert (5, 16 * 36) in seen  # dw: [Cout, (batch, position)] by the windows, the channels-first product
    assert (16 * 36, 5 * 9) in seen  # dx: [(batch, position), (offset, channel)] by the flipped kernel
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    gx, gw = torch.autograd.grad(F.conv2d(tx, tw, padding=1), (tx, tw), torch.tensor(dy))
    assert rel_err([dx, dw], [gx.numpy(), gw.numpy()]) <= 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=30, deadline=None)
@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1))
def test_numpy_unfold_and_fold_kernels_against_torch(dtype, case, seed):
    """unfold's copy and fold (the tiling case is one copy) against torch's, into ``out=``
    and into fresh memory; f32 and f64 pairs take the 8- and 16-byte copies."""
    n, xs, K, s, p, dl = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    t = cg.f32 if dtype == np.float32 else cg.f64
    u = O.unfold(t[xs], kernel=K, stride=s, padding=p, dilation=dl)
    fo = O.fold(u.cod[0], kernel=K, stride=s, padding=p, dilation=dl, size=xs[2:])
    c = rng.standard_normal(u.cod[0].shape).astype(dtype)
    for f, a in ((u, x), (fo, c)):
        (want,) = cg.evaluate(f, torch.tensor(a), backend="torch")
        run = kernel_of(f)
        got = run(a)
        assert got.dtype == dtype and rel_err([got], [want.numpy()]) <= 1e-6
        out = np.full(want.shape, np.nan, dtype)
        assert run(a, out=out) is out and np.array_equal(out, got)
        strided = np.full(want.shape[:-1] + (want.shape[-1] * 2,), np.nan, dtype)[..., ::2]
        assert run(a, out=strided) is strided and np.array_equal(strided, got)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.sampled_from([np.float32, np.float64, np.int16]),
       st.integers(0, 2**32 - 1), st.data())
def test_wide_copy_is_copyto(shape, dtype, seed, data):
    """_copy moves the same bytes as np.copyto, whatever the two layouts."""
    rng = np.random.default_rng(seed)
    src = (rng.standard_normal(shape) * 100).astype(dtype)
    perm = data.draw(st.permutations(range(len(shape))))
    src = np.ascontiguousarray(src.transpose(perm)).transpose(np.argsort(perm))  # same values, other strides
    offset = data.draw(st.integers(0, 1))
    big = np.zeros(src.size * 2 + 2, dtype)
    dst = big[offset:offset + src.size].reshape(shape)
    assert convolution._copy(dst, src) is dst and np.array_equal(dst, src)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=3, max_size=5), st.data(), st.booleans(), st.integers(0, 2**32 - 1))
def test_sum_over_outer_and_inner_axes(shape, data, keepdims, seed):
    """A sum over leading and trailing axes (a conv's bias gradient) is two matrix-vector
    products in the numpy kernel: it must be np.sum, into out= or not, any layout."""
    lead = data.draw(st.integers(1, len(shape) - 2))
    trail = data.draw(st.integers(1, len(shape) - lead - 1))
    axes = tuple(range(lead)) + tuple(range(len(shape) - trail, len(shape)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    run = kernel_of(O.sum(cg.f64[tuple(shape)], axes=axes, keepdims=keepdims))
    want = np.sum(x, axis=axes, keepdims=keepdims)
    for a in (x, np.asfortranarray(x)):
        assert rel_err([run(a)], [want]) <= 1e-13
        out = np.full(want.shape, np.nan)
        assert run(a, out=out) is out and rel_err([out], [want]) <= 1e-13
