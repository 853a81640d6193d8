"""Benchmark: data-parallel training throughput (samples per second) on torch.distributed.

The digits MLP of examples/digits.cat (64-32-32-10, relu, f32), adam, a global batch of
256 split over N processes (gloo on CPU; with ``--nccl``, NCCL on CUDA devices), the
step compiled once by ``cg.compile(..., backend="torch", distributed=True)``. Each process
runs ``--warmup`` untimed steps, then ``--steps`` timed ones; rank 0 reports
``steps * batch / seconds``. The peer, measured in the same run, is one process with the
ordinary (not distributed) torch step on the whole batch.

Run:  python benchmarks/bench_distributed.py [--procs 1 2] [--steps 200] [--batch 256]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_step(distributed: bool, device: str):
    import catgrad as cg

    model = cg.load(str(ROOT / "examples" / "digits.cat"))["mlp"]
    loss = cg.loss.softmax_cross_entropy(reduction="mean")
    return cg.compile(model, loss=loss, optimizer="adam(lr=1e-3)", backend="torch", distributed=distributed,
                      device=device)


def run(distributed: bool, steps: int, warmup: int, batch: int, device: str = "cpu") -> float:
    """Samples per second of this process's share of the run."""
    import torch

    rank, world = 0, 1
    if distributed:
        import torch.distributed as dist

        rank, world = dist.get_rank(), dist.get_world_size()
    step = make_step(distributed, device)
    state = step.init(seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 64)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    share = batch // world
    xs = torch.as_tensor(x[rank * share:(rank + 1) * share], device=device)
    ys = torch.as_tensor(y[rank * share:(rank + 1) * share], device=device)
    for _ in range(warmup):
        state, _ = step(state, xs, ys)
    if distributed:
        dist.barrier()
    if device != "cpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        state, out = step(state, xs, ys)
    float(out.loss)  # waits for the device
    return steps * batch / (time.perf_counter() - t0)


def worker(args) -> None:
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", 0))
    device = f"cuda:{local}" if args.nccl else "cpu"
    if args.nccl:
        import torch

        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if args.nccl else "gloo", timeout=datetime.timedelta(seconds=120))
    rate = run(True, args.steps, args.warmup, args.batch, device)
    if dist.get_rank() == 0:
        print(json.dumps({"procs": dist.get_world_size(), "samples_per_s": rate}))
    dist.destroy_process_group()


def launch(n: int, args) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--master_addr=127.0.0.1",
           f"--master_port={port}", __file__, "--worker", "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch", str(args.batch)] + (["--nccl"] if args.nccl else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(args.threads)}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])["samples_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    ap.add_argument("--nccl", action="store_true", help="NCCL on CUDA devices instead of gloo on CPU")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    import torch

    torch.set_num_threads(args.threads)
    peer = run(False, args.steps, args.warmup, args.batch, "cuda" if args.nccl else "cpu")
    print(f"| processes | backend | samples/s | vs 1 process, not distributed |")
    print("|---|---|---|---|")
    print(f"| 1 (plain step) | {'cuda' if args.nccl else 'cpu'} | {peer:,.0f} | 1.00 |")
    for n in args.procs:
        rate = launch(n, args)
        print(f"| {n} | {'nccl' if args.nccl else 'gloo'} | {rate:,.0f} | {rate / peer:.2f} |")


if __name__ == "__main__":
    main()
