"""Wire types and objects: construction, monoidal product, printing, shape binding."""

import pytest

import catgrad as cg
from catgrad.core.types import bind_shape, resolve_shape, source
from catgrad.errors import ShapeError


def test_tensor_types():
    t = cg.f32[4, 3]
    assert (t.dtype, t.shape, t.rank) == (cg.f32, (4, 3), 2)
    assert cg.f64[()].shape == () and cg.f64[5].shape == (5,)
    assert cg.f64["B", 4].symbols == {"B"}
    assert cg.f32[4, 3] == cg.f32[4, 3] != cg.f64[4, 3]
    assert hash(cg.f32[4, 3]) == hash(cg.f32[4, 3])
    assert t.with_shape((2,)) == cg.f32[2] and t.with_dtype(cg.f64) == cg.f64[4, 3]


def test_objects_are_concatenated_by_tensor():
    a, b, c = cg.f32[3], cg.bit[2], cg.f64[()]
    assert (a @ b) @ c == a @ (b @ c) == cg.Ob(a, b, c)
    assert cg.Ob() @ a == a @ cg.Ob() == cg.Ob(a)
    assert len(cg.Ob()) == 0
    assert (a @ b)[1:] == cg.Ob(b) and isinstance((a @ b)[1:], cg.Ob)


def test_printing():
    assert repr(cg.f32["B", 4]) == "f32['B', 4]" and str(cg.f32["B", 4]) == "f32[B, 4]"
    assert repr(cg.f64[()]) == "f64[()]"
    assert source(cg.f32[3] @ cg.bit[2]) == "cg.Ob(cg.f32[3], cg.bit[2])"
    assert eval(source(cg.f64["B", 2]), {"cg": cg}) == cg.f64["B", 2]


def test_bits_and_dtypes():
    assert cg.bit.differentiable and cg.f32.differentiable and not cg.i64.differentiable
    assert set(cg.DTYPES) == {"f32", "f64", "bf16", "i64", "bit"}


def test_shape_binding():
    binding = {}
    bind_shape(cg.f64["B", 4], (7, 4), binding, "x")
    assert binding == {"B": 7}
    assert resolve_shape(("B", 2), binding) == (7, 2)
    with pytest.raises(ShapeError, match="B = 7"):
        bind_shape(cg.f64["B"], (8,), binding, "y")
    with pytest.raises(ShapeError, match="not bound"):
        resolve_shape(("C",), binding)
