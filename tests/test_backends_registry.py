"""The backend registry (names, lazy imports, the error for an unknown name) and the
pipeline's promises to every backend: ``prepare`` optimizes unless told not to,
``as_program`` passes a Program through, and which broadcasts a backend may leave to
its own array broadcasting."""

from __future__ import annotations

import numpy as np
import pytest

import catgrad as cg
from catgrad.compiler import BACKENDS, Program, as_program, backend_factory, lower, optimize, prepare, \
    register_backend
from catgrad.compiler.pipeline import implicit_broadcasts


def test_unknown_backends_are_named_with_a_suggestion_and_the_choices():
    with pytest.raises(cg.CatgradError, match=r"^unknown backend 'nunpy' \(did you mean 'numpy'\?\); available: "
                                              r"circuit, numpy, torch$"):
        backend_factory("nunpy")
    with pytest.raises(cg.CatgradError, match=r"^unknown backend \['numpy'\]"):
        backend_factory(["numpy"])  # unhashable: still a clear error


def test_a_backend_registered_by_path_is_imported_once_on_first_use():
    register_backend("np_by_path", "catgrad.compiler.numpy_backend:compile_numpy")
    try:
        assert BACKENDS["np_by_path"] == "catgrad.compiler.numpy_backend:compile_numpy"
        from catgrad.compiler.numpy_backend import compile_numpy

        assert backend_factory("np_by_path") is compile_numpy
        assert BACKENDS["np_by_path"] is compile_numpy  # replaced by the function itself
        assert backend_factory("numpy") is compile_numpy
    finally:
        del BACKENDS["np_by_path"]


def test_prepare_optimizes_unless_asked_not_to_and_programs_pass_through():
    f = cg.trace(cg.f64[3])(lambda x: (cg.ops.sin(x) + cg.ops.sin(x)) * 1.0)
    assert str(prepare(f)) == str(optimize(lower(f))) and len(prepare(f)) == 2
    assert str(prepare(f, passes=False)) == str(lower(f))
    p = lower(f)
    assert as_program(p) is p and as_program(p, passes=False) is p
    assert str(as_program(f)) == str(prepare(f)) and str(as_program(f, False)) == str(lower(f))
    assert isinstance(as_program(f), Program)


def test_broadcasts_are_left_implicit_only_when_every_reader_broadcasts_the_same_way():
    @cg.trace(cg.f64[3], cg.f64[2, 3], cg.f64[()])
    def f(v, x, s):
        bv = v.reshape(1, 3).broadcast(2, 3)  # read by a mul with a full-shape x: implicit
        bs = s.broadcast(2, 3)
        both = bs * s.broadcast(2, 3)  # neither operand has the full shape: explicit
        out = v.reshape(1, 3).broadcast(2, 3)  # an output: explicit
        mixed = v.reshape(3, 1).reshape(1, 3).broadcast(2, 3)  # also read by a sum: explicit
        computed = (v * 2.0).reshape(1, 3).broadcast(2, 3)  # its reader's full operand is computed: implicit
        return bv * x, both, out, mixed + x, mixed.sum(), computed * cg.ops.tanh(x)

    p = lower(f)
    names = {j: (ins.op.name, ins.outs[0]) for j, ins in enumerate(p.instrs)}
    got = implicit_broadcasts(p)
    bcasts = [j for j, (n, _) in names.items() if n == "broadcast"]
    assert got == {bcasts[0], bcasts[-1]}, (got, bcasts, str(p))
    q = Program(p.types, p.inputs, p.outputs, p.instrs)
    assert implicit_broadcasts(q) == got
    # no readers at all: nothing to leave to numpy
    g = cg.trace(cg.f64[()])(lambda s: (s.broadcast(3).sum(),))
    assert implicit_broadcasts(lower(g)) == set()
    x = np.arange(6.0).reshape(2, 3)
    from catgrad.compiler import compile_numpy

    for a, b in zip(compile_numpy(f)(np.arange(3.0), x, np.float64(2.0)), cg.evaluate(f, np.arange(3.0), x, 2.0)):
        np.testing.assert_array_equal(a, b)
