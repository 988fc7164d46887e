"""Reader plugin ``fits-cube``: any 3-D FITS cube with a celestial + spectral WCS.

This is the starting point for instruments without a reader of their own
(MUSE, SAMI, CALIFA, KCWI, ...). It also holds the machinery both cube readers
share: `FitsStream`, a single front-to-back pass over the HDUs of a plain or
gzipped FITS file that loads only the HDUs asked for, and the errors and
warning the cube readers raise.

Identification
--------------
`ifsrepr.read` hands ``identify`` only the *primary* header, so the reader
claims a file when that header alone says it is a spectral cube:

1. the primary HDU is itself the cube: ``NAXIS = 3``, ``CTYPE3`` a spectral
   type (``WAVE``, ``AWAV``, ``FREQ``, ``ENER``, ``WAVN``, with or without an
   algorithm code such as ``-LOG``) and ``CTYPE1``/``CTYPE2`` celestial
   (CALIFA-, SAMI-, KCWI-like files); or
2. the primary HDU is empty and carries the ESO keys that announce a cube in
   an extension: ``PRODCATG = 'SCIENCE.CUBE.IFS'`` (ESO Phase 3 archive
   products) or ``HIERARCH ESO PRO CATG`` starting with ``DATACUBE``
   (MUSE/KMOS pipeline products).

A MUSE-like file written without those keys is not claimed; read it with
``ifsrepr.read(path, reader="fits-cube")``. The reader never claims MaNGA
files (``TELESCOP = 'SDSS 2.5-M'`` or ``INSTRUME = 'MaNGA'``), nor DAP
products (``DAPFRMT``/``DAPTYPE``), which have readers of their own.

Because the rules above also match cubes that a survey-specific plugin reads
(a third-party reader for a single-HDU cube format, say), ``fits-cube`` is a
*fallback* (``fallback = True``): `ifsrepr.read` drops its claim whenever a
non-fallback reader claims the same file, so installing a specific reader
never makes ``ifsrepr.read`` ambiguous.

Reading
-------
The flux is the primary HDU if it is 3-D, else the first 3-D image extension
(or ``hdu=``). Uncertainties come from the extension its header names in
``ERRDATA`` (ESO/SDSS ``HDUCLASS`` convention; ``HDUCLAS3`` of that extension
says ``INVMSE``, ``MSE`` or ``RMSE``), else from the first extension with a
common name: ``IVAR``/``INVVAR`` (inverse variance), ``VAR``/``VARIANCE``/
``STAT`` (variance), ``ERR``/``ERROR``/``SIGMA``/``NOISE``/``STDDEV``
(standard deviation). A quality extension (``QUALDATA``, else ``MASK``,
``DQ``, ``QUALITY``, ``BADPIX``, ``FLAGS``) masks every non-zero voxel. Non-
finite flux (MUSE and SAMI write NaN outside the field) and voxels without a
positive, finite inverse variance are masked too.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from .._ranges import merge_ranges
from ..cube import IFSCube
from ..exceptions import FileFormatError
from ..plugins import hookimpl
from ..units import parse_bunit
from ._fits import header_meta

__all__ = [
    "CubeReadWarning",
    "FitsCubeReader",
    "FitsStream",
    "HDUEntry",
    "MissingExtensionError",
    "NoValidDataError",
    "TruncatedFileError",
    "UnknownUnitError",
    "WavelengthMismatchError",
    "spectral_axis_from_wcs",
]


# -- errors and warnings shared by the cube readers ---------------------------------
class TruncatedFileError(FileFormatError):
    """The file ends (or its gzip stream breaks) before the data the reader needs."""


class MissingExtensionError(FileFormatError):
    """An extension the reader cannot do without is not in the file."""


class WavelengthMismatchError(FileFormatError):
    """The wavelength extension disagrees with the spectral WCS of the header."""


class NoValidDataError(FileFormatError):
    """No voxel of the cube can be used (for example, IVAR is zero everywhere)."""


class UnknownUnitError(FileFormatError):
    """The flux unit (``BUNIT``) cannot be understood."""


class CubeReadWarning(UserWarning):
    """A cube was read, but something in the file needed working around.

    The message names the file and says what was done (for example "no MASK
    extension: only non-finite and zero-weight voxels are masked").
    """


# -- a single pass over the HDUs of a (gzipped) FITS file ----------------------------
_BLOCK = 2880
_CARD = 80
_END_CARD = b"END" + b" " * 77
_MAX_HEADER_BLOCKS = 2000  # 72,000 cards: far beyond any real header; stops runaway reads
_SKIP_CHUNK = 4 << 20
_READ_CHUNK = 4 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@dataclass
class HDUEntry:
    """One HDU met by `FitsStream`: its header and where its data lie.

    Attributes
    ----------
    index : int
        Position in the file (0 = primary).
    name : str
        ``EXTNAME`` in upper case, ``"PRIMARY"`` for the primary HDU without one.
    header : astropy.io.fits.Header
    is_image : bool
        True for the primary HDU and ``XTENSION = 'IMAGE'`` extensions.
    shape : tuple of int
        The data shape in numpy order (``()`` for no data).
    dtype : numpy.dtype
        The stored (big-endian) type of image data.
    nbytes : int
        Size of the data unit without its padding.
    offset : int
        Byte offset of the data in the (decompressed) file.
    """

    index: int
    name: str
    header: fits.Header
    is_image: bool
    shape: tuple[int, ...]
    dtype: np.dtype | None
    nbytes: int
    offset: int

    @property
    def padded_nbytes(self) -> int:
        """Size of the data unit with its padding to a whole 2880-byte block."""
        return -(-self.nbytes // _BLOCK) * _BLOCK


class FitsStream:
    """Walk the HDUs of a FITS file once, front to back, loading only what is asked.

    Plain files are read by seeking from header to header and their data are
    memory-mapped (nothing is read until used). Gzipped files are decompressed
    in one streaming pass with `isal` (several times faster than Python's
    `gzip`), straight into the arrays asked for; data not asked for are
    decompressed and dropped, never held, and iteration can stop as soon as
    the caller has what it needs, without decompressing the rest of the file.
    (The gzip CRC sits at the very end, so a pass that stops early does not
    check it; a corrupt deflate stream is still caught as it is decoded.)

    Parameters
    ----------
    path : path-like
        A ``.fits`` file or a gzip-compressed one (detected from its first bytes).
    memmap : bool
        Memory-map the data of plain files (read-only, stored big-endian byte
        order). If False, or for gzipped files, data are read into ordinary
        native-endian arrays.

    Examples
    --------
    >>> from ifsrepr.io.fits_cube import FitsStream
    >>> with FitsStream(path) as stream:                     # doctest: +SKIP
    ...     for hdu in stream:
    ...         if hdu.name == "FLUX":
    ...             flux = stream.read_data(hdu)
    ...             break
    """

    def __init__(self, path: str | os.PathLike, *, memmap: bool = True) -> None:
        self.path = Path(path)
        self._memmap = memmap
        self._raw: BinaryIO | None = None
        self._stream: BinaryIO | None = None
        self._compressed = False
        self._current: HDUEntry | None = None
        self._data_consumed = False
        self._position = 0
        self._size = 0

    # context management -------------------------------------------------------
    def __enter__(self) -> FitsStream:
        try:
            self._raw = open(self.path, "rb")
        except OSError as exc:
            raise FileFormatError(f"{self.path}: cannot open ({exc.strerror or exc})") from None
        self._compressed = self._raw.read(2) == _GZIP_MAGIC
        self._raw.seek(0)
        if self._compressed:
            from isal import igzip_threaded

            # isal inflates several times faster than zlib, and its threaded
            # reader inflates in a thread of its own (isal releases the GIL),
            # so what is done here with the data (copying the channels kept,
            # byte-swapping) overlaps with it. (A reader of our own with a
            # deeper ring of reused buffers measured slower: isal's public API
            # hands out a new bytes object per block either way.)
            self._stream = igzip_threaded.open(self._raw, "rb", threads=1)
        else:
            self._stream = self._raw
            self._size = os.fstat(self._raw.fileno()).st_size
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (memory-mapped arrays already returned stay valid)."""
        if self._stream is not None and self._stream is not self._raw:
            try:
                self._stream.close()
            except Exception:  # a broken stream has already raised what matters
                pass
        if self._raw is not None:
            self._raw.close()
        self._stream = self._raw = None

    @property
    def compressed(self) -> bool:
        """Whether the file is gzip-compressed."""
        return self._compressed

    # iteration ----------------------------------------------------------------
    def __iter__(self) -> Iterator[HDUEntry]:
        if self._stream is None:
            raise RuntimeError("use FitsStream as a context manager")
        index = 0
        while True:
            header_bytes = self._read_header(first=index == 0)
            if header_bytes is None:
                return
            entry = self._entry(index, header_bytes)
            self._current = entry
            self._data_consumed = False
            yield entry
            self._finish(entry)
            index += 1

    def read_data(
        self, entry: HDUEntry, planes: Sequence[tuple[int, int]] | None = None
    ) -> np.ndarray:
        """The data of the HDU just yielded, scaled by ``BSCALE``/``BZERO`` if set.

        Parameters
        ----------
        entry : HDUEntry
            The HDU just yielded.
        planes : sequence of (start, stop), optional
            Read only these ranges along the first numpy axis (the slowest:
            the wavelength channels of a cube); the rest of the array is left
            zero. Other planes of a gzipped file are decompressed and dropped,
            never stored. Ignored for memory-mapped files, which read nothing
            until used anyway.

        Raises
        ------
        TruncatedFileError
            If the file ends inside the data.
        """
        if entry is not self._current or self._data_consumed:
            raise RuntimeError("read_data() takes the HDU just yielded, once")
        if not entry.is_image or entry.dtype is None:
            raise FileFormatError(f"{self.path}: HDU {entry.name} is not an image")
        self._data_consumed = True
        if planes is not None and (self._compressed or not self._memmap) and entry.shape:
            return _scale(self._read_planes(entry, planes), entry.header)
        if self._compressed or not self._memmap:
            data = self._read_array(entry)
        else:
            if entry.offset + entry.nbytes > self._size:
                raise TruncatedFileError(
                    f"{self.path}: the file is truncated: the {entry.name} extension needs "
                    f"{entry.nbytes} bytes from offset {entry.offset} but the file has "
                    f"{self._size} bytes"
                )
            if entry.nbytes == 0:
                data = np.empty(entry.shape, dtype=entry.dtype)
            else:
                data = np.memmap(
                    self.path, dtype=entry.dtype, mode="r", offset=entry.offset, shape=entry.shape
                )
                data = data.view(np.ndarray)
        return _scale(data, entry.header)

    # internals ----------------------------------------------------------------
    def _read_exactly(self, buffer: memoryview, on_chunk=None) -> int:
        """Fill ``buffer``; return how many bytes came (fewer only at end of file).

        ``on_chunk(filled)``, if given, is called after each chunk with the
        number of bytes filled so far, to work on them while the next chunk
        is being inflated.
        """
        total = 0
        size = len(buffer)
        try:
            while total < size:
                # Ask for bounded slices: a decompressing reader builds a bytes
                # object of the requested size before copying it, and a 100 MB
                # one per call would double the memory traffic.
                got = self._stream.readinto(buffer[total : total + _READ_CHUNK])
                if not got:
                    break
                total += got
                if on_chunk is not None:
                    on_chunk(total)
        except (EOFError, OSError, zlib.error) as exc:
            raise TruncatedFileError(
                f"{self.path}: the file is truncated or corrupt after {self._position + total} "
                f"decompressed bytes ({type(exc).__name__}: {exc})"
            ) from None
        except Exception as exc:  # isal's own error types (isal_zlib.error, ...)
            if type(exc).__module__.startswith("isal"):
                raise TruncatedFileError(
                    f"{self.path}: the gzip stream is corrupt after "
                    f"{self._position + total} decompressed bytes ({exc})"
                ) from None
            raise
        self._position += total
        return total

    def _read_header(self, *, first: bool) -> bytes | None:
        blocks = []
        for _ in range(_MAX_HEADER_BLOCKS):
            block = bytearray(_BLOCK)
            got = self._read_exactly(memoryview(block))
            if got == 0 and not blocks:
                if first:
                    raise FileFormatError(f"{self.path}: the file is empty")
                return None
            if got < _BLOCK:
                raise TruncatedFileError(
                    f"{self.path}: the file is truncated inside the header of HDU "
                    f"{'0' if first else 'after the last complete one'}"
                )
            if not blocks:
                start = bytes(block[:8])
                if first and start != b"SIMPLE  ":
                    raise FileFormatError(f"{self.path}: not a FITS file")
                if not first and start != b"XTENSION":
                    return None  # trailing padding or junk after the last HDU
            blocks.append(bytes(block))
            for card in range(0, _BLOCK, _CARD):
                if block[card : card + _CARD] == _END_CARD:
                    return b"".join(blocks)
        raise FileFormatError(f"{self.path}: a FITS header has no END card")

    def _entry(self, index: int, header_bytes: bytes) -> HDUEntry:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fits.verify.VerifyWarning)
                header = fits.Header.fromstring(header_bytes.decode("ascii", errors="replace"))
        except Exception as exc:
            raise FileFormatError(
                f"{self.path}: header of HDU {index} is corrupt ({exc})"
            ) from None
        try:
            bitpix = int(header["BITPIX"])
            naxis = int(header["NAXIS"])
            axes = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
            pcount = int(header.get("PCOUNT", 0))
            gcount = int(header.get("GCOUNT", 1))
        except (KeyError, ValueError, TypeError) as exc:
            raise FileFormatError(
                f"{self.path}: HDU {index} lacks a mandatory key ({exc})"
            ) from None
        count = int(np.prod(axes, dtype=np.int64)) if axes else 0
        nbytes = abs(bitpix) // 8 * gcount * (pcount + count)
        xtension = str(header.get("XTENSION", "")).strip().upper()
        is_image = index == 0 or xtension == "IMAGE"
        if is_image and bitpix not in _BITPIX_DTYPES:
            raise FileFormatError(f"{self.path}: HDU {index} has invalid BITPIX = {bitpix}")
        name = str(header.get("EXTNAME", "PRIMARY" if index == 0 else "")).strip().upper()
        return HDUEntry(
            index=index,
            name=name,
            header=header,
            is_image=is_image,
            shape=tuple(reversed(axes)) if count else (),
            dtype=np.dtype(_BITPIX_DTYPES[bitpix]) if is_image else None,
            nbytes=nbytes,
            offset=self._position,
        )

    def _finish(self, entry: HDUEntry) -> None:
        """Move to the next header, skipping whatever of this HDU was not read."""
        self._skip_to(entry.offset + entry.padded_nbytes, entry)

    def _skip_to(self, end: int, entry: HDUEntry) -> None:
        """Move forward to byte ``end`` inside (or at the end of) ``entry``'s data."""
        if not self._compressed:
            self._stream.seek(end)
            self._position = end
            return
        remaining = end - self._position
        scratch = bytearray(min(_SKIP_CHUNK, max(remaining, 1)))
        view = memoryview(scratch)
        while remaining > 0:
            want = min(remaining, len(scratch))
            got = self._read_exactly(view[:want])
            if got < want:
                if self._position >= entry.offset + entry.nbytes:
                    return  # only the final padding is missing: tolerated, as astropy does
                raise TruncatedFileError(
                    f"{self.path}: the file is truncated inside the {entry.name or entry.index} "
                    "extension"
                )
            remaining -= got

    def _read_array(self, entry: HDUEntry) -> np.ndarray:
        array = np.empty(entry.shape, dtype=entry.dtype.newbyteorder("="))
        if entry.nbytes:
            if not self._compressed:
                self._stream.seek(entry.offset)
                self._position = entry.offset
            self._read_into(array, entry)
        return array

    def _read_planes(self, entry: HDUEntry, planes: Sequence[tuple[int, int]]) -> np.ndarray:
        # Zeros from the allocator are pages not yet touched: planes that are
        # not read cost no memory traffic.
        array = np.zeros(entry.shape, dtype=entry.dtype.newbyteorder("="))
        plane_bytes = array[0].nbytes
        for start, stop in _clipped_planes(planes, entry.shape[0]):
            self._skip_to(entry.offset + start * plane_bytes, entry)
            self._read_into(array[start:stop], entry)
        return array

    def _read_into(self, array: np.ndarray, entry: HDUEntry) -> None:
        """Fill the C-contiguous native-order ``array`` with the next bytes of ``entry``."""
        flat = array.reshape(-1)
        swapped = 0

        def swap_filled(filled: int) -> None:
            # FITS stores big-endian: swap in place what has arrived (no
            # second copy), while the reader's thread inflates the rest.
            nonlocal swapped
            ready = filled // array.itemsize
            flat[swapped:ready].byteswap(inplace=True)
            swapped = ready

        swap = None if entry.dtype.isnative or array.itemsize == 1 else swap_filled
        got = self._read_exactly(memoryview(flat).cast("B"), swap)
        if got < array.nbytes:
            raise TruncatedFileError(
                f"{self.path}: the file is truncated: the {entry.name} extension ends "
                f"{array.nbytes - got} bytes short of its {entry.nbytes}"
            )


