"""Vectorised band integrals: the linear algebra of the ``window`` extractor.

For every spaxel a line flux is a *linear* combination of the channel fluxes,
``flux = sum_k c_k F_k``: the passband integral minus a straight-line
continuum through the mean flux of a blue and a red side-band. Each spaxel
gets its own bands (they follow a velocity field), and channels only partly
inside a band count with the fraction of their width that is inside it, so
fluxes do not jump as bands slide across the grid.

`BandSums` evaluates these sums without building the coefficients: it keeps
running (cumulative) integrals over the channels of a slab, so the integral
of any quantity over any band is the difference of two interpolated values,
``O(1)`` per spaxel and band once the running sums exist. Several lines that
share a slab share its running sums. The inverse variance stays exact:
``var = sum_k c_k**2 / ivar_k`` is a running sum over the channels fully
inside a band plus the squared fractions of its two end channels.

Where two bands meet inside one channel, ``c_k`` there mixes both, and the
variance takes the cross term of that channel. Bands that *overlap* (a
passband wider than the gap to a side-band) fall back to the explicit
construction, `dense_band_integrals` (`BandSums` does that by itself),
which is also the reference the tests compare with.
"""

from __future__ import annotations

import numpy as np

from .scratch import Scratch

__all__ = ["BandSums", "band_integrals", "dense_band_integrals", "overlap_fraction"]


