"""Helpers for the optimizer tests: drive an optimizer lens with given gradients."""

import numpy as np

import catgrad as cg
from catgrad.compiler import compile_numpy


class Driver:
    """Runs ``put`` of an optimizer lens on numpy arrays, feeding gradients ``g``
    (the lens receives ``p' = -g``, the downhill direction)."""

    def __init__(self, opt, params: dict, dtype=cg.f64):
        self.names = list(params)
        self.L = opt.lens([(n, dtype[np.shape(v)]) for n, v in params.items()])
        self.params = {k: np.array(v, dtype=dtype.numpy) for k, v in params.items()}
        self.state = self.L.init(list(self.params.values()))
        self.put = compile_numpy(self.L.lens.put)
        self.get = compile_numpy(self.L.lens.get)

    def point(self):
        outs = self.get(*self.params.values(), *self.state.values())
        return dict(zip(self.names, outs))

    def step(self, grads: dict):
        n = len(self.names)
        outs = self.put(*self.params.values(), *self.state.values(), *(-np.asarray(grads[k]) for k in self.names))
        self.params = dict(zip(self.names, outs[:n]))
        self.state = dict(zip(self.L.keys, outs[n:]))
        return self.params


def problem(seed=0, shapes=((3, 4), (4,), ())):
    """Random parameters and a smooth non-quadratic loss on them, as a torch function."""
    import torch

    rng = np.random.default_rng(seed)
    params = {f"p{i}": rng.normal(size=s) for i, s in enumerate(shapes)}
    targets = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
    scales = {k: rng.uniform(0.5, 2.0, size=np.shape(v)) for k, v in params.items()}

    def loss(tp: dict):
        total = 0
        for k, v in tp.items():
            d = v - torch.tensor(targets[k])
            total = total + (torch.tensor(scales[k]) * d * d).sum() + 0.1 * torch.sin(3 * v).sum()
        return total

    return params, loss


def grads_of(loss, params: dict) -> dict:
    import torch

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    loss(tp).backward()
    return {k: v.grad.numpy() for k, v in tp.items()}


def assert_close(ours, ref, what: str, rtol: float = 1e-12):
    """``ours`` equals ``ref`` to ``rtol`` relative to the largest entry of ``ref``, same shape."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(ours - ref), initial=0.0))
    assert err <= rtol * scale, f"{what}: max |ours - reference| = {err:.3g} (scale {scale:.3g})"


def step_with_torch(drv, tensors, topt, loss, names, steps, sched=None):
    """``steps`` updates of a :class:`Driver` and a torch optimizer on ``tensors`` (in ``names``
    order), both fed the gradient of ``loss`` at torch's parameters (and ``sched`` stepped)."""
    import torch

    for _ in range(steps):
        g = grads_of(loss, {k: t.detach().numpy() for k, t in zip(names, tensors)})
        drv.step(g)
        for t, k in zip(tensors, names):
            t.grad = torch.tensor(g[k])
        topt.step()
        if sched is not None:
            sched.step()
