"""What the checker tells the user about an ill-typed or malformed ``.cat`` program: each
error's location and whole message, and its notes (what ``catgrad check`` prints above the
quoted source lines), one case per rule of the checker; and the values of the structural
morphisms and constant folds that the same rules accept."""

import numpy as np
import pytest

import catgrad as cg
from catgrad.frontend import check_source, render_all

# p5 is 32 copies of id[3125] side by side: 100,000 wires
WIDE = "def p1 = id[3125] @ id[3125]\n" + "".join(f"def p{k} = p{k - 1} @ p{k - 1}\n" for k in range(2, 6))

CASES = [
    ('def f : (f32[3], f32[3]) -> (f32[3], f32[3]) = swap[1, 1, 1]',
     ['m.cat:1:48: error: swap[a, b] takes two wire counts']),
    ('def f : f32[3] -> f32[3] = id[1, 2]',
     ['m.cat:1:28: error: id[n] takes one wire count']),
    ('def f : (f32[3], f32[3]) -> (f32[3], f32[3]) = perm[0, 0]',
     ['m.cat:1:48: error: perm[0, 0] is not a permutation of 0..1']),
    ('def f : f32[3] -> f32[3] = copy[5000]',
     ["m.cat:1:28: error: the arguments of 'copy[...]' must be wire counts (small integers)"]),
    ('def f : (f32[3], f32[2], f32[4]) -> (f32[2], f32[4], f32[3]) = perm',
     ['m.cat:1:64: error: perm needs the permutation: perm[p0, p1, ...]']),
    ('def g = tanh\ndef f : f32[3] -> f32[3] = g[2]',
     ["m.cat:2:28: error: 'g' takes 0 dimension argument(s), got 1", "m.cat:1:5: note: 'g' is defined here"]),
    ('def f(x : f32[3]) -> f32[3] = 2 ** 3',
     ['m.cat:1:31: error: a bare number has no type here; combine it with a value (e.g. x * 2.0) or use constant(type=..., value=...)']),
    ('def f(x : f32[3]) -> f32[3] = x ** x',
     ["m.cat:1:36: error: the exponent of '**' must be a number constant"]),
    ('def f(x : f32[3]) -> f32[3] = 2.0 ** x',
     ["m.cat:1:38: error: the exponent of '**' must be a number constant"]),
    ('def f(x : f32[3]) -> f32[3] = x + (1 / 0)',
     ['m.cat:1:36: error: cannot compute the constant 1 / 0']),
    ('def f(x : f32[3]) -> f32[3] = x * (2 @ 3)',
     ["m.cat:1:36: error: '@' needs values, not two numbers"]),
    ('def f(x : f32[3]) -> f32[3] = x ^ x',
     ["m.cat:1:31: error: '^' is xor on bits, but 'x' has type f32[3]; for powers write x ** p"]),
    ('def f(x : f32[3]) -> f32[3] = x & x',
     ["m.cat:1:31: error: '&' is and on bits, but 'x' has type f32[3]"]),
    ('def f(x : f32[3]) -> f32[3] = x | x',
     ["m.cat:1:31: error: '|' is or on bits, but 'x' has type f32[3]"]),
    ('def g[n](x : f32[n]) -> f32[n] = x\ndef f(x : f32[3]) -> f32[3] = g[3, 4](x)',
     ["m.cat:2:31: error: 'g' takes 1 dimension argument(s) [n], got 2", "m.cat:1:5: note: 'g' is defined here"]),
    ('def g[n](x : f32[n], y : f32[n]) -> f32[n] = x + y\ndef f(x : f32[3]) -> f32[3] = g(x)',
     ["m.cat:2:31: error: 'g' takes 2 inputs but is given 1", "m.cat:1:5: note: 'g' is defined here"]),
    ('def g(x : float[n], y : float[n]) -> float[n] = x + y\ndef f(x : f32[3], y : f64[3]) -> f32[3] = g(x, y)',
     ["m.cat:2:43: error: type mismatch: input 'y' of 'g' expects f32[3] (its dtype is the variable float, fixed to f32 by an earlier input) but the argument has type f64[3]; convert it with cast, e.g. cast(<argument>, dtype=f32)", 'm.cat:2:19: note: the argument has type f64[3] because of this', "m.cat:1:21: note: 'g' declares input 'y' : float[n] here"]),
    ('def g : (f32[n], f32[n]) -> f32[n] = add\ndef f(x : f32[3], y : f32[4]) -> f32[3] = g(x, y)',
     ["m.cat:2:43: error: type mismatch: input 2 of 'g' expects f32[3] but the argument has type f32[4]", 'm.cat:2:19: note: the argument has type f32[4] because of this', "m.cat:1:9: note: 'g' declares input 2 : f32[n] here"]),
    ('def g[n, m](x : f32[3]) -> f32[3] = x\ndef f(x : f32[3]) -> f32[3] = g(x)',
     ["m.cat:2:31: error: cannot infer dimension n, m of 'g' from its inputs; write g[n, m] with sizes"]),
    ('def tw(h) = h >> h\ndef f : f32[3] -> f32[3] = tw',
     ["m.cat:2:28: error: 'tw' takes morphism argument(s) (h); write tw(f) first"]),
    ('def tw(h) = h >> h\ndef f(x : f32[3]) -> f32[3] = tw(x=sin)(x)',
     ["m.cat:2:31: error: 'tw' takes no keyword arguments"]),
    ('def tw(h) = h >> h\ndef f(x : f32[3]) -> f32[3] = tw(sin, cos)(x)',
     ["m.cat:2:31: error: 'tw' takes 1 morphism argument(s) (h), got 2"]),
    ('def g(x : f32[3]) -> f32[3] = x\ndef f(x : f32[3]) -> f32[3] = g(x, axis=1)',
     ["m.cat:2:31: error: only primitive ops take keyword attributes; 'g' does not"]),
    ('def f(x : f32[3]) -> f32[3] = x(x)',
     ["m.cat:1:31: error: 'x' is a value, not a function"]),
    ('def f(x : f32[3]) -> f32[3] = sin(sin)',
     ["m.cat:1:35: error: 'sin' is a morphism; 'sin' takes values here"]),
    ('def g(x : f32[3]) -> f32[3] = x\ndef f(x : f32[3]) -> f32[3] = g(2.0)',
     ["m.cat:2:33: error: a bare number cannot be passed to 'g'; its inputs are typed wires"]),
    ('def f(x : f32[3]) -> f32[3] = train_eval(x)',
     ['m.cat:1:31: error: train_eval takes two values: train_eval(in_training, in_evaluation)']),
    ('def f(x : f32[3]) -> f32[3] = train_eval(x, sum(x, axes=[0]))',
     ['m.cat:1:31: error: the two values of train_eval must have one type, got f32[3] and f32[]']),
    ('def f(x : f32[3]) -> f32[3] = sum(x, axes=[x])',
     ['m.cat:1:44: error: an op attribute must be a number, string, true/false, dtype, type or a list of them']),
    ('def f(x : f32[3]) -> f32[3] { let (a, b) = x; a }',
     ['m.cat:1:31: error: the pattern has 2 name(s) but the value has 1 wire(s)']),
    ('def f(x : f32[3]) -> f32[3] { let (a, b) = sin; a }',
     ['m.cat:1:44: error: only a tuple of values can be taken apart with let (a, b) = ...']),
    ('def f(x : f32[3]) -> f32[3] { param w : (f32[3], f32[3]); x }',
     ['m.cat:1:41: error: a parameter has one tensor type, not a product']),
    ('def f(x : f32[3]) -> f32[3] { param w : f32[3] ~ normal(a); x * w }',
     ['m.cat:1:57: error: initialiser arguments must be numbers']),
    ('def f(x : f32[3]) -> f32[3] { param w : f32[3] ~ normal(1, 2, 3, 4); x * w }',
     ["m.cat:1:50: error: bad arguments for initialiser 'normal'; it takes std, mean"]),
    ('def f(x : f32[3]) -> f32[3] { param w : f32[3] ~ zeros(1); x * w }',
     ["m.cat:1:50: error: bad arguments for initialiser 'zeros'; it takes none"]),
    ('def f(x : f32[3]) -> f32[3] = sin >> x',
     ["m.cat:1:38: error: '>>' composes morphisms (or feeds a value into one), but 'x' is a value"]),
    ('def f(x : f32[3]) -> f32[3] = (sin @ x)(x)',
     ["m.cat:1:38: error: '@' between morphisms is their tensor product, but 'x' is a value"]),
    ('def f(x : f32[3]) -> f32[3] = (x @ sin)(x)',
     ["m.cat:1:32: error: '@' between morphisms is their tensor product, but 'x' is a value"]),
    ('def f(x : f32[3]) -> f32[3] = -sin',
     ["m.cat:1:32: error: '-' needs values, but 'sin' is a morphism"]),
    ('def f(x : f32[3]) -> f32[3] = -(x, x)',
     ["m.cat:1:32: error: '-' needs a single wire, but '(x, x)' is a tuple of 2"]),
    ('def f(x : f32[3]) -> f32[3] = ~x',
     ['m.cat:1:31: error: not is defined on bits, got f32[3]', 'm.cat:1:7: note: this input has type f32[3]']),
    ('def f(x : f32[3]) -> f32[3] = x + sin',
     ["m.cat:1:35: error: '+' needs values, but 'sin' is a morphism"]),
    ('def f(x : f32[3]) -> f32[3] = (x, x) * 2.0',
     ["m.cat:1:31: error: '*' needs a single wire, but '(x, x)' is a tuple of 2"]),
    ('def f(x : f32[3]) -> f32[3] = x + "a"',
     ['m.cat:1:35: error: strings, booleans and lists are only allowed as op attributes (e.g. sum(x, axes=[1]))']),
    ('def f(x : f32[3]) -> f32[3] = x + true',
     ['m.cat:1:35: error: strings, booleans and lists are only allowed as op attributes (e.g. sum(x, axes=[1]))']),
    ('def f : f32[3] -> f32[3] = train_eval',
     ["m.cat:1:28: error: 'train_eval' picks one of two values: write train_eval(in_training, in_evaluation)"]),
    ('def f(x : f32[3]) -> f32[3] = sin',
     ["m.cat:1:31: error: expected a value but 'sin' is a morphism; apply it to inputs: sin(x)"]),
    ('def f(x : f32[3], y : f32[4]) -> f32[3] = x + y',
     ['m.cat:1:43: error: add: cannot combine f32[3] and f32[4] (shapes do not broadcast)', 'm.cat:1:7: note: this input has type f32[3]', 'm.cat:1:19: note: this input has type f32[4]']),
    ('def f(x : f32[3], y : f64[3]) -> f32[3] = x + y',
     ['m.cat:1:43: error: add needs inputs of one type, got f32[3] and f64[3]; convert one of them with cast, e.g. cast(<operand>, dtype=f32)', 'm.cat:1:7: note: this input has type f32[3]', 'm.cat:1:19: note: this input has type f64[3]']),
    ('def f(x : f32[2, 3], y : f32[4, 1]) -> f32[3] = x * y',
     ['m.cat:1:49: error: mul: cannot combine f32[2, 3] and f32[4, 1] (shapes do not broadcast)', 'm.cat:1:7: note: this input has type f32[2, 3]', 'm.cat:1:22: note: this input has type f32[4, 1]']),
    ('def f(x : f32[3]) -> f32[3] = sum(x, axis=0)',
     ["m.cat:1:31: error: sum: unknown attribute 'axis' (did you mean 'axes'?); it takes: axes, keepdims"]),
    ('def f(x : f32[3]) -> f32[3] = sum(x, axes="a")',
     ["m.cat:1:31: error: sum: axes must be an integer or a sequence of integers, got 'a'"]),
    ('def f(x : f32[3]) -> f32[4] = sin(x)',
     ["m.cat:1:31: error: 'f' returns f32[3] but its signature says f32[4]", 'm.cat:1:22: note: the signature is here']),
    ('def f : f32[3] -> f32[4] = sin',
     ["m.cat:1:28: error: 'f' returns f32[3] but its signature says f32[4]", 'm.cat:1:19: note: the signature is here']),
    ('def g(x : f32[3]) -> f32[3] = g(x)',
     ["m.cat:1:31: error: 'g' is recursive (g -> g); definitions cannot use themselves"]),
    ('def g : f32[3] -> f32[3] = g',
     ["m.cat:1:28: error: 'g' is recursive (g -> g); definitions cannot use themselves"]),
    ('def a : f32[3] -> f32[3] = b\ndef b : f32[3] -> f32[3] = a',
     ["m.cat:2:28: error: 'a' is recursive (a -> b -> a); definitions cannot use themselves"]),
    ('def f(x : f32[3]) -> f32[3] = x * (-2.0) ** 0.5',
     ['m.cat:1:35: error: cannot compute the constant -2.0 ** 0.5']),
    ('def f(x : f32[3]) -> f32[3] = x * 10.0 ** 400',
     ['m.cat:1:35: error: cannot compute the constant 10.0 ** 400']),
    ('def f : (f32[3], f32[2], f32[4]) -> (f32[2], f32[4], f32[3]) = perm',
     ['m.cat:1:64: error: perm needs the permutation: perm[p0, p1, ...]']),
    ('def f(x : f32[3], y : f32[2]) -> (f32[2], f32[3]) = perm(x, y)',
     ['m.cat:1:53: error: perm needs the permutation: perm[p0, p1, ...]']),
    ('def f(x : f32[3]) -> f32[3] { state s : f32[3] ~ zeros; update s = sum(x, axes=[0]); x }',
     ["m.cat:1:68: error: state 's' has type f32[3] but its update has type f32[]"]),
    ('def f(x : f32[3]) -> f32[3] { state s : f32[3] ~ zeros; update s = (x, x); x }',
     ["m.cat:1:68: error: state 's' has type f32[3] but its update has type (f32[3], f32[3])"]),
    # an expression is quoted whole up to 40 characters, else cut to 37 and "..."
    ('def f(x : f32[3]) -> f32[3] { let xy = x; -(x, x, x, x, x, x, x, x, x, x, x, x, xy) }',
     ["m.cat:1:44: error: '-' needs a single wire, but '(x, x, x, x, x, x, x, x, x, x, x, x, xy)' is a tuple of 13"]),
    ('def f(x : f32[3]) -> f32[3] { -(x, x, x, x, x, x, x, x, x, x, x, sin(x)) }',
     ["m.cat:1:32: error: '-' needs a single wire, but '(x, x, x, x, x, x, x, x, x, x, x, sin...' is a tuple of 12"]),
    ('def f(x : f32[3]) -> f32[3] = add(x, x, foo=1)',
     ["m.cat:1:31: error: add: unknown attribute 'foo'; it takes: none"]),
    ('def f(x : f32[3]) -> f32[3] = cast(x, dtyp=f64)',
     ["m.cat:1:31: error: cast: unknown attribute 'dtyp' (did you mean 'dtype'?); it takes: dtype"]),
    ('def f : (f64[3], f64[3]) -> (f64[3], f64[3]) = einsum @ sin',
     ["m.cat:1:48: error: einsum: needs the attribute spec=...; it takes: spec"]),
    ('def f(x : f32[3]) -> f32[3] = cast(x)', ["m.cat:1:31: error: cast: needs the attribute dtype=...; it takes: dtype"]),
    ('def f(k : i64[]) -> f32[3] = normal(k)', ["m.cat:1:30: error: normal: needs the attribute type=..."]),
    # a point-free definition with known input types is checked even when nothing uses it
    ('def g1 : f32[3] -> f32[3] = sin\ndef g2 : f32[4] -> f32[4] = sin\ndef h = (g1 @ g2) >> add',
     ['m.cat:3:22: error: add: cannot combine f32[3] and f32[4] (shapes do not broadcast)',
      'm.cat:3:10: note: this input has type f32[3]', 'm.cat:3:10: note: this input has type f32[4]']),
    ('def f : (f32[3], f32[3]) -> f32[3] = id', ["m.cat:1:38: error: 'id' takes 1 input but is given 2"]),
    ('def f : (f32[3], f32[3], f32[3]) -> f32[3] = swap[1, 1]',
     ["m.cat:1:46: error: 'swap[1, 1]' takes 2 inputs but is given 3"]),
    # one note for an input given twice
    ('def f(x : f32[2, 3]) -> f32[2] = x @ x',
     ["m.cat:1:34: error: matmul: einsum 'ab,bc->ac': index 'b' is 3 in one operand and 2 in f32[2, 3]",
      'm.cat:1:7: note: this input has type f32[2, 3]']),
    # at most 100,000 parallel wires: exactly that many is not refused as too many
    (WIDE + 'def f : f32[3] -> f32[3] = p5 @ id', ["m.cat:6:28: error: 'p5' takes 100000 inputs but only 1 are left"]),
    (WIDE + 'def p6 = p5 @ id\ndef f : f32[3] -> f32[3] = p6 @ id',
     ['m.cat:7:28: error: this program has more than 100000 parallel wires']),
]


