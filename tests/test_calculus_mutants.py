"""Edges of catgrad.calculus that the law tests do not reach, each found as a surviving
mutant (docs/testing.md, "catgrad/calculus -- every mutant"): exact error messages (anchored
at their start), the types and names the constructions carry, unused-input gradients, and
argument checks. Every expected value is computed independently (by hand or by numpy)."""

import numpy as np
import pytest

import catgrad as cg

f64 = cg.f64


# -- hvp.py ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make,name", [(cg.grad, "grad"), (cg.hvp, "hvp")])
@pytest.mark.parametrize("f,shown", [
    (cg.ops.sin(f64[3]), "f64[3]"),  # not a scalar
    (cg.id(cg.i64[()]), "i64[]"),  # a scalar, but not a float
    (cg.id(f64[()]) @ cg.id(f64[()]), "(f64[], f64[])"),  # two scalars
    (cg.id(f64[1]), "f64[1]"),  # one entry, but rank 1
])
def test_scalar_output_message_names_the_function(make, name, f, shown):
    with pytest.raises(cg.CatgradTypeError) as e:
        make(f)
    assert str(e.value) == f"{name} needs a diagram with one float scalar output, got output type {shown}"


def test_gnvp_messages():
    sq = cg.trace(f64[2])(lambda y: (y * y).sum())
    with pytest.raises(cg.CatgradTypeError) as e:
        cg.gnvp(cg.id(f64[2]), cg.ops.sin(f64[2]))
    assert str(e.value) == "gnvp needs a diagram with one float scalar output, got output type f64[2]"
    with pytest.raises(cg.CatgradTypeError) as e:
        cg.gnvp(cg.ops.sin(f64[3]), sq)
    assert str(e.value) == "gnvp: the model's output type f64[3] is not the loss's input type f64[2]"


def test_grad_of_an_unused_input_is_a_zero_of_its_type():
    g = cg.trace(f64[2], cg.f32[3])(lambda x, y: (x * x * x).sum())
    d = cg.grad(g)
    assert d.dom == g.dom and d.cod == g.dom
    x = np.array([1.0, -2.0])
    gx, gy = cg.evaluate(d, x, np.ones(3, np.float32))
    np.testing.assert_array_equal(gx, 3 * x * x)  # d/dx sum x^3, at cotangent exactly 1
    assert gy.dtype == np.float32 and gy.shape == (3,)
    np.testing.assert_array_equal(gy, np.zeros(3, np.float32))


def test_hvp_and_gnvp_values_and_types():
    # f(x) = sum x^3: H = diag(6 x); gnvp of (id, sum y^4 / 4): J = I, H_l = diag(3 y^2)
    cube = cg.trace(f64[3])(lambda x: (x * x * x).sum())
    x, v = np.array([1.0, -2.0, 0.5]), np.array([2.0, 1.0, -1.0])
    h = cg.hvp(cube)
    assert h.dom == cg.Ob(f64[3], f64[3]) and h.cod == cg.Ob(f64[3])
    np.testing.assert_allclose(cg.evaluate(h, x, v)[0], 6 * x * v, rtol=1e-15)
    quart = cg.trace(f64[3])(lambda y: (y * y * y * y).sum() * 0.25)
    lin = cg.trace(f64[3])(lambda x: x * 2.0)  # J = 2 I
    gn = cg.gnvp(lin, quart)
    assert gn.dom == cg.Ob(f64[3], f64[3]) and gn.cod == cg.Ob(f64[3])
    np.testing.assert_allclose(cg.evaluate(gn, x, v)[0], 2 * (3 * (2 * x) ** 2) * 2 * v, rtol=1e-14)


# -- rdc.py ---------------------------------------------------------------------------------


def constants(d):
    return {op.kwargs["type"]: op.kwargs["value"] for op, _, _, _ in d.graph.boxes if op.prim.name == "constant"}


def test_zero_cotangents_are_literals_of_their_dtype():
    """Where no cotangent arrives, R(f) outputs a zero constant written in the wire's own
    kind of number (what the program listing prints): 0.0 on float wires, 0 on integers."""
    f = cg.trace(f64[2], cg.i64[2], cg.f32[3])(lambda x, k, y: x * x)
    r = cg.R(f)
    assert r.dom == cg.Ob(f64[2], cg.i64[2], cg.f32[3], f64[2]) and r.cod == cg.Ob(f64[2], cg.i64[2], cg.f32[3])
    zeros = constants(r)
    assert set(zeros) == {cg.i64[2], cg.f32[3]}
    assert type(zeros[cg.i64[2]]) is int and zeros[cg.i64[2]] == 0
    assert type(zeros[cg.f32[3]]) is float and zeros[cg.f32[3]] == 0.0
    gx, gk, gy = cg.evaluate(r, np.array([1.0, 2.0]), np.array([3, 4]), np.ones(3, np.float32), np.array([1.0, -1.0]))
    np.testing.assert_array_equal(gx, [2.0, -4.0])
    assert gk.dtype == np.int64 and gy.dtype == np.float32
    np.testing.assert_array_equal(gk, [0, 0])
    np.testing.assert_array_equal(gy, np.zeros(3, np.float32))


def test_integer_outputs_send_no_cotangent_back():
    """R(f)(x, d) ignores the cotangent given for an integer output: J^T is taken over the
    differentiable wires only (docs/mathematics.md), so a nonzero d there changes nothing."""
    f = cg.trace(f64[2])(lambda x: (x * x, cg.ops.cast(x * 3.0, dtype=cg.i64)))
    assert f.cod == cg.Ob(f64[2], cg.i64[2])
    r = cg.R(f)
    x, d = np.array([1.5, -2.0]), np.array([1.0, 0.5])
    for dk in (np.array([0, 0]), np.array([5, -7])):
        (gx,) = cg.evaluate(r, x, d, dk)
        np.testing.assert_array_equal(gx, 2 * x * d)
    # an integer wire passed straight through: its cotangent is zero, not the one given
    g = cg.id(f64[2]) @ cg.id(cg.i64[2])
    gx, gk = cg.evaluate(cg.R(g), x, np.array([3, 4]), d, np.array([5, -7]))
    np.testing.assert_array_equal(gx, d)
    assert gk.dtype == np.int64
    np.testing.assert_array_equal(gk, [0, 0])


