"""Bad input to the core raises catgrad errors whose messages name what was
expected and what was given."""

import numpy as np
import pytest

import catgrad as cg
from catgrad.errors import CatgradError, CatgradTypeError, ShapeError, UnknownOpError


def test_ill_typed_composition_names_both_types():
    with pytest.raises(CatgradTypeError) as e:
        cg.ops.exp(cg.f64[3]) >> cg.ops.exp(cg.f64[4])
    assert "f64[3]" in str(e.value) and "f64[4]" in str(e.value)


def test_ill_typed_op_application():
    with pytest.raises(CatgradTypeError, match=r"f64\[3\].*f64\[2\]"):
        cg.ops.add(cg.f64[3], cg.f64[2])
    with pytest.raises(CatgradTypeError, match="float"):
        cg.ops.exp(cg.i64[3])
    with pytest.raises(CatgradTypeError, match="index 'b'"):
        cg.ops.matmul(cg.f64[2, 3], cg.f64[4, 5])


def test_unknown_op_suggests_a_name():
    with pytest.raises(UnknownOpError, match="frobnicate") as e:
        cg.ops.frobnicate
    assert isinstance(e.value, CatgradError)
    with pytest.raises(UnknownOpError, match="did you mean 'softmax'"):
        cg.ops.sofmax
    with pytest.raises(UnknownOpError, match="did you mean"):
        cg.ops.get("tahn")


@pytest.mark.parametrize(
    "arg, pattern",
    [
        (np.zeros(4), r"expected f64\[3\].*shape \(4,\)"),
        (np.zeros((3, 1)), r"expected f64\[3\].*rank 1.*\(3, 1\)"),
        (np.zeros(3, dtype=np.float32), r"f64\[3\].*float32"),
        ("abc", r"f64\[3\].*str"),
    ],
)
def test_wrong_arrays_to_evaluate(arg, pattern):
    with pytest.raises(ShapeError, match=pattern):
        cg.evaluate(cg.ops.exp(cg.f64[3]), arg)


def test_wrong_number_of_inputs():
    with pytest.raises(ShapeError, match="2 input"):
        cg.evaluate(cg.ops.add(cg.f64[3], cg.f64[3]), np.zeros(3))


def test_symbolic_dimension_must_agree():
    f = cg.ops.add(cg.f64["B", 2], cg.f64["B", 2])
    with pytest.raises(ShapeError, match="B = 3"):
        cg.evaluate(f, np.zeros((3, 2)), np.zeros((4, 2)))


def test_bits_must_be_bits():
    with pytest.raises(ShapeError, match="0 and 1"):
        cg.evaluate(cg.ops.not_(cg.bit[2]), [0, 2])


def test_bad_types():
    with pytest.raises(CatgradTypeError, match="negative"):
        cg.f64[-1]
    with pytest.raises(CatgradTypeError, match="dimension"):
        cg.f64[1.5]
    with pytest.raises(CatgradTypeError, match="wire types"):
        cg.Ob(3)


def test_bad_structure_maps():
    with pytest.raises(CatgradTypeError, match="permutation"):
        cg.permute(cg.f64[2] @ cg.f64[2], [0, 0])
    with pytest.raises(CatgradTypeError, match="out of range"):
        cg.wiring(cg.f64[2], [1])


def test_bad_trace_and_wires():
    with pytest.raises(CatgradTypeError, match="return wires"):
        cg.trace(cg.f64[2])(lambda x: 3)
    with pytest.raises(CatgradTypeError, match="axis"):
        cg.trace(cg.f64[2])(lambda x: x.sum(axes=(3,)))


def test_para_and_lens_type_errors():
    t = cg.f64[2]
    with pytest.raises(CatgradTypeError, match="parameters"):
        cg.Para([cg.Param("W", cg.f64[3])], cg.ops.mul(t, t))
    f = cg.Para([cg.Param("W", t)], cg.ops.mul(t, t))
    with pytest.raises(CatgradTypeError, match="tie"):
        f.tie("W", "nope")
    with pytest.raises(CatgradTypeError, match="cannot compose lenses"):
        cg.lens(cg.ops.exp(t)) >> cg.lens(cg.ops.exp(cg.f64[3]))


def test_errors_count_parameters_and_inputs_separately():
    import numpy as np

    m = cg.load("examples/iris.cat")["mlp"]
    vals = m.init(0)
    with pytest.raises(cg.ShapeError, match=r"^input 0: expected f32\[B, 4\]"):
        cg.evaluate(m, *vals, np.zeros((2, 5), np.float32))
    with pytest.raises(cg.ShapeError, match=r"^parameter dense_2.W: expected f32\[16, 3\].*float64"):
        cg.evaluate(m, *vals[:2], np.zeros((16, 3)), *vals[3:], np.zeros((2, 4), np.float32))
    with pytest.raises(cg.ShapeError, match=r"^input 0: expected f32\[B, 4\]"):  # calling the model itself
        m(*vals, np.zeros((2, 5), np.float32))
    with pytest.raises(cg.ShapeError, match=r"takes 4 parameter\(s\) \(dense.W, dense.b, dense_2.W, dense_2.b\) "
                                            r"and 1 input\(s\)"):
        cg.evaluate(m, *vals)
    step = cg.compile(m, loss="cross_entropy")
    with pytest.raises(cg.ShapeError, match=r"^input x: expected f32\[B, 4\]"):
        step(step.init(0), np.zeros((2, 4)), np.zeros((2, 3), np.float32))
