"""Checker behaviour that mutation testing of ``catgrad/frontend/checker.py`` found unchecked
(docs/testing.md): how a tensor product splits its inputs when one side is an ``einsum``, the
widest tensor product allowed, the training form of a model asked for after its evaluation
form, the message for an attribute value that the type rule cannot use, and attributes or
ranks that ``matmul`` cannot take."""

import numpy as np
import pytest

import catgrad as cg
from catgrad.frontend.diagnostics import FrontendError
from catgrad.init import bits, normal, zeros

from test_checker_messages import _headers, _run

# -- einsum inside a tensor product: its arity is the number of operands left of '->' -------

TW2 = "def tw2(h, k) = h >> k\n"

CASES = [
    # a comma on the output side is no operand: the spec's own error, not "takes 2 inputs"
    ('def f : f64[3] -> f64[3] = einsum(spec="i->i,i") @ sin',
     ["m.cat:1:28: error: einsum spec 'i->i,i': indices must be letters"]),
    # without a spec, einsum takes one input: the missing spec is reported, not the arity
    ('def f : f64[3] -> f64[3] = einsum @ sin',
     ["m.cat:1:28: error: einsum: needs the attribute spec=...; it takes: spec"]),
    # an attribute value the type rule cannot use: the op, the values, and the rule's complaint
    # (transpose's optional perm, given here, is not reported as missing)
    ('def f(x : f32[3, 2]) -> f32[2, 3] = transpose(x, perm=1.5)',
     ["m.cat:1:37: error: transpose: bad attribute values {'perm': 1.5} ('float' object is not iterable)"]),
    ('def f(x : f32[3]) -> f32[3] = sum(x, axes=1.5)',
     ["m.cat:1:31: error: sum: axes must be an integer or a sequence of integers, got 1.5"]),
    # an initialiser argument is a number or a negated number, nothing else the resolver lets by
    ('def f(x : f32[3]) -> f32[3] { param w : f32[3] ~ normal(~1); x * w }',
     ['m.cat:1:57: error: initialiser arguments must be numbers']),
    ('def f(x : f32[3]) -> f32[3] { param w : f32[3] ~ normal(mean=-x); x * w }',
     ['m.cat:1:62: error: initialiser arguments must be numbers']),
    # wire counts up to 4096 are accepted (a point-free definition without a signature is still checked)
    ('def c = copy[4096]', []),
    ('def c = copy[4097]', ["m.cat:1:9: error: the arguments of 'copy[...]' must be wire counts (small integers)"]),
    # a parameter's or a state's type is explained by a note at its declaration
    ('def f(x : f32[3]) -> f32[3] { param w : f32[4] ~ zeros; x + w }',
     ['m.cat:1:57: error: add: cannot combine f32[3] and f32[4] (shapes do not broadcast)',
      'm.cat:1:7: note: this input has type f32[3]', 'm.cat:1:31: note: this input has type f32[4]']),
    ('def f(x : f32[3]) -> f32[3] { state s : f32[4] ~ zeros; s * x }',
     ['m.cat:1:57: error: mul: cannot combine f32[4] and f32[3] (shapes do not broadcast)',
      'm.cat:1:31: note: this input has type f32[4]', 'm.cat:1:7: note: this input has type f32[3]']),
    # names listed in a message are all there, comma-separated
    (TW2 + 'def f(x : f32[3]) -> f32[3] = tw2(sin)(x)',
     ["m.cat:2:31: error: 'tw2' takes 2 morphism argument(s) (h, k), got 1"]),
    (TW2 + 'def f : f32[3] -> f32[3] = tw2',
     ["m.cat:2:28: error: 'tw2' takes morphism argument(s) (h, k); write tw2(f) first"]),
    ('def g[n, m](x : f32[n]) -> f32[n] = x\ndef f(x : f32[3]) -> f32[3] = g[3](x)',
     ["m.cat:2:31: error: 'g' takes 2 dimension argument(s) [n, m], got 1", "m.cat:1:5: note: 'g' is defined here"]),
    # '~' is named as '~' (not '-') when its operand is not one value
    ('def f(x : f32[3]) -> f32[3] = ~sin', ["m.cat:1:32: error: '~' needs values, but 'sin' is a morphism"]),
    ('def f(x : bit[3]) -> bit[3] = ~(x, x)', ["m.cat:1:32: error: '~' needs a single wire, but '(x, x)' is a tuple of 2"]),
    # an error inside a generic definition, found with the sizes of one use, also points at that use
    ('def at[n, i](x : bit[n]) -> bit[] = sum(slice(x, axis=0, start=i, stop=i + 1))\n'
     'def bad(x : bit[4]) -> bit[] = at[4, 7](x)',
     ['m.cat:1:41: error: slice: need 0 <= start <= stop <= 4 on axis 0 of bit[4], got 7:8',
      'm.cat:1:14: note: this input has type bit[4]', "m.cat:2:32: note: in this use of 'at'"]),
    # ... and only that error: an unrelated earlier one keeps its own notes
    ('def e(x : f32[3]) -> f32[3] = x + sum(x, axes=[0, 0])\n'
     'def at[n, i](x : bit[n]) -> bit[] = sum(slice(x, axis=0, start=i, stop=i + 1))\n'
     'def bad(x : bit[4]) -> bit[] = at[4, 7](x)',
     ['m.cat:1:35: error: sum: repeated axis in (0, 0)', 'm.cat:1:7: note: this input has type f32[3]',
      'm.cat:2:41: error: slice: need 0 <= start <= stop <= 4 on axis 0 of bit[4], got 7:8',
      'm.cat:2:14: note: this input has type bit[4]', "m.cat:3:32: note: in this use of 'at'"]),
    # a size that differs from a declared size (not a dimension name)
    ('def g(x : f32[3]) -> f32[3] = x\ndef f(y : f32[4]) -> f32[3] = g(y)',
     ["m.cat:2:31: error: type mismatch: input 'x' of 'g' expects f32[3] but the argument has type f32[4]",
      'm.cat:2:7: note: the argument has type f32[4] because of this', "m.cat:1:7: note: 'g' declares input 'x' : f32[3] here"]),
    # messages (and where they point) of rules no other case reaches
    ('def f(x : f32[3]) -> f32[3] = sin(2.0)', ["m.cat:1:31: error: 'sin' needs at least one typed input"]),
    ('def f(x : bit[3]) -> bit[3] = x ^ ~1', ["m.cat:1:35: error: 'not' needs at least one typed input"]),
    ('def f(x : f32[3]) -> f32[3] = x[3]', ["m.cat:1:31: error: 'x' does not take [dimension] arguments"]),
    ('def f : f32[3] -> f32[3] = copy[1, 2]', ['m.cat:1:28: error: copy[n] takes one wire count']),
    ('def f : f32[3] -> f32[3] = discard[1, 2]', ['m.cat:1:28: error: discard[n] takes one wire count']),
    ('def f(x : bit[3]) -> bit[3] = x ** 2',
     ['m.cat:1:31: error: pow needs a float input (f32 or f64), got bit[3]', 'm.cat:1:7: note: this input has type bit[3]']),
    ('def f(x : f32[3]) -> f32[] = x >> sum(axes=[5])',
     ['m.cat:1:30: error: sum: axis 5 is out of range for f32[3]', 'm.cat:1:7: note: this input has type f32[3]']),
    ('def tw(h) = h >> h\ndef f(x : f32[3]) -> f32[3] = tw(x)(x)',
     ["m.cat:2:34: error: expected a morphism (a definition, an op or a composite) but 'x' is a value"]),
    # mixed dtypes are reported as such, whatever the shapes; the cast hint only for mixed dtypes
    ('def f(x : f32[3], y : f64[2, 3]) -> f32[2, 3] = x + y',
     ['m.cat:1:49: error: add needs inputs of one type, got f32[3] and f64[2, 3]; convert one of them with cast, '
      'e.g. cast(<operand>, dtype=f32)', 'm.cat:1:7: note: this input has type f32[3]', 'm.cat:1:19: note: this input has type f64[2, 3]']),
    ('def f(x : f32[3], y : f64[4]) -> f32[3] = x + y',
     ['m.cat:1:43: error: add needs inputs of one type, got f32[3] and f64[4]; convert one of them with cast, '
      'e.g. cast(<operand>, dtype=f32)', 'm.cat:1:7: note: this input has type f32[3]', 'm.cat:1:19: note: this input has type f64[4]']),
    ('def f(c : f32[3], x : f32[3], y : f32[4]) -> f32[3] = where(c, x, y)',
     ['m.cat:1:55: error: where needs inputs of one type, got f32[3] and f32[4]', 'm.cat:1:7: note: this input has type f32[3]',
      'm.cat:1:19: note: this input has type f32[3]', 'm.cat:1:31: note: this input has type f32[4]']),
    # a name in an attribute or a [size] that is no dimension of the definition stays a name
    ('def f(x : f32[3]) -> f32[] = sum(x, axes=[k])',
     ["m.cat:1:30: error: sum: an axis must be an integer, got 'k'"]),
    ('def g[n](x : f32[n]) -> f32[n] = x\ndef f(x : f32[3]) -> f32[3] = g[K](x)',
     ["m.cat:2:31: error: type mismatch: input 'x' of 'g' expects f32[K] but the argument has type f32[3]",
      'm.cat:2:7: note: the argument has type f32[3] because of this', "m.cat:1:10: note: 'g' declares input 'x' : f32[n] here"]),
    ('def f(x : f32[3], y : f64[3]) -> f32[3] = concat(x, y)',
     ['m.cat:1:43: error: concat: inputs must share a dtype and rank, got f32[3] and f64[3]',
      'm.cat:1:7: note: this input has type f32[3]', 'm.cat:1:19: note: this input has type f64[3]']),
    # a statement that failed poisons the definition's result: no second error about what it returns
    ('def f(x : f32[3]) -> f32[4] {\n  let y = sum(x, axes=1.5)\n  x\n}',
     ['m.cat:2:11: error: sum: axes must be an integer or a sequence of integers, got 1.5']),
]


