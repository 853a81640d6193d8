"""``catgrad train`` (train a model from a ``.cat`` file on a dataset) and ``catgrad compile``
(print the training step as one program), from the shell.

    catgrad train FILE.cat --model NAME --data iris|digits|wine|breast_cancer|PATH
                  --optimizer "adam(lr=1e-2)" --epochs N --batch N --seed N
                  [--loss NAME|FILE.cat:NAME] [--test-fraction F] [--label COLUMN] [--no-standardize]
                  [--val-fraction F] [--patience K] [--plot curves.png]
                  [--checkpoint PATH] [--checkpoint-every K] [--resume PATH] [--json] [--quiet]
                  [--distributed [--dist-timeout SECONDS]]

Data-parallel training: ``torchrun --nproc_per_node=N -m catgrad train ... --distributed``.
Every process reads its shard of each global batch (``--batch``, split evenly; a last
batch that does not fill it is dropped, so the run does not depend on N), gradients and
loss are all-reduced inside the step, rank 0 alone writes checkpoints and prints.

The checkpoint holds what ``catgrad predict`` and ``catgrad evaluate`` need: the model's
source, the scaler fitted on the training rows, the class names and the parameters.

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
from .circuit import CIRCUIT_TARGETS
from .preprocess import Preprocessing


def register(subparsers) -> None:
    """Add ``catgrad train`` to the command line."""
    p = subparsers.add_parser(
        "train", help="train a model on a dataset",
        description="Train a model from a .cat file with the compiled step; progress on stderr.",
    )
    p.add_argument("file", metavar="FILE.cat", help="the .cat file holding the model")
    p.add_argument("--model", required=True, help="name of the model (a definition in FILE.cat)")
    p.add_argument("--data", required=True, help="iris, digits, wine, breast_cancer, or a .csv/.npz path")
    p.add_argument("--optimizer", default=None,
                   help='optimizer expression, e.g. "adam(lr=1e-2)" (default sgd(lr=0.01); gradient_update() for bit models)')
    p.add_argument("--loss", default=None,
                   help="loss name or FILE.cat:NAME (default: softmax_cross_entropy for classes, mse otherwise)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default 32, or 1 for a model that takes one example at a time)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initial parameters, the split and the shuffling")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction, stratified (default 0.2)")
    p.add_argument("--label", default=None, help="CSV label column (name or index; default: the last column)")
    p.add_argument("--no-standardize", dest="standardize", action="store_false",
                   help="do not standardise features (default: zero mean, unit variance, fitted on the train split)")
    p.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                   help="hold out this fraction of the training rows (stratified) for per-epoch validation")
    p.add_argument("--patience", type=int, default=None, metavar="K",
                   help="stop when the validation loss has not improved for K epochs (keeps the best epoch)")
    p.add_argument("--plot", default=None, metavar="PATH.png",
                   help="draw the training curves (loss, accuracy, validation) to this image (.png, .svg or .pdf)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="write a checkpoint here after every epoch")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="K", help="also checkpoint every K steps")
    p.add_argument("--resume", default=None, metavar="PATH", help="continue the run saved in this checkpoint")
    p.add_argument("--force", action="store_true",
                   help="replace whatever regular file is at --checkpoint PATH (by default only a checkpoint is replaced)")
    p.add_argument("--json", action="store_true", help="print the result as a JSON object (last stdout line)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _backend_args(p)
    p.set_defaults(backend=None)  # numpy, or torch with --distributed
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over torch.distributed (torch backend); launch with "
                        "torchrun --nproc_per_node=N -m catgrad train ...")
    p.add_argument("--dist-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="with --distributed: how long a process waits for the others before giving up (default 120)")
    from .circuit import add_train_options  # --encode, --combine, --classes: bit models (RDA)

    add_train_options(p)
    p.set_defaults(run=run)


def _backend_args(p) -> None:
    p.add_argument("--backend", choices=("numpy", "torch"), default="numpy", help="what runs the step (default numpy)")
    p.add_argument("--device", default=None, help="torch backend: cpu (default) or cuda[:N]")
    p.add_argument("--torch-compile", action="store_true", help="torch backend: wrap the step in torch.compile")


def _backend_options(args) -> dict:
    if args.backend != "torch":
        if args.device is not None or args.torch_compile:
            raise CatgradError("--device and --torch-compile need --backend torch")
        return {}
    return {"device": args.device or "cpu", "torch_compile": bool(args.torch_compile)}


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
    if not 0 <= args.val_fraction < 1:
        raise CatgradError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.patience is not None and args.patience < 1:
        raise CatgradError(f"--patience must be >= 1, got {args.patience}")
    if args.patience is not None and not args.val_fraction:
        raise CatgradError("--patience watches the validation loss: give --val-fraction F too")
    if args.checkpoint_every and not args.checkpoint:
        raise CatgradError("--checkpoint-every needs --checkpoint PATH")
    if not 0 <= args.seed < 2**32:  # scikit-learn's random_state (the split) takes 32 bits
        raise CatgradError(f"--seed must be a whole number in [0, 2^32), got {args.seed}")
    if args.epochs > 10**9:
        raise CatgradError(f"--epochs must be at most 10^9, got {args.epochs}")
    if args.checkpoint:
        from .checkpoint import check_path

        check_path(args.checkpoint, force=args.force, protect=_inputs(args))


def _inputs(args) -> tuple:
    """The run's own input files: never overwritten, not even with --force."""
    from ..data import BUILTIN

    out = [args.file]
    if getattr(args, "data", None) and args.data not in BUILTIN:
        out.append(args.data)
    if getattr(args, "resume", None) and not (getattr(args, "checkpoint", None) and _same(args.resume, args.checkpoint)):
        out.append(args.resume)
    return tuple(out)


