"""The optimizer recipe algebra and its lens (catgrad/optim/base.py): ``>>`` and ``@``
flattening, ``assign`` (first matching pattern, whole-model stages spanning a rule's
wires), state keys and initial values, the bf16 compute type, the single-wire lens in
docs/mathematics.md's order, and the exact messages for misuse."""

import numpy as np
import pytest

import catgrad as cg
from catgrad.core.diagram import build
from catgrad.optim.base import Chain, Group, Tensor, compute_type, ema, norm, power, scalar_slot, zeros_like_slot

O = cg.optim


def run_put(opt, params: dict, grads: dict, state=None):
    """One put on numpy values: ``(new params, new state)`` by name / key."""
    L = opt.lens([(n, cg.f64[np.shape(v)]) for n, v in params.items()])
    ps = [np.asarray(v, dtype=np.float64) for v in params.values()]
    s = L.init(ps) if state is None else state
    outs = cg.evaluate(L.lens.put, *ps, *s.values(), *(np.asarray(grads[n], dtype=np.float64) for n in params))
    n = len(params)
    return dict(zip(params, outs[:n])), dict(zip(L.keys, outs[n:]))


def test_operators_refuse_what_is_not_an_optimizer():
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for >>: 'Adam' and 'int'"):
        O.adam() >> 3
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for @: 'Adam' and 'int'"):
        O.adam() @ 3


def test_chains_and_tensors_flatten():
    a, b, c = O.sgd(0.1), O.adam(), O.lion()
    assert (a >> (b >> c)).parts == (a, b, c) == ((a >> b) >> c).parts
    assert isinstance(a >> b, Chain) and isinstance(a @ b, Tensor)
    assert (a @ (b @ c)).parts == (a, b, c) == ((a @ b) @ c).parts
    assert ((a >> b) @ c).parts[0].parts == (a, b)  # a chain inside a tensor stays a chain
    assert Chain(a, b) == Chain(a, b) and Chain(a, b) != Chain(b, a) and Chain(a, b) != Tensor(a, b)
    assert Chain(a, b) != (a, b)
    assert len({Chain(a, b), Chain(a, b)}) == 2  # identity hash: a chain is not a value key


def test_tensor_needs_one_optimizer_per_wire():
    with pytest.raises(cg.CatgradError) as e:
        (O.adam() @ O.sgd() @ O.lion()).lens([("W", cg.f64[2]), ("b", cg.f64[2])])
    assert str(e.value) == ("a tensor of 3 optimizers needs exactly 3 parameter wires, but the model has 2; "
                            "use cg.optim.assign to pick optimizers by name")
    L = (O.adam() @ O.sgd()).lens([("W", cg.f64[2]), ("b", cg.f64[3])])
    assert L.keys == ["W/adam.lr", "W/adam.b1", "W/adam.b2", "W/adam.eps", "W/adam.m", "W/adam.v", "W/adam.t",
                      "b/sgd.lr"]


def test_assign_first_matching_pattern_wins_and_default():
    opt = O.assign({"l*.W": O.sgd(0.5), "l1.*": O.scale(3.0) >> O.sgd(1.0)}, default=O.sgd(0.25))
    params = {"l1.W": [1.0, 2.0], "l1.b": [1.0], "l2.W": [1.0], "out": [2.0]}
    grads = {"l1.W": [1.0, -1.0], "l1.b": [2.0], "l2.W": [4.0], "out": [8.0]}
    new, state = run_put(opt, params, grads)
    np.testing.assert_array_equal(new["l1.W"], [1.5, 1.5])  # the first rule, though both match
    np.testing.assert_array_equal(new["l1.b"], [7.0])  # the second rule: 1 + 3 * 2
    np.testing.assert_array_equal(new["l2.W"], [3.0])
    np.testing.assert_array_equal(new["out"], [4.0])  # default: 2 + 0.25 * 8
    assert list(state) == ["l1.W/sgd.lr", "l1.b/scale.factor", "l1.b/sgd.lr", "l2.W/sgd.lr", "out/sgd.lr"]
    assert [float(v) for v in state.values()] == [0.5, 3.0, 1.0, 0.5, 0.25]


