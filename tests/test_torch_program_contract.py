"""The torch program's calling contract (``TorchProgram``): how it checks its arguments,
converts them to its wires' dtypes and its device, and skips that work for what the
last call returned. The cases a mutation run of ``torch_backend.py`` found unchecked."""

from __future__ import annotations


import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.compiler import prepare, torch_backend
from catgrad.compiler.torch_backend import compile_torch
from catgrad.errors import ShapeError

O = cg.ops


def _carrying():
    """``(w, x) -> (w + x, ...)`` with ``w`` f64 given back at the same position (the
    carried input) and ``x`` f32: a second call passing the returned ``w`` converts only
    ``x``, with ``x``'s own wire type."""
    @cg.trace(cg.f64[3], cg.f32["B", 3])
    def f(w, x):
        return w + O.sum(O.cast(x, dtype=cg.f64), axes=(0,)), O.sin(x)

    return compile_torch(f)


def test_what_the_last_call_did_not_give_back_is_converted_to_its_own_wire_type():
    prog = _carrying()
    assert prog._carry == 1
    x = np.array([[0.1, 0.2, 0.3]])  # float64 values that float32 rounds
    w1, s1 = prog(np.zeros(3), x)
    w2, s2 = prog(w1, x)  # w1 is the returned tensor: only x is converted, to f32
    assert s1.dtype == s2.dtype == torch.float32
    x32 = x.astype(np.float32).astype(np.float64).sum(0)
    np.testing.assert_array_equal(w1.numpy(), x32)
    np.testing.assert_array_equal(w2.numpy(), 2 * x32)
    assert torch.equal(s1, s2)


def test_the_inputs_named_in_a_shape_error_count_from_the_first_input():
    prog = _carrying()
    w1, _ = prog(np.zeros(3), np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"^input 1: ") as e:
        prog(w1, np.ones((2, 4)))
    with pytest.raises(ShapeError) as e2:
        prog(np.zeros(3), np.ones((2, 4)))  # (the slow path says the same)
    assert str(e.value) == str(e2.value)


def test_a_call_with_the_wrong_number_of_inputs_says_what_the_program_takes():
    prog = _carrying()
    with pytest.raises(ShapeError) as e:
        prog(np.zeros(3))
    assert str(e.value) == "the program takes 2 input(s) of types (f64[3], f32[B, 3]), got 1"


def test_inputs_are_moved_to_the_programs_device():
    """A host array, a tensor of another dtype and a tensor elsewhere all end on the
    program's device. (This machine may have no GPU: the program is told that its
    device is ``meta``, torch's device without storage, after it is built.)"""
    prog = _carrying()
    prog.device = torch.device("meta")
    t = prog.dom[1]
    for x in (np.ones((2, 3)), torch.ones(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float32)):
        got = prog.asarray(x, t)
        assert got.device.type == "meta" and got.dtype == torch.float32
    (w, x), = [prog._convert([torch.zeros(3, dtype=torch.float64), torch.ones(2, 3)])]
    assert w.device.type == x.device.type == "meta"


def test_the_module_class_is_named_catgrad_program_by_default():
    prog = prepare(cg.trace(cg.f64[2])(lambda x: O.sin(x)))
    assert type(torch_backend.program_module(prog)).__name__ == "CatgradProgram"
    assert type(torch_backend.graph_module(prog)).__name__ == "CatgradProgram"
