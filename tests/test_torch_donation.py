"""The donated torch step (``donate=True``, and :func:`catgrad.train.fit`, which uses it
on the torch backend): the same numbers as the functional step, bit for bit, with the
state updated in place; nothing the caller holds is overwritten; and the torch
program's check of its inputs, skipped only for the tensors it returned itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad import data
from catgrad.errors import ShapeError
from catgrad.train import NonFiniteLossError, fit


def _digits_mlp():
    return cg.load("examples/digits.cat")["mlp"]


def _batches(steps, seed=0, batch=16):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield rng.standard_normal((batch, 64)), np.eye(10)[rng.integers(0, 10, batch)]


def _assert_same_state(a, b):
    """Every parameter and optimizer-state tensor equal bit for bit, and the step count."""
    assert a.params.keys() == b.params.keys() and a.opt_state.keys() == b.opt_state.keys()
    for d1, d2 in ((a.params, b.params), (a.opt_state, b.opt_state)):
        for k in d1:
            x, y = torch.as_tensor(d1[k]), torch.as_tensor(d2[k])
            assert x.dtype == y.dtype and torch.equal(x, y), k
    assert a.step == b.step


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("optimizer", ["adam(lr=1e-2)", "adamw(lr=1e-3, weight_decay=0.01)", "momentum(lr=0.05, gamma=0.9)"])
def test_the_donated_step_equals_the_functional_step_bit_for_bit(dtype, optimizer):
    """Six steps of the digits MLP: the donated step (fused Adam in place) and the
    functional one give identical parameters, moments, step counts and losses; the
    donated one writes into the tensors it was given."""
    kw = dict(loss="softmax_cross_entropy", optimizer=optimizer, backend="torch", dtype=dtype)
    plain = cg.compile(_digits_mlp(), **kw)
    donated = plain.donating()
    assert donated.donates and donated is plain.donating() and donated.donating() is donated
    s1, s2 = plain.init(0), donated.init(0)
    for x, y in _batches(6):
        before = dict(s2.params)
        s1, o1 = plain(s1, x, y)
        s2, o2 = donated(s2, x, y)
        assert o1.loss == o2.loss and torch.equal(o1.pred, o2.pred)
        if optimizer.startswith("adam("):  # the fused kernel updates in place (adamw is not fused)
            assert all(s2.params[k] is before[k] for k in before)
        _assert_same_state(s1, s2)


def test_fit_on_torch_donates_and_trains_exactly_as_the_functional_step():
    """fit on the torch backend runs the donated step by default; its result equals
    fit(..., donate=False) bit for bit, and the state the caller passed in is left as it was."""
    train, _ = data.prepare("digits", test_fraction=0.2, seed=0)
    train = train.subset(np.arange(200))
    step = cg.compile(_digits_mlp(), loss="softmax_cross_entropy", optimizer="adam(lr=1e-3)", backend="torch")
    mine = step.init(3)
    kept = {k: v.clone() for k, v in {**mine.params, **mine.opt_state}.items()}
    a = fit(step, train, epochs=2, batch_size=32, seed=0, state=mine)
    assert "_donating" in step.__dict__  # the donated twin was made and used
    b = fit(step, train, epochs=2, batch_size=32, seed=0, state=mine, donate=False)
    _assert_same_state(a.state, b.state)
    assert a.history == b.history and a.train_accuracy == b.train_accuracy
    for k, v in {**mine.params, **mine.opt_state}.items():  # the caller's state is untouched
        assert torch.equal(v, kept[k]), k


def test_fit_with_patience_returns_a_best_state_later_steps_did_not_overwrite():
    """Early stopping keeps the best epoch's state: with donation that is a copy, equal
    bit for bit to the functional run's best state."""
    train, val = data.prepare("digits", test_fraction=0.3, seed=1)
    train = train.subset(np.arange(300))
    step = cg.compile(_digits_mlp(), loss="softmax_cross_entropy", optimizer="adam(lr=0.3)", backend="torch")
    runs = [fit(step, train, epochs=8, batch_size=32, validation=val, patience=2, monitor="train_loss", donate=d)
            for d in (True, False)]
    assert runs[0].best_epoch == runs[1].best_epoch
    _assert_same_state(runs[0].state, runs[1].state)


def test_a_non_finite_loss_under_donation_says_the_state_was_updated_in_place():
    train, _ = data.prepare("iris", test_fraction=0.2, seed=0)
    step = cg.compile(cg.load("examples/iris.cat")["mlp"], loss="mse", optimizer="adam(lr=1e30)",
                      backend="torch", dtype="f32")  # float32 overflows after a step or two
    with pytest.raises(NonFiniteLossError, match="updated in place") as e:
        fit(step, train, epochs=3, batch_size=8, donate=True)
    assert e.value.state is None and e.value.step >= 2
    with pytest.raises(NonFiniteLossError) as e2:
        fit(step, train, epochs=3, batch_size=8, donate=False)
    assert e2.value.step == e.value.step and e2.value.state.step == e.value.step - 1


def test_donate_true_on_a_step_that_cannot_donate_is_an_error():
    class Wrapped:  # a step wrapped by the caller: the loop cannot swap in a donating twin
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, a):
            return getattr(self.inner, a)

        def __call__(self, *a):
            return self.inner(*a)

    train, _ = data.prepare("iris", test_fraction=0.2, seed=0)
    step = cg.compile(cg.load("examples/iris.cat")["mlp"], loss="mse", backend="torch")
    with pytest.raises(cg.CatgradError, match="cannot update its state in place"):
        fit(Wrapped(step), train, epochs=1, donate=True)
    assert fit(Wrapped(step), train, epochs=1).steps > 0  # by default it runs the step as given


def test_the_program_checks_every_input_it_did_not_return_itself():
    """Tensors the last call returned are passed back unchecked; anything else (a
    replaced parameter of the wrong shape or dtype, a numpy array) is checked or converted."""
    step = cg.compile(_digits_mlp(), loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", backend="torch",
                      dtype="f64")
    (x, y), = _batches(1)
    s, _ = step(step.init(0), x, y)
    s2, _ = step(s, x, y)  # the fast path
    name = step.param_names[0]
    bad = dict(s2.params, **{name: torch.zeros(3, 3, dtype=torch.float64)})
    with pytest.raises(ShapeError, match="input 0"):
        step(cg.TrainState(bad, s2.opt_state, s2.step), x, y)
    s3, _ = step(cg.TrainState(dict(s2.params), dict(s2.opt_state), s2.step), x, y)  # same tensors, new dicts
    f32 = {k: v.float() for k, v in s3.params.items()}  # the wrong dtype: converted, as on a first call
    s4, _ = step(cg.TrainState(f32, s3.opt_state, s3.step), x, y)
    ref = cg.compile(_digits_mlp(), loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", backend="torch",
                     dtype="f64")
    r = cg.TrainState({k: v.double() for k, v in f32.items()}, {k: v.clone() for k, v in s3.opt_state.items()}, 3)
    r, _ = ref(r, x, y)
    _assert_same_state(s4, r)
    assert all(v.dtype == torch.float64 for v in s4.params.values())


def test_a_torch_compiled_step_has_nothing_to_donate():
    """Under torch_compile the fused kernels are off, so the donating step is the step
    itself (no second program, no second torch.compile) and fit steps it as it is."""
    step = cg.compile(cg.load("examples/iris.cat")["mlp"], loss="mse", optimizer="adam(lr=1e-2)", backend="torch",
                      torch_compile=True)
    assert step.donating() is step and not step.donates
    assert cg.compile(cg.load("examples/iris.cat")["mlp"], loss="mse", backend="numpy").donating().donates
