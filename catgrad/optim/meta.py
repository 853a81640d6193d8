"""Unrolled meta-gradients: k training steps composed into one diagram.

The step is a diagram ``(params, opt_state, x, y) -> (params', opt_state', loss, pred)``
and every hyperparameter is an opt_state wire, so composing k steps and ending with the
loss on held-out data gives

    U_k : (params_0, opt_state_0, x_1, y_1, ..., x_k, y_k, x_val, y_val) -> loss(params_k)

a scalar-valued diagram like any other. Its gradient ``cg.grad(U_k)`` holds, block by
block, the meta-gradients with respect to the initial weights and to every
hyperparameter (learning rate, betas, ...) through all k updates, second-order terms
included (R of a step contains R of R of the model).
"""

from __future__ import annotations

from ..errors import CatgradError
from .base import Optimizer


def resolve_step_parts(who: str, model, loss, optimizer: Optimizer, lr_lens=None):
    """``(model Para, loss Para, optimizer lens, learning-rate put)`` for a step built
    outside :func:`catgrad.compile` (``who`` names the caller in errors)."""
    from .. import loss as losses
    from ..calculus.para import as_para
    from ..step import lr_put

    if not isinstance(optimizer, Optimizer):
        raise CatgradError(f"{who}: optimizer must be a cg.optim optimizer, got {optimizer!r}")
    model = as_para(model)
    loss_para = losses.resolve(loss, model.cod[0])
    return model, loss_para, optimizer.lens(model.params), lr_put(lr_lens, loss_para.cod)


def unrolled(model, loss, optimizer: Optimizer, k: int, lr_lens=None):
    """``(U_k, optimizer lens)``: k composed steps followed by the loss at the final
    parameters (see the module docstring). Inputs: the parameters, the optimizer state in
    ``lens.keys`` order, then ``x_1, y_1, ..., x_k, y_k``, then ``x_val, y_val``."""
    from ..calculus.para import ParaLens
    from ..core.diagram import build
    from ..core.types import Ob
    from ..step import step_diagram

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise CatgradError(f"unrolled: k must be a positive number of steps, got {k!r}")
    model, loss_para, opt, lr = resolve_step_parts("unrolled", model, loss, optimizer, lr_lens)
    step = step_diagram(model, loss_para, opt, lr)
    final = ParaLens.of(model) >> ParaLens.of(loss_para)  # get: (label, params, x) -> loss
    n, m = len(model.P), len(opt.S)
    data = model.dom @ model.cod

    def body(b, ins):
        ps, ss = ins[:n], ins[n : n + m]
        rest = ins[n + m :]
        for i in range(k):
            out = b.call(step, ps + ss + rest[2 * i : 2 * i + 2])
            ps, ss = out[:n], out[n : n + m]
        x_val, y_val = rest[2 * k :]
        return b.call(final.get, [y_val] + ps + [x_val])

    dom = model.P @ opt.S @ Ob(*(list(data) * (k + 1)))
    return build(dom, body), opt


__all__ = ["unrolled"]
