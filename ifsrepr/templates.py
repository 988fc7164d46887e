"""Stellar-continuum templates made from real MaNGA spectra shipped with the package.

The package ships two files of real LOGCUBE spaxel spectra from the MaNGA DAP's
test data (``ifsrepr/data/mock/MaNGA_test_spectra.fits.gz``, 8 spectra, and
``MaNGA_multicomp_test_spectra.fits.gz``, 3 more; provenance in
``ifsrepr/data/PROVENANCE.md``). `load_templates` turns nine of them into
rest-frame continuum templates, used both to build the mock survey's stellar
continua (`ifsrepr.mock`) and to fit and subtract the stellar continuum under
the emission lines (`ifsrepr.extraction.continuum`):

* each usable spectrum is moved to its rest frame, its emission lines are
  fitted (one set of Gaussians sharing a velocity and width, found on
  Halpha+[NII], over a quadratic local continuum that keeps the stellar
  absorption troughs) and subtracted;
* its bad pixels and outliers are replaced, it is smoothed just enough to
  reach a per-pixel S/N of about 100 (0 to 6 pixels; the noise left in a
  template is a fixed pattern);
* it is resampled onto a common rest-frame log grid of the LOGCUBE step
  (``log10(lambda) = REST_LOG10_START + 1e-4 k``, 3000-10700 Angstrom),
  extended beyond its trusted range (running S/N > 8 per pixel, observed
  wavelength below 9800 Angstrom where sky residuals take over) by a power law
  fitted to its outer 300 Angstrom, and normalised to unit mean flux density
  over rest 6000-6200 Angstrom.

Templates with a 4000 Angstrom break D4000n > 1.6 (Balogh et al. 1999) are
"old", the rest "young". The two spectra with broad Balmer lines (multicomp 2
and 3) have the broad-line regions (+-7000 km/s around Halpha..Hdelta) bridged
and are of kind "agn". Spectrum 6 (7815-6101, spaxel 37,46) lies outside its
bundle (every pixel is flagged) and spectrum 7 (7815-6101, spaxel 37,37) is
sky-dominated (S/N 1.5); neither is a template.

Limits, stated plainly: these are nine real spectra of a handful of galaxies,
each at its own galaxy's stellar velocity dispersion and MaNGA's instrumental
resolution, with the emission removal of a simple local fit (around Halpha the
removal of ``8131-3702 (22,22)`` and ``8131-6102 (27,27)`` left broad residual
troughs, as a fixed pattern of those templates). They are not a stellar
population library; on real data a full stellar-population fit (the DAP's
MaStar/MILES fits, pPXF) is the reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
from astropy.io import fits
from scipy import ndimage

from .lines import dap_line_table

__all__ = [
    "LOG10_STEP",
    "REST_LOG10_START",
    "REST_N",
    "SOURCES",
    "TemplateLibrary",
    "load_templates",
    "read_spectra",
]

C_KMS = 299792.458
#: Step of the LOGCUBE grid and of the templates' rest grid, in log10(lambda).
LOG10_STEP = 1e-4
#: The LOGCUBE grid the shipped spectra are on: 4563 channels from 3621.596 Angstrom.
_LOGCUBE_LOG10_START = float(np.log10(3621.59598486))
_LOGCUBE_N = 4563
#: The common rest-frame grid of the templates: log10(lambda) = REST_LOG10_START + 1e-4 k.
REST_LOG10_START = float(np.log10(3000.0))
REST_N = int(np.ceil(np.log10(10700.0 / 3000.0) / LOG10_STEP)) + 1

#: The spectra in file order, named as in the DAP's build recipe
#: (``sdss/mangadap:mangadap/data/tests/compile_test_spectra``): plate-IFU (x, y).
SOURCES = (
    "8131-6102 (27,27)", "8131-3702 (22,22)", "8258-6102 (27,27)", "8329-1901 (19,14)",
    "8138-12704 (37,37)", "7815-6101 (37,46)", "7815-6101 (37,37)", "9494-3703 (26,26)",
    "multicomp-1", "multicomp-2", "multicomp-3",
)  # fmt: skip
UNUSABLE = 5  # no coverage: every pixel flagged
SKY = 6  # S/N 1.5: sky-dominated
BROAD = (9, 10)  # broad Balmer lines
_TARGET_SNR = 100.0
_MAX_SMOOTH = 6.0


@dataclass(frozen=True)
class TemplateLibrary:
    """Rest-frame continuum templates from real MaNGA spectra.

    Attributes
    ----------
    templates : ndarray
        ``(n_templates, REST_N)`` on the grid
        ``log10(lambda) = REST_LOG10_START + 1e-4 k``, unit mean over 6000-6200 A.
    names : tuple of str
        Source of each template (plate-IFU and spaxel).
    kinds : tuple of str
        ``"old"``, ``"young"`` or ``"agn"`` for each template.
    d4000 : ndarray
        D4000n of each template.

    Examples
    --------
    >>> from ifsrepr.templates import load_templates
    >>> lib = load_templates()
    >>> lib.templates.shape
    (9, 5524)
    >>> [lib.names[i] for i in lib.indices("agn")]
    ['multicomp-2', 'multicomp-3']
    >>> lib.rest_wavelength[[0, -1]]  # doctest: +FLOAT_CMP
    array([ 3000.        , 10700.92338629])
    """

    templates: np.ndarray
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    d4000: np.ndarray

    def indices(self, kind: str) -> list[int]:
        """Indices of the templates of one kind."""
        return [i for i, k in enumerate(self.kinds) if k == kind]

    @property
    def rest_wavelength(self) -> np.ndarray:
        """Rest wavelength of each template pixel (Angstrom)."""
        return 10.0 ** (REST_LOG10_START + LOG10_STEP * np.arange(REST_N))


def read_spectra() -> dict[str, np.ndarray]:
    """The shipped real spectra: ``flux, ivar, mask, sres`` (11, 4563), ``z`` (11,), ``wave``.

    Examples
    --------
    >>> from ifsrepr.templates import SOURCES, read_spectra
    >>> spectra = read_spectra()
    >>> spectra["flux"].shape, len(SOURCES)
    ((11, 4563), 11)
    >>> spectra["wave"][[0, -1]]  # doctest: +FLOAT_CMP
    array([ 3621.59598486, 10353.80544415])
    """
    root = resources.files("ifsrepr") / "data" / "mock"
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("flux", "ivar", "mask", "sres", "z")}
    wave = None
    for name in ("MaNGA_test_spectra.fits.gz", "MaNGA_multicomp_test_spectra.fits.gz"):
        with resources.as_file(root / name) as path, fits.open(path) as hdus:
            this_wave = np.asarray(hdus["WAVE"].data, dtype=float)
            if wave is None:
                wave = this_wave
            elif not np.allclose(wave, this_wave, rtol=1e-10):
                raise RuntimeError(f"{name}: wavelength grid differs from the first file")
            for key, ext in (
                ("flux", "FLUX"),
                ("ivar", "IVAR"),
                ("mask", "MASK"),
                ("sres", "SRES"),
            ):
                parts[key].append(np.asarray(hdus[ext].data, dtype=float))
            parts["z"].append(np.atleast_1d(np.asarray(hdus["Z"].data, dtype=float)))
    spectra = {key: np.concatenate(value) for key, value in parts.items()}
    spectra["wave"] = wave
    return spectra


def _gaussian_columns(x: np.ndarray, centres: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((x[:, None] - centres[None, :]) / sigma[None, :]) ** 2)


def _fit_window(
    rest: np.ndarray, flux: np.ndarray, weight: np.ndarray, centres: np.ndarray, sigma_kms: float
) -> tuple[np.ndarray, float]:
    """Least-squares quadratic continuum + fixed-shape Gaussians; returns (lines, chi2)."""
    x0 = centres.mean()
    x = (rest - x0) / 40.0
    sigma = centres * sigma_kms / C_KMS
    gauss = _gaussian_columns(rest, centres, sigma)
    design = np.column_stack([np.ones_like(x), x, x * x, gauss])
    keep = np.ones(design.shape[1], dtype=bool)
    for _ in range(len(centres) + 1):  # drop negative line amplitudes, refit
        w_design = design[:, keep] * weight[:, None]
        coef, *_ = np.linalg.lstsq(w_design, flux * weight, rcond=None)
        full = np.zeros(design.shape[1])
        full[keep] = coef
        negative = keep[3:] & (full[3:] < 0)
        if not negative.any():
            break
        keep[3:][negative] = False
    model_lines = gauss @ full[3:]
    chi2 = float(np.sum(((design @ full) - flux) ** 2 * weight**2))
    return model_lines, chi2


def _line_groups(rest_lines: np.ndarray, gap: float = 40.0) -> list[np.ndarray]:
    order = np.sort(rest_lines)
    groups, current = [], [order[0]]
    for wave in order[1:]:
        if wave - current[-1] < gap:
            current.append(wave)
        else:
            groups.append(np.asarray(current))
            current = [wave]
    groups.append(np.asarray(current))
    return groups


def _remove_emission(
    rest: np.ndarray, flux: np.ndarray, ivar: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """Fit and subtract the narrow emission lines of a rest-frame spectrum.

    The lines share one velocity and width, found by a grid search on the
    ``reference`` complex (rest wavelengths).
    """
    weight = np.sqrt(ivar)
    lines = np.array([line.rest_wavelength.value for line in dap_line_table()])
    best = (np.inf, 0.0, 100.0)
    window = (rest > reference.min() - 45.0) & (rest < reference.max() + 45.0)
    if window.sum() > 20:
        for velocity in np.arange(-300.0, 301.0, 20.0):
            for sigma in (60.0, 80.0, 100.0, 130.0, 170.0, 220.0, 300.0, 400.0, 550.0):
                centres = reference * (1 + velocity / C_KMS)
                _, chi2 = _fit_window(rest[window], flux[window], weight[window], centres, sigma)
                if chi2 < best[0]:
                    best = (chi2, velocity, sigma)
    _, velocity, sigma = best
    cleaned = flux.copy()
    for group in _line_groups(lines):
        centres = group * (1 + velocity / C_KMS)
        window = (rest > centres.min() - 35.0) & (rest < centres.max() + 35.0)
        if window.sum() < 15 or weight[window].sum() == 0:
            continue
        model, _ = _fit_window(rest[window], flux[window], weight[window], centres, sigma)
        # Subtract only significant emission, so noise bumps do not become dips.
        err = 1.0 / np.sqrt(np.maximum(ivar[window], 1e-30))
        pixel_sn = model / err
        if pixel_sn.max() > 1.5:
            cleaned[window] -= model
    return cleaned


def _bridge_broad_lines(rest: np.ndarray, flux: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Replace the broad Balmer lines (+-7000 km/s) and [OIII] wings by straight bridges.

    The bridge is anchored on 60 A on either side, avoiding +-15 A around any
    narrow line of the DAP table.
    """
    lines = np.array([line.rest_wavelength.value for line in dap_line_table()])
    clean = good & (np.abs(rest[:, None] - lines[None, :]).min(axis=1) > 15.0)
    out = flux.copy()
    # Broad Balmer lines, and the outflow wings of [OIII] these AGN also show.
    for centre, width in ((4102.89, 7e3), (4341.68, 7e3), (4862.68, 7e3), (6564.61, 7e3),
                          (4960.295, 1.5e3), (5008.240, 1.5e3)):  # fmt: skip
        half = centre * width / C_KMS
        inside = np.abs(rest - centre) < half
        left = clean & (rest > centre - half - 60) & (rest <= centre - half)
        right = clean & (rest >= centre + half) & (rest < centre + half + 60)
        if inside.any() and left.any() and right.any():
            xl, xr = rest[left].mean(), rest[right].mean()
            yl, yr = np.median(flux[left]), np.median(flux[right])
            out[inside] = yl + (yr - yl) * (rest[inside] - xl) / (xr - xl)
    return out