# -- learner.py -----------------------------------------------------------------------------

from catgrad.calculus.learner import Error, Learn, Learner, _as_params, _error, gradient, learner, optimized, quadratic


def dot_para():
    """f(w, a) = w . a (docs/mathematics.md section 3)."""
    return cg.Para([cg.Param("w", f64[2])], cg.trace(f64[2], f64[2])(lambda w, a: (w * a).sum()))


def test_parameters_given_as_types_are_named_p0_p1():
    two = _as_params(cg.Ob(f64[2], cg.f32[1]))
    assert [(p.name, p.type, p.init) for p in two] == [("p0", f64[2], None), ("p1", cg.f32[1], None)]
    one = _as_params(f64[3])
    assert [(p.name, p.type) for p in one] == [("p0", f64[3])]
    listed = _as_params([f64[2], cg.f32[1]])
    assert [(p.name, p.type) for p in listed] == [("p0", f64[2]), ("p1", cg.f32[1])]
    given = (cg.Param("a", f64[2]), cg.Param("b", f64[1]))
    assert _as_params(list(given)) == given
    assert _as_params(()) == ()
    with pytest.raises(cg.CatgradTypeError) as e:
        _as_params([f64[2], cg.Param("a", f64[2])])
    assert str(e.value) == ("a learner's parameters must be Params or wire types, got "
                            "(f64[2], Param(name='a', type=f64[2], init=None))")
    # a learner built from types has those names and types
    L = Learner(f64[2], cg.ops.mul(f64[2], f64[2]), cg.wiring(f64[2] @ f64[2] @ f64[2], [0]),
                cg.wiring(f64[2] @ f64[2] @ f64[2], [1]))
    assert L.names == ("p0",) and L.P == cg.Ob(f64[2]) and L.dom == cg.Ob(f64[2]) and L.cod == cg.Ob(f64[2])
    assert repr(L) == "Learner([p0: f64[2]], f64[2] -> f64[2])"


def test_learner_constructor_messages():
    s = f64[()]
    mul = cg.ops.mul(s, s)
    P_A_B = s @ s @ s
    ok_u, ok_r = cg.wiring(P_A_B, [0]), cg.wiring(P_A_B, [1])
    with pytest.raises(cg.CatgradTypeError) as e:
        Learner([cg.Param("w", s), cg.Param("w", s)], cg.ops.mul(s, s) >> cg.wiring(cg.Ob(s), [0, 0]) >> mul,
                ok_u, ok_r)
    assert str(e.value) == "parameter names must be unique, got ['w', 'w']"
    with pytest.raises(cg.CatgradTypeError) as e:
        Learner([f64[2]], mul, ok_u, ok_r)
    assert str(e.value) == "implement must take the parameters f64[2] first, got (f64[], f64[])"
    with pytest.raises(cg.CatgradTypeError) as e:
        Learner([s], mul, cg.wiring(P_A_B, [0, 0]), ok_r)  # update's codomain is wrong
    assert str(e.value) == "update must be (f64[], f64[], f64[]) -> f64[], got (f64[], f64[], f64[]) -> (f64[], f64[])"
    with pytest.raises(cg.CatgradTypeError) as e:
        Learner([s], mul, ok_u, cg.wiring(P_A_B, []))  # request's codomain is wrong
    assert str(e.value) == "request must be (f64[], f64[], f64[]) -> f64[], got (f64[], f64[], f64[]) -> ()"
    with pytest.raises(cg.CatgradTypeError) as e:
        Learner([s], mul, ok_u, cg.wiring(s @ s, [1]))  # request's domain is wrong
    assert str(e.value) == "request must be (f64[], f64[], f64[]) -> f64[], got (f64[], f64[]) -> f64[]"
    L = Learner([s], mul, ok_u, ok_r)
    assert (L.implement, L.update, L.request) == (mul, ok_u, ok_r)


@pytest.mark.parametrize("method,args,message", [
    ("forward", ([np.zeros(2), np.zeros(2)], np.zeros(2)), "parameters: expected 1 array(s) for f64[2], got 2"),
    ("forward", ([np.zeros(2)], [np.zeros(2), np.zeros(2)]), "input: expected 1 array(s) for f64[2], got 2"),
    ("updated", ([np.zeros(2), np.zeros(2)], np.zeros(2), np.array(1.0)),
     "parameters: expected 1 array(s) for f64[2], got 2"),
    ("updated", ([np.zeros(2)], [np.zeros(2)] * 3, np.array(1.0)), "input: expected 1 array(s) for f64[2], got 3"),
    ("updated", ([np.zeros(2)], np.zeros(2), [np.array(1.0)] * 2), "target: expected 1 array(s) for f64[], got 2"),
    ("requested", ([np.zeros(2)] * 3, np.zeros(2), np.array(1.0)), "parameters: expected 1 array(s) for f64[2], got 3"),
    ("requested", ([np.zeros(2)], [], np.array(1.0)), "input: expected 1 array(s) for f64[2], got 0"),
    ("requested", ([np.zeros(2)], np.zeros(2), [np.array(1.0)] * 2), "target: expected 1 array(s) for f64[], got 2"),
])
def test_array_count_messages_name_what_is_wrong(method, args, message):
    L = learner(dot_para(), 0.1)
    with pytest.raises(cg.ShapeError) as e:
        getattr(L, method)(*args)
    assert str(e.value) == message


