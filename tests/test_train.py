"""The training loop: batching, seeded shuffling, metrics, bit-identical resume, NaN stop."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from models import dense, mlp

import catgrad as cg
from catgrad import data
from catgrad.errors import ShapeError
from catgrad.train import CheckpointError, NonFiniteLossError, epoch_order, fit
from catgrad.train.loop import accuracy, predict

def make_step(model, loss="mse", lr=0.1, optimizer=None):
    return cg.compile(model, loss=cg.loss.get(loss) if isinstance(loss, str) else loss,
                      optimizer=optimizer or cg.optim.sgd(lr=lr), backend="numpy")


@pytest.fixture(scope="module")
def iris():
    return data.prepare("iris", test_fraction=0.2, seed=0)


class Recorder:
    """Wraps a step and records the rows it is given (by their first feature values)."""

    def __init__(self, step):
        self.inner, self.calls = step, []

    def __getattr__(self, k):
        return getattr(self.inner, k)

    def __call__(self, state, x, y):
        self.calls.append(np.array(x, copy=True))
        return self.inner(state, x, y)


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(5, 2, 50)
    assert sorted(a.tolist()) == list(range(50))
    assert np.array_equal(a, epoch_order(5, 2, 50))
    assert not np.array_equal(a, epoch_order(5, 3, 50)) and not np.array_equal(a, epoch_order(6, 2, 50))


def test_batches_follow_the_documented_order(iris):
    train, _ = iris
    step = Recorder(make_step(dense(4, 3), cg.loss.mse(reduction="mean")))
    res = fit(step, train, epochs=2, batch_size=32, seed=11)
    n = len(train)
    assert res.steps == 2 * math.ceil(n / 32) == len(step.calls)
    x = train.x
    for e in range(2):
        order = epoch_order(11, e, n)
        got = np.concatenate(step.calls[e * 4 : (e + 1) * 4])
        assert np.array_equal(got, x[order])  # each epoch: every row once, in the seeded order
    assert [len(c) for c in step.calls[:4]] == [32, 32, 32, n - 96]


def test_drop_last(iris):
    train, _ = iris
    step = Recorder(make_step(dense(4, 3), cg.loss.mse(reduction="mean")))
    res = fit(step, train, epochs=1, batch_size=50, seed=0, drop_last=True)
    assert res.steps == len(train) // 50 and all(len(c) == 50 for c in step.calls)


def test_training_learns_and_metrics_are_consistent(iris):
    train, test = iris
    # mse averages over the 3 outputs too, so lr 0.15 is the old 1/2-sum-per-row step of 0.1
    step = make_step(dense(4, 3, act=None), cg.loss.mse(reduction="mean"), lr=0.15)
    res = fit(step, train, test=test, epochs=15, batch_size=16, seed=0)
    losses = [h["train_loss"] for h in res.history]
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]
    assert res.train_accuracy > 0.8 and res.test_accuracy > 0.75
    # reported accuracy equals a direct numpy computation from the final parameters
    W, b = res.state.params["W"], res.state.params["b"]
    assert res.test_accuracy == pytest.approx(np.mean(np.argmax(test.x @ W + b, 1) == test.y))
    assert np.allclose(predict(step, res.state, test), test.x @ W + b)
    assert accuracy(step, res.state, test) == res.test_accuracy


def test_same_seed_same_run_bitwise(iris):
    train, _ = iris
    runs = [fit(make_step(mlp([4, 5, 3]), cg.loss.mse(reduction="mean")), train, epochs=2, batch_size=8, seed=s).state for s in (3, 3, 4)]
    for k in runs[0].params:
        assert runs[0].params[k].tobytes() == runs[1].params[k].tobytes()
    assert any(runs[0].params[k].tobytes() != runs[2].params[k].tobytes() for k in runs[0].params)


@pytest.mark.parametrize("stop,opt", [(7, "sgd(lr=0.1)"), (15, "adam(lr=0.01)"), (16, "momentum(lr=0.05)"),
                                      (21, "clip_norm(1.0) >> adam(lr=0.01)")])  # mid-epoch, epoch end, boundary
def test_resume_is_bit_identical(iris, tmp_path, stop, opt):
    train, test = iris
    model = mlp([4, 6, 3])

    def step():
        return make_step(model, cg.loss.mse(reduction="mean"), optimizer=cg.optim.parse(opt))

    straight = fit(step(), train, test=test, epochs=4, batch_size=15, seed=2)
    assert straight.steps == 32
    ck = tmp_path / "run.npz"
    first = fit(step(), train, epochs=4, batch_size=15, seed=2, checkpoint=ck, max_steps=stop)
    assert first.stopped_early and first.steps == stop
    resumed = fit(step(), train, test=test, epochs=4, batch_size=15, seed=2, resume=ck)
    assert resumed.steps == 32
    for k in straight.state.params:
        assert straight.state.params[k].tobytes() == resumed.state.params[k].tobytes()
    assert straight.state.opt_state.keys() == resumed.state.opt_state.keys()
    for k in straight.state.opt_state:
        assert straight.state.opt_state[k].tobytes() == resumed.state.opt_state[k].tobytes()
    # the epochs finished after the resume report exactly the same metrics
    tail = straight.history[len(straight.history) - len(resumed.history):]
    assert tail == resumed.history and resumed.test_accuracy == straight.test_accuracy


def test_resume_checks_model_data_and_seed(iris, tmp_path):
    train, _ = iris
    ck = tmp_path / "c.npz"
    fit(make_step(dense(4, 3), cg.loss.mse(reduction="mean")), train, epochs=1, batch_size=30, seed=0, checkpoint=ck)
    with pytest.raises(CheckpointError, match="different model"):
        fit(make_step(mlp([4, 8, 3]), cg.loss.mse(reduction="mean")), train, epochs=2, batch_size=30, seed=0, resume=ck)
    with pytest.raises(CheckpointError, match="different --seed"):
        fit(make_step(dense(4, 3), cg.loss.mse(reduction="mean")), train, epochs=2, batch_size=30, seed=1, resume=ck)
    with pytest.raises(CheckpointError, match="different batch size"):
        fit(make_step(dense(4, 3), cg.loss.mse(reduction="mean")), train, epochs=2, batch_size=10, seed=0, resume=ck)
    with pytest.raises(CheckpointError, match="different training data"):
        fit(make_step(dense(4, 3), cg.loss.mse(reduction="mean")), train.subset(np.arange(100)), epochs=2, batch_size=30, seed=0, resume=ck)


class NaNAfter:
    def __init__(self, step, k):
        self.inner, self.k = step, k

    def __getattr__(self, a):
        return getattr(self.inner, a)

    def __call__(self, state, x, y):
        new, out = self.inner(state, x, y)
        if new.step >= self.k:
            out = out._replace(loss=float("nan")) if hasattr(out, "_replace") else type(out)(loss=float("nan"), pred=out.pred)
        return new, out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(iris, tmp_path):
    train, _ = iris
    ck = tmp_path / "c.npz"
    step = NaNAfter(make_step(dense(4, 3), cg.loss.mse(reduction="mean")), k=10)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 10 \(epoch 3, batch 2\)") as e:
        fit(step, train, epochs=5, batch_size=30, seed=0, checkpoint=ck, checkpoint_every=3)
    assert e.value.step == 10 and e.value.state.step == 9
    # the file on disk is the last good one (step 9), and nothing else is there
    from catgrad.train.checkpoint import load
    flat, meta = load(ck)
    assert int(flat["step"]) == 9 and meta["position"] == {"epoch": 2, "batch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_diverging_run_stops_at_the_first_non_finite_loss(iris):
    """The functional step (donate=False): the error carries the last good state."""
    train, _ = iris
    step = make_step(dense(4, 3, act=None), "mse", lr=1e200)
    with np.errstate(all="ignore"):
        with pytest.raises(NonFiniteLossError, match=r"loss became (inf|nan) at step (\d+)") as e:
            fit(step, train, epochs=3, batch_size=8, donate=False)
        # replay by hand: the reported step is the first whose loss is not finite
        state, X, Y = step.init(seed=0), train.x, train.targets()
        order = epoch_order(0, 0, len(train))
        for k in range(1, 100):
            rows = order[(k - 1) * 8 : k * 8]
            state2, out = step(state, X[rows], Y[rows])
            if not np.isfinite(out.loss):
                break
            state = state2
    assert e.value.step == k >= 2
    for name, v in e.value.state.params.items():
        assert v.tobytes() == state.params[name].tobytes()


def test_a_diverging_donated_run_stops_at_the_same_step_with_the_last_good_state_on_disk(iris, tmp_path):
    """By default fit updates the numpy state in place: the error names the same step as
    the functional run's, says the state in memory was updated in place (its ``state`` is
    None), and the checkpoint written before that step is the functional run's last good
    state, bit for bit."""
    train, _ = iris
    step = make_step(dense(4, 3, act=None), "mse", lr=1e200)
    ck = tmp_path / "c.npz"
    with np.errstate(all="ignore"):
        with pytest.raises(NonFiniteLossError, match="updated in place") as e:
            fit(step, train, epochs=3, batch_size=8, checkpoint=ck, checkpoint_every=1)
        with pytest.raises(NonFiniteLossError) as want:
            fit(step, train, epochs=3, batch_size=8, donate=False)
    assert "_donating" in step.__dict__ and e.value.state is None
    assert e.value.step == want.value.step >= 2
    from catgrad.train.checkpoint import load

    flat, _ = load(ck)
    assert int(flat["step"]) == want.value.step - 1
    good = want.value.state.flat()
    assert sorted(flat) == sorted(good)
    for k in good:
        assert np.asarray(flat[k]).tobytes() == np.asarray(good[k]).tobytes(), k


def _same_state(a, b):
    assert a.step == b.step and a.params.keys() == b.params.keys() and a.opt_state.keys() == b.opt_state.keys()
    for d1, d2 in ((a.params, b.params), (a.opt_state, b.opt_state)):
        for k in d1:
            assert np.asarray(d1[k]).dtype == np.asarray(d2[k]).dtype
            assert np.asarray(d1[k]).tobytes() == np.asarray(d2[k]).tobytes(), k


def test_fit_on_numpy_donates_and_trains_exactly_as_the_functional_step(iris):
    """fit runs the numpy step compiled with donate=True by default: the same history and
    final state as fit(..., donate=False), bit for bit; the state the caller passes in is
    left as it was; early stopping's best state is a copy later steps did not overwrite."""
    train, val = iris
    step = make_step(mlp([4, 16, 3]), "mse", optimizer="adam(lr=0.05)")
    mine = step.init(3)
    kept = {k: np.array(v) for k, v in {**mine.params, **mine.opt_state}.items()}
    a = fit(step, train, epochs=3, batch_size=16, seed=0, state=mine)
    assert "_donating" in step.__dict__  # the donated twin was made and used
    b = fit(step, train, epochs=3, batch_size=16, seed=0, state=mine, donate=False)
    _same_state(a.state, b.state)
    assert a.history == b.history
    for k, v in {**mine.params, **mine.opt_state}.items():  # the caller's state is untouched
        assert np.asarray(v).tobytes() == kept[k].tobytes(), k
    runs = [fit(step, train, epochs=8, batch_size=16, validation=val, patience=2, monitor="train_loss", donate=d)
            for d in (None, False)]
    assert runs[0].best_epoch == runs[1].best_epoch
    _same_state(runs[0].state, runs[1].state)


