"""Op attributes and tensor-product arity in ``.cat`` programs: an attribute an op does not
take is refused with a located message naming it and what the op takes (``sin(x, foo=1)``,
``normal(k, type=..., stdev=1)``), a true/false attribute must be true or false
(``sum(x, keepdims=3)``), and ``(f @ g)(x)`` given the wrong number of inputs says how many
the tensor product takes."""

import inspect

import pytest

import catgrad as cg
from catgrad.core.primitive import PRIMITIVES
from catgrad.errors import CatgradError, CatgradTypeError
from catgrad.frontend import check_source, render_all


def headers(source):
    diagnostics, sources = check_source(source, "m.cat")
    text = render_all(diagnostics, sources)
    return [line for line in text.splitlines() if ": error: " in line or ": note: " in line]


def errors(source):
    return [h for h in headers(source) if ": error: " in h]


def cat_type(t) -> str:
    return repr(t)


def takes_nothing(prim) -> bool:
    return list(inspect.signature(prim.type_rule).parameters) == ["dom"]


ELEMENTWISE = sorted(n for n, p in PRIMITIVES.items() if p.elementwise and takes_nothing(p))


def test_the_attribute_free_elementwise_ops_are_the_expected_ones():
    # a guard on the list below: an op that gained an attribute leaves it, one that lost it joins
    assert "sin" in ELEMENTWISE and "add" in ELEMENTWISE and "where" in ELEMENTWISE
    assert "pow" not in ELEMENTWISE and "cast" not in ELEMENTWISE
    assert len(ELEMENTWISE) >= 25


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_an_elementwise_op_refuses_an_attribute(name):
    prim = PRIMITIVES[name]
    dom = prim.samples()[0].dom
    params = ", ".join(f"x{i} : {cat_type(t)}" for i, t in enumerate(dom))
    args = ", ".join(f"x{i}" for i in range(len(dom)))
    spell = {"not": "not", "or": "or"}.get(name, name)
    src = f"def f({params}) -> {cat_type(dom[0])} = {spell}({args}, foo=1)"
    col = src.index(f"{spell}(") + 1
    assert errors(src) == [f"m.cat:1:{col}: error: {name}: unknown attribute 'foo'; it takes: none"]
    # and the same call without the attribute is fine (the refusal is about the attribute)
    ok = src.replace(", foo=1", "")
    assert errors(ok) == [] or all("foo" not in e for e in errors(ok))


def test_sin_and_exp_with_attributes_from_the_issue():
    assert headers("def f(x : f32[3]) -> f32[3] = sin(x, foo=1)") == [
        "m.cat:1:31: error: sin: unknown attribute 'foo'; it takes: none"]
    assert headers("def f(x : f32[3]) -> f32[3] = exp(x, axes=[0])") == [
        "m.cat:1:31: error: exp: unknown attribute 'axes'; it takes: none"]
    # a partial application with an attribute is refused where it is used
    assert headers("def g = tanh(bad=2)\ndef f(x : f32[3]) -> f32[3] = g(x)") == [
        "m.cat:1:9: error: tanh: unknown attribute 'bad'; it takes: none"]


@pytest.mark.parametrize("op", ["sum", "mean", "max", "logsumexp"])
@pytest.mark.parametrize("value,shown", [("3", "3"), ("0", "0"), ("1", "1"), ("1.0", "1.0"), ('"yes"', "'yes'"),
                                         ("[1]", "(1,)")])
def test_keepdims_must_be_true_or_false(op, value, shown):
    src = f"def f(x : f32[3, 2]) -> f32[3, 1] = {op}(x, axes=1, keepdims={value})"
    assert headers(src) == [
        f"m.cat:1:37: error: {op}: keepdims must be true or false, got {shown}",
        "m.cat:1:7: note: this input has type f32[3, 2]"]


@pytest.mark.parametrize("op", ["sum", "mean", "max", "logsumexp"])
def test_keepdims_true_and_false_are_accepted(op):
    assert headers(f"def f(x : f32[3, 2]) -> f32[3, 1] = {op}(x, axes=1, keepdims=true)") == []
    assert headers(f"def f(x : f32[3, 2]) -> f32[3] = {op}(x, axes=1, keepdims=false)") == []
    assert headers(f"def f(x : f32[3, 2]) -> f32[3] = {op}(x, axes=1)") == []