@pytest.mark.parametrize("source,expected", CASES, ids=[c[0][-50:] for c in CASES])
def test_each_error_says_what_is_wrong_and_where(source, expected):
    assert _headers(source) == expected


MATMUL_CASES = [
    # matmul (the operator @) takes no attributes: one given is refused, not ignored
    ('def f(x : f32[2, 3], y : f32[3, 4]) -> f32[2, 4] = matmul(x, y, foo=1)',
     ["m.cat:1:52: error: matmul: unknown attribute 'foo'; it takes: none"]),
    ('def f : (f32[2, 3], f32[3, 4]) -> f32[2, 4] = matmul(foo=1)',
     ["m.cat:1:47: error: matmul: unknown attribute 'foo'; it takes: none"]),
    # a number among matmul's inputs is the error (it said "matmul takes 2 inputs, got 2")
    ('def f(x : f32[3, 3]) -> f32[3, 3] = matmul(x, 2.0)',
     ["m.cat:1:37: error: a bare number cannot be passed to 'matmul'; its inputs are typed wires"]),
    ('def f(x : f32[3, 3]) -> f32[3, 3] = x @ 2.0',
     ["m.cat:1:37: error: a bare number cannot be passed to 'matmul'; its inputs are typed wires"]),
    ('def f(x : f32[3, 3]) -> f32[3, 3] = matmul(x, x, x)', ['m.cat:1:37: error: matmul takes 2 inputs, got 3']),
    # more axes than einsum has index letters: a clear error, not a crash
    ('def f(x : f32[' + ", ".join(["1"] * 52) + '], y : f32[1, 2]) -> f32[1] = x @ y',
     ["m.cat:1:199: error: matmul of a rank-52 and a rank-2 operand needs 53 einsum indices; "
      "there are 52 (the letters a-z, A-Z)", "m.cat:1:7: note: this input has type f32[" + ", ".join(["1"] * 52) + "]",
      "m.cat:1:172: note: this input has type f32[1, 2]"]),
]


