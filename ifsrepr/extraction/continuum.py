"""The stellar continuum under the emission lines: template fits for every spaxel at once.

A straight local continuum cannot follow the stellar Balmer absorption troughs
under Hβ and Hα, so without this step the line fluxes come out net of the
absorption (on the mock survey, Hβ by 10-40 % in star-forming galaxies, and
negative in retired ones). `fit_stellar_continuum` models the spectrum of every
spaxel, outside the emission lines, in windows around the channels an
extractor reads, as

    ``sum_t a_t T_t(lambda / ((1 + z)(1 + v/c))) A_MW(lambda) + sum_w sum_d b_wd P_d(x_w)``

with non-negative weights ``a_t`` of the continuum templates of
`ifsrepr.templates` (real MaNGA spectra cleaned of their emission lines; the
same weights in every window), shifted to the galaxy's redshift and the
spaxel's stellar velocity ``v`` and dimmed by the Milky Way (O'Donnell 1994),
plus, in each window ``w``, an additive Legendre polynomial of low degree
(free sign) for the level and slope the templates do not match. The
extractors subtract the model and then measure the lines as before.

The steps, for all spaxels at once:

1. Mask ±``mask_kms`` around every line of the DAP table at the spaxel's gas
   velocity; fit, at the gas velocity, with the templates as they are.
2. Grow each mask over the contiguous positive residuals around its line (the
   wings of lines broader than the mask) and take one Gauss-Newton step of
   the stellar velocity from the fit's residuals.
3. Fit again at that velocity with the templates broadened by each extra
   dispersion of a small grid, keeping per spaxel the one of lowest chi^2.
4. Compare with the polynomials alone: if the templates lower the galaxy's
   chi^2 by no more than noise would (a featureless continuum), use the
   polynomials alone, since non-negative templates fitted to noise can only
   add absorption.

Spaxels are grouped by velocity (rounded to 10 km/s, so the templates are
shifted once per group); the weighted normal equations of a group come from a
few matrix products, and a batched Lawson-Hanson active-set solver
(`nnls_normal`) finds the non-negative weights of all spaxels together, after
eliminating the polynomial coefficients (they are never constrained), so
that its steps solve for the templates alone.

The model carries no uncertainty into the line fluxes' inverse variances; and
non-negative fits are biased where the continuum's S/N is low (the template
mixture is then picked by the noise). On the mock survey the continuum under
Hα in faint retired galaxies is off by a few percent of the (weak) line.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from scipy import ndimage

from .._ranges import merge_ranges
from ..cube import IFSCube
from ..exceptions import DataModelError
from ..extinction import attenuation
from ..lines import EmissionLine, dap_line_table
from ..templates import LOG10_STEP, REST_LOG10_START, load_templates
from .grid import SPEED_OF_LIGHT_KMS

__all__ = [
    "CONTINUUM_METHODS",
    "StellarContinuum",
    "fit_stellar_continuum",
    "nnls_normal",
]

C = SPEED_OF_LIGHT_KMS
#: The ``continuum=`` choices of the extractors.
CONTINUUM_METHODS = ("templates", "linear")
#: Extra Gaussian broadening (km/s, in quadrature) tried for the templates, which
#: already carry MaNGA's instrumental resolution and their own galaxy's dispersion.
DEFAULT_DISPERSIONS = (0.0, 150.0)
#: Half-width of the mask around every emission line (km/s).
DEFAULT_MASK_KMS = 400.0
#: Rest-frame Angstrom added on both sides of the channels an extractor reads.
DEFAULT_PAD_ANGSTROM = 100.0
#: The templates are used if they lower the chi^2 of the polynomials alone by more
#: than this per template and spaxel (noise alone lowers it by about 0.5).
TEMPLATE_CHI2 = 2.0
#: How far (km/s) a line mask may grow over the wings of a broad line.
GROWTH_LIMIT_KMS = 2500.0
_VELOCITY_QUANTUM = 10.0  # km/s: spaxels within this share shifted templates


def check_continuum(continuum: str) -> str:
    """Validate the ``continuum=`` option of an extractor."""
    if continuum not in CONTINUUM_METHODS:
        raise DataModelError(
            f"continuum must be one of {', '.join(map(repr, CONTINUUM_METHODS))}, got {continuum!r}"
        )
    return continuum


@dataclass
class StellarContinuum:
    """The fitted stellar continuum of a cube on some channel windows.

    Attributes
    ----------
    windows : list of (start, stop)
        Channel ranges (``start:stop``) that were fitted; disjoint, sorted.
    spaxels : ndarray
        Flat indices of the spaxels that were fitted (the others have no
        usable data there); the continuum of the others is 0.
    models : list of ndarray
        For each window, the continuum ``(stop - start, spaxels.size)``.
    fitted : ndarray
        Bool ``(n_spaxels,)``: the spaxels that were fitted.
    sigma : ndarray
        The extra broadening picked per spaxel (km/s).
    velocity : ndarray
        The stellar velocity used per spaxel (km/s, relative to the redshift).
    settings : dict
        What was done, for ``meta['extraction']``.

    Examples
    --------
    `fit_stellar_continuum` makes these; by hand, two spaxels of which the
    second was fitted on channels 10 to 12:

    >>> import numpy as np
    >>> from ifsrepr.extraction.continuum import StellarContinuum
    >>> fit = StellarContinuum(
    ...     windows=[(10, 13)], spaxels=np.array([1]), models=[np.array([[2.0], [2.5], [3.0]])],
    ...     fitted=np.array([False, True]), sigma=np.zeros(2), velocity=np.zeros(2))
    >>> fit.model(11, 13)
    array([[0. , 2.5],
           [0. , 3. ]])
    >>> flux = np.array([[0.0, 7.5], [0.0, 3.0]])
    >>> fit.subtract(11, 13, flux, usable=flux > 0)
    array([[0., 5.],
           [0., 0.]])
    """

    windows: list[tuple[int, int]]
    spaxels: np.ndarray
    models: list[np.ndarray]
    fitted: np.ndarray
    sigma: np.ndarray
    velocity: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def model(self, start: int, stop: int) -> np.ndarray:
        """The continuum on channels ``start:stop``, ``(stop - start, n_spaxels)``."""
        for (lo, hi), values in zip(self.windows, self.models, strict=True):
            if lo <= start and stop <= hi:
                out = np.zeros((stop - start, self.fitted.size))
                out[:, self.spaxels] = values[start - lo : stop - lo]
                return out
        raise ValueError(f"channels {start}:{stop} were not covered by the continuum fit")

    def subtract(
        self,
        start: int,
        stop: int,
        flux: np.ndarray,
        usable: np.ndarray,
        spaxels: np.ndarray | None = None,
    ) -> np.ndarray:
        """``flux`` (channels ``start:stop``) minus the continuum; unusable values stay 0.

        ``spaxels``: the flat indices of ``flux``'s columns, if not all spaxels.
        """
        model = self.model(start, stop)
        if spaxels is not None:
            model = model[:, spaxels]
        return np.where(usable, flux - model, 0.0)


# ----------------------------------------------------------------------------
# batched non-negative least squares
# ----------------------------------------------------------------------------
def _solve_passive(gram: np.ndarray, rhs: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """Least squares restricted to the ``passive`` columns (others 0), for every row."""
    m = gram.shape[-1]
    both = passive[:, :, None] & passive[:, None, :]
    eye = np.eye(m, dtype=bool)[None]
    # A relative ridge keeps collinear templates and empty columns solvable.
    system = np.where(both, gram, np.where(eye, 1.0, 0.0)) + _ridge(gram, passive)
    solution = np.linalg.solve(system, np.where(passive, rhs, 0.0)[..., None])[..., 0]
    return np.where(passive, solution, 0.0)


def nnls_normal(
    gram: np.ndarray, rhs: np.ndarray, constrained: np.ndarray, max_iter: int | None = None
) -> np.ndarray:
    """Minimise ``x G x - 2 b x`` with ``x_j >= 0`` where ``constrained[j]``, for every row.

    A batched Lawson-Hanson active-set method working on the normal
    equations (``G = A^T W A``, ``b = A^T W y``), all rows at once; the
    unconstrained columns (a polynomial) are always free, and are
    eliminated first (a Schur complement) so that the active set works on
    the constrained columns alone.

    Parameters
    ----------
    gram : array, shape (N, M, M)
    rhs : array, shape (N, M)
    constrained : bool array, shape (M,)
    max_iter : int, optional
        Outer iterations (default ``3 M``).

    Returns
    -------
    array, shape (N, M)

    Examples
    --------
    The non-negative least-squares solution of ``A x = y``, from its normal equations:

    >>> import numpy as np
    >>> from ifsrepr.extraction.continuum import nnls_normal
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> y = np.array([1.0, -1.0, 0.0])
    >>> gram, rhs = (a.T @ a)[None], (a.T @ y)[None]  # a batch of one row
    >>> nnls_normal(gram, rhs, constrained=[True, True])  # doctest: +FLOAT_CMP
    array([[0.5, 0. ]])

    With the second column free (like a polynomial term), the plain least-squares answer:

    >>> nnls_normal(gram, rhs, constrained=[True, False])  # doctest: +FLOAT_CMP
    array([[ 1., -1.]])
    """
    n, m = rhs.shape
    constrained = np.asarray(constrained, dtype=bool)
    max_iter = 3 * m if max_iter is None else max_iter
    scale = np.maximum(np.abs(rhs).max(axis=1), 1e-300)
    if constrained.all() or not constrained.any():
        return _active_set(gram, rhs, constrained, max_iter, scale)
    # The free columns are always in the solution: eliminate them (a Schur
    # complement) and run the active set on the constrained ones alone. For
    # free coefficients at their optimum the gradient on the constrained
    # columns is the reduced problem's, so the iterates are the same; each
    # step then solves a system of the constrained columns only (7 templates
    # rather than 30 unknowns with the polynomials of the continuum fit).
    c, f = np.flatnonzero(constrained), np.flatnonzero(~constrained)
    g_cc, g_cf, g_ff = gram[:, c][:, :, c], gram[:, c][:, :, f], gram[:, f][:, :, f]
    g_ff = g_ff + _ridge(g_ff, np.ones((n, f.size), dtype=bool))
    # G_ff^-1 [G_fc, b_f] in one batched solve.
    right = np.concatenate([g_cf.transpose(0, 2, 1), rhs[:, f, None]], axis=2)
    solved = np.linalg.solve(g_ff, right)
    through, free_alone = solved[:, :, :-1], solved[:, :, -1]
    reduced_gram = g_cc - g_cf @ through
    reduced_rhs = rhs[:, c] - np.einsum("ncf,nf->nc", g_cf, free_alone)
    x_c = _active_set(reduced_gram, reduced_rhs, np.ones(c.size, dtype=bool), max_iter, scale)
    x = np.empty((n, m))
    x[:, c] = x_c
    x[:, f] = free_alone - np.einsum("nfc,nc->nf", through, x_c)
    return x


def _ridge(gram: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """The relative ridge `_solve_passive` adds: 1e-9 of the diagonal, on passive columns."""
    diagonal = np.einsum("nii->ni", gram)
    return (1e-9 * np.where(passive, diagonal, 0.0))[:, :, None] * np.eye(gram.shape[-1])


def _active_set(gram, rhs, constrained, max_iter, scale):
    """Lawson-Hanson on every row; ``scale`` (N,) sets the tolerances."""
    n, m = rhs.shape
    passive = np.broadcast_to(~constrained, (n, m)).copy()
    x = _solve_passive(gram, rhs, passive)
    for _ in range(max_iter):
        gradient = rhs - np.einsum("nij,nj->ni", gram, x)
        candidate = constrained & ~passive & (gradient > 1e-10 * scale[:, None])
        rows = np.flatnonzero(candidate.any(axis=1))
        if rows.size == 0:
            break
        best = np.argmax(np.where(candidate[rows], gradient[rows], -np.inf), axis=1)
        passive[rows, best] = True
        for _ in range(m):
            z = _solve_passive(gram[rows], rhs[rows], passive[rows])
            infeasible = constrained & passive[rows] & (z <= 0)
            stuck = infeasible.any(axis=1)
            done = rows[~stuck]
            x[done] = z[~stuck]
            if not stuck.any():
                break
            rows, z, infeasible = rows[stuck], z[stuck], infeasible[stuck]
            current = x[rows]
            with np.errstate(divide="ignore", invalid="ignore"):
                steps = np.where(infeasible, current / (current - z), np.inf)
            alpha = np.clip(np.nan_to_num(steps.min(axis=1), nan=0.0, posinf=1.0), 0.0, 1.0)
            current = current + alpha[:, None] * (z - current)
            drop = constrained & passive[rows] & (current <= 1e-12 * scale[rows, None])
            drop |= infeasible & (alpha[:, None] >= steps)  # the blocking column(s)
            passive[rows] &= ~drop
            x[rows] = np.where(passive[rows], current, 0.0)
    return x


# ----------------------------------------------------------------------------
# templates on the cube's grid
# ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _broadened_templates(kinds: tuple[str, ...], sigma_kms: float) -> np.ndarray:
    """The library templates of ``kinds``, convolved with a Gaussian of ``sigma_kms``."""
    library = load_templates()
    chosen = [i for i, kind in enumerate(library.kinds) if kind in kinds]
    if not chosen:
        raise DataModelError(f"no continuum templates of kinds {kinds}")
    templates = library.templates[chosen]
    if sigma_kms > 0:
        pixels = sigma_kms / (C * np.log(10) * LOG10_STEP)
        templates = ndimage.gaussian_filter1d(templates, pixels, axis=1, mode="nearest")
    templates = np.array(templates, dtype=float)
    templates.flags.writeable = False
    return templates


def _sample(templates: np.ndarray, log_rest: np.ndarray) -> np.ndarray:
    """Templates (T, R) at rest log10 wavelengths ``log_rest`` (K,), linearly: (K, T)."""
    position = np.clip((log_rest - REST_LOG10_START) / LOG10_STEP, 0, templates.shape[1] - 1.000001)
    low = position.astype(np.int64)
    weight = (position - low)[:, None]
    return templates[:, low].T * (1 - weight) + templates[:, low + 1].T * weight


def _legendre(wave: np.ndarray, degree: int) -> np.ndarray:
    """Legendre polynomials 0..degree of log(wave) mapped onto [-1, 1]: (K, degree + 1)."""
    x = np.log(wave)
    x = 2 * (x - x[0]) / (x[-1] - x[0]) - 1 if x[-1] > x[0] else np.zeros_like(x)
    return np.polynomial.legendre.legvander(x, degree)


# ----------------------------------------------------------------------------
# the fit
# ----------------------------------------------------------------------------
def _emission_mask(wave, redshift, velocity, rest_lines, half_width_kms):
    """(K, N) True on channels within ±half_width of any emission line at the gas velocity."""
    shift = (1 + redshift) * (1 + velocity / C)  # (N,)
    margin = half_width_kms / C
    masked = np.zeros((wave.size, velocity.size), dtype=bool)
    for line in rest_lines:
        # Only the channels some spaxel's mask reaches (the grid increases).
        lo = np.searchsorted(wave, line * shift.min() * (1 - margin))
        hi = np.searchsorted(wave, line * shift.max() * (1 + margin), side="right")
        if hi > lo:
            masked[lo:hi] |= np.abs(wave[lo:hi, None] / (line * shift[None, :]) - 1) < margin
    return masked


def _grow_mask(wave, masked, significance, redshift, velocity, rest_lines, reach_kms):
    """Extend the line masks outwards over contiguous significant positive residuals.

    ``significance`` (K, N) is the residual of a first fit in units of its
    noise. Starting from each line's centre, a channel joins the mask while
    every channel between it and the centre is masked already or has a
    3-channel mean residual above 2 sigma, up to ``reach_kms`` from the line:
    the wings of lines broader than the fixed mask are then left out of the
    continuum fit, while a noise spike leaves the mask as it was.
    """
    smoothed = ndimage.uniform_filter1d(significance, 3, axis=0, mode="nearest")
    open_ = masked | (smoothed * np.sqrt(3.0) > 2.0)
    shift = (1 + redshift) * (1 + velocity / C)
    reach = reach_kms / C
    lo_rest, hi_rest = wave.min() / shift.max(), wave.max() / shift.min()
    near = rest_lines[(rest_lines * (1 + reach) >= lo_rest) & (rest_lines * (1 - reach) <= hi_rest)]
    grown = masked.copy()
    for line in near:
        # Only the channels any spaxel's zone reaches (the grid increases).
        lo = np.searchsorted(wave, line * shift.min() * (1 - reach))
        hi = np.searchsorted(wave, line * shift.max() * (1 + reach), side="right")
        if hi <= lo:
            continue
        offset = wave[lo:hi, None] / (line * shift[None, :]) - 1
        zone = np.abs(offset) < reach
        right = zone & (offset > 0)
        left = zone & (offset <= 0)
        allowed = open_[lo:hi]
        # A channel joins if all channels from the centre to it are open.
        grown[lo:hi] |= right & np.logical_and.accumulate(allowed | ~right, axis=0)
        grown[lo:hi] |= left & np.logical_and.accumulate((allowed | ~left)[::-1], axis=0)[::-1]
    return grown


class _Problem:
    """The channels of all windows of one fit, concatenated, and what is fixed about them.

    Window ``w`` holds channels ``slices[w]`` of the concatenation and its
    own Legendre polynomials, columns ``poly_columns[w]`` of the polynomial
    part of the design.
    """

    def __init__(self, wave, sizes, transmission, redshift, kinds, degrees):
        self.wave = wave
        self.log_rest = np.log10(wave) - np.log10(1 + redshift)
        self.transmission = transmission
        self.kinds = kinds
        ends = np.cumsum([0, *sizes])
        self.slices = [slice(a, b) for a, b in zip(ends[:-1], ends[1:], strict=True)]
        self.polys = [
            _legendre(wave[part], degree) for part, degree in zip(self.slices, degrees, strict=True)
        ]
        columns = np.cumsum([0] + [degree + 1 for degree in degrees])
        self.poly_columns = [slice(a, b) for a, b in zip(columns[:-1], columns[1:], strict=True)]
        self.n_poly = int(columns[-1])
        self.n_templates = _broadened_templates(kinds, 0.0).shape[0]

    def templates(self, sigma: float, velocity: float) -> np.ndarray:
        """(K, T) templates broadened by ``sigma``, shifted by ``velocity``, dimmed, normalised."""
        templates = _broadened_templates(self.kinds, float(sigma))
        shifted = _sample(templates, self.log_rest - np.log10(1 + velocity / C))
        shifted *= self.transmission[:, None]
        return shifted / np.maximum(np.abs(shifted).mean(axis=0), 1e-30)

    def windows(self):
        """(channel slice, polynomials, polynomial columns) of each window."""
        return zip(self.slices, self.polys, self.poly_columns, strict=True)

    def combine(self, weights, sigma, velocity) -> np.ndarray:
        """(K, N): each spaxel's templates combined with its ``weights`` (N, T)."""
        out = np.empty((self.wave.size, weights.shape[0]))
        quantised = _quantise(velocity)
        for s in np.unique(sigma):
            for v in np.unique(quantised[sigma == s]):
                members = np.flatnonzero((sigma == s) & (quantised == v))
                out[:, members] = self.templates(s, v) @ weights[members].T
        return out