def test_forward_updated_requested_take_lists_or_single_arrays():
    """Worked numbers: w = (0.5, -1), a = (2, 1), b = 1: f = 0, r = f - b = -1,
    grad_w E = r a, grad_a E = r w; U = w - 0.1 r a; request = a - r w."""
    L = learner(dot_para(), 0.1)
    w, a, b = np.array([0.5, -1.0]), np.array([2.0, 1.0]), np.array(1.0)
    for p, x, y in (([w], a, b), (w, [a], [b]), ((w,), (a,), (b,))):
        (f,) = L.forward(p, x)
        assert f == 0.0
        (u,) = L.updated(p, x, y)
        np.testing.assert_allclose(u, w + 0.1 * a, rtol=1e-15)
        (r,) = L.requested(p, x, y)
        np.testing.assert_allclose(r, a + w, rtol=1e-15)
    assert isinstance(L.forward([w], a), list) and isinstance(L.requested([w], a, b), list)


def test_two_wire_learner_values():
    """A learner with two input wires and two output wires, by hand: f(w, a1, a2) = (w a1, a2)."""
    body = cg.trace(f64[()], f64[()], f64[()])(lambda w, a1, a2: (w * a1, a2 * 1.0))
    L = learner(cg.Para([cg.Param("w", f64[()])], body), 0.5)
    w, a1, a2, b1, b2 = 2.0, 3.0, 5.0, 1.0, 4.0
    p = [np.array(w)]
    a, b = [np.array(a1), np.array(a2)], [np.array(b1), np.array(b2)]
    fw = L.forward(p, a)
    assert [float(v) for v in fw] == [6.0, 5.0]
    r1, r2 = w * a1 - b1, a2 - b2  # dE/dx per output
    (u,) = L.updated(p, a, b)
    assert float(u) == w - 0.5 * r1 * a1
    req = L.requested(p, a, b)
    assert [float(v) for v in req] == [a1 - r1 * w, a2 - r2]


def test_error_functions_are_looked_up():
    assert _error(None) is quadratic and _error("quadratic") is quadratic
    e = Error("mine", lambda t: None)
    assert _error(e) is e

    def my_loss(t):
        return None

    made = _error(my_loss)
    assert isinstance(made, Error) and made.name == "my_loss" and made.loss is my_loss and made.inverse is None

    class Callable:
        def __call__(self, t):
            return None

    c = Callable()
    assert _error(c).name == "loss" and _error(c).loss is c
    for bad in ("absolute", 3):
        with pytest.raises(cg.CatgradTypeError) as ex:
            _error(bad)
        assert str(ex.value) == f"an error function must be an Error or a loss constructor, got {bad!r}"
    assert repr(quadratic) == "Error('quadratic')" and repr(Learn(0.5)) == "Learn(eps=0.5, error=quadratic)"
    assert repr(Learn(1, my_loss)) == "Learn(eps=1.0, error=my_loss)" and Learn(1).eps == 1.0


@pytest.mark.parametrize("loss,got", [
    (lambda t: cg.id(t, t), "(f64[2], f64[2]) -> (f64[2], f64[2])"),  # two outputs
    (lambda t: cg.trace(t, t)(lambda y, x: x * y), "(f64[2], f64[2]) -> f64[2]"),  # not a scalar
    (lambda t: cg.trace(t)(lambda x: (x * x).sum()), "f64[2] -> f64[]"),  # one input
    (lambda t: cg.trace(t, f64[3])(lambda y, x: (x * x).sum()), "(f64[2], f64[3]) -> f64[]"),  # wrong second input
    (lambda t: 3, "int"),  # not a diagram at all
])
def test_error_diagram_checks_its_type(loss, got):
    err = Error("bad", loss)
    with pytest.raises(cg.CatgradTypeError) as e:
        err.diagram(f64[2])
    assert str(e.value) == f"error 'bad' at f64[2] must be (label, pred) : f64[2], f64[2] -> scalar, got {got}"


def test_error_diagram_accepts_a_para_loss_and_a_rank0_scalar():
    t = f64[2]
    body = cg.trace(t, t)(lambda y, x: ((x - y) * (x - y)).sum())
    assert Error("p", lambda u: cg.Para([cg.Param("label", u)], body)).diagram(t) == body
    assert Error("d", lambda u: body).diagram(t) == body
    # its gradient in the prediction is 2 (x - y) here
    e = Error("sq", lambda u: cg.trace(u, u)(lambda y, x: ((x - y) * (x - y)).sum()))
    L = learner(dot_para(), 0.25, error=e)
    w, a, b = np.array([0.5, -1.0]), np.array([2.0, 1.0]), np.array(1.0)
    np.testing.assert_allclose(L.updated([w], a, b)[0], w - 0.25 * 2 * (0.0 - 1.0) * a, rtol=1e-15)


def test_gradient_refuses_non_float_wires_with_the_map_named():
    bits = cg.Para([cg.Param("k", cg.bit[2])], cg.ops.mul(cg.bit[2], cg.bit[2]))
    with pytest.raises(cg.CatgradTypeError) as e:
        gradient(bits)
    assert str(e.value).startswith("gradients need float wires, got bit[2] in Para([k: bit[2]]")
    ints = cg.Para([], cg.id(cg.i64[2]))
    with pytest.raises(cg.CatgradTypeError, match=r"^gradients need float wires, got i64\[2\] in "):
        gradient(ints)


def sgd_lens(P, eps):
    n = len(P)
    return cg.Lens(cg.id(P), cg.build(P @ P, lambda b, ins: [p + eps * d for p, d in zip(ins[:n], ins[n:])]))


class Carrier:
    """An object carrying an optimizer lens as ``.lens`` (the learning layer's shape)."""

    def __init__(self, lens, keys=None):
        self.lens = lens
        if keys is not None:
            self.keys = keys