def _clipped_planes(ranges: Sequence[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Sorted, non-overlapping, non-empty ``(start, stop)`` ranges clipped to ``0:size``."""
    clipped = ((max(0, int(a)), min(size, int(b))) for a, b in ranges)
    return merge_ranges((a, b) for a, b in clipped if b > a)


def _scale(data: np.ndarray, header: fits.Header) -> np.ndarray:
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    if bscale == 1.0 and bzero == 0.0:
        return data
    if data.dtype.kind in "iu" and bscale == 1.0 and bzero.is_integer():
        # Unsigned integers stored with an offset (BZERO = 2**15, 2**31, ...).
        return data.astype(np.int64) + int(bzero)
    return data.astype(np.float64) * bscale + bzero


# -- spectral axis ---------------------------------------------------------------
_SPECTRAL_TYPES = ("WAVE", "AWAV", "FREQ", "ENER", "WAVN")
_CELESTIAL_PREFIXES = ("RA--", "DEC-", "GLON", "GLAT", "ELON", "ELAT", "SLON", "SLAT")


def _ctype(header: fits.Header, axis: int) -> str:
    return str(header.get(f"CTYPE{axis}", "")).strip().upper()


def is_spectral_ctype(ctype: str) -> bool:
    """Whether a FITS ``CTYPE`` value names a wavelength, frequency or energy axis."""
    return ctype[:4] in _SPECTRAL_TYPES


def make_wcs(header: fits.Header) -> WCS:
    """An astropy WCS of ``header``, quiet about the fixes it makes to old keys."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


def spectral_axis_from_wcs(
    header: fits.Header, n_wave: int, *, wcs: WCS | None = None, filename: str = ""
) -> u.Quantity | None:
    """Wavelength of each channel (Angstrom) from the spectral WCS of a 3-D header.

    The spectral axis must be FITS axis 3 (numpy axis 0). Handles linear and
    ``-LOG`` grids, ``CD``/``PC``/``CDELT`` and any length, frequency or energy
    unit. A non-standard ``CTYPE3`` that still starts with ``WAVE``/``AWAV``
    (``'WAVELENGTH'``) falls back to ``CRVAL3 + CDELT3 (p - CRPIX3)``.

    Returns
    -------
    astropy.units.Quantity or None
        None if the header has no spectral WCS at all.

    Raises
    ------
    ifsrepr.FileFormatError
        If the spectral axis is not axis 3.
    """
    wcs = make_wcs(header) if wcs is None else wcs
    if wcs.wcs.spec >= 0:
        if wcs.wcs.spec != 2:
            raise FileFormatError(
                f"{filename}: the spectral axis is FITS axis {wcs.wcs.spec + 1}; cubes must "
                "have it as axis 3 (numpy axis 0)"
            )
        spectral = wcs.sub([3])
        values = spectral.pixel_to_world_values(np.arange(n_wave, dtype=np.float64))
        # wcslib has converted spectral axes to SI (m, Hz, J) by now.
        unit = u.Unit(spectral.wcs.cunit[0])
        try:
            return (np.asarray(values, dtype=np.float64) * unit).to(
                u.AA, equivalencies=u.spectral()
            )
        except u.UnitConversionError:
            raise FileFormatError(
                f"{filename}: the spectral axis ({_ctype(header, 3)}) is in {unit}, which is "
                "not a wavelength, frequency or energy"
            ) from None
    ctype = _ctype(header, 3)
    if ctype.startswith(("WAVE", "AWAV")) and "CRVAL3" in header:
        step = header.get("CDELT3", header.get("CD3_3"))
        if step is None:
            return None
        unit = u.Unit(str(header.get("CUNIT3", "Angstrom")).strip() or "Angstrom")
        pixel = np.arange(1, n_wave + 1) - float(header.get("CRPIX3", 1.0))
        return ((float(header["CRVAL3"]) + float(step) * pixel) * unit).to(u.AA)
    return None


# -- the generic reader ------------------------------------------------------------
_IVAR_NAMES = ("IVAR", "INVVAR", "IVARIANCE", "INV_VAR", "WEIGHT_IVAR")
_VAR_NAMES = ("VAR", "VARIANCE", "STAT", "VARIANCES")
_STD_NAMES = ("ERR", "ERROR", "ERRORS", "SIGMA", "NOISE", "STDDEV", "UNCERT", "UNCERTAINTY")
_MASK_NAMES = ("MASK", "DQ", "QUALITY", "BADPIX", "FLAGS", "BPM")
_ERROR_KINDS = {"INVMSE": "ivar", "MSE": "variance", "RMSE": "stddev"}
_META_KEYS = ("OBJECT", "TELESCOP", "INSTRUME", "DATE-OBS", "EXPTIME", "RA", "DEC", "Z", "REDSHIFT")


def _is_manga_or_dap(header: fits.Header) -> bool:
    telescope = str(header.get("TELESCOP", "")).strip().upper()
    instrument = str(header.get("INSTRUME", "")).strip().upper()
    return (
        telescope.startswith("SDSS 2.5")
        or instrument == "MANGA"
        or "DAPFRMT" in header
        or "DAPTYPE" in header
    )


def _announces_cube(header: fits.Header) -> bool:
    naxis = int(header.get("NAXIS", 0) or 0)
    if naxis == 3:
        return (
            is_spectral_ctype(_ctype(header, 3))
            and _ctype(header, 1).startswith(_CELESTIAL_PREFIXES)
            and _ctype(header, 2).startswith(_CELESTIAL_PREFIXES)
        )
    if naxis == 0:
        category = str(header.get("PRODCATG", "")).strip().upper()
        eso_category = str(header.get("HIERARCH ESO PRO CATG", "")).strip().upper()
        return category == "SCIENCE.CUBE.IFS" or eso_category.startswith("DATACUBE")
    return False


def _error_kind(name: str, header: fits.Header) -> str | None:
    kind = _ERROR_KINDS.get(str(header.get("HDUCLAS3", "")).strip().upper())
    if kind:
        return kind
    if name in _IVAR_NAMES:
        return "ivar"
    if name in _VAR_NAMES:
        return "variance"
    if name in _STD_NAMES:
        return "stddev"
    return None


def ivar_from(error: np.ndarray, kind: str) -> np.ndarray:
    """Inverse variance (float32) from an uncertainty of the given kind; 0 where invalid."""
    error = np.asarray(error, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "ivar":
            ivar = error.copy() if not error.flags.writeable else error
        elif kind == "variance":
            ivar = np.float32(1.0) / error
        elif kind == "stddev":
            ivar = np.float32(1.0) / (error * error)
        else:
            raise ValueError(f"unknown uncertainty kind {kind!r}")
        bad = ~np.isfinite(ivar) | (ivar <= 0)
    if bad.any():
        if not ivar.flags.writeable:
            ivar = ivar.copy()
        ivar[bad] = 0.0
    return ivar


_AUX_NAMES = (*_IVAR_NAMES, *_VAR_NAMES, *_STD_NAMES, *_MASK_NAMES)


def _matches(entry: HDUEntry, wanted: int | str) -> bool:
    if isinstance(wanted, int):
        return entry.index == wanted
    return entry.name == str(wanted).strip().upper()


def _role(
    entry: HDUEntry,
    found: dict[str, tuple[HDUEntry, np.ndarray]],
    *,
    hdu: int | str | None,
    error_hdu: int | str | None,
    mask_hdu: int | str | None,
) -> str | None:
    """What a 3-D image HDU is to the generic reader: "data", "error", "quality" or nothing.

    Explicit choices win; otherwise the flux is the first 3-D image not named
    like an uncertainty or quality extension, and its companions are the
    extensions its header names in ``ERRDATA``/``QUALDATA``, or failing those,
    the first with a common name. A companion that comes *before* the flux
    (unusual) can only be recognised by its name.
    """
    if not entry.is_image or len(entry.shape) != 3:
        return None
    if "data" not in found:
        if _matches(entry, hdu) if hdu is not None else entry.name not in _AUX_NAMES:
            return "data"
    data_header = found["data"][0].header if "data" in found else fits.Header()
    if "error" not in found:
        named = str(data_header.get("ERRDATA", "")).strip().upper()
        if error_hdu is not None:
            if _matches(entry, error_hdu):
                return "error"
        elif named:
            if entry.name == named:
                return "error"
        elif _error_kind(entry.name, entry.header) is not None:
            return "error"
    if "quality" not in found:
        named = str(data_header.get("QUALDATA", "")).strip().upper()
        if mask_hdu is not None:
            if _matches(entry, mask_hdu):
                return "quality"
        elif named:
            if entry.name == named:
                return "quality"
        elif entry.name in _MASK_NAMES:
            return "quality"
    return None


class FitsCubeReader:
    """Read a generic 3-D FITS cube (see the module docstring for the rules).

    Options of `read`
    -----------------
    hdu : int or str, optional
        Index or ``EXTNAME`` of the flux cube (default: found as described).
    error_hdu : int or str, optional
        The uncertainty extension (default: ``ERRDATA`` or a common name).
    error_type : {"ivar", "variance", "stddev"}, optional
        What ``error_hdu`` holds (default: from ``HDUCLAS3`` or its name).
    mask_hdu : int or str, optional
        The quality extension; non-zero values are masked.
    unit : str or astropy unit, optional
        The flux unit, overriding ``BUNIT`` (for files whose ``BUNIT`` cannot
        be parsed).
    redshift : float, optional
        Stored on the cube; FITS cubes rarely carry one.
    memmap : bool
        Memory-map plain (uncompressed) files (default True).
    """

    name = "fits-cube"
    #: A generic reader: it gives way to any other reader that claims a file.
    fallback = True

    def identify(self, path: Path, header: fits.Header | None) -> bool:
        """Claim primary headers that announce a spectral cube (a fallback claim)."""
        if header is None or _is_manga_or_dap(header):
            return False
        return _announces_cube(header)

    def read(
        self,
        path: str | os.PathLike,
        *,
        hdu: int | str | None = None,
        error_hdu: int | str | None = None,
        error_type: str | None = None,
        mask_hdu: int | str | None = None,
        unit: str | u.UnitBase | None = None,
        redshift: float | None = None,
        memmap: bool = True,
    ) -> IFSCube:
        """Read the flux cube, its uncertainty and quality extensions, and the WCS."""
        path = Path(path)
        if error_type is not None and error_type not in ("ivar", "variance", "stddev"):
            raise ValueError(
                f"error_type must be 'ivar', 'variance' or 'stddev', not {error_type!r}"
            )

        found: dict[str, tuple[HDUEntry, np.ndarray]] = {}
        primary = None
        with FitsStream(path, memmap=memmap) as stream:
            for entry in stream:
                if entry.index == 0:
                    primary = entry.header
                role = _role(entry, found, hdu=hdu, error_hdu=error_hdu, mask_hdu=mask_hdu)
                if role is not None:
                    found[role] = (entry, stream.read_data(entry))
                    if len(found) == 3:
                        break  # everything found: leave the rest of the file unread

        if "data" not in found:
            where = f"no HDU {hdu!r}" if hdu is not None else "no 3-D image HDU"
            raise MissingExtensionError(f"{path}: {where} holds a cube")
        if error_hdu is not None and "error" not in found:
            raise MissingExtensionError(f"{path}: no 3-D uncertainty extension {error_hdu!r}")
        if mask_hdu is not None and "quality" not in found:
            raise MissingExtensionError(f"{path}: no 3-D quality extension {mask_hdu!r}")
        data_entry, flux = found["data"]
        error_entry, error = found.get("error", (None, None))
        quality = found.get("quality", (None, None))[1]
        error_kind = None
        if error_entry is not None:
            error_kind = error_type or _error_kind(error_entry.name, error_entry.header)
            if error_kind is None:
                raise FileFormatError(
                    f"{path}: cannot tell whether {error_entry.name or error_entry.index} holds "
                    "an inverse variance, a variance or a standard deviation; pass error_type="
                )
        header = data_entry.header
        for what, array in (("uncertainty", error), ("quality", quality)):
            if array is not None and array.shape != flux.shape:
                raise FileFormatError(
                    f"{path}: the {what} extension has shape {array.shape}, the flux {flux.shape}"
                )

        wcs = make_wcs(header)
        wave = spectral_axis_from_wcs(header, flux.shape[0], wcs=wcs, filename=str(path))
        if wave is None:
            raise FileFormatError(
                f"{path}: HDU {data_entry.name or data_entry.index} has no spectral WCS on "
                "axis 3 (CTYPE3/CRVAL3/CDELT3)"
            )
        if not wcs.has_celestial:
            raise FileFormatError(f"{path}: the cube has no celestial WCS on axes 1-2")
        flux_unit = _flux_unit(path, header, primary, unit)

        if error is None:
            warnings.warn(
                f"{path}: no uncertainty extension (looked for ERRDATA and "
                f"{', '.join(_IVAR_NAMES[:2] + _VAR_NAMES[:3] + _STD_NAMES[:2])}); "
                "ivar is set to 1 (all voxels weighted equally)",
                CubeReadWarning,
                stacklevel=2,
            )
            ivar = np.ones(flux.shape, dtype=np.float32)
        else:
            ivar = ivar_from(error, error_kind)
        mask = ~np.isfinite(flux) | (ivar <= 0)
        if quality is not None:
            mask |= quality != 0
        if mask.all():
            raise NoValidDataError(
                f"{path}: every voxel is masked (non-finite flux, no positive inverse variance, "
                "or flagged); nothing in the cube can be used"
            )

        meta: dict[str, Any] = header_meta(primary if primary is not None else header, _META_KEYS)
        meta.update(header_meta(header, _META_KEYS))
        meta["hdu"] = data_entry.name or data_entry.index
        meta["uncertainty"] = None if error is None else error_kind
        meta["air_wavelengths"] = _ctype(header, 3).startswith("AWAV")
        if redshift is None:
            redshift = meta.get("z", meta.get("redshift"))
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


def _flux_unit(
    path: Path,
    header: fits.Header,
    primary: fits.Header | None,
    unit: str | u.UnitBase | None,
) -> u.UnitBase:
    """The flux unit: ``unit`` if given, else ``BUNIT`` of the data (or primary) header."""
    if unit is not None:
        return u.Unit(unit)
    bunit = header.get("BUNIT")
    if bunit is None and primary is not None:
        bunit = primary.get("BUNIT")
    if bunit is None or not str(bunit).strip():
        warnings.warn(
            f"{path}: no BUNIT; the flux is dimensionless (pass unit= to set it)",
            CubeReadWarning,
            stacklevel=3,
        )
        return u.dimensionless_unscaled
    try:
        return parse_bunit(str(bunit))
    except FileFormatError as exc:
        raise UnknownUnitError(
            f"{path}: {exc}; pass unit='...' to ifsrepr.read to give the flux unit"
        ) from None


@hookimpl
def ifsrepr_register_readers(register):
    """Register the generic FITS cube reader."""
    register(FitsCubeReader())