def _same(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def run(args) -> int:
    """``catgrad train``: load, split and preprocess the data, compile the step, train, report."""
    import catgrad as cg

    from .. import data as cgdata
    from .loop import fit

    _check_args(args)
    if args.backend is None:
        args.backend = "torch" if args.distributed else "numpy"
    elif args.distributed and args.backend != "torch":
        raise CatgradError(f"--distributed runs on the torch backend, not --backend {args.backend}")
    options = _backend_options(args)
    if args.plot:
        from ..plot import check_output

        check_output(args.plot)
    model = _load_model(args.file, args.model)
    from ..calculus.stateful import keyed, takes_key
    from .circuit import is_bit_model, run_rda

    if takes_key(model):  # (key, x): the key is model state, split at every step (resumes exactly)
        model = keyed(model)

    if is_bit_model(model):  # Reverse Derivative Ascent on the bit-parallel evaluator
        return run_rda(args, model)
    optimizer = cg.optim.parse(args.optimizer or "sgd(lr=0.01)")
    full = cgdata.load(args.data, label=args.label)
    train, test = full.split(args.test_fraction, args.seed)
    val = None
    if args.val_fraction:
        train, val = train.split(args.val_fraction, args.seed)
    split = {"data": args.data, "fingerprint": full.fingerprint(), "test_fraction": args.test_fraction, "seed": args.seed,
             "rule": cgdata.SPLIT_RULE}
    pre = Preprocessing.fit(train, scale=args.standardize, label=args.label, split=split)
    train, test = pre.apply(train), pre.apply(test)
    val = pre.apply(val) if val is not None else None
    loss, loss_name = loss_arg(args.loss, model, train.is_classification)
    batched = _input_type(model).rank >= 2
    if args.batch is None:
        args.batch = 32 if batched else 1
    _check_model(model, train, args)
    _check_sizes(model, args.batch)
    with open(args.file, encoding="utf-8") as fh:
        source = {"name": args.model, "path": os.fspath(args.file), "text": fh.read()}
    extra = {"val": val, "pre": pre, "source": source}
    group = _init_distributed(args, batched, options) if args.distributed else None
    rank = group[0] if group else 0
    if not group:
        step = cg.compile(model, loss=loss, optimizer=optimizer, backend=args.backend, **options)
        return _train(args, step, train, test, loss_name, rank, fit, **extra)
    import torch.distributed as dist

    try:
        step = cg.compile(model, loss=loss, optimizer=optimizer, backend="torch", distributed=True, **options)
        return _train(args, step, train, test, loss_name, rank, fit, **extra)
    except dist.DistError as e:  # a peer died or stalled: say so, keep the last checkpoint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kept = f"; the last checkpoint {args.checkpoint} is kept" if args.checkpoint else ""
        raise CatgradError(f"rank {rank}: another process of the distributed run failed or did not answer within "
                           f"{args.dist_timeout:g} s ({first[:200]}){kept}") from None
    finally:
        dist.destroy_process_group()


def _init_distributed(args, batched: bool, options: dict):
    """Join torchrun's process group (gloo); ``(rank, world size)``."""
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise CatgradError(f"--distributed needs torchrun's environment ({', '.join(missing)} not set): launch with "
                           f"`torchrun --nproc_per_node=N -m catgrad train ... --distributed`")
    world = int(os.environ["WORLD_SIZE"])
    if not batched:
        raise CatgradError("--distributed splits batches across processes: the model needs a batch axis (f[B, d])")
    if args.batch % world:
        raise CatgradError(f"--batch {args.batch} does not divide by the {world} processes: the global batch is split "
                           f"evenly, so use a multiple of {world}")
    if args.dist_timeout <= 0:
        raise CatgradError(f"--dist-timeout must be > 0, got {args.dist_timeout}")
    import datetime

    import torch.distributed as dist

    cuda = options["device"].startswith("cuda")
    if cuda:  # one device per process: NCCL
        import torch

        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
        options["device"] = device
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=args.dist_timeout))
    return dist.get_rank(), dist.get_world_size()