from test_learner import momentum_lens  # noqa: E402  (the optimizer lens of the learner tests)


def test_optimized_state_names_and_carriers():
    f = dot_para()
    lens = momentum_lens(f.P, 0.1, 0.9)
    assert optimized(f, lens).names == ("w", "opt/s0")
    assert optimized(f, Carrier(lens)).names == ("w", "opt/s0")
    assert optimized(f, Carrier(lens, keys=["mom"])).names == ("w", "opt/mom")
    assert optimized(f, Carrier(lens, keys=[])).names == ("w", "opt/s0")
    L = optimized(f, Carrier(lens, keys=["mom"]))
    assert L.P == f64[2] @ f64[2] and L.dom == cg.Ob(f64[2]) and L.cod == cg.Ob(f64[()])
    assert [p.type for p in L.params] == [f64[2], f64[2]]
    # one step by hand: s' = 0.9 s - g, w' = w + 0.1 s', g = (w.a - b) a; forward at get(w, s) = w
    w, s, a, b = np.array([0.5, -1.0]), np.array([0.2, 0.1]), np.array([2.0, 1.0]), np.array(1.0)
    g = (w @ a - 1.0) * a
    s2 = 0.9 * s - g
    got = L.updated([w, s], a, b)
    np.testing.assert_allclose(got[0], w + 0.1 * s2, rtol=1e-15)
    np.testing.assert_allclose(got[1], s2, rtol=1e-15)
    assert L.forward([w, s], a)[0] == w @ a
    np.testing.assert_allclose(L.requested([w, s], a, b)[0], a - (w @ a - 1.0) * w, rtol=1e-15)


def test_optimized_gets_the_point_from_the_lens():
    """With get(p, s) = p + s (a look-ahead), forward, update and request all use p + s."""
    f = dot_para()
    P = f.P
    get = cg.build(P @ P, lambda b, ins: [ins[0] + ins[1]])
    put = cg.build(P @ P @ P, lambda b, ins: [ins[0] + 0.5 * ins[2], ins[1] * 0.5])
    L = optimized(f, cg.Lens(get, put))
    w, s, a, b = np.array([0.5, -1.0]), np.array([0.25, 0.5]), np.array([2.0, 1.0]), np.array(3.0)
    pb = w + s
    r = pb @ a - 3.0
    assert L.forward([w, s], a)[0] == pb @ a
    u = L.updated([w, s], a, b)
    np.testing.assert_allclose(u[0], w - 0.5 * r * a, rtol=1e-15)
    np.testing.assert_allclose(u[1], s * 0.5, rtol=1e-15)
    np.testing.assert_allclose(L.requested([w, s], a, b)[0], a - r * pb, rtol=1e-15)


def test_optimized_messages():
    f = dot_para()
    with pytest.raises(cg.CatgradTypeError) as e:
        optimized(f, 0.1)
    assert str(e.value) == "expected an optimizer lens (P x S, P x S) -> (P, P'), got float"
    with pytest.raises(cg.CatgradTypeError) as e:
        optimized(f, Carrier("not a lens"))
    assert str(e.value) == "expected an optimizer lens (P x S, P x S) -> (P, P'), got Carrier"
    P = f.P
    bad = [
        (sgd_lens(cg.Ob(f64[3]), 0.1), "(f64[3], f64[3]) -> (f64[3], f64[3])"),  # A wrong
        (cg.Lens(cg.wiring(P @ P, [0, 1]), cg.wiring(P @ P @ P, [0, 1])),
         "((f64[2], f64[2]), (f64[2], f64[2])) -> ((f64[2], f64[2]), f64[2])"),  # B wrong
        (cg.Lens(cg.wiring(P @ P, [0]), cg.wiring(P @ P @ P @ P, [0, 1])),
         "((f64[2], f64[2]), (f64[2], f64[2])) -> (f64[2], (f64[2], f64[2]))"),  # B' wrong
        (cg.Lens(cg.wiring(P @ P, [0]), cg.wiring(P @ P @ P, [0])),
         "((f64[2], f64[2]), f64[2]) -> (f64[2], f64[2])"),  # A' wrong
    ]
    for lens, shown in bad:
        with pytest.raises(cg.CatgradTypeError) as e:
            optimized(f, lens)
        assert str(e.value) == f"the optimizer lens must be (f64[2] x S, f64[2] x S) -> (f64[2], f64[2]), got {shown}"


# -- lens.py --------------------------------------------------------------------------------


def test_lens_messages():
    with pytest.raises(cg.CatgradTypeError) as e:
        cg.Lens(cg.id(f64[2]), cg.id(f64[3]))
    assert str(e.value) == "a lens's put must take the get's input f64[2] first, got f64[3]"
    f = cg.Lens(cg.id(f64[2]), cg.wiring(f64[2] @ cg.f32[1], [0]))  # (f64[2], f64[2]) -> (f64[2], f32[1])
    g = cg.Lens.id(f64[3], cg.i64[4])  # (f64[3], i64[4]) -> (f64[3], i64[4])
    with pytest.raises(cg.CatgradTypeError) as e:
        f >> g
    assert str(e.value) == ("cannot compose lenses: the first ends at f64[2], f32[1] "
                            "but the second starts at f64[3], i64[4]")


# -- para.py --------------------------------------------------------------------------------

from catgrad.calculus.para import ParaLens, _merge, as_para


