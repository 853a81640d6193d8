"""The catgrad torch backend against hand-written torch, in the same run.

An MLP 64 -> 256 -> ... -> 256 -> 10 (relu), batch 128, softmax cross-entropy averaged
over the batch, Adam (lr 1e-3), float32, the same initial weights everywhere:

  (a) torch eager: an ``nn.Module`` + ``F.cross_entropy`` + ``torch.optim.Adam(foreach=True)``;
  (b) the same hand-written step (forward, backward, optimizer step) under ``torch.compile``;
  (c) the catgrad torch backend as users train with it: ``cg.compile(..., backend="torch")``
      stepped the way ``catgrad.train.fit`` and ``catgrad train`` step it, through
      ``step.donating()`` (the same program compiled with ``donate=True``: the fused Adam
      writes the new parameters and moments into the state's tensors, as ``torch.optim``
      does; the loop owns its state);
  (d) the catgrad torch backend with ``torch_compile=True`` (also stepped as fit steps it;
      there is nothing to donate: inductor does its own fusion and buffer reuse);
  (e) the functional catgrad step, ``new_state, out = step(state, x, y)`` with the state
      passed in left as it was (what a hand-written loop over ``cg.compile``'s step gets).

Prints ms per step and the ratios (c)/(a), (e)/(a) and (d)/(b). ``--memory`` adds each
variant's peak memory, each measured alone in a fresh process: on CUDA
``max_memory_allocated``; on CPU the running total of torch's CPU allocator as the
profiler reports it (``profile_memory=True``: every tensor allocation and free, with the
bytes live after it). Both count the tensors torch allocates (parameters, gradients,
optimizer state, activations, temporaries), not the process's resident set (about 300 MB of
libraries and Python, and malloc's own caching, would swamp a 2 MB difference). The data is
made before counting starts; the peak is the most bytes live at once during the measured
steps (after warm-up), counting everything the variant allocated since it was built.
``--depths 2 4 16 64`` gives the depth scaling (number of hidden layers of width 256; the
digits MLP is depth 2). ``--compile-time`` measures build + R + passes + lowering to a
torch module per layer for L = 8 ... 512 (and, apart, the fx GraphModule traced from it on
demand).

Run: python benchmarks/bench_torch_step.py [--device cuda] [--depths 2 4 16 64] [--no-compile] [--memory]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import catgrad as cg

WIDTH, N_IN, N_OUT, BATCH = 256, 64, 10, 128
CATGRAD = "cde"  # the catgrad variants (they take one-hot labels)


def catgrad_mlp(depth: int) -> cg.Para:
    """depth hidden relu layers of WIDTH, then a dense layer to N_OUT, in float32."""
    dims = [N_IN] + [WIDTH] * depth + [N_OUT]
    layers = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        last = i == len(dims) - 2

        @cg.trace(cg.f32[a, b], cg.f32[b], cg.f32["B", a])
        def body(W, bias, x, last=last, b=b):
            z = x @ W + bias.broadcast("B", b)
            return z if last else cg.ops.relu(z)

        layers.append(cg.Para([cg.Param(f"l{i}.W", cg.f32[a, b], cg.init.glorot()),
                               cg.Param(f"l{i}.b", cg.f32[b], cg.init.zeros())], body))
    model = layers[0]
    for layer in layers[1:]:
        model = model >> layer
    return model


class TorchMLP(torch.nn.Module):
    def __init__(self, values: dict, depth: int):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        dims = [N_IN] + [WIDTH] * depth + [N_OUT]
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            lin = torch.nn.Linear(a, b)
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(values[f"l{i}.W"]).T)
                lin.bias.copy_(torch.as_tensor(values[f"l{i}.b"]))
            self.layers.append(lin)

    def forward(self, x):
        for lin in self.layers[:-1]:
            x = torch.relu(lin(x))
        return self.layers[-1](x)


def make(variant: str, depth: int, device: str):
    """The step function of (x, y) of one variant."""
    model = catgrad_mlp(depth)
    if variant in CATGRAD:
        step = cg.compile(model, loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer="adam(lr=1e-3)",
                          backend="torch", device=device, torch_compile=variant == "d")
        state = step.init(seed=0)
        # tensors of torch's own (init's share numpy's memory, which torch's allocator does not count)
        box = [cg.TrainState({k: v.clone() for k, v in state.params.items()},
                             {k: v.clone() for k, v in state.opt_state.items()}, state.step)]
        call = step if variant == "e" else step.donating()  # (c), (d): as catgrad.train.fit calls it

        def run(x, y):
            box[0], out = call(box[0], x, y)
            return out.loss

        return run
    values = dict(zip(model.names, model.init(0)))  # the same initial values as step.init(seed=0)
    net = TorchMLP(values, depth).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=True)

    def train_step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = torch.compile(train_step) if variant == "b" else train_step

    def run(x, y):
        return float(fn(x, y).detach())

    return run


def data(device, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(BATCH, N_IN, generator=g).to(device) for _ in range(steps)]
    labels = [torch.randint(0, N_OUT, (BATCH,), generator=g).to(device) for _ in range(steps)]
    onehot = [F.one_hot(c, N_OUT).float() for c in labels]
    return xs, labels, onehot


def time_variants(variants, depth, device, steps, rounds, clock=time.perf_counter):
    xs, labels, onehot = data(device, steps)
    runs = {v: make(v, depth, device) for v in variants}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for v, run in runs.items():  # warm up (and compile)
        for i in range(5):
            run(xs[i], onehot[i] if v in CATGRAD else labels[i])
    times = {v: [] for v in variants}
    for _ in range(rounds):  # interleaved, best of rounds: the machine is shared and noisy
        for v, run in runs.items():
            ys = onehot if v in CATGRAD else labels
            sync()
            t = clock()
            for x, y in zip(xs, ys):
                run(x, y)
            sync()
            times[v].append((clock() - t) / steps * 1e3)
    return {v: min(ts) for v, ts in times.items()}, {v: sorted(ts)[len(ts) // 2] for v, ts in times.items()}


def peak_memory(variant, depth, device, steps):
    """Peak memory of one variant (MiB), measured in a fresh process (see the docstring)."""
    import json
    import subprocess
    import sys

    code = (f"import sys; sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r}); "
            f"import torch; torch.set_num_threads(1); import bench_torch_step as b; "
            f"print(b._peak_here({variant!r}, {depth}, {device!r}, {steps}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _peak_here(variant, depth, device, steps, warmup=5):
    """Peak bytes live at once in this process's torch allocator while the variant takes
    ``steps`` steps after ``warmup``, counting from before it is built; in MiB."""
    xs, labels, onehot = data(device, warmup + steps)
    ys = onehot if variant in CATGRAD else labels
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        run = make(variant, depth, device)
        for x, y in zip(xs[:warmup], ys[:warmup]):
            run(x, y)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for x, y in zip(xs[warmup:], ys[warmup:]):
            run(x, y)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run = make(variant, depth, device)
        for x, y in zip(xs[:warmup], ys[:warmup]):
            run(x, y)
        with record_function("measured steps"):
            for x, y in zip(xs[warmup:], ys[warmup:]):
                run(x, y)

    def walk(events):
        for e in events:
            yield e
            yield from walk(e.children)

    events = list(walk(prof.profiler.kineto_results.experimental_event_tree()))
    mem = sorted((e.start_time_ns, e.extra_fields.total_allocated, e.extra_fields.alloc_size)
                 for e in events if e.name == "[memory]")
    window = next(e for e in events if e.name == "measured steps")
    start, end = window.start_time_ns, window.end_time_ns
    base = mem[0][1] - mem[0][2]  # the allocator's total before the first event counted here
    return (max(t for when, t, _ in mem if start <= when <= end) - base) / 2**20


def compile_time(layers=(8, 32, 128, 512)):
    """ms per layer to a runnable step (build, R, passes, the torch module), and the
    extra time of ``step.graph_module`` (the fx GraphModule, traced on first use)."""
    rows = []
    for L in layers:
        t = time.perf_counter()
        model = catgrad_mlp(L)
        step = cg.compile(model, loss=cg.loss.softmax_cross_entropy(reduction="mean"), optimizer="adam(lr=1e-3)",
                          backend="torch")
        dt = time.perf_counter() - t
        t = time.perf_counter()
        step.graph_module
        fx_dt = time.perf_counter() - t
        rows.append((L, dt * 1e3 / (L + 1)))
        print(f"  L={L:4d}: {dt:7.2f} s total, {dt * 1e3 / (L + 1):6.2f} ms per layer; the fx GraphModule on demand: "
              f"+{fx_dt * 1e3 / (L + 1):.2f} ms per layer", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--depths", type=int, nargs="+", default=[2])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true", help="skip (b) and (d), the torch.compile variants")
    ap.add_argument("--memory", action="store_true", help="also measure peak memory per variant")
    ap.add_argument("--compile-time", action="store_true", help="also time build + R + passes + fx lowering")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the process's CPU time (time on a core, not waiting for one: steadier on a "
                         "loaded machine; CPU device, one thread)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    variants = "ace" if args.no_compile else "abcde"
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} thread(s), batch {BATCH}, "
          f"width {WIDTH}, float32, Adam; best of {args.rounds} rounds of {args.steps} steps, "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    clock = time.process_time if args.cpu_time else time.perf_counter
    for depth in args.depths:
        best, med = time_variants(variants, depth, args.device, args.steps, args.rounds, clock)
        line = ", ".join(f"({v}) {best[v]:.3f} ms" for v in variants)
        ratios = lambda t: f"(c)/(a) = {t['c'] / t['a']:.2f}, (e)/(a) = {t['e'] / t['a']:.2f}" + (  # noqa: E731
            f", (d)/(b) = {t['d'] / t['b']:.2f}" if "b" in t else "")
        print(f"depth {depth:3d}: {line}; best: {ratios(best)}; median: {ratios(med)}", flush=True)
        if args.memory:
            mem = {v: peak_memory(v, depth, args.device, args.steps) for v in variants}
            print("           peak memory (MiB): " + ", ".join(f"({v}) {mem[v]:.3f}" for v in variants)
                  + f"; (c)/(a) = {mem['c'] / mem['a']:.2f}, (e)/(a) = {mem['e'] / mem['a']:.2f}", flush=True)
    if args.compile_time:
        print("compile time (build, R, passes, lowering to torch):")
        compile_time()


if __name__ == "__main__":
    main()