def _quantise(velocity):
    return np.round(velocity / _VELOCITY_QUANTUM) * _VELOCITY_QUANTUM


class _Weighted:
    """What the normal equations need of the data and weights alone, computed once.

    Every fit with the same weights (each dispersion tried, the polynomials
    alone) shares these: the weighted flux, ``y^T W y``, and the polynomial
    blocks of the Gram matrices and right-hand sides, which do not depend on
    the templates.
    """

    def __init__(self, problem, flux, weight):
        self.flux, self.weight = flux, weight
        self.weighted_flux = weight * flux
        self.y_w_y = np.einsum("kn,kn->n", self.weighted_flux, flux)
        n = flux.shape[1]
        self.poly_gram = np.zeros((n, problem.n_poly, problem.n_poly))
        self.poly_rhs = np.empty((n, problem.n_poly))
        for part, poly, cols in problem.windows():
            q = poly.shape[1]
            outer = (poly[:, :, None] * poly[:, None, :]).reshape(-1, q * q)
            self.poly_gram[:, cols, cols] = (weight[part].T @ outer).reshape(n, q, q)
            self.poly_rhs[:, cols] = self.weighted_flux[part].T @ poly


class _Normal:
    """Weighted normal equations of many spaxels for one dispersion and some templates.

    The unknowns are the template weights, then the polynomial coefficients
    of each window. Spaxels are grouped by (quantised) velocity so that each
    group sharing shifted templates gets its Gram matrices from a few matrix
    products; the polynomial blocks are block-diagonal (one per window) and
    come from ``data`` (a `_Weighted`), shared by the fits with the same weights.
    """

    def __init__(self, problem, data, velocity, sigma, columns):
        weight, weighted_flux = data.weight, data.weighted_flux
        n = weight.shape[1]
        t, p = columns.size, problem.n_poly
        m = t + p
        self.problem, self.columns = problem, columns
        quantised = _quantise(velocity)
        order = np.argsort(quantised, kind="stable")
        groups, starts = np.unique(quantised[order], return_index=True)
        #: The spaxels (caller's order) of each velocity group.
        self.members = [order[a:b] for a, b in zip(starts, [*starts[1:], n], strict=True)]
        self.y_w_y = data.y_w_y
        gram = np.zeros((n, m, m))
        gram[:, t:, t:] = data.poly_gram
        rhs = np.empty((n, m))
        rhs[:, t:] = data.poly_rhs
        self.templates = []
        # The template block is symmetric: form its upper triangle only.
        upper, lower = np.triu_indices(t)
        for v, members in zip(groups, self.members, strict=True):
            templates = problem.templates(sigma, v)[:, columns]
            self.templates.append(templates)
            if not t:
                continue
            group_weight = weight[:, members]
            block = np.empty((members.size, m, m))
            pairs = templates[:, upper] * templates[:, lower]
            triangle = group_weight.T @ pairs
            block[:, upper, lower] = triangle
            block[:, lower, upper] = triangle
            for part, poly, cols in problem.windows():
                q = poly.shape[1]
                cross = (templates[part][:, :, None] * poly[:, None, :]).reshape(-1, t * q)
                side = (group_weight[part].T @ cross).reshape(members.size, t, q)
                block[:, :t, t + cols.start : t + cols.stop] = side
                block[:, t + cols.start : t + cols.stop, :t] = side.transpose(0, 2, 1)
            gram[members, :t, :] = block[:, :t, :]
            gram[members, t:, :t] = block[:, t:, :t]
            rhs[members, :t] = weighted_flux[:, members].T @ templates
        self.gram = gram
        self.rhs = rhs

    def chi2(self, coefficients):
        """chi^2 of each spaxel for coefficients (N, M)."""
        return (
            self.y_w_y
            - 2 * np.einsum("nm,nm->n", coefficients, self.rhs)
            + np.einsum("nm,nml,nl->n", coefficients, self.gram, coefficients)
        )

    def model(self, coefficients, rows=None, out=None):
        """The model (K, N) of each spaxel (only ``rows`` filled if given, others 0).

        With ``out``, the ``rows`` of it are written and the rest left as they are.
        """
        t = self.columns.size
        if out is None:
            out = np.zeros((self.problem.wave.size, coefficients.shape[0]))
        take = np.ones(coefficients.shape[0], dtype=bool) if rows is None else rows
        for templates, group in zip(self.templates, self.members, strict=True):
            members = group[take[group]]
            if not members.size:
                continue
            values = templates @ coefficients[members, :t].T
            for part, poly, cols in self.problem.windows():
                values[part] += poly @ coefficients[members, t + cols.start : t + cols.stop].T
            out[:, members] = values
        return out


