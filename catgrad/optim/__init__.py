"""Optimizers as lenses ``(S x P, S x P) -> (P, P')``, composed with ``>>`` and ``@``.

>>> import catgrad as cg
>>> opt = cg.optim.clip_norm(1.0) >> cg.optim.sgd(lr=0.1)
>>> opt.lens([("W", cg.f64[2, 2])]).keys
['W/clip_norm.max_norm', 'W/clip_norm.eps', 'W/sgd.lr']

See docs/optimizers.md for the guide; each family's module states its update rule.
"""

from .adafactor import adafactor
from .adagrad import adagrad
from .adam import adadelta, adam, adamax, adamw, amsgrad, nadam, radam
from .ademamix import ademamix
from .base import Assign, Chain, Optimizer, OptimizerLens, Stage, Tensor, WholeModelStage, assign, identity
from .cautious import cautious
from .diffgrad import diffgrad
from .dog import dog, ldog
from .hypergradient import hypergradient
from .lion import lion
from .meta import unrolled
from .lookahead import lookahead
from .novograd import novograd
from .parse import OptimizerSyntaxError, parse
from .rmsprop import rmsprop
from .sam import sam, sam_step
from .sgd import gradient_update, momentum, nesterov, sgd
from .transforms import clip_norm, clip_norm_per_tensor, clip_value, scale, scale_by_schedule, weight_decay
from .trust_ratio import lamb, lars

#: the names ``parse`` understands (optimizers and building blocks)
NAMES = [
    "sgd", "momentum", "nesterov", "gradient_update", "identity",
    "adagrad", "rmsprop", "adam", "adamw", "amsgrad", "nadam", "radam", "adamax", "adadelta",
    "lion", "ademamix", "cautious", "lookahead", "hypergradient", "sam", "dog", "ldog", "adafactor", "novograd", "diffgrad", "lamb", "lars",
    "clip_norm", "clip_norm_per_tensor", "clip_value", "weight_decay", "scale", "scale_by_schedule", "assign",
]
NAMES.remove("assign")  # takes a dict: Python only

__all__ = [*NAMES, "assign", "sam_step", "unrolled", "parse", "Optimizer", "OptimizerLens", "Stage", "WholeModelStage", "Chain", "Tensor",
           "Assign", "OptimizerSyntaxError"]