def _headers(source):
    """The error and note lines ``catgrad check`` prints for ``source`` (as file m.cat)."""
    diagnostics, sources = check_source(source, "m.cat")
    text = render_all(diagnostics, sources)
    return [line for line in text.splitlines() if ": error: " in line or ": note: " in line]


@pytest.mark.parametrize("source,expected", CASES, ids=[c[0].splitlines()[-1][:60] for c in CASES])
def test_each_error_says_what_is_wrong_and_where(source, expected):
    assert _headers(source) == expected


def _run(source, name, *xs):
    return [np.asarray(v) for v in cg.evaluate(cg.loads(source)[name], *xs)]


def test_swap_with_wire_counts_moves_the_first_block_after_the_second():
    a, b, c = np.arange(3.0), np.arange(2.0) + 10, np.arange(4.0) + 20
    src = ("def s : (f64[3], f64[2], f64[4]) -> (f64[4], f64[3], f64[2]) = swap[2, 1]\n"
           "def t : (f64[3], f64[2], f64[4]) -> (f64[2], f64[4], f64[3]) = swap[1, 2]\n"
           "def u : (f64[3], f64[2]) -> (f64[2], f64[3]) = swap[1, 1]\n"
           "def v : (f64[3], f64[2]) -> (f64[2], f64[3]) = swap\n")
    for name, args, want in [("s", (a, b, c), (c, a, b)), ("t", (a, b, c), (b, c, a)),
                             ("u", (a, b), (b, a)), ("v", (a, b), (b, a))]:
        got = _run(src, name, *args)
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want)), name


