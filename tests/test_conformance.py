"""The conformance suite: every primitive, on every registered backend, against the
numpy reference (``cg.evaluate``), forward and reverse derivative; then random
diagrams and whole training steps.

Each primitive declares its own ``samples`` (input types and attributes): a new op
joins this suite by being declared, and an op without samples fails it. The backends
under test are every compiled backend in the registry that can hold the sample's
dtypes, plus the torch rules run eagerly through ``cg.evaluate``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import catgrad as cg
from catgrad.compiler import BACKENDS, backend_factory, prepare
from catgrad.core.primitive import PRIMITIVES, RULES
from catgrad.core.diagram import Diagram
from strategies import rng_from, smooth_diagrams, z2_diagrams, points, cotangents, all_bits

BATCH = 3  # the size symbolic dimensions are bound to
COMPILED = ["numpy", "torch", "circuit"]


def _to_numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _values(rng, t, domain):
    shape = tuple(BATCH if isinstance(d, str) else d for d in t.shape)
    if t.dtype.name == "bit":
        return rng.integers(0, 2, size=shape).astype(bool)
    if not t.dtype.is_float:
        return rng.integers(-3, 4, size=shape).astype(t.dtype.numpy)
    x = rng.uniform(*domain, size=shape) if domain else rng.standard_normal(size=shape)
    return np.asarray(x, dtype=t.dtype.numpy)


def _tol(f):
    return 1e-5 if any(t.dtype.name == "f32" for t in (*f.dom, *f.cod)) else 1e-12


def _assert_close(got, want, rtol, what):
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        g = _to_numpy(g)
        assert g.shape == w.shape and g.dtype == w.dtype, f"{what}, output {k}: {g.shape} {g.dtype} vs {w.shape} {w.dtype}"
        if w.dtype == bool or w.dtype.kind in "iu":
            np.testing.assert_array_equal(g, w, err_msg=f"{what}, output {k}")
        else:
            scale = max(1.0, float(np.max(np.abs(w))) if w.size else 1.0)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, err_msg=f"{what}, output {k}")


def run_on(backend: str, f, args):
    """``f`` on ``backend``: a compiled backend from the registry, or ``eval-torch``
    (the torch rules run eagerly by the interpreter)."""
    if backend == "eval-torch":
        return cg.evaluate(f, *[torch.as_tensor(a) for a in args], backend="torch")
    return backend_factory(backend)(prepare(f))(*args)


def holds(backend: str, f) -> bool:
    """Whether ``backend`` can hold ``f`` at all. The circuit backend takes bit wires only,
    with no symbolic dimension but the leading one (the samples) and no op that combines
    different samples (a sum over them, as R of a shared parameter is); it says so with a
    CircuitError at compile time, which is what is checked here."""
    if backend != "circuit":
        return True
    from catgrad.circuit import CircuitError, compile_circuit

    try:
        compile_circuit(prepare(f))
    except CircuitError:
        return False
    return True


CASES = [(name, k) for name, prim in sorted(PRIMITIVES.items()) for k in range(len(prim.samples()) or 1)]


@pytest.mark.parametrize("backend", COMPILED + ["eval-torch"])
@pytest.mark.parametrize("name, k", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_primitive_on_backend(name, k, backend):
    prim = PRIMITIVES[name]
    samples = prim.samples()
    assert samples, f"primitive {name!r} declares no samples: the conformance suite cannot run it"
    s = samples[k]
    f = Diagram.from_op(prim.op(s.dom, **s.attrs))
    rng = np.random.default_rng(abs(hash((name, k))) % 2**32)
    xs = [_values(rng, t, s.domain) for t in f.dom]
    if not holds(backend, f):
        pytest.skip(f"the {backend} backend cannot hold {f.dom} -> {f.cod}")
    want = cg.evaluate(f, *xs)
    _assert_close(run_on(backend, f, xs), want, _tol(f), f"{name} sample {k} forward on {backend}")
    if all(t.dtype.differentiable for t in (*f.dom, *f.cod)) and holds(backend, cg.R(f)):
        rf = cg.R(f)
        ds = [_values(rng, t, None) for t in f.cod]
        want = cg.evaluate(rf, *xs, *ds)
        _assert_close(run_on(backend, rf, xs + ds), want, _tol(f), f"R[{name}] sample {k} on {backend}")


def _shares_memory(a, b) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.numel() > 0 and b.numel() > 0
            and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


def test_torch_rules_mark_exactly_the_results_that_may_share_an_input():
    """A torch rule whose result shares memory with an input (a view, or the input itself)
    says so (``torch_views``): the torch backend orders an in-place update of a donated
    input after every reader of such results. Checked on every sample: each result that
    shares memory comes from an op the rule marks, and each mark is borne out by a sample
    (a mark that never holds would only cost the backend in-place updates). A mark given
    as a predicate of the op holds exactly where the result shares memory."""
    unmarked, imprecise, borne_out = [], [], set()
    for name, k in CASES:
        prim = PRIMITIVES[name]
        rule = RULES["torch"].lookup(prim)
        if rule is None:
            continue
        s = prim.samples()[k]
        op = prim.op(s.dom, **s.attrs)
        rng = np.random.default_rng(k)
        xs = [torch.as_tensor(_values(rng, t, s.domain)) for t in op.dom]
        out = cg.evaluate(Diagram.from_op(op), *xs, backend="torch")
        shares = any(_shares_memory(o, x) for o in (out if isinstance(out, (list, tuple)) else [out]) for x in xs)
        if shares and not rule.may_view(op):
            unmarked.append(f"{name} sample {k}")
        if callable(rule.views) and rule.may_view(op) != shares:
            imprecise.append(f"{name} sample {k}")
        if shares:
            borne_out.add(name)
    assert unmarked == [] and imprecise == []
    marked = {n for n, p in PRIMITIVES.items() if RULES["torch"].lookup(p) is not None and RULES["torch"].lookup(p).views}
    assert marked == borne_out


def test_every_registered_backend_is_under_test():
    assert set(BACKENDS) <= set(COMPILED) | {"recording"}, "a new backend must join the conformance suite"
    assert set(RULES) >= {"numpy", "torch", "sympy"}


def test_a_missing_rule_is_reported_at_compile_time():
    from catgrad.core.primitive import Primitive, register, PRIMITIVES as P, rule_table

    prim = Primitive("numpy_only_op", lambda dom: dom[0], rd=None, doc="test op")
    register(prim)
    rule_table("numpy").register(prim, lambda x: x)
    try:
        f = Diagram.from_op(prim.op([cg.f64["B", 2]])) >> cg.ops.exp(cg.f64["B", 2])
        with pytest.raises(cg.CatgradError, match=r"torch backend cannot run op 'numpy_only_op' on \(f64\[B, 2\]\)"):
            backend_factory("torch")(prepare(f))
        np.testing.assert_allclose(backend_factory("numpy")(prepare(f))(np.zeros((2, 2)))[0], np.ones((2, 2)))
    finally:
        del P["numpy_only_op"], RULES["numpy"][prim]


def test_numpy_backend_rejects_bf16_at_compile_time():
    f = cg.ops.exp(cg.bf16[3]) >> cg.ops.sin(cg.bf16[3])
    with pytest.raises(cg.CatgradError, match="numpy backend cannot run op 'exp' on \\(bf16\\[3\\]\\): it has no bf16"):
        backend_factory("numpy")(prepare(f))


@settings(max_examples=25, deadline=None)
@given(d=smooth_diagrams(min_ops=3, max_ops=12), data=__import__("hypothesis").strategies.data())
def test_random_float_diagrams_agree_on_every_backend(d, data):
    rng = rng_from(data.draw)
    xs = points(rng, d.dom)
    want = cg.evaluate(d, *xs)
    for backend in COMPILED:
        if holds(backend, d):
            _assert_close(run_on(backend, d, xs), want, 1e-12, f"forward on {backend}")
    rd = cg.R(d)
    args = xs + cotangents(rng, d.cod)
    want = cg.evaluate(rd, *args)
    for backend in COMPILED:
        if holds(backend, rd):
            _assert_close(run_on(backend, rd, args), want, 1e-11, f"R on {backend}")


@settings(max_examples=25, deadline=None)
@given(d=z2_diagrams(min_ops=2, max_ops=8))
def test_random_bit_diagrams_agree_on_every_backend(d):
    (xs,) = all_bits(d.dom)
    want = cg.evaluate(d, *xs)
    for backend in COMPILED:  # the circuit backend must hold every bit diagram of fixed shape
        _assert_close(run_on(backend, d, xs), want, 0, f"bits on {backend}")
    rd = cg.R(d)  # over Z2: the formal derivative, a polynomial circuit again
    xs, ds = all_bits(d.dom, d.cod)
    want = cg.evaluate(rd, *xs, *ds)
    for backend in COMPILED:
        _assert_close(run_on(backend, rd, xs + ds), want, 0, f"R over bits on {backend}")
