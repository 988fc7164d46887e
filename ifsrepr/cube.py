"""`IFSCube`: one galaxy's spatial x spectral data cube, whatever survey it came from."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import astropy.units as u
import numpy as np
from astropy.wcs import WCS

from ._wcs import celestial_wcs, check_wcs_shape
from .exceptions import DataModelError

__all__ = ["IFSCube", "BitmaskView"]


class BitmaskView:
    """A boolean view of an integer bitmask, evaluated only where it is sliced.

    Readers of bit-masked surveys pass one as ``IFSCube(mask=...)`` so a
    memory-mapped MASK extension is not read in full: slicing returns
    ``(bits[key] & flags) != 0``.

    Parameters
    ----------
    bits : array-like of int
        The survey's mask values (may be a memory map).
    flags : int
        The bits that mean "do not use".

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.cube import BitmaskView
    >>> view = BitmaskView(np.array([0, 1, 1024, 2]), 1 | 1024)
    >>> view[:]
    array([False,  True,  True, False])
    """

    dtype = np.dtype(bool)

    def __init__(self, bits, flags: int) -> None:
        self.bits = bits
        self.flags = int(flags)
        self.shape = tuple(bits.shape)
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        return (np.asarray(self.bits[key]) & self.flags) != 0

    def __array__(self, dtype=None, copy=None):
        values = self[...]
        return values if dtype is None else values.astype(dtype)


def _zero_unusable(flux: np.ndarray, ivar: np.ndarray, usable: np.ndarray) -> None:
    """Set flux and ivar to 0 where not ``usable`` (copies of the cube's values only)."""
    if not usable.all():
        bad = ~usable
        np.copyto(flux, 0.0, where=bad)
        np.copyto(ivar, 0.0, where=bad)


def _as_array(value: Any, what: str) -> np.ndarray:
    array = value.value if isinstance(value, u.Quantity) else np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise DataModelError(f"{what} must be numeric, got dtype {array.dtype}")
    return array


class IFSCube:
    """A galaxy's integral-field cube: flux, inverse variance and mask on a spectral axis.

    All readers of cube files (MaNGA LOGCUBE, generic FITS cubes, third-party
    survey plugins) return this class; line extractors consume it.

    Parameters
    ----------
    flux : `~astropy.units.Quantity`
        Shaped ``(n_wave, ny, nx)`` (numpy order: wavelength, y, x).
    spectral_axis : `~astropy.units.Quantity`
        Length ``n_wave``; wavelength, frequency or energy (stored in Angstrom).
        For MaNGA, vacuum wavelengths.
    ivar : array or `~astropy.units.Quantity`, optional
        Inverse variance, same shape as ``flux``, in the inverse square of the
        flux unit (a plain array is taken to be in that unit). Defaults to ones.
    mask : array of bool or `BitmaskView`, optional
        True where a value must not be used. Defaults to no mask. Non-finite
        flux, and ivar that is not positive, are always treated as masked.
    wcs : `~astropy.wcs.WCS` or `~astropy.io.fits.Header`, optional
        Celestial WCS of the spatial axes (a 3-D WCS is reduced to it).
    redshift : float, optional
        The galaxy's redshift. MaNGA cube headers carry none; it comes from a
        catalogue (DRPall ``nsa_z``) or the caller.
    meta : mapping, optional
        Metadata, for example ``{"plateifu": "8485-1901"}``.

    Raises
    ------
    ifsrepr.DataModelError
        If the arrays do not fit together or units are wrong.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from ifsrepr import IFSCube
    >>> wave = np.linspace(6500, 6600, 50) * u.AA
    >>> cube = IFSCube(flux=np.ones((50, 4, 5)) * u.Unit("1e-17 erg/(s cm2 Angstrom)"),
    ...                spectral_axis=wave, redshift=0.02, meta={"plateifu": "0-0"})
    >>> cube.shape
    (50, 4, 5)
    >>> cube.ivar.unit == cube.unit**-2
    True
    """

    def __init__(
        self,
        flux: u.Quantity,
        spectral_axis: u.Quantity,
        ivar: u.Quantity | np.ndarray | None = None,
        mask: np.ndarray | None = None,
        wcs: WCS | None = None,
        redshift: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(flux, u.Quantity):
            raise DataModelError(
                "flux must be an astropy Quantity (multiply the array by its unit); "
                "use u.dimensionless_unscaled for unitless data"
            )
        flux_array = _as_array(flux, "flux")
        if flux_array.ndim != 3:
            raise DataModelError(f"flux must be 3-D (n_wave, ny, nx), got shape {flux_array.shape}")
        self._unit = flux.unit
        self._flux = flux_array
        shape = flux_array.shape

        if not isinstance(spectral_axis, u.Quantity):
            raise DataModelError("spectral_axis must be an astropy Quantity (e.g. in Angstrom)")
        try:
            wave = spectral_axis.to(u.AA, equivalencies=u.spectral())
        except u.UnitConversionError:
            raise DataModelError(
                f"spectral_axis unit {spectral_axis.unit} is not a wavelength, frequency or energy"
            ) from None
        if wave.ndim != 1 or wave.size != shape[0]:
            raise DataModelError(
                f"spectral_axis has {wave.size} values but flux has {shape[0]} channels"
            )
        steps = np.diff(wave.value)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise DataModelError("spectral_axis must be strictly monotonic")
        self._spectral_axis = wave

        ivar_unit = self._unit**-2
        if ivar is None:
            ivar_array = np.broadcast_to(np.ones(1, dtype=flux_array.dtype), shape)
        else:
            if isinstance(ivar, u.Quantity):
                try:
                    ivar = ivar.to(ivar_unit)
                except u.UnitConversionError:
                    raise DataModelError(
                        f"ivar unit {ivar.unit} is not the inverse square of the flux unit "
                        f"{self._unit}"
                    ) from None
            ivar_array = _as_array(ivar, "ivar")
            if ivar_array.shape != shape:
                raise DataModelError(f"ivar shape {ivar_array.shape} != flux shape {shape}")
        self._ivar = ivar_array

        if mask is None:
            mask_array = None
        else:
            mask_array = mask if isinstance(mask, BitmaskView) else np.asarray(mask)
            if mask_array.shape != shape:
                raise DataModelError(f"mask shape {mask_array.shape} != flux shape {shape}")
            if mask_array.dtype != bool:
                raise DataModelError(
                    f"mask must be boolean (True = do not use), got dtype {mask_array.dtype}; "
                    "convert survey bitmasks first (or wrap them in ifsrepr.cube.BitmaskView)"
                )
        # Values are not scanned here: a memory-mapped cube stays unread until
        # a slab of channels is asked for (see channel_slab).
        self._given_mask = mask_array
        self._full_mask: np.ndarray | None = None

        self._wcs = celestial_wcs(wcs, what="IFSCube wcs")
        check_wcs_shape(self._wcs, shape[1:], "IFSCube")
        self._redshift = None if redshift is None else float(redshift)
        self.meta: dict[str, Any] = dict(meta or {})

    # -- data ------------------------------------------------------------------
    @property
    def flux(self) -> u.Quantity:
        """Flux, shaped ``(n_wave, ny, nx)``."""
        return u.Quantity(self._flux, self._unit, copy=False)

    @property
    def ivar(self) -> u.Quantity:
        """Inverse variance, in the inverse square of the flux unit."""
        return u.Quantity(self._ivar, self._unit**-2, copy=False)

    @property
    def mask(self) -> np.ndarray:
        """Boolean mask, True where a value must not be used.

        Includes non-finite flux and non-positive or non-finite ivar. Computed
        on first access (for a memory-mapped cube this reads every value).
        """
        if self._full_mask is None:
            n_wave, ny, nx = self.shape
            mask = np.empty((n_wave, ny * nx), dtype=bool)
            for rows, channels in self._blocks(0, n_wave):
                np.logical_not(self._usable(channels, mask[rows]), out=mask[rows])
            self._full_mask = mask.reshape(self.shape)
        return self._full_mask

    def _blocks(self, start: int, stop: int):
        """``(rows, channels)`` slices covering channels ``start:stop`` a few at a time.

        ``rows`` count from ``start``. Blocks of about 64k values keep the
        temporaries (the survey's integer bitmask, comparisons) in cache.
        """
        step = max(1, (1 << 16) // max(1, self._flux.shape[1] * self._flux.shape[2]))
        for first in range(0, stop - start, step):
            last = min(first + step, stop - start)
            yield slice(first, last), slice(start + first, start + last)

    def _usable(self, channels: slice, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (channels, ny * nx) with whether each value may be used.

        The one rule of the data model: not masked, finite flux, ivar > 0.
        """
        with np.errstate(invalid="ignore"):
            np.greater(self._ivar[channels].reshape(out.shape), 0, out=out)  # False for NaN
        out &= np.isfinite(self._flux[channels].reshape(out.shape))
        if self._given_mask is not None:
            out &= ~np.asarray(self._given_mask[channels], dtype=bool).reshape(out.shape)
        return out

    def channel_slab(self, start: int, stop: int, dtype=np.float64, *, out=None):
        """Flux, ivar and usable-flags of channels ``start:stop``, one column per spaxel.

        Only those channels are read (memory-mapped cubes stay lazy), and
        they come back in native byte order, ready for vectorised work.

        Parameters
        ----------
        start, stop : int
            The channels.
        dtype : numpy dtype
            Type of the flux and ivar returned (default float64).
        out : tuple of three arrays, optional
            ``(flux, ivar, usable)`` of shape ``(stop - start, ny * nx)`` to
            write into (the extraction engine reuses its buffers this way).

        Returns
        -------
        wave : array, shape (K,)
            Wavelengths in Angstrom.
        flux, ivar : array, shape (K, ny * nx)
            Values; zero where not usable.
        usable : bool array, shape (K, ny * nx)
            False where masked, non-finite, or with ivar <= 0.

        Examples
        --------
        >>> import numpy as np, astropy.units as u
        >>> from ifsrepr import IFSCube
        >>> cube = IFSCube(np.ones((5, 2, 3)) * u.Jy, np.linspace(6500.0, 6504.0, 5) * u.AA)
        >>> wave, flux, ivar, usable = cube.channel_slab(1, 3)
        >>> wave, flux.shape, bool(usable.all())
        (array([6501., 6502.]), (2, 6), True)
        """
        n = stop - start
        shape = (n, self._flux.shape[1] * self._flux.shape[2])
        if out is None:
            # Converting copies, so zeroing bad values never touches the cube itself.
            flux, ivar, usable = (
                np.empty(shape, dtype),
                np.empty(shape, dtype),
                np.empty(shape, bool),
            )
        else:
            flux, ivar, usable = out
            if flux.shape != shape or ivar.shape != shape or usable.shape != shape:
                raise ValueError(f"channel_slab out= arrays must have shape {shape}")
        for rows, channels in self._blocks(start, stop):
            block_flux, block_ivar = flux[rows], ivar[rows]
            np.copyto(block_flux, self._flux[channels].reshape(block_flux.shape))
            np.copyto(block_ivar, self._ivar[channels].reshape(block_ivar.shape))
            _zero_unusable(block_flux, block_ivar, self._usable(channels, usable[rows]))
        wave = self._spectral_axis.value[start:stop]
        return wave, flux, ivar, usable

    def live_slab(self, start: int, stop: int, dtype=np.float64, *, allocate=None):
        """Like `channel_slab`, for only the spaxels with a usable channel in ``start:stop``.

        Outside an IFU's footprint (half of a MaNGA cube) no channel is
        usable; leaving those spaxels out from the start halves the work of
        an extractor.

        Parameters
        ----------
        start, stop : int
            The channels.
        dtype : numpy dtype
            Type of the flux and ivar returned (default float64).
        allocate : callable, optional
            ``allocate(name, shape, dtype)`` returns the array to fill for each
            of ``"usable_all"``, ``"flux"``, ``"ivar"`` and ``"usable"`` (for
            example `ifsrepr.extraction.scratch.Scratch.array`, to reuse
            buffers); new arrays by default.

        Returns
        -------
        wave : array, shape (K,)
            Wavelengths in Angstrom.
        flux, ivar : array, shape (K, L)
            Values of the ``L`` live spaxels; zero where not usable.
        usable : bool array, shape (K, L)
        spaxels : int array, shape (L,)
            Flat (``y * nx + x``) indices of those spaxels.

        Examples
        --------
        >>> import numpy as np, astropy.units as u
        >>> from ifsrepr import IFSCube
        >>> ivar = np.ones((5, 2, 3))
        >>> ivar[:, 0, 1] = 0.0  # a spaxel with no data
        >>> cube = IFSCube(np.ones((5, 2, 3)) * u.Jy, np.linspace(6500.0, 6504.0, 5) * u.AA,
        ...                ivar=ivar)
        >>> wave, flux, ivar, usable, spaxels = cube.live_slab(1, 3)
        >>> flux.shape, spaxels
        ((2, 5), array([0, 2, 3, 4, 5]))
        """
        if allocate is None:
            allocate = lambda name, shape, kind: np.empty(shape, kind)  # noqa: E731
        n = stop - start
        n_spaxels = self._flux.shape[1] * self._flux.shape[2]
        # Two passes over the channels: the first finds the spaxels with data,
        # so that the second converts only theirs.
        usable_all = allocate("usable_all", (n, n_spaxels), bool)
        for rows, channels in self._blocks(start, stop):
            self._usable(channels, usable_all[rows])
        spaxels = np.flatnonzero(usable_all.any(axis=0))
        shape = (n, spaxels.size)
        flux, ivar = allocate("flux", shape, dtype), allocate("ivar", shape, dtype)
        usable = allocate("usable", shape, bool)
        np.take(usable_all, spaxels, axis=1, out=usable, mode="clip")
        for rows, channels in self._blocks(start, stop):
            width = rows.stop - rows.start
            flux[rows] = self._flux[channels].reshape(width, n_spaxels).take(spaxels, axis=1)
            ivar[rows] = self._ivar[channels].reshape(width, n_spaxels).take(spaxels, axis=1)
        _zero_unusable(flux, ivar, usable)
        return self._spectral_axis.value[start:stop], flux, ivar, usable, spaxels

    @property
    def spectral_axis(self) -> u.Quantity:
        """Wavelength of each channel, in Angstrom."""
        return self._spectral_axis

    @property
    def unit(self) -> u.UnitBase:
        """Unit of the flux."""
        return self._unit

    @property
    def wcs(self) -> WCS | None:
        """Celestial WCS of the spatial axes, or None."""
        return self._wcs

    @property
    def redshift(self) -> float | None:
        """The galaxy's redshift, or None if unknown."""
        return self._redshift

    @redshift.setter
    def redshift(self, value: float | None) -> None:
        self._redshift = None if value is None else float(value)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_wave, ny, nx)``."""
        return self._flux.shape

    @property
    def spatial_shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self._flux.shape[1:]

    @property
    def name(self) -> str:
        """A label for messages: the plate-IFU, the object name, or the file."""
        for key in ("plateifu", "name", "filename"):
            if self.meta.get(key):
                return str(self.meta[key])
        return "unnamed cube"

    def __repr__(self) -> str:
        z = "unknown" if self.redshift is None else f"{self.redshift:.5f}"
        wave = self.spectral_axis
        return (
            f"<IFSCube {self.name}: {self.shape[0]} channels "
            f"({wave.value.min():.1f}-{wave.value.max():.1f} Angstrom) x "
            f"{self.shape[1]} x {self.shape[2]} spaxels, z={z}, unit={self.unit}>"
        )

    # -- interoperability -------------------------------------------------------
    def to_specutils(self):
        """Return the cube as a `specutils.Spectrum` (spectral axis first).

        The mask and inverse variance travel with it (as ``mask`` and an
        `~astropy.nddata.InverseVariance` uncertainty).

        Returns
        -------
        specutils.Spectrum

        Examples
        --------
        >>> import numpy as np, astropy.units as u
        >>> from ifsrepr import IFSCube
        >>> cube = IFSCube(np.ones((10, 2, 3)) * u.Jy, np.arange(10, 20) * u.AA)
        >>> cube.to_specutils().flux.shape
        (10, 2, 3)
        """
        from astropy.nddata import InverseVariance

        try:
            from specutils import Spectrum
        except ImportError:  # specutils < 2.0
            from specutils import Spectrum1D as Spectrum

        return Spectrum(
            flux=self.flux,
            spectral_axis=self.spectral_axis,
            spectral_axis_index=0,
            uncertainty=InverseVariance(self._ivar, unit=self._unit**-2),
            mask=self.mask,
            meta=dict(self.meta, redshift=self.redshift),
        )

    def to_spectral_cube(self):
        """Return the cube as a `spectral_cube.SpectralCube`.

        The spectral WCS is linear or logarithmic (``WAVE-LOG``, as MaNGA
        writes it) to match the grid; masked values are excluded through a
        `~spectral_cube.masks.BooleanArrayMask`. spectral-cube cannot carry
        inverse variance; use ``ivar`` directly.

        Raises
        ------
        ifsrepr.DataModelError
            If the cube has no celestial WCS or its spectral grid is neither
            linear nor logarithmic.
        """
        with warnings.catch_warnings():
            # spectral-cube 0.7 warns about a numpy/astropy deprecation on import.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            from spectral_cube import SpectralCube
            from spectral_cube.masks import BooleanArrayMask

        wcs3d = self._spectral_wcs()
        mask = BooleanArrayMask(~self.mask, wcs=wcs3d)
        return SpectralCube(data=self.flux, wcs=wcs3d, mask=mask, meta=dict(self.meta))

    def _spectral_wcs(self) -> WCS:
        """Build a 3-D WCS: this cube's celestial axes plus its spectral grid."""
        if self._wcs is None:
            raise DataModelError(f"{self.name}: a celestial WCS is needed for SpectralCube")
        wave = self.spectral_axis.value
        n = wave.size
        linear_step = (wave[-1] - wave[0]) / (n - 1)
        log_step = np.log(wave[-1] / wave[0]) / (n - 1)
        index = np.arange(n)
        header = self._wcs.to_header()
        wcs3d = WCS(naxis=3)
        wcs3d.wcs.ctype = [self._wcs.wcs.ctype[0], self._wcs.wcs.ctype[1], "WAVE"]
        wcs3d.wcs.crval = [*self._wcs.wcs.crval, wave[0]]
        wcs3d.wcs.crpix = [*self._wcs.wcs.crpix, 1.0]
        wcs3d.wcs.cunit = [*self._wcs.wcs.cunit, "Angstrom"]
        pc = np.eye(3)
        pc[:2, :2] = self._wcs.pixel_scale_matrix
        wcs3d.wcs.pc = pc
        wcs3d.wcs.cdelt = [1.0, 1.0, 1.0]
        if np.allclose(wave, wave[0] + linear_step * index, rtol=0, atol=1e-6 * linear_step * n):
            pc[2, 2] = linear_step
        elif np.allclose(wave, wave[0] * np.exp(log_step * index), rtol=1e-7, atol=0):
            # FITS 'WAVE-LOG': lambda = CRVAL exp(CDELT (p - CRPIX) / CRVAL)
            wcs3d.wcs.ctype[2] = "WAVE-LOG"
            pc[2, 2] = log_step * wave[0]
        else:
            raise DataModelError(
                f"{self.name}: the spectral grid is neither linear nor logarithmic, "
                "which a FITS WCS (and so SpectralCube) cannot describe"
            )
        wcs3d.wcs.pc = pc
        wcs3d.wcs.radesys = header.get("RADESYS", "ICRS")
        wcs3d.wcs.set()
        return wcs3d
