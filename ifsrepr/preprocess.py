"""`Preprocessor`: from a galaxy's `LineStack` to the network's input tensor.

Two steps, each invertible:

1. **Regrid** (`Preprocessor.regrid`): resample every galaxy onto the same
   ``size x size`` grid, in surface brightness (flux per arcsec^2, so galaxies
   observed or resampled at different pixel scales are comparable). With
   ``grid="reff"`` the grid spans +-``n_reff`` effective radii around the IFU
   centre, so galaxies of different angular size fill it alike; with
   ``grid="native"`` it keeps MaNGA's 0.5" spaxels and crops or pads.
2. **Normalise** (`Preprocessor.normalise`): ``x = asinh(f / s_l)`` with one
   scale ``s_l`` per line learned by `Preprocessor.fit`, and loss weights
   ``w`` that carry the inverse variance through the transform.

`Preprocessor.transform` does both; `Preprocessor.inverse_transform` undoes
the normalisation and returns a `LineStack` on the model grid, in physical
surface-brightness units.

The resampling kernel
---------------------
The output grid is aligned with the input pixel axes, and resampling is
separable: along each axis, an output pixel ``r`` input pixels wide is a
weighted mean of input pixels. When the output is finer (``r <= 1``) the
weights are those of linear interpolation between the two nearest input
pixels (bilinear in 2-D); when it is coarser, they are the overlap of the
output pixel with each input pixel, an exact area-weighted mean that conserves
flux and keeps all the signal-to-noise. The two agree at ``r = 1``. On a smooth
galaxy (Gaussian, sigma = 3") the regridded surface brightness matches the
true one at the output pixel centres to 0.7 % of the peak both for 0.33" and
for 1" output pixels from 0.5" input (see ``tests/test_preprocess.py``).

Variances are propagated with the squared weights; the covariance this
creates between neighbouring output pixels (and the covariance MaNGA's cube
reconstruction already has) is not tracked. An output pixel is masked if any
input pixel with non-zero weight is masked, has zero or non-finite ivar, or
lies outside the input array.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.wcs import WCS

from .exceptions import IFSReprError
from .lines import EmissionLine, resolve_lines
from .linestack import LineStack
from .units import parse_bunit, spaxel, unit_to_string

__all__ = [
    "MissingLinesWarning",
    "NotFittedError",
    "PreprocessingError",
    "Preprocessor",
    "config_differences",
]

#: Pixel size of ``grid="native"``: MaNGA's (and SAMI's, HECTOR's) 0.5" spaxels.
NATIVE_PIXEL_SCALE = 0.5  # arcsec

#: Identifies `Preprocessor.to_dict` output.
CONFIG_FORMAT = "ifsrepr.Preprocessor"
CONFIG_VERSION = 1

_GRIDS = ("reff", "native")
_NORMALISATIONS = ("asinh", "none")

# Scales are learned from a histogram of log10|f| (so fitting streams over any
# number of galaxies in constant memory): 0.002 dex bins give the median to
# 0.25 %, far below the galaxy-to-galaxy scatter it summarises.
_HIST_LOG_MIN, _HIST_LOG_MAX, _HIST_BIN = -15.0, 15.0, 0.002
_HIST_NBINS = int(round((_HIST_LOG_MAX - _HIST_LOG_MIN) / _HIST_BIN))
# A weight is "non-zero" above this, so round-off never marks a pixel as
# contributing when it sits exactly on a kernel edge.
_WEIGHT_EPS = 1e-9


class PreprocessingError(IFSReprError, ValueError):
    """Bad preprocessing parameters, or a stack that cannot be put on the grid."""


class NotFittedError(PreprocessingError, AttributeError):
    """`Preprocessor.transform` was called before `Preprocessor.fit`."""


class MissingLinesWarning(UserWarning):
    """A stack lacks some requested lines; their planes are fully masked."""


class Preprocessor:
    """Put line stacks on a common grid and normalise them for the network.

    Parameters are stored as given and validated by `fit` (and by every
    method that uses them), as in scikit-learn; learned state ends in ``_``.

    Parameters
    ----------
    lines : str or sequence of str or `EmissionLine`
        The lines of the network input, in order: a line-set name
        (``"manga19"``) or line names. Lines a stack lacks become fully masked
        planes (with a `MissingLinesWarning`, once per set of missing lines).
    grid : {'reff', 'native'}
        ``'reff'``: resample to ``size x size`` pixels spanning
        +-``n_reff`` effective radii around the IFU centre (the WCS reference
        pixel), using ``stack.meta['reff']`` (arcsec; DAP MAPS files carry
        ``REFF``, the dataset writer adds DRPall's ``nsa_elpetro_th50_r``).
        ``'native'``: 0.5" pixels, cropped or padded (masked) to
        ``size x size`` around the IFU centre; for 0.5" input (MaNGA) this
        copies pixels without interpolating.
    size : int
        Pixels per side of the output grid.
    n_reff : float
        Half-width of the ``'reff'`` grid, in effective radii.
    normalisation : {'asinh', 'none'}
        ``'asinh'``: ``x = asinh(f / s_l)`` with ``s_l`` the median absolute
        surface brightness of the unmasked pixels of line ``l`` over the
        stacks given to `fit` (robust, and equal to the noise level for lines
        that are mostly undetected, so faint lines stay linear and bright ones
        are compressed logarithmically). ``'none'``: ``x = f``.

    Attributes
    ----------
    scales_ : numpy.ndarray
        ``s_l`` per line, in ``unit_`` (ones for ``normalisation='none'``).
    n_good_ : numpy.ndarray
        Unmasked pixels per line seen by `fit`.
    unit_ : astropy.units.UnitBase
        Surface-brightness unit of the fitted data; `transform` converts to it.
    n_stacks_seen_ : int
        Number of stacks (or galaxies of arrays) seen by `fit`.

    Examples
    --------
    >>> import ifsrepr
    >>> from ifsrepr.preprocess import Preprocessor
    >>> maps = ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
    >>> pre = Preprocessor(["Hb-4862", "OIII-5008", "Ha-6564"], size=32).fit([maps])
    >>> x, w = pre.transform(maps)
    >>> x.shape, x.dtype
    ((3, 32, 32), dtype('float32'))
    >>> back = pre.inverse_transform(x, like=maps, w=w)
    >>> back.unit == "1e-17 erg / (s cm2 arcsec2)"  # surface brightness
    True
    """

    def __init__(
        self,
        lines: str | Sequence[str | EmissionLine] = "manga19",
        *,
        grid: str = "reff",
        size: int = 64,
        n_reff: float = 2.0,
        normalisation: str = "asinh",
    ) -> None:
        self.lines = lines
        self.grid = grid
        self.size = size
        self.n_reff = n_reff
        self.normalisation = normalisation
        self._warned_missing: set[tuple[str, ...]] = set()

    # -- parameters ------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as given."""
        return {
            "lines": self.lines,
            "grid": self.grid,
            "size": self.size,
            "n_reff": self.n_reff,
            "normalisation": self.normalisation,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"Preprocessor({args})"

    def _validate(self) -> tuple[EmissionLine, ...]:
        """Check the parameters; return the resolved lines."""
        if self.grid not in _GRIDS:
            raise PreprocessingError(f"grid must be one of {_GRIDS}, got {self.grid!r}")
        if self.normalisation not in _NORMALISATIONS:
            raise PreprocessingError(
                f"normalisation must be one of {_NORMALISATIONS}, got {self.normalisation!r}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)):
            raise PreprocessingError(f"size must be an integer, got {self.size!r}")
        if self.size < 2:
            raise PreprocessingError(f"size must be at least 2, got {self.size}")
        try:
            n_reff = float(self.n_reff)
        except (TypeError, ValueError):
            raise PreprocessingError(f"n_reff must be a number, got {self.n_reff!r}") from None
        if not (math.isfinite(n_reff) and n_reff > 0):
            raise PreprocessingError(f"n_reff must be positive, got {self.n_reff!r}")
        try:
            lines = resolve_lines(self.lines)
        except IFSReprError as exc:
            raise PreprocessingError(f"lines: {exc}") from None
        if not lines:
            raise PreprocessingError("lines is empty")
        return lines

    @property
    def emission_lines(self) -> tuple[EmissionLine, ...]:
        """The `EmissionLine` of each output plane, in order."""
        return self._validate()

    @property
    def line_names(self) -> list[str]:
        """Names of the output planes, in order."""
        return [line.name for line in self._validate()]

    # -- regridding --------------------------------------------------------------
    def grid_info(self, stack: LineStack) -> dict[str, Any]:
        """Where ``stack`` lands on the model grid, without resampling anything.

        Parameters
        ----------
        stack : LineStack
            A stack as read or extracted (or one already on the model grid).

        Returns
        -------
        dict
            JSON-serialisable: ``wcs`` (the output WCS as a header dict),
            ``unit`` (the surface-brightness unit), ``pixel_scale`` (arcsec),
            ``reff`` (arcsec, or None for ``'native'`` without one) and the
            grid parameters. `inverse_transform` accepts it as ``like``.
        """
        self._validate()
        if self._on_grid(stack):
            return dict(stack.meta["ifsrepr_grid"])
        return self._geometry(stack)["info"]

    def regrid(self, stack: LineStack) -> LineStack:
        """Resample a stack onto the model grid, in surface brightness.

        Parameters
        ----------
        stack : LineStack
            Line maps in flux per spaxel (or any flux unit) with a celestial
            WCS; for ``grid='reff'``, ``stack.meta['reff']`` in arcsec.

        Returns
        -------
        LineStack
            ``(n_lines, size, size)`` in ``stack.unit`` per arcsec^2 (a
            ``/spaxel`` in the unit is replaced by ``/arcsec2``), with the
            output WCS, the propagated ivar and mask, and the grid description
            in ``meta['ifsrepr_grid']``. A stack already on this grid is
            returned unchanged (apart from line selection).

        Raises
        ------
        PreprocessingError
            If the stack has no WCS, or no usable ``meta['reff']`` for
            ``grid='reff'``.
        """
        lines = self._validate()
        stack = self._select_lines(stack, lines)
        if self._on_grid(stack):
            return stack
        geometry = self._geometry(stack)
        wy, outside_y = geometry["weights_y"]
        wx, outside_x = geometry["weights_x"]
        area = geometry["input_area"]  # arcsec^2 per input pixel

        bad = stack.mask | ~(stack.ivar > 0) | ~np.isfinite(stack.flux)
        sb = np.where(bad, 0.0, stack.flux.astype(np.float64) / area)
        with np.errstate(divide="ignore"):
            var = np.where(bad, 0.0, 1.0 / (stack.ivar.astype(np.float64) * area**2))
        flux_out = wy @ sb @ wx.T
        var_out = (wy**2) @ var @ (wx**2).T
        touched = (
            (wy > 0).astype(np.float64) @ bad.astype(np.float64) @ (wx > 0).T.astype(np.float64)
        )
        mask_out = (touched > 0) | outside_y[None, :, None] | outside_x[None, None, :]
        mask_out |= ~(var_out > 0)
        with np.errstate(divide="ignore"):
            ivar_out = np.where(mask_out, 0.0, 1.0 / var_out)
        flux_out = np.where(mask_out, 0.0, flux_out)

        meta = dict(stack.meta)
        meta["ifsrepr_grid"] = geometry["info"]
        return LineStack(
            stack.lines,
            flux_out.astype(np.float32),
            geometry["unit"],
            ivar_out.astype(np.float32),
            mask_out,
            wcs=geometry["wcs"],
            redshift=stack.redshift,
            meta=meta,
        )

    def _grid_key(self) -> dict[str, Any]:
        """The parameters that define the model grid (not the normalisation)."""
        return {
            "grid": self.grid,
            "size": int(self.size),
            "n_reff": float(self.n_reff),
        }

    def _on_grid(self, stack: LineStack) -> bool:
        info = stack.meta.get("ifsrepr_grid")
        if not isinstance(info, Mapping):
            return False
        key = self._grid_key()
        return all(
            info.get(name) == value for name, value in key.items()
        ) and stack.spatial_shape == (self.size, self.size)

    def _select_lines(self, stack: LineStack, lines: tuple[EmissionLine, ...]) -> LineStack:
        names = {name for name in stack.line_names}
        missing = tuple(line.name for line in lines if line.name not in names)
        if missing and missing not in self._warned_missing:
            self._warned_missing.add(missing)
            warnings.warn(
                f"{stack.name} lacks {len(missing)} of the requested lines "
                f"({', '.join(missing)}); their planes are fully masked (warned once per "
                "set of missing lines)",
                MissingLinesWarning,
                stacklevel=3,
            )
        if [line.name for line in lines] == stack.line_names:
            return stack
        # Exact names only: resolve_lines gave DAP names, which readers use too.
        return stack.select(lines, missing="mask")

    def _geometry(self, stack: LineStack) -> dict[str, Any]:
        """Output WCS, unit and the two 1-D weight matrices for ``stack``."""
        if stack.wcs is None:
            raise PreprocessingError(
                f"{stack.name}: the stack has no celestial WCS, so its spaxel size and centre "
                "are unknown; preprocessing needs one"
            )
        wcs = stack.wcs
        scale_x, scale_y = (abs(s.to_value(u.arcsec)) for s in wcs.proj_plane_pixel_scales())
        ny, nx = stack.spatial_shape
        # The WCS reference pixel is the IFU centre in MaNGA files (0-based here).
        cx, cy = (float(p) - 1.0 for p in wcs.wcs.crpix)

        reff = stack.meta.get("reff")
        if self.grid == "reff":
            reff = _positive_float(reff)
            if reff is None:
                raise PreprocessingError(
                    f"{stack.name}: grid='reff' needs the effective radius in arcsec as "
                    f"stack.meta['reff'] (got {stack.meta.get('reff')!r}); DAP MAPS files carry "
                    "REFF, and `ifsrepr extract --catalog` adds DRPall's nsa_elpetro_th50_r"
                )
            pixel_scale = 2.0 * float(self.n_reff) * reff / self.size
        else:
            reff = _positive_float(reff)
            pixel_scale = NATIVE_PIXEL_SCALE
        ratio_x, ratio_y = pixel_scale / scale_x, pixel_scale / scale_y
        half = (self.size - 1) / 2.0
        if self.grid == "native" and abs(ratio_x - 1) < 1e-3 and abs(ratio_y - 1) < 1e-3:
            # Input already in ~0.5" spaxels (MaNGA writes 0.000138889 deg, 0.5"
            # rounded): keep its pixels exactly and snap the centre so output
            # pixel centres fall on input pixel centres: a pure crop/pad.
            ratio_x = ratio_y = 1.0
            pixel_scale = math.sqrt(scale_x * scale_y)
            cx = half + math.floor(cx - half + 0.5)
            cy = half + math.floor(cy - half + 0.5)

        centre_world = wcs.pixel_to_world_values(cx, cy)
        out = WCS(naxis=2)
        out.wcs.ctype = list(wcs.wcs.ctype)
        out.wcs.cunit = list(wcs.wcs.cunit)
        out.wcs.crval = [float(v) for v in centre_world]
        out.wcs.crpix = [half + 1.0, half + 1.0]
        out.wcs.cd = wcs.pixel_scale_matrix @ np.diag([ratio_x, ratio_y])
        if wcs.wcs.radesys:
            out.wcs.radesys = wcs.wcs.radesys
        out.wcs.set()
        out.pixel_shape = (self.size, self.size)

        unit = _surface_brightness_unit(stack.unit)
        header = {key: _json_value(value) for key, value in out.to_header().items()}
        info = {
            **self._grid_key(),
            "pixel_scale": pixel_scale,
            "reff": reff,
            "unit": unit_to_string(unit),
            "wcs": header,
        }
        return {
            "wcs": out,
            "unit": unit,
            "info": info,
            "input_area": scale_x * scale_y,
            "weights_x": _axis_weights(nx, cx, ratio_x, self.size),
            "weights_y": _axis_weights(ny, cy, ratio_y, self.size),
        }

    # -- fitting -----------------------------------------------------------------
    def fit(self, stacks: Iterable[LineStack]) -> Preprocessor:
        """Learn the per-line scales from training stacks.

        Parameters
        ----------
        stacks : iterable of LineStack
            Consumed once, one stack at a time (memory does not grow with
            their number). Stacks not yet on the model grid are regridded.

        Returns
        -------
        Preprocessor
            ``self``.
        """
        self._validate()
        self._reset()
        for stack in stacks:
            self.partial_fit(stack)
        if getattr(self, "n_stacks_seen_", 0) == 0:
            raise PreprocessingError("fit needs at least one stack")
        return self

    def partial_fit(self, stack: LineStack) -> Preprocessor:
        """Add one stack to the learned scales (see `fit`)."""
        regridded = self.regrid(stack)
        unit = getattr(self, "unit_", None) or regridded.unit
        flux = _convert(regridded.flux, regridded.unit, unit, regridded.name)
        bad = regridded.mask | ~(regridded.ivar > 0)
        return self._accumulate(flux[None], bad[None], unit)

    def partial_fit_arrays(
        self, flux: np.ndarray, mask: np.ndarray, unit: u.UnitBase | str
    ) -> Preprocessor:
        """Add stacks that are already on the model grid, as arrays.

        This is how a survey dataset is fitted chunk by chunk.

        Parameters
        ----------
        flux : array
            Surface brightness shaped ``(n_galaxies, n_lines, size, size)``
            (or one galaxy without the first axis), in ``unit``.
        mask : array of bool
            Same shape; True where a value must not be used.
        unit : unit or str
            Unit of ``flux``.

        Returns
        -------
        Preprocessor
            ``self``.
        """
        lines = self._validate()
        flux, mask = np.asarray(flux), np.asarray(mask, dtype=bool)
        if flux.ndim == 3:
            flux, mask = flux[None], mask[None]
        expected = (len(lines), self.size, self.size)
        if flux.ndim != 4 or flux.shape[1:] != expected or mask.shape != flux.shape:
            raise PreprocessingError(
                f"expected flux and mask shaped (n, {', '.join(map(str, expected))}), got "
                f"{flux.shape} and {mask.shape}"
            )
        unit = parse_bunit(unit) if isinstance(unit, str) else u.Unit(unit)
        if getattr(self, "unit_", None) is not None:
            flux = _convert(flux, unit, self.unit_, "arrays")
            unit = self.unit_
        return self._accumulate(flux, mask, unit)

    def _reset(self) -> None:
        for name in ("scales_", "n_good_", "unit_", "n_stacks_seen_", "_histogram"):
            if hasattr(self, name):
                delattr(self, name)

    def _accumulate(self, flux: np.ndarray, bad: np.ndarray, unit: u.UnitBase) -> Preprocessor:
        n_lines = flux.shape[1]
        if not hasattr(self, "_histogram"):
            # +2 bins: values below the range (including exact zeros) and above it.
            self._histogram = np.zeros((n_lines, _HIST_NBINS + 2), dtype=np.int64)
            self.n_stacks_seen_ = 0
            self.unit_ = unit
        good = ~bad & np.isfinite(flux)
        for line in range(n_lines):
            values = np.abs(flux[:, line][good[:, line]].astype(np.float64))
            bins = np.zeros(values.shape, dtype=np.int64)  # zeros go to the underflow bin
            positive = values > 0
            position = (np.log10(values[positive]) - _HIST_LOG_MIN) / _HIST_BIN
            bins[positive] = np.clip(np.floor(position), -1, _HIST_NBINS).astype(np.int64) + 1
            self._histogram[line] += np.bincount(bins, minlength=_HIST_NBINS + 2)
        self.n_stacks_seen_ += flux.shape[0]
        self._finish_fit()
        return self

    def _finish_fit(self) -> None:
        counts = self._histogram
        self.n_good_ = counts.sum(axis=1)
        if self.normalisation == "none":
            self.scales_ = np.ones(counts.shape[0])
            return
        scales = np.full(counts.shape[0], np.nan)
        for line, row in enumerate(counts):
            if self.n_good_[line] == 0:
                continue
            cumulative = np.cumsum(row)
            median_bin = int(np.searchsorted(cumulative, 0.5 * cumulative[-1]))
            median_bin = min(max(median_bin, 1), _HIST_NBINS)  # clamp the open-ended bins
            scales[line] = 10 ** (_HIST_LOG_MIN + (median_bin - 0.5) * _HIST_BIN)
        if np.isnan(scales).all():
            raise PreprocessingError(
                "no unmasked pixel in any line of the fitted data; cannot learn scales"
            )
        empty = np.isnan(scales)
        if empty.any():
            # A line never observed (e.g. only DR15 MAPS, which lack four lines)
            # gets a typical scale of the others, so it normalises sensibly later.
            scales[empty] = float(np.median(scales[~empty]))
        self.scales_ = scales

    def _check_fitted(self) -> np.ndarray:
        if self.normalisation == "none":
            return np.ones(len(self._validate()))
        if not hasattr(self, "scales_"):
            raise NotFittedError(
                "this Preprocessor is not fitted: call fit(stacks) first (or load one with "
                "Preprocessor.from_dict)"
            )
        return self.scales_

    # -- normalisation -------------------------------------------------------------
    def transform(self, stack: LineStack) -> tuple[np.ndarray, np.ndarray]:
        """Regrid and normalise one stack into the network input.

        Parameters
        ----------
        stack : LineStack
            As read or extracted, or already on the model grid.

        Returns
        -------
        x, w : numpy.ndarray
            float32, shaped ``(n_lines, size, size)``: the normalised values
            (0 where masked) and the loss weights (inverse variance of ``x``;
            0 where masked).
        """
        scales = self._check_fitted()
        regridded = self.regrid(stack)
        flux, ivar = regridded.flux, regridded.ivar
        unit = getattr(self, "unit_", None)
        if unit is not None and regridded.unit != unit:
            factor = _conversion_factor(regridded.unit, unit, regridded.name)
            flux, ivar = flux * factor, ivar / factor**2
        return self._normalise(flux, ivar, regridded.mask, scales)

    def normalise(
        self, flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalise arrays already on the model grid (in ``unit_``).

        Parameters
        ----------
        flux, ivar : array
            Shaped ``(..., n_lines, size, size)``.
        mask : array of bool
            Same shape; True where a value must not be used.

        Returns
        -------
        x, w : numpy.ndarray
            float32 arrays of the same shape (see `transform`).
        """
        return self._normalise(flux, ivar, mask, self._check_fitted())

    def _normalise(
        self, flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray, scales: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        flux = np.asarray(flux, dtype=np.float64)
        ivar = np.asarray(ivar, dtype=np.float64)
        bad = np.asarray(mask, dtype=bool) | ~np.isfinite(flux) | ~np.isfinite(ivar)
        flux = np.where(bad, 0.0, flux)
        ivar = np.where(bad, 0.0, ivar)
        if self.normalisation == "asinh":
            s = np.asarray(scales, dtype=np.float64)[:, None, None]
            x = np.arcsinh(flux / s)
            # dx/df = 1 / sqrt(s^2 + f^2), so var_x = var_f / (s^2 + f^2).
            w = ivar * (s**2 + flux**2)
        else:
            x, w = flux, ivar
        w = np.where(bad | ~np.isfinite(w), 0.0, w)
        return x.astype(np.float32), w.astype(np.float32)

    def denormalise(
        self, x: np.ndarray, w: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Undo `normalise`: surface brightness (and its ivar, if ``w`` is given).

        Returns
        -------
        flux, ivar : numpy.ndarray
            float64 arrays; ``ivar`` is None when ``w`` is None.
        """
        scales = self._check_fitted()
        x = np.asarray(x, dtype=np.float64)
        if self.normalisation == "asinh":
            s = np.asarray(scales, dtype=np.float64)[:, None, None]
            flux = s * np.sinh(x)
            ivar = None if w is None else np.asarray(w, dtype=np.float64) / (s**2 + flux**2)
        else:
            flux = x
            ivar = None if w is None else np.asarray(w, dtype=np.float64)
        return flux, ivar

    def inverse_transform(
        self,
        x: np.ndarray,
        like: LineStack | Mapping[str, Any] | None = None,
        *,
        w: np.ndarray | None = None,
    ) -> LineStack:
        """Turn network-space maps back into a physical `LineStack` on the model grid.

        Parameters
        ----------
        x : array
            ``(n_lines, size, size)`` normalised values (a network output or
            the ``x`` of `transform`; a torch tensor is accepted).
        like : LineStack or dict, optional
            Where the maps belong: the stack they came from (raw or
            regridded), or the ``grid_info`` dict of one (as stored in a
            survey dataset). Gives the WCS, unit, redshift and metadata. With
            None, the maps get ``unit_`` and no WCS.
        w : array, optional
            Loss weights from `transform`: turned back into ivar, and pixels
            with zero weight are masked. Without it, ivar is 0 (unknown) and
            nothing is masked.

        Returns
        -------
        LineStack
            Surface brightness in the stack's unit per arcsec^2.
        """
        lines = self._validate()
        x = _as_numpy(x)
        expected = (len(lines), self.size, self.size)
        if x.shape != expected:
            raise PreprocessingError(f"x must be shaped {expected}, got {x.shape}")
        w = None if w is None else _as_numpy(w)
        flux, ivar = self.denormalise(x, w)
        mask = np.zeros(expected, dtype=bool) if w is None else ~(w > 0)
        ivar = np.zeros(expected) if ivar is None else np.where(mask, 0.0, ivar)

        wcs, redshift, meta = None, None, {}
        unit = getattr(self, "unit_", None) or u.dimensionless_unscaled
        if isinstance(like, LineStack):
            info = self.grid_info(like)
            redshift, meta = like.redshift, dict(like.meta)
        elif isinstance(like, Mapping):
            info = dict(like)
        elif like is None:
            info = None
        else:
            raise TypeError(f"like must be a LineStack, a grid_info dict or None, not {like!r}")
        if info is not None:
            wcs = WCS(info["wcs"]) if info.get("wcs") else None
            if wcs is not None:
                wcs.pixel_shape = (self.size, self.size)
            target = parse_bunit(info["unit"]) if info.get("unit") else unit
            if target != unit and getattr(self, "unit_", None) is not None:
                factor = _conversion_factor(unit, target, "inverse_transform")
                flux, ivar = flux * factor, ivar / factor**2
            unit = target
            meta["ifsrepr_grid"] = info
        return LineStack(
            lines,
            flux.astype(np.float32),
            unit,
            ivar.astype(np.float32),
            mask,
            wcs=wcs,
            redshift=redshift,
            meta=meta,
        )

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Parameters and learned state as a JSON-serialisable dict.

        Stored with survey datasets and trained models so that the exact same
        preprocessing can be rebuilt with `from_dict`.

        Examples
        --------
        >>> from ifsrepr.preprocess import Preprocessor
        >>> config = Preprocessor("manga19", size=32).to_dict()
        >>> config["params"]["size"], config["fitted"]
        (32, None)
        """
        lines = self._validate()
        fitted = None
        if hasattr(self, "scales_"):
            fitted = {
                "scales": [float(s) for s in self.scales_],
                "n_good": [int(n) for n in self.n_good_],
                "unit": unit_to_string(self.unit_),
                "n_stacks_seen": int(self.n_stacks_seen_),
            }
        return {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "params": self.params_dict(),
            "lines": [
                {"name": line.name, "rest_wavelength": line.rest_wavelength.to_value(u.AA)}
                for line in lines
            ],
            "fitted": fitted,
        }

    def params_dict(self) -> dict[str, Any]:
        """The parameters in canonical, JSON-serialisable form (lines by name).

        Two preprocessors with equal ``params_dict`` produce the same grid and
        normalisation formula (the learned scales may differ).
        """
        lines = self._validate()
        return {
            "lines": [line.name for line in lines],
            "grid": self.grid,
            "size": int(self.size),
            "n_reff": float(self.n_reff),
            "normalisation": self.normalisation,
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | str) -> Preprocessor:
        """Rebuild a preprocessor (with its learned scales) from `to_dict` output.

        Parameters
        ----------
        config : dict or str
            The dict, or its JSON text.
        """
        if isinstance(config, str):
            config = json.loads(config)
        if config.get("format") != CONFIG_FORMAT:
            raise PreprocessingError(f"not a Preprocessor configuration: {dict(config)!r:.200}")
        if int(config.get("version", 0)) > CONFIG_VERSION:
            raise PreprocessingError(
                f"Preprocessor configuration version {config['version']} is newer than this "
                f"ifsrepr understands ({CONFIG_VERSION})"
            )
        stored = [
            EmissionLine(row["name"], float(row["rest_wavelength"]) * u.AA)
            for row in config["lines"]
        ]
        names = [line.name for line in stored]
        try:
            # Lines of the DAP table are kept by name (they carry side-bands there).
            resolved = resolve_lines(names)
            lines: list[str] | list[EmissionLine] = names if list(resolved) == stored else stored
        except IFSReprError:
            lines = stored
        params = {key: value for key, value in config["params"].items() if key != "lines"}
        pre = cls(lines, **params)
        pre._validate()
        fitted = config.get("fitted")
        if fitted:
            pre.scales_ = np.asarray(fitted["scales"], dtype=np.float64)
            pre.n_good_ = np.asarray(fitted["n_good"], dtype=np.int64)
            pre.unit_ = parse_bunit(fitted["unit"])
            pre.n_stacks_seen_ = int(fitted["n_stacks_seen"])
        return pre

    def differences(self, other: Preprocessor | Mapping[str, Any]) -> list[str]:
        """Readable differences between this preprocessor's parameters and another's.

        Learned scales are not compared (they change with the training set).

        Examples
        --------
        >>> from ifsrepr.preprocess import Preprocessor
        >>> Preprocessor(size=64).differences(Preprocessor(size=32))
        ['size: 64 != 32']
        """
        if isinstance(other, Preprocessor):
            theirs = other.params_dict()
        else:
            theirs = dict(other.get("params", other))
        return config_differences(self.params_dict(), theirs)


def config_differences(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    labels: tuple[str, str] | None = None,
    prefix: str = "",
) -> list[str]:
    """Describe how two JSON-like configurations differ, one line per difference.

    Nested mappings are compared key by key (``key.sub``); lists of names
    report what is only on one side, or that the order differs.

    Parameters
    ----------
    a, b : mapping
        The configurations.
    labels : tuple of str, optional
        Names of the two sides in the messages (e.g. ``("the dataset",
        "this run")``).
    prefix : str
        Prepended to every key (used for nested mappings).

    Examples
    --------
    >>> from ifsrepr.preprocess import config_differences
    >>> config_differences({"grid": "reff", "lines": ["Ha-6564", "Hb-4862"]},
    ...                    {"grid": "native", "lines": ["Ha-6564"]})
    ["grid: 'reff' != 'native'", 'lines: Hb-4862 only in the first']
    >>> config_differences({"size": 64}, {"size": 32}, labels=("the dataset", "this run"))
    ['size: 64 in the dataset, 32 in this run']
    """
    first, second = labels or ("the first", "the second")
    out: list[str] = []
    for key in sorted(set(a) | set(b), key=str):
        name = f"{prefix}{key}"
        if key not in b:
            out.append(f"{name}: {a[key]!r} only in {first}")
            continue
        if key not in a:
            out.append(f"{name}: {b[key]!r} only in {second}")
            continue
        left, right = a[key], b[key]
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            out.extend(config_differences(left, right, labels=labels, prefix=f"{name}."))
        elif _is_name_list(left) and _is_name_list(right):
            if list(left) == list(right):
                continue
            only_a = [v for v in left if v not in right]
            only_b = [v for v in right if v not in left]
            parts = []
            if only_a:
                parts.append(f"{', '.join(only_a)} only in {first}")
            if only_b:
                parts.append(f"{', '.join(only_b)} only in {second}")
            out.append(f"{name}: {'; '.join(parts) or 'same entries in a different order'}")
        elif _normalise_json(left) != _normalise_json(right):
            if labels:
                out.append(f"{name}: {left!r} in {first}, {right!r} in {second}")
            else:
                out.append(f"{name}: {left!r} != {right!r}")
    return out


# -- helpers ------------------------------------------------------------------------


def _is_name_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _normalise_json(value: Any) -> Any:
    """Compare values as JSON would store them (tuples as lists, ints as floats)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _axis_weights(
    n_in: int, centre: float, ratio: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """1-D resampling weights ``(size, n_in)`` and the "touches outside" flags ``(size,)``.

    Output pixel ``k`` is centred at input pixel coordinate
    ``centre + (k - (size - 1) / 2) * ratio`` and is ``ratio`` input pixels
    wide. Finer output (``ratio <= 1``): linear interpolation between the two
    nearest input pixels. Coarser output: the overlap of the output pixel with
    each input pixel (an exact area-weighted mean, which conserves flux). The
    two agree at ``ratio == 1``. Rows sum to one.
    """
    positions = centre + (np.arange(size) - (size - 1) / 2.0) * ratio
    index = np.arange(n_in)[None, :]
    eps = _WEIGHT_EPS
    # "outside": a pixel beyond the array (index -1 or n_in) would get weight.
    if ratio <= 1.0:
        weights = np.clip(1.0 - np.abs(positions[:, None] - index), 0.0, None)
        outside = (positions < -eps) | (positions > n_in - 1 + eps)
    else:
        lo, hi = positions - ratio / 2.0, positions + ratio / 2.0
        weights = np.clip(
            np.minimum(hi[:, None], index + 0.5) - np.maximum(lo[:, None], index - 0.5), 0.0, None
        )
        outside = (lo < -0.5 - eps) | (hi > n_in - 0.5 + eps)
    weights[weights < eps] = 0.0
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    outside |= totals[:, 0] == 0
    return weights, outside


def _surface_brightness_unit(unit: u.UnitBase) -> u.UnitBase:
    """``unit`` per arcsec^2, replacing a ``/spaxel`` if the unit has one."""
    bases = getattr(unit, "bases", [])
    powers = getattr(unit, "powers", [])
    for base, power in zip(bases, powers, strict=False):
        if base == spaxel and power == -1:
            return unit * spaxel / u.arcsec**2
    return unit / u.arcsec**2


def _conversion_factor(source: u.UnitBase, target: u.UnitBase, name: str) -> float:
    try:
        return float(source.to(target))
    except u.UnitConversionError:
        raise PreprocessingError(
            f"{name}: unit {source} cannot be converted to the fitted unit {target}"
        ) from None


def _convert(values: np.ndarray, source: u.UnitBase, target: u.UnitBase, name: str) -> np.ndarray:
    if source == target:
        return values
    return values * _conversion_factor(source, target, name)


def _positive_float(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _json_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def _as_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array)