def test_keepdims_from_python_is_checked_too():
    x = cg.f32[3, 2]
    with pytest.raises(CatgradError, match=r"^sum: keepdims must be true or false, got 3$"):
        cg.ops.sum(x, axes=1, keepdims=3)
    with pytest.raises(CatgradError, match=r"^max: keepdims must be true or false, got 'no'$"):
        cg.ops.max(x, keepdims="no")
    import numpy as np

    assert cg.ops.sum(x, axes=1, keepdims=np.bool_(True)).cod == cg.Ob(cg.f32[3, 1])


def test_pow_takes_one_number():
    assert headers("def f(x : f32[3]) -> f32[3] = pow(x, p=2)") == []
    assert headers("def f(x : f32[3]) -> f32[3] = pow(x, p=-0.5)") == []
    assert errors("def f(x : f32[3]) -> f32[3] = pow(x, p=true)") == [
        "m.cat:1:31: error: pow: the exponent p must be a number, got True"]
    assert errors('def f(x : f32[3]) -> f32[3] = pow(x, p="2")') == [
        "m.cat:1:31: error: pow: the exponent p must be a number, got '2'"]
    assert errors("def f(x : f32[3]) -> f32[3] = pow(x)") == [
        "m.cat:1:31: error: pow: needs the attribute p=...; it takes: p"]
    assert errors("def f(x : f32[3]) -> f32[3] = pow(x, p=2, q=3)") == [
        "m.cat:1:31: error: pow: unknown attribute 'q'; it takes: p"]
    assert errors("def f(x : i64[3]) -> i64[3] = pow(x, p=2)") == [
        "m.cat:1:31: error: pow needs a float input (f32 or f64), got i64[3]"]


@pytest.mark.parametrize("src,message", [
    ("normal(k, type=f32[3], stdev=2)", "normal: unknown attribute 'stdev' (did you mean 'std'?); it takes: type, mean, std"),
    ("uniform(k, type=f32[3], lo=0)", "uniform: unknown attribute 'lo' (did you mean 'low'?); it takes: type, low, high"),
    ("bernoulli(k, type=f32[3], foo=2)", "bernoulli: unknown attribute 'foo'; it takes: type, p"),
])
def test_samplers_refuse_attributes_they_do_not_take(src, message):
    assert errors(f"def f(k : i64[]) -> f32[3] = {src}") == [f"m.cat:1:30: error: {message}"]


@pytest.mark.parametrize("src", ["normal(k, type=f32[3], mean=1, std=2)", "uniform(k, type=f32[3], low=-1, high=2)",
                                 "bernoulli(k, type=f32[3], p=0.25)", "normal(k, type=f32[3])"])
def test_samplers_take_their_own_attributes(src):
    assert headers(f"def f(k : i64[]) -> f32[3] = {src}") == []


def test_every_primitive_refuses_an_attribute_it_does_not_name():
    """From Python: an unknown attribute is a catgrad type error for every op, naming the
    op, the attribute and what the op takes -- never silently kept, never Python's own
    TypeError from the type rule's signature."""
    for name, prim in PRIMITIVES.items():
        sample = prim.samples()[0]
        prim.op(sample.dom, **sample.attrs)  # the sample itself is fine
        with pytest.raises(CatgradTypeError, match=f"^{name}: unknown attribute 'zzz'.*; it takes: "):
            prim.op(sample.dom, **sample.attrs, zzz=1)


