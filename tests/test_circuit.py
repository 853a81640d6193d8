"""The circuit backend: gate rules, netlist passes and the bit-parallel evaluator,
checked exhaustively against catgrad's reference semantics (``cg.evaluate`` on numpy)
and against a gate-by-gate scalar evaluation of the netlist."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import catgrad as cg
from catgrad.circuit import (CircuitError, Evaluator, compile_circuit, pack, propagate_constants, simplify,
                             strash, sweep, unpack)
from catgrad.compiler import backend_factory
from catgrad.circuit.gates import lane
from catgrad.core.diagram import as_diagram
from circuit_models import all_inputs, example_models, random_diagram, random_netlist, scalar_eval

bit = cg.bit
EXAMPLES = example_models()


@pytest.mark.parametrize("name,f,names", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_examples_equal_the_reference_on_every_input(name, f, names):
    c = compile_circuit(f, input_names=names)
    nl = c.netlist
    assert [p.name for p in nl.in_ports] == (names or [f"in{k}" for k in range(len(nl.in_ports))])
    assert nl.n_inputs <= 16
    X = all_inputs(nl.n_inputs)
    got = c.evaluator(X)
    dom = as_diagram(f).dom
    widths = [int(np.prod(t.shape[1:] if lane(t) else t.shape, dtype=int)) for t in dom]
    starts = np.cumsum([0] + widths)
    fixed = [k for k, t in enumerate(dom) if not lane(t)]  # parameters and fixed-shape inputs
    fcols = np.concatenate([np.arange(starts[k], starts[k + 1]) for k in fixed]) if fixed else np.zeros(0, int)
    for fv in all_inputs(len(fcols)):
        rows = np.all(X[:, fcols] == fv, axis=1)
        args = []
        for k, t in enumerate(dom):
            block = X[rows][:, starts[k]:starts[k + 1]]
            args.append(block.reshape((len(block), *t.shape[1:])) if lane(t) else block[0].reshape(t.shape))
        ref = cg.evaluate(f, *args)
        want = np.concatenate([r.reshape(int(rows.sum()), -1) if r.ndim and lane(t) else
                               np.broadcast_to(r.reshape(1, -1), (int(rows.sum()), r.size))
                               for r, t in zip(ref, as_diagram(f).cod)], axis=1)
        np.testing.assert_array_equal(got[rows], want)


@pytest.mark.parametrize("seed", range(12))
def test_random_diagrams_equal_the_reference_on_every_input(seed):
    f = random_diagram(seed)
    for passes in (True, False):
        c = compile_circuit(f, input_names=["x", "w"], passes=passes)
        assert c.netlist.n_inputs == 11
        for wv in all_inputs(6)[:: 1 if passes else 9]:
            w = wv.reshape(2, 3)
            X = all_inputs(5)
            ref = cg.evaluate(f, X, w)
            got = c(X, w)
            for r, g in zip(ref, got):
                np.testing.assert_array_equal(g, r)


def test_a_sixteen_input_circuit_equals_the_reference_on_every_input():
    f = random_diagram(99, n_x=10, n_ops=30)
    c = compile_circuit(f, input_names=["x", "w"])
    assert c.netlist.n_inputs == 16
    X = all_inputs(10)
    for wv in all_inputs(6):  # w fixed per call of the reference, x on 1024 lanes: 2^16 inputs in all
        w = wv.reshape(2, 3)
        for r, g in zip(cg.evaluate(f, X, w), c(X, w)):
            np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("seed", range(4))
def test_reverse_derivatives_lower_to_the_same_polynomial(seed):
    """R over Z2 stays a polynomial through lowering and every pass: the circuit of R[f]
    equals cg.evaluate of R[f] on every input."""
    f = random_diagram(seed, n_x=3, n_ops=10, k=2, m=2, use_w=False)
    rf = cg.R(f)
    c = compile_circuit(rf)
    assert c.netlist.n_inputs <= 16
    X = all_inputs(c.netlist.n_inputs)
    # inputs of R[f]: x (N,3), w (2,2) fixed, then cotangents (N,), (N,), (N,2)
    rng = np.random.default_rng(seed)
    for _ in range(8):
        w = rng.random((2, 2)) < 0.5
        x, d1, d2, d3 = X[:, :3], X[:, 3], X[:, 4], X[:, 5:7]
        ref = cg.evaluate(rf, x, w, d1, d2, d3)
        got = c(x, w, d1, d2, d3)
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(g, r)


def test_R_of_x_times_x_is_zero_and_R_of_x_is_identity():
    square = cg.build([bit["N"]], lambda b, ins: [ins[0] * ins[0]])
    ident = cg.build([bit["N"]], lambda b, ins: [ins[0]])
    c = compile_circuit(cg.R(square))
    assert c.netlist.outputs == [0] and c.netlist.gates == []  # the constant 0, whatever x and d
    # the forward circuit is x and x = x as a function: the passes may use that
    assert compile_circuit(square).netlist.outputs == [2]
    c = compile_circuit(cg.R(ident))
    assert c.netlist.outputs == [3] and c.netlist.gates == []  # d itself


def test_einsum_is_and_then_xor_and_sum_is_a_parity_tree():
    f = cg.build([bit["N", 4], bit[4, 3]], lambda b, ins: [cg.ops.einsum(ins[0], ins[1], spec="bi,ij->bj")])
    nl = compile_circuit(f, passes=False).netlist
    assert nl.counts() == {"and": 12, "xor": 9, "or": 0, "not": 0}
    g = cg.build([bit["B", 8]], lambda b, ins: [ins[0].sum(axes=1)])
    nl = compile_circuit(g).netlist
    assert nl.counts()["xor"] == 7 and nl.depth() == 3


def test_parameters_become_constants_and_fold_away():
    f = cg.build([bit[4], bit["N", 4]], lambda b, ins: [(ins[0].broadcast("N", 4) & ins[1]).sum(axes=1)])
    c = compile_circuit(f, params=[np.array([1, 0, 1, 0], bool)])
    assert c.netlist.counts() == {"and": 0, "or": 0, "xor": 1, "not": 0}
    X = all_inputs(4)
    np.testing.assert_array_equal(c(X)[0], X[:, 0] ^ X[:, 2])
    with pytest.raises(CircuitError, match="parameter 0"):
        compile_circuit(f, params=[np.zeros(5, bool)])


@pytest.mark.parametrize("seed", range(20))
def test_each_pass_keeps_the_function(seed):
    nl = random_netlist(seed, n_in=6, n_gates=60)
    X = all_inputs(6)
    want = np.array([scalar_eval(nl, x) for x in X])
    np.testing.assert_array_equal(Evaluator(nl)(X), want)
    for p in (propagate_constants, strash, sweep, simplify):
        q = p(nl)
        np.testing.assert_array_equal(Evaluator(q)(X), want, err_msg=p.__name__)
        assert len(q.gates) <= len(nl.gates)
    s = simplify(nl)
    assert all(a > 1 and (b > 1 or b == -1) for _, a, b in s.gates)  # no constant operands left
    keys = [(k, min(a, b), max(a, b)) for k, a, b in s.gates]
    assert len(set(keys)) == len(keys)  # no structural duplicates


def test_passes_do_what_they_say():
    from catgrad.circuit import Netlist, Port

    nl = Netlist([Port("x", 2)], [Port("y", 3)])
    a = nl.add("and", 2, 3)
    b = nl.add("and", 3, 2)  # the same gate, operands swapped
    c = nl.add("xor", a, 1)  # not a
    nl.add("or", 2, 3)  # dead
    d = nl.add("and", c, 0)  # 0
    nl.outputs = [b, c, d]
    assert len(strash(nl).gates) == 4
    assert propagate_constants(nl).outputs[2] == 0
    assert len(sweep(nl).gates) == 4
    assert simplify(nl).counts() == {"and": 1, "or": 0, "xor": 0, "not": 1}


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 300), st.integers(1, 200), st.sampled_from([1, 2, 7]))
def test_packing_round_trips_and_chunks_do_not_matter(n, seed, chunk):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 5)) < 0.5
    np.testing.assert_array_equal(unpack(pack(X), n), X)
    nl = random_netlist(seed, n_in=5, n_gates=30)
    want = np.array([scalar_eval(nl, x) for x in X]).reshape(n, len(nl.outputs))
    np.testing.assert_array_equal(Evaluator(nl, chunk_words=chunk)(X), want)


def test_registered_as_a_backend_and_rejects_non_bit_wires_naming_the_op():
    f = cg.build([bit["N"], bit["N"]], lambda b, ins: [ins[0] ^ ins[1]])
    run = backend_factory("circuit")(f)
    np.testing.assert_array_equal(run(np.array([0, 1, 1], bool), np.array([1, 1, 0], bool))[0], [1, 0, 1])
    g = cg.build([cg.f32["B", 4]], lambda b, ins: [cg.ops.exp(ins[0])])
    with pytest.raises(CircuitError, match="op 'exp'.*f32"):
        compile_circuit(g)
    h = cg.build([bit["B", 4]], lambda b, ins: [ins[0].sum(axes=0)])
    with pytest.raises(cg.CatgradError, match="samples"):
        compile_circuit(h)
    k = cg.build([bit["B", 4]], lambda b, ins: [cg.ops.cast(ins[0], dtype=cg.f32)])
    with pytest.raises(CircuitError, match="op 'cast'"):
        compile_circuit(k)