def _power_law_extend(log_wave: np.ndarray, values: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Fill the grid outside ``covered`` by power laws fitted to the outer 300 A."""
    out = values.copy()
    inside = np.flatnonzero(covered)
    lo, hi = inside[0], inside[-1]
    wave = 10.0**log_wave
    for edge, side in ((lo, "blue"), (hi, "red")):
        if side == "blue":
            fit = covered & (wave < wave[edge] + 300.0)
            target = np.arange(0, lo)
        else:
            fit = covered & (wave > wave[edge] - 300.0)
            target = np.arange(hi + 1, values.size)
        if target.size == 0:
            continue
        positive = fit & (values > 0)
        slope, intercept = np.polyfit(log_wave[positive], np.log10(values[positive]), 1)
        # Anchor the power law on the edge value so the join is continuous.
        anchor = np.median(values[positive][-20:] if side == "red" else values[positive][:20])
        at_edge = 10 ** (intercept + slope * log_wave[edge])
        out[target] = anchor / at_edge * 10 ** (intercept + slope * log_wave[target])
    return out


def _d4000(rest: np.ndarray, flux: np.ndarray) -> float:
    fnu = flux * rest**2
    red = (rest > 4000) & (rest < 4100)
    blue = (rest > 3850) & (rest < 3950)
    return float(fnu[red].mean() / fnu[blue].mean())


def _clean_template(
    wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray, z: float, broad: bool
) -> tuple[np.ndarray, float]:
    good = (ivar > 0) & (mask == 0) & np.isfinite(flux)
    rest = wave / (1 + z)
    work = np.interp(rest, rest[good], flux[good])
    ivar = np.where(good, ivar, 0.0)
    if broad:
        # The broad-line regions are bridged; the narrow lines' kinematics come from [OIII].
        work = _bridge_broad_lines(rest, work, good)
        work = _remove_emission(rest, work, ivar, np.array([4960.295, 5008.240]))
    else:
        work = _remove_emission(rest, work, ivar, np.array([6549.86, 6564.608, 6585.27]))
    # Outliers (sky residuals, cosmic rays) against a running median.
    running = ndimage.median_filter(work, size=31, mode="nearest")
    sigma = np.where(ivar > 0, 1.0 / np.sqrt(np.maximum(ivar, 1e-30)), np.inf)
    outlier = np.abs(work - running) > 4 * sigma
    work = np.where(outlier | ~good, running, work)
    # Smooth to a per-pixel S/N of ~100 at most 6 pixels (~400 km/s).
    pixel_snr = np.where(good, flux * np.sqrt(ivar), 0.0)
    central = good & (rest > 5000) & (rest < 7000)
    snr = float(np.median(pixel_snr[central]))
    smooth = float(
        np.clip((_TARGET_SNR / max(snr, 1.0)) ** 2 / (2 * np.sqrt(np.pi)), 0, _MAX_SMOOTH)
    )
    if smooth > 0.3:
        work = ndimage.gaussian_filter1d(work, smooth, mode="nearest")
    # Onto the common rest grid, then extend beyond the spectrum's own coverage.
    log_grid = REST_LOG10_START + LOG10_STEP * np.arange(REST_N)
    log_rest = np.log10(rest)
    # Trust the spectrum only where its running S/N per pixel exceeds 8: the
    # noisy, sky-ridden ends are replaced by the power-law extension.
    # Beyond 9800 A (observed) sky residuals dominate every spectrum.
    running_snr = ndimage.median_filter(pixel_snr, size=101, mode="nearest")
    trusted = np.flatnonzero((running_snr > 8.0) & (wave < 9800.0))
    covered = (log_grid >= log_rest[trusted[0]]) & (log_grid <= log_rest[trusted[-1]])
    on_grid = np.interp(log_grid, log_rest, work)
    on_grid = _power_law_extend(log_grid, on_grid, covered)
    grid_wave = 10.0**log_grid
    norm = on_grid[(grid_wave > 6000) & (grid_wave < 6200)].mean()
    return on_grid / norm, _d4000(grid_wave, on_grid)


@functools.cache
def load_templates() -> TemplateLibrary:
    """Build (once per process, about 0.3 s) the `TemplateLibrary` from the shipped spectra.

    Examples
    --------
    >>> from ifsrepr.templates import load_templates
    >>> lib = load_templates()
    >>> len(lib.names), sorted(set(lib.kinds))
    (9, ['agn', 'old', 'young'])
    """
    spectra = read_spectra()
    wave = spectra["wave"]
    logcube = 10.0 ** (_LOGCUBE_LOG10_START + LOG10_STEP * np.arange(_LOGCUBE_N))
    if wave.size != _LOGCUBE_N or not np.allclose(wave, logcube, rtol=1e-9):
        raise RuntimeError("the shipped spectra are not on the LOGCUBE wavelength grid")
    templates, names, kinds, d4000 = [], [], [], []
    for i, name in enumerate(SOURCES):
        if i in (UNUSABLE, SKY):
            continue
        broad = i in BROAD
        template, d4 = _clean_template(
            wave, spectra["flux"][i], spectra["ivar"][i], spectra["mask"][i], spectra["z"][i], broad
        )
        templates.append(template)
        names.append(name)
        d4000.append(d4)
        kinds.append("agn" if broad else ("old" if d4 > 1.6 else "young"))
    return TemplateLibrary(
        templates=np.asarray(templates),
        names=tuple(names),
        kinds=tuple(kinds),
        d4000=np.asarray(d4000),
    )
