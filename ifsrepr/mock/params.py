"""The physical parameters of one mock galaxy, drawn around its real catalogue row.

`draw_params` turns a `~ifsrepr.mock.catalog.CatalogueGalaxy` (position,
redshift, shape, size, IFU from reality) into a `GalaxyParams` by drawing
everything the catalogue does not hold. The distributions, and why:

* **Type.** A fraction ``star_forming`` (default 0.6) has a star-forming disc;
  the rest are "retired": their only ionised gas is diffuse and lit by hot
  evolved stars (Cid Fernandes et al. 2011; Belfiore et al. 2016). About 60% of
  MaNGA galaxies above 10^9.5 Msun have central star formation.
* **Light.** Bulge-to-total 0-0.4 (star-forming) or 0.3-0.8 (retired); a
  Sersic bulge with n = 1.5-4 and Re,b = 0.15-0.35 Re,d; the disc scale is
  solved so the whole galaxy's half-light radius equals the catalogue REFF.
  The central r-band surface brightness (after the PSF) is log-normal around
  1.6e-17 erg/s/cm^2/A per spaxel (0.3 dex), the range of the real central
  spectra the continuum shapes come from (1.2-4.7).
* **Continuum shapes.** The bulge takes an "old" template; a star-forming disc
  a mixture of the "young" template (40-100%) and an old one, a retired disc
  0-15% young.
* **Star formation.** The Halpha equivalent width against the disc continuum
  is log-normal around 30 A at Re (0.3 dex) and varies with radius as
  exp(g (R/Re - 1)), g = -0.4 to 0.4: from centrally concentrated star
  formation to inside-out growth (Belfiore et al. 2018, MNRAS 477, 3014); HII regions
  are clumpy: a log-normal field of 0.15-0.35 dex smoothed over 1".
  12 + log(O/H) at the centre rises from 8.50 to 8.80 with v_max (the
  mass-metallicity relation, Curti et al. 2020, MNRAS 491, 944, reached through
  the Tully-Fisher relation; 0.06 dex scatter), with a gradient of -0.08 +- 0.04
  dex/Re (Sanchez et al. 2014, A&A 563, A49; Belfiore et al. 2017, MNRAS 469,
  151) and 0.03 dex of local scatter. E(B-V) of the gas is 0.05-0.45 at the
  centre, falling as exp(-R / 1.5 Re).
* **Diffuse gas.** Every galaxy has LIER-like diffuse emission with EW(Halpha)
  0.5-1.5 A against the total continuum (Belfiore et al. 2016), moving with
  0.8 of the gas rotation and 40-70 km/s dispersion.
* **Nuclei.** 4% host a Seyfert and 8% a LINER narrow-line region: a 0.5"
  Gaussian whose Halpha, after the PSF, is 1-10x (Seyfert) or 0.5-5x (LINER)
  the central Halpha of the host, with 120-250 km/s dispersion.
* **Kinematics.** v_max from a size-velocity relation, log v = log 180 +
  0.5 log(Re / 5 kpc) +- 0.08 dex (60-350 km/s; Planck18 distances), 0.6-0.9
  of that for retired galaxies; r_t = 0.1-0.4 Re; stars rotate at 0.7-0.9 of
  the gas speed (asymmetric drift); HII gas has 18-35 km/s dispersion plus
  thermal broadening.
* **Observation.** Exposures and seeing are shared by the galaxies of a plate
  (`observing_conditions`); the PSF FWHM is the seeing combined in quadrature
  with 2.05" (about 2.5" in all), E(B-V) of the Milky Way
  from a cosecant law 0.02/|sin b| with 0.3 dex scatter (a toy: no dust map
  ships with the package).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.cosmology import Planck18
from scipy import optimize, special

from .catalog import CatalogueGalaxy
from .nebular import draw_agn_ratios
from .structure import inclination_from_axis_ratio
from .templates import load_library

__all__ = ["GalaxyParams", "Population", "draw_params", "observing_conditions"]


@dataclass(frozen=True)
class Population:
    """Fractions of galaxy types in the mock survey.

    Parameters
    ----------
    star_forming : float
        Fraction with a star-forming disc.
    seyfert, liner : float
        Fractions hosting a Seyfert or a LINER nucleus.

    Examples
    --------
    A survey of retired galaxies, half of them with a Seyfert nucleus:

    >>> from ifsrepr.mock import Population, draw_survey
    >>> population = Population(star_forming=0.0, seyfert=0.5, liner=0.0)
    >>> params = draw_survey(20, seed=0, population=population)
    >>> sorted({p.galaxy_type for p in params}), sorted({p.agn_type for p in params})
    (['retired'], ['none', 'seyfert'])
    >>> Population(seyfert=0.6, liner=0.6)
    Traceback (most recent call last):
    ...
    ValueError: Population.seyfert + liner must not exceed 1
    """

    star_forming: float = 0.6
    seyfert: float = 0.04
    liner: float = 0.08

    def __post_init__(self) -> None:
        for name in ("star_forming", "seyfert", "liner"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"Population.{name} must be in [0, 1], got {value}")
        if self.seyfert + self.liner > 1:
            raise ValueError("Population.seyfert + liner must not exceed 1")


@dataclass
class GalaxyParams:
    """Everything that defines one mock galaxy; one row of the truth table.

    Angles are in degrees, sizes in arcsec, velocities in km/s, fluxes in
    1e-17 erg/s/cm^2 (per Angstrom for continua).

    Examples
    --------
    `draw_survey` draws them; a row of the truth table gives them back:

    >>> from ifsrepr.mock import GalaxyParams, draw_survey
    >>> params = draw_survey(1, seed=0, fibres=[19])[0]
    >>> params.plateifu, params.n_fibres, params.galaxy_type, params.anomaly
    ('9028-1902', 19, 'star_forming', 'none')
    >>> GalaxyParams.from_row(params.to_row()) == params
    True
    """

    # identity and reality
    index: int
    seed: int
    plateifu: str
    mangaid: str
    plate: int
    ifudesign: int
    catalogue_row: int
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
    # observation
    psf_fwhm: float
    ebv_gal: float
    nexp: int
    mjd: int
    seeing: float
    airmass: float
    transparency: float
    # structure
    galaxy_type: str
    inclination: float
    bulge_fraction: float
    bulge_sersic_n: float
    bulge_reff: float
    bulge_q: float
    disc_reff: float
    central_continuum: float
    bulge_template: str
    disc_template_old: str
    disc_young_fraction: float
    # kinematics
    v_max: float
    r_turn: float
    rotation_sense: float
    stellar_rotation_fraction: float
    sigma_hii: float
    sigma_dig: float
    # star formation and gas
    ew_halpha_sf: float
    ew_gradient: float
    logoh_centre: float
    logoh_gradient: float
    clumpiness: float
    ebv_gas_centre: float
    ew_halpha_dig: float
    dig_ratios: dict[str, float]
    agn_type: str
    agn_strength: float
    agn_sigma: float
    agn_ebv: float
    agn_ratios: dict[str, float]
    # anomaly
    anomaly: str = "none"
    anomaly_params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_fibres(self) -> int:
        """Fibres in the bundle."""
        return self.ifudesign // 100

    def to_row(self) -> dict[str, Any]:
        """A flat dict for the truth table; dict-valued fields become JSON strings."""
        row = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            row[item.name] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        return row

    @classmethod
    def from_row(cls, row: Any) -> GalaxyParams:
        """Rebuild from a truth-table row (an astropy ``Row`` or a mapping)."""
        values = {}
        for item in dataclasses.fields(cls):
            value = row[item.name]
            if item.name in ("dig_ratios", "agn_ratios", "anomaly_params"):
                value = json.loads(str(value))
            elif isinstance(value, np.generic):
                value = value.item()
            values[item.name] = value
        return cls(**values)


def _enclosed(radius: float, disc_reff: float, bulge_reff: float, n: float, bt: float) -> float:
    """Fraction of the light inside a circle of ``radius`` (face-on profiles)."""
    b1 = special.gammaincinv(2.0, 0.5)
    disc = special.gammainc(2.0, b1 * radius / disc_reff)
    b_n = special.gammaincinv(2 * n, 0.5)
    bulge = special.gammainc(2 * n, b_n * (radius / bulge_reff) ** (1 / n))
    return (1 - bt) * disc + bt * bulge


def _disc_reff(total_reff: float, bt: float, bulge_ratio: float, n: float) -> float:
    """The disc Re that gives the whole galaxy the half-light radius ``total_reff``."""
    if bt == 0:
        return total_reff

    def excess(disc_reff: float) -> float:
        return _enclosed(total_reff, disc_reff, bulge_ratio * disc_reff, n, bt) - 0.5

    return float(optimize.brentq(excess, 0.2 * total_reff, 20 * total_reff))


def _central_abundance(v_max: float, rng: np.random.Generator) -> float:
    """12 + log(O/H) at the centre, rising with v_max (mass-metallicity via Tully-Fisher).

    8.50 for v_max <= 90 km/s to 8.80 at >= 280 km/s, +-0.06 dex, within 8.40-8.85:
    the shape of the mass-metallicity relation on the Curti et al. (2020) scale
    over 10^9-10^11 Msun.
    """
    t = np.clip((np.log10(v_max) - np.log10(90.0)) / (np.log10(280.0) - np.log10(90.0)), 0, 1)
    return float(np.clip(8.50 + 0.30 * t + rng.normal(0, 0.06), 8.40, 8.85))


def observing_conditions(plate: int) -> dict[str, Any]:
    """Exposures and conditions shared by every galaxy on a plate.

    Drawn from a random stream seeded by the plate number alone, so all the
    IFUs of one plate see the same nights: 3-5 sets of three 900 s dithered
    exposures, guider seeing log-normal around 1.35" (0.1 dex, 0.9-2.0"),
    airmass 1.02-1.3, transparency 0.7-0.95.
    """
    rng = np.random.default_rng([int(plate), 20170701])
    return {
        "nexp": int(3 * rng.integers(3, 6)),
        "mjd": int(rng.integers(56700, 58900)),
        "seeing": float(np.clip(10 ** rng.normal(np.log10(1.35), 0.1), 0.9, 2.0)),
        "airmass": float(rng.uniform(1.02, 1.3)),
        "transparency": float(rng.uniform(0.7, 0.95)),
    }


def draw_params(
    source: CatalogueGalaxy,
    rng: np.random.Generator,
    *,
    index: int = 0,
    seed: int = 0,
    population: Population | None = None,
) -> GalaxyParams:
    """Draw the physical parameters of a mock galaxy built on a real catalogue row.

    Parameters
    ----------
    source : CatalogueGalaxy
        The real galaxy (position, redshift, shape, size, IFU).
    rng : numpy.random.Generator
        The galaxy's own random stream.
    index, seed : int
        Recorded in the result (position in the survey, survey seed).
    population : Population, optional
        Type fractions.

    Returns
    -------
    GalaxyParams
    """
    population = population or Population()
    library = load_library()
    old = library.indices("old")
    star_forming = bool(rng.random() < population.star_forming)
    q = 1.0 - source.ell
    inclination = inclination_from_axis_ratio(q)

    bt = float(rng.uniform(0.0, 0.4) if star_forming else rng.uniform(0.3, 0.8))
    bulge_n = float(rng.uniform(1.5, 4.0))
    bulge_ratio = float(rng.uniform(0.15, 0.35))
    disc_reff = _disc_reff(source.reff, bt, bulge_ratio, bulge_n)
    central = float(10 ** rng.normal(np.log10(1.6), 0.3) * (1.0 if star_forming else 1.3))

    kpc_per_arcsec = Planck18.kpc_proper_per_arcmin(source.z).value / 60.0
    reff_kpc = source.reff * kpc_per_arcsec
    v_max = 10 ** (np.log10(180.0) + 0.5 * np.log10(max(reff_kpc, 0.3) / 5.0) + rng.normal(0, 0.08))
    v_max = float(np.clip(v_max, 60.0, 350.0) * (1.0 if star_forming else rng.uniform(0.6, 0.9)))

    agn_draw = rng.random()
    if agn_draw < population.seyfert:
        agn_type = "seyfert"
    elif agn_draw < population.seyfert + population.liner:
        agn_type = "liner"
    else:
        agn_type = "none"
    agn_ratios = draw_agn_ratios(agn_type, rng) if agn_type != "none" else {}
    agn_strength = {
        "seyfert": 10 ** rng.uniform(0.0, 1.0),
        "liner": 10 ** rng.uniform(-0.3, 0.7),
        "none": 0.0,
    }[agn_type]

    conditions = observing_conditions(source.plate)
    # The reconstructed PSF: the guider seeing convolved with ~2.05" of fibre
    # and dither (this reproduces the DR13-DR17 examples to +-0.1"), 2% per IFU.
    psf = float(np.hypot(conditions["seeing"], 2.05) * (1 + rng.normal(0, 0.02)))
    sin_b = max(abs(np.sin(np.radians(source.glat))), 0.1)
    ebv_gal = float(np.clip(0.02 / sin_b * 10 ** rng.normal(0, 0.3), 0.005, 0.3))

    return GalaxyParams(
        index=index,
        seed=seed,
        plateifu=source.plateifu,
        mangaid=source.mangaid,
        plate=source.plate,
        ifudesign=source.ifudesign,
        catalogue_row=source.row,
        ra=source.ra,
        dec=source.dec,
        glon=source.glon,
        glat=source.glat,
        z=source.z,
        ell=source.ell,
        pa=source.pa,
        reff=source.reff,
        catid=source.catid,
        manga_target1=source.manga_target1,
        manga_target3=source.manga_target3,
        psf_fwhm=psf,
        ebv_gal=ebv_gal,
        nexp=conditions["nexp"],
        mjd=conditions["mjd"],
        seeing=conditions["seeing"],
        airmass=conditions["airmass"],
        transparency=conditions["transparency"],
        galaxy_type="star_forming" if star_forming else "retired",
        inclination=inclination,
        bulge_fraction=bt,
        bulge_sersic_n=bulge_n,
        bulge_reff=bulge_ratio * disc_reff,
        bulge_q=float(min(1.0, 1.0 - 0.4 * source.ell)),
        disc_reff=disc_reff,
        central_continuum=central,
        bulge_template=library.names[int(rng.choice(old))],
        disc_template_old=library.names[int(rng.choice(old))],
        disc_young_fraction=float(rng.uniform(0.4, 1.0) if star_forming else rng.uniform(0, 0.15)),
        v_max=v_max,
        r_turn=float(max(rng.uniform(0.1, 0.4) * source.reff, 0.3)),
        rotation_sense=float(rng.choice([-1.0, 1.0])),
        stellar_rotation_fraction=float(rng.uniform(0.7, 0.9)),
        sigma_hii=float(rng.uniform(18.0, 35.0)),
        sigma_dig=float(rng.uniform(40.0, 70.0)),
        ew_halpha_sf=float(10 ** rng.normal(np.log10(30.0), 0.3)) if star_forming else 0.0,
        ew_gradient=float(rng.uniform(-0.4, 0.4)),
        logoh_centre=_central_abundance(v_max if star_forming else v_max / 0.75, rng),
        logoh_gradient=float(np.clip(rng.normal(-0.08, 0.04), -0.2, 0.0)),
        clumpiness=float(rng.uniform(0.15, 0.35)),
        ebv_gas_centre=float(rng.uniform(0.05, 0.45)),
        ew_halpha_dig=float(rng.uniform(0.5, 1.5)),
        dig_ratios=draw_agn_ratios("dig", rng),
        agn_type=agn_type,
        agn_strength=float(agn_strength),
        agn_sigma=float(rng.uniform(120.0, 250.0)),
        agn_ebv=float(rng.uniform(0.1, 0.5)),
        agn_ratios=agn_ratios,
    )
