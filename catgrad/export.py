"""``catgrad export``: a trained model as a ``torch.export`` program and safetensors weights.

    catgrad export FILE.cat --model NAME --checkpoint CKPT -o model.pt2 [--weights W.safetensors]

The program has a dynamic batch dimension: ``torch.export.load("model.pt2").module()``
runs it on any batch size in a script that never imports catgrad. The weights file
(``model.safetensors`` beside the program unless ``--weights`` says otherwise) holds
the parameters under their catgrad names, for torch, JAX or any safetensors reader.
Nothing is written unless the checkpoint belongs to the model.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .errors import CatgradError, did_you_mean


def checkpoint_params(path, model) -> dict:
    """The parameter values of ``model`` saved in the checkpoint at ``path``, after
    checking that the checkpoint was written for a model with these parameters."""
    from .train import checkpoint as ckpt

    flat, meta = ckpt.load(path)
    saved = (meta.get("signature") or {}).get("params")
    want = {p.name: str(p.type) for p in model.params}
    if not isinstance(saved, dict) or saved != want:
        diff = [] if not isinstance(saved, dict) else [
            f"{k}: checkpoint has {saved.get(k, 'nothing')}, the model has {want.get(k, 'nothing')}"
            for k in sorted(set(saved) | set(want)) if saved.get(k) != want.get(k)]
        raise ckpt.CheckpointError(f"{path}: this checkpoint belongs to a different model"
                                   + (f" ({'; '.join(diff[:4])})" if diff else ""))
    params = {}
    for p in model.params:
        a = flat.get(f"param/{p.name}")
        if a is None or tuple(a.shape) != tuple(p.type.shape):
            raise ckpt.CheckpointError(f"{path}: parameter {p.name} is missing or has the wrong shape")
        params[p.name] = np.asarray(a)
    return params


def example_inputs(model, batch: int = 2):
    """Zeros of the model's input types, symbolic dimensions set to ``batch``."""
    import torch

    return tuple(torch.zeros(tuple(batch if isinstance(d, str) else d for d in t.shape), dtype=t.dtype.torch())
                 for t in model.dom)


def run(args) -> int:
    from .compiler.torch_export import export_program, program_bytes, safetensors_bytes, to_torch
    from .files import atomic_write
    from .frontend.module import load

    module = load(args.file)
    if args.model not in module:
        names = module.names()
        raise CatgradError(f"{args.file}: no model named {args.model!r}{did_you_mean(args.model, names)}")
    model = module[args.model]
    from .calculus.para import as_para

    model = as_para(model)
    if not args.output.endswith(".pt2"):
        raise CatgradError(f"-o {args.output}: a torch.export program is written to a .pt2 file")
    weights = args.weights or os.path.splitext(args.output)[0] + ".safetensors"
    for out in (args.output, weights):
        if os.path.abspath(out) in (os.path.abspath(args.file), os.path.abspath(args.checkpoint)):
            raise CatgradError(f"{out}: refusing to overwrite an input of this run")
    params = checkpoint_params(args.checkpoint, model)
    torch_module = to_torch(model, params, name=args.model)
    dynamic = all(t.rank and isinstance(t.shape[0], str) for t in model.dom)
    exported = export_program(torch_module, example_inputs(model), dynamic_batch=dynamic)
    program = program_bytes(exported)
    tensors = safetensors_bytes(params, {"model": args.model, "source": os.path.basename(args.file)})
    atomic_write(args.output, lambda fh: fh.write(program), what="the exported program")
    atomic_write(weights, lambda fh: fh.write(tensors), what="the weights")
    print(f"wrote {args.output} ({'dynamic' if dynamic else 'fixed'} batch) and {weights}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a trained model as a torch.export program and safetensors",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("file", metavar="FILE.cat", help="the .cat file holding the model")
    p.add_argument("--model", required=True, help="name of the model (a definition in FILE.cat)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint written by catgrad train")
    p.add_argument("-o", "--output", required=True, metavar="PATH.pt2", help="where to write the program")
    p.add_argument("--weights", default=None, metavar="PATH", help="the safetensors file (default: beside -o)")
    p.set_defaults(run=run)


__all__ = ["register", "run", "checkpoint_params", "example_inputs"]
