"""Every optimizer torch.optim also has equals it (float64, 100 steps, <= 1e-6) on a
random smooth problem, fed identical gradients."""

import zlib

import numpy as np
import pytest
import torch

import catgrad as cg
from optim_util import Driver, problem, step_with_torch

T = torch.optim


def COS(peak):
    return cg.schedule.cosine(peak, 60)

CASES = [
    ("sgd", lambda: cg.optim.sgd(0.05), lambda p: T.SGD(p, lr=0.05)),
    ("sgd-wd", lambda: cg.optim.sgd(0.05, weight_decay=0.1), lambda p: T.SGD(p, lr=0.05, weight_decay=0.1)),
    ("momentum", lambda: cg.optim.sgd(0.02, momentum=0.9), lambda p: T.SGD(p, lr=0.02, momentum=0.9)),
    ("momentum-lens", lambda: cg.optim.momentum(0.02, 0.9), lambda p: T.SGD(p, lr=0.02, momentum=0.9)),
    ("momentum-dampening", lambda: cg.optim.sgd(0.02, momentum=0.9, dampening=0.3),
     lambda p: T.SGD(p, lr=0.02, momentum=0.9, dampening=0.3)),
    ("nesterov", lambda: cg.optim.sgd(0.02, momentum=0.9, nesterov=True),
     lambda p: T.SGD(p, lr=0.02, momentum=0.9, nesterov=True)),
    ("adagrad", lambda: cg.optim.adagrad(0.1), lambda p: T.Adagrad(p, lr=0.1)),
    ("adagrad-options", lambda: cg.optim.adagrad(0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1),
     lambda p: T.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1)),
    ("rmsprop", lambda: cg.optim.rmsprop(0.01), lambda p: T.RMSprop(p, lr=0.01)),
    ("rmsprop-centered-momentum", lambda: cg.optim.rmsprop(0.01, momentum=0.5, centered=True, weight_decay=0.01),
     lambda p: T.RMSprop(p, lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)),
    ("adam", lambda: cg.optim.adam(0.01), lambda p: T.Adam(p, lr=0.01)),
    ("adam-wd", lambda: cg.optim.adam(0.01, b1=0.8, b2=0.99, weight_decay=0.1),
     lambda p: T.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ("adam-l2-chain", lambda: cg.optim.weight_decay(0.1) >> cg.optim.adam(0.01),
     lambda p: T.Adam(p, lr=0.01, weight_decay=0.1)),
    ("adamw", lambda: cg.optim.adamw(0.01, weight_decay=0.1), lambda p: T.AdamW(p, lr=0.01, weight_decay=0.1)),
    ("amsgrad", lambda: cg.optim.amsgrad(0.01), lambda p: T.Adam(p, lr=0.01, amsgrad=True)),
    ("adamw-amsgrad", lambda: cg.optim.adamw(0.01, amsgrad=True), lambda p: T.AdamW(p, lr=0.01, amsgrad=True)),
    ("nadam", lambda: cg.optim.nadam(0.01), lambda p: T.NAdam(p, lr=0.01)),
    ("nadam-wd", lambda: cg.optim.nadam(0.01, weight_decay=0.1), lambda p: T.NAdam(p, lr=0.01, weight_decay=0.1)),
    ("radam", lambda: cg.optim.radam(0.01), lambda p: T.RAdam(p, lr=0.01)),
    ("adamax", lambda: cg.optim.adamax(0.01), lambda p: T.Adamax(p, lr=0.01)),
    ("adadelta", lambda: cg.optim.adadelta(1.0), lambda p: T.Adadelta(p, lr=1.0)),
    ("adafactor", lambda: cg.optim.adafactor(0.01), lambda p: T.Adafactor(p, lr=0.01)),
    ("adafactor-wd", lambda: cg.optim.adafactor(0.05, weight_decay=0.1, d=2.0),
     lambda p: T.Adafactor(p, lr=0.05, weight_decay=0.1, d=2.0)),
    # "-cosine": lr is cg.schedule.cosine(lr, 60); torch gets the same through LambdaLR below
    ("adam-cosine", lambda: cg.optim.adam(lr=COS(0.02)), lambda p: T.Adam(p, lr=0.02)),
    ("adamw-cosine", lambda: cg.optim.adamw(lr=COS(0.02), weight_decay=0.1),
     lambda p: T.AdamW(p, lr=0.02, weight_decay=0.1)),
    ("sgd-cosine", lambda: cg.optim.sgd(lr=COS(0.05)), lambda p: T.SGD(p, lr=0.05)),
    ("momentum-cosine", lambda: cg.optim.momentum(lr=COS(0.02), gamma=0.9),
     lambda p: T.SGD(p, lr=0.02, momentum=0.9)),
    ("nesterov-cosine", lambda: cg.optim.sgd(lr=COS(0.02), momentum=0.9, nesterov=True),
     lambda p: T.SGD(p, lr=0.02, momentum=0.9, nesterov=True)),
    ("adafactor-cosine", lambda: cg.optim.adafactor(lr=COS(0.05), weight_decay=0.1),
     lambda p: T.Adafactor(p, lr=0.05, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_equals_torch_optim(name, ours, theirs):
    params, loss = problem(seed=zlib.crc32(name.encode()) % 1000)
    drv = Driver(ours(), params)
    tp = [torch.tensor(v, requires_grad=True) for v in params.values()]
    topt = theirs(tp)
    sched = None
    if name.endswith("-cosine"):
        sched = torch.optim.lr_scheduler.LambdaLR(topt, lambda t: 0.5 * (1 + np.cos(np.pi * min(1.0, t / 60))))
    step_with_torch(drv, tp, topt, loss, list(params), 100, sched)
    worst = max(np.max(np.abs(drv.params[k] - t.detach().numpy())) for k, t in zip(params, tp))
    assert worst <= 1e-6, f"{name}: max |ours - torch| = {worst:.3g}"
    moved = max(np.max(np.abs(drv.params[k] - params[k])) for k in params)
    assert moved > 1e-3  # the comparison is not vacuous
