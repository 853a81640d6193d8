"""Bit models from the shell: ``catgrad compile FILE.cat --model NAME --target verilog|blif|aiger|aag``.

The model is lowered to a gate netlist (:mod:`catgrad.circuit`). Its learnable
parameters come from ``--checkpoint`` and are folded into the gates as constants;
without a checkpoint they stay inputs of the netlist, named after the parameters.
A report of gate counts by type, depth and AIG node count goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from ..errors import CatgradError


def add_options(p) -> None:
    """The options ``catgrad compile`` gains for circuits."""
    from ..circuit.writers import TARGETS

    p.add_argument("--target", choices=TARGETS, default=None,
                   help="lower a bit model to a gate netlist in this format instead (verilog, blif, binary aiger, "
                        "ascii aag); needs -o for aiger")
    p.add_argument("--checkpoint", default=None, metavar="CKPT",
                   help="with --target: trained parameters, folded into the gates as constants")
    p.add_argument("--report", default=None, metavar="PATH", help="with --target: also write the report as JSON here")


def argument_names(module, name: str) -> list:
    """Parameter names, then the definition's argument names (for naming netlist ports)."""
    f = module[name]
    names = [p.name for p in getattr(f, "params", ())]
    d = module.definition(name)
    if d.params:
        names += [p.name for p in d.params]
    return names


def checkpoint_params(path: str, model) -> list:
    """The model's parameters from a checkpoint, in order, checked against their types."""
    from .checkpoint import CheckpointError, load

    flat, _ = load(path)
    out = []
    for p in getattr(model, "params", ()):
        key = f"param/{p.name}"
        if key not in flat:
            have = sorted(k[len("param/"):] for k in flat if k.startswith("param/"))
            raise CheckpointError(f"{path}: no parameter {p.name!r} for this model (the checkpoint has "
                                  f"{', '.join(have) or 'none'})")
        a = np.asarray(flat[key])
        if a.shape != tuple(p.type.shape) or (p.type.dtype.name == "bit" and a.dtype != np.bool_):
            raise CheckpointError(f"{path}: parameter {p.name!r} is {a.dtype}{list(a.shape)} but the circuit needs "
                                  f"{p.type}")
        out.append(a)
    return out


def netlist_of(path: str, model_name: str, checkpoint: str | None = None):
    """``(netlist, CircuitProgram)`` of model ``model_name`` in ``path``."""
    from ..circuit import compile_circuit
    from ..compiler import prepare
    from .commands import _load_model
    from ..frontend.module import load

    model = _load_model(path, model_name)
    names = argument_names(load(path), model_name)
    params = checkpoint_params(checkpoint, model) if checkpoint else None
    prog = compile_circuit(prepare(model), input_names=names, params=params)
    return prog.netlist, prog


def format_report(rep: dict) -> str:
    by = ", ".join(f"{k} {v}" for k, v in rep["by_type"].items())
    return (f"netlist: {rep['gates']} gates ({by}); {rep['two_input_gates']} two-input gates; depth {rep['depth']}; "
            f"{rep['aig_nodes']} AIG nodes; {rep['inputs']} inputs, {rep['outputs']} outputs")


def run_target(args) -> int:
    """``catgrad compile ... --target T``: write the netlist, report on stderr."""
    from ..circuit.lower import legal_names
    from ..circuit.writers import write
    from ..files import atomic_write

    if args.target is None:
        raise CatgradError("--checkpoint and --report belong to --target verilog|blif|aiger|aag")
    if args.target == "aiger" and args.output is None:
        raise CatgradError("--target aiger writes binary AIGER: give -o PATH")
    for what, src in (("FILE.cat", args.file), ("--checkpoint", args.checkpoint)):
        if args.output and src and os.path.exists(src) and os.path.exists(args.output) \
                and os.path.samefile(src, args.output):
            raise CatgradError(f"-o {args.output} is the {what} input; refusing to overwrite it")
    nl, _ = netlist_of(args.file, args.model, args.checkpoint)
    data = write(nl, args.target, legal_names([args.model])[0])
    rep = dict(nl.report(), model=args.model, target=args.target)
    if args.output is None:
        sys.stdout.write(data.decode())
    else:
        atomic_write(args.output, lambda fh: fh.write(data), what=f"the {args.target} netlist")
        print(f"wrote {args.output}", file=sys.stderr)
    if args.report:
        atomic_write(args.report, lambda fh: fh.write(json.dumps(rep).encode() + b"\n"), what="the report")
    print(format_report(rep), file=sys.stderr)
    return 0


__all__ = ["add_options", "argument_names", "checkpoint_params", "netlist_of", "format_report", "run_target"]