@pytest.mark.parametrize("call,message", [
    (lambda x: cg.ops.sin(x, foo=1), "sin: unknown attribute 'foo'; it takes: none"),
    (lambda x: cg.ops.sum(x, axis=0), "sum: unknown attribute 'axis' (did you mean 'axes'?); it takes: axes, keepdims"),
    (lambda x: cg.ops.sum(x, axes=1.5), "sum: axes must be an integer or a sequence of integers, got 1.5"),
    (lambda x: cg.ops.sum(x, axes=True), "sum: axes must be an integer or a sequence of integers, got True"),
    (lambda x: cg.ops.sum(x, axes=(0, 0.5)), "sum: an axis must be an integer, got 0.5"),
    (lambda x: cg.ops.sum(x, axes=[0, 0]), "sum: repeated axis in (0, 0)"),
    (lambda x: cg.ops.reshape(x, shape=8), "reshape: bad attribute values {'shape': 8} ('int' object is not iterable)"),
    (lambda x: cg.ops.softmax(x, axis=[0]), "softmax: axis must be one integer, got [0]"),
    (lambda x: cg.ops.softmax(x, axis=2), "softmax: axis 2 is out of range for f64[4, 2]"),
    (lambda x: cg.ops.concat(x, x, axis=1.5), "concat: axis must be one integer, got 1.5"),
    (lambda x: cg.ops.slice(x, axis=True, start=0, stop=1), "slice: axis must be one integer, got True"),
])
def test_bad_attributes_from_python_are_type_errors_that_say_what(call, message):
    with pytest.raises(CatgradTypeError) as info:
        cg.trace(cg.f64[4, 2])(call)
    assert str(info.value) == message


def test_a_missing_required_attribute_from_python_is_named():
    prim = PRIMITIVES["reshape"]
    with pytest.raises(CatgradTypeError, match=r"^reshape: needs the attribute shape=\.\.\.; it takes: shape$"):
        prim.op(cg.f64[8])


# -- the tensor product's inputs ---------------------------------------------------------


@pytest.mark.parametrize("src,message", [
    ("def f(x : f32[3]) -> f32[3] = (sin @ cos)(x)",
     "m.cat:1:31: error: the tensor product 'sin @ cos' takes 2 inputs but is given 1"),
    ("def f(x : f32[3], y : f32[3], z : f32[3]) -> (f32[3], f32[3]) = (sin @ cos)(x, y, z)",
     "m.cat:1:65: error: the tensor product 'sin @ cos' takes 2 inputs but is given 3"),
    ("def f : f32[3] -> f32[3] = sin @ cos",
     "m.cat:1:28: error: the tensor product 'sin @ cos' takes 2 inputs but is given 1"),
    ("def f(x : f32[3], y : f32[3]) -> (f32[3], f32[3], f32[3]) = (sin @ cos @ tanh)(x, y)",
     "m.cat:1:61: error: the tensor product 'sin @ cos @ tanh' takes 3 inputs but is given 2"),
    ("def g(a : f32[3], b : f32[3]) -> f32[3] = a + b\n"
     "def f(x : f32[3], y : f32[3]) -> (f32[3], f32[3]) = (sin @ g)(x, y)",
     "m.cat:2:53: error: the tensor product 'sin @ g' takes 3 inputs but is given 2"),
    ("def f(x : f32[3]) -> f32[3] = (sin @ id[2])(x)",
     "m.cat:1:31: error: the tensor product 'sin @ id[2]' takes 3 inputs but is given 1"),
])
def test_a_tensor_product_given_the_wrong_number_of_inputs(src, message):
    assert errors(src) == [message]


@pytest.mark.parametrize("src", [
    "def f(x : f32[3], y : f32[3]) -> (f32[3], f32[3]) = (sin @ cos)(x, y)",
    "def f : (f32[3], f32[3]) -> (f32[3], f32[3]) = sin @ cos",
    "def f : (f32[3], f32[3], f32[3]) -> (f32[3], f32[3]) = (sin @ cos @ tanh) >> (add @ id)",
    "def g(a : f32[3], b : f32[3]) -> f32[3] = a + b\n"
    "def f(x : f32[3], y : f32[3], z : f32[3]) -> (f32[3], f32[3]) = (sin @ g)(x, y, z)",
])
def test_a_tensor_product_given_the_right_inputs_is_fine(src):
    assert headers(src) == []


def test_the_tensor_product_values():
    import numpy as np

    src = "def f(x : f64[3], y : f64[3]) -> (f64[3], f64[3]) = (sin @ cos)(x, y)"
    assert headers(src) == []
    prog = cg.loads(src)
    x, y = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    a, b = cg.evaluate(prog["f"], x, y)
    np.testing.assert_allclose(a, np.sin(x), rtol=1e-15)
    np.testing.assert_allclose(b, np.cos(y), rtol=1e-15)
