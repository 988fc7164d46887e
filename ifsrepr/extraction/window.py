"""The ``window`` line extractor: passband flux minus a side-band continuum, DAP style.

For each line, the flux is the integral of the spectrum over a passband
centred on the line's observed wavelength, minus the integral of a straight
continuum through the mean flux densities of a blue and a red side-band (the
DAP's side-bands from its line table, shifted to the galaxy's redshift). The
integral uses each channel's true width on the grid (on MaNGA's log-lambda
grid the width grows with wavelength). Passbands and side-bands follow a
velocity field: one the caller gives, or one measured from Hα
(`~ifsrepr.extraction.velocity.estimate_velocity`), so rotating discs do not
slide their lines out of the band. The inverse variance is propagated
exactly (the flux is linear in the channel fluxes). A spaxel is masked for a
line when a passband channel is masked or has zero ivar, or a side-band has
no usable channel.

By default (``continuum="templates"``) a stellar continuum fitted with
real-spectrum templates (`ifsrepr.extraction.continuum`) is subtracted first,
so the side-bands only remove what is left: a straight line cannot follow the
stellar Balmer absorption under Hβ and Hα, and without that step those lines
come out net of the absorption. The Hα velocity field is then measured again
on the continuum-subtracted spectrum. The continuum model is treated as exact:
the inverse variance is that of the band integrals alone.

Blends are measured together: a passband of ±350 km/s around Hε also holds
[NeIII]3968 (2.6 Å away), and Hζ holds HeI 3889. Use the ``gaussian``
extractor to separate such pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np

from ..cube import IFSCube
from ..exceptions import DataModelError
from ..lines import EmissionLine
from ..linestack import LineStack
from ..plugins import hookimpl
from .bands import BandSums
from .common import build_stack, covered_lines, galactic_ebv, merge_ranges, resolve_redshift
from .continuum import DEFAULT_PAD_ANGSTROM, check_continuum, fit_stellar_continuum
from .grid import SPEED_OF_LIGHT_KMS, channel_edges
from .scratch import thread_scratch
from .velocity import MAX_GAS_SPEED_KMS, halpha_channels, halpha_wavelengths, velocity_field

__all__ = ["WindowExtractor", "DEFAULT_SIDEBANDS_KMS"]

#: Side-bands (km/s from the line) for lines that come without DAP side-bands.
DEFAULT_SIDEBANDS_KMS = ((-2500.0, -1500.0), (1500.0, 2500.0))


class WindowExtractor:
    """Passband-minus-continuum line fluxes (see the module docstring).

    Options of `extract`
    --------------------
    half_width : float or Quantity
        Half-width of the passband in km/s (default 350).
    velocity : 'halpha', 'systemic', None, or array (ny, nx)
        The velocity field the bands follow, relative to the redshift (km/s).
    galactic_extinction : 'auto', float or None
        Correct for Milky Way extinction: ``'auto'`` uses the cube's
        ``ebvgal`` (as the DAP does), a number is an E(B-V), None skips it.
    continuum : 'templates' or 'linear'
        ``'templates'`` (default) first subtracts a stellar continuum fitted
        with real-spectrum templates (`ifsrepr.extraction.continuum`), so
        the stellar Balmer absorption under Hβ and Hα is not taken off the
        lines; ``'linear'`` uses the side-band continuum alone.
    continuum_options : dict, optional
        Passed to `~ifsrepr.extraction.continuum.fit_stellar_continuum`
        (``dispersions``, ``mask_kms``, ``kinds``, ``pad_angstrom``).
    """

    name = "window"

    def extract(
        self,
        cube: IFSCube,
        lines: Sequence[EmissionLine],
        redshift: float | None = None,
        *,
        half_width: float | u.Quantity = 350.0,
        velocity: str | np.ndarray | u.Quantity | None = "halpha",
        galactic_extinction: str | float | None = "auto",
        continuum: str = "templates",
        continuum_options: dict[str, Any] | None = None,
    ) -> LineStack:
        """Measure ``lines`` in every spaxel of ``cube``."""
        redshift = resolve_redshift(cube, redshift)
        ebv_galactic = galactic_ebv(cube, galactic_extinction)
        check_continuum(continuum)
        if isinstance(half_width, u.Quantity):
            half_width = half_width.to_value(u.km / u.s)
        half_width = float(half_width)
        if not half_width > 0:
            raise DataModelError(f"half_width must be positive, got {half_width}")

        wave = cube.spectral_axis.to_value(u.AA)
        if wave[0] > wave[-1]:
            raise DataModelError(f"{cube.name}: the window extractor needs increasing wavelengths")
        edges = channel_edges(wave)
        n_wave, ny, nx = cube.shape

        field, velocity_source = velocity_field(cube, velocity, redshift, edges)
        bands = [self._rest_bands(line, half_width) for line in lines]
        inside = covered_lines(cube, lines, redshift, 0.0)
        re_estimate = isinstance(velocity, str) and velocity == "halpha"

        stellar = None
        if continuum == "templates":
            # Fit around every channel the bands may need once the velocity
            # field is measured again on the continuum-subtracted Hα
            # (`estimate_velocity` keeps |v| < 800 km/s).
            span = (field.min(), field.max())
            if re_estimate:
                span = (min(span[0], -MAX_GAS_SPEED_KMS), max(span[1], MAX_GAS_SPEED_KMS))
            ranges = [
                w
                for w, ok in zip(
                    self._windows(bands, edges, n_wave, redshift, span), inside, strict=True
                )
                if w is not None and ok
            ]
            if re_estimate:
                ranges.append(halpha_channels(edges, redshift, n_wave))
            stellar = fit_stellar_continuum(
                cube,
                redshift,
                ranges,
                gas_velocity=field,
                ebv_galactic=ebv_galactic,
                lines=lines,
                **(continuum_options or {}),
            )
            if re_estimate and velocity_source == "halpha":
                field, velocity_source = velocity_field(
                    cube, velocity, redshift, edges, continuum=stellar
                )
                # Within the span the continuum was fitted for (a no-op, as
                # `estimate_velocity` keeps |v| < 800 km/s).
                field = np.clip(field, *span)
        shift = (1.0 + redshift) * (1.0 + field.ravel() / SPEED_OF_LIGHT_KMS)
        # The channels each line needs, for the whole range of velocities.
        windows = self._windows(bands, edges, n_wave, redshift, (field.min(), field.max()))

        out_flux = np.zeros((len(lines), ny * nx))
        out_ivar = np.zeros((len(lines), ny * nx))
        out_mask = np.ones((len(lines), ny * nx), dtype=bool)
        needed = [window if ok else None for window, ok in zip(windows, inside, strict=True)]
        # Every slab reuses the same buffers (see ifsrepr.extraction.scratch).
        scratch = thread_scratch()

        def allocate(name, shape, dtype):
            return scratch.array(f"window.{name}", shape, dtype)

        # Overlapping windows are merged, so shared channels are read once.
        for start, stop in merge_ranges(w for w in needed if w is not None):
            # Only the spaxels with data here; the others stay masked.
            slab_wave, slab_flux, slab_ivar, slab_usable, spaxels = cube.live_slab(
                start, stop, allocate=allocate
            )
            if not spaxels.size:
                continue
            if stellar is not None:
                slab_flux = stellar.subtract(start, stop, slab_flux, slab_usable, spaxels)
            # One set of running sums serves every line whose bands lie in this slab.
            sums = BandSums(
                slab_wave,
                edges[start : stop + 1],
                slab_flux,
                slab_ivar,
                slab_usable,
                scratch=scratch,
                scratch_prefix="window",
            )
            slab_shift = shift[spaxels]
            for i, (rest, blue, red) in enumerate(bands):
                if not inside[i] or windows[i] is None or not start <= windows[i][0] < stop:
                    continue
                (out_flux[i, spaxels], out_ivar[i, spaxels], out_mask[i, spaxels]) = sums.integrals(
                    (rest[1] * slab_shift, rest[2] * slab_shift),
                    (blue[0] * slab_shift, blue[1] * slab_shift),
                    (red[0] * slab_shift, red[1] * slab_shift),
                )
        settings: dict[str, Any] = {
            "method": self.name,
            "half_width_kms": half_width,
            "velocity": velocity_source,
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

    def wavelength_ranges(
        self,
        lines: Sequence[EmissionLine],
        redshift: float,
        *,
        half_width: float | u.Quantity = 350.0,
        velocity: str | np.ndarray | u.Quantity | None = "halpha",
        continuum: str = "templates",
        continuum_options: dict[str, Any] | None = None,
        **_other: Any,
    ) -> list[tuple[float, float]]:
        """The observed wavelengths (Å) `extract` may read with these options.

        Reading only these channels (``ifsrepr.read(path,
        wavelength_ranges=...)``) gives the same line maps as reading the
        whole cube; `ifsrepr.extract_lines` does that when given a path.

        Examples
        --------
        Hβ and [OIII]5008 at z = 0.03 with their side-bands, for gas moving at
        up to ±800 km/s; and Hα ±4000 km/s, where the velocity field is measured:

        >>> from ifsrepr.extraction.window import WindowExtractor
        >>> from ifsrepr.lines import resolve_lines
        >>> ranges = WindowExtractor().wavelength_ranges(
        ...     resolve_lines(["Hb-4862", "OIII-5008"]), 0.03, continuum="linear")
        >>> [(round(lo), round(hi)) for lo, hi in ranges]
        [(4930, 5087), (5114, 5214), (6671, 6852)]
        """
        check_continuum(continuum)
        if isinstance(half_width, u.Quantity):
            half_width = half_width.to_value(u.km / u.s)
        halpha = isinstance(velocity, str) and velocity == "halpha"
        if halpha:
            # estimate_velocity keeps |v| below this
            span = (-MAX_GAS_SPEED_KMS, MAX_GAS_SPEED_KMS)
        elif velocity is None or isinstance(velocity, str):
            span = (0.0, 0.0)
        else:
            field = velocity.to_value(u.km / u.s) if isinstance(velocity, u.Quantity) else velocity
            field = np.asarray(field, dtype=float)
            span = (float(np.nanmin(field)), float(np.nanmax(field)))
        bands = [self._rest_bands(line, float(half_width)) for line in lines]
        ranges = self._band_spans(bands, redshift, span)
        if halpha:
            ranges.append(halpha_wavelengths(redshift))
        if continuum == "templates":
            pad = (continuum_options or {}).get("pad_angstrom", DEFAULT_PAD_ANGSTROM)
            pad *= 1.0 + redshift
            ranges = [(lo - pad, hi + pad) for lo, hi in ranges]
        return merge_ranges(ranges)

    @staticmethod
    def _band_spans(bands, redshift, velocity_span) -> list[tuple[float, float]]:
        """Observed Å from each line's blue side-band to its red one, over a range of velocities."""
        low = (1.0 + redshift) * (1.0 + velocity_span[0] / SPEED_OF_LIGHT_KMS)
        high = (1.0 + redshift) * (1.0 + velocity_span[1] / SPEED_OF_LIGHT_KMS)
        return [(float(blue[0] * low), float(red[1] * high)) for _, blue, red in bands]

    @classmethod
    def _windows(cls, bands, edges, n_wave, redshift, velocity_span):
        """Channels ``(start, stop)`` holding each line's bands over a range of velocities."""
        windows: list[tuple[int, int] | None] = []
        for low, high in cls._band_spans(bands, redshift, velocity_span):
            lo = max(np.searchsorted(edges, low, side="right") - 1, 0)
            hi = min(np.searchsorted(edges, high, side="left"), n_wave)
            windows.append((int(lo), int(hi)) if hi > lo else None)
        return windows

    @staticmethod
    def _rest_bands(line: EmissionLine, half_width: float):
        """Rest-frame (centre, passband lo, passband hi), blue band, red band in Å."""
        centre = line.rest_wavelength.to_value(u.AA)
        factor = half_width / SPEED_OF_LIGHT_KMS
        passband = (centre, centre * (1 - factor), centre * (1 + factor))
        if line.blueside and line.redside:
            return passband, tuple(line.blueside), tuple(line.redside)
        (b0, b1), (r0, r1) = DEFAULT_SIDEBANDS_KMS
        to_wave = lambda kms: centre * (1 + kms / SPEED_OF_LIGHT_KMS)  # noqa: E731
        return passband, (to_wave(b0), to_wave(b1)), (to_wave(r0), to_wave(r1))


@hookimpl
def ifsrepr_register_line_extractors(register):
    """Register the ``window`` extractor."""
    register(WindowExtractor())
