"""Bit models from the shell.

``catgrad compile FILE.cat --model NAME --target verilog|blif|aiger|aag``: the model
is lowered to a gate netlist (:mod:`catgrad.circuit`). Its learnable parameters come
from ``--checkpoint`` and are folded into the gates as constants; without a checkpoint
they stay inputs of the netlist, named after the parameters. A report of gate counts
by type, depth and AIG node count goes to stderr.

``catgrad train FILE.cat --model NAME --data D --encode threshold|thermometer:K``: a
model whose input is a bit wire trains by Reverse Derivative Ascent on the
bit-parallel evaluator (:mod:`catgrad.circuit.rda`); features are binarised by an
encoder fitted on the training rows (:mod:`catgrad.train.encode`). Labels: a model
with one output bit learns class 1 of two classes; a model with k output bits learns
the one-hot code of k classes, and an example counts as right only when all k bits are.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from ..errors import CatgradError


#: ``catgrad compile --target`` values that write a gate netlist (the others print the step).
CIRCUIT_TARGETS = ("verilog", "blif", "aiger", "aag")


def add_options(p) -> None:
    """The options ``catgrad compile`` gains for the circuit targets (``--target`` itself is shared)."""
    p.add_argument("--checkpoint", default=None, metavar="CKPT",
                   help="with a circuit --target: trained parameters, folded into the gates as constants")
    p.add_argument("--report", default=None, metavar="PATH",
                   help="with a circuit --target: also write the gate-count report as JSON here")


def _ours(head: bytes, path) -> bool:
    """Whether an existing file is a netlist or report catgrad wrote (so it may be replaced)."""
    return head.lstrip().startswith((b"// written by catgrad", b"# written by catgrad", b"aig ", b"aag ",
                                     b'{"inputs":'))


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
    """One line of a netlist's counts: gates by type, depth, AIG nodes, ports."""
    by = ", ".join(f"{k} {v}" for k, v in rep["by_type"].items())
    return (f"netlist: {rep['gates']} gates ({by}); {rep['two_input_gates']} two-input gates; depth {rep['depth']}; "
            f"{rep['aig_nodes']} AIG nodes; {rep['inputs']} inputs, {rep['outputs']} outputs")


def run_target(args) -> int:
    """``catgrad compile ... --target T``: write the netlist, report on stderr."""
    from ..circuit.lower import legal_names
    from ..circuit.writers import write
    from ..files import atomic_write

    from ..files import check_output

    if args.target not in CIRCUIT_TARGETS:
        raise CatgradError(f"--checkpoint and --report belong to --target {'|'.join(CIRCUIT_TARGETS)}")
    if args.target == "aiger" and args.output is None:
        raise CatgradError("--target aiger writes binary AIGER: give -o PATH")
    protect = (args.file, args.checkpoint)
    for path, what in ((args.output, f"the {args.target} netlist"), (args.report, "the report")):
        if path is not None:
            check_output(path, what, ours=_ours, force=args.force, protect=protect)
    nl, _ = netlist_of(args.file, args.model, args.checkpoint)
    data = write(nl, args.target, legal_names([args.model])[0])
    rep = dict(nl.report(), model=args.model, target=args.target)
    if args.output is None:
        sys.stdout.write(data.decode())
    else:
        atomic_write(args.output, lambda fh: fh.write(data), what=f"the {args.target} netlist", ours=_ours,
                     force=args.force, protect=protect)
        print(f"wrote {args.output}", file=sys.stderr)
    if args.report:
        atomic_write(args.report, lambda fh: fh.write(json.dumps(rep).encode() + b"\n"), what="the report", ours=_ours,
                     force=args.force, protect=protect)
    print(format_report(rep), file=sys.stderr)
    return 0


# -- training bit models with RDA -------------------------------------------------------------

RDA_OPTIMIZERS = ("gradient_update()", "gradient_update", "rda")


def add_train_options(p) -> None:
    """The options ``catgrad train`` gains for bit models."""
    p.add_argument("--encode", default="threshold", metavar="ENC",
                   help="bit models: threshold (default) or thermometer:K, fitted on the training rows")
    p.add_argument("--encode-scale", default="feature", choices=("feature", "global"),
                   help="bit models: min-max scale each feature (default) or all features with one range (images)")
    p.add_argument("--combine", default="parity", choices=("parity", "vote"),
                   help="bit models with --batch > 1: combine the per-example updates by parity or by vote")
    p.add_argument("--classes", default=None, metavar="C,C,...",
                   help="keep only these classes (indices or names), e.g. 0,1 for a two-class problem")


def is_bit_model(model) -> bool:
    """Whether every input wire of ``model`` carries bits (such a model trains by RDA)."""
    return bool(model.dom) and all(t.dtype.name == "bit" for t in model.dom)


def select_classes(ds, spec: str):
    """The rows of ``ds`` whose class is among ``spec`` (``--classes``), relabelled from 0."""
    from dataclasses import replace

    from ..data import DataError

    if ds.classes is None:
        raise DataError(f"--classes: {ds.name} has no classes")
    want = []
    for c in spec.split(","):
        c = c.strip()
        names = [str(n) for n in ds.classes]
        if c in names:
            want.append(names.index(c))
        elif c.isdigit() and int(c) < len(ds.classes):
            want.append(int(c))
        else:
            raise DataError(f"--classes: {c!r} is not a class of {ds.name} ({', '.join(names)})")
    if len(set(want)) != len(want) or len(want) < 2:
        raise DataError(f"--classes needs at least two distinct classes, got {spec!r}")
    rows = np.flatnonzero(np.isin(ds.y, want))
    remap = np.zeros(len(ds.classes), np.int64)
    remap[want] = np.arange(len(want))
    return replace(ds, x=ds.x[rows], y=remap[ds.y[rows]], classes=tuple(ds.classes[k] for k in want))


