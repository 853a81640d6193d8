"""Every optimizer torch.optim also has, against torch.optim in float64: the WHOLE result
after some steps -- the parameters and every optimizer state entry (moments, step
counters, hyperparameters) -- to 1e-12 relative, for the defaults and, by hypothesis,
for other hyperparameters. Both sides are fed identical gradients.

Each catgrad state key ``"<param>/<stage>.<field>"`` is mapped to a torch state entry
or to a hyperparameter of the param group; a key with no mapping fails the test, so a
slot added, dropped or renamed is caught too."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import catgrad as cg
from optim_util import Driver, assert_close as _close, problem, step_with_torch

T = torch.optim

#: state field -> (torch state name, sign) per stage kind
STATE = {
    "adam": {"m": ("exp_avg", 1), "v": ("exp_avg_sq", 1), "t": ("step", 1), "vmax": ("max_exp_avg_sq", 1)},
    "nadam": {"m": ("exp_avg", 1), "v": ("exp_avg_sq", 1), "t": ("step", 1), "mu_product": ("mu_product", 1)},
    "radam": {"m": ("exp_avg", 1), "v": ("exp_avg_sq", 1), "t": ("step", 1)},
    "adamax": {"m": ("exp_avg", 1), "n": ("exp_inf", 1), "t": ("step", 1)},
    "adadelta": {"v": ("square_avg", 1), "acc": ("acc_delta", 1)},
    "adagrad": {"sum": ("sum", 1), "t": ("step", 1)},
    "rmsprop": {"v": ("square_avg", 1), "avg": ("grad_avg", 1), "buf": ("momentum_buffer", 1)},
    # catgrad keeps the downhill velocity: s = -torch's momentum_buffer
    # (torch's SGD keeps no step count; catgrad's dampening needs one: "#steps" is the count)
    "momentum": {"s": ("momentum_buffer", -1), "t": ("#steps", 1)},
    "adafactor": {"row": ("row_var", 1), "col": ("col_var", 1), "v": ("variance", 1), "t": ("step", 1)},
    "sgd": {},
    "weight_decay": {},
}
STATE["adamw"] = STATE["adam"]

#: hyperparameter field -> (param-group entry, index or None) per stage kind
HYPER = {
    "adam": {"lr": ("lr", None), "b1": ("betas", 0), "b2": ("betas", 1), "eps": ("eps", None)},
    "adamw": {"lr": ("lr", None), "b1": ("betas", 0), "b2": ("betas", 1), "eps": ("eps", None),
              "weight_decay": ("weight_decay", None)},
    "nadam": {"lr": ("lr", None), "b1": ("betas", 0), "b2": ("betas", 1), "eps": ("eps", None),
              "momentum_decay": ("momentum_decay", None)},
    "adagrad": {"lr": ("lr", None), "eps": ("eps", None), "lr_decay": ("lr_decay", None)},
    "rmsprop": {"lr": ("lr", None), "alpha": ("alpha", None), "eps": ("eps", None), "momentum": ("momentum", None)},
    "adadelta": {"lr": ("lr", None), "rho": ("rho", None), "eps": ("eps", None)},
    "momentum": {"lr": ("lr", None), "gamma": ("momentum", None), "dampening": ("dampening", None)},
    "sgd": {"lr": ("lr", None)},
    "adafactor": {"lr": ("lr", None), "decay": ("beta2_decay", None), "eps1": ("eps", 0), "eps2": ("eps", 1),
                  "d": ("d", None), "weight_decay": ("weight_decay", None)},
    "weight_decay": {"rate": ("weight_decay", None)},
}
HYPER["radam"] = HYPER["adamax"] = HYPER["adam"]


def _group_value(group, name, index):
    v = group[name]
    if index is not None:
        v = v[index]
    if v is None:  # Adafactor's eps1: the dtype's machine epsilon
        v = float(np.finfo(np.float64).eps)
    return float(v)


def compare(ours, theirs, steps=20, seed=0, schedule=None, torch_lambda=None, shapes=((3, 4), (4,), ())):
    """Run ``steps`` updates on both, on parameters of ``shapes``; compare parameters and every state entry."""
    torch.set_default_dtype(torch.float64)  # torch's step counters and mu_product follow it
    try:
        params, loss = problem(seed, shapes)
        drv = Driver(ours, params)
        tp = [torch.tensor(v, requires_grad=True) for v in params.values()]
        topt = theirs(tp)
        sched = T.lr_scheduler.LambdaLR(topt, torch_lambda) if torch_lambda else None
        step_with_torch(drv, tp, topt, loss, list(params), steps, sched)
    finally:
        torch.set_default_dtype(torch.float32)
    group = topt.param_groups[0]
    for k, t in zip(params, tp):
        _close(drv.params[k], t.detach().numpy(), f"parameter {k}")
        assert not np.allclose(drv.params[k], params[k], rtol=0, atol=1e-6), f"{k} did not move"
    for key, value in drv.state.items():
        name, field = key.split("/", 1)
        tensor = tp[list(params).index(name)]
        kind, _, rest = field.partition(".")
        kind = kind.rsplit("_", 1)[0] if kind.rsplit("_", 1)[-1].isdigit() else kind
        if rest in STATE[kind]:
            tname, sign = STATE[kind][rest]
            if tname == "#steps":
                assert np.asarray(value).shape == () and float(value) == steps, f"{key} = {value}"
                continue
            assert tname in topt.state[tensor], f"{key}: torch keeps no {tname}"
            _close(value, sign * topt.state[tensor][tname].detach().numpy(), key)
        elif schedule is not None and rest.startswith("lr."):
            sub = rest[3:]
            expect = steps if sub == "t" else schedule.state_values()[sub]
            assert np.asarray(value).shape == () and float(value) == expect, f"{key} = {value}, expected {expect}"
        else:
            assert rest in HYPER[kind], f"{key}: not mapped to torch"
            gname, index = HYPER[kind][rest]
            assert np.asarray(value).shape == (), key
            assert float(value) == _group_value(group, gname, index), f"{key} = {value}, torch {group[gname]}"
    return drv


def COS(peak):
    return cg.schedule.cosine(peak, 60)


def cos_lambda(t):
    return 0.5 * (1 + np.cos(np.pi * min(1.0, t / 60)))


# -- the defaults: catgrad's default hyperparameters are torch's -----------------------------

DEFAULTS = [
    ("sgd", lambda: cg.optim.sgd(), lambda p: T.SGD(p, lr=0.01)),  # torch's SGD lr default is 1e-3
    ("adam", lambda: cg.optim.adam(), lambda p: T.Adam(p)),
    ("adamw", lambda: cg.optim.adamw(), lambda p: T.AdamW(p)),
    ("amsgrad", lambda: cg.optim.amsgrad(), lambda p: T.Adam(p, amsgrad=True)),
    ("nadam", lambda: cg.optim.nadam(), lambda p: T.NAdam(p)),
    ("radam", lambda: cg.optim.radam(), lambda p: T.RAdam(p)),
    ("adamax", lambda: cg.optim.adamax(), lambda p: T.Adamax(p)),
    ("adadelta", lambda: cg.optim.adadelta(), lambda p: T.Adadelta(p)),
    ("adagrad", lambda: cg.optim.adagrad(), lambda p: T.Adagrad(p)),
    ("rmsprop", lambda: cg.optim.rmsprop(), lambda p: T.RMSprop(p)),
    ("adafactor", lambda: cg.optim.adafactor(), lambda p: T.Adafactor(p)),
    ("momentum", lambda: cg.optim.momentum(), lambda p: T.SGD(p, lr=0.01, momentum=0.9)),
]


@pytest.mark.parametrize("name,ours,theirs", DEFAULTS, ids=[c[0] for c in DEFAULTS])
def test_defaults_equal_torch_whole_state(name, ours, theirs):
    compare(ours(), theirs, seed=len(name))


# -- options, including the ones with their own state --------------------------------------

OPTIONS = [
    ("sgd-wd", lambda: cg.optim.sgd(0.05, weight_decay=0.1), lambda p: T.SGD(p, lr=0.05, weight_decay=0.1)),
    ("momentum-dampening", lambda: cg.optim.sgd(0.02, momentum=0.9, dampening=0.3),
     lambda p: T.SGD(p, lr=0.02, momentum=0.9, dampening=0.3)),
    ("momentum-lens-dampening", lambda: cg.optim.momentum(0.02, 0.8, dampening=0.3),
     lambda p: T.SGD(p, lr=0.02, momentum=0.8, dampening=0.3)),
    ("nesterov", lambda: cg.optim.sgd(0.02, momentum=0.9, nesterov=True, weight_decay=0.05),
     lambda p: T.SGD(p, lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("adagrad-options", lambda: cg.optim.adagrad(0.1, eps=1e-3, lr_decay=0.01, weight_decay=0.05,
                                                 initial_accumulator_value=0.1),
     lambda p: T.Adagrad(p, lr=0.1, eps=1e-3, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1)),
    ("rmsprop-centered-momentum", lambda: cg.optim.rmsprop(0.01, alpha=0.9, eps=1e-3, momentum=0.5, centered=True,
                                                           weight_decay=0.01),
     lambda p: T.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-3, momentum=0.5, centered=True, weight_decay=0.01)),
    ("rmsprop-centered", lambda: cg.optim.rmsprop(0.01, centered=True), lambda p: T.RMSprop(p, lr=0.01, centered=True)),
    ("rmsprop-momentum", lambda: cg.optim.rmsprop(0.01, momentum=0.7), lambda p: T.RMSprop(p, lr=0.01, momentum=0.7)),
    ("adamw-amsgrad", lambda: cg.optim.adamw(0.01, b1=0.8, b2=0.99, eps=1e-3, weight_decay=0.2, amsgrad=True),
     lambda p: T.AdamW(p, lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.2, amsgrad=True)),
    ("amsgrad-wd", lambda: cg.optim.amsgrad(0.01, b1=0.7, b2=0.95, eps=1e-4, weight_decay=0.1),
     lambda p: T.Adam(p, lr=0.01, betas=(0.7, 0.95), eps=1e-4, weight_decay=0.1, amsgrad=True)),
    ("nadam-options", lambda: cg.optim.nadam(0.01, b1=0.8, b2=0.99, eps=1e-3, weight_decay=0.1, momentum_decay=0.01),
     lambda p: T.NAdam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1, momentum_decay=0.01)),
    ("radam-options", lambda: cg.optim.radam(0.01, b1=0.8, b2=0.99, eps=1e-3, weight_decay=0.1),
     lambda p: T.RAdam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1)),
    ("adamax-options", lambda: cg.optim.adamax(0.01, b1=0.8, b2=0.99, eps=1e-3, weight_decay=0.1),
     lambda p: T.Adamax(p, lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1)),
    ("adadelta-options", lambda: cg.optim.adadelta(0.5, rho=0.8, eps=1e-3, weight_decay=0.1),
     lambda p: T.Adadelta(p, lr=0.5, rho=0.8, eps=1e-3, weight_decay=0.1)),
    ("adafactor-options", lambda: cg.optim.adafactor(0.05, decay=-0.6, eps1=1e-4, eps2=1e-2, d=2.0, weight_decay=0.1),
     lambda p: T.Adafactor(p, lr=0.05, beta2_decay=-0.6, eps=(1e-4, 1e-2), d=2.0, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,ours,theirs", OPTIONS, ids=[c[0] for c in OPTIONS])
def test_options_equal_torch_whole_state(name, ours, theirs):
    compare(ours(), theirs, seed=len(name))


SCHEDULED = [
    ("adam-cosine", lambda: cg.optim.adam(lr=COS(0.02)), lambda p: T.Adam(p, lr=0.02)),
    ("adamw-cosine", lambda: cg.optim.adamw(lr=COS(0.02), weight_decay=0.1), lambda p: T.AdamW(p, lr=0.02, weight_decay=0.1)),
    ("sgd-cosine", lambda: cg.optim.sgd(lr=COS(0.05)), lambda p: T.SGD(p, lr=0.05)),
    ("nesterov-cosine", lambda: cg.optim.sgd(lr=COS(0.02), momentum=0.9, nesterov=True),
     lambda p: T.SGD(p, lr=0.02, momentum=0.9, nesterov=True)),
    ("adagrad-cosine", lambda: cg.optim.adagrad(lr=COS(0.1)), lambda p: T.Adagrad(p, lr=0.1)),
    ("rmsprop-cosine", lambda: cg.optim.rmsprop(lr=COS(0.01)), lambda p: T.RMSprop(p, lr=0.01)),
]


@pytest.mark.parametrize("name,ours,theirs", SCHEDULED, ids=[c[0] for c in SCHEDULED])
def test_scheduled_lr_equals_torch_lambda_lr_whole_state(name, ours, theirs):
    ours = ours()
    lr = next(st for st in ours.resolve([(0, "p")])[0] if "lr" in getattr(st, "schedules", {})).schedules["lr"]
    compare(ours, theirs, seed=len(name), schedule=lr, torch_lambda=cos_lambda)


# -- hypothesis over hyperparameters -------------------------------------------------------

unit = st.floats(0.5, 0.99)
small = st.floats(1e-4, 1e-1)
lrs = st.floats(1e-3, 5e-2)


@settings(max_examples=4, deadline=None)
@given(lr=lrs, b1=unit, b2=st.floats(0.9, 0.9999), eps=small, wd=st.floats(0.0, 0.2), which=st.sampled_from(
    ["adam", "adamw", "amsgrad", "nadam", "radam", "adamax"]))
def test_adam_family_over_hyperparameters(lr, b1, b2, eps, wd, which):
    ours = getattr(cg.optim, which)(lr, b1=b1, b2=b2, eps=eps, weight_decay=wd)
    cls = {"adam": T.Adam, "adamw": T.AdamW, "amsgrad": T.Adam, "nadam": T.NAdam, "radam": T.RAdam,
           "adamax": T.Adamax}[which]
    extra = {"amsgrad": True} if which == "amsgrad" else {}
    compare(ours, lambda p: cls(p, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, **extra))


@settings(max_examples=4, deadline=None)
@given(lr=lrs, mu=unit, damp=st.floats(0.0, 0.5), wd=st.floats(0.0, 0.2), nest=st.booleans())
def test_sgd_over_hyperparameters(lr, mu, damp, wd, nest):
    damp = 0.0 if nest else damp
    ours = cg.optim.sgd(lr, momentum=mu, nesterov=nest, dampening=damp, weight_decay=wd)
    compare(ours, lambda p: T.SGD(p, lr=lr, momentum=mu, nesterov=nest, dampening=damp, weight_decay=wd))


@settings(max_examples=4, deadline=None)
@given(lr=lrs, alpha=unit, eps=small, mu=st.floats(0.0, 0.9), centered=st.booleans(), wd=st.floats(0.0, 0.2))
def test_rmsprop_over_hyperparameters(lr, alpha, eps, mu, centered, wd):
    ours = cg.optim.rmsprop(lr, alpha=alpha, eps=eps, momentum=mu, centered=centered, weight_decay=wd)
    compare(ours, lambda p: T.RMSprop(p, lr=lr, alpha=alpha, eps=eps, momentum=mu, centered=centered, weight_decay=wd))


@settings(max_examples=4, deadline=None)
@given(lr=st.floats(1e-2, 0.5), eps=small, decay=st.floats(0.0, 0.1), init=st.floats(0.0, 1.0), wd=st.floats(0.0, 0.2))
def test_adagrad_over_hyperparameters(lr, eps, decay, init, wd):
    ours = cg.optim.adagrad(lr, eps=eps, lr_decay=decay, weight_decay=wd, initial_accumulator_value=init)
    compare(ours, lambda p: T.Adagrad(p, lr=lr, eps=eps, lr_decay=decay, weight_decay=wd,
                                      initial_accumulator_value=init))


@settings(max_examples=4, deadline=None)
@given(lr=st.floats(1e-2, 0.2), decay=st.floats(-0.9, -0.5), eps2=small, d=st.floats(1.0, 3.0), wd=st.floats(0.0, 0.2))
def test_adafactor_over_hyperparameters(lr, decay, eps2, d, wd):
    ours = cg.optim.adafactor(lr, decay=decay, eps2=eps2, d=d, weight_decay=wd)
    compare(ours, lambda p: T.Adafactor(p, lr=lr, beta2_decay=decay, eps=(None, eps2), d=d, weight_decay=wd))
