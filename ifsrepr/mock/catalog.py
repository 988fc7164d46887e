"""Draw mock galaxies from the real MaNGA catalogue.

The package ships the DAP's real ``drpcomplete_v2_7_1.fits`` (8405 MaNGA
targets of MPL-9; provenance in ``ifsrepr/data/PROVENANCE.md``). Each mock
galaxy takes, from one real row: PLATE, IFUDESIGN (hence the cube size and
bundle footprint), MANGAID, OBJRA/OBJDEC, the redshift ``z = VEL / c`` (VEL is
cz in km/s), the ellipticity ``ELL = 1 - b/a``, the position angle PA and the
effective radius REFF (arcsec), plus the targeting bits. Rows with a missing
or unphysical value (cz <= 0 or z > 0.2, ELL outside [0, 1), PA outside
[0, 180], REFF <= 0.3") are skipped: 8042 rows remain.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from .instrument import IFU_SIZES

__all__ = ["CatalogueGalaxy", "load_catalogue", "draw_from_catalogue"]

C_KMS = 299792.458
CATALOGUE_FILE = "drpcomplete_v2_7_1.fits"


@dataclass(frozen=True)
class CatalogueGalaxy:
    """The real properties of one catalogue row that a mock galaxy inherits.

    Attributes
    ----------
    row : int
        Row in ``drpcomplete_v2_7_1.fits``.
    plate, ifudesign : int
    mangaid : str
    ra, dec : float
        OBJRA/OBJDEC (degrees).
    glon, glat : float
        Galactic coordinates (degrees).
    z : float
        VEL / c.
    ell, pa, reff : float
        Ellipticity 1 - b/a, position angle (degrees E of N), effective radius (arcsec).
    catid, manga_target1, manga_target3 : int
    """

    row: int
    plate: int
    ifudesign: int
    mangaid: str
    ra: float
    dec: float
    glon: float
    glat: float
    z: float
    ell: float
    pa: float
    reff: float
    catid: int
    manga_target1: int
    manga_target3: int

    @property
    def plateifu(self) -> str:
        """``"PLATE-IFUDESIGN"``."""
        return f"{self.plate}-{self.ifudesign}"


@functools.cache
def load_catalogue() -> dict[str, np.ndarray]:
    """The usable rows of the real catalogue, as arrays (cached).

    Returns
    -------
    dict of str to ndarray
        Keys ``row, plate, ifudesign, mangaid, ra, dec, glon, glat, z, ell,
        pa, reff, catid, manga_target1, manga_target3``.
    """
    source = resources.files("ifsrepr") / "data" / "mock" / CATALOGUE_FILE
    with resources.as_file(source) as path, fits.open(path) as hdus:
        data = hdus["DRPC"].data
        table = {
            "row": np.arange(len(data)),
            "plate": np.asarray(data["PLATE"], dtype=int),
            "ifudesign": np.asarray(data["IFUDESIGN"], dtype=int),
            "mangaid": np.char.strip(np.asarray(data["MANGAID"]).astype(str)),
            "ra": np.asarray(data["OBJRA"], dtype=float),
            "dec": np.asarray(data["OBJDEC"], dtype=float),
            "z": np.asarray(data["VEL"], dtype=float) / C_KMS,
            "ell": np.asarray(data["ELL"], dtype=float),
            "pa": np.asarray(data["PA"], dtype=float),
            "reff": np.asarray(data["REFF"], dtype=float),
            "catid": np.asarray(data["CATID"], dtype=int),
            "manga_target1": np.asarray(data["MANGA_TARGET1"], dtype=int),
            "manga_target3": np.asarray(data["MANGA_TARGET3"], dtype=int),
        }
    usable = (
        (table["z"] > 0)
        & (table["z"] < 0.2)
        & (table["ell"] >= 0)
        & (table["ell"] < 1)
        & (table["pa"] >= 0)
        & (table["pa"] <= 180)
        & (table["reff"] > 0.3)
        & np.isin(table["ifudesign"] // 100, list(IFU_SIZES))
    )
    table = {key: value[usable] for key, value in table.items()}
    galactic = SkyCoord(table["ra"] * u.deg, table["dec"] * u.deg, frame="icrs").galactic
    table["glon"] = galactic.l.deg
    table["glat"] = galactic.b.deg
    return table


def galaxy_at(index: int) -> CatalogueGalaxy:
    """The `CatalogueGalaxy` at position ``index`` of the usable rows."""
    table = load_catalogue()
    values = {key: table[key][index] for key in table}
    return CatalogueGalaxy(
        row=int(values["row"]),
        plate=int(values["plate"]),
        ifudesign=int(values["ifudesign"]),
        mangaid=str(values["mangaid"]),
        ra=float(values["ra"]),
        dec=float(values["dec"]),
        glon=float(values["glon"]),
        glat=float(values["glat"]),
        z=float(values["z"]),
        ell=float(values["ell"]),
        pa=float(values["pa"]),
        reff=float(values["reff"]),
        catid=int(values["catid"]),
        manga_target1=int(values["manga_target1"]),
        manga_target3=int(values["manga_target3"]),
    )


def draw_from_catalogue(
    n: int, rng: np.random.Generator, *, fibres: tuple[int, ...] | None = None
) -> list[CatalogueGalaxy]:
    """Draw ``n`` distinct real galaxies.

    The usable rows are shuffled once by ``rng`` and the first ``n`` taken, so
    a larger survey with the same seed starts with the same galaxies.

    Parameters
    ----------
    n : int
        Number of galaxies.
    rng : numpy.random.Generator
    fibres : tuple of int, optional
        Keep only bundles of these sizes (e.g. ``(19,)`` for the 34x34 cubes).

    Raises
    ------
    ValueError
        If fewer than ``n`` usable rows match.
    """
    table = load_catalogue()
    order = rng.permutation(len(table["row"]))
    if fibres is not None:
        unknown = set(fibres) - set(IFU_SIZES)
        if unknown:
            raise ValueError(
                f"no MaNGA bundle has {sorted(unknown)} fibres; sizes: {list(IFU_SIZES)}"
            )
        keep = np.isin(table["ifudesign"][order] // 100, list(fibres))
        order = order[keep]
    if n > order.size:
        raise ValueError(
            f"asked for {n} galaxies but the catalogue has only {order.size} usable rows"
        )
    return [galaxy_at(int(i)) for i in order[:n]]