def test_copy_id_discard_and_perm_with_counts():
    a, b, c = np.arange(3.0), np.arange(2.0) + 10, np.arange(4.0) + 20
    src = ("def c3 : f64[3] -> (f64[3], f64[3], f64[3]) = copy[3]\n"
           "def c : f64[3] -> (f64[3], f64[3]) = copy\n"
           "def i2 : (f64[3], f64[2]) -> (f64[3], f64[2]) = id[2]\n"
           "def d2 : (f64[3], f64[2], f64[4]) -> f64[4] = discard[2] @ id\n"
           "def p : (f64[3], f64[2], f64[4]) -> (f64[4], f64[3], f64[2]) = perm[2, 0, 1]\n")
    for name, args, want in [("c3", (a,), (a, a, a)), ("c", (a,), (a, a)), ("i2", (a, b), (a, b)),
                             ("d2", (a, b, c), (c,)), ("p", (a, b, c), (c, a, b))]:
        got = _run(src, name, *args)
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want)), name


@pytest.mark.parametrize("expr,factor", [("x * 2 ** 2", 4.0), ("x * (2 - 5)", -3.0), ("x * (3 / 2)", 1.5), ("x * (2 * 3)", 6.0),
                                         ("x * (-(2 + 1))", -3.0), ("x * 4 ** 0.5", 2.0)])