def _population_fit(problem, data, velocity, dispersions):
    """Non-negative templates (shared by all windows) + a polynomial per window.

    Each dispersion of ``dispersions`` is tried and the best per spaxel kept.
    Returns the template weights (N, T), the picked dispersion (N,), the
    model (K, N) and its chi^2 (N,).
    """
    k, n = data.flux.shape
    t = problem.n_templates
    columns = np.arange(t)
    constrained = np.arange(t + problem.n_poly) < t
    best_chi2 = np.full(n, np.inf)
    best_weights = np.zeros((n, t))
    best_sigma = np.zeros(n)
    best_model = np.zeros((k, n))
    for sigma in dispersions:
        normal = _Normal(problem, data, velocity, sigma, columns)
        coefficients = nnls_normal(normal.gram, normal.rhs, constrained)
        chi2 = normal.chi2(coefficients)
        better = chi2 < best_chi2
        best_chi2 = np.where(better, chi2, best_chi2)
        best_weights = np.where(better[:, None], coefficients[:, :t], best_weights)
        best_sigma = np.where(better, sigma, best_sigma)
        normal.model(coefficients, better, out=best_model)  # only where better
    return best_weights, best_sigma, best_model, best_chi2


def _polynomial_fit(problem, data):
    """The polynomials alone (no templates): model (K, N) and chi^2 (N,)."""
    normal = _Normal(problem, data, np.zeros(data.flux.shape[1]), 0.0, np.zeros(0, int))
    coefficients = _solve_passive(normal.gram, normal.rhs, np.ones(normal.rhs.shape, bool))
    return normal.model(coefficients), normal.chi2(coefficients)


