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


def test_the_class_is_named_as_asked_and_catgrad_program_by_default():
    f = cg.trace(cg.f64[2])(lambda x: O.sin(x))
    assert type(compile_torch(f).module).__name__ == "CatgradProgram"
    assert type(compile_torch(f, class_name="Mine").module).__name__ == "Mine"


def test_compile_torch_optimizes_a_diagram_unless_told_not_to():
    f = cg.trace(cg.f64[3])(lambda x: O.sin(x) * 2.0)
    assert "constant" not in [i.op.name for i in compile_torch(f).program.instrs]
    raw = compile_torch(f, passes=False)
    assert "constant" in [i.op.name for i in raw.program.instrs]
    np.testing.assert_array_equal(raw(np.arange(3.0))[0].numpy(), np.sin(np.arange(3.0)) * 2.0)


def test_programs_differing_only_in_a_constant_do_not_share_a_module():
    two = compile_torch(cg.trace(cg.f64[3])(lambda x: x * 2.0))
    three = compile_torch(cg.trace(cg.f64[3])(lambda x: x * 3.0))
    assert torch_backend.structural_key(two.program) != torch_backend.structural_key(three.program)
    assert two(np.ones(3))[0].tolist() == [2.0] * 3 and three(np.ones(3))[0].tolist() == [3.0] * 3


def test_constants_are_held_in_their_wires_dtype_bfloat16_too():
    """numpy has no bfloat16: a constant of a bf16 wire is made in float32, and the
    module's buffer holds it as bfloat16, so the product stays bfloat16."""
    f = cg.trace(cg.bf16[3])(lambda x: x * 2.5)
    got = compile_torch(f)(torch.ones(3, dtype=torch.bfloat16))[0]
    assert got.dtype == torch.bfloat16 and got.tolist() == [2.5] * 3


def test_cuda_devices_are_checked_against_what_torch_sees(monkeypatch):
    """With one CUDA device (torch made to report one, so that this runs anywhere):
    ``cuda`` and ``cuda:0`` are accepted, ``cuda:1`` is refused with the count."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert torch_backend._device("cuda") == torch.device("cuda")
    assert torch_backend._device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(cg.CatgradError) as e:
        torch_backend._device("cuda:1")
    assert str(e.value) == "device 'cuda:1' is not available: there are 1 CUDA devices"
    with pytest.raises(cg.CatgradError, match=r"^device 'mps': the torch backend runs on cpu or cuda$"):
        torch_backend._device("mps")


def test_program_module_defaults_group_elementwise_ops_and_keep_the_plain_layouts():
    """By default the module groups independent elementwise ops (``_foreach_*``) and does
    not choose the CPU layouts (a narrow product stays one product, not transposed)."""
    @cg.trace(cg.f64[20, 30], cg.f64[30, 4], cg.f64[3], cg.f64[3])
    def f(x, w, a, b):
        return x @ w, O.sin(a), O.sin(b)

    prog = prepare(f)
    code = torch_backend.program_module(prog).graph_module.code
    assert "_foreach_sin" in code and "torch.t(" not in code
    assert "torch.t(" in torch_backend.program_module(prog, cpu=True).graph_module.code
    ungrouped = torch_backend.program_module(prog, foreach=False)
    assert "_foreach" not in ungrouped.graph_module.code
    args = [torch.ones(20, 30, dtype=torch.float64), torch.ones(30, 4, dtype=torch.float64), torch.zeros(3), torch.ones(3)]
    args[2:] = [a.double() for a in args[2:]]
    for got, want in zip(ungrouped(*args), torch_backend.program_module(prog)(*args)):
        assert torch.equal(got, want)


def test_a_torch_program_made_directly_has_the_documented_defaults():
    """``TorchProgram(program)``: on cpu, grouped and fused, not donating, its module class
    ``CatgradProgram``; programs that differ only in their input names get their own
    modules, each naming its arguments."""
    @cg.trace(cg.f64[3], cg.f64[3])
    def f(a, b):
        return O.sin(a), O.sin(b)

    prog = prepare(f)
    tp = torch_backend.TorchProgram(prog)
    assert tp.device == torch.device("cpu") and tp.donate is False
    assert type(tp.module).__name__ == "CatgradProgram" and "_foreach_sin" in tp.code
    named = [torch_backend.TorchProgram(prog, input_names=n) for n in (["u", "v"], ["p", "q"])]
    assert named[0].module is not named[1].module
    assert "forward(self, u, v)" in named[0].code and "forward(self, p, q)" in named[1].code
