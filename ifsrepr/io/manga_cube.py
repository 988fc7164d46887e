"""Reader plugin ``manga-cube``: MaNGA DRP LOGCUBE and LINCUBE files -> `~ifsrepr.IFSCube`.

Reads the DR17 layout (DRP v3_1_1: ``FLUX, IVAR, MASK, LSFPOST, LSFPRE, WAVE,
...``) and the older DR13-DR16 layouts (``DISP``/``PREDISP`` or no LSF
extensions, ``MNGTRG1`` instead of ``MNGTARG1``, ``RADESYSA``), gzipped or not.

What it reads, and why only that
--------------------------------
Only ``FLUX``, ``IVAR``, ``MASK`` and ``WAVE``. A 127-fibre DR17 cube holds
five 74x74x4563 arrays (about 500 MB decompressed); the LSF cubes, the
broad-band images, the PSFs and the correlation tables are not needed to
build an `IFSCube`. Uncompressed files are memory-mapped (the arrays come
back read-only, in FITS big-endian byte order, and are paged in when used);
``.fits.gz`` files are decompressed in one streaming pass with ``isal`` that
stops right after ``MASK``, the wavelengths coming from the header WCS (see
*Wavelengths*); with ``wavelength="WAVE"`` it goes on to ``WAVE`` (the LSF
cubes between are decompressed and dropped, never held).

Decisions
---------
Mask
    A voxel is masked where the DRP set ``DONOTUSE`` or ``NOCOV`` in
    ``MANGA_DRP3PIXMASK`` (``mask_flags=`` chooses other flags). ``DONOTUSE``
    is the DRP's own summary of the flags that make a voxel unusable
    (``LOWCOV``, ``DEADFIBER``, ``FORESTAR`` all come with it); ``NOCOV`` is
    added because no fibre covers the voxel, whatever else is set. Voxels
    whose flux is not finite, or whose inverse variance is not positive and
    finite, are masked as well: a value without a usable noise estimate
    cannot be weighted honestly. specutils' ``"MaNGA cube"`` loader masks
    every non-zero bit instead; the two agree on files where only
    ``DONOTUSE``-carrying flags are set, as in real DRP output.
Wavelengths
    From the ``WAVE`` extension (vacuum Angstrom), checked against the
    header's spectral WCS (``CTYPE3 = 'WAVE-LOG'`` for LOGCUBE, ``'WAVE'`` for
    LINCUBE): a disagreement of more than 1% of a channel width anywhere is a
    `WavelengthMismatchError` naming the file. For ``.fits.gz`` files the
    default (``wavelength="auto"``) takes the header WCS instead, so the
    streaming pass can stop after ``MASK``: in DR17, ``WAVE`` comes after the
    two LSF cubes, and reading it would mean decompressing 200 MB more (two
    thirds more work) for values that agree with the WCS to about 2e-4 of a
    channel (the DRP's own files); ``meta["wave_source"]`` says which was
    used. ``wavelength="WAVE"`` insists on the extension. ``wavelength="wcs"`` uses the
    header WCS instead (and does not read ``WAVE``); ``check_wavelength=False``
    skips the check.
Redshift
    DRP cube headers carry no redshift (it lives in DRPall's ``nsa_z``), so
    the cube's ``redshift`` is None unless passed: ``read(path, redshift=z)``.

Bad input
---------
==========================================  =============================================
Truncated or corrupt ``.fits.gz``           `TruncatedFileError` (names file and extension)
No ``FLUX`` or no ``IVAR`` extension        `MissingExtensionError`
No ``MASK`` extension                       `CubeReadWarning`; only non-finite and
                                            zero-weight voxels are masked
``WAVE`` disagrees with the header WCS      `WavelengthMismatchError`
NaN or infinite ``FLUX``/``IVAR`` values    masked, with a `CubeReadWarning` counting them
                                            (the DRP never writes them)
``IVAR`` zero everywhere                    `NoValidDataError`: no voxel can be weighted
Negative ``IVAR``                           `ifsrepr.FileFormatError` (in a memory-mapped
                                            cube over 16 MB, found on every 16th channel,
                                            and in a gzipped cube read in part on every
                                            4th channel kept; elsewhere masked when used)
Unknown ``BUNIT``                           `UnknownUnitError` (pass ``unit=`` to override)
``DRP3QUAL`` has ``CRITICAL`` set           `CubeReadWarning` (the DRP says do not use)
==========================================  =============================================

All the errors derive from `ifsrepr.FileFormatError` (so from
`ifsrepr.IFSReprError`) and their messages start with the file name.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits

from .._ranges import merge_ranges
from ..bitmask import bit_value, mask_bits
from ..cube import BitmaskView, IFSCube
from ..exceptions import FileFormatError
from ..plugins import hookimpl
from ._fits import header_meta
from .fits_cube import (
    CubeReadWarning,
    FitsStream,
    MissingExtensionError,
    NoValidDataError,
    TruncatedFileError,
    UnknownUnitError,
    WavelengthMismatchError,
    _flux_unit,
    make_wcs,
    spectral_axis_from_wcs,
)

__all__ = [
    "CubeReadWarning",
    "MangaCubeReader",
    "MissingExtensionError",
    "NoValidDataError",
    "TruncatedFileError",
    "UnknownUnitError",
    "WavelengthMismatchError",
]

#: Primary-header keys copied into ``meta`` (lower-cased).
_META_KEYS = (
    "PLATEIFU", "MANGAID", "PLATEID", "IFUDSGN", "OBJRA", "OBJDEC", "IFURA", "IFUDEC",
    "CENRA", "CENDEC", "EBVGAL", "DRP3QUAL", "VERSDRP2", "VERSDRP3", "NEXP", "EXPTIME",
    "MJDMED", "DATE-OBS", "SRVYMODE", "PLATETYP", "MNGTARG1", "MNGTARG2", "MNGTARG3",
    "IFUGLON", "IFUGLAT", "OBJGLON", "OBJGLAT", "GFWHM", "RFWHM", "IFWHM", "ZFWHM",
    "SEEMED", "AIRMSMED", "TRANSMED", "BLUESN2", "REDSN2",
)  # fmt: skip
#: DR13-era spellings of keys renamed later, mapped to the current meta name.
_OLD_KEYS = {"MNGTRG1": "mngtarg1", "MNGTRG2": "mngtarg2", "MNGTRG3": "mngtarg3"}

#: Fraction of a channel width by which WAVE may differ from the header WCS. The
#: DRP's own files agree to about 2e-4 of a channel (astropy's WAVE-LOG vs WAVE).
WAVE_TOLERANCE = 0.01

_DEFAULT_MASK_FLAGS = ("DONOTUSE", "NOCOV")


def _is_manga_drp(header: fits.Header) -> bool:
    telescope = str(header.get("TELESCOP", "")).strip().upper()
    instrument = str(header.get("INSTRUME", "")).strip().upper()
    return telescope.startswith("SDSS 2.5") and instrument == "MANGA"


class MangaCubeReader:
    """Read a MaNGA DRP ``LOGCUBE`` or ``LINCUBE`` (see the module docstring).

    Options of `read`
    -----------------
    redshift : float, optional
        The galaxy's redshift (DRPall ``nsa_z``); cube headers carry none.
    wavelength : {"auto", "WAVE", "wcs"}
        Take the wavelengths from the ``WAVE`` extension (checked against
        the header WCS) or from the header WCS. ``"auto"`` (default) reads
        ``WAVE`` from uncompressed files and uses the header WCS of gzipped
        ones (see the module docstring).
    check_wavelength : bool
        Check ``WAVE`` against the header WCS (default True).
    mask_flags : iterable of str
        ``MANGA_DRP3PIXMASK`` flags that mask a voxel
        (default ``("DONOTUSE", "NOCOV")``).
    unit : str or astropy unit, optional
        Flux unit overriding ``BUNIT``.
    memmap : bool
        Memory-map uncompressed files (default True).
    wavelength_ranges : sequence of (low, high), optional
        Observed wavelengths (Å) that will be used, e.g. from
        ``WindowExtractor.wavelength_ranges``. A gzipped cube then keeps
        only the channels holding them (and two either side): the others
        are decompressed and dropped, and come back with zero flux and ivar
        (masked); ``meta["channels_read"]`` lists what was kept. Memory-mapped
        files read nothing unused anyway and are not affected.
    """

    name = "manga-cube"

    def identify(self, path: Path, header: fits.Header | None) -> bool:
        """A MaNGA DRP file (TELESCOP/INSTRUME) that is not a DAP product nor an RSS."""
        if header is None or not _is_manga_drp(header):
            return False
        if "DAPFRMT" in header or "DAPTYPE" in header:
            return False  # DAP MAPS and model cubes
        if int(header.get("NAXIS", 0) or 0) != 0:
            return False  # DRP cubes keep the primary HDU empty
        # Row-stacked spectra share the primary header of cubes; only the name
        # tells them apart (renamed cubes are still claimed).
        return "RSS" not in Path(path).name.upper()

    def read(
        self,
        path: str | os.PathLike,
        *,
        redshift: float | None = None,
        wavelength: str = "auto",
        check_wavelength: bool = True,
        mask_flags: Iterable[str] = _DEFAULT_MASK_FLAGS,
        unit: str | u.UnitBase | None = None,
        memmap: bool = True,
        wavelength_ranges: Sequence[tuple[float, float]] | None = None,
    ) -> IFSCube:
        """Read flux, inverse variance, mask, wavelengths and WCS of a DRP cube."""
        path = Path(path)
        source = str(wavelength).upper()
        if source not in ("AUTO", "WAVE", "WCS"):
            raise ValueError(f"wavelength must be 'auto', 'WAVE' or 'wcs', not {wavelength!r}")
        flag_value = bit_value("MANGA_DRP3PIXMASK", *mask_flags)
        wanted = {"FLUX", "IVAR", "MASK"} | ({"WAVE"} if source != "WCS" else set())

        arrays: dict[str, np.ndarray] = {}
        headers: dict[str, fits.Header] = {}
        primary = fits.Header()
        planes: list[tuple[int, int]] | None = None
        flux_wcs = None
        with FitsStream(path, memmap=memmap) as stream:
            for entry in stream:
                if entry.index == 0:
                    primary = entry.header
                    continue
                if entry.name == "FLUX" and source == "AUTO":
                    # In a gzipped DR17 cube WAVE sits behind the two LSF cubes
                    # (200 MB more to decompress) and the header's log-lambda
                    # WCS gives the same grid (to 2e-4 of a channel): use it.
                    source = "WAVE"
                    if stream.compressed and _has_spectral_wcs(entry.header):
                        source = "WCS"
                        wanted.discard("WAVE")
                if entry.name == "FLUX" and wavelength_ranges is not None:
                    flux_wcs = make_wcs(entry.header)
                    planes = _channels_of(
                        entry, flux_wcs, wavelength_ranges, source, stream, memmap
                    )
                if entry.name in wanted and entry.name not in arrays:
                    if not entry.is_image:
                        raise FileFormatError(f"{path}: the {entry.name} HDU is not an image")
                    cube_data = entry.name in ("FLUX", "IVAR", "MASK")
                    arrays[entry.name] = stream.read_data(entry, planes if cube_data else None)
                    headers[entry.name] = entry.header
                    if wanted <= arrays.keys():
                        break  # do not decompress what comes after
        source = "WAVE" if source == "AUTO" else source

        for required in ("FLUX", "IVAR"):
            if required not in arrays:
                raise MissingExtensionError(
                    f"{path}: no {required} extension; a MaNGA cube needs FLUX and IVAR "
                    f"(found: {', '.join(sorted(arrays)) or 'none of FLUX, IVAR, MASK, WAVE'})"
                )
        flux, ivar = arrays["FLUX"], arrays["IVAR"]
        if flux.ndim != 3:
            raise FileFormatError(
                f"{path}: FLUX has shape {flux.shape}; a cube's is (n_wave, ny, nx) "
                "(row-stacked spectra are not cubes)"
            )
        if ivar.shape != flux.shape:
            raise FileFormatError(f"{path}: IVAR shape {ivar.shape} != FLUX shape {flux.shape}")
        bits = arrays.get("MASK")
        if bits is not None and bits.shape != flux.shape:
            raise FileFormatError(f"{path}: MASK shape {bits.shape} != FLUX shape {flux.shape}")

        flux_header = headers["FLUX"]
        header_for_unit = flux_header if "BUNIT" in flux_header else primary
        flux_unit = _flux_unit(path, header_for_unit, primary, unit)
        wcs = make_wcs(flux_header) if flux_wcs is None else flux_wcs
        if not wcs.has_celestial:
            raise FileFormatError(f"{path}: the FLUX header has no celestial WCS")
        n_wave = flux.shape[0]
        wave, wave_source = self._wavelengths(
            path, flux_header, wcs, n_wave, arrays.get("WAVE"), source, check_wavelength
        )

        mask = self._mask(path, flux, ivar, bits, flag_value, tuple(mask_flags), planes)
        meta = self._meta(primary, flux_header)
        if planes is not None:
            # Channels outside these were not read: zero flux and ivar (masked).
            meta["channels_read"] = [list(plane) for plane in planes]
        log_grid = "LOG" in str(flux_header.get("CTYPE3", "")).upper()
        meta.update(
            wave_source=wave_source,
            wavelength_type="log" if log_grid else "linear",
            vacuum_wavelengths=True,
            mask_flags=list(mask_flags),
        )
        # ifsrepr.read names the file in any DataModelError raised here.
        return IFSCube(
            flux << flux_unit,  # a view, never a copy of a memory-mapped cube
            wave,
            ivar=ivar,
            mask=mask,
            wcs=wcs.celestial,
            redshift=redshift,
            meta=meta,
        )

    # -- pieces of read ---------------------------------------------------------
    @staticmethod
    def _wavelengths(
        path: Path,
        header: fits.Header,
        wcs,
        n_wave: int,
        wave_hdu: np.ndarray | None,
        source: str,
        check: bool,
    ) -> tuple[u.Quantity, str]:
        from_wcs = spectral_axis_from_wcs(header, n_wave, wcs=wcs, filename=str(path))
        if source == "WCS" or wave_hdu is None:
            if from_wcs is None:
                raise FileFormatError(
                    f"{path}: no WAVE extension and no spectral WCS in the FLUX header; "
                    "the wavelengths are unknown"
                )
            if source == "WAVE":
                warnings.warn(
                    f"{path}: no WAVE extension; wavelengths come from the header WCS "
                    f"(CTYPE3={header.get('CTYPE3')!r})",
                    CubeReadWarning,
                    stacklevel=4,
                )
            return from_wcs, "wcs"
        wave = np.asarray(wave_hdu, dtype=np.float64).ravel()
        if wave.size != n_wave:
            raise FileFormatError(f"{path}: WAVE has {wave.size} values but FLUX {n_wave} channels")
        if check and from_wcs is not None:
            expected = from_wcs.to_value(u.AA)
            width = np.abs(np.gradient(expected))
            deviation = np.abs(wave - expected)
            worst = int(np.nanargmax(np.where(np.isfinite(deviation), deviation / width, np.inf)))
            if not np.all(deviation <= WAVE_TOLERANCE * width):
                raise WavelengthMismatchError(
                    f"{path}: the WAVE extension disagrees with the FLUX header's spectral WCS "
                    f"(CTYPE3={header.get('CTYPE3')!r}, CRVAL3={header.get('CRVAL3')}, "
                    f"CD3_3={header.get('CD3_3', header.get('CDELT3'))}): at channel {worst} WAVE "
                    f"says {wave[worst]:.4f} Angstrom, the WCS {expected[worst]:.4f} "
                    f"({deviation[worst] / width[worst]:.3g} channel widths apart; tolerance "
                    f"{WAVE_TOLERANCE}). Pass wavelength='wcs' to trust the header, or "
                    "check_wavelength=False to trust WAVE"
                )
        return wave * u.AA, "WAVE"

    @staticmethod
    def _mask(
        path: Path,
        flux: np.ndarray,
        ivar: np.ndarray,
        bits: np.ndarray | None,
        flag_value: int,
        flags: tuple[str, ...],
        planes: list[tuple[int, int]] | None = None,
    ) -> BitmaskView | None:
        """Check the values and return the DRP mask as a lazy boolean view.

        The combined mask (DRP flags, non-finite flux, ivar <= 0) is formed by
        `IFSCube` for the channels that are used, never for the whole cube at
        once. Decompressed cubes are in memory already, so every value is
        checked here (every 4th channel of those kept, if only some were);
        a memory-mapped cube larger than 16 MB is checked on every 16th
        channel (and the last) so that reading stays lazy; in the other
        channels, bad values are masked when they are used.
        """
        # Sampling only pays for large cubes (a 74x74 MaNGA cube is 100 MB).
        memory_mapped = _is_memory_mapped(flux) and flux.nbytes > _FULL_CHECK_BYTES
        if planes is not None:
            # In memory, but only some channels: every 4th of them (and each
            # range's last) is plenty to catch a broken file.
            sample = sorted(
                {k for start, stop in planes for k in (*range(start, stop, 4), stop - 1)}
            )
        else:
            channels = range(0, flux.shape[0], 16 if memory_mapped else 1)
            sample = sorted({*channels, flux.shape[0] - 1})
        counts = _value_counts(flux, ivar, sample)
        if counts["positive"] == 0 and memory_mapped:
            counts["positive"] = _value_counts(flux, ivar, range(flux.shape[0]))["positive"]
        if counts["negative"]:
            raise FileFormatError(
                f"{path}: IVAR has {counts['negative']} negative values; an inverse variance "
                "cannot be negative"
            )
        if counts["positive"] == 0:
            raise NoValidDataError(
                f"{path}: IVAR is zero (or not finite) everywhere, so no voxel has a usable "
                "noise estimate; the cube cannot be used"
            )
        if counts["bad_flux"] or counts["bad_ivar"]:
            sampled = memory_mapped or planes is not None
            checked = f" (in the {len(sample)} channels checked)" if sampled else ""
            warnings.warn(
                f"{path}: {counts['bad_flux']} FLUX and {counts['bad_ivar']} IVAR values are NaN "
                f"or infinite{checked} (the DRP never writes these); those voxels are masked",
                CubeReadWarning,
                stacklevel=4,
            )
        if bits is None:
            warnings.warn(
                f"{path}: no MASK extension; the DRP's quality flags are unknown, so only "
                "voxels with non-finite flux or no positive inverse variance are masked",
                CubeReadWarning,
                stacklevel=4,
            )
            return None
        # All DRP3PIXMASK flags sit below bit 31.
        return BitmaskView(bits, flag_value)

    @staticmethod
    def _meta(primary: fits.Header, flux_header: fits.Header) -> dict[str, Any]:
        source = primary if "PLATEIFU" in primary else flux_header
        meta = header_meta(source, _META_KEYS)
        for old, new in _OLD_KEYS.items():
            if old in source and new not in meta:
                meta[new] = int(source[old])
        quality = meta.get("drp3qual")
        if quality is not None:
            names = {bit: name for name, bit in mask_bits("MANGA_DRP3QUAL").items()}
            meta["drp3qual_flags"] = [
                names.get(bit, f"BIT{bit}") for bit in range(32) if quality & (1 << bit)
            ]
            if "CRITICAL" in meta["drp3qual_flags"]:
                warnings.warn(
                    f"{meta.get('plateifu', 'this cube')}: DRP3QUAL has CRITICAL set; the DRP "
                    "flags this cube as unfit for science (flux calibration or astrometry "
                    "failed)",
                    CubeReadWarning,
                    stacklevel=4,
                )
        return meta


def _channels_of(
    entry, wcs, wavelength_ranges, source: str, stream: FitsStream, memmap: bool
) -> list[tuple[int, int]] | None:
    """The channel ranges of FLUX holding ``wavelength_ranges`` (Å), or None to read all.

    Only when the wavelengths are known before the data (from the header
    WCS) and reading is not lazy anyway (a memory map reads nothing unused).
    """
    if not (stream.compressed or not memmap) or source != "WCS" or len(entry.shape) != 3:
        return None
    wave = spectral_axis_from_wcs(entry.header, entry.shape[0], wcs=wcs, filename=str(stream.path))
    if wave is None:
        return None
    wave = wave.to_value(u.AA)
    if not np.all(np.diff(wave) > 0):
        return None
    planes = []
    # Two channels of margin: a range's ends may fall inside edge channels.
    for low, high in wavelength_ranges:
        if high < wave[0] or low > wave[-1]:
            continue
        start = max(int(np.searchsorted(wave, low)) - 2, 0)
        stop = min(int(np.searchsorted(wave, high)) + 2, wave.size)
        if stop > start:
            planes.append((start, stop))
    # Nothing of the cube asked for: read it all, so the caller sees what it holds.
    return merge_ranges(planes) or None


def _has_spectral_wcs(header: fits.Header) -> bool:
    """Whether the FLUX header describes its wavelength axis (CTYPE3 and a step)."""
    ctype = str(header.get("CTYPE3", "")).upper()
    step = header.get("CD3_3", header.get("CDELT3"))
    return ctype.startswith("WAVE") and step is not None and "CRVAL3" in header


#: Memory-mapped cubes larger than this are checked on a sample of channels at read.
_FULL_CHECK_BYTES = 16 << 20


def _is_memory_mapped(array: np.ndarray) -> bool:
    """Whether ``array`` is (a view of) a memory map, so reading it means disk I/O."""
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = getattr(array, "base", None)
        if not isinstance(array, np.ndarray):
            return False
    return False


def _value_counts(flux: np.ndarray, ivar: np.ndarray, channels) -> dict[str, int]:
    """Count negative and non-finite values, and positive ivar, in some channels.

    Works through slabs of channels with reductions (min, max), and counts
    exactly only in slabs that have something to count; no full-size
    temporaries.
    """
    counts = dict.fromkeys(("negative", "positive", "bad_flux", "bad_ivar"), 0)
    # ("positive" counts slabs with a positive ivar: only whether any is wanted.)
    channels = np.asarray(list(channels))
    step = max(1, (1 << 20) // max(1, flux.shape[1] * flux.shape[2]))
    for first in range(0, channels.size, step):
        index = channels[first : first + step]
        if index.size > 1 and np.all(np.diff(index) == 1):
            index = slice(int(index[0]), int(index[-1]) + 1)  # a view, not a copy
        flux_slab, ivar_slab = flux[index], ivar[index]
        low, high = ivar_slab.min(), ivar_slab.max()
        if np.isfinite(low) and np.isfinite(high):
            counts["negative"] += int(np.count_nonzero(ivar_slab < 0)) if low < 0 else 0
            counts["positive"] += int(high > 0)  # whether any, not how many
        else:
            finite = np.isfinite(ivar_slab)
            counts["bad_ivar"] += int(ivar_slab.size - np.count_nonzero(finite))
            with np.errstate(invalid="ignore"):
                counts["negative"] += int(np.count_nonzero(ivar_slab < 0))
                counts["positive"] += int(np.any(finite & (ivar_slab > 0)))
        if not (np.isfinite(flux_slab.min()) and np.isfinite(flux_slab.max())):
            counts["bad_flux"] += int(flux_slab.size - np.count_nonzero(np.isfinite(flux_slab)))
    return counts


@hookimpl
def ifsrepr_register_readers(register):
    """Register the MaNGA DRP cube reader."""
    register(MangaCubeReader())