def test_shape_mismatches_are_clear(iris):
    train, _ = iris
    with pytest.raises(ShapeError, match="inputs of width 5 .* 4 features"):
        fit(make_step(dense(5, 3), cg.loss.mse(reduction="mean")), train, epochs=1)
    with pytest.raises(ShapeError, match=r"labels do not fit the model: the model outputs f64\[B, 2\] .* 3 classes"):
        fit(make_step(dense(4, 2), cg.loss.mse(reduction="mean")), train, epochs=1)
    with pytest.raises(ShapeError, match="batch size must be 1"):
        fit(make_step(dense(4, 3, batch=None)), train, epochs=1, batch_size=4)


def test_per_example_model(iris):
    train, _ = iris
    step = Recorder(make_step(dense(4, 3, batch=None), "mse", lr=0.05))
    res = fit(step, train.subset(np.arange(0, 120, 4)), epochs=2, batch_size=1, seed=0)
    assert res.steps == 60 and step.calls[0].shape == (4,)


def test_progress_bar_goes_to_stderr(iris, capsys):
    train, _ = iris
    fit(make_step(dense(4, 3), cg.loss.mse(reduction="mean")), train, epochs=1, batch_size=40, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "step" in err


# -- the CFGBL Iris protocol (examples/iris_cfgbl.py), in full: 60k compiled steps each, ~4 s ----------

def _example(name):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", name)
    spec = importlib.util.spec_from_file_location(name[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("hidden,target", [((), 0.96), ((20,), 0.98)])
def test_cfgbl_iris_protocol(hidden, target):
    res = _example("iris_cfgbl.py").run(hidden, epochs=400, init_std=0.01)
    assert res.steps == 150 * 400
    assert res.train_accuracy >= target


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_cfgbl_step_matches_a_numpy_transcription():
    """Three epochs of the protocol, against per-example backprop written out in numpy."""
    ex = _example("iris_cfgbl.py")
    res = ex.run((5,), epochs=3, init_std=0.1, seed=4)
    ds = data.load("iris")
    init = dict(zip(ex.model([4, 5, 3], 0.1).names, ex.model([4, 5, 3], 0.1).init(4)))
    W0, b0, W1, b1 = init["l0.W"], init["l0.b"], init["l1.W"], init["l1.b"]
    Y = ds.targets()
    for e in range(3):
        for i in epoch_order(4, e, 150):
            h = _sigmoid(ds.x[i] @ W0 + b0)
            o = _sigmoid(h @ W1 + b1)
            d1 = (o - Y[i]) * o * (1 - o)
            d0 = (d1 @ W1.T) * h * (1 - h)
            W1, b1 = W1 - 0.01 * np.outer(h, d1), b1 - 0.01 * d1
            W0, b0 = W0 - 0.01 * np.outer(ds.x[i], d0), b0 - 0.01 * d0
    p = res.state.params
    for got, want in ((p["l0.W"], W0), (p["l0.b"], b0), (p["l1.W"], W1), (p["l1.b"], b1)):
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_digits_adam_matches_plain_torch():
    """examples/digits_adam.py in full (30 epochs): >= 97% test accuracy, within 0.5 points of torch."""
    ex = _example("digits_adam.py")
    train, test = data.prepare("digits", test_fraction=0.2, seed=0)
    res, init = ex.run_catgrad(train, test, epochs=30, batch=32, seed=0, lr=1e-3, hidden=64)
    tr, te, tparams = ex.run_torch(train, test, init, epochs=30, batch=32, seed=0, lr=1e-3)
    assert (len(train), len(test)) == (1437, 360)  # ceil(0.2 * 1797) test rows, as scikit-learn counts
    assert res.test_accuracy >= 0.97
    assert abs(res.test_accuracy - te) <= 0.005
    # same init, same batches, float64: the two runs agree far below the accuracy target
    for k, v in tparams.items():
        assert np.allclose(res.state.params[k], v, rtol=1e-8, atol=1e-10), k


_TINY = {}


def _tiny_step():
    if "s" not in _TINY:
        _TINY["s"] = make_step(dense(2, 2, act=None), cg.loss.mse(reduction="mean"), lr=0.01)
    return _TINY["s"]


@settings(max_examples=15)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 2), st.integers(0, 2**31), st.booleans())
def test_every_epoch_visits_every_row_once(n, batch, epochs, seed, drop_last):
    x = np.arange(2 * n, dtype=float).reshape(n, 2)
    ds = data.Dataset("t", x, np.arange(n) % 2, ("a", "b"))
    step = Recorder(_tiny_step())
    per_epoch = n // batch if drop_last else -(-n // batch)
    if per_epoch == 0:
        with pytest.raises(cg.CatgradError, match="fewer than one batch"):
            fit(step, ds, epochs=epochs, batch_size=batch, seed=seed, drop_last=drop_last)
        return
    records = []
    res = fit(step, ds, epochs=epochs, batch_size=batch, seed=seed, drop_last=drop_last, log=records.append)
    assert res.steps == epochs * per_epoch == len(step.calls)
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1)) and records == res.history
    for e in range(epochs):
        seen = np.concatenate(step.calls[e * per_epoch : (e + 1) * per_epoch])[:, 0] // 2
        expect = epoch_order(seed, e, n)[: per_epoch * batch] if drop_last else epoch_order(seed, e, n)
        assert np.array_equal(seen, expect)


def test_digits_cnn_example_is_its_torch_twin_in_float64(capsys):
    """examples/digits_cnn.py: the .cat CNN trained by catgrad and the same CNN written with
    torch.nn.functional + torch.optim.Adam, from the same weights on the same batches, end with
    the same parameters (one epoch, 45 Adam steps, float64)."""
    ex = _example("digits_cnn.py")
    [(res, te_acc, gap)] = ex.main(["--epochs", "1", "--dtype", "f64", "--seeds", "1"])
    assert res.steps == 45 and gap <= 1e-10
    assert res.test_accuracy == te_acc
