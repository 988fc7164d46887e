"""The PCA baseline (architecture ``pca``): a linear encoder with the networks' API.

Each galaxy's normalised stack is flattened to one vector of
``n_lines * H * W`` values and projected on the leading principal components
of the training set. It answers "how much does the ConvLSTM gain over a linear
model?" and is fitted in closed form (`PCABaseline.fit`) instead of by an
optimiser (``trained_by_gradient`` is False).

Masked pixels
-------------
PCA needs complete vectors, so masked (or non-finite) pixels are filled:

``fill="zero"``
    with 0, the value the neural networks see for a masked pixel;
``fill="mean"``
    with the training mean of that pixel;
``fill="iterative"`` (default)
    with the mean first, then repeatedly with the current PCA reconstruction
    (``n_iter`` rounds of the EM-like imputation of e.g. Ilin & Raiko 2010).
    This converges towards the PCA fitted to the observed pixels only, so
    the masks shape the components as little as possible. Encoding a new
    galaxy does the same rounds with the fitted components, which
    approaches a least-squares fit of the latent to its observed pixels.

The inverse-variance weights are used only to tell masked from unmasked
pixels; the fit itself is unweighted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .base import SequenceAutoencoder, check_choice, check_int
from .errors import ModelInputError, NotFittedError

__all__ = ["PCABaseline"]


class PCABaseline(SequenceAutoencoder):
    """Principal-component encoder/decoder of flattened line-map stacks.

    Parameters
    ----------
    n_lines : int
        Number of line maps.
    image_size : int or (int, int)
        Map size.
    n_components : int
        Number of components, the latent size. With fewer training galaxies
        than components, the surplus components are zero (and so are their
        latent values), so the latent size stays fixed.
    fill : {"iterative", "mean", "zero"}
        How masked pixels are filled (see the module docstring).
    n_iter : int
        Imputation rounds for ``fill="iterative"`` (fit and encode).
    seed : int
        Seed of the randomised SVD used for large training sets.

    Attributes
    ----------
    mean_ : tensor
        ``(n_lines * H * W,)`` training mean.
    components_ : tensor
        ``(n_components, n_lines * H * W)`` orthonormal components.
    explained_variance_ : tensor
        ``(n_components,)`` variance along each component.
    explained_variance_ratio_ : tensor
        ``explained_variance_`` over the total variance of the (filled) training set.

    Examples
    --------
    Forty stacks of three 8x8 maps that mix two patterns, with a masked strip:

    >>> import torch
    >>> from ifsrepr.models import PCABaseline
    >>> g = torch.Generator().manual_seed(0)
    >>> patterns, mix = torch.randn(2, 3, 8, 8, generator=g), torch.randn(40, 2, generator=g)
    >>> x = torch.einsum("nk,klhw->nlhw", mix, patterns)
    >>> x = x + 0.01 * torch.randn(40, 3, 8, 8, generator=g)
    >>> w = torch.ones_like(x)
    >>> w[:, 0, :2] = 0
    >>> pca = PCABaseline(3, 8, n_components=2).fit(x, w)
    >>> pca
    PCABaseline(n_lines=3, image_size=(8, 8), latent_dim=2, fill='iterative', fitted=True)
    >>> round(float(pca.explained_variance_ratio_.sum()), 3)
    1.0
    >>> x_hat, latent, _ = pca(x[:2], w[:2])
    >>> tuple(latent.shape), bool((x_hat - x[:2])[w[:2] > 0].abs().max() < 0.1)
    ((2, 2), True)
    """

    architecture = "pca"
    trained_by_gradient = False
    #: Up to this many training galaxies the SVD is exact (through the Gram
    #: matrix); above it a randomised SVD keeps memory and time linear in N.
    EXACT_MAX_SAMPLES = 4096

    def __init__(
        self,
        n_lines: int = 19,
        image_size: int | Sequence[int] = 64,
        *,
        n_components: int = 128,
        fill: str = "iterative",
        n_iter: int = 10,
        seed: int = 0,
    ) -> None:
        name = self.architecture
        options: dict[str, Any] = {
            "n_components": n_components,
            "fill": fill,
            "n_iter": n_iter,
            "seed": seed,
        }
        super().__init__(
            n_lines, image_size, check_int(name, "n_components", n_components), options
        )
        self.fill = check_choice(name, "fill", fill, ("iterative", "mean", "zero"))
        self.n_iter = check_int(name, "n_iter", n_iter, minimum=0)
        self.seed = check_int(name, "seed", seed, minimum=0)
        size = self.n_features
        self.register_buffer("mean_", torch.zeros(size))
        self.register_buffer("components_", torch.zeros(n_components, size))
        self.register_buffer("explained_variance_", torch.zeros(n_components))
        self.register_buffer("total_variance_", torch.zeros(()))
        # A buffer, so that a loaded state dict says whether the model was fitted.
        self.register_buffer("fitted_", torch.zeros((), dtype=torch.bool))

    @property
    def n_features(self) -> int:
        """Length of a flattened stack, ``n_lines * H * W``."""
        return self.n_lines * self.image_size[0] * self.image_size[1]

    @property
    def explained_variance_ratio_(self) -> torch.Tensor:
        """Fraction of the training variance along each component."""
        return self.explained_variance_ / self.total_variance_.clamp_min(1e-30)

    # -- fitting -----------------------------------------------------------------------------------

    def _flat(
        self, x: torch.Tensor | np.ndarray, weight: torch.Tensor | np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(x)
        if weight is not None:
            weight = torch.as_tensor(weight)
        x_clean, valid, _ = self._prepare(x, weight)
        batch = x_clean.shape[0]
        return x_clean.reshape(batch, -1), valid.reshape(batch, -1).bool()

    def fit(
        self, x: torch.Tensor | np.ndarray, weight: torch.Tensor | np.ndarray | None = None
    ) -> PCABaseline:
        """Fit the components to a training set.

        Parameters
        ----------
        x : tensor or array
            ``(n_galaxies, n_lines, 1, H, W)`` (or without the 1) normalised maps.
        weight : tensor or array, optional
            Same shape; zero (or non-finite) marks a masked pixel.

        Returns
        -------
        self
        """
        with torch.no_grad():
            data, valid = self._flat(x, weight)
            if data.shape[0] < 2:
                raise ModelInputError("the pca baseline needs at least 2 galaxies to fit")
            filled = self._initial_fill(data, valid, self._observed_mean(data, valid))
            mean, components, variance = self._svd(filled)
            for _ in range(self.n_iter if self.fill == "iterative" else 0):
                recon = (filled - mean) @ components.T @ components + mean
                filled = torch.where(valid, data, recon)
                mean, components, variance = self._svd(filled)
            k = components.shape[0]
            self.mean_.copy_(mean)
            self.components_.zero_()
            self.components_[:k] = components
            self.explained_variance_.zero_()
            self.explained_variance_[:k] = variance
            self.total_variance_.fill_(filled.var(dim=0).sum())
            self.fitted_.fill_(True)
        return self

    @staticmethod
    def _observed_mean(data: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        count = valid.sum(0)
        total = torch.where(valid, data, 0.0).sum(0)
        # A pixel never observed in training gets 0, the networks' fill value.
        return torch.where(count > 0, total / count.clamp_min(1), 0.0)

    def _initial_fill(
        self, data: torch.Tensor, valid: torch.Tensor, mean: torch.Tensor
    ) -> torch.Tensor:
        if self.fill == "zero":
            return data  # clean_input already put 0 in masked pixels
        return torch.where(valid, data, mean)

    def _svd(self, filled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, leading components (rows) and their variances of ``filled``."""
        n_samples = filled.shape[0]
        mean = filled.mean(0)
        centred = filled - mean
        k = min(self.latent_dim, n_samples - 1, centred.shape[1])
        if n_samples <= self.EXACT_MAX_SAMPLES:
            # N x N Gram matrix in float64: exact, deterministic and cheap for N << D.
            gram = (centred @ centred.T).double()
            eigval, eigvec = torch.linalg.eigh(gram)
            order = torch.argsort(eigval, descending=True)[:k]
            eigval = eigval[order].clamp_min(0.0)
            singular = eigval.sqrt()
            # V = X^T U / s; a zero singular value gives a zero (unused) component.
            scale = torch.where(singular > 0, 1.0 / singular.clamp_min(1e-300), 0.0)
            components = ((centred.T.double() @ eigvec[:, order]) * scale).T.to(filled.dtype)
            variance = (eigval / (n_samples - 1)).to(filled.dtype)
        else:
            with torch.random.fork_rng(devices=[filled.device] if filled.is_cuda else []):
                torch.manual_seed(self.seed)
                _, singular, v = torch.svd_lowrank(centred, q=min(k + 10, *centred.shape), niter=4)
            components = v[:, :k].T.contiguous()
            variance = singular[:k] ** 2 / (n_samples - 1)
        return mean, components, variance

    # -- the API -----------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not bool(self.fitted_):
            raise NotFittedError(
                "this pca model is not fitted yet: call fit(x, weight) on training stacks first"
            )

    def encode(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Project a batch on the components; masked pixels are filled as in `fit`."""
        self._check_fitted()
        data, valid = self._flat(x, weight)
        mean, components = self.mean_, self.components_
        filled = self._initial_fill(data, valid, mean.expand_as(data))
        latent = (filled - mean) @ components.T
        for _ in range(self.n_iter if self.fill == "iterative" else 0):
            filled = torch.where(valid, data, latent @ components + mean)
            latent = (filled - mean) @ components.T
        return latent

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``(batch, n_lines, 1, H, W)`` maps from ``(batch, n_components)``."""
        self._check_fitted()
        flat = latent.to(self.mean_.dtype) @ self.components_ + self.mean_
        return flat.view(latent.shape[0], self.n_lines, 1, *self.image_size)

    def forward(
        self, x: torch.Tensor, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Encode and decode; returns ``(x_hat, latent, {})`` like the networks."""
        latent = self.encode(x, weight)
        x_hat = self.decode(latent)
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x_hat = x_hat.squeeze(2)
        return x_hat, latent, {}

    def extra_repr(self) -> str:
        """Summary shown by ``repr(module)``."""
        return f"{super().extra_repr()}, fill={self.fill!r}, fitted={bool(self.fitted_)}"
