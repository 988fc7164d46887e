"""Catalogues for the probes: aligning one with a dataset, and probe targets from mock truth."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
from astropy.table import MaskedColumn, Table

from .errors import CatalogMatchError

__all__ = ["DRPALL_UNKNOWN", "match_catalog", "mock_targets"]

#: DRPall (and NSA) write this for an unknown value; `match_catalog` masks it.
DRPALL_UNKNOWN = -9999.0


def _read(catalog: Table | str | os.PathLike) -> Table:
    if isinstance(catalog, Table):
        return catalog
    from ..dataset.catalog import read_table

    return read_table(catalog)


def _plateifu_column(table: Table, source: str) -> str:
    lower = {name.lower(): name for name in table.colnames}
    if "plateifu" not in lower:
        raise CatalogMatchError(
            f"{source}: no plate-IFU column (plateifu, any case) to match the dataset by; "
            f"columns: {', '.join(table.colnames[:20])}"
        )
    return lower["plateifu"]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return "" if np.ma.is_masked(value) else str(value).strip()


def match_catalog(
    plateifu: Sequence[str] | np.ndarray,
    catalog: Table | str | os.PathLike,
    *,
    min_fraction: float = 1.0,
) -> Table:
    """The catalogue's rows in the order of a dataset's galaxies, matched by plate-IFU.

    Parameters
    ----------
    plateifu : sequence of str
        The galaxies' plate-IFUs (e.g. ``Encoding.plateifu``); a galaxy
        observed twice gets the same catalogue row twice.
    catalog : astropy.table.Table or path
        A table with a ``plateifu`` column (any case): DRPall, a mock
        survey's ``truth.ecsv``, your own (FITS, ECSV or CSV).
    min_fraction : float
        Smallest fraction of the galaxies that must be found in the
        catalogue. The default (1) refuses any galaxy without a row; below
        it, unmatched galaxies get masked values, which `probe` drops and
        counts.

    Returns
    -------
    astropy.table.Table
        ``len(plateifu)`` rows, masked where a galaxy has no catalogue row,
        and with DRPall's unknown value (-9999) masked in numeric columns.
        ``meta['n_matched']`` counts the galaxies found.

    Raises
    ------
    CatalogMatchError
        When fewer than ``min_fraction`` of the galaxies match (always when
        none does), saying how many did; when a needed plate-IFU occurs on
        several catalogue rows; when the catalogue has no plate-IFU column.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from ifsrepr.probes import match_catalog
    >>> catalog = Table({"plateifu": ["8485-1901", "7443-12703"], "mass": [10.2, 11.0]})
    >>> match_catalog(["7443-12703", "8485-1901"], catalog)["mass"].tolist()
    [11.0, 10.2]
    """
    if not 0 <= min_fraction <= 1:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
    source = str(catalog) if not isinstance(catalog, Table) else "the catalogue"
    table = _read(catalog)
    key = _plateifu_column(table, source)
    names = [_text(value) for value in table[key]]
    counts = Counter(names)
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        first.setdefault(name, i)
    wanted = [_text(p) for p in plateifu]
    n = len(wanted)
    found = np.array([name in first for name in wanted], dtype=bool)
    n_matched = int(found.sum())
    if n == 0 or n_matched == 0 or n_matched < min_fraction * n:
        missing = [name for name, ok in zip(wanted, found, strict=True) if not ok]
        example = ", ".join(list(dict.fromkeys(names))[:3])
        raise CatalogMatchError(
            f"{source} does not match the dataset: {n_matched} of {n} galaxies have a row with "
            f"their plate-IFU (at least {min_fraction:.0%} needed); unmatched e.g. "
            f"{', '.join(missing[:5])}; the catalogue has e.g. {example}. Is it the catalogue "
            "of this survey?"
        )
    ambiguous = sorted({name for name in wanted if counts.get(name, 0) > 1})
    if ambiguous:
        raise CatalogMatchError(
            f"{source}: {len(ambiguous)} plate-IFU(s) of the dataset occur on several rows "
            f"({', '.join(ambiguous[:5])}); which row describes the galaxy is ambiguous"
        )
    take = np.array([first.get(name, 0) for name in wanted], dtype=np.int64)
    out = Table(masked=True)
    for name in table.colnames:
        column = table[name]
        values = np.ma.asarray(column)[take] if len(table) else np.ma.masked_all(n)
        mask = np.ma.getmaskarray(values).copy()
        if mask.ndim > 1:
            mask[~found] = True
        else:
            mask |= ~found
        data = np.ma.getdata(values)
        if data.dtype.kind == "f":
            mask |= data == DRPALL_UNKNOWN
        elif data.dtype.kind in "iu" and data.ndim == 1:
            mask |= data == int(DRPALL_UNKNOWN)
        out[name] = MaskedColumn(data, mask=mask, unit=column.unit, description=column.description)
    out.meta.update(table.meta)
    out.meta["n_matched"] = n_matched
    out.meta["n_galaxies"] = n
    return out


def mock_targets(truth: Table | str | os.PathLike, *, luminosity: bool = True) -> Table:
    """The quantities a galaxy's emission lines should reveal, from a mock survey's truth.

    The truth table (``truth.ecsv`` of `ifsrepr.mock.make_survey`) records
    every drawn parameter, including some no spectrum can show (the
    metallicity drawn for a galaxy without star formation). This turns it
    into probe targets that are physically measurable, leaving a value
    missing where it is not:

    ``class``
        ``seyfert`` or ``liner`` (a nucleus), else ``star_forming`` or
        ``retired`` (the BPT-style class of the galaxy).
    ``galaxy_type``, ``agn_type``, ``anomaly``
        As drawn.
    ``log_halpha_lum``
        log10 Hα luminosity (erg/s) of all the ionised gas inside the IFU
        field, after internal dust (from the galaxy model; needs
        ``luminosity=True``, about 0.2 s a galaxy).
    ``log_halpha_sf``
        The same for the HII regions alone, the star-formation-rate tracer
        (star-forming galaxies only).
    ``log_ew_halpha_sf``
        log10 of the drawn Hα equivalent width of the star-forming disc at
        1 Re (star-forming galaxies only).
    ``logoh_centre``, ``logoh_gradient``, ``ew_gradient``
        Central 12 + log(O/H), its gradient (dex/Re), and the EW(Hα)
        gradient (star-forming galaxies only).
    ``ebv_gas_centre``
        Central E(B-V) of the gas (dust).
    ``agn_strength``
        Nuclear to host Hα at the centre (galaxies with a nucleus only).
    ``inclination``, ``v_max``, ``v_proj``
        Inclination (degrees), rotation amplitude (km/s), and its
        line-of-sight projection ``v_max sin i``, what a velocity map shows.
    ``z``, ``reff``
        Redshift and effective radius (arcsec).

    Parameters
    ----------
    truth : astropy.table.Table or path
        The truth table.
    luminosity : bool
        Compute the Hα luminosities (rebuilds each galaxy's model).

    Returns
    -------
    astropy.table.Table
        ``plateifu`` then the columns above; missing values are NaN (floats)
        or masked (text).

    Examples
    --------
    The truth table of three mock galaxies (as `ifsrepr.mock.make_survey`
    writes it, here drawn without writing any file):

    >>> from astropy.table import Table
    >>> from ifsrepr.mock import draw_survey
    >>> from ifsrepr.probes import mock_targets
    >>> truth = Table(rows=[p.to_row() for p in draw_survey(3, seed=0, fibres=[19])])
    >>> targets = mock_targets(truth)
    >>> targets["plateifu", "class", "agn_type"]
    <Table length=3>
     plateifu    class     agn_type
       str9      str12       str4
    --------- ------------ --------
    9028-1902 star_forming     none
    8311-1902      retired     none
    9884-1901 star_forming     none
    >>> targets["log_halpha_lum"].round(2).tolist()  # log10 erg/s
    [41.26, 39.41, 42.21]
    >>> targets["log_halpha_sf"].round(2).tolist()  # HII regions only, star-forming galaxies
    [41.25, nan, 42.17]
    """
    truth = _read(truth)
    if not len(truth):
        raise CatalogMatchError("the truth table is empty")
    star_forming = np.asarray(truth["galaxy_type"], dtype=str) == "star_forming"
    agn = np.asarray(truth["agn_type"], dtype=str)
    out = Table()
    out["plateifu"] = np.asarray(truth["plateifu"], dtype=str)
    out["class"] = np.where(agn != "none", agn, np.asarray(truth["galaxy_type"], dtype=str))
    for name in ("galaxy_type", "agn_type", "anomaly"):
        out[name] = np.asarray(truth[name], dtype=str)
    if luminosity:
        total, hii = _halpha_luminosities(truth)
        out["log_halpha_lum"] = _log(total)
        out["log_halpha_sf"] = np.where(star_forming, _log(hii), np.nan)
    ew = np.asarray(truth["ew_halpha_sf"], dtype=np.float64)
    out["log_ew_halpha_sf"] = np.where(star_forming, _log(ew), np.nan)
    for name in ("logoh_centre", "logoh_gradient", "ew_gradient"):
        out[name] = np.where(star_forming, np.asarray(truth[name], dtype=np.float64), np.nan)
    out["ebv_gas_centre"] = np.asarray(truth["ebv_gas_centre"], dtype=np.float64)
    out["agn_strength"] = np.where(
        agn != "none", np.asarray(truth["agn_strength"], dtype=np.float64), np.nan
    )
    inclination = np.asarray(truth["inclination"], dtype=np.float64)
    v_max = np.asarray(truth["v_max"], dtype=np.float64)
    out["inclination"] = inclination
    out["v_max"] = v_max
    out["v_proj"] = v_max * np.sin(np.radians(inclination))
    out["z"] = np.asarray(truth["z"], dtype=np.float64)
    out["reff"] = np.asarray(truth["reff"], dtype=np.float64)
    units = {"inclination": "deg", "v_max": "km/s", "v_proj": "km/s", "reff": "arcsec"}
    for name, unit in units.items():
        out[name].unit = unit
    return out


def _log(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def _halpha_luminosities(truth: Table) -> tuple[np.ndarray, np.ndarray]:
    """Total and HII-region Hα luminosities (erg/s) of each galaxy's model."""
    from astropy.cosmology import Planck18

    from ..mock import GalaxyParams, simulate_galaxy
    from ..mock.nebular import line_index

    halpha = line_index("Ha-6564")
    total = np.zeros(len(truth))
    hii = np.zeros(len(truth))
    for i, row in enumerate(truth):
        model = simulate_galaxy(GalaxyParams.from_row(row))
        for component in model.emission:
            flux = float(component.flux[halpha].sum())
            total[i] += flux
            if component.name == "hii":
                hii[i] += flux
    # Model fluxes are in 1e-17 erg/s/cm^2; the mock places galaxies with Planck18.
    distance = Planck18.luminosity_distance(np.asarray(truth["z"], dtype=np.float64)).to("cm")
    factor = 4 * np.pi * distance.value**2 * 1e-17
    return total * factor, hii * factor