def test_assign_is_case_sensitive_and_whole_model_stages_span_their_rule():
    opt = O.assign({"a*": O.clip_norm(1.0) >> O.sgd(1.0)}, default=O.sgd(1.0))
    params = {"a1": [0.0, 0.0], "B": [0.0], "a2": [0.0]}
    grads = {"a1": [3.0, 0.0], "B": [100.0], "a2": [4.0]}
    new, state = run_put(opt, params, grads)
    # the global norm of the a-wires is 5 (B is not clipped and not counted)
    np.testing.assert_allclose(new["a1"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(new["a2"], [0.8], rtol=1e-6)
    np.testing.assert_array_equal(new["B"], [100.0])
    assert list(state) == ["a1/clip_norm.max_norm", "a1/clip_norm.eps", "a1/sgd.lr", "B/sgd.lr", "a2/sgd.lr"]
    with pytest.raises(cg.CatgradError) as e:
        O.assign({"A*": O.sgd()}).lens([("A1", cg.f64[1]), ("a1", cg.f64[1])])
    assert str(e.value) == "no optimizer is assigned to parameter 'a1': no pattern of ['A*'] matches and there is no default"


def test_assign_messages_and_spelling():
    with pytest.raises(cg.CatgradError) as e:
        O.assign({3: O.adam()})
    assert str(e.value) == "assign maps name patterns (str) to optimizers, got 3: adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08)"
    with pytest.raises(cg.CatgradError) as e:
        O.assign({"W": O.sgd(), "b": 0.1})
    assert str(e.value) == "assign maps name patterns (str) to optimizers, got 'b': 0.1"
    assert repr(O.assign({"*.W": O.sgd(0.5)})) == "assign({'*.W': sgd(lr=0.5)}, default=None)"
    assert repr(O.assign({"*.W": O.sgd(0.5)}, default=O.identity())) == "assign({'*.W': sgd(lr=0.5)}, default=identity())"
    rules = {"W": O.sgd()}
    a = O.assign(rules)
    rules["b"] = O.sgd()  # assign keeps its own copy
    assert list(a.rules) == ["W"] and a.default is None


def test_state_keys_number_repeated_stages_and_skip_stateless_ones():
    L = (O.sgd(0.1) >> O.identity() >> O.scale(2.0) >> O.identity() >> O.sgd(0.2) >> O.sgd(0.3)).lens([("w", cg.f64[2])])
    assert L.keys == ["w/sgd.lr", "w/scale.factor", "w/sgd_2.lr", "w/sgd_3.lr"]
    new, state = run_put(O.sgd(0.5) >> O.identity() >> O.sgd(4.0), {"w": [1.0]}, {"w": [1.0]})
    np.testing.assert_array_equal(new["w"], [3.0])  # 1 + 4 * (0.5 * 1)
    assert {k: float(v) for k, v in state.items()} == {"w/sgd.lr": 0.5, "w/sgd_2.lr": 4.0}


def test_initial_state_values_and_types():
    L = O.adam(0.5, b1=0.25).lens([("w", cg.f32[2, 3])])
    s = L.init([np.ones((2, 3), dtype=np.float32)])
    assert list(s) == L.keys
    for k, want in [("w/adam.lr", 0.5), ("w/adam.b1", 0.25), ("w/adam.b2", 0.999), ("w/adam.eps", 1e-8), ("w/adam.t", 0.0)]:
        assert s[k].shape == () and s[k].dtype == np.float32 and s[k] == np.float32(want), k
    for k in ("w/adam.m", "w/adam.v"):
        assert s[k].shape == (2, 3) and s[k].dtype == np.float32 and not s[k].any()
    assert [str(t) for t in L.state_types] == ["f32[]"] * 4 + ["f32[2, 3]"] * 2 + ["f32[]"]
    assert L.P == cg.Ob(cg.f32[2, 3]) and L.S == cg.Ob(*L.state_types)
    bits = O.sgd(1.0).lens([("t", cg.bit[2])]).init([np.zeros(2, dtype=bool)])
    assert bits["t/sgd.lr"].dtype == np.bool_ and bits["t/sgd.lr"].shape == () and bits["t/sgd.lr"]
    zero = O.sgd(0.0).lens([("t", cg.bit[2])]).init([np.zeros(2, dtype=bool)])
    assert zero["t/sgd.lr"].dtype == np.bool_ and not zero["t/sgd.lr"]


def test_slot_helpers():
    t = cg.f32[2, 2]
    z = zeros_like_slot("m", t)
    assert (z.field, z.type) == ("m", t)
    v = z.init(np.ones((2, 2)))
    assert v.dtype == np.float32 and v.shape == (2, 2) and not v.any()
    s = scalar_slot("t", t, 3.0)
    assert (s.field, s.type) == ("t", cg.f32[()])
    assert s.init(np.ones((2, 2))) == np.float32(3.0) and s.init(np.ones((2, 2))).dtype == np.float32
    assert scalar_slot("u", t).init(None) == 0.0


def test_wire_helpers():
    @cg.trace(cg.f64[3], cg.f64[3], cg.f64[()])
    def f(a, v, d):
        return ema(a, v, d)

    a, v = np.array([1.0, 2.0, 3.0]), np.array([5.0, -1.0, 0.5])
    np.testing.assert_allclose(cg.evaluate(f, a, v, np.float64(0.25))[0], 0.25 * a + 0.75 * v, rtol=1e-15)

    @cg.trace(cg.f64[()], cg.f64[()])
    def pw(b, e):
        return power(b, e)

    np.testing.assert_allclose(cg.evaluate(pw, np.float64(0.9), np.float64(7.0))[0], 0.9**7, rtol=1e-14)

    @cg.trace(cg.f64[2, 2])
    def nm(w):
        return norm(w)

    np.testing.assert_allclose(cg.evaluate(nm, np.array([[1.0, 2.0], [2.0, 4.0]]))[0], 5.0, rtol=1e-15)


def test_bf16_parameters_compute_in_f32():
    assert compute_type(cg.bf16[2]) == cg.f32[2]
    assert compute_type(cg.f32[2]) == cg.f32[2] and compute_type(cg.f64[2]) == cg.f64[2]
    L = O.sgd(0.5).lens([("w", cg.bf16[2])])
    assert [str(t) for t in L.state_types] == ["f32[]"]
    assert L.lens.put.cod == cg.Ob(cg.bf16[2], cg.f32[()])
    # a get that leaves the point alone is the identity diagram: no round trip through f32
    assert len(L.lens.get.boxes) == 0
    moved = O.nesterov(0.1).lens([("w", cg.bf16[2])])
    assert moved.lens.get.cod == cg.Ob(cg.bf16[2]) and len(moved.lens.get.boxes) > 0


def test_single_lens_is_state_first():
    t = cg.f64[2]
    lens = O.momentum(0.5, 0.5).for_type(t)
    assert lens.get.dom == cg.Ob(cg.f64[()], cg.f64[()], cg.f64[()], t, t)  # lr, gamma, dampening, s; p
    s = [np.float64(0.5), np.float64(0.5), np.float64(0.0), np.array([2.0, 0.0])]
    p = np.array([1.0, 1.0])
    np.testing.assert_array_equal(cg.evaluate(lens.get, *s, p)[0], p)
    outs = cg.evaluate(lens.put, *s, p, np.array([1.0, 3.0]))
    # s' = 0.5 s + p' = [2, 3]; p_new = p + 0.5 s' = [2, 2.5]; state first, parameter last
    np.testing.assert_array_equal(outs[3], [2.0, 3.0])
    np.testing.assert_array_equal(outs[4], [2.0, 2.5])
    assert [float(x) for x in outs[:3]] == [0.5, 0.5, 0.0]


def test_optimizer_lens_spelling_and_distinct_names():
    L = O.adam().lens([("W", cg.f64[2]), ("b", cg.f64[1])])
    assert repr(L) == "OptimizerLens(adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08) on 2 parameter(s), 14 state entries)"
    with pytest.raises(cg.CatgradError) as e:
        O.sgd().lens([("W", cg.f64[2]), ("b", cg.f64[1]), ("W", cg.f64[2]), ("b", cg.f64[1]), ("c", cg.f64[1])])
    assert str(e.value) == "parameter names must be distinct (they key the optimizer state), got ['W', 'b'] twice"
    p = cg.Param("W", cg.f64[2])
    assert O.sgd().lens([p]).keys == ["W/sgd.lr"]


def test_type_messages():
    with pytest.raises(cg.CatgradTypeError) as e:
        O.adam().lens([("t", cg.bit[3])])
    assert str(e.value) == "the adam optimizer needs float parameters, got bit[3]"
    with pytest.raises(cg.CatgradTypeError) as e:
        O.clip_norm().lens([("W", cg.f64[2]), ("b", cg.f32[2])])
    assert str(e.value) == "the whole-model stage clip_norm needs parameters of one dtype, got W: f64[2], b: f32[2]"
    with pytest.raises(cg.CatgradTypeError) as e:
        O.clip_norm().lens([("W", cg.bit[2]), ("b", cg.bit[2])])
    assert str(e.value) == "the clip_norm optimizer needs float parameters, got bit[2]"
    O.identity().lens([("t", cg.bit[3])])  # identity takes any type
    with pytest.raises(cg.CatgradError) as e:
        O.sgd(lr=True)
    assert str(e.value) == "sgd: hyperparameter lr must be a number or a schedule, got True"
    with pytest.raises(cg.CatgradError) as e:
        O.adam(b1="0.9")
    assert str(e.value) == "adam: hyperparameter b1 must be a number or a schedule, got '0.9'"


def test_put_checks_the_direction_and_state_types():
    L = O.sgd(0.1).lens([("w", cg.f64[2])])
    with pytest.raises(cg.CatgradTypeError) as e:
        build(cg.Ob(cg.f64[2], cg.f64[()], cg.f32[2]), lambda b, ins: L.emit_put(ins[:1], ins[1:2], ins[2:])[0])
    assert str(e.value) == "the update direction f32[2] does not match the parameter f64[2]"

    class Bad(O.Stage):
        kind = "bad"

        def slots(self, t):
            return [scalar_slot("n", t)]

        def update(self, s, p, u):
            return {"n": u}, u  # a tensor where the state holds a scalar

    B = Bad().lens([("w", cg.f64[2])])
    with pytest.raises(cg.CatgradTypeError) as e:
        B.lens.put
    assert str(e.value) == "optimizer state w/bad.n: the update has type f64[2], expected f64[]"

    class Bare(O.Stage):
        kind = "bare"

    with pytest.raises(NotImplementedError) as e:
        Bare().lens([("w", cg.f64[2])]).lens.put
    assert str(e.value) == "the bare stage implements neither update nor update_parts"


def test_directions_before_the_parameters_move():
    L = (O.scale(2.0) >> O.sgd(0.5)).lens([("w", cg.f64[2])])
    d = build(L.P @ L.S @ L.P, lambda b, ins: L.emit_directions(ins[:1], ins[1:3], ins[3:])[0])
    got = cg.evaluate(d, np.array([10.0, 10.0]), np.float64(2.0), np.float64(0.5), np.array([1.0, -3.0]))
    np.testing.assert_array_equal(got[0], [1.0, -3.0])  # the direction, not p + direction


def test_group_and_stage_defaults():
    g = Group(O.clip_norm(1.0), [2, 0])
    assert g.members == (2, 0) and g.kind == "clip_norm" and g.stage.kind == "clip_norm"
    assert not O.clip_norm().takes_gradient and O.sam(O.sgd()).resolve([(0, "w")])[0][0].stage.takes_gradient
    st = O.sgd(0.1)
    assert st.resolve([(0, "a"), (1, "b")]) == [[st], [st]]
    assert O.Stage.get(st, {}, "p") == "p"


def test_whole_model_stages_waiting_for_each_other():
    class Crossed(O.Optimizer):
        def resolve(self, params):
            g1, g2 = Group(O.clip_norm(1.0), [0, 1]), Group(O.dog(), [0, 1])
            return [[g1, g2], [g2, g1]]

    L = Crossed().lens([("a", cg.f64[2]), ("b", cg.f64[2])])
    with pytest.raises(cg.CatgradError) as e:
        L.lens.put
    assert str(e.value) == ("the whole-model stages ['clip_norm', 'dog'] wait for each other: "
                            "each must come in the same order on every parameter it spans")


@pytest.mark.parametrize("make", [lambda: O.adamw(0.1, weight_decay=0.5), lambda: O.lion(0.1, weight_decay=0.5),
                                  lambda: O.ademamix(0.1, weight_decay=0.5), lambda: O.adam(0.1),
                                  lambda: O.adafactor(0.1)])  # adafactor's step itself reads p
def test_update_is_the_whole_direction_decoupled_decay_included(make):
    """``Stage.update`` of a stage written with ``update_parts`` returns step + decoupled decay,
    the same direction its put applies."""
    (st,) = make().resolve([(0, "w")])[0]
    t = cg.f64[3]
    slots = st.all_slots(t)
    types = cg.Ob(t, *[sl.type for sl in slots], t)

    def body(b, ins):
        s = {sl.field: w for sl, w in zip(slots, ins[1:-1])}
        new, d = st.update(s, ins[0], ins[-1])
        new2, d2 = st.apply_put(s, ins[0], ins[-1])
        return [d, d2]

    p, u = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.25, -1.0])
    d, d2 = cg.evaluate(build(types, body), p, *[sl.init(p) for sl in slots], u)
    np.testing.assert_array_equal(d, d2)
    assert np.all(d != 0)