def test_number_constants_are_folded(expr, factor):
    x = np.array([1.0, -2.0, 0.5])
    (got,) = _run(f"def f(x : f64[3]) -> f64[3] = {expr}", "f", x)
    np.testing.assert_array_equal(got, x * factor)


@pytest.mark.parametrize("stop,n", [("1 + 1", 2), ("-1 * -1", 1), ("5 - 2", 3), ("2 * 2", 4)])
def test_attribute_arithmetic_on_whole_numbers(stop, n):
    x = np.arange(5.0)
    (got,) = _run(f"def f(x : f64[5]) -> f64[{n}] = slice(x, axis=0, start=0, stop={stop})", "f", x)
    np.testing.assert_array_equal(got, x[:n])


def test_a_definition_used_at_two_types_is_elaborated_once_for_each():
    src = ("def g[n](x : f64[n]) -> f64[n] { param w : f64[n] ~ normal(0.1); x * w }\n"
           "def f(x : f64[3], y : f64[4]) -> (f64[4], f64[3]) = (g(y), g(x))\n")
    f = cg.loads(src)["f"]
    assert [(p.name, p.type) for p in f.params] == [("g.w", cg.f64[4]), ("g_2.w", cg.f64[3])]
    w4, w3, x, y = np.arange(4.0) + 1, np.arange(3.0) - 1, np.array([2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0])
    a, b = cg.evaluate(f.body, w4, w3, x, y)
    np.testing.assert_array_equal(a, y * w4)
    np.testing.assert_array_equal(b, x * w3)


