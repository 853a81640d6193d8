"""catgrad: a compositional learning language built on typed string diagrams.

>>> import catgrad as cg, numpy as np
>>> f = cg.ops.sin(cg.f64[2]) >> cg.ops.exp(cg.f64[2])
>>> x = np.array([0.0, 1.0])
>>> np.allclose(cg.evaluate(f, x)[0], np.exp(np.sin(x)))
True
"""

from . import errors, init, ops
from . import loss, optim, schedule
from .step import TrainState
from .compiler import Step, compile
from .calculus import poly
from .calculus.learner import Learn, Learner, learner
from .calculus.lens import Lens, lens
from .calculus.para import Para, Param, ParaLens
from .calculus.stateful import Stateful, keyed
from .calculus.rdc import D, R
from .calculus.hvp import gnvp, grad, hvp, jvp, vjp
from .core.diagram import Builder, Diagram, Graph, Wire, build, copy, discard, id, permute, swap, trace, wiring
from .core.evaluate import evaluate
from .core.types import DTYPES, DType, Ob, TensorType, bf16, bit, f32, f64, i64
from .errors import AttributeValueError, CatgradError, CatgradTypeError, ShapeError, UnknownOpError
from .frontend.module import load, loads  # the .cat language front end
from . import data, train  # run layer: datasets, the training loop, checkpoints
from .train import fit
from .train.predict import Trained, load_checkpoint

__version__ = "0.1.0"


def to_torch(model, state, device="cpu", name: str = "model"):
    """``model`` with the parameters of ``state`` as a ``torch.nn.Module`` (see
    :func:`catgrad.compiler.torch_export.to_torch`); imports torch on first use."""
    from .compiler.torch_export import to_torch as _to_torch

    return _to_torch(model, state, device=device, name=name)


def _repr_svg_(self):
    """Jupyter shows a diagram (or a Para) as its drawing; None (the text repr) without Graphviz."""
    from .draw import svg

    return svg(self)


Diagram._repr_svg_ = Para._repr_svg_ = _repr_svg_  # the drawing lives in the run layer, above core

__all__ = [
    "AttributeValueError", "Builder", "CatgradError", "Step", "TrainState", "compile", "loss", "optim", "schedule", "CatgradTypeError", "D", "DTYPES", "DType", "Diagram", "Graph", "Lens", "Ob",
    "Para", "ParaLens", "Param", "R", "ShapeError", "TensorType", "UnknownOpError", "Wire", "bit", "build",
    "bf16", "copy", "discard", "errors", "evaluate", "f32", "f64", "i64", "id", "init", "lens", "ops", "permute",
    "swap", "trace", "wiring",
]
__all__ += ["Learn", "Learner", "learner", "poly", "Stateful", "keyed"]
__all__ += ["grad", "gnvp", "hvp", "jvp", "vjp"]
__all__ += ["load", "loads"]
__all__ += ["data", "fit", "train", "Trained", "load_checkpoint", "to_torch"]