def overlap_fraction(lo_edges: np.ndarray, hi_edges: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Fraction of each channel inside ``[lo, hi]``.

    Parameters
    ----------
    lo_edges, hi_edges : array, shape (K, 1)
        Channel edges.
    lo, hi : array, shape (N,)
        Band limits per spaxel.

    Returns
    -------
    array, shape (K, N)

    Examples
    --------
    >>> import numpy as np
    >>> edges = np.array([0.0, 1.0, 2.0, 3.0])
    >>> overlap_fraction(edges[:-1, None], edges[1:, None], np.array([0.5]), np.array([2.0]))
    array([[0.5],
           [1. ],
           [0. ]])
    """
    inside = np.minimum(hi_edges, hi[None, :]) - np.maximum(lo_edges, lo[None, :])
    return np.clip(inside, 0.0, None) / (hi_edges - lo_edges)


class _Position:
    """Where per-spaxel wavelengths fall on the slab: channel index and fraction below."""

    __slots__ = ("channel", "below", "x", "requested", "_flat")

    def __init__(self, edges: np.ndarray, width: np.ndarray, x: np.ndarray):
        n_channels = width.size
        self.requested = x
        x = np.clip(x, edges[0], edges[-1])
        self.x = x
        channel = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_channels - 1)
        #: Index of the channel holding x, and the fraction of it below x.
        self.channel = channel
        self.below = (x - edges[channel]) / width[channel]
        self._flat = None

    def flat(self, n_columns: int) -> np.ndarray:
        """Index of each spaxel's channel in a raveled ``(K, n_columns)`` table.

        ``table.ravel().take(flat)`` is several times faster than
        ``table[channel, arange(n)]`` (numpy's general fancy indexing).
        """
        if self._flat is None or self._flat[0] != n_columns:
            self._flat = (n_columns, _flat_index(self.channel, n_columns))
        return self._flat[1]

    def subset(self, index: np.ndarray) -> _Position:
        """The positions of some spaxels only."""
        part = object.__new__(_Position)
        for name in ("channel", "below", "x", "requested"):
            setattr(part, name, getattr(self, name)[index])
        part._flat = None
        return part


def _flat_index(channel: np.ndarray, n_columns: int) -> np.ndarray:
    """Positions of ``(channel[i], i)`` in a raveled ``(K, n_columns)`` array."""
    return channel * n_columns + np.arange(channel.size)


def _running_sum(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Cumulative sum along the channels, with a leading row of zeros."""
    table = np.empty((values.shape[0] + 1, *values.shape[1:])) if out is None else out
    table[0] = 0.0
    if values.ndim == 1:
        np.cumsum(values, out=table[1:])
        return table
    # Row by row: numpy's cumsum along the first axis of a C-ordered 2-D array
    # walks each column with a large stride, about 6x slower than adding rows.
    for k in range(values.shape[0]):
        np.add(table[k], values[k], out=table[k + 1])
    return table


def _partial(table: np.ndarray, values: np.ndarray, at: _Position, columns) -> np.ndarray:
    """Running integral of ``values`` up to each spaxel's position (``table`` = cumsum)."""
    if values.ndim == 1:
        return table[at.channel] + at.below * values[at.channel]
    return table.ravel().take(at.flat(table.shape[1])) + at.below * values.ravel().take(
        at.flat(values.shape[1])
    )


class BandSums:
    """Running integrals over a slab of channels, to integrate bands per spaxel.

    Parameters
    ----------
    wave : array, shape (K,)
        Channel centres of the slab.
    edges : array, shape (K + 1,)
        Channel edges of the slab.
    flux, ivar : array, shape (K, N)
        Flux density and inverse variance, one column per spaxel.
    good : bool array, shape (K, N)
        Channels that may be used.
    first_moment : bool
        Also keep what `integrals` needs for ``first_moment=True``.
    scratch : `~ifsrepr.extraction.scratch.Scratch`, optional
        Keep the per-spaxel running sums in its buffers (names starting
        with ``scratch_prefix``) instead of fresh arrays; the object is then
        valid until those buffers are reused.
    scratch_prefix : str
        Prefix of the buffer names.

    Examples
    --------
    A flat continuum of 1 plus a line of 10 (flux density) in one channel of
    width 1, measured with a passband around it and side-bands either side:

    >>> import numpy as np
    >>> edges = np.arange(21.0)
    >>> wave = 0.5 * (edges[:-1] + edges[1:])
    >>> flux = np.ones((20, 1))
    >>> flux[10] += 10.0
    >>> sums = BandSums(wave, edges, flux, np.ones((20, 1)), np.ones((20, 1), bool))
    >>> band = lambda lo, hi: (np.array([lo]), np.array([hi]))
    >>> line, ivar, masked = sums.integrals(band(8, 13), band(1, 6), band(15, 19))
    >>> float(line[0]), bool(masked[0])
    (10.0, False)
    """

    def __init__(
        self,
        wave: np.ndarray,
        edges: np.ndarray,
        flux: np.ndarray,
        ivar: np.ndarray,
        good: np.ndarray,
        *,
        first_moment: bool = False,
        scratch: Scratch | None = None,
        scratch_prefix: str = "bands",
    ):
        wave = np.asarray(wave, dtype=float)
        edges = np.asarray(edges, dtype=float)
        width = np.diff(edges)
        with np.errstate(invalid="ignore"):
            usable = good & (ivar > 0) & np.isfinite(flux)
        self._wave, self._edges, self._width = wave, edges, width
        self._inputs = (flux, ivar, good)  # for bands that overlap
        # Spaxels with no usable channel (outside an IFU's hexagon: half of a
        # MaNGA cube) are masked for every band; keep running sums only for
        # the others.
        self._n_spaxels = flux.shape[1]
        live = np.flatnonzero(usable.any(axis=0))
        self._live = None if live.size == self._n_spaxels else live
        shape = (width.size, live.size)

        def buffer(name: str, rows: int = width.size) -> np.ndarray:
            if scratch is None:
                return np.empty((rows, live.size))
            return scratch.array(f"{scratch_prefix}.{name}", (rows, live.size))

        # Gathered straight into the arrays the products are formed in.
        flux_width, variance = buffer("wu_flux"), buffer("wu_var")
        if self._live is not None:
            usable = usable[:, live]
            flux = np.take(flux, live, axis=1, out=flux_width, mode="clip")
            ivar = np.take(ivar, live, axis=1, out=variance, mode="clip")
        self._columns = np.arange(shape[1])
        unusable = None if usable.all() else ~usable
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.multiply(flux, width[:, None], out=flux_width)
            np.divide((width**2)[:, None], ivar, out=variance)
        if unusable is not None:
            np.copyto(flux_width, 0.0, where=unusable)
            np.copyto(variance, 0.0, where=unusable)

        # Inside the footprint most spaxels can use every channel of a slab;
        # for them the usable width of a band is its width, known from 1-D
        # running sums. Only "holey" spaxels need their own.
        self._holey = np.flatnonzero(~usable.all(axis=0))
        per_channel = {
            "w": width,  # 1-D: the same for every spaxel
            "w_wave": width * wave,
            "w_wave2": width * wave**2,
            "wu_flux": flux_width,
            "wu_var": variance,
        }
        if first_moment:
            per_channel["wu_flux_wave"] = np.multiply(
                flux_width, wave[:, None], out=buffer("wu_flux_wave")
            )
        holey_width = usable[:, self._holey] * width[:, None]
        self._holey_values = {"wu": holey_width, "wu_wave": holey_width * wave[:, None]}
        self._values = per_channel
        self._tables = {
            name: _running_sum(
                values, None if values.ndim == 1 else buffer(f"{name}.table", width.size + 1)
            )
            for name, values in per_channel.items()
        }
        self._holey_tables = {name: _running_sum(v) for name, v in self._holey_values.items()}

    def _locate(self, x: np.ndarray) -> _Position:
        return _Position(self._edges, self._width, np.asarray(x, dtype=float))

    def _integral(self, name: str, lo: _Position, hi: _Position) -> np.ndarray:
        if name in self._holey_tables:
            # The full width (1-D), replaced where some channels are unusable.
            result = self._integral({"wu": "w", "wu_wave": "w_wave"}[name], lo, hi)
            if self._holey.size:
                table, values = self._holey_tables[name], self._holey_values[name]
                columns = np.arange(self._holey.size)
                lo_h, hi_h = lo.subset(self._holey), hi.subset(self._holey)
                result[self._holey] = _partial(table, values, hi_h, columns) - _partial(
                    table, values, lo_h, columns
                )
            return result
        table, values = self._tables[name], self._values[name]
        return _partial(table, values, hi, self._columns) - _partial(
            table, values, lo, self._columns
        )

    def _squared_integral(self, name: str, lo: _Position, hi: _Position) -> np.ndarray:
        """``sum_k fraction_k**2 * values_k`` over a band (for the variance)."""
        table, values = self._tables[name].ravel(), self._values[name].ravel()
        n = self._columns.size
        first, last = lo.channel, hi.channel
        same = first == last
        inner = table.take(hi.flat(n)) - table.take(_flat_index(np.minimum(first + 1, last), n))
        at_first = values.take(lo.flat(n))
        first_part = (1.0 - lo.below) ** 2 * at_first
        last_part = hi.below**2 * values.take(hi.flat(n))
        single = (hi.below - lo.below) ** 2 * at_first
        return np.where(same, single, inner + first_part + last_part)

    def _shared_channel_sum(self, name: str, a, b) -> np.ndarray:
        """``sum_k fraction_a,k * fraction_b,k * values_k`` for two bands that do not overlap.

        Bands that do not overlap share at most one channel: the one holding
        the top of the lower band and the bottom of the upper band.
        """
        values, cols, edges, width = self._values[name], self._columns, self._edges, self._width
        a_lower = a[1].x <= b[0].x
        lower_lo = np.where(a_lower, a[0].x, b[0].x)
        lower_hi = np.where(a_lower, a[1].x, b[1].x)
        upper_lo = np.where(a_lower, b[0].x, a[0].x)
        upper_hi = np.where(a_lower, b[1].x, a[1].x)
        channel = np.where(a_lower, a[1].channel, b[1].channel)
        other = np.where(a_lower, b[0].channel, a[0].channel)
        lower_part = np.clip(lower_hi - np.maximum(lower_lo, edges[channel]), 0.0, None)
        upper_part = np.clip(np.minimum(upper_hi, edges[channel + 1]) - upper_lo, 0.0, None)
        term = (
            lower_part
            * upper_part
            / width[channel] ** 2
            * values.ravel().take(_flat_index(channel, cols.size))
        )
        return np.where(channel == other, term, 0.0)

    @staticmethod
    def _bands_overlap(*bands) -> bool:
        """Whether, for any spaxel, two of the bands overlap in wavelength."""
        for i in range(len(bands)):
            for j in range(i + 1, len(bands)):
                (a_lo, a_hi), (b_lo, b_hi) = bands[i], bands[j]
                if np.any(np.maximum(a_lo.x, b_lo.x) < np.minimum(a_hi.x, b_hi.x)):
                    return True
        return False

    def integrals(
        self,
        passband: tuple[np.ndarray, np.ndarray],
        blueside: tuple[np.ndarray, np.ndarray],
        redside: tuple[np.ndarray, np.ndarray],
        *,
        first_moment: bool = False,
    ):
        """Continuum-subtracted passband fluxes, inverse variance and mask.

        Same parameters (the bands) and results as `band_integrals`. Where
        two bands of a spaxel share a channel, the result comes from
        `dense_band_integrals` (exact, slower).
        """
        if first_moment and "wu_flux_wave" not in self._tables:
            raise ValueError("create BandSums with first_moment=True to measure first moments")
        limits = [
            np.broadcast_to(np.asarray(x, dtype=float), (self._n_spaxels,))
            for band in (passband, blueside, redside)
            for x in band
        ]
        if self._live is not None:
            limits = [x[self._live] for x in limits]
        p0, p1, b0, b1, r0, r1 = (self._locate(x) for x in limits)
        if self._bands_overlap((p0, p1), (b0, b1), (r0, r1)):
            return dense_band_integrals(
                self._wave,
                self._edges,
                *self._inputs,
                passband,
                blueside,
                redside,
                first_moment=first_moment,
            )
        result = self._live_integrals(p0, p1, b0, b1, r0, r1, first_moment)
        if self._live is None:
            return result
        # Spaxels with nothing usable: masked, as the explicit construction says.
        full = (
            np.zeros(self._n_spaxels),
            np.zeros(self._n_spaxels),
            np.ones(self._n_spaxels, dtype=bool),
            np.full(self._n_spaxels, np.nan),
        )
        for out, values in zip(full, result, strict=False):
            out[self._live] = values
        return full[: len(result)]

    def _live_integrals(self, p0, p1, b0, b1, r0, r1, first_moment):
        """`integrals` for the spaxels that have usable channels."""
        blue_weight = self._integral("wu", b0, b1)
        red_weight = self._integral("wu", r0, r1)
        blue_ok, red_ok = blue_weight > 0, red_weight > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            blue_mean = self._integral("wu_flux", b0, b1) / blue_weight
            red_mean = self._integral("wu_flux", r0, r1) / red_weight
            blue_centre = self._integral("wu_wave", b0, b1) / blue_weight
            red_centre = self._integral("wu_wave", r0, r1) / red_weight
            span = red_centre - blue_centre

            # Integral of the straight continuum over the passband, split into
            # the parts proportional to the blue and the red side-band means.
            covered = self._integral("w", p0, p1)
            pass_wave = self._integral("w_wave", p0, p1)
            red_share = (pass_wave - blue_centre * covered) / span
            blue_share = covered - red_share
            line_flux = (
                self._integral("wu_flux", p0, p1) - blue_share * blue_mean - red_share * red_mean
            )
            # c_k = fraction * w * (1 in the passband, -share * u / band weight
            # in a side-band); var = sum_k c_k**2 / ivar_k, with cross terms
            # where two bands meet inside one channel.
            coefficient = {"pass": 1.0, "blue": -blue_share / blue_weight,
                           "red": -red_share / red_weight}  # fmt: skip
            limits = {"pass": (p0, p1), "blue": (b0, b1), "red": (r0, r1)}
            variance = sum(
                coefficient[band] ** 2 * self._squared_integral("wu_var", *limits[band])
                for band in limits
            )
            for a, b in (("pass", "blue"), ("pass", "red"), ("blue", "red")):
                variance = variance + 2 * coefficient[a] * coefficient[b] * (
                    self._shared_channel_sum("wu_var", limits[a], limits[b])
                )
        # A passband channel that cannot be used lowers its usable width below
        # its width (the two running sums agree to the last bit otherwise).
        bad_in_passband = self._integral("wu", p0, p1) < covered * (1.0 - 1e-9)
        passband_width = p1.requested - p0.requested
        masked = (
            ~blue_ok
            | ~red_ok
            | bad_in_passband
            | ~np.isclose(covered, passband_width, rtol=1e-6)  # band ran off the slice
            | ~np.isfinite(variance)
            | (variance <= 0)
            | ~np.isfinite(line_flux)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            line_ivar = np.where(masked, 0.0, 1.0 / variance)
        result = (np.where(masked, 0.0, line_flux), line_ivar, masked)
        if first_moment:
            with np.errstate(invalid="ignore", divide="ignore"):
                pass_wave2 = self._integral("w_wave2", p0, p1)
                red_moment_share = (pass_wave2 - blue_centre * pass_wave) / span
                blue_moment_share = pass_wave - red_moment_share
                moment = (
                    self._integral("wu_flux_wave", p0, p1)
                    - blue_moment_share * blue_mean
                    - red_moment_share * red_mean
                )
                result += (moment / line_flux,)
        return result


def band_integrals(
    wave: np.ndarray,
    edges: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    good: np.ndarray,
    passband: tuple[np.ndarray, np.ndarray],
    blueside: tuple[np.ndarray, np.ndarray],
    redside: tuple[np.ndarray, np.ndarray],
    *,
    first_moment: bool = False,
):
    """Continuum-subtracted passband fluxes, their inverse variance, and a mask.

    Parameters
    ----------
    wave : array, shape (K,)
        Channel centres of the slice of the spectrum that holds every band.
    edges : array, shape (K + 1,)
        Channel edges of that slice.
    flux, ivar : array, shape (K, N)
        Flux density and inverse variance, one column per spaxel.
    good : bool array, shape (K, N)
        Channels that may be used.
    passband, blueside, redside : pair of arrays, shape (N,)
        Lower and upper limits of each band for each spaxel (observed frame).
    first_moment : bool
        Also return the flux-weighted mean wavelength of the line.

    Returns
    -------
    flux : array, shape (N,)
        Integrated line flux (flux-density unit times wavelength unit).
    ivar : array, shape (N,)
        Its exact inverse variance (0 where undefined).
    masked : bool array, shape (N,)
        True where a side-band has no good channel, a passband channel is
        bad, or the bands fall off the slice.
    mean_wavelength : array, shape (N,)
        Only with ``first_moment=True``: the flux-weighted mean wavelength of
        the continuum-subtracted line in the passband.

    Examples
    --------
    >>> import numpy as np
    >>> edges = np.arange(21.0)
    >>> wave = 0.5 * (edges[:-1] + edges[1:])
    >>> flux = np.ones((20, 1))
    >>> flux[10] += 10.0
    >>> one = lambda lo, hi: (np.array([lo]), np.array([hi]))
    >>> line, ivar, masked = band_integrals(wave, edges, flux, np.full((20, 1), 4.0),
    ...     np.ones((20, 1), bool), one(8, 13), one(1, 6), one(15, 19))
    >>> round(float(line[0]), 6), round(float(ivar[0]), 4)
    (10.0, 0.5102)
    """
    sums = BandSums(wave, edges, flux, ivar, good, first_moment=first_moment)
    return sums.integrals(passband, blueside, redside, first_moment=first_moment)


def dense_band_integrals(
    wave: np.ndarray,
    edges: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    good: np.ndarray,
    passband: tuple[np.ndarray, np.ndarray],
    blueside: tuple[np.ndarray, np.ndarray],
    redside: tuple[np.ndarray, np.ndarray],
    *,
    first_moment: bool = False,
):
    """`band_integrals` by building every coefficient ``c_k`` explicitly.

    ``O(K x N)`` memory and time per band; exact also where bands overlap.
    Same parameters and results as `band_integrals`.

    Examples
    --------
    Overlapping bands (a passband that reaches into the side-bands) are
    handled exactly:

    >>> import numpy as np
    >>> edges = np.arange(21.0)
    >>> wave = 0.5 * (edges[:-1] + edges[1:])
    >>> flux = np.ones((20, 1))
    >>> one = lambda lo, hi: (np.array([lo]), np.array([hi]))
    >>> line, ivar, masked = dense_band_integrals(wave, edges, flux, np.ones((20, 1)),
    ...     np.ones((20, 1), bool), one(4, 16), one(1, 6), one(15, 19))
    >>> round(float(line[0]), 10)
    0.0
    """
    lo_e, hi_e = edges[:-1, None], edges[1:, None]
    width = hi_e - lo_e
    usable = good & (ivar > 0) & np.isfinite(flux)
    values = np.where(usable, flux, 0.0)

    def side_weights(band):
        weight = overlap_fraction(lo_e, hi_e, *band) * width * usable
        total = weight.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = weight / total
            centre = (normalised * wave[:, None]).sum(axis=0)
        return normalised, centre, total > 0

    blue, blue_centre, blue_ok = side_weights(blueside)
    red, red_centre, red_ok = side_weights(redside)

    inside = overlap_fraction(lo_e, hi_e, *passband)
    covered = (inside * width).sum(axis=0)
    passband_width = passband[1] - passband[0]
    pass_weight = inside * width
    with np.errstate(invalid="ignore", divide="ignore"):
        position = (wave[:, None] - blue_centre) / (red_centre - blue_centre)
    # Integral of the straight-line continuum over the passband, split into
    # the parts proportional to the blue and the red side-band means.
    blue_share = (pass_weight * (1.0 - position)).sum(axis=0)
    red_share = (pass_weight * position).sum(axis=0)
    coefficients = pass_weight - blue_share * blue - red_share * red
    coefficients = np.nan_to_num(coefficients, nan=0.0)

    line_flux = (coefficients * values).sum(axis=0)
    if first_moment:
        # The same construction for the integral of lambda * (F - continuum).
        moment_weight = pass_weight * wave[:, None]
        moment_coefficients = (
            moment_weight
            - (moment_weight * (1.0 - position)).sum(axis=0) * blue
            - (moment_weight * position).sum(axis=0) * red
        )
        moment = (np.nan_to_num(moment_coefficients, nan=0.0) * values).sum(axis=0)
    needed = coefficients != 0
    measured = needed & (ivar > 0)
    variance_terms = np.divide(
        coefficients**2, ivar, out=np.zeros_like(coefficients), where=measured
    )
    # A channel the flux depends on but whose variance is unknown: no ivar.
    variance = np.where((needed & ~measured).any(axis=0), np.inf, variance_terms.sum(axis=0))

    bad_in_passband = ((inside > 0) & ~usable).any(axis=0)
    masked = (
        ~blue_ok
        | ~red_ok
        | bad_in_passband
        | ~np.isclose(covered, passband_width, rtol=1e-6)  # band ran off the slice
        | ~np.isfinite(variance)
        | (variance <= 0)
    )
    with np.errstate(divide="ignore"):
        line_ivar = np.where(masked, 0.0, 1.0 / variance)
    result = (np.where(masked, 0.0, line_flux), line_ivar, masked)
    if first_moment:
        with np.errstate(invalid="ignore", divide="ignore"):
            result += (moment / line_flux,)
    return result
