"""The training loop: a plain PyTorch loop you can read top to bottom.

One epoch: shuffle the training galaxies (a generator seeded with
``seed + epoch``, so the order never depends on what ran before), step the
optimiser over mini-batches, measure the validation loss, log a row of
metrics, write a checkpoint atomically, and stop early when the validation
loss has not improved for ``patience`` epochs. A checkpoint holds the model,
the optimiser and every random-number state, so ``resume=True`` continues
exactly where an interrupted run stopped: the result equals that of an
uninterrupted run with the same seed.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from .._atomic import atomic_path
from ..exceptions import IFSReprError
from .checkpoint import load_latest_checkpoint, save_checkpoint
from .distributed import DistributedContext

__all__ = ["TrainingOptions", "TrainingResult", "train_network", "METRICS_NAME"]

METRICS_NAME = "metrics.csv"

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]


@dataclass
class TrainingOptions:
    """Settings of a training run (all stored in checkpoints and the model config).

    Examples
    --------
    >>> from ifsrepr.training import TrainingOptions
    >>> options = TrainingOptions(epochs=5, batch_size=8, progress=False)
    >>> options.learning_rate, options.patience
    (0.001, 5)
    >>> TrainingOptions(batch_size=0).check()
    Traceback (most recent call last):
    ...
    ifsrepr.exceptions.IFSReprError: batch_size must be at least 1, got 0
    """

    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0
    num_workers: int = 0
    bf16: bool = True  #: autocast to bfloat16 on CUDA (ignored on CPU)
    progress: bool = True
    max_seconds: float | None = None  #: stop after the epoch that passes this much training time
    #: Clip the gradient norm: the weighted loss lets a few bright pixels dominate a
    #: batch, and without clipping their gradients can throw training off course.
    clip_grad_norm: float | None = 1.0

    def check(self) -> None:
        """Raise `IFSReprError` for impossible settings."""
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise IFSReprError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise IFSReprError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.patience < 1:
            raise IFSReprError(f"patience must be at least 1, got {self.patience}")


@dataclass
class TrainingResult:
    """What `train_network` returns: the metrics of every epoch and the best epoch.

    Attributes
    ----------
    history : list of dict
        One row of metrics per epoch (``epoch``, ``train_loss``,
        ``validation_loss``, ``seconds``, ``galaxies_per_second``,
        ``learning_rate``), as in ``metrics.csv``.
    best_epoch : int
        The epoch (from 1) whose weights the model holds; -1 before training.
    best_validation_loss : float
        Its validation loss.
    stopped_early : bool
        Whether ``patience`` ended the run.

    Examples
    --------
    >>> from ifsrepr.training import TrainingResult
    >>> TrainingResult()
    TrainingResult(history=[], best_epoch=-1, best_validation_loss=inf, stopped_early=False)

    See `train_network` for one filled in by a run.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_validation_loss: float = math.inf
    stopped_early: bool = False


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _loader(
    dataset, options: TrainingOptions, context: DistributedContext, epoch: int, shuffle: bool
):
    if context.enabled:
        sampler = DistributedSampler(
            dataset, num_replicas=context.world_size, rank=context.rank, shuffle=shuffle,
            seed=options.seed, drop_last=False,
        )  # fmt: skip
        sampler.set_epoch(epoch)
    elif shuffle:
        generator = torch.Generator().manual_seed(options.seed + epoch)
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = None
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=options.num_workers,
        persistent_workers=False,
    )


def _batch(batch, device):
    x, w = batch[0], batch[1]
    return x.to(device, non_blocking=True), w.to(device, non_blocking=True)


