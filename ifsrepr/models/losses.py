"""Training losses in normalised space: masked, inverse-variance-weighted reconstruction error.

``kind="weighted"`` (the default)
    ``sum(w (x - x_hat)^2) / sum(w)``: each pixel counts by its (normalised)
    inverse variance, masked pixels (``w = 0``) not at all. Scaling every
    weight by a constant leaves it unchanged.
``kind="masked"``
    The plain mean of ``(x - x_hat)^2`` over unmasked pixels (every usable
    pixel counts the same).
``kind="mse"``
    The method paper's plain mean squared error over *all* pixels, masked
    ones included with target 0 (the value the networks are fed there).

Every kind treats a non-finite ``x`` or ``w`` as masked and returns 0, not
NaN, for a batch (or galaxy, or line) with no usable pixel: the
denominator is guarded and unusable targets are replaced by 0 *before*
subtraction, so even their gradients stay finite.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AutoencoderLoss", "kl_divergence", "reconstruction_loss"]

_KINDS = ("weighted", "masked", "mse")
_REDUCTIONS = ("mean", "galaxy", "line", "none")


def _usable(x: torch.Tensor, weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` with unusable pixels zeroed, and the weights (0 where unusable)."""
    ok = torch.isfinite(x)
    if weight is None:
        weight = ok.to(x.dtype)
    else:
        weight = weight.to(dtype=x.dtype, device=x.device).expand_as(x)
        ok = ok & torch.isfinite(weight) & (weight > 0)
        weight = torch.where(ok, weight, 0.0)
    return torch.where(ok, x, 0.0), weight


def reconstruction_loss(
    x_hat: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    kind: str = "weighted",
    reduction: str = "mean",
) -> torch.Tensor:
    """Reconstruction error of a batch in normalised units.

    Parameters
    ----------
    x_hat : tensor
        Reconstruction, ``(batch, n_lines, ...)``.
    x : tensor
        Target, same shape; may be NaN where masked.
    weight : tensor, optional
        Non-negative weights (normalised inverse variance), 0 where masked;
        when omitted every finite pixel has weight 1.
    kind : {"weighted", "masked", "mse"}
        See the module docstring.
    reduction : {"mean", "galaxy", "line", "none"}
        One number for the batch (``sum / sum`` over everything, so galaxies
        with more usable pixels count more); one per galaxy ``(batch,)``;
        one per galaxy and line ``(batch, n_lines)``; or the per-pixel
        weighted squared errors ``w (x - x_hat)^2`` (unnormalised).

    Returns
    -------
    tensor

    Examples
    --------
    One galaxy, two lines of two pixels; the last pixel is masked (NaN):

    >>> import torch
    >>> from ifsrepr.models import reconstruction_loss
    >>> x = torch.tensor([[[1.0, 2.0], [3.0, float("nan")]]])
    >>> x_hat = torch.tensor([[[1.5, 2.0], [2.0, 0.0]]])
    >>> w = torch.tensor([[[4.0, 1.0], [1.0, 1.0]]])
    >>> reconstruction_loss(x_hat, x, w)  # (4 * 0.25 + 0 + 1) / (4 + 1 + 1)
    tensor(0.3333)
    >>> reconstruction_loss(x_hat, x, w, kind="masked")  # (0.25 + 0 + 1) / 3
    tensor(0.4167)
    >>> reconstruction_loss(x_hat, x, w, reduction="line")
    tensor([[0.2000, 1.0000]])
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}; got {reduction!r}")
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} differ in shape")
    target, w = _usable(x, weight)
    if kind == "masked":
        w = (w > 0).to(x_hat.dtype)
    elif kind == "mse":
        w = torch.ones_like(target)
    w = w.to(x_hat.dtype)
    squared = w * (target.to(x_hat.dtype) - x_hat) ** 2
    if reduction == "none":
        return squared
    if reduction == "mean":
        dims: tuple[int, ...] = tuple(range(x.dim()))
    elif reduction == "galaxy":
        dims = tuple(range(1, x.dim()))
    else:
        dims = tuple(range(2, x.dim()))
    numerator = squared.sum(dims)
    denominator = w.sum(dims)
    # clamp_min keeps the division finite (and its gradient) where nothing is usable.
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-30), 0.0)


def kl_divergence(
    mu: torch.Tensor, logvar: torch.Tensor, *, reduction: str = "mean"
) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` summed over latent dimensions.

    Parameters
    ----------
    mu, logvar : tensor
        ``(batch, latent_dim)``.
    reduction : {"mean", "galaxy"}
        Mean over the batch, or one value per galaxy.

    Returns
    -------
    tensor
        A scalar, or ``(batch,)``.

    Examples
    --------
    >>> import torch
    >>> from ifsrepr.models import kl_divergence
    >>> kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3))  # already the prior
    tensor(0.)
    >>> kl_divergence(torch.ones(2, 3), torch.zeros(2, 3), reduction="galaxy")
    tensor([1.5000, 1.5000])
    """
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)
    if reduction == "galaxy":
        return kl
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'galaxy'; got {reduction!r}")
    return kl.mean()


class AutoencoderLoss(nn.Module):
    """Reconstruction loss, plus ``beta`` times the KL term for a VAE.

    The KL term (per galaxy, summed over latent dimensions, averaged over
    the batch) is divided by the number of values per galaxy
    (``n_lines * H * W``), putting it on the per-pixel scale of the
    reconstruction term, so ``beta`` means the same for any image size.

    Parameters
    ----------
    kind : {"weighted", "masked", "mse"}
        Reconstruction error (see `reconstruction_loss`).
    beta : float
        Weight of the KL term (ignored when the model returns no ``mu``/``logvar``).

    Examples
    --------
    >>> import torch
    >>> from ifsrepr.models import AutoencoderLoss
    >>> loss_fn = AutoencoderLoss()
    >>> x = torch.zeros(2, 3, 1, 4, 4)
    >>> loss, parts = loss_fn(x + 1, x, torch.ones_like(x))
    >>> float(loss), sorted(parts)
    (1.0, ['kl', 'reconstruction'])
    """

    def __init__(self, kind: str = "weighted", beta: float = 1.0) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.kind = kind
        self.beta = float(beta)

    def forward(
        self,
        x_hat: torch.Tensor,
        x: torch.Tensor,
        weight: torch.Tensor | None = None,
        extras: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and its parts (``reconstruction``, ``kl``), the parts detached."""
        recon = reconstruction_loss(x_hat, x, weight, kind=self.kind)
        kl = torch.zeros((), dtype=recon.dtype, device=recon.device)
        total = recon
        if extras and "mu" in extras and "logvar" in extras:
            per_value = x[0].numel()
            kl = kl_divergence(extras["mu"], extras["logvar"]) / per_value
            total = recon + self.beta * kl
        return total, {"reconstruction": recon.detach(), "kl": kl.detach()}

    def extra_repr(self) -> str:
        """Summary shown by ``repr(module)``."""
        return f"kind={self.kind!r}, beta={self.beta}"