def test_a_whole_model_stage_missing_on_a_member_is_refused():
    class Lopsided(O.Optimizer):
        def resolve(self, params):
            g = Group(O.clip_norm(1.0), [0, 1])
            return [[O.sgd(0.1), g], [O.sgd(0.1)]]  # wire 1 ends before reaching g

    L = Lopsided().lens([("a", cg.f64[2]), ("b", cg.f64[2])])
    with pytest.raises(cg.CatgradError) as e:
        L.lens.put
    assert str(e.value) == ("the whole-model stages ['clip_norm'] wait for each other: "
                            "each must come in the same order on every parameter it spans")


def test_a_schedule_after_a_number_keeps_every_slot():
    """Any hyperparameter may be a schedule; its state sits at the hyperparameter's place."""
    L = O.momentum(0.1, gamma=cg.schedule.cosine(0.5, 10)).lens([("w", cg.f64[2])])
    assert L.keys == ["w/momentum.lr", "w/momentum.gamma.t", "w/momentum.gamma.peak", "w/momentum.gamma.decay_steps",
                      "w/momentum.gamma.final", "w/momentum.gamma.warmup_steps", "w/momentum.dampening", "w/momentum.s"]
    s = L.init([np.zeros(2)])
    assert [float(s[k]) for k in L.keys[:7]] == [0.1, 0.0, 0.5, 10.0, 0.0, 0.0, 0.0]
    p = np.zeros(2)
    outs = cg.evaluate(L.lens.put, p, *s.values(), np.ones(2))
    np.testing.assert_allclose(outs[0], [0.1, 0.1], rtol=1e-15)  # s' = gamma_0 * 0 + u
    assert float(outs[2]) == 1.0  # the schedule stepped
