"""The arena layout of planned buffers: buffers whose spans meet never overlap in memory,
and buffers of disjoint spans do share it; compiled programs agree with and without it."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import catgrad as cg
from catgrad.compiler.buffers import arena
from catgrad.compiler.numpy_backend import compile_numpy
from catgrad.compiler.pipeline import prepare


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 10), st.integers(0, 5000)), max_size=25))
def test_buffers_live_together_never_overlap(raw):
    spans = [(a, a + w) for a, w, _ in raw]
    sizes = [s for _, _, s in raw]
    offsets, total = arena(spans, sizes)
    for i in range(len(sizes)):
        assert offsets[i] % 64 == 0 and offsets[i] + sizes[i] <= total
        for k in range(i):
            meet = spans[i][0] <= spans[k][1] and spans[k][0] <= spans[i][1]
            disjoint_memory = offsets[i] + sizes[i] <= offsets[k] or offsets[k] + sizes[k] <= offsets[i]
            assert not meet or disjoint_memory or 0 in (sizes[i], sizes[k])
    assert total <= sum(-(-s // 64) * 64 for s in sizes)


def test_buffers_of_disjoint_spans_share_memory():
    offsets, total = arena([(0, 2), (3, 5), (1, 4)], [1000, 800, 64])
    assert offsets[0] == offsets[1] == 0 and offsets[2] == 1024 and total == 1088


def test_a_program_with_shared_buffers_equals_the_unplanned_one():
    f = (cg.ops.tanh(cg.f64[40, 30]) >> cg.ops.exp(cg.f64[40, 30])) >> cg.ops.sin(cg.f64[40, 30])
    rd = cg.R(f)
    x, d = np.random.default_rng(0).normal(size=(2, 40, 30))
    run = compile_numpy(prepare(rd))
    plain = compile_numpy(prepare(rd), reuse=False)
    assert run(x, d)[0].tobytes() == plain(x, d)[0].tobytes()
    assert run(x, d)[0].tobytes() == plain(x, d)[0].tobytes()  # buffers reused on a second call