def test_the_dtype_variable_is_bound_at_each_use():
    src = ("def h(x : float[3], y : float[3]) -> float[3] = x * y + sin(x)\n"
           "def k(a : f32[3], b : f64[3]) -> (f32[3], f64[3]) = (h(a, a), h(b, b))\n")
    k = cg.loads(src)["k"]
    assert k.dom == cg.Ob(cg.f32[3], cg.f64[3]) and k.cod == k.dom
    a, b = np.array([0.5, 1.0, 2.0], np.float32), np.array([0.5, 1.0, 2.0])
    u, v = cg.evaluate(k, a, b)
    assert u.dtype == np.float32 and v.dtype == np.float64
    np.testing.assert_allclose(v, b * b + np.sin(b), rtol=1e-15)
    np.testing.assert_allclose(u, a * a + np.sin(a), rtol=1e-6)


def test_parameter_names_are_qualified_by_use_and_made_unique():
    src = ("def g(x : f64[3]) -> f64[3] { param w : f64[3] ~ normal(0.1); x * w }\n"
           "def g_2(x : f64[3]) -> f64[3] { param w : f64[3] ~ normal(0.1); x + w }\n"
           "def f(x : f64[3]) -> f64[3] { param w : f64[3] ~ zeros; g_2(g(g(x))) * w }\n")
    f = cg.loads(src)["f"]
    # the second use of g and the first of g_2 would both be g_2.w: the later one gets _2
    assert [p.name for p in f.params] == ["w", "g.w", "g_2.w", "g_2.w_2"]
    w, a, b, c, x = (np.arange(3.0) + k for k in (1, 2, 3, 4, 5))
    (got,) = cg.evaluate(f.body, w, a, b, c, x)
    np.testing.assert_array_equal(got, (x * a * b + c) * w)


