"""Training: the loop, checkpoints, the galaxy split and data-parallel set-up."""

from .checkpoint import CheckpointError, load_latest_checkpoint, save_checkpoint
from .distributed import DistributedContext, setup_distributed
from .loop import METRICS_NAME, TrainingOptions, TrainingResult, train_network
from .split import split_by_galaxy

__all__ = [
    "CheckpointError",
    "DistributedContext",
    "METRICS_NAME",
    "TrainingOptions",
    "TrainingResult",
    "load_latest_checkpoint",
    "save_checkpoint",
    "setup_distributed",
    "split_by_galaxy",
    "train_network",
]