def _velocity_step(problem, weights, sigma, velocity, flux, weight, model, max_step):
    """One Gauss-Newton step of the stellar velocity per spaxel (km/s), 0 where unconstrained."""
    delta = 20.0
    derivative = (
        problem.combine(weights, sigma, velocity + delta)
        - problem.combine(weights, sigma, velocity - delta)
    ) / (2 * delta)
    information = (weight * derivative**2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        step = (weight * derivative * (flux - model)).sum(axis=0) / information
        error = 1 / np.sqrt(information)
    trusted = np.isfinite(step) & (error < 0.5 * max_step)
    return np.where(trusted, np.clip(step, -max_step, max_step), 0.0)


def _fit_spaxels(
    problem, flux, ivar, usable, velocity, redshift, rest_lines,
    mask_kms, dispersions, velocity_steps, grow_masks,
):  # fmt: skip
    """The fit of `fit_stellar_continuum` on the concatenated windows, all spaxels at once.

    Returns None if no spaxel has enough data, else the fitted spaxels,
    their models (K, n), dispersions, stellar velocities, and whether the
    templates were used.
    """
    k = problem.wave.size
    n_columns = problem.n_templates + problem.n_poly
    present = np.flatnonzero(usable.any(axis=0))
    if not present.size or k <= 2 * n_columns:
        return None
    masked = _emission_mask(problem.wave, redshift, velocity[present], rest_lines, mask_kms)
    weight = np.where(usable[:, present] & ~masked, ivar[:, present], 0.0)
    enough = (weight > 0).sum(axis=0) >= max(3 * n_columns, k // 4)
    spaxels = present[enough]
    if not spaxels.size:
        return None
    weight, v, data, masked = (
        weight[:, enough],
        velocity[spaxels],
        flux[:, spaxels],
        masked[:, enough],
    )
    # The first fit only places the masks and starts the velocity: one dispersion.
    weighted = _Weighted(problem, data, weight)
    weights, sigma, values, chi2 = _population_fit(problem, weighted, v, dispersions[:1])
    if grow_masks:
        # Broad lines: mask their wings too, then fit again.
        significance = (data - values) * np.sqrt(ivar[:, spaxels])
        grown = _grow_mask(
            problem.wave, masked, significance, redshift, v, rest_lines, GROWTH_LIMIT_KMS
        )
        weight = np.where(grown, 0.0, weight)
        weighted = _Weighted(problem, data, weight)
    for _ in range(velocity_steps):
        v = v + _velocity_step(problem, weights, sigma, v, data, weight, values, 100.0)
        weights, sigma, values, chi2 = _population_fit(problem, weighted, v, dispersions)
    if not velocity_steps and (grow_masks or len(dispersions) > 1):
        weights, sigma, values, chi2 = _population_fit(problem, weighted, v, dispersions)
    # A continuum without stellar features (a synthetic one, a quasar's):
    # non-negative templates would only fit noise, and noise can only add
    # absorption. They are used if they lower the galaxy's chi^2 by more
    # than noise would.
    poly_values, poly_chi2 = _polynomial_fit(problem, weighted)
    gain = float((poly_chi2 - chi2).sum())
    use_templates = gain > TEMPLATE_CHI2 * problem.n_templates * spaxels.size
    return spaxels, (values if use_templates else poly_values), sigma, v, use_templates


def _single_threaded_blas():
    """A context in which BLAS runs on one thread (small products: threads cost more)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def fit_stellar_continuum(
    cube: IFSCube,
    redshift: float,
    channel_ranges: Sequence[tuple[int, int]],
    *,
    gas_velocity: np.ndarray | None = None,
    ebv_galactic: float = 0.0,
    lines: Sequence[EmissionLine] = (),
    kinds: Sequence[str] = ("old", "young"),
    dispersions: Sequence[float] = DEFAULT_DISPERSIONS,
    mask_kms: float = DEFAULT_MASK_KMS,
    pad_angstrom: float = DEFAULT_PAD_ANGSTROM,
    velocity_steps: int = 1,
    grow_masks: bool = True,
) -> StellarContinuum:
    """Fit the stellar continuum of every spaxel around the channels an extractor reads.

    Parameters
    ----------
    cube : IFSCube
        Increasing wavelengths.
    redshift : float
        Systemic redshift.
    channel_ranges : sequence of (start, stop)
        Channels the extractor will read; each is padded by ``pad_angstrom``
        (rest frame) on both sides and overlapping ranges are merged into
        windows. The template weights are shared by all windows, each window
        has its own polynomial.
    gas_velocity : array (ny, nx) or (N,), optional
        Line-of-sight gas velocity (km/s, relative to ``redshift``): the
        emission lines are masked there, and it is where the stellar velocity
        search starts. 0 if None.
    ebv_galactic : float
        Milky Way E(B-V); the templates are dimmed by it (O'Donnell 1994), as
        the cube is.
    lines : sequence of EmissionLine
        Lines to mask besides those of the DAP line table.
    kinds : sequence of str
        Template kinds of `ifsrepr.templates` to use (default the "old" and
        "young" ones; the "agn" ones have their broad-line regions bridged).
    dispersions : sequence of float
        Extra broadening (km/s) to try; the best per spaxel is kept.
    mask_kms : float
        Half-width of the emission-line masks.
    pad_angstrom : float
        Padding of each range (rest-frame Angstrom).
    velocity_steps : int
        Gauss-Newton steps of the stellar velocity, from the gas velocity,
        each followed by a new fit.
    grow_masks : bool
        After the first fit, extend each line mask over the contiguous
        positive residuals around it (the wings of broad lines) before fitting
        again.

    Returns
    -------
    StellarContinuum

    Examples
    --------
    A 2x2 cube of one of the shipped templates at z = 0.03 with an Halpha line on
    top; the fit around Halpha recovers the stellar continuum under the line:

    >>> import numpy as np, astropy.units as u
    >>> from ifsrepr import IFSCube
    >>> from ifsrepr.extraction.continuum import fit_stellar_continuum
    >>> from ifsrepr.extraction.forward import MANGA_WAVELENGTH as wave, render_lines
    >>> from ifsrepr.templates import load_templates
    >>> lib, z = load_templates(), 0.03
    >>> spectrum = 5.0 * np.interp(wave / (1 + z), lib.rest_wavelength, lib.templates[0])
    >>> stars = np.broadcast_to(spectrum[:, None, None], (wave.size, 2, 2))
    >>> halpha = render_lines([6564.61], np.full((1, 2, 2), 50.0), 0.0, 80.0, z)
    >>> noise = np.random.default_rng(0).normal(0.0, 0.02, stars.shape)
    >>> cube = IFSCube((stars + halpha + noise) * u.Unit("1e-17 erg/(s cm2 Angstrom)"),
    ...                wave * u.AA, ivar=np.full(stars.shape, 2500.0), redshift=z)
    >>> ha = int(np.searchsorted(wave, 6564.61 * (1 + z)))
    >>> fit = fit_stellar_continuum(cube, z, [(ha - 20, ha + 20)])
    >>> fit.windows, fit.settings["continuum_templates_used"]
    ([(2626, 2797)], True)
    >>> truth = stars[ha - 20 : ha + 20].reshape(40, 4)
    >>> bool(np.allclose(fit.model(ha - 20, ha + 20), truth, rtol=0.02))
    True
    """
    wave_all = cube.spectral_axis.to_value(u.AA)
    n_wave, ny, nx = cube.shape
    n_spaxels = ny * nx
    velocity = np.zeros(n_spaxels) if gas_velocity is None else np.asarray(gas_velocity, float)
    velocity = np.broadcast_to(velocity.ravel(), (n_spaxels,))
    velocity = np.where(np.isfinite(velocity), velocity, 0.0)
    kinds = tuple(kinds)
    dispersions = tuple(float(s) for s in dispersions)
    rest_lines = np.unique(
        [line.rest_wavelength.to_value(u.AA) for line in (*dap_line_table(), *lines)]
    )

    padded = []
    for start, stop in channel_ranges:
        if stop <= start:
            continue
        lo = wave_all[max(start, 0)] - pad_angstrom * (1 + redshift)
        hi = wave_all[min(stop, n_wave) - 1] + pad_angstrom * (1 + redshift)
        padded.append(
            (int(np.searchsorted(wave_all, lo)), int(np.searchsorted(wave_all, hi, side="right")))
        )
    windows = merge_ranges(padded)

    chosen = np.zeros(n_spaxels)
    star_velocity = velocity.copy()
    spaxels = np.zeros(0, dtype=int)
    values = np.zeros((sum(b - a for a, b in windows), 0))
    use_templates = False
    if windows:
        slabs = [cube.channel_slab(start, stop) for start, stop in windows]
        present = np.flatnonzero(np.any([slab[3].any(axis=0) for slab in slabs], axis=0))
        wave = np.concatenate([slab[0] for slab in slabs])
        flux, ivar, usable = (
            np.concatenate([slab[i][:, present] for slab in slabs]) for i in (1, 2, 3)
        )
        del slabs
        degrees = [
            int(np.clip(round((wave_all[b - 1] - wave_all[a]) / (1 + redshift) / 200.0), 1, 8))
            for a, b in windows
        ]
        transmission = (
            attenuation(wave, ebv_galactic, law="odonnell94")
            if ebv_galactic > 0
            else np.ones_like(wave)
        )
        problem = _Problem(
            wave, [b - a for a, b in windows], transmission, redshift, kinds, degrees
        )
        # Many small matrix products: BLAS threads would cost more than they save.
        with _single_threaded_blas():
            fit = _fit_spaxels(
                problem, flux, ivar, usable, velocity[present], redshift, rest_lines,
                mask_kms, dispersions, velocity_steps, grow_masks,
            )  # fmt: skip
        del flux, ivar, usable
        if fit is not None:
            local, values, sigma, v, use_templates = fit
            good = np.isfinite(values).all(axis=0)
            spaxels, values = present[local[good]], values[:, good]
            chosen[spaxels] = sigma[good]
            star_velocity[spaxels] = v[good]
    ok = np.zeros(n_spaxels, dtype=bool)
    ok[spaxels] = True
    offsets = np.cumsum([0] + [b - a for a, b in windows])
    models = [values[offsets[i] : offsets[i + 1]] for i in range(len(windows))]

    library = load_templates()
    used = [name for name, kind in zip(library.names, library.kinds, strict=True) if kind in kinds]
    settings = {
        "continuum": "templates",
        "continuum_templates": used,
        "continuum_dispersions_kms": list(dispersions),
        "continuum_mask_kms": float(mask_kms),
        "continuum_templates_used": bool(use_templates),
        "continuum_windows_angstrom": [
            [round(float(wave_all[a]), 1), round(float(wave_all[b - 1]), 1)] for a, b in windows
        ],
    }
    return StellarContinuum(windows, spaxels, models, ok, chosen, star_velocity, settings)