@pytest.mark.parametrize("source,expected", MATMUL_CASES, ids=[c[0][-50:] for c in MATMUL_CASES])
def test_matmul_refuses_attributes_and_more_axes_than_index_letters(source, expected):
    assert _headers(source) == expected


def test_a_number_fed_into_a_morphism_is_the_error_not_the_morphism():
    """``2.0 >> sin`` was reported as "'sin' is a value"."""
    assert _headers("def f(x : f32[3]) -> f32[3] = 2.0 >> sin") == [
        "m.cat:1:31: error: a bare number cannot be fed into 'sin'; its inputs are typed wires"]


HIGHER_ORDER_CASES = [
    # a higher-order definition in a tensor product without its morphism arguments: the error
    # is where it is used (it was at the definition, which is fine), and a definition whose
    # body does so is in error even when nothing uses it
    (TW2 + 'def f : (f32[3], f32[3]) -> (f32[3], f32[3]) = sin @ tw2',
     ["m.cat:2:48: error: 'tw2' needs its morphism argument(s) (h, k)", "m.cat:1:5: note: 'tw2' is defined here"]),
    (TW2 + 'def g = tw2 @ sin',
     ["m.cat:2:9: error: 'tw2' needs its morphism argument(s) (h, k)", "m.cat:1:5: note: 'tw2' is defined here"]),
    (TW2 + 'def g = (tw2 @ sin) >> add\ndef f : (f32[3], f32[3]) -> f32[3] = g',
     ["m.cat:2:10: error: 'tw2' needs its morphism argument(s) (h, k)", "m.cat:1:5: note: 'tw2' is defined here"]),
]