def _autocast(device: torch.device, bf16: bool):
    enabled = bf16 and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def evaluate_loss(
    model: nn.Module,
    dataset: Dataset,
    loss_fn: LossFunction,
    options: TrainingOptions,
    device: torch.device,
    context: DistributedContext,
) -> float:
    """Mean loss over ``dataset`` (weighted by galaxies), summed over processes."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.no_grad():
        for batch in _loader(dataset, options, context, 0, shuffle=False):
            x, w = _batch(batch, device)
            with _autocast(device, options.bf16):
                x_hat, _, extras = model(x, w)
            loss = loss_fn(x, x_hat.float(), w, extras)
            total[0] += loss.double() * x.shape[0]
            total[1] += x.shape[0]
    context.all_reduce_sum(total)
    return float(total[0] / total[1]) if total[1] > 0 else math.nan


def _write_metrics(directory: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(directory / METRICS_NAME) as temporary:
        temporary.write_text(buffer.getvalue())


def train_network(
    model: nn.Module,
    train_data: Dataset,
    validation_data: Dataset | None,
    loss_fn: LossFunction,
    options: TrainingOptions,
    *,
    device: torch.device,
    output_dir: str | os.PathLike | None = None,
    resume: bool = False,
    context: DistributedContext | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainingResult:
    """Train ``model`` in place; on return it holds the weights of its best epoch.

    Parameters
    ----------
    model : torch.nn.Module
        ``forward(x, w) -> (x_hat, latent, extras)``.
    train_data, validation_data : Dataset
        Items ``(x, w, ...)``; without validation data the training loss
        decides the best epoch and early stopping.
    loss_fn : callable
        ``loss_fn(x, x_hat, w, extras) -> scalar tensor``.
    options : TrainingOptions
    device : torch.device
    output_dir : path-like, optional
        Where checkpoints (every epoch) and ``metrics.csv`` go. Needed for
        ``resume``.
    resume : bool
        Continue from the newest good checkpoint in ``output_dir``.
    context : DistributedContext, optional
        For ``torchrun`` data-parallel runs.
    on_epoch_end : callable, optional
        Called on the main process with the epoch and its metrics row.

    Returns
    -------
    TrainingResult

    Examples
    --------
    Three epochs of a small CNN-LSTM autoencoder on eight random 3x16x16 stacks:

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from ifsrepr.models import CNNLSTMAutoencoder, reconstruction_loss
    >>> from ifsrepr.training import TrainingOptions, train_network
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(8, 3, 16, 16)
    >>> data = TensorDataset(x, torch.ones_like(x))  # items (x, w)
    >>> model = CNNLSTMAutoencoder(3, 16, frontend_channels=[4, 8], feature_dim=16,
    ...                            hidden_size=16, latent_dim=8)
    >>> def loss_fn(x, x_hat, w, extras):
    ...     return reconstruction_loss(x_hat, x, w)
    >>> options = TrainingOptions(epochs=3, batch_size=4, progress=False)
    >>> result = train_network(model, data, None, loss_fn, options, device=torch.device("cpu"))
    >>> len(result.history), result.best_epoch, result.stopped_early
    (3, 3, False)
    >>> result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    True
    """
    options.check()
    context = context or DistributedContext()
    directory = Path(output_dir) if output_dir is not None else None
    if resume and directory is None:
        raise IFSReprError("resume needs the output directory of the interrupted run")
    if directory is not None and not resume and any(directory.glob("checkpoint-epoch*.pt")):
        # Mixing a fresh run's checkpoints with an old run's would let a later
        # resume continue the wrong run.
        raise IFSReprError(
            f"{directory} holds checkpoints of an earlier run; pass resume=True (--resume) "
            "to continue it, or choose a new output directory"
        )
    model.to(device)
    network = model
    if context.enabled:
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    result = TrainingResult()
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start_epoch = 0
    epochs_without_improvement = 0

    if resume:
        loaded = load_latest_checkpoint(directory)
        if loaded is not None:
            state, _ = loaded
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"])
            best_state = state["best_model"]
            result = TrainingResult(
                history=list(state["history"]),
                best_epoch=int(state["best_epoch"]),
                best_validation_loss=float(state["best_validation_loss"]),
            )
            epochs_without_improvement = int(state["epochs_without_improvement"])
            start_epoch = int(state["epoch"]) + 1
            if epochs_without_improvement >= options.patience:
                result.stopped_early = True
                start_epoch = options.epochs  # it had already stopped

    show_progress = options.progress and context.is_main
    run_started = time.perf_counter()
    for epoch in range(start_epoch, options.epochs):
        network.train()
        started = time.perf_counter()
        loader = _loader(train_data, options, context, epoch, shuffle=True)
        if show_progress:
            from tqdm.auto import tqdm

            loader = tqdm(loader, desc=f"epoch {epoch + 1}/{options.epochs}", leave=False)
        total = torch.zeros(2, dtype=torch.float64, device=device)
        for batch in loader:
            x, w = _batch(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, options.bf16):
                x_hat, _, extras = network(x, w)
            loss = loss_fn(x, x_hat.float(), w, extras)
            if not torch.isfinite(loss):
                raise IFSReprError(
                    f"epoch {epoch + 1}: the loss became {loss.item()}; lower the learning rate"
                )
            loss.backward()
            if options.clip_grad_norm:
                nn.utils.clip_grad_norm_(model.parameters(), options.clip_grad_norm)
            optimizer.step()
            total[0] += loss.detach().double() * x.shape[0]
            total[1] += x.shape[0]
        context.all_reduce_sum(total)
        seconds = time.perf_counter() - started
        train_loss = float(total[0] / total[1])
        if validation_data is not None and len(validation_data) > 0:
            validation_loss = evaluate_loss(
                model, validation_data, loss_fn, options, device, context
            )
        else:
            validation_loss = train_loss
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "validation_loss": validation_loss,
            "seconds": round(seconds, 3),
            "galaxies_per_second": round(float(total[1]) / seconds, 3),
            "learning_rate": optimizer.param_groups[0]["lr"],
        }
        result.history.append(row)
        if validation_loss < result.best_validation_loss:
            result.best_validation_loss = validation_loss
            result.best_epoch = epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            epochs_without_improvement = 0
        else:
            epochs_without_improvement += 1
        if directory is not None and context.is_main:
            state = {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(),
                "best_model": best_state,
                "best_epoch": result.best_epoch,
                "best_validation_loss": result.best_validation_loss,
                "epochs_without_improvement": epochs_without_improvement,
                "history": result.history,
                "options": asdict(options),
            }
            save_checkpoint(directory, epoch, state)
            _write_metrics(directory, result.history)
        context.barrier()
        if on_epoch_end is not None and context.is_main:
            on_epoch_end(epoch + 1, row)
        if epochs_without_improvement >= options.patience:
            result.stopped_early = True
            break
        if options.max_seconds and time.perf_counter() - run_started > options.max_seconds:
            break  # a time budget, e.g. a shared GPU; resume=True can continue later
    model.load_state_dict(best_state)
    return result
