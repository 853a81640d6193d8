"""Export to plain PyTorch: ``cg.to_torch`` and ``catgrad export``.

The module equals catgrad's prediction, its gradients under torch.autograd equal
catgrad's R, it trains further with torch.optim exactly as catgrad's own step does,
and the exported program runs on any batch size in a process that never imports
catgrad; the weights are readable as safetensors.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import catgrad as cg

IRIS = "examples/iris.cat"


def _trained(name="mlp", steps=20, dtype="f64"):
    model = cg.load(IRIS)[name]
    step = cg.compile(model, loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)", dtype=dtype)
    state = step.init(0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = rng.standard_normal((8, 4))
        state, _ = step(state, x, np.eye(3)[rng.integers(0, 3, 8)])
    return step, state


def test_module_is_the_model_with_catgrad_parameter_names():
    step, state = _trained()
    module = cg.to_torch(step.model, state)
    assert isinstance(module, torch.nn.Module)
    assert list(module.state_dict()) == list(step.param_names)
    for n in step.param_names:
        np.testing.assert_array_equal(module.state_dict()[n].numpy(), state.params[n])
    x = np.random.default_rng(1).standard_normal((5, 4))
    np.testing.assert_allclose(module(torch.as_tensor(x)).detach().numpy(), step.predict(state, x), rtol=1e-13)


def test_autograd_of_the_module_equals_catgrads_R():
    step, state = _trained()
    module = cg.to_torch(step.model, state)
    rng = np.random.default_rng(2)
    x, v = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    xt = torch.as_tensor(x).requires_grad_(True)
    (module(xt) * torch.as_tensor(v)).sum().backward()
    ours = cg.evaluate(cg.R(step.model.body), *[state.params[n] for n in step.param_names], x, v)
    for n, g in zip(step.param_names, ours):
        np.testing.assert_allclose(module.get_parameter(n).grad.numpy(), g, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xt.grad.numpy(), ours[-1], rtol=1e-12, atol=1e-14)


def test_it_trains_further_with_torch_optim_as_catgrads_step_would():
    model = cg.load(IRIS)["mlp"]
    step = cg.compile(model, loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer="sgd(lr=0.1)", dtype="f64")
    state = step.init(0)
    module = cg.to_torch(step.model, state)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    rng = np.random.default_rng(3)
    for _ in range(5):
        x, c = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
        state, _ = step(state, x, np.eye(3)[c])
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(torch.as_tensor(x)), torch.as_tensor(c)).backward()
        opt.step()
    for n in step.param_names:
        np.testing.assert_allclose(module.get_parameter(n).detach().numpy(), state.params[n], rtol=1e-12, atol=1e-14)


def test_bad_parameter_values_are_refused():
    step, state = _trained()
    with pytest.raises(cg.CatgradError, match="no values for the parameters dense_2.b"):
        cg.to_torch(step.model, {k: v for k, v in state.params.items() if k != "dense_2.b"})
    bad = dict(state.params, **{"dense.W": np.zeros((3, 3))})
    with pytest.raises(cg.CatgradError, match=r"dense.W of model is f64\[4, 16\], but the value has shape \(3, 3\)"):
        cg.to_torch(step.model, bad)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "catgrad", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    r = _cli("train", f"{__import__('os').getcwd()}/{IRIS}", "--model", "mlp", "--data", "iris", "--optimizer",
             "adam(lr=1e-2)", "--epochs", "5", "--checkpoint", d / "ck.npz", "--quiet", cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "ck.npz"


def test_export_runs_without_catgrad_on_any_batch_size(checkpoint, tmp_path):
    import os

    src = os.path.abspath(IRIS)
    r = _cli("export", src, "--model", "mlp", "--checkpoint", checkpoint, "-o", tmp_path / "m.pt2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.pt2").is_file() and (tmp_path / "m.safetensors").is_file()
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((b, 4)).astype(np.float32) for b in (1, 7, 64)]
    np.save(tmp_path / "x.npy", np.concatenate(xs))
    script = (
        "import sys, numpy as np, torch\n"
        "m = torch.export.load('m.pt2').module()\n"
        "x = np.load('x.npy'); outs = [m(torch.as_tensor(x[a:b])).detach().numpy() for a, b in ((0, 1), (1, 8), (8, 72))]\n"
        "np.save('y.npy', np.concatenate(outs))\n"
        "from safetensors.numpy import load_file\n"
        "w = load_file('m.safetensors'); np.savez('w.npz', **w)\n"
        "assert 'catgrad' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    flat, _ = cg.train.checkpoint.load(checkpoint)
    model = cg.load(IRIS)["mlp"]
    params = [flat[f"param/{n}"] for n in model.names]
    want = cg.evaluate(model.body, *params, np.concatenate(xs))[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)
    with np.load(tmp_path / "w.npz") as w:
        assert sorted(w.files) == sorted(model.names)
        for n, p in zip(model.names, params):
            np.testing.assert_array_equal(w[n], p)


def test_export_refuses_a_checkpoint_of_another_model(checkpoint, tmp_path):
    import os

    r = _cli("export", os.path.abspath("examples/digits.cat"), "--model", "mlp", "--checkpoint", checkpoint,
             "-o", tmp_path / "m.pt2", cwd=tmp_path)
    assert r.returncode == 1 and "belongs to a different model" in r.stderr and "dense.W" in r.stderr
    assert "Traceback" not in r.stderr and list(tmp_path.iterdir()) == []


def test_export_replaces_only_its_own_outputs(checkpoint, tmp_path):
    import os

    src = os.path.abspath(IRIS)
    notes = tmp_path / "m.safetensors"
    notes.write_text("my notes\n")
    r = _cli("export", src, "--model", "mlp", "--checkpoint", checkpoint, "-o", tmp_path / "m.pt2", cwd=tmp_path)
    assert r.returncode == 1 and "was not written by catgrad" in r.stderr and notes.read_text() == "my notes\n"
    assert not (tmp_path / "m.pt2").exists()
    notes.unlink()
    for _ in range(2):  # an earlier export is ours to replace
        r = _cli("export", src, "--model", "mlp", "--checkpoint", checkpoint, "-o", tmp_path / "m.pt2", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = _cli("export", src, "--model", "mlp", "--checkpoint", checkpoint, "-o", tmp_path / "m.pt2",
             "--weights", checkpoint, cwd=tmp_path)
    assert r.returncode == 1 and "an input of this run" in r.stderr
