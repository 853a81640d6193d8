"""``catgrad export``: a trained model as a ``torch.export`` program and safetensors weights.

    catgrad export FILE.cat --model NAME --checkpoint CKPT -o model.pt2 [--weights W.safetensors]

The program has a dynamic batch dimension: ``torch.export.load("model.pt2").module()``
runs it on any batch size in a script that never imports catgrad. The weights file
(``model.weights.safetensors`` beside ``model.pt2`` unless ``--weights`` says otherwise) holds
the parameters under their catgrad names, for torch, JAX or any safetensors reader.
Nothing is written unless the checkpoint belongs to the model.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile

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
    saved_hash = (meta.get("model") or {}).get("hash") if isinstance(meta.get("model"), dict) else None
    if saved_hash is not None and saved_hash != ckpt.model_hash(model):
        name = meta["model"].get("name")
        raise ckpt.CheckpointError(f"{path}: this checkpoint belongs to a different model"
                                   + (f" ({name!r}, whose diagram differs from this one)" if name else
                                      " (the same parameters, but another diagram)"))
    params = {}
    for p in model.params:
        a = flat.get(f"param/{p.name}")
        if a is None or tuple(a.shape) != tuple(p.type.shape):
            raise ckpt.CheckpointError(f"{path}: parameter {p.name} is missing or has the wrong shape")
        params[p.name] = np.asarray(a)
    return params


def _our_program(head: bytes, path: str) -> bool:
    """An earlier ``catgrad export`` program (a zip holding our mark)."""
    from .compiler.torch_export import MARK

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.rsplit("/", 1)[-1] == MARK for n in z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _our_weights(head: bytes, path: str) -> bool:
    """A safetensors file whose metadata says catgrad wrote it."""
    try:
        n = int.from_bytes(head[:8], "little")
        meta = json.loads(head[8 : 8 + n]).get("__metadata__", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(meta, dict) and meta.get("writer") == "catgrad"


def example_inputs(model, batch: int = 2):
    """Zeros of the model's input types, symbolic dimensions set to ``batch``."""
    import torch

    return tuple(torch.zeros(tuple(batch if isinstance(d, str) else d for d in t.shape), dtype=t.dtype.torch())
                 for t in model.dom)


def run(args) -> int:
    """``catgrad export``: check the checkpoint against the model, then write the program and the weights."""
    from .compiler.torch_export import export_program, program_bytes, safetensors_bytes, to_torch
    from .files import atomic_write, check_output
    from .frontend.module import load

    if not args.output.endswith(".pt2"):
        raise CatgradError(f"-o {args.output}: a torch.export program is written to a .pt2 file")
    weights = args.weights or os.path.splitext(args.output)[0] + ".weights.safetensors"
    inputs = (args.file, args.checkpoint)
    check_output(args.output, "the exported program", ours=_our_program, force=args.force, protect=inputs)
    check_output(weights, "the weights", ours=_our_weights, force=args.force, protect=inputs)

    module = load(args.file)
    if args.model not in module:
        names = module.names()
        raise CatgradError(f"{args.file}: no model named {args.model!r}{did_you_mean(args.model, names)}")
    model = module[args.model]
    from .calculus.para import as_para

    model = as_para(model)
    params = checkpoint_params(args.checkpoint, model)
    torch_module = to_torch(model, params, name=args.model)
    dynamic = all(t.rank and isinstance(t.shape[0], str) for t in model.dom)
    exported = export_program(torch_module, example_inputs(model), dynamic_batch=dynamic)
    program = program_bytes(exported)
    tensors = safetensors_bytes(params, {"model": args.model, "source": os.path.basename(args.file)})
    atomic_write(args.output, lambda fh: fh.write(program), what="the exported program", ours=_our_program,
                 force=args.force, protect=inputs)
    atomic_write(weights, lambda fh: fh.write(tensors), what="the weights", ours=_our_weights, force=args.force,
                 protect=inputs)
    print(f"wrote {args.output} ({'dynamic' if dynamic else 'fixed'} batch) and {weights}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add ``catgrad export`` to the command line."""
    p = subparsers.add_parser("export", help="write a trained model as a torch.export program and safetensors",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("file", metavar="FILE.cat", help="the .cat file holding the model")
    p.add_argument("--model", required=True, help="name of the model (a definition in FILE.cat)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint written by catgrad train")
    p.add_argument("-o", "--output", required=True, metavar="PATH.pt2", help="where to write the program")
    p.add_argument("--weights", default=None, metavar="PATH", help="the safetensors file (default: NAME.weights.safetensors beside -o NAME.pt2)")
    p.add_argument("--force", action="store_true",
                   help="replace whatever regular files are at the output paths (by default only earlier exports)")
    p.set_defaults(run=run)


__all__ = ["register", "run", "checkpoint_params", "example_inputs"]
