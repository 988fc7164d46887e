"""`IFSEncoder`: the user-facing model. Line stacks in, latent vectors and reconstructions out.

It ties the stages together: a fitted `~ifsrepr.preprocess.Preprocessor`
(regridding and normalisation), a network built by a registered architecture
(``convlstm`` by default), and the training loop of `ifsrepr.training`. A
trained encoder is saved as a directory holding ``config.json`` (everything
needed to rebuild it: architecture, options, preprocessing with its learned
scales, training settings) and ``model.safetensors`` (the weights; no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_path
from .exceptions import FileFormatError, IFSReprError
from .hub import CONFIG_NAME, WEIGHTS_NAME, resolve_pretrained
from .linestack import LineStack
from .plugins import get_architectures
from .preprocess import Preprocessor

__all__ = ["IFSEncoder", "EncoderInputError", "CONFIG_FORMAT"]

#: Written into ``config.json`` so other files are recognised and refused.
CONFIG_FORMAT = "ifsrepr.IFSEncoder"
CONFIG_VERSION = 1


class EncoderInputError(IFSReprError, ValueError):
    """A stack cannot be encoded by this model (other lines or grid, nothing unmasked)."""


def _resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class IFSEncoder:
    """An autoencoder of emission-line stacks, with its preprocessing.

    Parameters
    ----------
    architecture : str
        A registered architecture (``ifsrepr plugins``): ``"convlstm"``
        (default), ``"cnn-lstm"`` or ``"pca"``.
    lines : str or sequence
        The line set the model reads (default ``"manga19"``).
    grid, size, n_reff : optional
        The common grid (see `~ifsrepr.preprocess.Preprocessor`). When the
        encoder is fitted on a survey dataset, the dataset's own
        preprocessing is used instead.
    loss : {'weighted', 'masked', 'mse'}
        Inverse-variance-weighted masked squared error (default), the plain
        mean over unmasked pixels, or the paper's plain mean squared error.
    beta : float
        Weight of the KL term for ``variant="vae"`` networks.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...
    **options
        Passed to the architecture's ``build`` (hidden channels, layers,
        ``latent_dim``, ``variant="vae"``...).

    Attributes
    ----------
    network_ : torch.nn.Module
        The trained network.
    preprocessor_ : Preprocessor
        The fitted preprocessing.
    history_ : list of dict
        Metrics per epoch of the last `fit`.

    Examples
    --------
    The bundled pretrained model, encoding the DR17 MAPS file of a mock galaxy:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.mock import draw_survey, write_galaxy
    >>> encoder = ifsrepr.IFSEncoder.from_pretrained("manga-convlstm", device="cpu")
    >>> encoder
    <IFSEncoder convlstm (fitted), options={'frontend_channels': [16, 32, 32]}>
    >>> params = draw_survey(1, seed=0, fibres=[19])[0]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = write_galaxy(params, tmp, ["maps"])
    ...     maps = ifsrepr.read(Path(tmp) / files["maps"])
    >>> encoder.encode([maps]).shape
    (1, 128)
    >>> encoder.reconstruct([maps])
    [<LineStack 9028-1902: 19 lines x 64 x 64 spaxels, unit=1e-17 erg / (s arcsec2 cm2)>]

    A model of one's own is fitted on a survey dataset (``ifsrepr extract``
    output) with `fit`, and saved with `save_pretrained`.
    """

    def __init__(
        self,
        architecture: str = "convlstm",
        *,
        lines: str | Sequence[str] = "manga19",
        grid: str = "reff",
        size: int = 64,
        n_reff: float = 2.0,
        loss: str = "weighted",
        beta: float = 1.0,
        device: str = "auto",
        **options: Any,
    ) -> None:
        self.architecture = architecture
        self.beta = beta
        self.lines = lines
        self.grid = grid
        self.size = size
        self.n_reff = n_reff
        self.loss = loss
        self.device = device
        self.options = options

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "network_") else "not fitted"
        return f"<IFSEncoder {self.architecture} ({state}), options={self.options}>"

    # -- building ----------------------------------------------------------------------------
    def _build_network(self, preprocessor: Preprocessor):
        architecture = get_architectures().get(self.architecture)
        return architecture.build(len(preprocessor.line_names), preprocessor.size, **self.options)

    def _loss_function(self):
        from .models.losses import AutoencoderLoss

        if self.loss not in ("weighted", "masked", "mse"):
            raise IFSReprError(f"loss must be 'weighted', 'masked' or 'mse', got {self.loss!r}")
        loss = AutoencoderLoss(kind=self.loss, beta=self.beta)

        def loss_fn(x, x_hat, w, extras):
            return loss(x_hat, x, w, extras)[0]

        return loss_fn

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise IFSReprError(
                "this IFSEncoder is not fitted; call fit() or use IFSEncoder.from_pretrained()"
            )

    # -- training ----------------------------------------------------------------------------
    def fit(
        self,
        data: str | os.PathLike | Sequence[LineStack] | Any,
        *,
        epochs: int = 30,
        batch_size: int = 16,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 5,
        validation_fraction: float = 0.1,
        seed: int = 0,
        output_dir: str | os.PathLike | None = None,
        resume: bool = False,
        num_workers: int = 0,
        progress: bool = True,
        max_seconds: float | None = None,
    ) -> IFSEncoder:
        """Train on a survey dataset (``ifsrepr extract`` output) or a list of stacks.

        Galaxies are split into training and validation sets (by MaNGA ID
        when the dataset has one, so repeat observations stay together).
        With ``output_dir`` a checkpoint is written after every epoch and
        ``metrics.csv`` logs the losses; ``resume=True`` continues an
        interrupted run exactly. Under ``torchrun`` the processes train
        data-parallel (see `ifsrepr.training.distributed`). ``max_seconds``
        stops training after the epoch that passes that much time.

        Returns
        -------
        IFSEncoder
            ``self``, fitted.
        """
        import torch

        from .training import (
            TrainingOptions,
            setup_distributed,
            split_by_galaxy,
            train_network,
        )

        options = TrainingOptions(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            patience=patience,
            seed=seed,
            num_workers=num_workers,
            progress=progress,
            max_seconds=max_seconds,
        )
        options.check()
        device = _resolve_device(self.device)
        context = setup_distributed(device)
        if context.enabled and device.type == "cuda":
            device = torch.device("cuda", context.local_rank)
            torch.cuda.set_device(device)
        try:
            dataset, preprocessor, groups = self._training_data(data)
            train_rows, validation_rows = split_by_galaxy(
                len(dataset), validation_fraction, seed, groups
            )
            train_data = torch.utils.data.Subset(dataset, train_rows.tolist())
            validation_data = torch.utils.data.Subset(dataset, validation_rows.tolist())
            torch.manual_seed(seed)
            network = self._build_network(preprocessor)
            if getattr(network, "trained_by_gradient", True):
                result = train_network(
                    network,
                    train_data,
                    validation_data if len(validation_rows) else None,
                    self._loss_function(),
                    options,
                    device=device,
                    output_dir=output_dir,
                    resume=resume,
                    context=context,
                )
                self.history_ = result.history
                self.best_epoch_ = result.best_epoch
            else:
                network.fit(*_stack_arrays(train_data))
                self.history_ = []
                self.best_epoch_ = 0
            network.to(device).eval()
            self.network_ = network
            self.preprocessor_ = preprocessor
            self.training_ = {
                "epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "weight_decay": weight_decay,
                "patience": patience,
                "validation_fraction": validation_fraction,
                "seed": seed,
                "n_train": int(len(train_rows)),
                "n_validation": int(len(validation_rows)),
                "best_epoch": int(self.best_epoch_),
                "world_size": context.world_size,
            }
            self.validation_rows_ = validation_rows
            if output_dir is not None and context.is_main:
                self.save_pretrained(output_dir)
        finally:
            context.shutdown()
        return self

    def _training_data(self, data):
        """(torch dataset of (x, w, index), fitted preprocessor, group labels or None)."""
        from .dataset import SurveyDataset, load_metadata

        if isinstance(data, (str, os.PathLike)):
            data = SurveyDataset(data)
        if isinstance(data, SurveyDataset):
            table = load_metadata(data.path)
            groups = None
            if "mangaid" in table.colnames:
                ids = np.asarray(table["mangaid"], dtype=str)[data.indices]
                if all(ids):
                    groups = ids
            return data, data.preprocessor, groups
        stacks = list(data)
        if not stacks or not all(isinstance(s, LineStack) for s in stacks):
            raise IFSReprError(
                "fit() takes a survey dataset path, a SurveyDataset, or a list of LineStacks"
            )
        preprocessor = Preprocessor(
            lines=self.lines, grid=self.grid, size=self.size, n_reff=self.n_reff
        ).fit(stacks)
        x, w = self._arrays(stacks, preprocessor)
        return _ArrayDataset(x, w), preprocessor, None

    # -- inputs --------------------------------------------------------------------------------
    def _arrays(self, stacks: Sequence[LineStack], preprocessor: Preprocessor | None = None):
        preprocessor = preprocessor or self.preprocessor_
        xs, ws = [], []
        for stack in stacks:
            if not isinstance(stack, LineStack):
                raise EncoderInputError(
                    f"expected LineStacks (extract_lines output or ifsrepr.read of a MAPS "
                    f"file), got {type(stack).__name__}"
                )
            shared = set(stack.line_names) & set(preprocessor.line_names)
            if not shared:
                raise EncoderInputError(
                    f"{stack.name}: none of its lines ({', '.join(stack.line_names[:6])}...) "
                    f"is one the model reads ({', '.join(preprocessor.line_names)})"
                )
            x, w = preprocessor.transform(stack)
            if not (w > 0).any():
                raise EncoderInputError(
                    f"{stack.name}: every pixel is masked on the model grid; there is nothing "
                    "to encode"
                )
            xs.append(x)
            ws.append(w)
        return np.stack(xs), np.stack(ws)

    def _as_stacks(self, stacks) -> tuple[list[LineStack], bool]:
        if isinstance(stacks, LineStack):
            return [stacks], True
        return list(stacks), False

    def _batches(self, x: np.ndarray, w: np.ndarray, batch_size: int):
        import torch

        device = next(self.network_.parameters(), None)
        device = device.device if device is not None else torch.device("cpu")
        for start in range(0, len(x), batch_size):
            yield (
                torch.from_numpy(x[start : start + batch_size]).to(device),
                torch.from_numpy(w[start : start + batch_size]).to(device),
            )

    # -- using a trained model -------------------------------------------------------------------
    def encode(
        self, stacks: LineStack | Iterable[LineStack], *, batch_size: int = 64
    ) -> np.ndarray:
        """Latent vectors of line stacks.

        Parameters
        ----------
        stacks : LineStack or iterable of LineStack
            In physical units (as extracted or read); they are regridded and
            normalised with the model's own preprocessing. Lines the stack
            lacks (e.g. the four of ``manga19`` missing from DR15 MAPS files)
            are treated as masked.

        Returns
        -------
        numpy.ndarray
            ``(n, latent_dim)``, float32.

        Raises
        ------
        EncoderInputError
            For a stack sharing no line with the model, or with nothing unmasked.
        """
        import torch

        self._check_fitted()
        stacks, _ = self._as_stacks(stacks)
        x, w = self._arrays(stacks)
        out = []
        self.network_.eval()
        with torch.no_grad():
            for xb, wb in self._batches(x, w, batch_size):
                out.append(self.network_.encode(xb, wb).float().cpu().numpy())
        return np.concatenate(out)

    def reconstruct(
        self, stacks: LineStack | Iterable[LineStack], *, batch_size: int = 64
    ) -> LineStack | list[LineStack]:
        """Reconstructions in physical units, on the model grid.

        The normalisation is inverted, so the maps are surface brightnesses in
        the input's flux unit per arcsec^2. The pixels the input masks are
        masked in the reconstruction's mask too (the network still predicts
        a value there), and its ``ivar`` is the input's, for residual maps.

        Returns
        -------
        LineStack or list of LineStack
            One per input (a single stack for a single input).
        """
        import torch

        self._check_fitted()
        stacks, single = self._as_stacks(stacks)
        x, w = self._arrays(stacks)
        outputs = []
        self.network_.eval()
        with torch.no_grad():
            for xb, wb in self._batches(x, w, batch_size):
                x_hat, _, _ = self.network_(xb, wb)
                outputs.append(x_hat.float().cpu().numpy())
        x_hat = np.concatenate(outputs)
        if x_hat.ndim == 5:
            x_hat = x_hat[:, :, 0]
        result = [
            self.preprocessor_.inverse_transform(x_hat[i], like=stack, w=w[i])
            for i, stack in enumerate(stacks)
        ]
        for stack in result:
            stack.meta["reconstructed_by"] = self.architecture
        return result[0] if single else result

    def similar(self, query, k: int = 10, *, among) -> Any:
        """The ``k`` galaxies nearest to ``query`` in this model's latent space.

        Parameters
        ----------
        query : str, array or LineStack
            A plate-IFU in ``among``, a latent vector, or a stack (encoded here).
        k : int
            Number of neighbours.
        among : Encoding, LatentIndex or path
            The stored latents to search (``ifsrepr encode`` output); an index
            is built once per encoding and reused.

        Returns
        -------
        astropy.table.Table
            The neighbours, nearest first, with their distances.
        """
        from .scoring import Encoding, LatentIndex, similar

        if isinstance(among, (str, os.PathLike)):
            among = Encoding.load(among)
        if isinstance(among, Encoding):
            # Build the search index once per encoding and keep it.
            cache = self.__dict__.setdefault("_latent_indices", {})
            key = id(among)
            if key not in cache:
                cache[key] = (among, LatentIndex.from_encoding(among))
            among = cache[key][1]
        return similar(among, query, k, encoder=self)

    # -- saving and loading --------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this encoder, as JSON-serialisable data."""
        from . import __version__

        self._check_fitted()
        return {
            "format": CONFIG_FORMAT,
            "format_version": CONFIG_VERSION,
            "ifsrepr_version": __version__,
            "architecture": self.architecture,
            "options": self.options,
            "latent_dim": int(self.network_.latent_dim),
            "loss": self.loss,
            "beta": self.beta,
            "preprocessing": self.preprocessor_.to_dict(),
            "training": getattr(self, "training_", {}),
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``.

        Both files are written atomically. Reload with `from_pretrained`.
        """
        from safetensors.torch import save_file

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network_.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as temporary:
            save_file(state, str(temporary), metadata={"format": CONFIG_FORMAT})
        with atomic_path(directory / CONFIG_NAME) as temporary:
            temporary.write_text(json.dumps(self.config(), indent=2, default=_json_default))
        return directory

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        device: str = "auto",
    ) -> IFSEncoder:
        """Load a saved encoder: a directory, or a registered name such as ``"manga-convlstm"``.

        Named models shipped inside a package load with no network; remote
        ones are downloaded once into the cache, with their checksum
        verified (see `ifsrepr.hub`).

        Raises
        ------
        ifsrepr.FileFormatError
            For a config or weights file from another architecture, format or
            version, or a corrupt weights file.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = resolve_pretrained(
            name_or_dir, cache_dir=cache_dir, local_files_only=local_files_only
        )
        config_path = directory / CONFIG_NAME
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FileFormatError(f"{config_path}: not a readable JSON config ({exc})") from None
        if config.get("format") != CONFIG_FORMAT:
            raise FileFormatError(f"{config_path}: not an ifsrepr encoder config")
        if int(config.get("format_version", 0)) > CONFIG_VERSION:
            raise FileFormatError(
                f"{config_path}: written by a newer ifsrepr ({config.get('ifsrepr_version')}); "
                "upgrade ifsrepr to load it"
            )
        encoder = cls(
            config["architecture"],
            loss=config.get("loss", "weighted"),
            beta=config.get("beta", 1.0),
            device=device,
            **config.get("options", {}),
        )
        preprocessor = Preprocessor.from_dict(config["preprocessing"])
        encoder.lines = preprocessor.line_names
        encoder.grid, encoder.size, encoder.n_reff = (
            preprocessor.grid,
            preprocessor.size,
            preprocessor.n_reff,
        )
        network = encoder._build_network(preprocessor)
        weights_path = directory / WEIGHTS_NAME
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise FileFormatError(f"{weights_path}: cannot read the weights ({exc})") from None
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise FileFormatError(
                f"{weights_path}: these weights do not fit a {config['architecture']} network "
                f"with options {config.get('options', {})} ({first})"
            ) from None
        network.to(_resolve_device(device)).eval()
        encoder.network_ = network
        encoder.preprocessor_ = preprocessor
        encoder.training_ = config.get("training", {})
        encoder.pretrained_from_ = str(name_or_dir)
        return encoder


class _ArrayDataset:
    """In-memory (x, w, index) items, for fitting on a list of stacks."""

    def __init__(self, x: np.ndarray, w: np.ndarray) -> None:
        import torch

        self.x = torch.from_numpy(x)
        self.w = torch.from_numpy(w)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.w[i], i


def _stack_arrays(dataset) -> tuple[Any, Any]:
    """All (x, w) of a dataset as two tensors (for closed-form models such as PCA)."""
    import torch

    xs, ws = [], []
    for i in range(len(dataset)):
        x, w, *_ = dataset[i]
        xs.append(torch.as_tensor(x))
        ws.append(torch.as_tensor(w))
    return torch.stack(xs), torch.stack(ws)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in config.json")
