"""Schedules as Moore machines, against direct formulas and torch.optim.lr_scheduler."""

import math

import numpy as np
import pytest
import torch

import catgrad as cg

S = cg.schedule


def torch_lrs(make, n, lr=1.0):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sch = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return np.array(out)


def test_constant():
    np.testing.assert_allclose(S.constant(0.3).values(5), [0.3] * 5)


def test_warmup_linear():
    np.testing.assert_allclose(S.warmup_linear(2.0, 4).values(7), [0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0])


def test_cosine_against_formula_and_torch():
    got = S.cosine(0.1, 10, final=0.01).values(15)
    want = [0.01 + 0.09 * (1 + math.cos(math.pi * min(t, 10) / 10)) / 2 for t in range(15)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01), 11, lr=0.1)
    np.testing.assert_allclose(got[:11], ref, rtol=1e-10)
    warm = S.cosine(1.0, 4, warmup_steps=2).values(7)
    np.testing.assert_allclose(warm[:2], [0.5, 1.0])
    np.testing.assert_allclose(warm[2:], [(1 + math.cos(math.pi * k / 4)) / 2 for k in range(5)], atol=1e-15)


def test_step_and_exponential_against_torch():
    np.testing.assert_allclose(S.step(0.5, 3, 0.1).values(10),
                               torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.1), 10, 0.5), rtol=1e-12)
    np.testing.assert_allclose(S.exponential(0.5, 0.9).values(10),
                               torch_lrs(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9), 10, 0.5),
                               rtol=1e-12)


def test_moore_machine_shape_and_hyperparameters_are_state():
    sch = S.cosine(0.1, 10)
    readout, update = sch.moore()
    keys = list(sch.state_values())
    assert keys[0] == "t" and "peak" in keys
    assert readout.dom == update.dom == update.cod and readout.cod == cg.Ob(cg.f64[()])
    # changing the peak is changing the state: the same diagrams
    state = [np.float64(v) for v in sch.state_values().values()]
    state[keys.index("peak")] = np.float64(0.2)
    assert float(cg.evaluate(readout, *state)[0]) == pytest.approx(0.2)


def test_schedule_errors():
    with pytest.raises(cg.CatgradError, match="warmup_steps >= 1"):
        S.warmup_linear(1.0, 0)
    with pytest.raises(cg.CatgradError, match="gamma > 0"):
        S.exponential(1.0, 0.0)
    with pytest.raises(cg.CatgradError, match="finite number"):
        S.constant(float("nan"))
