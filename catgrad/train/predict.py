"""Using a trained model: :func:`load_checkpoint`, and ``catgrad predict`` / ``catgrad evaluate``.

Inference needs three things, and a checkpoint written by ``catgrad train`` (or ``cg.fit`` with
``source=``) holds all of them: the model (its ``.cat`` source and name, and a hash of the
elaborated diagram that is checked on load), the preprocessing fitted on the training rows
(standardisation, class names) and the parameters. It needs no optimizer: the forward map
``f(p, -) : A -> B`` alone is compiled.

    catgrad predict [FILE.cat] --checkpoint CKPT --data PATH [--model NAME] [-o preds.csv]
    catgrad evaluate [FILE.cat] --checkpoint CKPT --data iris|PATH [--json]

``predict`` writes one CSV row per input row: the predicted class and the softmax
probability of every class (a classifier), or the model's outputs (regression). ``evaluate``
reports accuracy, macro F1 and the confusion matrix (classes) or MSE, MAE and R^2
(regression); given the data the model was trained on, it evaluates on the held-out rows
of the same split.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import CatgradError, did_you_mean
from . import checkpoint as ckpt
from .loop import apply_rows
from .preprocess import Preprocessing


@dataclass
class Trained:
    """A trained model ready for inference: ``model`` (a Para), its ``params`` (name -> array),
    the ``preprocessing`` fitted on the training rows, and the checkpoint's metadata."""

    model: object
    params: dict
    preprocessing: Preprocessing
    meta: dict
    path: str = ""
    state: dict = None  # a stateful model's state (running statistics, keys): name -> array

    def __post_init__(self):
        from ..calculus.stateful import Stateful
        from ..compiler.backends import backend_factory

        stateful = isinstance(self.model, Stateful)  # evaluated in its evaluation form
        self._forward = backend_factory("numpy")(self.model.forward("eval").body if stateful else self.model.body)
        self._names = list(self.model.names)
        self._state = [(self.state or {})[p.name] for p in self.model.state] if stateful else []

    @property
    def classes(self) -> Optional[tuple]:
        return self.preprocessing.classes

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    def outputs(self, x, raw: bool = False) -> np.ndarray:
        """The model's outputs for feature rows ``x`` (n x d); the training preprocessing is
        applied first unless ``raw``."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise CatgradError(f"features must be numbers, got dtype {x.dtype}")
        if not raw:
            x = self.preprocessing.transform(x)
        x_type = self.model.dom[0]
        x = np.ascontiguousarray(x, dtype=x_type.dtype.numpy)
        ps = [self.params[n] for n in self._names] + self._state
        return apply_rows(lambda xb: self._forward(*ps, xb)[0], x, x_type)

    def predict(self, x, raw: bool = False):
        """Class names (a classifier) or the outputs (regression) for feature rows ``x``."""
        out = self.outputs(x, raw)
        if self.classes is None:
            return out
        return self.preprocessing.decode(np.argmax(out, -1))

    def probabilities(self, x, raw: bool = False) -> np.ndarray:
        """``softmax`` of the outputs over the class axis (the model's outputs are logits)."""
        out = self.outputs(x, raw).astype(np.float64)
        e = np.exp(out - out.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def decide(self, x, raw: bool = False) -> np.ndarray:
        """Class indices for feature rows ``x``: the largest output."""
        return np.argmax(self.outputs(x, raw), -1)

    def evaluate(self, data, raw: bool = False) -> dict:
        """Metrics on a :class:`~catgrad.data.Dataset` whose labels use this model's classes."""
        return metrics(self, data.x, data.y, raw)


def metrics(trained: Trained, x, y, raw: bool = False) -> dict:
    """Accuracy, macro F1 and confusion matrix (rows: true class) for classes; MSE, MAE, R^2 else."""
    from sklearn import metrics as skm

    if trained.classes is not None:
        pred = trained.decide(x, raw)
        labels = list(range(len(trained.classes)))
        return {
            "n": int(len(y)), "accuracy": float(skm.accuracy_score(y, pred)),
            "f1_macro": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
            "classes": list(trained.classes),
            "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        }
    out = trained.outputs(x, raw)
    y = np.asarray(y, np.float64).reshape(out.shape)
    return {"n": int(len(y)), "mse": float(skm.mean_squared_error(y, out)),
            "mae": float(skm.mean_absolute_error(y, out)),
            "r2": float(skm.r2_score(y, out)) if len(y) > 1 else None}


def load_checkpoint(path, model=None) -> Trained:
    """The trained model in the checkpoint at ``path``, ready for inference.

    The model comes from the ``.cat`` source stored in the checkpoint, or from ``model`` (a
    Para, for checkpoints written from Python, whose source catgrad cannot store); either way
    its hash must match the one recorded at training time, and every parameter must be present
    with its type.
    """
    from ..calculus.para import as_para
    from ..calculus.stateful import Stateful, keyed, takes_key

    flat, meta = ckpt.load(path)
    info = meta.get("model") or {}
    if model is None:
        if not info.get("text"):
            raise ckpt.CheckpointError(
                f"{path}: this checkpoint holds no model source (it was written from Python or by an older catgrad);"
                " pass the model: cg.load_checkpoint(path, model=...)")
        model = _model_from_source(path, info)
    model = model if isinstance(model, Stateful) else as_para(model)
    if takes_key(model):  # trained with its key as state (see cg.compile)
        model = keyed(model)
    want = info.get("hash")
    if want and ckpt.model_hash(model) != want:
        raise ckpt.CheckpointError(
            f"{path}: the model does not match the one this checkpoint was trained for (its hash is"
            f" {ckpt.model_hash(model)}, the checkpoint's {want}): different layers, sizes or parameter names")
    values = {}
    for kind, ps in (("param", model.params), ("state", getattr(model, "state", ()))):
        for p in ps:
            a = flat.get(f"{kind}/{p.name}")
            what = "parameter" if kind == "param" else "model state"
            if a is None:
                raise ckpt.CheckpointError(f"{path}: no {what} {p.name!r} in the checkpoint (a different model)")
            shape = tuple(p.type.shape)
            if a.shape != shape or a.dtype != np.dtype(p.type.dtype.numpy):
                raise ckpt.CheckpointError(f"{path}: {what} {p.name!r} is {a.dtype}{list(a.shape)} but the model"
                                           f" needs {p.type}")
            values[f"{kind}/{p.name}"] = a
    params = {p.name: values[f"param/{p.name}"] for p in model.params}
    state = {p.name: values[f"state/{p.name}"] for p in getattr(model, "state", ())}
    pre = Preprocessing.from_checkpoint(flat, meta.get("preprocess"))
    if "rda" in meta:  # a bit model: its trained circuit, behind the encoder it was trained with
        from .circuit import TrainedCircuit

        return TrainedCircuit(model, params, pre, dict(meta, step=int(flat.get("step", 0))), os.fspath(path))
    return Trained(model, params, pre, dict(meta, step=int(flat.get("step", 0))), os.fspath(path), state)


def _model_from_source(path, info: dict):
    from ..frontend.module import loads

    name, where = info.get("name"), info.get("path") or "<checkpoint>"
    module = loads(info["text"], where)
    if name not in module:
        raise ckpt.CheckpointError(f"{path}: the stored source has no definition {name!r}")
    return module[name]


# -- the command line ----------------------------------------------------------------------------


def register(subparsers) -> None:
    """Add ``catgrad predict`` and ``catgrad evaluate`` to the command line."""
    for cmd, what in (("predict", "write the trained model's predictions for a data file"),
                      ("evaluate", "report the trained model's metrics on held-out data")):
        p = subparsers.add_parser(cmd, help=what, description=what[0].upper() + what[1:] + ".")
        p.add_argument("file", metavar="FILE.cat", nargs="?", default=None,
                       help="the model's .cat file (default: the source stored in the checkpoint)")
        p.add_argument("--model", default=None, help="the model's name (default: the one in the checkpoint)")
        p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint written by catgrad train")
        p.add_argument("--data", required=True, help="iris, digits, wine, breast_cancer, or a .csv/.npz path")
        if cmd == "predict":
            p.add_argument("-o", "--output", default=None, metavar="PATH", help="write the CSV here instead of stdout")
            p.set_defaults(run=run_predict)
        else:
            p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
            p.set_defaults(run=run_evaluate)


def _trained(args) -> Trained:
    if args.file is None:
        if args.model is not None:
            raise CatgradError("--model names a definition of FILE.cat; give the file too")
        return load_checkpoint(args.checkpoint)
    from .commands import _load_model

    name = args.model
    if name is None:
        flat_meta = ckpt.load(args.checkpoint)[1]
        name = (flat_meta.get("model") or {}).get("name")
        if not name:
            raise CatgradError(f"{args.checkpoint} does not say which model it holds; use --model NAME")
    return load_checkpoint(args.checkpoint, model=_load_model(args.file, name))


def _features(trained: Trained, source: str) -> np.ndarray:
    """Feature rows of ``source`` in the order the model was trained on them."""
    from .. import data as cgdata

    pre = trained.preprocessing
    if source in cgdata.BUILTIN or not source.lower().endswith((".csv", ".txt")):
        if source.lower().endswith(".npz"):
            import zipfile

            if not os.path.exists(source) or not zipfile.is_zipfile(source):
                raise cgdata.DataError(f"{source}: no such .npz file")
            with np.load(source, allow_pickle=False) as z:
                if "x" not in z:
                    raise cgdata.DataError(f"{source}: no array named 'x' (the features)")
                return z["x"]
        return cgdata.load(source).x
    if not os.path.isfile(source):
        raise cgdata.DataError(f"{source}: no such file")
    with open(source, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    if not rows:
        raise cgdata.DataError(f"{source}: the file is empty (expected a header row, then data rows)")
    header = [h.strip() for h in rows[0]]
    names = list(pre.feature_names)
    if names and all(n in header for n in names):
        cols = [header.index(n) for n in names]
    elif pre.n_features is not None and len(header) == pre.n_features:
        cols = list(range(len(header)))
    else:
        missing = [n for n in names if n not in header]
        raise cgdata.DataError(
            f"{source}: the model reads the columns {', '.join(names) or pre.n_features}; this file lacks "
            f"{', '.join(missing[:5])}{did_you_mean(missing[0], header) if missing else ''}")
    x = np.empty((len(rows) - 1, len(cols)))
    for i, r in enumerate(rows[1:]):
        for jj, j in enumerate(cols):
            try:
                x[i, jj] = float(r[j])
            except (ValueError, IndexError):
                raise cgdata.DataError(f"{source}: line {i + 2}, column {j + 1} ({header[j]!r}):"
                                       f" {'missing' if j >= len(r) else repr(r[j])} is not a number") from None
    return x


def run_predict(args) -> int:
    trained = _trained(args)
    x = _features(trained, args.data)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if trained.classes is not None and hasattr(trained, "votes"):  # a circuit: its class and each class's votes
        votes = trained.votes(x)
        w.writerow(["predicted"] + [f"votes_{c}" for c in trained.classes])
        for name, row in zip(trained.predict(x), votes):
            w.writerow([name] + [str(v) for v in row])
    elif trained.classes is not None:
        probs = trained.probabilities(x)
        w.writerow(["predicted"] + [f"p_{c}" for c in trained.classes])
        for name, row in zip(trained.preprocessing.decode(np.argmax(probs, -1)), probs):
            w.writerow([name] + [f"{v:.6g}" for v in row])
    else:
        out = trained.outputs(x)
        out = out.reshape(len(out), -1)
        w.writerow([f"out{i}" for i in range(out.shape[1])])
        for row in out:
            w.writerow([f"{v:.8g}" for v in row])
    text = buf.getvalue()
    if args.output is None:
        sys.stdout.write(text)
    else:
        from ..files import atomic_write

        atomic_write(args.output, lambda fh: fh.write(text.encode()), what="the predictions")
        print(f"wrote {len(x)} predictions to {args.output}", file=sys.stderr)
    return 0


def _labelled(trained: Trained, source: str):
    """``(dataset, which rows)``: the held-out split when ``source`` is the training data."""
    from .. import data as cgdata

    pre = trained.preprocessing
    ds = cgdata.load(source, label=pre.label)
    split = pre.split or {}
    which = "all rows"
    fingerprint = ds.fingerprint()
    if split.get("classes"):  # a model trained on some classes (catgrad train --classes) sees only those
        from .circuit import select_classes

        ds = select_classes(ds, split["classes"])
    if split.get("data") == source and split.get("fingerprint") == fingerprint and split.get("test_fraction"):
        if split.get("rule") == cgdata.SPLIT_RULE:
            _, ds = ds.split(split["test_fraction"], split["seed"])
            which = f"the held-out {split['test_fraction']:g} of {source} (seed {split['seed']})"
        else:  # written by a catgrad that split differently: its held-out rows cannot be recomputed
            which = "all rows (the checkpoint's train/test split rule is not this catgrad's, so its held-out rows are unknown)"
    if trained.classes is not None:
        if ds.classes is None:
            raise cgdata.DataError(f"{source}: the labels are numbers, but the model predicts the classes"
                                   f" {', '.join(trained.classes)}")
        index = {c: i for i, c in enumerate(trained.classes)}
        unknown = [c for c in ds.classes if c not in index]
        if unknown:
            raise cgdata.DataError(f"{source}: label {unknown[0]!r} is not one of the model's classes"
                                   f" ({', '.join(trained.classes)})")
        ds = cgdata.Dataset(ds.name, ds.x, np.array([index[ds.classes[k]] for k in ds.y], np.int64),
                            trained.classes, ds.feature_names)
    if pre.feature_names and ds.feature_names and tuple(ds.feature_names) != tuple(pre.feature_names):
        raise cgdata.DataError(f"{source}: the feature columns are {', '.join(ds.feature_names)}, but the model"
                               f" was trained on {', '.join(pre.feature_names)}")
    return ds, which


def run_evaluate(args) -> int:
    trained = _trained(args)
    ds, which = _labelled(trained, args.data)
    if len(ds) == 0:
        raise CatgradError(f"{args.data}: no rows to evaluate on")
    m = dict(metrics(trained, ds.x, ds.y), data=args.data, rows=which, checkpoint=os.fspath(args.checkpoint))
    if args.json:
        print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in m.items()}))
    elif "accuracy" in m:
        print(f"{args.data} ({which}, {m['n']} rows): accuracy {m['accuracy']:.4f}, macro F1 {m['f1_macro']:.4f}")
        width = max(len(c) for c in m["classes"])
        print("confusion matrix (rows: true class, columns: predicted):")
        for c, row in zip(m["classes"], m["confusion_matrix"]):
            print(f"  {c:>{width}}  " + " ".join(f"{v:4d}" for v in row))
    else:
        r2 = "n/a" if m["r2"] is None else f"{m['r2']:.4f}"
        print(f"{args.data} ({which}, {m['n']} rows): mse {m['mse']:.6g}, mae {m['mae']:.6g}, r2 {r2}")
    return 0


__all__ = ["Trained", "load_checkpoint", "metrics", "register"]
