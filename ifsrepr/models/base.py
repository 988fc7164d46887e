"""What every encoder/decoder network shares: input checks, NaN/mask handling, option checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .errors import ModelConfigError, ModelInputError

__all__ = ["SequenceAutoencoder", "clean_input", "image_shape"]


def image_shape(image_size: int | Sequence[int], *, architecture: str = "") -> tuple[int, int]:
    """``image_size`` (an int for square maps, or ``(height, width)``) as a pair of ints."""
    where = f"architecture {architecture!r}: " if architecture else ""
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    else:
        try:
            size = tuple(int(s) for s in image_size)
        except (TypeError, ValueError):
            raise ModelConfigError(
                f"{where}image_size must be an int or (height, width), got {image_size!r}"
            ) from None
    if len(size) != 2 or min(size) < 1:
        raise ModelConfigError(
            f"{where}image_size must be a positive int or (height, width), got {image_size!r}"
        )
    return size  # type: ignore[return-value]


def check_int(architecture: str, name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a `ModelConfigError` naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelConfigError(
            f"architecture {architecture!r}: option {name} must be an integer >= {minimum}, "
            f"got {value!r}"
        )
    return value


def downsampled_size(
    architecture: str, image_size: tuple[int, int], levels: int, option: str
) -> tuple[int, int]:
    """The map size after ``levels`` stride-2 halvings of ``image_size``.

    Raises a `ModelConfigError` naming ``option`` (what sets the number of
    levels) if a side is not divisible by ``2 ** levels``.

    Examples
    --------
    >>> from ifsrepr.models.base import downsampled_size
    >>> downsampled_size("convlstm", (64, 64), 2, "frontend_channels=[16, 32]")
    (16, 16)
    """
    factor = 2**levels
    height, width = image_size
    if height % factor or width % factor:
        raise ModelConfigError(
            f"architecture {architecture!r}: image_size {tuple(image_size)} is not divisible "
            f"by {factor} (2 ** len({option})); use another image size or fewer levels"
        )
    return height // factor, width // factor


def check_int_list(
    architecture: str, name: str, value: Any, *, length: int | None = None
) -> tuple[int, ...]:
    """An int or a sequence of positive ints as a tuple (an int is repeated ``length`` times)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * (length or 1)
    try:
        values = tuple(value)
    except TypeError:
        raise ModelConfigError(
            f"architecture {architecture!r}: option {name} must be an integer or a list of "
            f"integers, got {value!r}"
        ) from None
    for item in values:
        check_int(architecture, name, item)
    if not values:
        raise ModelConfigError(f"architecture {architecture!r}: option {name} must not be empty")
    if length is not None and len(values) != length:
        raise ModelConfigError(
            f"architecture {architecture!r}: option {name} has {len(values)} entries but "
            f"num_layers is {length}"
        )
    return values


def check_choice(architecture: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else a `ModelConfigError` listing them."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ModelConfigError(
            f"architecture {architecture!r}: option {name} must be one of {allowed}, got {value!r}"
        )
    return value


