"""Optimizer strings: every optimizer prints as the string that parses back to it (the same
state keys and the same update diagram), the printed spellings are exact, and each bad
optimizer string or hyperparameter gets its exact user-facing message."""

import pytest
from hypothesis import given, settings, strategies as st

import catgrad as cg

O = cg.optim
PARAMS = [("W", cg.f64[3, 2]), ("b", cg.f64[2])]

#: (optimizer, its exact spelling)
SPELLINGS = [
    (lambda: O.sgd(0.1), "sgd(lr=0.1)"),
    (lambda: O.sgd(0.1, weight_decay=0.2), "weight_decay(rate=0.2) >> sgd(lr=0.1)"),
    (lambda: O.sgd(0.1, momentum=0.8), "momentum(lr=0.1, gamma=0.8, dampening=0)"),
    (lambda: O.sgd(0.1, momentum=0.8, dampening=0.3), "momentum(lr=0.1, gamma=0.8, dampening=0.3)"),
    (lambda: O.sgd(0.1, momentum=0.8, nesterov=True), "sgd(lr=0.1, momentum=0.8, nesterov=True)"),
    (lambda: O.momentum(), "momentum(lr=0.01, gamma=0.9, dampening=0)"),
    (lambda: O.momentum(0.1, 0.5, paper_sign=True), "momentum(lr=0.1, gamma=0.5, dampening=0, paper_sign=True)"),
    (lambda: O.nesterov(), "nesterov(lr=0.01, gamma=0.9)"),
    (lambda: O.gradient_update(), "sgd(lr=1)"),
    (lambda: O.identity(), "identity()"),
    (lambda: O.adagrad(), "adagrad(lr=0.01, eps=1e-10)"),
    (lambda: O.adagrad(0.1, lr_decay=0.1, initial_accumulator_value=0.5),
     "adagrad(lr=0.1, eps=1e-10, lr_decay=0.1, initial_accumulator_value=0.5)"),
    (lambda: O.rmsprop(), "rmsprop(lr=0.01, alpha=0.99, eps=1e-08)"),
    (lambda: O.rmsprop(momentum=0.3, centered=True), "rmsprop(lr=0.01, alpha=0.99, eps=1e-08, momentum=0.3, centered=True)"),
    (lambda: O.adam(), "adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08)"),
    (lambda: O.adam(weight_decay=0.1), "weight_decay(rate=0.1) >> adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08)"),
    (lambda: O.amsgrad(), "adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08, amsgrad=True)"),
    (lambda: O.adamw(), "adamw(lr=0.001, b1=0.9, b2=0.999, eps=1e-08, weight_decay=0.01)"),
    (lambda: O.adamw(amsgrad=True), "adamw(lr=0.001, b1=0.9, b2=0.999, eps=1e-08, weight_decay=0.01, amsgrad=True)"),
    (lambda: O.nadam(), "nadam(lr=0.002, b1=0.9, b2=0.999, eps=1e-08, momentum_decay=0.004)"),
    (lambda: O.radam(), "radam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08)"),
    (lambda: O.adamax(), "adamax(lr=0.002, b1=0.9, b2=0.999, eps=1e-08)"),
    (lambda: O.adadelta(), "adadelta(lr=1, rho=0.9, eps=1e-06)"),
    (lambda: O.lion(), "lion(lr=0.0001, b1=0.9, b2=0.99, weight_decay=0)"),
    (lambda: O.ademamix(), "ademamix(lr=0.001, b1=0.9, b2=0.999, b3=0.9999, alpha=5, eps=1e-08, weight_decay=0, warmup=0)"),
    (lambda: O.novograd(), "novograd(lr=0.01, b1=0.95, b2=0.98, eps=1e-08, weight_decay=0)"),
    (lambda: O.novograd(grad_averaging=True),
     "novograd(lr=0.01, b1=0.95, b2=0.98, eps=1e-08, weight_decay=0, grad_averaging=True)"),
    (lambda: O.diffgrad(), "diffgrad(lr=0.001, b1=0.9, b2=0.999, eps=1e-08)"),
    (lambda: O.adafactor(), "adafactor(lr=0.01, decay=-0.8, eps2=0.001, d=1, weight_decay=0)"),
    (lambda: O.adafactor(eps1=1e-3), "adafactor(lr=0.01, decay=-0.8, eps2=0.001, d=1, weight_decay=0, eps1=0.001)"),
    (lambda: O.lamb(), "lamb(lr=0.001, b1=0.9, b2=0.999, eps=1e-06, weight_decay=0.01)"),
    (lambda: O.lars(), "lars(lr=1, momentum=0.9, weight_decay=0.0005, trust_coefficient=0.001)"),
    (lambda: O.dog(), "dog(reps_rel=1e-06, eps=1e-08)"),
    (lambda: O.ldog(), "ldog(reps_rel=1e-06, eps=1e-08)"),
    (lambda: O.clip_norm(), "clip_norm(max_norm=1, eps=1e-06)"),
    (lambda: O.clip_norm_per_tensor(2.0), "clip_norm_per_tensor(max_norm=2, eps=1e-06)"),
    (lambda: O.clip_value(), "clip_value(max_value=1)"),
    (lambda: O.weight_decay(), "weight_decay(rate=0)"),
    (lambda: O.scale(), "scale(factor=1)"),
    (lambda: O.scale_by_schedule(cg.schedule.cosine(1.0, 10)),
     "scale(factor=cosine(peak=1, decay_steps=10, final=0, warmup_steps=0))"),
    (lambda: O.adam(lr=cg.schedule.cosine(0.1, 10)),
     "adam(lr=cosine(peak=0.1, decay_steps=10, final=0, warmup_steps=0), b1=0.9, b2=0.999, eps=1e-08)"),
    (lambda: O.nesterov(cg.schedule.cosine(0.1, 10)),
     "nesterov(lr=cosine(peak=0.1, decay_steps=10, final=0, warmup_steps=0), gamma=0.9)"),
    (lambda: O.cautious(O.adam()), "cautious(adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08))"),
    (lambda: O.lookahead(O.sgd(0.1), k=3, alpha=0.3), "lookahead(sgd(lr=0.1), k=3, alpha=0.3)"),
    (lambda: O.lookahead(O.sgd(0.1)), "lookahead(sgd(lr=0.1), k=5, alpha=0.5)"),
    (lambda: O.hypergradient(O.sgd(0.1)), "hypergradient(sgd(lr=0.1), beta=1e-07)"),
    (lambda: O.sam(O.sgd(0.1)), "sam(sgd(lr=0.1), rho=0.05)"),
    (lambda: O.adam() @ O.sgd(), "adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08) @ sgd(lr=0.01)"),
    (lambda: O.clip_norm() >> (O.adam() @ O.sgd()),
     "clip_norm(max_norm=1, eps=1e-06) >> (adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08) @ sgd(lr=0.01))"),
    (lambda: (O.clip_value() >> O.sgd()) @ O.adam(),
     "(clip_value(max_value=1) >> sgd(lr=0.01)) @ adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-08)"),
]