def _train(args, step, train, test, loss_name, rank, fit, val=None, pre=None, source=None) -> int:
    def log(rec):
        if not args.quiet and rank == 0:
            acc, vl, va = rec.get("train_accuracy_running"), rec.get("val_loss"), rec.get("val_accuracy")
            print(f"epoch {rec['epoch']}: loss {rec['train_loss']:.6g}"
                  + (f", running accuracy {acc:.4f}" if acc is not None else "")
                  + (f", validation loss {vl:.6g}" if vl is not None else "")
                  + (f", validation accuracy {va:.4f}" if va is not None else ""), file=sys.stderr)

    res = fit(step, train, test=test, validation=val, patience=args.patience, epochs=args.epochs,
              batch_size=args.batch, seed=args.seed, checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
              resume=args.resume, progress=not args.quiet and sys.stderr.isatty() and rank == 0, log=log,
              preprocessing=pre, source=source, force=args.force, protect=_inputs(args),
              run_info={"loss": loss_name, "standardize": bool(args.standardize),
                        "test_fraction": float(args.test_fraction), "label": args.label,
                        "val_fraction": args.val_fraction})
    if rank != 0:
        return 0
    summary = dict(res.summary(), model=args.model, data=args.data, optimizer=args.optimizer or "sgd(lr=0.01)", loss=loss_name,
                   batch=args.batch, seed=args.seed, n_train=len(train), n_test=len(test), backend=args.backend)
    if val is not None:
        summary["n_val"] = len(val)
        if res.history:  # of the epoch whose parameters are returned (the best one, when stopped early)
            rec = res.history[res.best_epoch - 1] if res.stopped_early else res.history[-1]
            summary["val_loss"] = rec.get("val_loss")
            summary["val_accuracy"] = rec.get("val_accuracy")
    if args.checkpoint:
        summary["checkpoint"] = args.checkpoint
    if args.plot:
        from ..plot import training_curves

        training_curves(res.history, args.plot, title=f"{args.model} on {args.data}")
        summary["plot"] = args.plot
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}))
    else:
        acc = lambda a: "n/a" if a is None else f"{a:.4f}"  # noqa: E731
        print(f"trained {args.model} on {args.data} for {res.epochs} epochs ({res.steps} steps): "
              f"train loss {res.train_loss:.6g}, train accuracy {acc(res.train_accuracy)}, "
              f"test accuracy {acc(res.test_accuracy)}")
    return 0


def loss_arg(spec, model, classification=None):
    """``(loss, name)`` for a ``--loss`` value: a built-in name, ``FILE.cat:NAME`` (a loss written
    in the language), or None for the default for this output (``cg.loss.default_for``)."""
    import catgrad as cg

    if spec is None:
        if classification is None and model.cod[0].dtype.name != "bit":
            raise CatgradError(f"which loss? the model outputs {model.cod[0]}: say --loss cross_entropy if these are"
                               " class scores, --loss mse for regression targets, or --loss FILE.cat:NAME")
        loss = cg.loss.default_for(model.cod[0], classification)
        return loss, loss.__name__
    path, sep, name = spec.rpartition(":")
    if sep and path.endswith(".cat"):
        from ..frontend.module import load

        return load(path).loss(name), spec
    return cg.loss.get(spec), spec


def _input_type(model):
    dom = model.dom
    if len(dom) != 1:
        raise CatgradError(f"the model must take one input (a feature vector or a batch of them), it takes {dom}")
    return dom[0]