def test_merge_renames_clashes_to_the_least_free_suffix():
    t = f64[2]
    P = cg.Param
    merged = _merge([P("W", t), P("W_2", t)], [P("W", f64[3])], [P("W_2", t), P("W", t), P("b", t)], [P("b", t)])
    assert [p.name for p in merged] == ["W", "W_2", "W_3", "W_4", "W_5", "b", "b_2"]
    assert [p.type for p in merged] == [t, t, f64[3], t, t, t, t]
    # a suffixed name clashing counts from its base; a name with digits not after '_' is its own base
    merged = _merge([P("h_7", t), P("x2", t)], [P("h_7", t), P("x2", t), P("h", t)])
    assert [p.name for p in merged] == ["h_7", "x2", "h_2", "x2_2", "h"]
    init = cg.init.normal(0.5) if hasattr(cg, "init") else None
    kept = _merge([P("a", t, init)], [P("a", t, init)])
    assert kept[1].init is init and kept[1].name == "a_2"
    assert _merge() == () and _merge([], []) == ()


def test_as_para():
    t = f64[2]
    d = cg.ops.sin(t)
    p = as_para(d)
    assert isinstance(p, cg.Para) and p.body is d and p.params == () and p.dom == cg.Ob(t) and p.cod == cg.Ob(t)
    q = cg.Para([cg.Param("w", t)], cg.ops.mul(t, t))
    assert as_para(q) is q
    with pytest.raises(cg.CatgradTypeError) as e:
        as_para(3)
    assert str(e.value) == "expected a Para or a Diagram, got int"


def test_as_para_explains_stateful_models():
    class FakeStateful:
        state = (cg.Param("bn.mean", f64[2]), cg.Param("bn.var", f64[2]))

        def forward(self, mode):
            return None

    with pytest.raises(cg.CatgradTypeError) as e:
        as_para(FakeStateful())
    assert str(e.value).startswith("this model has state (bn.mean, bn.var) or differs between training and "
                                   "evaluation, which only cg.compile and cg.fit")
    FakeStateful.state = ()
    with pytest.raises(cg.CatgradTypeError, match=r"^this model has state \(a random key\) or differs"):
        as_para(FakeStateful())


def test_parallel_para_parameters_and_values():
    """(p, f) @ (q, g): parameters p then q; the body takes (p, q, a, c)."""
    t, s = f64[2], f64[()]
    f = cg.Para([cg.Param("u", t), cg.Param("u2", s)], cg.trace(t, s, t)(lambda u, k, x: u * x * k))
    g = cg.Para([cg.Param("v", s)], cg.trace(s, f64[3])(lambda v, y: y * v))
    h = f @ g
    assert h.names == ("u", "u2", "v") and h.P == t @ s @ s
    assert h.dom == t @ f64[3] and h.cod == t @ f64[3] and h.body.dom == t @ s @ s @ t @ f64[3]
    u, k, v = np.array([2.0, 3.0]), np.array(0.5), np.array(-2.0)
    x, y = np.array([1.0, -1.0]), np.array([1.0, 2.0, 3.0])
    a, b = cg.evaluate(h.body, u, k, v, x, y)
    np.testing.assert_array_equal(a, u * x * 0.5)
    np.testing.assert_array_equal(b, y * -2.0)
    # with a plain diagram on the right, and on the left
    r = f @ cg.ops.sin(s)
    assert r.names == ("u", "u2") and r.dom == t @ s
    a, b = cg.evaluate(r.body, u, k, x, np.array(0.25))
    np.testing.assert_array_equal(a, u * x * 0.5)
    assert b == np.sin(0.25)
    left = cg.ops.sin(s) @ g
    assert left.names == ("v",) and left.dom == s @ f64[3]


def test_para_lens_of_and_its_parts():
    t = f64[2]
    f = cg.Para([cg.Param("w", t)], cg.trace(t, f64[3])(lambda w, x: (w.sum() * x)))
    pl = ParaLens.of(f)
    assert pl.params == f.params and pl.P == cg.Ob(t)
    assert pl.A == cg.Ob(f64[3]) and pl.B == cg.Ob(f64[3]) and pl.B_ == cg.Ob(f64[3]) and pl.A_ == cg.Ob(f64[3])
    assert pl.get == f.body and pl.put == cg.R(f.body)
    assert repr(pl) == "ParaLens(f64[2]; (f64[3], f64[3]) -> (f64[3], f64[3]))"
    plain = ParaLens.of(cg.ops.sin(t))
    assert plain.params == () and plain.P == cg.Ob() and plain.A_ == cg.Ob(t) and plain.put.cod == cg.Ob(t)
    with pytest.raises(cg.CatgradTypeError) as e:
        ParaLens([cg.Param("w", t)], cg.ops.mul(t, t), cg.id(t))
    assert str(e.value) == "put must take (f64[2], f64[2]) first, got f64[2]"


def test_para_lens_composition_messages_and_values():
    s = f64[()]
    f = ParaLens.of(cg.Para([cg.Param("w", s)], cg.ops.mul(s, s)))  # w x
    g = ParaLens.of(cg.Para([cg.Param("w", s)], cg.trace(s, s)(lambda v, y: cg.ops.sin(v * y))))  # sin(v y)
    h = f >> g
    assert [p.name for p in h.params] == ["w", "w_2"]  # g's parameters first
    assert h.P == s @ s and h.A == cg.Ob(s) and h.B == cg.Ob(s)
    v, w, x, d = 0.7, 1.5, -0.4, 2.0
    (y,) = cg.evaluate(h.get, np.array(v), np.array(w), np.array(x))
    np.testing.assert_allclose(y, np.sin(v * (w * x)), rtol=1e-15)
    dv, dw, dx = cg.evaluate(h.put, np.array(v), np.array(w), np.array(x), np.array(d))
    c = np.cos(v * w * x) * d
    np.testing.assert_allclose([dv, dw, dx], [c * w * x, c * v * x, c * v * w], rtol=1e-15)
    wrong = ParaLens.of(cg.ops.sin(f64[3]))
    with pytest.raises(cg.CatgradTypeError) as e:
        f >> wrong
    assert str(e.value) == "cannot compose parametric lenses: (f64[], f64[]) vs (f64[3], f64[3])"
    # only the backward types differ
    odd = ParaLens([], cg.id(s), cg.wiring(s @ f64[2], [1]))  # ((f64[], f64[2]) -> (f64[], f64[2]))
    with pytest.raises(cg.CatgradTypeError, match=r"^cannot compose parametric lenses: \(f64\[\], f64\[\]\) vs \(f64\[\], f64\[2\]\)$"):
        f >> odd


