"""How a Program reads as text, and the names every backend gives its values: the
exact lines of ``Program.format`` and ``Instr`` (what ``--emit`` and error reports
show), and the rules of :func:`value_names` (inputs, constants by value, the rest
after their op; unique, valid Python identifiers that never shadow the generated
code's own names)."""

from __future__ import annotations

import keyword

import numpy as np
import pytest

import catgrad as cg
from catgrad.compiler import Instr, Program, lower, optimize, value_names
from catgrad.compiler.pipeline import _RESERVED, _const_name, _ident


@cg.trace(cg.f64[2, 3], cg.f64[2, 3])
def F(x, w):
    return cg.ops.tanh(x * 0.5 + w.const(-1.0)).sum(axes=(1,)), x * w.const(2.0)


def test_a_lowered_program_prints_one_line_per_box():
    assert str(lower(F)) == "\n".join([
        "program(%0: f64[2, 3], %1: f64[2, 3]):",
        "  %2 = constant(, type=f64[2, 3], value=0.5)",
        "  %3 = mul(%0, %2)",
        "  %4 = constant(, type=f64[2, 3], value=-1.0)",
        "  %5 = add(%3, %4)",
        "  %6 = tanh(%5)",
        "  %7 = sum(%6, axes=(1,), keepdims=False)",
        "  %8 = constant(, type=f64[2, 3], value=2.0)",
        "  %9 = mul(%0, %8)",
        "  return %7, %9",
    ])
    p = lower(F)
    assert [repr(i) for i in p.instrs[:2]] == ["%2 = constant(, type=f64[2, 3], value=0.5)", "%3 = mul(%0, %2)"]
    assert len(p) == 8 and p.op_counts() == {"constant": 3, "mul": 2, "add": 1, "tanh": 1, "sum": 1}
    assert p.dom == F.dom and p.cod == F.cod


def test_folded_constants_are_shown_by_value_or_size_with_generated_names():
    p = optimize(lower(F))
    assert p.format(["x", "lambda"]).splitlines() == [
        "program(x: f64[2, 3], lambda_: f64[2, 3]):",
        "  const_2 = const [[0.5, 0.5, 0.5],",
        " [0.5, 0.5, 0.5]] : f64[2, 3]",
        "  const_4 = const [[-1., -1., -1.],",
        " [-1., -1., -1.]] : f64[2, 3]",
        "  const_8 = const [[2., 2., 2.],",
        " [2., 2., 2.]] : f64[2, 3]",
        "  mul_3 = mul(x, const_2)",
        "  add_5 = add(mul_3, const_4)",
        "  tanh_6 = tanh(add_5)",
        "  sum_7 = sum(tanh_6, axes=(1,), keepdims=False)",
        "  mul_9 = mul(x, const_8)",
        "  return sum_7, mul_9",
    ]
    # a scalar by its value, at most 8 numbers in full, more by their count
    t0, t8, t9 = cg.f64[()], cg.f64[8], cg.f64[9]
    q = Program([t0, t8, t9, t0], [3], [3, 0, 1, 2], [],
                {0: np.float64(1e-8), 1: np.arange(8.0), 2: np.zeros(9)})
    assert str(q).splitlines() == [
        "program(%3: f64[]):",
        "  %0 = const 1e-08 : f64[]",
        "  %1 = const [0., 1., 2., 3., 4., 5., 6., 7.] : f64[8]",
        "  %2 = const <9 numbers> : f64[9]",
        "  return %3, %0, %1, %2",
    ]
    assert q.format(["s"]).splitlines()[0] == "program(s: f64[]):"
    assert q.format(["s"]).splitlines()[1:] == [
        "  c_1eneg08 = const 1e-08 : f64[]",
        "  const_1 = const [0., 1., 2., 3., 4., 5., 6., 7.] : f64[8]",
        "  const_2 = const <9 numbers> : f64[9]",
        "  return s, c_1eneg08, const_1, const_2",
    ]


