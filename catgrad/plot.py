"""Training curves: the ``history`` of :func:`catgrad.fit` drawn with matplotlib.

One figure, two panels side by side: the loss per epoch (training, and validation when there
is one) and the accuracy per epoch (the running training accuracy and the validation
accuracy), for classifiers. The x axis is the epoch. Written without a display (the ``Agg``
backend), atomically, and only over a file catgrad wrote or a new path.
"""

from __future__ import annotations

import os

from .errors import CatgradError

FORMATS = (".png", ".svg", ".pdf")


def check_output(path) -> None:
    """Refuse, before any training, an output path with an unknown suffix or in a missing folder."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise CatgradError(f"--plot {path}: use a .png, .svg or .pdf file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CatgradError(f"--plot {path}: directory {folder} does not exist")


def training_curves(history: list, path, title: str = "") -> None:
    """Draw the per-epoch records of ``history`` (dicts with ``epoch``, ``train_loss`` and
    optionally ``train_accuracy_running``, ``val_loss``, ``val_accuracy``) to ``path``."""
    check_output(path)
    if not history:
        raise CatgradError("no finished epoch to plot (train for at least one epoch)")
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    series = lambda key: [r.get(key) for r in history]  # noqa: E731
    has_acc = any(r.get("train_accuracy_running") is not None or r.get("val_accuracy") is not None for r in history)
    fig = Figure(figsize=(9 if has_acc else 5, 3.6), dpi=100)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(epochs, series("train_loss"), label="training", color="tab:blue")
    if any(v is not None for v in series("val_loss")):
        ax.plot(epochs, series("val_loss"), label="validation", color="tab:orange")
    ax.set(xlabel="epoch", ylabel="loss", title="loss")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_acc:
        ax = axes[1]
        if any(v is not None for v in series("train_accuracy_running")):
            ax.plot(epochs, series("train_accuracy_running"), label="training (running)", color="tab:blue")
        if any(v is not None for v in series("val_accuracy")):
            ax.plot(epochs, series("val_accuracy"), label="validation", color="tab:orange")
        ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fmt = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    from .files import atomic_write

    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, metadata=_no_dates(fmt)), what="the plot")


def _no_dates(fmt: str) -> dict:
    """Metadata that keeps the file the same from run to run (no creation date)."""
    if fmt == "png":
        return {"Software": None}
    if fmt == "svg":
        return {"Date": None}
    return {"CreationDate": None}


__all__ = ["FORMATS", "check_output", "training_curves"]
