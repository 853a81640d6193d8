"""DoG and L-DoG (Ivgi et al. 2023) against a numpy transcription of the paper's update,
on gradients of a random quadratic, comparing parameters and the whole state."""

import numpy as np
import pytest

import catgrad as cg
from test_hypergradient import SHAPES, Runner, close, quadratic


def transcription(ps, grad, steps, layerwise, reps_rel=1e-6, eps=1e-8):
    x0 = [p.copy() for p in ps]
    xs = [p.copy() for p in ps]
    groups = [[i] for i in range(len(ps))] if layerwise else [list(range(len(ps)))]
    rbar = {tuple(g): 0.0 for g in groups}
    G = {tuple(g): 0.0 for g in groups}
    history = []
    for _ in range(steps):
        g = grad(xs)
        new = list(xs)
        for grp in map(tuple, groups):
            dist = np.sqrt(sum(np.sum((xs[i] - x0[i]) ** 2) for i in grp))
            floor = reps_rel * (1 + np.sqrt(sum(np.sum(x0[i] ** 2) for i in grp)))
            rbar[grp] = max(rbar[grp], dist, floor)
            G[grp] += sum(np.sum(g[i] ** 2) for i in grp)
            eta = rbar[grp] / np.sqrt(G[grp] + eps)
            for i in grp:
                new[i] = xs[i] - eta * g[i]
        xs = new
        history.append(([x.copy() for x in xs], dict(rbar), dict(G)))
    return history, groups


@pytest.mark.parametrize("layerwise", [False, True])
def test_dog_matches_transcription(layerwise):
    grad = quadratic(5)
    ps = [np.random.default_rng(6).standard_normal(s) for s in SHAPES]
    kind = "ldog" if layerwise else "dog"
    run = Runner(cg.optim.ldog() if layerwise else cg.optim.dog(), ps)
    history, groups = transcription(ps, grad, 30, layerwise)
    for xs, rbar, G in history:
        run.step(grad(run.ps))
        for grp in map(tuple, groups):
            for i in grp:
                close(run.ps[i], xs[i])
                close(run.state[f"p{i}/{kind}.rbar"], rbar[grp])
                close(run.state[f"p{i}/{kind}.G"], G[grp])
                close(run.state[f"p{i}/{kind}.x0"], ps[i])
    # the step size grew from the tiny initial rbar: DoG is moving
    assert np.linalg.norm(run.ps[0] - ps[0]) > 1e-3  # grew far past the initial 1e-6 scale


def test_dog_and_ldog_differ_with_two_tensors():
    grad = quadratic(5)
    ps = [np.random.default_rng(6).standard_normal(s) for s in SHAPES]
    a, b = Runner(cg.optim.dog(), ps), Runner(cg.optim.ldog(), ps)
    for _ in range(4):
        a.step(grad(a.ps))
        b.step(grad(b.ps))
    assert np.max(np.abs(a.ps[0] - b.ps[0])) > 1e-8
