"""A trained model as plain PyTorch: an ``nn.Module``, a ``torch.export`` program,
and safetensors weights.

:func:`to_torch` lowers the model's body through the one pipeline and the torch
rule table (the same GraphModule the torch backend runs) and wraps it in a module
whose parameters are the trained values under their catgrad names: ``dense.W``
becomes the parameter ``W`` of the submodule ``dense``, so ``state_dict()`` keys are
exactly catgrad's names. The module is ordinary torch: autograd differentiates it,
``torch.optim`` trains it further, ``torch.export`` captures it.

:func:`export_program` writes a ``torch.export`` program whose leading (batch)
dimension is dynamic; ``torch.export.load(path).module()`` runs it in a script that
never imports catgrad. :func:`save_safetensors` writes the parameters so torch and
JAX users can read a catgrad checkpoint.
"""

from __future__ import annotations

import io
import re

import numpy as np
import torch

from ..calculus.para import as_para
from ..errors import CatgradError
from .pipeline import prepare
from .torch_backend import graph_module


class CatgradModule(torch.nn.Module):
    """A catgrad model as a ``torch.nn.Module``: ``forward(*inputs)`` is the model."""

    def __init__(self, model, params: dict, device="cpu", name: str = "model"):
        super().__init__()
        model = as_para(model)
        missing = [n for n in model.names if n not in params]
        if missing:
            raise CatgradError(f"no values for the parameters {', '.join(missing)} of {name}")
        for p in model.params:
            v = np.asarray(params[p.name]) if not isinstance(params[p.name], torch.Tensor) else params[p.name]
            if tuple(v.shape) != _concrete(p.type.shape, p.name):
                raise CatgradError(f"parameter {p.name} of {name} is {p.type}, but the value has shape {tuple(v.shape)}")
        gm = graph_module(prepare(model.body), [*model.names, *[f"input{k}" for k in range(len(model.dom))]],
                          class_name=re.sub(r"\W", "_", name.title()) or "Model")
        for b in list(gm._buffers):  # constants belong to the program, not to the state_dict
            gm._non_persistent_buffers_set.add(b)
        self.program = gm
        self._names = list(model.names)
        self._single = len(model.cod) == 1
        for p in model.params:
            value = torch.as_tensor(np.asarray(params[p.name]) if not isinstance(params[p.name], torch.Tensor)
                                    else params[p.name]).to(p.type.dtype.torch())
            *path, leaf = p.name.split(".")
            owner = self
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, torch.nn.Module())
                owner = getattr(owner, part)
            owner.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=p.type.dtype.is_float))
        self.to(device)

    def forward(self, *inputs):
        params = [self.get_parameter(n) for n in self._names]
        out = self.program(*params, *inputs)
        return out[0] if self._single else tuple(out)


def _concrete(shape, what):
    if any(isinstance(d, str) for d in shape):
        raise CatgradError(f"parameter {what} has a symbolic shape {shape}; export needs fixed parameter shapes")
    return tuple(shape)


def to_torch(model, state, device="cpu", name: str = "model") -> CatgradModule:
    """``model`` (a Para, e.g. ``cg.load(...)["mlp"]``) with the parameters of
    ``state`` (a :class:`~catgrad.step.TrainState` or a ``{name: array}`` dict) as a
    ``torch.nn.Module``."""
    params = getattr(state, "params", state)
    if not isinstance(params, dict):
        raise CatgradError(f"to_torch needs a TrainState or a dict of parameter values, got {type(state).__name__}")
    return CatgradModule(model, params, device=device, name=name)


def export_program(module: CatgradModule, example_inputs: tuple, dynamic_batch: bool = True):
    """``torch.export`` of ``module`` at ``example_inputs``, the leading dimension of each
    input dynamic (one ``batch`` dimension shared by all) when ``dynamic_batch``."""
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1)
        # forward(*inputs): the dynamic shapes of the one varargs argument, per input
        dynamic = (tuple({0: batch} if x.dim() else None for x in example_inputs),)
    try:
        return torch.export.export(module, tuple(example_inputs), dynamic_shapes=dynamic)
    except Exception as e:  # torch's own errors: say what could not be exported
        raise CatgradError(f"torch.export could not capture the model: {type(e).__name__}: {str(e).splitlines()[0]}") from None


#: The extra file catgrad puts in the programs it exports, so it knows them again.
MARK = "catgrad_export"


def program_bytes(exported, note: str = "") -> bytes:
    """The bytes of ``torch.export.save(exported)``, marked as written by catgrad."""
    buf = io.BytesIO()
    torch.export.save(exported, buf, extra_files={MARK: note or "written by catgrad export"})
    return buf.getvalue()


def safetensors_bytes(params: dict, metadata: dict | None = None) -> bytes:
    """The parameters (``{name: array}``) as a safetensors file's bytes."""
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in params.items()}
    meta = {"writer": "catgrad", **{k: str(v) for k, v in (metadata or {}).items()}}
    return save(arrays, metadata=meta)


__all__ = ["MARK", "CatgradModule", "to_torch", "export_program", "program_bytes", "safetensors_bytes"]