def same_optimizer(x, y, params=PARAMS):
    lx, ly = x.lens(params), y.lens(params)
    assert lx.keys == ly.keys
    assert lx.state_types == ly.state_types
    assert lx.lens.get == ly.lens.get and lx.lens.put == ly.lens.put
    assert lx.init([[[1.0, 2], [3, 4], [5, 6]], [7.0, 8]]).keys() == ly.init([[[1.0, 2], [3, 4], [5, 6]], [7.0, 8]]).keys()
    for (k, a), b in zip(lx.init([[[1.0, 2], [3, 4], [5, 6]], [7.0, 8]]).items(),
                         ly.init([[[1.0, 2], [3, 4], [5, 6]], [7.0, 8]]).values()):
        assert (a == b).all(), k


@pytest.mark.parametrize("make,spelling", SPELLINGS, ids=[s for _, s in SPELLINGS])
def test_spelling_is_exact_and_parses_back(make, spelling):
    opt = make()
    assert repr(opt) == spelling
    back = O.parse(spelling)
    assert repr(back) == spelling
    same_optimizer(back, opt)


def test_a_repr_that_differs_means_a_different_optimizer():
    """Flags that change the update also change the spelling (the checkpoint signature records it)."""
    pairs = [(O.rmsprop(), O.rmsprop(centered=True)), (O.novograd(), O.novograd(grad_averaging=True)),
             (O.adagrad(), O.adagrad(initial_accumulator_value=0.1)), (O.adam(), O.amsgrad()),
             (O.momentum(), O.momentum(paper_sign=True)), (O.momentum(), O.nesterov()),
             (O.sgd(0.01, momentum=0.9), O.sgd(0.01, momentum=0.9, nesterov=True))]
    for a, b in pairs:
        assert repr(a) != repr(b)