@pytest.mark.parametrize("source,expected", HIGHER_ORDER_CASES, ids=[c[0][-50:] for c in HIGHER_ORDER_CASES])
def test_a_higher_order_definition_without_arguments_is_an_error_where_it_is_used(source, expected):
    assert _headers(source) == expected


def test_a_definition_applied_to_different_composites_is_elaborated_for_each():
    src = ("def tw(h) = h >> h\n"
           "def a : f64[3] -> f64[3] = tw(sin >> cos)\n"
           "def b : f64[3] -> f64[3] = tw(cos >> sin)\n")
    x = np.array([0.5, -1.0, 2.0])
    (a,) = _run(src, "a", x)
    (b,) = _run(src, "b", x)
    np.testing.assert_array_equal(a, np.cos(np.sin(np.cos(np.sin(x)))))
    np.testing.assert_array_equal(b, np.sin(np.cos(np.sin(np.cos(x)))))


def test_an_einsum_spec_with_spaces_takes_an_input_per_operand():
    """``einsum(spec="i ,i -> i") @ sin`` takes 2 + 1 inputs: spaces do not hide an operand."""
    src = ('def f : (f64[3], f64[3], f64[5]) -> (f64[3], f64[5]) = einsum(spec="i ,i -> i") @ sin\n'
           'def g : (f64[3], f64[3], f64[3], f64[5]) -> (f64[3], f64[5]) = einsum(spec="i, i ,i->i") @ sin\n')
    a, b, c, z = np.array([0.5, 1.0, 2.0]), np.array([3.0, -1.0, 0.25]), np.array([1.5, 2.5, -0.5]), np.arange(5.0)
    u, v = _run(src, "f", a, b, z)
    np.testing.assert_array_equal(u, a * b)
    np.testing.assert_array_equal(v, np.sin(z))
    u, v = _run(src, "g", a, b, c, z)
    np.testing.assert_array_equal(u, a * b * c)
    np.testing.assert_array_equal(v, np.sin(z))


def test_a_rank_52_matmul_with_a_vector_uses_every_index_letter():
    shape = (1,) * 51 + (2,)
    src = f"def f(x : f64[{', '.join(map(str, shape))}], y : f64[2]) -> f64[{', '.join(['1'] * 51)}] = x @ y"
    x, y = np.array([3.0, -2.0]).reshape(shape), np.array([0.5, 4.0])
    (got,) = _run(src, "f", x, y)
    np.testing.assert_array_equal(got, np.full((1,) * 51, 3.0 * 0.5 - 2.0 * 4.0))


# -- the widest tensor product ------------------------------------------------------------

# every use of g has a declared input type, so each q and p has one without a signature:
# q_k has 5**k wires, p_k has 2**k * 3125, and p5 exactly the 100,000 allowed
TOWER = ("def g : f64[1] -> f64[1] = id\n" + "def q1 = g @ g @ g @ g @ g\n"
         + "".join(f"def q{k} = q{k - 1} @ q{k - 1} @ q{k - 1} @ q{k - 1} @ q{k - 1}\n" for k in range(2, 6))
         + "def p1 = q5 @ q5\n" + "".join(f"def p{k} = p{k - 1} @ p{k - 1}\n" for k in range(2, 6)))