def test_para_sequential_message():
    f = cg.Para([cg.Param("w", f64[2])], cg.ops.mul(f64[2], f64[2]))
    with pytest.raises(cg.CatgradTypeError) as e:
        f >> cg.ops.sin(f64[3])
    assert str(e.value) == ("cannot compose: the first map's output type is f64[2] "
                            "but the second one's input type is f64[3]")


def test_retype_keeps_names_and_initialisers():
    init = cg.init.constant(0.25)
    f = cg.Para([cg.Param("w", cg.f32[2], init), cg.Param("k", cg.i64[2])],
                cg.trace(cg.f32[2], cg.i64[2], cg.f32[2])(lambda w, k, x: w * x))
    g = f.retype({cg.f32: f64})
    assert [(p.name, p.type, p.init) for p in g.params] == [("w", f64[2], init), ("k", cg.i64[2], None)]
    assert g.body.dom == f64[2] @ cg.i64[2] @ f64[2]
    np.testing.assert_array_equal(g.init()[0], np.full(2, 0.25))


# -- stateful.py ----------------------------------------------------------------------------

from catgrad.calculus.stateful import Stateful, keyed, takes_key


def running_mean_model(init=None):
    """train (w, m, x) -> (w x, 0.9 m + 0.1 x); eval (w, m, x) -> (w x + m, m)."""
    t = f64[3]
    train = cg.trace(t, t, t)(lambda w, m, x: (w * x, m * 0.9 + x * 0.1))
    ev = cg.trace(t, t, t)(lambda w, m, x: (w * x + m, m * 1.0))
    return Stateful([cg.Param("w", t, init)], [cg.Param("m", t, cg.init.constant(0.5))], train, ev), train, ev


def test_stateful_parts_values_and_messages():
    s, train, ev = running_mean_model()
    t = f64[3]
    assert s.P == cg.Ob(t) and s.S == cg.Ob(t) and s.dom == cg.Ob(t) and s.cod == cg.Ob(t)
    assert s.names == ("w",) and s.state_names == ("m",)
    assert s.body is train and s.diagram is train and s.train is train and s.eval is ev
    assert repr(s) == "Stateful([w: f64[3]], state=[m: f64[3]], f64[3] -> f64[3])"
    w, m, x = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5]), np.array([2.0, -1.0, 4.0])
    for mode, want in (("train", w * x), ("eval", w * x + m)):
        f = s.forward(mode)
        assert isinstance(f, cg.Para) and f.names == ("w",) and f.dom == t @ t and f.cod == cg.Ob(t)
        (got,) = cg.evaluate(f.body, w, m, x)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(cg.evaluate(s.forward().body, w, m, x)[0], w * x)
    for bad_train, bad_eval, what, got in (
            (cg.trace(cg.f32[3], t, t)(lambda w, m, x: (x * 1.0, m)), ev, "train",
             "(f32[3], f64[3], f64[3]) -> (f64[3], f64[3])"),
            (train, cg.trace(t, t)(lambda w, m: (w, m)), "eval", "(f64[3], f64[3]) -> (f64[3], f64[3])")):
        with pytest.raises(cg.CatgradTypeError) as e:
            Stateful([cg.Param("w", t)], [cg.Param("m", t)], bad_train, bad_eval)
        assert str(e.value) == (f"the {what} form of a stateful model must be (f64[3], f64[3], f64[3]) -> "
                                f"(f64[3], f64[3]), got {got}")
    with pytest.raises(cg.CatgradTypeError) as e:
        Stateful([cg.Param("w", t)], [cg.Param("w", t)], train, ev)
    assert str(e.value) == "parameter and state names must be unique, got ['w', 'w']"


def test_stateful_initial_values_come_from_the_seed():
    s, _, _ = running_mean_model()
    want = s.params[0].initial(np.random.default_rng(0))
    np.testing.assert_array_equal(s.init()[0], want)
    np.testing.assert_array_equal(s.init(0)[0], want)
    np.testing.assert_array_equal(s.init(np.random.default_rng(0))[0], want)
    assert not np.array_equal(s.init(1)[0], want)
    st = s.init_state()
    np.testing.assert_array_equal(st[0], np.full(3, 0.5))
    # a key state is drawn from the stream SeedSequence([seed, 1]), apart from the parameters'
    k = keyed(cg.Para([], cg.trace(cg.i64[()], f64[3])(lambda key, x: x * 2.0)))
    for seed in (0, 7):
        (key,) = k.init_state(seed)
        ref = k.state[0].initial(np.random.default_rng(np.random.SeedSequence([seed, 1])))
        np.testing.assert_array_equal(key, ref)
    np.testing.assert_array_equal(k.init_state()[0], k.init_state(0)[0])
    assert not np.array_equal(k.init_state(0)[0], k.init_state(1)[0])


def test_stateful_retype():
    s, _, _ = running_mean_model(cg.init.constant(2.0))
    r = s.retype({f64: cg.f32})
    assert [(p.name, p.type, type(p.init)) for p in r.params] == [("w", cg.f32[3], cg.init.constant)]
    assert [(p.name, p.type) for p in r.state] == [("m", cg.f32[3])] and r.state[0].init is s.state[0].init
    assert r.train.dom == cg.Ob(cg.f32[3], cg.f32[3], cg.f32[3]) and r.eval.cod == cg.Ob(cg.f32[3], cg.f32[3])


