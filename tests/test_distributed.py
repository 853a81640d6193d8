"""Data-parallel training on torch.distributed: 2 gloo processes on localhost, each fed
half of every global batch, end with the parameters (and losses) of 1 process fed the
whole batch (float64, 20 steps, <= 1e-10 relative), for a mean-reduced loss with
momentum and a summed loss with global-norm clipping and Adam."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import catgrad as cg
from catgrad.train import checkpoint as ckpt

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import dp_worker  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(out: Path, world=2, timeout=240, check=True, **extra_env):
    env = {**extra_env, **os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(world),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(HERE / "dp_worker.py"), str(out)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(world)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0].decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if check:
        for p, log in zip(procs, logs):
            assert p.returncode == 0, log[-3000:]
    return procs, logs


def test_a_rank_that_dies_stops_the_others(tmp_path):
    """Rank 1 exits mid-run: rank 0 fails within the timeout instead of waiting forever."""
    t0 = time.monotonic()
    procs, logs = run_ranks(tmp_path / "dead.npz", timeout=120, check=False, DP_DIE_AT="3", DP_TIMEOUT="20")
    assert procs[1].returncode == 3
    assert procs[0].returncode != 0 and "Error" in logs[0], logs[0][-2000:]
    assert time.monotonic() - t0 < 100
    assert not (tmp_path / "dead.npz").exists()


def test_two_gloo_processes_equal_one_process(tmp_path):
    out = tmp_path / "dp.npz"
    run_ranks(out)
    got = np.load(out)
    for name in dp_worker.CASES:
        params, losses = dp_worker.train(name)  # one process, the whole batch
        for k, v in params.items():
            np.testing.assert_allclose(got[f"{name}/{k}"], v, rtol=1e-10, atol=1e-12, err_msg=f"{name}: {k}")
        np.testing.assert_allclose(got[f"{name}/#loss"], losses, rtol=1e-10, err_msg=f"{name}: losses")
        init = cg.compile(dp_worker.mlp(), loss="mse").init(seed=1).params
        assert max(np.max(np.abs(v - init[k])) for k, v in params.items()) > 1e-2  # training moved them


def test_all_reduce_of_wires_of_several_dtypes_and_ranks(tmp_path):
    """The collective on wires of f64 and f32 and of ranks 0 to 3, in two processes: each
    output is the mean of the two ranks' inputs with its own dtype and shape, whether the
    kernel is called, the op is evaluated or it runs inside a compiled graph."""
    out = tmp_path / "coll.npz"
    run_ranks(out, DP_COLLECTIVES="1")
    got = np.load(out)
    want = [(a.numpy() + b.numpy()) / 2 for a, b in zip(dp_worker.collective_inputs(0), dp_worker.collective_inputs(1))]
    for how in ("kernel", "evaluate", "graph"):
        assert sorted(k for k in got.files if k.startswith(how + "/")) == [f"{how}/{i}" for i in range(len(want))]
        for i, w in enumerate(want):
            g = got[f"{how}/{i}"]
            assert g.dtype == w.dtype and g.shape == w.shape, (how, i)
            np.testing.assert_array_equal(g, w, err_msg=f"{how}/{i}")


def test_distributed_needs_a_process_group_and_the_torch_backend():
    with pytest.raises(cg.CatgradError, match="init_process_group.*torchrun"):
        cg.compile(dp_worker.mlp(), loss="mse", backend="torch", distributed=True)
    with pytest.raises(cg.CatgradError, match="torch backend"):
        cg.compile(dp_worker.mlp(), loss="mse", distributed=True)


def test_all_reduce_is_its_own_reverse_derivative():
    f = cg.ops.all_reduce(cg.f64[3])
    rf = cg.R(f)
    assert "%2: f64[3] = all_reduce(%1)" in str(rf) and str(rf).count("=") == 1  # R[all_reduce](x, d) = all_reduce(d)
    x, d = np.arange(3.0), np.array([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(cg.evaluate(f, x)[0], x)  # one process: the identity
    np.testing.assert_array_equal(cg.evaluate(rf, x, d)[0], d)


# -- the command line under torchrun --------------------------------------------------------

IRIS = str(HERE.parent / "examples" / "iris.cat")
TRAIN = ["-m", "catgrad", "train", IRIS, "--model", "mlp", "--data", "iris", "--batch", "16", "--quiet", "--json",
         "--optimizer", "clip_norm(1.0) >> adam(lr=0.01)", "--distributed"]


def torchrun(nproc: int, *extra, timeout=240):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", *TRAIN, *extra]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, r.stdout  # rank 0 alone prints
    return json.loads(lines[0])


def test_torchrun_two_processes_equal_one_and_resume(tmp_path):
    one = torchrun(1, "--epochs", "3", "--checkpoint", str(tmp_path / "one.npz"))
    two = torchrun(2, "--epochs", "3", "--checkpoint", str(tmp_path / "two.npz"))
    for k in ("train_loss", "train_accuracy", "test_accuracy"):
        assert two[k] == pytest.approx(one[k], rel=1e-5), k
    a, b = ckpt.load(tmp_path / "one.npz")[0], ckpt.load(tmp_path / "two.npz")[0]
    for k in a:
        if k.startswith("param/"):
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6)  # f32 model
    # stop after 1 epoch, resume under torchrun to 3: the same as 3 straight
    torchrun(2, "--epochs", "1", "--checkpoint", str(tmp_path / "part.npz"))
    torchrun(2, "--epochs", "3", "--checkpoint", str(tmp_path / "part.npz"), "--resume", str(tmp_path / "part.npz"))
    c = ckpt.load(tmp_path / "part.npz")[0]
    for k in b:
        if k.startswith(("param/", "opt/")):
            np.testing.assert_array_equal(c[k], b[k])


def test_torchrun_a_killed_rank_stops_the_run_and_keeps_the_checkpoint(tmp_path):
    ck = tmp_path / "ck.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", *TRAIN, "--epochs", "100000", "--checkpoint", str(ck),
           "--checkpoint-every", "2", "--dist-timeout", "20"]
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ck.exists() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        assert ck.exists(), "no checkpoint was written"
        workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(run.pid)], capture_output=True, text=True)
        pids = [int(p) for p in workers.stdout.split()]
        assert len(pids) == 2, workers.stdout
        os.kill(pids[1], 9)
        _, err = run.communicate(timeout=120)  # the others stop: no hang
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0, err[-2000:]
    from catgrad.train import checkpoint

    flat, meta = checkpoint.load(ck)  # intact: a complete file, not a torn one
    assert any(k.startswith("param/") for k in flat) and meta["position"]["epoch"] >= 0


def test_cli_distributed_bad_input(tmp_path):
    base = [sys.executable, *TRAIN]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    r = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "torchrun --nproc_per_node=N -m catgrad train" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    env.update(RANK="0", WORLD_SIZE="3", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    r = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)  # 16 rows per batch, 3 processes
    assert r.returncode == 1 and "--batch 16 does not divide by the 3 processes" in r.stderr, r.stderr


def test_multi_output_all_reduce_in_a_compiled_torch_step():
    """The torch backend schedules readers of every output of a multi-output op after it
    (regression: only the first output had a depth, so later ones were read too early)."""
    plain = cg.compile(dp_worker.mlp(), loss="mse")
    from catgrad.compiler.torch_backend import compile_torch
    from catgrad.step import lr_put, step_diagram

    model = dp_worker.mlp()
    loss = cg.loss.mse(model.cod[0])
    opt = cg.optim.sgd(0.01).lens(model.params)
    d = step_diagram(model, loss, opt, lr_put(None, loss.cod), world_size=2)  # all_reduce of 5 wires
    run = compile_torch(d)
    state = plain.init(0)
    x, y = np.ones((3, 4)), np.zeros((3, 3))
    got = run(*state.params.values(), *state.opt_state.values(), x, y)
    want = cg.evaluate(d, *state.params.values(), *state.opt_state.values(), x, y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-14)
