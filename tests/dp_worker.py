"""One process of the data-parallel test (tests/test_distributed.py starts two of these).

Usage: ``python dp_worker.py OUT.npz`` with torch.distributed's environment (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Trains each case of ``CASES`` for ``STEPS``
steps on this rank's shard of every global batch; rank 0 writes the parameters. With
``DP_COLLECTIVES`` set it instead reduces the wires of :func:`collective_inputs` and writes
the means.
"""

import datetime
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import catgrad as cg  # noqa: E402
from catgrad.step import to_host  # noqa: E402
from test_step import mlp  # noqa: E402

STEPS, BATCH = 20, 16
CASES = {  # name: (loss, optimizer)
    "mlp": (cg.loss.softmax_cross_entropy(reduction="mean"), "momentum(lr=0.5, gamma=0.9)"),
    "clip": (cg.loss.softmax_cross_entropy, "clip_norm(0.5) >> adam(lr=0.05)"),
}


def batches():
    rng = np.random.default_rng(7)
    for _ in range(STEPS):
        yield rng.normal(size=(BATCH, 4)), np.eye(3)[rng.integers(0, 3, BATCH)]


def train(name, rank=0, world=1, distributed=False):
    loss, opt = CASES[name]
    step = cg.compile(mlp(), loss=loss, optimizer=opt, backend="torch", distributed=distributed)
    state = step.init(seed=1)
    share = BATCH // world
    losses = []
    die_at = int(os.environ.get("DP_DIE_AT", -1)) if rank == 1 else -1  # the failure test kills rank 1 here
    for i, (x, y) in enumerate(batches()):
        if i == die_at:
            os._exit(3)
        state, out = step(state, x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share])
        losses.append(out.loss)
    return {k: to_host(v) for k, v in state.params.items()}, np.array(losses)


def collective_inputs(rank):
    """Wires of three dtypes and ranks 0 to 3 (their means over ranks are tested)."""
    import torch

    return [torch.arange(12, dtype=torch.float64).reshape(3, 4) * (rank + 1),
            torch.tensor([rank, 2 * rank + 1], dtype=torch.float32),
            torch.tensor(rank + 0.5, dtype=torch.float64),
            torch.arange(4, dtype=torch.float32).reshape(2, 1, 2) - 3 * rank,
            torch.full((3, 2), 7.0 * rank, dtype=torch.float64)]


def collectives(rank):
    """``all_reduce`` of mixed wires: the kernel, the op evaluated, and the op in a compiled graph."""
    from catgrad.compiler.torch_backend import compile_torch
    from catgrad.ops.collective import all_reduce_mean_torch

    xs = collective_inputs(rank)
    types = [cg.f64[3, 4], cg.f32[2], cg.f64[()], cg.f32[2, 1, 2], cg.f64["B", 2]]
    f = cg.ops.all_reduce(*types)
    runs = {"kernel": all_reduce_mean_torch(*xs), "evaluate": cg.evaluate(f, *xs, backend="torch"),
            "graph": compile_torch(f)(*xs)}
    for x in xs:  # the outputs are new tensors: changing the inputs afterwards leaves them be
        x.add_(1000.0)
    return {f"{how}/{i}": o.numpy() for how, outs in runs.items() for i, o in enumerate(outs)}


def main(out):
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=int(os.environ.get("DP_TIMEOUT", 60))))
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {}
    if os.environ.get("DP_COLLECTIVES"):  # tests/test_distributed.py's check of the collective itself
        result = collectives(rank)
        dist.barrier()
    else:
        for name in CASES:
            params, losses = train(name, rank, world, distributed=True)
            result.update({f"{name}/{k}": v for k, v in params.items()})
            result[f"{name}/#loss"] = losses
    if rank == 0:
        np.savez(out, **result)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