PAR = """
def g1 : f64[3] -> f64[3] = sin
def g2(x : f64[3], y : f64[3]) -> f64[3] = x * y
def pre = sin @ g1
def left : (f64[3], f64[3], f64[3]) -> (f64[3], f64[3]) = g2 @ g1
def right : (f64[3], f64[3], f64[3]) -> (f64[3], f64[3]) = g1 @ g2
def seq : (f64[3], f64[3], f64[3]) -> (f64[3], f64[3]) = (g1 >> exp) @ g2
def two : (f64[2, 3], f64[3, 4], f64[5]) -> (f64[2, 4], f64[5]) = einsum(spec="ij,jk->ik") @ sin
def three : (f64[3], f64[3], f64[3], f64[5]) -> (f64[3], f64[5]) = einsum(spec="i,i,i->i") @ sin
def one : (f64[2, 3], f64[5]) -> (f64[3, 2], f64[5]) = einsum(spec="ij->ji") @ sin
def both : (f64[3], f64[3], f64[3]) -> (f64[3], f64[3], f64[3]) = pre @ g1
"""


def test_tensor_products_split_their_inputs_by_each_side_s_arity():
    m = cg.loads(PAR)
    a, b, c = np.array([0.5, 1.0, 2.0]), np.array([3.0, -1.0, 0.25]), np.array([1.5, 2.5, -0.5])
    checks = {
        "left": ((a, b, c), (a * b, np.sin(c))),
        "right": ((a, b, c), (np.sin(a), b * c)),
        "seq": ((a, b, c), (np.exp(np.sin(a)), b * c)),
        "three": ((a, b, c, np.arange(5.0)), (a * b * c, np.sin(np.arange(5.0)))),
        "both": ((a, b, c), (np.sin(a), np.sin(b), np.sin(c))),
    }
    x, y, z = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4), np.arange(5.0)
    checks["two"] = ((x, y, z), (x @ y, np.sin(z)))
    checks["one"] = ((x, z), (x.T, np.sin(z)))
    for name, (args, want) in checks.items():
        got = cg.evaluate(m[name], *args)
        assert len(got) == len(want), name
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-15, err_msg=name)