def key_model(params=()):
    return cg.Para(list(params), cg.trace(*[p.type for p in params], cg.i64[()], f64[3])(
        lambda *ins: ins[-1] * cg.ops.uniform(ins[-2], type=f64[3])))


def test_keyed_threads_a_split_key_in_training_and_the_same_key_in_evaluation():
    para = key_model()
    assert takes_key(para) and not takes_key(cg.Para([], cg.id(f64[3])))
    assert not takes_key(cg.Para([], cg.id(cg.i64[()])))  # a key and nothing after it
    k = keyed(para)
    assert isinstance(k, Stateful) and k.names == () and k.state_names == ("key",)
    assert k.dom == cg.Ob(f64[3]) and k.cod == cg.Ob(f64[3]) and k.S == cg.Ob(cg.i64[()])
    key, x = np.int64(12345), np.array([1.0, 2.0, 3.0])
    nxt, use = cg.evaluate(cg.ops.random_split(cg.i64[()]), key)
    (u_use,) = cg.evaluate(cg.ops.uniform(cg.i64[()], type=f64[3]), use)
    (u_key,) = cg.evaluate(cg.ops.uniform(cg.i64[()], type=f64[3]), key)
    y, new = cg.evaluate(k.train, key, x)
    np.testing.assert_array_equal(y, x * u_use)
    assert new == nxt
    y, same = cg.evaluate(k.eval, key, x)
    np.testing.assert_array_equal(y, x * u_key)
    assert same == key


def test_keyed_names_its_key_apart_and_checks_the_model():
    p = key_model([cg.Param("key", f64[3]), cg.Param("key_2", f64[3])])
    assert keyed(p).state_names == ("key_3",) and keyed(p).names == ("key", "key_2")
    assert keyed(key_model([cg.Param("key", f64[3])])).state_names == ("key_2",)  # the first free suffix
    assert keyed(key_model(), name="rng").state_names == ("rng",)
    with pytest.raises(cg.CatgradTypeError) as e:
        keyed(cg.Para([], cg.id(f64[3])))
    assert str(e.value) == "keyed needs a model whose inputs are (i64[] key, x), got f64[3]"
    # a Stateful model whose input starts with a key keeps its own state and adds the key
    s, _, _ = running_mean_model()
    with pytest.raises(cg.CatgradTypeError, match=r"^keyed needs a model whose inputs are \(i64\[\] key, x\), got f64\[3\]$"):
        keyed(s)


def test_para_init_defaults_to_seed_zero():
    f = cg.Para([cg.Param("w", f64[3]), cg.Param("b", f64[2])], cg.trace(f64[3], f64[2], f64[3])(lambda w, b, x: w * x))
    rng = np.random.default_rng(0)
    want = [f.params[0].initial(rng), f.params[1].initial(rng)]
    for got in (f.init(), f.init(0), f.init(np.random.default_rng(0))):
        assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert f.init(1)[0].tolist() != want[0].tolist()


# -- poly.py --------------------------------------------------------------------------------

from catgrad.calculus.poly import FinLens, FinPoly, Monomial


def test_finpoly_repr_counts_directions_per_position():
    assert repr(FinPoly({"a": ["x", "y"], "b": [], "c": ["z"]})) == "FinPoly(y^2 + y^0 + y^1)"
    assert repr(FinPoly({})) == "FinPoly(0)"
    assert repr(FinPoly.y()) == "FinPoly(y^1)"
    assert repr(FinPoly({1: ["d", "d", "e"]})) == "FinPoly(y^2)"  # repeated directions count once


def test_finlens_equality_looks_at_every_part():
    p = FinPoly({"a": ["x", "y"], "b": ["z"]})
    q = FinPoly({0: ["u"], 1: []})
    lenses = p.lenses(q)
    assert len(lenses) == 6  # a: (to 0, u->x|y) or (to 1); b: (to 0, u->z) or (to 1): 3 * 2
    for i, f in enumerate(lenses):
        for j, g in enumerate(lenses):
            assert (f == g) == (i == j)
    f = lenses[0]
    # the same lens built with its dictionaries in another order is equal, and hashes equal
    same = FinLens(p, q, dict(reversed(list(f.on_pos.items()))), dict(reversed(list(f.on_dir.items()))))
    assert same == f and hash(same) == hash(f)
    assert f != "lens" and f != FinLens.id(p)
    # same maps, another codomain
    q2 = FinPoly({0: ["u"], 1: [], 2: []})
    other = FinLens(p, q2, f.on_pos, f.on_dir)
    assert other != f and repr(other) != repr(f)
    assert repr(f) == f"FinLens(FinPoly(y^2 + y^1) -> FinPoly(y^1 + y^0), {f.on_pos})"


def test_finlens_messages():
    p = FinPoly({"a": ["x"], "b": ["z"]})
    q = FinPoly({0: ["u"]})
    with pytest.raises(cg.CatgradError) as e:
        FinLens(p, q, {"a": 0}, {("a", "u"): "x"})
    assert str(e.value) == "a lens must send every position forward; missing ['b']"
    with pytest.raises(cg.CatgradError) as e:
        FinLens(p, q, {"a": 0, "b": 5}, {})
    assert str(e.value) == "position 'b' is sent to 5, which is not a position of the codomain"
    with pytest.raises(cg.CatgradError) as e:
        FinLens(p, q, {"a": 0, "b": 0}, {("a", "u"): "x"})
    assert str(e.value) == "no direction sent back at position 'b' for 'u'"
    with pytest.raises(cg.CatgradError) as e:
        FinLens(p, q, {"a": 0, "b": 0}, {("a", "u"): "x", ("b", "u"): "x"})
    assert str(e.value) == "at position 'b', 'u' is sent back to 'x', not a direction there"