def _check_sizes(model, batch: int) -> None:
    """Refuse, before anything is allocated, a model whose parameters (with the optimizer's
    state, up to 3 copies) or one step's wires would not fit in memory; the message says
    how much they would need."""
    from ..core.types import resolve_shape
    import numpy as np

    from ..files import human_bytes, memory_limit

    def nbytes(t, binding):
        n = 1
        for d in resolve_shape(t.shape, binding) if t.symbols else t.shape:
            n *= int(d)
        return n * np.dtype(t.dtype.numpy).itemsize

    limit = memory_limit()
    params = getattr(model, "params", ())
    p_bytes = sum(nbytes(p.type, {}) for p in params)
    if 4 * p_bytes > limit:
        big = max(params, key=lambda p: nbytes(p.type, {}))
        raise CatgradError(
            f"the model's parameters need {human_bytes(p_bytes)} ({big.name} : {big.type} alone is "
            f"{human_bytes(nbytes(big.type, {}))}), and training keeps gradients and optimizer state too: "
            f"more than the limit of {human_bytes(limit)} (half the memory; CATGRAD_MAX_BYTES changes it)"
        )
    body = getattr(model, "body", model)
    binding = {d: batch for t in (*body.dom, *body.cod) for d in t.symbols}
    try:
        wires = list(body.graph.types)  # every wire of the diagram
        w_bytes = sum(nbytes(t, binding) for t in wires if all(s in binding for s in t.symbols))
    except (TypeError, ValueError, KeyError, AttributeError):
        return
    if 3 * w_bytes > limit:
        raise CatgradError(
            f"one training step of the model with --batch {batch} needs about {human_bytes(3 * w_bytes)} of "
            f"activations and gradients: more than the limit of {human_bytes(limit)} (use a smaller --batch or model)"
        )


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
    """Add ``catgrad compile`` to the command line."""
    p = subparsers.add_parser(
        "compile", help="show the whole training step as one compiled program",
        description="Build the supervised step (optimizer, model, loss, learning rate as one diagram) "
                    "and print it: the SSA program after the passes, the generated numpy code, or a drawing.",
    )
    p.add_argument("file", metavar="FILE.cat", help="the .cat file holding the model")
    p.add_argument("--model", required=True, help="name of the model (a definition in FILE.cat)")
    p.add_argument("--optimizer", default="sgd(lr=0.01)", help='optimizer expression, e.g. "adam(lr=1e-2)"')
    p.add_argument("--loss", default=None, help="loss name or FILE.cat:NAME (required for a float output:"
                                                " cross_entropy for class scores, mse for regression)")
    p.add_argument("--emit", choices=EMITS, default="program",
                   help="program: SSA after CSE/folding/DCE; python: the numpy code for --batch; dot: Graphviz")
    p.add_argument("--batch", type=int, default=32, help="batch size the python code is generated for (default 32)")
    p.add_argument("--target", choices=("numpy", "torch") + CIRCUIT_TARGETS, default="numpy",
                   help="torch: print the step's torch.fx GraphModule code instead (one graph for every batch size); "
                        "verilog, blif, aiger, aag: write a bit model as a gate netlist (with a gate-count report)")
    p.add_argument("-o", "--output", default=None, metavar="PATH", help="write here instead of stdout")
    p.add_argument("--force", action="store_true",
                   help="replace whatever regular file is at -o PATH (by default only an earlier output is replaced)")
    from .circuit import add_options  # --checkpoint, --report for the circuit targets

    add_options(p)
    p.set_defaults(run=run_compile)


def run_compile(args) -> int:
    import catgrad as cg

    from ..compiler import lower, optimize
    from ..core.types import resolve_shape

    from ..files import check_output

    if args.batch < 1:
        raise CatgradError(f"--batch must be >= 1, got {args.batch}")
    if args.target in CIRCUIT_TARGETS or args.checkpoint or args.report:
        from .circuit import run_target  # a bit model as a gate netlist

        return run_target(args)
    if args.output is not None:
        check_output(args.output, "the program", ours=_compiled_output, force=args.force, protect=(args.file,))
    model = _load_model(args.file, args.model)
    _check_sizes(model, args.batch)
    optimizer = cg.optim.parse(args.optimizer)
    loss = loss_arg(args.loss, model)[0]
    step = cg.compile(model, loss=loss, optimizer=optimizer)
    if args.target == "torch":
        text = cg.compile(model, loss=loss, optimizer=optimizer, backend="torch").graph_module.code.strip() + "\n"
    elif args.emit == "program":
        names = [f"p_{n}" for n in step.param_names] + [f"s_{k}" for k in step.opt_keys] + ["x", "y"]
        text = optimize(lower(step.diagram)).format(names) + "\n"
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

        atomic_write(args.output, lambda fh: fh.write(text.encode()), what="the program", ours=_compiled_output,
                     force=args.force, protect=(args.file,))
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _compiled_output(head: bytes, path) -> bool:
    """Whether a file starts like something ``catgrad compile`` writes (any --emit)."""
    return head.lstrip().startswith((b"program(", b"def run(", b"def forward(", b"digraph", b"//"))