def test_a_tensor_product_of_exactly_the_most_wires_has_its_input_type():
    m = cg.loads(TOWER)
    wide = cg.Ob(*[cg.f64[1]] * 100_000)
    p5 = m["p5"]
    assert p5.dom == wide and p5.cod == wide
    assert m.signature("p5") == f"{wide} -> {wide}"
    with pytest.raises(FrontendError) as e:
        m["p5 @ g"]
    assert str(e.value) == "error: this program has more than 100000 parallel wires"


def test_a_definition_with_too_many_parallel_wires_is_an_error_where_it_is_defined():
    """Not "p6 is polymorphic": its input type is known, and too wide."""
    assert _headers(TOWER + "def p6 = p5 @ g\n") == ["m.cat:12:10: error: this program has more than 100000 parallel wires"]


# -- the training form after an evaluation form -------------------------------------------

def test_asking_for_an_evaluation_form_leaves_later_training_forms_alone():
    """``module[name]`` of a modal definition elaborates its evaluation form too; what is
    elaborated next (here an expression using it) is again checked in training mode."""
    src = ("def a(x : f64[3]) -> f64[3] = train_eval(sin(x), cos(x))\n"
           "def c(x : f64[3]) -> f64[3] { state s : f64[3] ~ zeros; update s = s + x; x * s }\n")
    m = cg.loads(src)
    x, s = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -3.0])
    a = m["a"]
    np.testing.assert_array_equal(cg.evaluate(a.train, x)[0], np.sin(x))
    np.testing.assert_array_equal(cg.evaluate(a.eval, x)[0], np.cos(x))
    ae = m["a >> exp"]
    np.testing.assert_array_equal(cg.evaluate(ae.train, x)[0], np.exp(np.sin(x)))
    np.testing.assert_array_equal(cg.evaluate(ae.eval, x)[0], np.exp(np.cos(x)))
    for name in ("c", "c >> neg"):  # the training form updates the state, the evaluation form keeps it
        sign = -1.0 if "neg" in name else 1.0
        c = m[name]
        for form, new_s in ((c.train, s + x), (c.eval, s)):
            y, s2 = cg.evaluate(form, s, x)
            np.testing.assert_array_equal(y, sign * x * s)
            np.testing.assert_array_equal(s2, new_s)


# -- parameters, wire counts and the dtype variable in attributes -----------------------------

def test_a_parameter_without_initialiser_has_none_unless_it_is_bits():
    m = cg.loads("def f(x : f32[3]) -> f32[3] { param w : f32[3]; x * w }\n"
                 "def g(x : bit[3]) -> bit[3] { param w : bit[3]; x ^ w }\n")
    assert m["f"].params == (cg.Param("w", cg.f32[3], None),)
    assert m["g"].params == (cg.Param("w", cg.bit[3], bits()),)


def test_the_most_copies_allowed_are_made():
    x = np.array([1.5, -2.0])
    (got,) = _run("def f(x : f64[2]) -> f64[2] = x >> copy[4096] >> (discard[4095] @ id)", "f", x)
    np.testing.assert_array_equal(got, x)


def test_the_dtype_variable_as_an_attribute_is_the_dtype_it_is_bound_to():
    src = ("def h(x : float[3], y : f32[3]) -> float[3] = x * cast(y, dtype=float)\n"
           "def k(a : f64[3], b : f32[3]) -> f64[3] = h(a, b)\n")
    a, b = np.array([0.1, 0.2, 0.3]), np.array([1.1, 2.2, 3.3], np.float32)
    (got,) = _run(src, "k", a, b)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, a * b.astype(np.float64))


def test_each_box_is_scoped_by_the_use_or_the_primitive_call_it_comes_from():
    """A primitive call in a body is scoped ``op#k`` (its k-th call of that op there); the boxes
    of a use of a definition are scoped by the use's name (``g``, then ``g_2``)."""
    f = cg.loads("def g(x : f64[3]) -> f64[3] = tanh(x) * x\n"
                 "def f(x : f64[3]) -> f64[3] = tanh(g(tanh(x))) + g(x)\n")["f"]
    assert [(b.op.name, b.scope) for b in f.boxes] == [
        ("tanh", ("tanh#1",)), ("tanh", ("g", "tanh#1")), ("mul", ("g", "mul#1")), ("tanh", ("tanh#2",)),
        ("tanh", ("g_2", "tanh#1")), ("mul", ("g_2", "mul#1")), ("add", ("add#1",))]