def test_monomial_directions_default_to_positions():
    m = Monomial(f64[2])
    assert m.A == cg.Ob(f64[2]) and m.B == cg.Ob(f64[2]) and repr(m) == "Monomial(f64[2] y^f64[2])"
    n = Monomial([f64[2], cg.f32[1]], f64[3])
    assert n.A == f64[2] @ cg.f32[1] and n.B == cg.Ob(f64[3])
    assert m != n and m == Monomial(f64[2], f64[2]) and hash(m) == hash(Monomial(f64[2], f64[2]))


def test_as_para_needs_both_state_and_forward_to_call_a_model_stateful():
    class OnlyState:
        state = ()

    class OnlyForward:
        def forward(self, mode):
            return None

    for x, name in ((OnlyState(), "OnlyState"), (OnlyForward(), "OnlyForward")):
        with pytest.raises(cg.CatgradTypeError) as e:
            as_para(x)
        assert str(e.value) == f"expected a Para or a Diagram, got {name}"


def test_a_param_without_an_initialiser_draws_normal_with_scale_0_01():
    p = cg.Param("w", f64[200])
    got = p.initial(np.random.default_rng(4))
    want = np.random.default_rng(4).standard_normal(200) * 0.01
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got.dtype == np.float64 and got.shape == (200,)
    assert cg.Param("v", cg.f32[3]).initial(np.random.default_rng(0)).dtype == np.float32


def logistic_error(with_inverse=True):
    """e(x, y) = sum log(1 + exp(x)) - x y: de/dx = sigmoid(x) - y."""
    def loss(t):
        return cg.build(cg.Ob(t, t), lambda b, ins: [(cg.ops.log(1.0 + cg.ops.exp(ins[1])) - ins[1] * ins[0]).sum()])

    return Error("logistic", loss, inverse=(lambda x, z: cg.ops.sigmoid(x) - z) if with_inverse else None)


def test_an_error_without_inverse_requests_a_minus_its_gradient():
    L = learner(dot_para(), 0.5, error=logistic_error(with_inverse=False))
    w, a, y = np.array([0.3, -0.2]), np.array([1.0, 2.0]), np.array(1.0)
    s = 1 / (1 + np.exp(-(w @ a)))
    np.testing.assert_allclose(L.requested([w], a, y)[0], a - (s - 1.0) * w, rtol=1e-13)


def test_optimized_uses_the_error_it_is_given():
    """Plain gradient descent through optimized with the logistic error: the update uses
    sigmoid(w.a) - y (not the quadratic's w.a - y), the request the error's inverse."""
    f = dot_para()
    L = optimized(f, sgd_lens(f.P, 0.5), error=logistic_error())
    w, a, y = np.array([0.3, -0.2]), np.array([1.0, 2.0]), np.array(1.0)
    s = 1 / (1 + np.exp(-(w @ a)))
    np.testing.assert_allclose(L.updated([w], a, y)[0], w - 0.5 * (s - 1.0) * a, rtol=1e-13)
    np.testing.assert_allclose(L.requested([w], a, y)[0], 1 / (1 + np.exp(-a)) - (s - 1.0) * w, rtol=1e-13)


def test_optimized_refuses_a_lens_whose_parameter_part_alone_is_wrong():
    f = dot_para()  # P = f64[2]
    A = f64[3] @ f64[2]
    get = cg.wiring(A, [1])  # (f64[3], f64[2]) -> f64[2]: B is right
    put = cg.wiring(A @ f64[2], [0, 1])  # -> (f64[3], f64[2]) = A
    with pytest.raises(cg.CatgradTypeError, match=r"^the optimizer lens must be \(f64\[2\] x S, f64\[2\] x S\)"):
        optimized(f, cg.Lens(get, put))


def test_finlens_with_positions_of_mixed_kinds_compares_and_hashes():
    """Positions and directions may be any hashable values, of kinds that do not order
    against each other (0 and "a"): equality still works (the key is sorted by repr)."""
    p = FinPoly({0: ["x"], "a": [1]})
    f = FinLens.id(p)
    g = FinLens(p, p, {"a": "a", 0: 0}, {("a", 1): 1, (0, "x"): "x"})
    assert f == g and hash(f) == hash(g)


def test_finlens_lists_at_most_three_missing_positions():
    p = FinPoly({k: [] for k in range(5)})
    with pytest.raises(cg.CatgradError) as e:
        FinLens(p, FinPoly.y(), {}, {})
    assert str(e.value) == "a lens must send every position forward; missing [0, 1, 2]"


def test_para_messages_in_full():
    t = f64[2]
    with pytest.raises(cg.CatgradTypeError) as e:
        cg.Para([cg.Param("w", t), cg.Param("w", t)], cg.trace(t, t, t)(lambda a, b, x: a * x))
    assert str(e.value) == "parameter names must be unique, got ['w', 'w']"

    class FakeStateful:
        state = (cg.Param("bn.mean", t),)

        def forward(self, mode):
            return None

    with pytest.raises(cg.CatgradTypeError) as e:
        as_para(FakeStateful())
    assert str(e.value) == (
        "this model has state (bn.mean) or differs between training and evaluation, which only cg.compile and "
        "cg.fit (catgrad train, predict, evaluate) thread through; here give one form, model.forward('train') or "
        "model.forward('eval'), whose inputs are the state then the model's inputs")


def test_stateful_repr_lists_every_parameter_and_state():
    t = f64[2]
    form = cg.trace(t, t, t, t, t)(lambda w, v, m, n, x: (x * w, m, n))
    s = Stateful([cg.Param("w", t), cg.Param("v", t)], [cg.Param("m", t), cg.Param("n", t)], form, form)
    assert repr(s) == "Stateful([w: f64[2], v: f64[2]], state=[m: f64[2], n: f64[2]], f64[2] -> f64[2])"