def test_multi_output_instructions_print_every_output():
    t = cg.f64[2]

    class Two:  # a stand-in op with two outputs and an attribute
        name, attrs = "split2", (("k", 2),)

    p = Program([t, t, t], [0], [2, 1], [Instr(Two(), (0,), (1, 2))])
    assert repr(p.instrs[0]) == "%1, %2 = split2(%0, k=2)"
    assert str(p).splitlines()[1:] == ["  %1, %2 = split2(%0, k=2)", "  return %2, %1"]
    assert p.format(["a"]).splitlines()[1:] == ["  split2_1, split2_2 = split2(a, k=2)", "  return split2_2, split2_1"]


def test_program_copy_is_independent():
    p = optimize(lower(F))
    q = p.copy()
    assert str(q) == str(p) and q is not p
    q.instrs.pop()
    q.outputs.append(0)
    q.types.append(cg.f64[1])
    q.consts[99] = 1.0
    q.inputs.append(5)
    assert len(p.instrs) == 5 and p.outputs == [7, 9] and 99 not in p.consts
    assert len(p.types) == 10 and p.inputs == [0, 1]


@pytest.mark.parametrize("value,name", [
    (0.5, "c_0p5"), (-1.0, "c_neg1"), (1e-8, "c_1eneg08"), (1e20, "c_1e20"), (3, "c_3"), (np.int64(-4), "c_neg4"),
    (True, "c_1"), (np.float32(0.5), "c_0p5"), (np.nan, "c_nan"), (-np.inf, "c_neginf"),
    (np.array([[7.0]]), "c_7"), ([1.0, 2.0], None), (np.zeros(0), None),
    (np.int64(12345678901234567), "c_12345678901234567"),  # an integer is not rounded through a float
])
def test_one_number_constants_are_named_by_value(value, name):
    assert _const_name(value) == name


@pytest.mark.parametrize("given,ident", [
    ("x", "x"), ("1x", "_1x"), ("a-b.c", "a_b_c"), ("", "_"), (3, "_3"), ("class", "class_"), ("lambda", "lambda_"),
    ("w_1", "w_1"), ("é", "é"),
] + [(r, r + "_") for r in sorted(_RESERVED)])
def test_input_names_become_identifiers_that_shadow_nothing(given, ident):
    assert _ident(given) == ident


def test_value_names_are_unique_identifiers_and_follow_their_rules():
    t = cg.f64[2]
    one = cg.f64[()]
    # inputs named a0, a1 by default; constants by value, with _2, _3 for repeats; the
    # rest after their op and value number
    p = optimize(lower(cg.trace(t, t)(lambda x, y: (x * 0.5 + y * 0.5 + (x + y) * 3.0, -x))))
    names = value_names(p)
    assert [names[v] for v in p.inputs] == ["a0", "a1"]
    assert sorted(names[v] for v in p.consts) == sorted(_const_name(c) or f"const_{v}" for v, c in p.consts.items())
    for ins in p.instrs:
        for o in ins.outs:
            assert names[o] == f"{ins.op.name}_{o}"
    assert len(set(names.values())) == len(names) == len(set(p.inputs) | set(p.consts)
                                                         | {o for i in p.instrs for o in i.outs})
    # repeated names get a counter; a named input that looks like a constant's name wins
    q = Program([one, one, one, one], [0, 1], [2, 3], [],
                {2: np.float64(0.5), 3: np.float64(0.5)})
    assert value_names(q, ["c_0p5", "c_0p5"]) == {0: "c_0p5", 1: "c_0p5_2", 2: "c_0p5_3", 3: "c_0p5_4"}
    assert value_names(q) == {0: "a0", 1: "a1", 2: "c_0p5", 3: "c_0p5_2"}
    # a value that is both an input and a constant is named as the input
    r = Program([one, one], [0], [0, 1], [], {0: np.float64(1.0), 1: np.float64(2.0)})
    assert value_names(r, ["x"]) == {0: "x", 1: "c_2"}
    for n in value_names(p, ["if", "np", "9", "run"]).values():
        assert n.isidentifier() and not keyword.iskeyword(n) and n not in _RESERVED
