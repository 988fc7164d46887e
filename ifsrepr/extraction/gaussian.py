"""The ``gaussian`` line extractor: per-spaxel Gaussian fits, vectorised over spaxels.

Lines closer than the blend distance are fitted together (Hα with the
[NII] doublet, the [SII] doublet, Hε with [NeIII]3968...), each as a Gaussian
integrated over the channels (so the amplitude *is* the line flux), on a
straight-line continuum. All lines of a group share one velocity and one
dispersion. As in the DAP, the velocity is tied across groups: the group
holding Hα is fitted first with free velocity and dispersion, and the others
reuse its velocity where Hα was measured (free velocity elsewhere), fitting
only their dispersion. Lines closer than 1.5 Å (HeI 3889 under Hζ; at
MaNGA's resolution they cannot be told apart) are fitted as one Gaussian
whose flux is reported for the requested line.

The fit is a variable projection: for a trial velocity and dispersion the
fluxes and continuum follow from weighted linear least squares, solved for
all spaxels at once; the non-linear parameters are found by a coarse grid
refined three times around the best value. The flux inverse variance is the
linear least-squares one at the best kinematics. Slower than ``window``
(seconds per cube), but it separates blends.

As for ``window``, a stellar continuum fitted with real-spectrum templates
(`ifsrepr.extraction.continuum`) is subtracted first by default
(``continuum="templates"``); the straight continuum of each group then only
absorbs what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from scipy.special import ndtr

from ..cube import IFSCube
from ..exceptions import DataModelError
from ..lines import EmissionLine, dap_line_table
from ..linestack import LineStack
from ..plugins import hookimpl
from .common import build_stack, covered_lines, galactic_ebv, merge_ranges, resolve_redshift
from .continuum import DEFAULT_PAD_ANGSTROM, check_continuum, fit_stellar_continuum
from .grid import SPEED_OF_LIGHT_KMS, channel_edges
from .velocity import HALPHA, MAX_GAS_SPEED_KMS, halpha_wavelengths, velocity_field

__all__ = ["GaussianExtractor"]

C = SPEED_OF_LIGHT_KMS


def _fit_groups(requested: Sequence[EmissionLine], blend: float, merge: float):
    """Group the requested lines with every DAP line that blends with them.

    Returns a list of groups; each is a list of components, and a component
    is (rest wavelength, index in ``requested`` or None for a nuisance line).
    """
    catalogue = {line.name: line for line in dap_line_table()}
    for line in requested:
        catalogue[line.name] = line
    index = {line.name: i for i, line in enumerate(requested)}
    everything = sorted(catalogue.values(), key=lambda line: line.rest_wavelength.value)
    waves = np.array([line.rest_wavelength.to_value(u.AA) for line in everything])

    # Components: lines within `merge` Å of each other become one Gaussian.
    components: list[tuple[float, list[str]]] = []
    for line, wave in zip(everything, waves, strict=True):
        if components and wave - components[-1][0] < merge:
            components[-1][1].append(line.name)
        else:
            components.append((wave, [line.name]))
    # Groups: chains of components closer than `blend` Å.
    groups: list[list[tuple[float, list[str]]]] = []
    for component in components:
        if groups and component[0] - groups[-1][-1][0] < blend:
            groups[-1].append(component)
        else:
            groups.append([component])
    fitted = []
    for group in groups:
        members = []
        for wave, names in group:
            wanted = [index[name] for name in names if name in index]
            members.append((wave, wanted))
        if any(wanted for _, wanted in members):
            fitted.append(members)
    return fitted


def _design(wave, edges, centres, sigma_kms, shift):
    """Unit-flux Gaussians integrated over each channel, plus a linear continuum.

    Returns an array (N, K, M) of flux densities per Angstrom.
    """
    mu = centres[None, None, :] * shift[:, None, None]  # (N, 1, L)
    width = mu * (sigma_kms[:, None, None] / C)
    upper = ndtr((edges[None, 1:, None] - mu) / width)
    lower = ndtr((edges[None, :-1, None] - mu) / width)
    gaussians = (upper - lower) / np.diff(edges)[None, :, None]
    centre = wave.mean()
    slope = (wave - centre) / (wave[-1] - wave[0])
    continuum = np.broadcast_to(
        np.stack([np.ones_like(wave), slope], axis=-1)[None], (mu.shape[0], wave.size, 2)
    )
    return np.concatenate([gaussians, continuum], axis=-1)


def _solve(design, flux, weight):
    """Weighted least squares for every spaxel: coefficients, covariance diagonal, chi^2."""
    weighted = design * weight[:, :, None]
    normal = np.einsum("nkm,nkl->nml", weighted, design)
    rhs = np.einsum("nkm,nk->nm", weighted, flux)
    # A small ridge keeps empty or degenerate spaxels from raising; they are
    # masked afterwards by their coverage and by non-finite results.
    scale = np.einsum("nmm->nm", normal).max(axis=1, keepdims=True)
    normal = normal + np.eye(normal.shape[-1])[None] * (1e-10 * np.maximum(scale, 1e-30))[..., None]
    try:
        inverse = np.linalg.inv(normal)
    except np.linalg.LinAlgError:
        inverse = np.linalg.pinv(normal)
    coefficients = np.einsum("nml,nl->nm", inverse, rhs)
    model = np.einsum("nkm,nm->nk", design, coefficients)
    chi2 = (weight * (flux - model) ** 2).sum(axis=1)
    return coefficients, np.einsum("nmm->nm", inverse), chi2


def _best_on_grid(chi2_of, v_grid, s_grid):
    """Evaluate chi^2 on per-spaxel grids (N, a) x (N, b); return best v, s per spaxel."""
    n = v_grid.shape[0]
    best = np.full(n, np.inf)
    best_v = v_grid[:, 0].copy()
    best_s = s_grid[:, 0].copy()
    for i in range(v_grid.shape[1]):
        for j in range(s_grid.shape[1]):
            chi2 = chi2_of(v_grid[:, i], s_grid[:, j])
            better = chi2 < best
            best = np.where(better, chi2, best)
            best_v = np.where(better, v_grid[:, i], best_v)
            best_s = np.where(better, s_grid[:, j], best_s)
    return best_v, best_s


def _search_kinematics(chi2_of, v0, free_velocity: bool, sigma_range):
    """Best velocity and dispersion per spaxel: a coarse grid, refined three times.

    With ``free_velocity=False`` the velocity stays at ``v0`` (tied to Hα)
    and only the dispersion is searched, which costs a ninth as much.
    """
    n = v0.size
    s_lo, s_hi = np.log(sigma_range[0]), np.log(sigma_range[1])
    s_step = (s_hi - s_lo) / 6
    v_step = 60.0
    v_offsets = np.arange(-4, 5) * v_step if free_velocity else np.zeros(1)
    v_grid = v0[:, None] + v_offsets[None]
    s_grid = np.exp(np.linspace(s_lo, s_hi, 7))[None].repeat(n, 0)
    best_v, best_s = _best_on_grid(chi2_of, v_grid, s_grid)
    for _ in range(3):
        v_step /= 2.5
        s_step /= 2.5
        steps = np.array([-1.0, 0.0, 1.0])
        v_grid = best_v[:, None] + (steps[None] * v_step if free_velocity else 0.0)
        s_grid = np.exp(np.log(best_s)[:, None] + steps[None] * s_step)
        s_grid = np.clip(s_grid, sigma_range[0], sigma_range[1])
        best_v, best_s = _best_on_grid(chi2_of, v_grid, s_grid)
    return best_v, best_s


def _ordered_groups(lines: Sequence[EmissionLine], blend: float):
    """The groups of lines fitted together, the one holding Hα first.

    (Hα's velocity is shared with the other groups.)
    """
    groups = _fit_groups(lines, blend, merge=1.5)
    groups.sort(key=lambda g: 0 if any(abs(w - HALPHA) < 1 for w, _ in g) else 1)
    return groups


def _group_wavelengths(groups, redshift: float, window_kms: float) -> list[tuple[float, float]]:
    """Observed wavelengths (Å) of each group's fitted window, for gas within ±800 km/s."""
    out = []
    for group in groups:
        centres = np.array([w for w, _ in group])
        lo_wave = (
            centres.min() * (1 + redshift) * (1 - window_kms / C) * (1 - MAX_GAS_SPEED_KMS / C)
        )
        hi_wave = (
            centres.max() * (1 + redshift) * (1 + window_kms / C) * (1 + MAX_GAS_SPEED_KMS / C)
        )
        out.append((float(lo_wave), float(hi_wave)))
    return out


class GaussianExtractor:
    """Per-spaxel Gaussian line fluxes that separate blends (see the module docstring).

    Options of `extract`
    --------------------
    velocity : array (ny, nx), optional
        Starting velocities (km/s relative to the redshift); default 0.
    blend : float
        Lines closer than this (Å, rest frame) are fitted together (default 30).
    window_kms : float
        Half-width of the fitted spectral window around a group (default 1500).
    galactic_extinction : 'auto', float or None
        As for the ``window`` extractor.
    continuum : 'templates' or 'linear'
        As for the ``window`` extractor: ``'templates'`` (default) subtracts a
        fitted stellar continuum first (the emission lines are masked at
        ``velocity`` if given, else at a velocity field measured from Hα);
        the straight continuum of each group is fitted in both cases.
    continuum_options : dict, optional
        Passed to `~ifsrepr.extraction.continuum.fit_stellar_continuum`.
    """

    name = "gaussian"

    def wavelength_ranges(
        self,
        lines: Sequence[EmissionLine],
        redshift: float,
        *,
        velocity: np.ndarray | u.Quantity | None = None,
        blend: float = 30.0,
        window_kms: float = 1500.0,
        continuum: str = "templates",
        continuum_options: dict[str, Any] | None = None,
        **_other: Any,
    ) -> list[tuple[float, float]]:
        """The observed wavelengths (Å) `extract` may read with these options.

        Reading only these channels gives the same fits as reading the whole
        cube; `ifsrepr.extract_lines` does that when given a path.

        Examples
        --------
        Hα and the [NII] doublet, fitted together, at z = 0.03 with the
        side-band continuum: one window of ±1500 km/s (and ±800 km/s of gas
        motion) around the group:

        >>> from ifsrepr.extraction.gaussian import GaussianExtractor
        >>> from ifsrepr.lines import resolve_lines
        >>> ranges = GaussianExtractor().wavelength_ranges(
        ...     resolve_lines(["NII-6549", "Ha-6564", "NII-6585"]), 0.03, continuum="linear")
        >>> [(round(lo), round(hi)) for lo, hi in ranges]
        [(6695, 6835)]
        """
        check_continuum(continuum)
        ranges = _group_wavelengths(_ordered_groups(lines, blend), redshift, window_kms)
        if continuum == "templates":
            if velocity is None:  # the fit's line masks follow the Hα velocity field
                ranges.append(halpha_wavelengths(redshift))
            pad = (continuum_options or {}).get("pad_angstrom", DEFAULT_PAD_ANGSTROM)
            pad *= 1.0 + redshift
            ranges = [(lo - pad, hi + pad) for lo, hi in ranges]
        return merge_ranges(ranges)

    def extract(
        self,
        cube: IFSCube,
        lines: Sequence[EmissionLine],
        redshift: float | None = None,
        *,
        velocity: np.ndarray | u.Quantity | None = None,
        blend: float = 30.0,
        window_kms: float = 1500.0,
        sigma_range: tuple[float, float] = (30.0, 800.0),
        galactic_extinction: str | float | None = "auto",
        continuum: str = "templates",
        continuum_options: dict[str, Any] | None = None,
    ) -> LineStack:
        """Fit ``lines`` in every spaxel of ``cube``."""
        redshift = resolve_redshift(cube, redshift)
        ebv_galactic = galactic_ebv(cube, galactic_extinction)
        check_continuum(continuum)
        wave = cube.spectral_axis.to_value(u.AA)
        if wave[0] > wave[-1]:
            raise DataModelError(
                f"{cube.name}: the gaussian extractor needs increasing wavelengths"
            )
        edges = channel_edges(wave)
        n_wave, ny, nx = cube.shape

        start = np.zeros(ny * nx)
        if velocity is not None:
            if isinstance(velocity, u.Quantity):
                velocity = velocity.to_value(u.km / u.s)
            start = np.broadcast_to(np.asarray(velocity, float), (ny, nx)).ravel().copy()

        inside = covered_lines(cube, lines, redshift, 0.0)
        out_flux = np.zeros((len(lines), ny * nx))
        out_ivar = np.zeros((len(lines), ny * nx))
        out_mask = np.ones((len(lines), ny * nx), dtype=bool)
        groups = _ordered_groups(lines, blend)
        ranges = []
        for lo_wave, hi_wave in _group_wavelengths(groups, redshift, window_kms):
            lo = max(np.searchsorted(wave, lo_wave), 0)
            hi = min(np.searchsorted(wave, hi_wave), n_wave)
            ranges.append((int(lo), int(hi)))

        stellar = None
        if continuum == "templates":
            if velocity is None:
                gas, _ = velocity_field(cube, "halpha", redshift, edges)
            else:
                gas = start.reshape(ny, nx)
            stellar = fit_stellar_continuum(
                cube,
                redshift,
                [r for r in ranges if r[1] - r[0] > 0],
                gas_velocity=gas,
                ebv_galactic=ebv_galactic,
                lines=lines,
                **(continuum_options or {}),
            )

        tied_velocity: np.ndarray | None = None
        for group, (lo, hi) in zip(groups, ranges, strict=True):
            centres = np.array([w for w, _ in group])
            if hi - lo < 2 * len(group) + 4:
                continue  # off the grid; those lines stay masked
            sub_wave, slab_flux, slab_ivar, slab_usable = cube.channel_slab(lo, hi)
            if stellar is not None:
                slab_flux = stellar.subtract(lo, hi, slab_flux, slab_usable)
            sub_edges = edges[lo : hi + 1]
            spaxels = np.flatnonzero(slab_usable.any(axis=0))
            if spaxels.size == 0:
                continue
            data = slab_flux.T[spaxels]
            weight = slab_ivar.T[spaxels]

            def chi2_of(
                v, s, rows, data=data, weight=weight, centres=centres, grid=(sub_wave, sub_edges)
            ):
                shift = (1 + redshift) * (1 + v / C)
                design = _design(grid[0], grid[1], centres, s, shift)
                return _solve(design, data[rows], weight[rows])[2]

            v0 = start[spaxels]
            free_velocity = np.ones(spaxels.size, dtype=bool)
            if tied_velocity is not None:
                known = np.isfinite(tied_velocity[spaxels])
                v0 = np.where(known, tied_velocity[spaxels], v0)
                free_velocity = ~known
            best_v, best_s = v0.copy(), np.zeros(spaxels.size)
            for free in (True, False):
                subset = np.flatnonzero(free_velocity == free)
                if subset.size:
                    best_v[subset], best_s[subset] = _search_kinematics(
                        lambda v, s, rows=subset: chi2_of(v, s, rows),
                        v0[subset],
                        free,
                        sigma_range,
                    )

            shift = (1 + redshift) * (1 + best_v / C)
            design = _design(sub_wave, sub_edges, centres, best_s, shift)
            coefficients, variances, _ = _solve(design, data, weight)
            # A line is measured where good channels cover its core (±2 sigma).
            for k, (centre, wanted) in enumerate(group):
                mu = centre * shift
                half = 2 * mu * best_s / C
                core = (sub_wave[None, :] > (mu - half)[:, None]) & (
                    sub_wave[None, :] < (mu + half)[:, None]
                )
                core_total = core.sum(axis=1)
                core_good = (core & (weight > 0)).sum(axis=1)
                ok = (core_total > 0) & (core_good == core_total)
                ok &= np.isfinite(coefficients[:, k]) & (variances[:, k] > 0)
                for i in wanted:
                    if not inside[i]:
                        continue
                    out_flux[i, spaxels] = np.where(ok, coefficients[:, k], 0.0)
                    out_ivar[i, spaxels] = np.where(ok, 1.0 / variances[:, k], 0.0)
                    out_mask[i, spaxels] = ~ok
                if tied_velocity is None and abs(centre - 6564.608) < 1:
                    tied_velocity = np.full(ny * nx, np.nan)
                    tied_velocity[spaxels] = np.where(ok, best_v, np.nan)
        settings: dict[str, Any] = {
            "method": self.name,
            "blend_angstrom": blend,
            "window_kms": window_kms,
            "redshift": redshift,
        }
        return build_stack(
            cube,
            lines,
            out_flux,
            out_ivar,
            out_mask,
            redshift,
            settings,
            ebv_galactic=ebv_galactic,
            stellar=stellar,
        )


@hookimpl
def ifsrepr_register_line_extractors(register):
    """Register the ``gaussian`` extractor."""
    register(GaussianExtractor())