POOL = [
    lambda x: O.sgd(x), lambda x: O.momentum(x, 0.5), lambda x: O.nesterov(x), lambda x: O.adam(x),
    lambda x: O.adamw(x, amsgrad=True), lambda x: O.rmsprop(x, centered=True, momentum=0.5),
    lambda x: O.adagrad(x, lr_decay=0.5, initial_accumulator_value=0.25), lambda x: O.lion(x, weight_decay=0.5),
    lambda x: O.clip_norm(x), lambda x: O.clip_value(x), lambda x: O.weight_decay(x), lambda x: O.scale(x),
    lambda x: O.lamb(x), lambda x: O.lars(x), lambda x: O.novograd(x, grad_averaging=True),
    lambda x: O.adafactor(x, eps1=x), lambda x: O.sgd(x, momentum=0.5, nesterov=True, weight_decay=0.25),
    lambda x: O.cautious(O.adam(x)), lambda x: O.lookahead(O.sgd(x), k=2, alpha=0.25), lambda x: O.dog(x),
]
#: values with at most 6 significant digits print exactly
values = st.sampled_from([0.5, 0.25, 0.125, 1e-3, 0.3, 2e-5, 0.75, 1.0])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(POOL) - 1), values), min_size=1, max_size=4), st.booleans())
def test_random_chains_print_and_parse_back(picks, tensor):
    opts = [POOL[i](x) for i, x in picks]
    opt = opts[0]
    for o in opts[1:]:
        opt = opt >> o
    if tensor:
        opt = opt @ O.sgd(0.5)
    back = O.parse(repr(opt))
    assert repr(back) == repr(opt)
    same_optimizer(back, opt)


