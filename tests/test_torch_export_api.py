"""``cg.to_torch`` and the export helpers called directly (``tests/test_export.py`` runs
the ``catgrad export`` command): parameter values of every kind, the module's names,
device and outputs, and the ``torch.export`` program with its dynamic batch."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.compiler import torch_export
from catgrad.compiler.torch_export import MARK, export_program, program_bytes

f64, i64 = cg.f64, cg.i64


def _affine():
    """x W + b, with a constant (the 2.0) that the program keeps as a buffer."""
    return cg.Para([cg.Param("lin.W", f64[3, 2]), cg.Param("lin.b", f64[2])],
                   cg.trace(f64[3, 2], f64[2], f64["B", 3])(lambda W, b, x: (x @ W) * 2.0 + b.broadcast(x.shape[0], 2)))


def _values(seed=0):
    rng = np.random.default_rng(seed)
    return {"lin.W": rng.standard_normal((3, 2)), "lin.b": rng.standard_normal(2)}


def test_values_as_arrays_lists_or_tensors_of_another_dtype_give_the_same_module():
    vals = _values()
    x = torch.as_tensor(np.random.default_rng(1).standard_normal((4, 3)))
    want = (x.numpy() @ vals["lin.W"]) * 2.0 + vals["lin.b"]
    kinds = [vals, {k: v.tolist() for k, v in vals.items()},
             {k: torch.as_tensor(v, dtype=torch.float32) for k, v in vals.items()}]
    for k, given in enumerate(kinds):
        m = cg.to_torch(_affine(), given)
        for n in ("lin.W", "lin.b"):
            p = m.get_parameter(n)
            assert p.dtype == torch.float64 and p.requires_grad  # converted to the declared dtype
            np.testing.assert_allclose(p.detach().numpy(), vals[n], rtol=1e-7 if k == 2 else 0)
        np.testing.assert_allclose(m(x).detach().numpy(), want, rtol=1e-6 if k == 2 else 1e-15)
    state = cg.TrainState(vals, {})
    assert torch.equal(cg.to_torch(_affine(), state)(x), cg.to_torch(_affine(), vals)(x))
    # tensors that require grad (a torch model's own parameters) are taken as they are
    live = {k: torch.as_tensor(v).requires_grad_(True) for k, v in vals.items()}
    assert torch.equal(cg.to_torch(_affine(), live)(x), cg.to_torch(_affine(), vals)(x))
    # and the function itself, with its defaults: on the CPU, class Model
    m = torch_export.to_torch(_affine(), vals)
    assert type(m.program).__name__ == "Model" and {p.device.type for p in m.parameters()} == {"cpu"}


def test_state_dict_holds_the_parameters_only_and_the_program_its_inputs_by_name():
    m = cg.to_torch(_affine(), _values(), name="iris mlp")
    assert list(m.state_dict()) == ["lin.W", "lin.b"]  # (the constant 2.0 is no parameter)
    assert len(list(m.program.buffers())) >= 1
    assert type(m.program).__name__ == "Iris_Mlp"
    assert "def forward(self, lin_w, lin_b, input0):" in m.program.code
    assert type(cg.to_torch(_affine(), _values()).program).__name__ == "Model"
    assert type(cg.to_torch(_affine(), _values(), name="").program).__name__ == "Model"


def test_integer_parameters_are_kept_out_of_autograd():
    model = cg.Para([cg.Param("table", f64[4, 2]), cg.Param("rows", i64[3])],
                    cg.trace(f64[4, 2], i64[3], f64[3, 2])(lambda t, r, x: cg.ops.take(t, r) + x))
    table = np.arange(8.0).reshape(4, 2)
    m = cg.to_torch(model, {"table": table, "rows": np.array([3, 0, 3])})
    assert m.get_parameter("table").requires_grad and not m.get_parameter("rows").requires_grad
    assert m.get_parameter("rows").dtype == torch.int64
    out = m(torch.ones(3, 2, dtype=torch.float64))
    np.testing.assert_array_equal(out.detach().numpy(), table[[3, 0, 3]] + 1)


def test_the_module_goes_to_the_device_asked_for():
    m = cg.to_torch(_affine(), _values(), device="meta")
    assert {p.device.type for p in m.parameters()} == {"meta"}
    assert {p.device.type for p in cg.to_torch(_affine(), _values()).parameters()} == {"cpu"}


def test_a_model_with_two_outputs_returns_a_tuple():
    two = cg.Para([cg.Param("w", f64[2])],
                  cg.trace(f64[2], f64["B", 2])(lambda w, x: (x * w.broadcast(x.shape[0], 2), x + 1.0)))
    m = cg.to_torch(two, {"w": np.array([2.0, 3.0])})
    out = m(torch.ones(2, 2, dtype=torch.float64))
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(out[0].detach().numpy(), [[2.0, 3.0], [2.0, 3.0]])
    np.testing.assert_array_equal(out[1].numpy(), np.full((2, 2), 2.0))


def test_what_cannot_become_a_module_is_said():
    with pytest.raises(cg.CatgradError) as err:
        cg.to_torch(_affine(), 5)
    assert str(err.value) == "to_torch needs a TrainState or a dict of parameter values, got int"
    sym = cg.Para([cg.Param("w", f64["N"])], cg.trace(f64["N"], f64["N"])(lambda w, x: x * w))
    with pytest.raises(cg.CatgradError) as err:
        cg.to_torch(sym, {"w": np.ones(3)})
    assert str(err.value) == "parameter w has a symbolic shape ('N',); export needs fixed parameter shapes"


def test_export_has_a_batch_dimension_from_one_up_and_leaves_scalars_alone():
    model = cg.Para([cg.Param("w", f64[3])],
                    cg.trace(f64[3], f64["B", 3], f64[()])(
                        lambda w, x, s: x * w.broadcast(x.shape[0], 3) * s.broadcast(x.shape[0], 3)))
    m = cg.to_torch(model, {"w": np.array([1.0, 2.0, 3.0])})
    s = torch.tensor(2.0, dtype=torch.float64)
    ep = export_program(m, (torch.ones(4, 3, dtype=torch.float64), s))
    # the program states its range (torch's module() runs a batch of 1 even when it says 2)
    assert [(r.lower, str(r.upper)) for r in ep.range_constraints.values()] == [(1, "int_oo")]
    run = ep.module()
    for b in (1, 2, 7):
        np.testing.assert_array_equal(run(torch.ones(b, 3, dtype=torch.float64), s).detach().numpy(),
                                      np.tile([2.0, 4.0, 6.0], (b, 1)))
    fixed = export_program(m, (torch.ones(4, 3, dtype=torch.float64), s), dynamic_batch=False).module()
    with pytest.raises(Exception):
        fixed(torch.ones(2, 3, dtype=torch.float64), s)


def test_an_export_torch_refuses_is_a_catgrad_error_with_torchs_first_line():
    m = cg.to_torch(_affine(), _values())
    with pytest.raises(cg.CatgradError) as err:
        export_program(m, (torch.ones(4, 5, dtype=torch.float64),))  # 5 columns for a 3-row W
    with pytest.raises(Exception) as theirs:  # torch's own words, for comparison
        torch.export.export(m, (torch.ones(4, 5, dtype=torch.float64),),
                            dynamic_shapes=(({0: torch.export.Dim("batch", min=1)},),))
    first = str(theirs.value).splitlines()[0]
    assert str(err.value) == f"torch.export could not capture the model: {theirs.type.__name__}: {first}"


def test_the_program_file_is_marked_as_catgrads():
    m = cg.to_torch(_affine(), _values())
    ep = export_program(m, (torch.ones(4, 3, dtype=torch.float64),))
    for note, want in ((None, "written by catgrad export"), ("", "written by catgrad export"), ("run 7", "run 7")):
        extra = {MARK: ""}
        data = program_bytes(ep) if note is None else program_bytes(ep, note)
        back = torch.export.load(io.BytesIO(data), extra_files=extra)
        assert extra[MARK] == want
        x = torch.ones(2, 3, dtype=torch.float64)
        assert torch.equal(back.module()(x), m(x).detach())