def test_a_definition_applied_to_different_morphisms_is_elaborated_for_each():
    src = ("def tw(h) = h >> h\n"
           "def a : (f64[3], f64[3], f64[3]) -> (f64[3], f64[3], f64[3]) = tw(perm[1, 2, 0])\n"
           "def b : (f64[3], f64[3], f64[3]) -> (f64[3], f64[3], f64[3]) = tw(id[3])\n"
           "def c : (f64[3], f64[3]) -> (f64[3], f64[3]) = tw(sin @ cos)\n"
           "def d : (f64[3], f64[3]) -> (f64[3], f64[3]) = tw(cos @ sin)\n")
    m = cg.loads(src)
    u, v, w = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 4.0])
    assert [list(o) for o in cg.evaluate(m["a"], u, v, w)] == [list(w), list(u), list(v)]
    assert [list(o) for o in cg.evaluate(m["b"], u, v, w)] == [list(u), list(v), list(w)]
    c, d = cg.evaluate(m["c"], u, v), cg.evaluate(m["d"], u, v)
    np.testing.assert_array_equal(c[0], np.sin(np.sin(u)))
    np.testing.assert_array_equal(c[1], np.cos(np.cos(v)))
    np.testing.assert_array_equal(d[0], np.cos(np.cos(u)))
    np.testing.assert_array_equal(d[1], np.sin(np.sin(v)))
