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
with one output bit learns class 1 of two classes; a model with H C output bits has H
heads for C classes, each trained towards the one-hot code, and classifies by the most
votes (the vote readout, :mod:`catgrad.circuit.readout`, part of the compiled circuit).
Checkpoints hold the model's source, the encoder and the loop position, for ``catgrad
predict``/``evaluate`` (:class:`TrainedCircuit`) and ``--resume``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import CatgradError
from .predict import Trained


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
    """``(netlist, CircuitProgram)`` of model ``model_name`` in ``path``; with the checkpoint of a
    classifier trained by ``catgrad train``, the netlist ends in its class decision (:func:`classifier`)."""
    from ..circuit import compile_circuit
    from ..compiler import prepare
    from .commands import _load_model
    from ..frontend.module import load

    model = _load_model(path, model_name)
    names = argument_names(load(path), model_name)
    params = checkpoint_params(checkpoint, model) if checkpoint else None
    prog = compile_circuit(prepare(model), input_names=names, params=params)
    if checkpoint:  # a classifier trained by `catgrad train`: the circuit outputs the class
        from .checkpoint import load

        rda = load(checkpoint)[1].get("rda")
        if isinstance(rda, dict) and isinstance(rda.get("n_classes"), int):
            return classifier(prog.netlist, rda["n_classes"]), prog
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
    p.add_argument("--combine", default="parity", choices=("parity", "vote", "balanced"),
                   help="bit models with --batch > 1: combine the per-example updates by parity, vote, or a vote "
                        "balanced between target bits 1 and 0 (one-vs-rest heads)")
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
    """Class labels ``y`` as the bit targets of a model whose output is ``width`` bits wide:
    one bit for two classes (class 1), or ``H`` heads of one bit per class (``width = H C``,
    bit ``h C + c`` is head h's vote for class c), each head's target the one-hot code."""
    from ..errors import ShapeError

    if width == 1 and n_classes == 2:
        return (np.asarray(y) == 1)[:, None]
    if width % n_classes == 0 and width:
        return np.tile(np.eye(n_classes, dtype=bool)[y], (1, width // n_classes))
    raise ShapeError(f"model {model_name} has {width} output bit(s) but the data has {n_classes} classes "
                     "(one bit for two classes, or a multiple of one bit per class)")


def decide(out, n_classes: int) -> np.ndarray:
    """Class indices from a bit model's outputs (``(N, width)`` bools): the bit itself for a
    one-bit model, else the class with the most head votes (ties to the lowest index,
    :func:`catgrad.circuit.readout.votes`), which the compiled circuit computes as gates."""
    from ..circuit.readout import votes

    out = np.asarray(out, bool)
    return out[:, 0].astype(np.int64) if out.shape[1] == 1 else votes(out, n_classes)


def classifier(netlist, n_classes: int):
    """The trained circuit that outputs the class: ``netlist`` followed by the vote readout
    (a one-bit model's output already is the class)."""
    from ..circuit.readout import vote_readout

    return netlist if len(netlist.outputs) == 1 else vote_readout(netlist, n_classes)


@dataclass
class TrainedCircuit(Trained):
    """A bit model trained by RDA, from its checkpoint: features go through the encoder
    fitted at training time, then through the trained circuit (the parameters folded in
    as constants), evaluated bit-parallel; the class comes from the circuit's own vote
    readout (:func:`classifier`), the gates ``catgrad compile --checkpoint`` writes."""

    def __post_init__(self):
        from ..circuit import Evaluator, compile_circuit
        from ..compiler import prepare
        from .checkpoint import CheckpointError
        from .encode import Encoder

        rda = self.meta.get("rda")
        n = rda.get("n_classes") if isinstance(rda, dict) else None
        if isinstance(n, bool) or not isinstance(n, int) or n < 2 or self.classes is None or len(self.classes) != n:
            raise CheckpointError(f"{self.path}: damaged checkpoint metadata (the classes of the bit model)")
        self.encoder = Encoder.from_state(self.meta.get("encoder"), self.path)
        self.n_classes = n
        heads = compile_circuit(prepare(self.model.body), params=[self.params[p.name] for p in self.model.params])
        self.netlist = classifier(heads.netlist, self.n_classes)
        self._heads, self._class = Evaluator(heads.netlist), Evaluator(self.netlist)

    def _bits(self, x, raw):
        return np.asarray(x, bool) if raw else self.encoder(x, "the features")

    def outputs(self, x, raw: bool = False) -> np.ndarray:
        """The circuit's output bits (the heads) for feature rows ``x`` (encoded bits if ``raw``)."""
        return self._heads(self._bits(x, raw))

    def decide(self, x, raw: bool = False) -> np.ndarray:
        """Class indices, as the classifier circuit computes them."""
        out = self._class(self._bits(x, raw)).astype(np.int64)
        return out @ (1 << np.arange(out.shape[1], dtype=np.int64))

    def votes(self, x, raw: bool = False) -> np.ndarray:
        """Votes per class ``(N, C)`` (a one-bit model: its bit for class 1, the complement for 0)."""
        out = self.outputs(x, raw)
        if out.shape[1] == 1:
            return np.concatenate([~out, out], axis=1).astype(np.int64)
        return out.reshape(len(out), -1, self.n_classes).sum(axis=1)

    def predict(self, x, raw: bool = False):
        return self.preprocessing.decode(self.decide(x, raw))

    def probabilities(self, x, raw: bool = False):
        raise CatgradError("a circuit gives votes, not probabilities")


#: the options of a run that a resumed run must repeat (everything but --epochs)
_RUN_KEYS = ("data", "label", "classes", "test_fraction", "seed", "encode", "encode_scale", "batch", "combine")


def _run_info(args, batch, fingerprint) -> dict:
    return {"data": args.data, "label": args.label, "classes": args.classes, "test_fraction": float(args.test_fraction),
            "seed": args.seed, "encode": args.encode, "encode_scale": args.encode_scale, "batch": batch,
            "combine": args.combine, "fingerprint": fingerprint}


def _resume_state(args, model, trainer, info: dict):
    """``(theta, epoch, batch index, mistakes per finished epoch, wrong so far, step)`` from ``--resume``."""
    from . import checkpoint as ckpt

    flat, meta = ckpt.load(args.resume)
    rda = meta.get("rda")
    if not isinstance(rda, dict) or not isinstance(meta.get("position"), dict):
        raise ckpt.CheckpointError(f"{args.resume}: not a checkpoint of a bit model trained by RDA")
    want = (meta.get("model") or {}).get("hash")
    if want != ckpt.model_hash(model):
        raise ckpt.CheckpointError(f"{args.resume}: this checkpoint was written for a different model")
    for k in (*_RUN_KEYS, "fingerprint"):
        if rda.get(k) != info[k]:
            raise ckpt.CheckpointError(f"{args.resume}: the run had {k} = {rda.get(k)!r}, this one {info[k]!r}; "
                                       "resume with the same options (only --epochs may change)")
    theta = trainer.flatten(checkpoint_params(args.resume, model))
    pos = meta["position"]
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
    mistakes = rda.get("mistakes_per_epoch")
    if not (ok(pos.get("epoch")) and ok(pos.get("batch")) and ok(pos.get("wrong")) and isinstance(mistakes, list)
            and len(mistakes) == pos["epoch"] and all(ok(m) for m in mistakes)):
        raise ckpt.CheckpointError(f"{args.resume}: damaged checkpoint metadata (the loop position)")
    return theta, pos["epoch"], pos["batch"], list(mistakes), pos["wrong"], int(np.asarray(flat.get("step", 0)))


def run_rda(args, model) -> int:
    """``catgrad train`` for a bit model: RDA on the bit-parallel evaluator, checkpointed
    after every epoch (and every ``--checkpoint-every`` steps); ``--resume`` continues a run
    exactly (the shuffle of epoch e is a function of (seed, e), and RDA has no other state)."""
    import os

    from .. import data as cgdata
    from ..circuit import compile_circuit
    from ..circuit.rda import RDATrainer
    from ..compiler import prepare
    from ..errors import ShapeError
    from . import checkpoint as ckpt
    from .commands import _inputs
    from .encode import parse
    from .loop import epoch_order
    from .preprocess import Preprocessing

    if args.optimizer not in (None, *RDA_OPTIMIZERS):
        raise CatgradError(f"bit models train by Reverse Derivative Ascent: --optimizer \"gradient_update()\" "
                           f"(the default for them), not {args.optimizer!r}")
    if args.loss not in (None, "xor"):
        raise CatgradError(f"bit models train with the xor loss, not {args.loss!r}")
    if args.val_fraction or args.patience or args.plot or args.distributed:
        raise CatgradError("bit models take none of --val-fraction, --patience, --plot, --distributed")
    batch = args.batch or 1
    encoder = parse(args.encode, args.encode_scale)
    full = cgdata.load(args.data, label=args.label)
    ds = select_classes(full, args.classes) if args.classes else full
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
    info = _run_info(args, batch, full.fingerprint())
    with open(args.file, encoding="utf-8") as fh:
        source = {"name": args.model, "path": os.fspath(args.file), "text": fh.read(), "hash": ckpt.model_hash(model)}
    pre = Preprocessing(tuple(train.feature_names), classes=ds.classes, label=args.label,
                        split={"data": args.data, "fingerprint": info["fingerprint"],
                               "test_fraction": info["test_fraction"], "seed": args.seed, "classes": args.classes,
                               "rule": cgdata.SPLIT_RULE})
    per_epoch = -(-len(xtr) // batch)

    def save(theta, epoch, b, wrong, mistakes, step):
        flat = {f"param/{p.name}": v for p, v in zip(model.params, trainer.unflatten(theta))}
        flat["step"] = np.asarray(step, dtype=np.int64)
        meta = {"signature": {"params": {p.name: str(p.type) for p in model.params}, "optimizer": "gradient_update()",
                              "input": str(model.dom[0]), "output": str(model.cod[0])},
                "model": source, "preprocess": pre.to_checkpoint()[1], "encoder": encoder.state(),
                "rda": dict(info, n_classes=ds.n_classes, mistakes_per_epoch=mistakes),
                "position": {"epoch": epoch, "batch": b, "wrong": wrong}}
        ckpt.save(args.checkpoint, flat, meta, force=args.force, protect=_inputs(args))

    if args.resume:
        theta, start, b0, mistakes, wrong, step = _resume_state(args, model, trainer, info)
    else:
        theta, start, b0, mistakes, wrong, step = trainer.flatten(model.init(args.seed)), 0, 0, [], 0, 0
    for e in range(start, args.epochs):
        order = epoch_order(args.seed, e, len(xtr))
        for b in range(b0 if e == start else 0, per_epoch):
            rows = order[b * batch:(b + 1) * batch]
            theta, m = trainer.update(theta, xtr[rows], ytr[rows])
            wrong, step = wrong + m, step + 1
            if args.checkpoint and args.checkpoint_every and step % args.checkpoint_every == 0 and b + 1 < per_epoch:
                save(theta, e, b + 1, wrong, mistakes, step)
        mistakes.append(wrong)
        wrong = 0
        if args.checkpoint:
            save(theta, e + 1, 0, 0, mistakes, step)
        if not args.quiet:
            print(f"epoch {e}: {mistakes[-1]} wrong examples", file=sys.stderr)

    def acc(x, y):
        return float(np.mean(decide(trainer.predict(theta, x), ds.n_classes) == y)) if len(x) else None

    params = trainer.unflatten(theta)
    circuit = classifier(compile_circuit(prepare(model.body), params=params).netlist, ds.n_classes)
    report = circuit.report()
    summary = {"model": args.model, "data": args.data, "encode": encoder.name, "classes": [str(c) for c in ds.classes],
               "optimizer": "gradient_update()", "loss": "xor", "batch": batch, "combine": args.combine,
               "seed": args.seed, "epochs": args.epochs, "steps": step,
               "n_train": len(xtr), "n_test": len(xte), "mistakes_per_epoch": mistakes,
               "train_accuracy": acc(xtr, train.y), "test_accuracy": acc(xte, test.y),
               "gates": report["gates"], "two_input_gates": report["two_input_gates"], "depth": report["depth"],
               "aig_nodes": report["aig_nodes"]}
    if args.checkpoint:
        if start >= args.epochs:  # no epoch ran in this call: still leave the checkpoint asked for
            save(theta, start, b0, wrong, mistakes, step)
        summary["checkpoint"] = args.checkpoint
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"trained {args.model} on {args.data} by RDA for {args.epochs} epochs: train accuracy "
              f"{summary['train_accuracy']:.4f}, test accuracy "
              f"{'n/a' if summary['test_accuracy'] is None else format(summary['test_accuracy'], '.4f')}; "
              f"{report['two_input_gates']} two-input gates")
    return 0


__all__ = ["CIRCUIT_TARGETS", "add_options", "add_train_options", "is_bit_model", "run_rda", "label_bits", "decide", "classifier", "TrainedCircuit", "select_classes", "argument_names", "checkpoint_params", "netlist_of", "format_report", "run_target"]