def clean_input(
    x: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the unusable pixels of ``x`` and return it with the validity mask.

    A pixel is usable where ``x`` is finite and, when ``weight`` is given,
    ``weight`` is finite and positive. Unusable pixels are replaced with 0
    through `torch.where` rather than a multiplication, because ``NaN * 0``
    is NaN and would reach the latent.

    Parameters
    ----------
    x : tensor
        Normalised maps, any shape.
    weight : tensor, optional
        Non-negative weights broadcastable to ``x``.

    Returns
    -------
    x_clean, valid : tensor
        ``x`` with unusable pixels set to 0, and a float tensor (1 usable, 0 not).
    """
    valid = torch.isfinite(x)
    if weight is not None:
        weight = weight.to(device=x.device)
        valid = valid & torch.isfinite(weight) & (weight > 0)
    x_clean = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x_clean, valid.to(x.dtype)


class SequenceAutoencoder(nn.Module):
    """Base class: an autoencoder of a wavelength-ordered stack of line maps.

    Subclasses implement ``_encode_clean(x, valid) -> (mu, logvar or None)``
    on already cleaned 5-D input and ``decode(latent)``; this class handles
    shapes, NaNs and masks, and the VAE reparameterisation.

    Parameters
    ----------
    n_lines : int
        Number of line maps per galaxy (the sequence length).
    image_size : int or (int, int)
        Map size in pixels.
    latent_dim : int
        Size of the latent vector.
    options : dict
        The options the network was built with (stored as ``self.options`` so
        that ``architecture.build(n_lines, image_size, **model.options)``
        rebuilds it, e.g. for ``save_pretrained``).

    Examples
    --------
    A minimal linear autoencoder: the base class accepts 4-D or 5-D input and
    zeroes masked or NaN pixels before ``_encode_clean`` sees them.

    >>> import torch
    >>> from torch import nn
    >>> from ifsrepr.models import SequenceAutoencoder
    >>> class LinearAutoencoder(SequenceAutoencoder):
    ...     architecture = "linear-demo"
    ...     def __init__(self, n_lines, image_size, latent_dim=4):
    ...         super().__init__(n_lines, image_size, latent_dim, {"latent_dim": latent_dim})
    ...         size = n_lines * self.image_size[0] * self.image_size[1]
    ...         self.down, self.up = nn.Linear(size, latent_dim), nn.Linear(latent_dim, size)
    ...     def _encode_clean(self, x, valid):
    ...         return self.down(x.flatten(1)), None
    ...     def decode(self, latent):
    ...         return self.up(latent).view(-1, self.n_lines, 1, *self.image_size)
    >>> model = LinearAutoencoder(3, 8)
    >>> x = torch.randn(2, 3, 8, 8)
    >>> x[0, 1, :2] = float("nan")  # masked pixels
    >>> x_hat, latent, extras = model(x)
    >>> tuple(x_hat.shape), tuple(latent.shape), extras
    ((2, 3, 8, 8), (2, 4), {})
    >>> bool(torch.isfinite(latent).all())
    True
    """

    #: The registered architecture name.
    architecture: str = ""
    #: False for closed-form models (PCA) that are fitted with ``fit`` instead of an optimiser.
    trained_by_gradient: bool = True
    #: "ae" or "vae".
    variant: str = "ae"

    def __init__(
        self,
        n_lines: int,
        image_size: int | Sequence[int],
        latent_dim: int,
        options: dict[str, Any],
    ) -> None:
        super().__init__()
        self.n_lines = check_int(self.architecture, "n_lines", n_lines)
        self.image_size = image_shape(image_size, architecture=self.architecture)
        self.latent_dim = check_int(self.architecture, "latent_dim", latent_dim)
        self.options = dict(options)

    # -- input handling -------------------------------------------------------------------------

    def _as_5d(self, x: torch.Tensor, what: str = "x") -> torch.Tensor:
        """``x`` as ``(batch, n_lines, 1, H, W)``, accepting ``(batch, n_lines, H, W)`` too."""
        if not isinstance(x, torch.Tensor):
            raise ModelInputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 4:
            x = x.unsqueeze(2)
        expected = (self.n_lines, 1, *self.image_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ModelInputError(
                f"{self.architecture} network built for {what} shaped (batch, {self.n_lines}, 1, "
                f"{self.image_size[0]}, {self.image_size[1]}) (n_lines={self.n_lines}, "
                f"image_size={self.image_size}), got {tuple(x.shape)}"
            )
        return x

    def _prepare(
        self, x: torch.Tensor, weight: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        squeeze = isinstance(x, torch.Tensor) and x.dim() == 4
        x = self._as_5d(x)
        if weight is not None:
            weight = self._as_5d(weight, "weight")
        param = next(self.parameters(), None)
        if param is None:
            param = next(self.buffers())
        x = x.to(device=param.device, dtype=param.dtype)
        if weight is not None:
            weight = weight.to(device=param.device, dtype=param.dtype)
        x_clean, valid = clean_input(x, weight)
        return x_clean, valid, squeeze

    # -- the API ----------------------------------------------------------------------------------

    def _encode_clean(
        self, x: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def encode(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The latent vectors of a batch (the posterior mean for a VAE).

        Parameters
        ----------
        x : tensor
            ``(batch, n_lines, 1, H, W)`` or ``(batch, n_lines, H, W)`` normalised maps;
            may hold NaN where masked.
        weight : tensor, optional
            Same shape, >= 0, zero where masked. Pixels with zero or non-finite
            weight, or non-finite ``x``, are treated as missing.

        Returns
        -------
        tensor
            ``(batch, latent_dim)``.
        """
        x_clean, valid, _ = self._prepare(x, weight)
        mu, _ = self._encode_clean(x_clean, valid)
        return mu

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Reconstruct normalised maps ``(batch, n_lines, 1, H, W)`` from the latent vectors."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Encode and decode a batch.

        Returns
        -------
        x_hat : tensor
            The reconstruction, shaped like ``x``.
        latent : tensor
            ``(batch, latent_dim)``; for a VAE the posterior mean.
        extras : dict
            ``mu``, ``logvar`` and the sampled ``z`` for a VAE; empty otherwise.
        """
        x_clean, valid, squeeze = self._prepare(x, weight)
        mu, logvar = self._encode_clean(x_clean, valid)
        extras: dict[str, torch.Tensor] = {}
        z = mu
        if logvar is not None:
            # Sample only while training: evaluation and encode() use the mean,
            # so a trained VAE gives deterministic latents and reconstructions.
            if self.training:
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            extras = {"mu": mu, "logvar": logvar, "z": z}
        x_hat = self.decode(z)
        if squeeze:
            x_hat = x_hat.squeeze(2)
        return x_hat, mu, extras

    def extra_repr(self) -> str:
        """Summary shown by ``repr(module)``."""
        return f"n_lines={self.n_lines}, image_size={self.image_size}, latent_dim={self.latent_dim}"