BAD = [
    ("adam(lr=-1)", "adam(lr=-1): lr must be >= 0"),
    ("adam(lr=1e39)", "adam(lr=1e+39): must be a finite number of float32 size (|x| <= 3.4e38)"),
    ("sgd(lr=1e309)", "sgd(lr=inf): must be a finite number of float32 size (|x| <= 3.4e38)"),
    ("sgd(lr=-3.5e38)", "sgd(lr=-3.5e+38): must be a finite number of float32 size (|x| <= 3.4e38)"),
    ("adam(b1=1.5)", "adam(b1=1.5): b1 must lie in [0, 1]"),
    ("adam(b2=-0.1)", "adam(b2=-0.1): b2 must lie in [0, 1]"),
    ("ademamix(b3=2)", "ademamix(b3=2): b3 must lie in [0, 1]"),
    ("adadelta(rho=1.01)", "adadelta(rho=1.01): rho must lie in [0, 1]"),
    ("sgd(momentum=2)", "sgd(momentum=2): momentum must lie in [0, 1]"),
    ("sgd(momentum=0.5, dampening=-1)", "sgd(dampening=-1): dampening must lie in [0, 1]"),
    ("momentum(gamma=1.5)", "momentum(gamma=1.5): gamma must lie in [0, 1]"),
    ("nesterov(gamma=-0.5)", "nesterov(gamma=-0.5): gamma must lie in [0, 1]"),
    ("lookahead(sgd(), alpha=2)", "lookahead(alpha=2): alpha must lie in [0, 1]"),
    ("rmsprop(alpha=2)", "rmsprop(alpha=2): alpha must lie in [0, 1]"),
    ("adam(eps=-1e-8)", "adam(eps=-1e-08): eps must be >= 0"),
    ("adafactor(eps2=-1)", "adafactor(eps2=-1): eps2 must be >= 0"),
    ("adam(weight_decay=-1)", "adam(weight_decay=-1): weight_decay must be >= 0"),
    ("weight_decay(-1)", "weight_decay(rate=-1): rate must be >= 0"),
    ("clip_norm(-1)", "clip_norm(max_norm=-1): max_norm must be >= 0"),
    ("clip_value(-1)", "clip_value(max_value=-1): max_value must be >= 0"),
    ("adagrad(lr_decay=-1)", "adagrad(lr_decay=-1): lr_decay must be >= 0"),
    ("adagrad(initial_accumulator_value=-1)", "adagrad(initial_accumulator_value=-1): initial_accumulator_value must be >= 0"),
    ("nadam(momentum_decay=-1)", "nadam(momentum_decay=-1): momentum_decay must be >= 0"),
    ("ademamix(warmup=-1)", "ademamix(warmup=-1): warmup must be >= 0"),
    ("adam(lr=cosine(-1, 10))", "cosine(peak=-1): peak must be >= 0"),
    ("adam(lr=+-+1)", "adam(lr=-1): lr must be >= 0"),
    ("adam(lr=1, lr=2)", "adam(): argument 'lr' given twice"),
    ("adam(lr=1, 0.9)", "adam(): a positional argument at column 12 follows keyword arguments"),
    ("adam(", "cannot parse optimizer 'adam(': expected a name or number at column 6, found the end"),
    ("adam)", "cannot parse optimizer 'adam)': unexpected ')' at column 5"),
    ("adam() sgd()", "cannot parse optimizer 'adam() sgd()': unexpected 'sgd' at column 8"),
    ("adam(,)", "cannot parse optimizer 'adam(,)': expected a name or number at column 6, found ','"),
    ("adam(lr=$)", "cannot parse optimizer 'adam(lr=$)': unexpected '$' at column 9"),
    ("adam(lr=1.2.3)", "cannot parse optimizer 'adam(lr=1.2.3)': expected ')' at column 12, found '.3'"),
    ("adam(lr=1) >> 3", "in 'adam(lr=1) >> 3': '>>' at column 12 combines optimizers, not numbers"),
    ("3 @ adam()", "in '3 @ adam()': '@' at column 3 combines optimizers, not numbers"),
    ("-adam()", "in '-adam()': '-' at column 1 applies to numbers only"),
    ("adam(lr='x')", "in \"adam(lr='x')\": 'x' at column 9 is not a number, optimizer or schedule"),
    ("adma", "in 'adma': unknown name 'adma' at column 1 (did you mean 'adamax' or 'adam' or 'radam'?)"),
    ("sgd(lr=nan)", "in 'sgd(lr=nan)': unknown name 'nan' at column 8"),
    ("adam(beta1=0.9)", "adam() has no argument 'beta1'; its arguments are: lr, b1, b2, eps, weight_decay, amsgrad"),
    ("adam(1,2,3,4,5,6,7,8)", "adam(): too many positional arguments; its arguments are: lr, b1, b2, eps, weight_decay, amsgrad"),
    ("adam(lr=99999999999999999999999)", "in 'adam(lr=99999999999999999999999)': the number at column 9 is too large"),
    ("3", "'3' is not an optimizer"),
    (" ", "an optimizer string is required, got ' '"),
    ("", "an optimizer string is required, got ''"),
    ("clip_value(0)", "clip_value needs a positive bound, got 0"),
    ("clip_norm(0)", "clip_norm needs a positive bound, got 0"),
    ("clip_norm_per_tensor(0)", "clip_norm_per_tensor needs a positive bound, got 0"),
    ("lookahead(sgd(), k=0)", "lookahead needs k >= 1 and 0 < alpha <= 1, got k=0, alpha=0.5"),
    ("lookahead(sgd(), alpha=0)", "lookahead needs k >= 1 and 0 < alpha <= 1, got k=5, alpha=0"),
    ("adam(lr=True)", "adam: hyperparameter lr must be a number or a schedule, got True"),
    ("cautious(3)", "cautious(3) wraps an optimizer, got 3"),
    ("sgd(momentum=0.9, nesterov=True, dampening=0.1)", "sgd: nesterov needs momentum > 0 and zero dampening (as in torch)"),
    ("sgd(nesterov=True)", "sgd: nesterov needs momentum > 0 and zero dampening (as in torch)"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[t[:40] for t, _ in BAD])
def test_bad_optimizer_strings_have_exact_messages(text, message):
    with pytest.raises(cg.CatgradError) as e:
        O.parse(text)
    assert str(e.value) == message


def test_unknown_optimizer_lists_the_known_ones():
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse("adma(lr=1)")
    known = ", ".join(sorted(O.NAMES))
    assert str(e.value) == f"unknown optimizer 'adma' at column 1 (did you mean 'adamax' or 'adam' or 'radam'?); known: {known}"
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse("sgd >> foo(1)")
    assert str(e.value) == f"unknown optimizer 'foo' at column 8; known: {known}"
    assert isinstance(e.value, ValueError)


@pytest.fixture
def room_for_trampolines():
    """mutmut's trampolines add Python frames to every call, so the 64-deep parse needs a higher
    recursion limit under mutation testing; the parser's own limit (64) is what is tested."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10_000))
    yield
    sys.setrecursionlimit(old)


def test_limits_of_the_parser(room_for_trampolines):
    """256 optimizers, 64 levels of nesting, a million characters: the documented limits."""
    chain = " >> ".join(["sgd"] * 257)
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(chain)
    assert str(e.value) == "the optimizer string combines more than 256 optimizers (at column 1790); that is the limit"
    assert len(O.parse(" >> ".join(["sgd"] * 256)).parts) == 256
    long = "sgd" + " " * 999_998
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(long)
    assert str(e.value) == "the optimizer string is 1000001 characters long; the limit is 1000000"
    assert repr(O.parse("sgd" + " " * 999_997)) == "sgd(lr=0.01)"
    deep = "(" * 64 + "sgd" + ")" * 64
    assert repr(O.parse(deep)) == "sgd(lr=0.01)"
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse("(" + deep + ")")
    text = "(" + deep + ")"
    assert str(e.value) == f"in {text[:60] + ' ... ' + text[-60:]!r}: nested more than 64 deep at column 65"
    args = "sgd(" * 65 + "1" + ")" * 65  # argument lists count as nesting too
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(args)
    assert str(e.value).endswith(": nested more than 64 deep at column 261")
    # a closed argument list gives its level back, exactly: 63 parentheses, then clip_norm(1)
    # (level 64, closed), then two more parentheses reach 65
    sibling = "(" * 63 + "clip_norm(1) >> ((sgd))" + ")" * 63
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(sibling)
    assert str(e.value).endswith(": nested more than 64 deep at column 81")
    assert repr(O.parse("(" * 63 + "clip_norm(1) >> (sgd)" + ")" * 63)) == "clip_norm(max_norm=1, eps=1e-06) >> sgd(lr=0.01)"
    # and so does a closed parenthesis
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse("(" * 63 + "(sgd) >> ((sgd))" + ")" * 63)
    assert str(e.value).endswith(": nested more than 64 deep at column 74")
    assert repr(O.parse("(" * 63 + "(sgd) >> (sgd)" + ")" * 63)) == "sgd(lr=0.01) >> sgd(lr=0.01)"
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(None)
    assert str(e.value) == "an optimizer string is required, got None"
    short = "adam(lr=1) >> " + "x" * 106  # 120 characters: printed whole
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(short)
    assert repr(short) in str(e.value)
    longer = short + "y"
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse(longer)
    assert repr(longer[:60] + " ... " + longer[-60:]) in str(e.value)


def test_float32_bound():
    assert repr(O.parse("sgd(lr=3.4028234663852886e38)")) == "sgd(lr=3.4028234663852886e+38)"  # exact, not 6 digits
    with pytest.raises(O.OptimizerSyntaxError) as e:
        O.parse("sgd(lr=3.4028234663852890e38)")
    assert str(e.value) == "sgd(lr=3.402823466385289e+38): must be a finite number of float32 size (|x| <= 3.4e38)"


def test_numbers_and_signs():
    assert repr(O.parse("sgd(lr=1_000)")) == "sgd(lr=1000)"
    assert repr(O.parse("sgd(lr=.5)")) == "sgd(lr=0.5)"
    assert repr(O.parse("sgd(lr=5.)")) == "sgd(lr=5)"
    assert repr(O.parse("sgd(lr=2E-3)")) == "sgd(lr=0.002)"
    assert repr(O.parse("sgd(lr=--+2e+2)")) == "sgd(lr=200)"
    assert repr(O.parse("adam(1e-2, 0.5, b2=0.75,)")) == "adam(lr=0.01, b1=0.5, b2=0.75, eps=1e-08)"
    assert repr(O.parse("  sgd  (  lr = 0.5 )  ")) == "sgd(lr=0.5)"
    assert repr(O.parse("adam(amsgrad=True)")) == repr(O.amsgrad())
    assert repr(O.parse("adam(amsgrad=False)")) == repr(O.adam())
    assert O.parse("sgd(lr=9223372036854775808)").hypers["lr"] == 2.0**63
    with pytest.raises(O.OptimizerSyntaxError, match="too large"):
        O.parse("sgd(lr=9223372036854775809)")


@pytest.mark.parametrize("text, message", [
    ("clip_value(sgd)", r"clip_value\(max_value=sgd\(lr=0\.01\)\): max_value takes a number, not an optimizer$"),
    ("lookahead(sgd, k=sgd)", r"lookahead\(k=sgd\(lr=0\.01\)\): k must be a whole number$"),
    ("lookahead(sgd, k=1.5)", r"lookahead\(k=1\.5\): k must be a whole number$"),
    ("lookahead(sgd, k=True)", r"lookahead\(k=True\): k must be a whole number$"),
    ("ademamix(warmup=2.5)", r"ademamix\(warmup=2\.5\): warmup must be a whole number$"),
    ("sgd(lr=step(1, 2.5))", r"step\(step_size=2\.5\): step_size must be a whole number$"),
    ("sgd(lr=warmup_linear(1, 2.5))", r"warmup_linear\(warmup_steps=2\.5\): warmup_steps must be a whole number$"),
    ("sgd(lr=cosine(1, 1e3))", r"cosine\(decay_steps=1000\.0\): decay_steps must be a whole number$"),
    ("adam(amsgrad=1)", r"adam\(amsgrad=1\): amsgrad is a flag, True or False$"),
    ("rmsprop(centered=2)", r"rmsprop\(centered=2\): centered is a flag, True or False$"),
    ("novograd(grad_averaging=sgd)", r"novograd\(grad_averaging=sgd\(lr=0\.01\)\): grad_averaging is a flag"),
])
def test_arguments_of_the_wrong_kind_are_named(text, message):
    """Each argument is of the kind its parameter takes (an optimizer, a flag, a whole
    number, a number or schedule), checked before the factory runs."""
    with pytest.raises(O.OptimizerSyntaxError, match=message):
        O.parse(text)


@pytest.mark.parametrize("text", ["lookahead(adam, k=3)", "sam(sgd, adaptive=True)", "adam(amsgrad=False)",
                                  "sgd(lr=constant(0.1))", "ademamix(warmup=10)", "adam(lr=2)",
                                  "sgd(lr=step(1, 3))", "sgd(lr=cosine(1, 1000, warmup_steps=10))"])
def test_arguments_of_the_right_kind_are_taken(text):
    assert repr(O.parse(repr(O.parse(text)))) == repr(O.parse(text))
