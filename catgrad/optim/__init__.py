"""Optimizers as lenses ``(S x P, S x P) -> (P, P')``, composed with ``>>`` and ``@``.

>>> import catgrad as cg
>>> opt = cg.optim.clip_norm(1.0) >> cg.optim.sgd(lr=0.1)
>>> opt.lens([("W", cg.f64[2, 2])]).keys
['W/clip_norm.max_norm', 'W/clip_norm.eps', 'W/sgd.lr']
"""

from .base import Assign, Chain, Optimizer, OptimizerLens, Stage, Tensor, assign, identity
from .sgd import gradient_update, momentum, nesterov, sgd
from .transforms import clip_norm, clip_value, scale, scale_by_schedule, weight_decay
from .parse import OptimizerSyntaxError, parse

NAMES = [
    "sgd", "momentum", "nesterov", "gradient_update", "identity",
    "clip_norm", "clip_value", "weight_decay", "scale", "scale_by_schedule",
]
