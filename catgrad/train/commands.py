"""``catgrad train`` (train a model from a ``.cat`` file on a dataset) and ``catgrad compile``
(print the training step as one program), from the shell.

    catgrad train FILE.cat --model NAME --data iris|digits|wine|breast_cancer|PATH
                  --optimizer "adam(lr=1e-2)" --epochs N --batch N --seed N
                  [--loss NAME] [--test-fraction F] [--label COLUMN] [--no-standardize]
                  [--checkpoint PATH] [--checkpoint-every K] [--resume PATH] [--json] [--quiet]

Progress goes to stderr; the result goes to stdout (with ``--json`` the last stdout line is
one JSON object with ``train_accuracy``, ``test_accuracy``, ``train_loss``, ``epochs`` and
more). Every user error is one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import math
import os
import sys

from ..errors import CatgradError, did_you_mean

DEFAULT_LOSS = {True: "softmax_cross_entropy", False: "mse"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on a dataset",
        description="Train a model from a .cat file with the compiled step; progress on stderr.",
    )
    p.add_argument("file", metavar="FILE.cat", help="the .cat file holding the model")
    p.add_argument("--model", required=True, help="name of the model (a definition in FILE.cat)")
    p.add_argument("--data", required=True, help="iris, digits, wine, breast_cancer, or a .csv/.npz path")
    p.add_argument("--optimizer", default="sgd(lr=0.01)", help='optimizer expression, e.g. "adam(lr=1e-2)"')
    p.add_argument("--loss", default=None, help="loss name (default: softmax_cross_entropy for classes, mse otherwise)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default 32, or 1 for a model that takes one example at a time)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initial parameters, the split and the shuffling")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction, stratified (default 0.2)")
    p.add_argument("--label", default=None, help="CSV label column (name or index; default: the last column)")
    p.add_argument("--no-standardize", dest="standardize", action="store_false",
                   help="do not standardise features (default: zero mean, unit variance, fitted on the train split)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="write a checkpoint here after every epoch")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="K", help="also checkpoint every K steps")
    p.add_argument("--resume", default=None, metavar="PATH", help="continue the run saved in this checkpoint")
    p.add_argument("--json", action="store_true", help="print the result as a JSON object (last stdout line)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _load_model(path: str, name: str):
    from ..frontend.module import load

    module = load(path)
    if name not in module:
        names = module.names()
        raise CatgradError(f"{path}: no model named {name!r}{did_you_mean(name, names)}; it defines {', '.join(names)}")
    return module[name]


def _check_args(args) -> None:
    if args.epochs < 0:
        raise CatgradError(f"--epochs must be >= 0, got {args.epochs}")
    if args.batch is not None and args.batch < 1:
        raise CatgradError(f"--batch must be >= 1, got {args.batch}")
    if not 0 <= args.test_fraction < 1:
        raise CatgradError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise CatgradError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    if args.checkpoint_every and not args.checkpoint:
        raise CatgradError("--checkpoint-every needs --checkpoint PATH")
    if args.checkpoint:
        folder = os.path.dirname(os.path.abspath(args.checkpoint))
        if not os.path.isdir(folder):
            raise CatgradError(f"--checkpoint {args.checkpoint}: directory {folder} does not exist")


def run(args) -> int:
    import catgrad as cg

    from .. import data as cgdata
    from .loop import fit

    _check_args(args)
    model = _load_model(args.file, args.model)
    optimizer = cg.optim.parse(args.optimizer)
    train, test = cgdata.prepare(args.data, test_fraction=args.test_fraction, seed=args.seed,
                                 scale=args.standardize, label=args.label)
    loss_name = args.loss or DEFAULT_LOSS[train.is_classification]
    loss = cg.loss.get(loss_name)
    batched = _input_type(model).rank >= 2
    if args.batch is None:
        args.batch = 32 if batched else 1
    _check_model(model, train, args)
    if batched and model.cod[0].dtype.is_float:  # per-example mean, so --batch does not rescale the learning rate
        loss = loss(reduction="mean")
    step = cg.compile(model, loss=loss, optimizer=optimizer, backend="numpy")

    def log(rec):
        if not args.quiet:
            acc = rec.get("train_accuracy_running")
            print(f"epoch {rec['epoch']}: loss {rec['train_loss']:.6g}" + (f", running accuracy {acc:.4f}" if acc is not None else ""),
                  file=sys.stderr)

    res = fit(step, train, test=test, epochs=args.epochs, batch_size=args.batch, seed=args.seed,
              checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
              progress=not args.quiet and sys.stderr.isatty(), log=log)
    summary = dict(res.summary(), model=args.model, data=args.data, optimizer=args.optimizer, loss=loss_name,
                   batch=args.batch, seed=args.seed, n_train=len(train), n_test=len(test))
    if args.checkpoint:
        summary["checkpoint"] = args.checkpoint
    if args.json:
        print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}))
    else:
        acc = lambda a: "n/a" if a is None else f"{a:.4f}"  # noqa: E731
        print(f"trained {args.model} on {args.data} for {res.epochs} epochs ({res.steps} steps): "
              f"train loss {res.train_loss:.6g}, train accuracy {acc(res.train_accuracy)}, "
              f"test accuracy {acc(res.test_accuracy)}")
    return 0


def _input_type(model):
    dom = model.dom
    if len(dom) != 1:
        raise CatgradError(f"the model must take one input (a feature vector or a batch of them), it takes {dom}")
    return dom[0]


def _check_model(model, train, args) -> None:
    """Input/output widths of the model against the data, with a message naming both."""
    from ..errors import ShapeError

    x_t = _input_type(model)
    cod = model.cod
    if len(cod) != 1:
        raise CatgradError(f"the model must have one output (scores or a prediction), it has {cod}")
    y_t = cod[0]
    if x_t.rank == 0 or y_t.rank != min(x_t.rank, 2):
        raise ShapeError(f"model {args.model}: expected {'{'}f[d] -> f[k], f[B, d] -> f[B, k] or "
                         f"f[B, C, H, W] -> f[B, k]{'}'}, got {x_t} -> {y_t}")
    if x_t.rank <= 2 and x_t.shape[-1] != train.n_features:  # (the loop checks image-shaped inputs)
        raise ShapeError(
            f"model {args.model} takes inputs of width {x_t.shape[-1]} ({x_t}) but {args.data} has {train.n_features} features"
        )
    k = train.target_width
    if y_t.shape[-1] != k:
        what = f"{k} classes" if train.is_classification else f"targets of width {k}"
        raise ShapeError(f"labels do not fit model {args.model}: it outputs {y_t} but {args.data} has {what}")
    if x_t.rank == 1 and args.batch != 1:
        raise ShapeError(f"model {args.model} takes one example at a time ({x_t}); use --batch 1")


__all__ = ["register", "run"]


# -- `catgrad compile`: the training step as a program -------------------------------------

EMITS = ("program", "python", "dot")


def register_compile(subparsers) -> None:
    p = subparsers.add_parser(
        "compile", help="show the whole training step as one compiled program",
        description="Build the supervised step (optimizer, model, loss, learning rate as one diagram) "
                    "and print it: the SSA program after the passes, the generated numpy code, or a drawing.",
    )
    p.add_argument("file", metavar="FILE.cat", help="the .cat file holding the model")
    p.add_argument("--model", required=True, help="name of the model (a definition in FILE.cat)")
    p.add_argument("--optimizer", default="sgd(lr=0.01)", help='optimizer expression, e.g. "adam(lr=1e-2)"')
    p.add_argument("--loss", default="mse", help="loss name (default: mse)")
    p.add_argument("--emit", choices=EMITS, default="program",
                   help="program: SSA after CSE/folding/DCE; python: the numpy code for --batch; dot: Graphviz")
    p.add_argument("--batch", type=int, default=32, help="batch size the python code is generated for (default 32)")
    p.add_argument("-o", "--output", default=None, metavar="PATH", help="write here instead of stdout")
    p.set_defaults(run=run_compile)


def run_compile(args) -> int:
    import catgrad as cg

    from ..compiler import lower, optimize
    from ..core.types import resolve_shape

    if args.batch < 1:
        raise CatgradError(f"--batch must be >= 1, got {args.batch}")
    model = _load_model(args.file, args.model)
    step = cg.compile(model, loss=cg.loss.get(args.loss), optimizer=cg.optim.parse(args.optimizer))
    if args.emit == "program":
        text = str(optimize(lower(step.diagram))) + "\n"
    elif args.emit == "dot":
        from ..draw import to_dot

        text = to_dot(step.diagram, f"step of {args.model}").source
    else:
        binding = {d: args.batch for t in step.diagram.dom for d in t.symbols}
        shapes = [resolve_shape(t.shape, binding) for t in step.diagram.dom]
        text = step.program.source(*shapes) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        from ..files import atomic_write

        atomic_write(args.output, lambda fh: fh.write(text.encode()), what="the program")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