def test_inputs_are_split_among_the_declared_inputs_in_order():
    """A product-typed input takes as many wires as its type has; the next input starts after them."""
    src = "def f(p : (f64[3], f64[2]), y : f64[3], z : f64[2]) -> (f64[3], f64[2]) { let (a, b) = p; (a * y, b - z) }"
    a, b, y, z = np.array([0.5, 1.0, 2.0]), np.array([1.0, 2.0]), np.array([2.0, 3.0, 4.0]), np.array([5.0, 7.0])
    u, v = _run(src, "f", a, b, y, z)
    np.testing.assert_array_equal(u, a * y)
    np.testing.assert_array_equal(v, b - z)


def test_a_higher_order_definition_applied_to_a_use_of_itself_is_not_recursion():
    x = np.array([0.5, -1.0, 2.0])
    (got,) = _run("def tw(h) = h >> h\ndef f : f64[3] -> f64[3] = tw(tw(sin))", "f", x)
    np.testing.assert_array_equal(got, np.sin(np.sin(np.sin(np.sin(x)))))



# -- values: what the checker builds is what the program says ----------------------------------

VALUES = """
def mm : (f64[2, 3], f64[3, 4], f64[5]) -> (f64[2, 4], f64[5]) = matmul @ sin
def mm2(x : f64[2, 3], y : f64[3, 4]) -> f64[2, 4] = x @ y
def tw(h) = h >> h
def sq : f64[3] -> f64[3] = tw(pow(p=2.0))
def cu : f64[3] -> f64[3] = tw(pow(p=3.0))
def q(h) = tw(tw(h))
def four : f64[3] -> f64[3] = q(sin)
def tws : (f64[3], f64[3]) -> (f64[3], f64[3]) = tw(sin) @ cos
def neg1(x : f64[3]) -> f64[3] = -x
def pipe(x : f64[3]) -> f64[3] = x >> sin >> exp
def lets { let h = sin >> cos; h }
def lets2 : (f64[3], f64[3]) -> (f64[3], f64[3]) = lets @ sin
def gates(a : bit[4], b : bit[4]) -> (bit[4], bit[4], bit[4], bit[4]) = (a | b, a ^ b, a & b, ~a)
def colsum(x : f64[2, 3]) -> f64[3] = sum(x, axes=[-2])
def flat(x : f64[B, 2, 3]) -> f64[B, 6] = reshape(x, shape=[B, 6])
def shift[n](x : f64[n]) -> f64[n] = x + constant(type=f64[n], value=2.5)
def shift3(x : f64[3]) -> f64[3] = shift(x)
def scale[n](x : f64[n]) -> f64[n] { param w : f64[n] ~ normal(0.5, mean=1.0); x * w }
def outer[k](x : f64[k]) -> f64[k] = scale[k](x)
def outer3(x : f64[3]) -> f64[3] = outer(x)
def drop[n] = slice(axis=0, start=0, stop=n - 1)
def drop4(x : f64[4]) -> f64[3] = drop[4](x)
def bc(x : f64[3], y : f64[4, 3]) -> f64[4, 3] = x + y
def count(x : f64[3]) -> f64[3] { state s : f64[3] ~ zeros; update s = s + x; x * s }
def ones(k : i64[]) -> f32[K] = constant(type=f32[K], value=1.0)
"""