def label_bits(y, n_classes: int, width: int, model_name: str) -> np.ndarray:
    """Class labels ``y`` as the bit targets of a model whose output is ``width`` bits wide."""
    from ..errors import ShapeError

    if width == 1 and n_classes == 2:
        return (np.asarray(y) == 1)[:, None]
    if width == n_classes:
        return np.eye(n_classes, dtype=bool)[y]
    raise ShapeError(f"model {model_name} has {width} output bit(s) but the data has {n_classes} classes "
                     "(one bit for two classes, or one bit per class)")


def run_rda(args, model) -> int:
    """``catgrad train`` for a bit model: RDA on the bit-parallel evaluator."""
    from .. import data as cgdata
    from ..circuit import compile_circuit
    from ..circuit.rda import RDATrainer
    from ..compiler import prepare
    from ..errors import ShapeError
    from .checkpoint import save
    from .commands import _inputs
    from .encode import parse
    from .loop import epoch_order

    if args.optimizer not in (None, *RDA_OPTIMIZERS):
        raise CatgradError(f"bit models train by Reverse Derivative Ascent: --optimizer \"gradient_update()\" "
                           f"(the default for them), not {args.optimizer!r}")
    if args.loss not in (None, "xor"):
        raise CatgradError(f"bit models train with the xor loss, not {args.loss!r}")
    if args.resume:
        raise CatgradError("--resume is not supported for bit models yet")
    batch = args.batch or 1
    encoder = parse(args.encode, args.encode_scale)
    ds = cgdata.load(args.data, label=args.label)
    if args.classes:
        ds = select_classes(ds, args.classes)
    if ds.classes is None:
        raise CatgradError(f"{args.data}: bit models learn classes; this dataset is a regression")
    train, test = ds.split(test_fraction=args.test_fraction, seed=args.seed)
    encoder.fit(train.x, f"{args.data}: the training rows")
    xtr, xte = encoder(train.x), encoder(test.x)
    if len(model.dom) != 1 or len(model.cod) != 1:
        raise ShapeError(f"model {args.model} must take one bit vector and give one, it is {model.dom} -> {model.cod}")
    trainer = RDATrainer(model, combine=args.combine)
    if trainer.n_x != xtr.shape[1]:
        raise ShapeError(f"model {args.model} takes {trainer.n_x} input bits ({model.dom[0]}) but {args.data} "
                         f"encoded with {encoder.name} gives {xtr.shape[1]} ({train.n_features} features x "
                         f"{encoder.levels - 1} bits)")
    ytr = label_bits(train.y, ds.n_classes, trainer.n_y, args.model)
    yte = label_bits(test.y, ds.n_classes, trainer.n_y, args.model)
    theta = trainer.flatten(model.init(args.seed))
    mistakes = []
    for e in range(args.epochs):
        theta, wrong = trainer.epoch(theta, xtr, ytr, batch, epoch_order(args.seed, e, len(xtr)))
        mistakes.append(wrong)
        if not args.quiet:
            print(f"epoch {e}: {wrong} wrong examples", file=sys.stderr)

    def acc(x, y):
        return float(np.mean(np.all(trainer.predict(theta, x) == y, axis=1))) if len(x) else None

    params = trainer.unflatten(theta)
    circuit = compile_circuit(prepare(model.body), params=params)
    report = circuit.netlist.report()
    summary = {"model": args.model, "data": args.data, "encode": encoder.name, "classes": [str(c) for c in ds.classes],
               "optimizer": "gradient_update()", "loss": "xor", "batch": batch, "combine": args.combine,
               "seed": args.seed, "epochs": args.epochs, "steps": args.epochs * -(-len(xtr) // batch),
               "n_train": len(xtr), "n_test": len(xte), "mistakes_per_epoch": mistakes,
               "train_accuracy": acc(xtr, ytr), "test_accuracy": acc(xte, yte),
               "gates": report["gates"], "two_input_gates": report["two_input_gates"], "depth": report["depth"],
               "aig_nodes": report["aig_nodes"]}
    if args.checkpoint:
        flat = {f"param/{p.name}": v for p, v in zip(model.params, params)}
        flat["step"] = np.asarray(summary["steps"], dtype=np.int64)
        meta = {"signature": {"params": {p.name: str(p.type) for p in model.params}, "optimizer": "gradient_update()",
                              "input": str(model.dom[0]), "output": str(model.cod[0])},
                "rda": {k: summary[k] for k in ("encode", "classes", "batch", "combine", "seed", "epochs")},
                "encoder": encoder.state()}
        save(args.checkpoint, flat, meta, force=args.force, protect=_inputs(args))
        summary["checkpoint"] = args.checkpoint
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"trained {args.model} on {args.data} by RDA for {args.epochs} epochs: train accuracy "
              f"{summary['train_accuracy']:.4f}, test accuracy "
              f"{'n/a' if summary['test_accuracy'] is None else format(summary['test_accuracy'], '.4f')}; "
              f"{report['two_input_gates']} two-input gates")
    return 0


__all__ = ["CIRCUIT_TARGETS", "add_options", "add_train_options", "is_bit_model", "run_rda", "label_bits", "select_classes", "argument_names", "checkpoint_params", "netlist_of", "format_report", "run_target"]
