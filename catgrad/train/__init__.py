"""Training: the loop over the compiled step, checkpoints, and the ``train`` command.

>>> from catgrad.train import fit, epoch_order
>>> epoch_order(0, 3, 5).tolist() == epoch_order(0, 3, 5).tolist()
True
"""

from .checkpoint import CheckpointError
from .loop import FitResult, NonFiniteLossError, accuracy, epoch_order, fit, load_checkpoint, predict, save_checkpoint

__all__ = [
    "CheckpointError", "FitResult", "NonFiniteLossError", "accuracy", "epoch_order", "fit", "load_checkpoint",
    "predict", "save_checkpoint",
]