def test_each_construct_computes_what_it_says():
    m = cg.loads(VALUES)
    rng = np.random.default_rng(0)
    x, y, z = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=5)
    u, v = cg.evaluate(m["mm"], x, y, z)
    np.testing.assert_allclose(u, x @ y, rtol=1e-15)
    np.testing.assert_array_equal(v, np.sin(z))
    np.testing.assert_allclose(cg.evaluate(m["mm2"], x, y)[0], x @ y, rtol=1e-15)
    a, b = np.array([0.5, -1.5, 2.0]), np.array([1.0, 0.25, -3.0])
    np.testing.assert_array_equal(cg.evaluate(m["sq"], a)[0], (a ** 2) ** 2)
    np.testing.assert_array_equal(cg.evaluate(m["cu"], a)[0], (a ** 3) ** 3)
    np.testing.assert_array_equal(cg.evaluate(m["four"], a)[0], np.sin(np.sin(np.sin(np.sin(a)))))
    p, r = cg.evaluate(m["tws"], a, b)
    np.testing.assert_array_equal(p, np.sin(np.sin(a)))
    np.testing.assert_array_equal(r, np.cos(b))
    np.testing.assert_array_equal(cg.evaluate(m["neg1"], a)[0], -a)
    np.testing.assert_array_equal(cg.evaluate(m["pipe"], a)[0], np.exp(np.sin(a)))
    p, r = cg.evaluate(m["lets2"], a, b)
    np.testing.assert_array_equal(p, np.cos(np.sin(a)))
    np.testing.assert_array_equal(r, np.sin(b))
    g, h = np.array([0, 0, 1, 1], bool), np.array([0, 1, 0, 1], bool)
    got = cg.evaluate(m["gates"], g, h)
    for out, want in zip(got, (g | h, g ^ h, g & h, ~g)):
        np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(cg.evaluate(m["colsum"], x)[0], x.sum(axis=0))
    w = rng.normal(size=(4, 2, 3))
    np.testing.assert_array_equal(cg.evaluate(m["flat"], w)[0], w.reshape(4, 6))
    np.testing.assert_array_equal(cg.evaluate(m["shift3"], a)[0], a + 2.5)
    o = m["outer3"]
    assert o.params == (cg.Param("outer.scale.w", cg.f64[3], normal(0.5, mean=1.0)),)
    np.testing.assert_array_equal(cg.evaluate(o.body, b, a)[0], a * b)
    np.testing.assert_array_equal(cg.evaluate(m["drop4"], np.arange(4.0))[0], np.arange(3.0))
    np.testing.assert_array_equal(cg.evaluate(m["bc"], a, y.T)[0], a + y.T)
    assert m["count"].state == (cg.Param("s", cg.f64[3], zeros()),)
    # a size named only in a type attribute stays symbolic
    assert m["ones"].cod == cg.Ob(cg.f32["K"])


def test_a_loss_instantiated_at_the_wrong_type_says_so_at_its_definition():
    m = cg.loads("def l(y : f32[B, 3], p : f32[B, 3]) -> f32[] = sum((y - p) * (y - p))\n"
                 "def l2(y : (f32[3], f32[3]), p : f32[3]) -> f32[] = sum(p)\n", "l.cat")
    for name, pred, want in [
        ("l", cg.f32["B", 4],
         ["l.cat:1:5: error: type mismatch: input 'y' of 'l' expects f32[B, 3] but the argument has type f32[B, 4]",
          "l.cat:1:7: note: 'l' declares input 'y' : f32[B, 3] here"]),
        ("l2", cg.f32[3], ["l.cat:2:5: error: 'l2' takes 3 inputs but is given 2", "l.cat:2:5: note: 'l2' is defined here"]),
    ]:
        with pytest.raises(FrontendError) as e:
            m.loss(name)(pred)
        assert [line for line in str(e.value).splitlines() if ": error: " in line or ": note: " in line] == want


def test_signatures_of_definitions_that_cannot_be_checked_alone():
    m = cg.loads("def tw(h) = h >> h\ndef poly = sin >> cos\ndef g(x : f64[3]) -> f64[3] = x\n")
    assert [m.signature(n) for n in ("tw", "poly", "g")] == [
        "higher-order: takes morphism(s) (h)", "polymorphic", "f64[3] -> f64[3]"]


@pytest.mark.slow
def test_a_program_may_elaborate_to_at_most_200000_boxes():
    """b_k is 2**k sin boxes; 131072 + 65536 + 2048 + 1024 + 256 + 64 = 200000 boxes are allowed,
    one more is refused where the use that crosses the limit is."""
    src = ("def b0(x : f64[1]) -> f64[1] = sin(x)\n"
           + "".join(f"def b{k}(x : f64[1]) -> f64[1] = b{k - 1}(b{k - 1}(x))\n" for k in range(1, 18))
           + "def top(x : f64[1]) -> f64[1] = b6(b8(b10(b11(b16(b17(x))))))\n"
           + "def over(x : f64[1]) -> f64[1] = b0(b6(b8(b10(b11(b16(b17(x)))))))\n")
    assert _headers(src) == ["m.cat:20:34: error: this program elaborates to more than 200000 boxes"]
