"""Galaxy structure on the sky: disc geometry, light profiles and rotation.

Geometry
    A thin disc seen at inclination i, with its major axis at position angle
    PA (degrees east of north). Axis ratios come from the catalogue's
    ellipticity, q = 1 - ELL, and the inclination from Hubble's (1926)
    relation for an oblate disc of intrinsic thickness q0 = 0.2:
    cos^2 i = (q^2 - q0^2) / (1 - q0^2).
Light
    An exponential disc, I(R) ~ exp(-1.678 R/Re), plus a Sersic (1968) bulge,
    I ~ exp(-b_n [(R/Re)^(1/n) - 1]), each evaluated on a 3x3 sub-grid of every
    0.5" spaxel so the unresolved cusp of a bulge is integrated, not sampled.
Rotation
    The arctan rotation curve of Courteau (1997, AJ 114, 2402),
    v(R) = v_max (2/pi) arctan(R / r_t), projected along the line of sight as
    v(R) sin i cos(phi), with phi the azimuth in the disc plane.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .instrument import SPAXEL_ARCSEC, spaxel_offsets

__all__ = [
    "DiscGeometry",
    "inclination_from_axis_ratio",
    "exponential_profile",
    "sersic_profile",
    "arctan_velocity",
]

_SUBGRID = 3
#: Intrinsic axial ratio of discs for the inclination formula.
Q0 = 0.2


def inclination_from_axis_ratio(q: float, q0: float = Q0) -> float:
    """Inclination (degrees) of a disc of intrinsic thickness ``q0`` seen with axis ratio ``q``.

    Examples
    --------
    >>> from ifsrepr.mock.structure import inclination_from_axis_ratio
    >>> inclination_from_axis_ratio(1.0), round(inclination_from_axis_ratio(0.5), 1)
    (0.0, 62.1)
    """
    q = float(np.clip(q, q0, 1.0))
    cos2 = (q * q - q0 * q0) / (1 - q0 * q0)
    return float(np.degrees(np.arccos(np.sqrt(np.clip(cos2, 0.0, 1.0)))))


class DiscGeometry:
    """Disc-plane coordinates of every (sub-)spaxel of an ``n x n`` cube.

    Parameters
    ----------
    n : int
        Cube side in spaxels.
    pa : float
        Position angle of the major axis, degrees east of north.
    q : float
        Projected axis ratio b/a of the isophotes (used for light profiles).
    inclination : float
        Disc inclination in degrees (used for kinematics).
    centre : tuple of float
        (east, north) offset of the centre from the cube centre, arcsec.
    subgrid : bool
        Evaluate on a 3x3 sub-grid of each spaxel (shape ``(n, n, 9)``)
        instead of at the spaxel centres.
    """

    def __init__(
        self,
        n: int,
        pa: float,
        q: float,
        inclination: float,
        centre: tuple[float, float] = (0.0, 0.0),
        *,
        subgrid: bool = False,
    ) -> None:
        east, north = spaxel_offsets(n)
        if subgrid:
            step = (np.arange(_SUBGRID) - (_SUBGRID - 1) / 2) / _SUBGRID * SPAXEL_ARCSEC
            dx, dy = np.meshgrid(step, step)
            east = east[..., None] - dx.ravel()[None, None, :]
            north = north[..., None] + dy.ravel()[None, None, :]
        east = east - centre[0]
        north = north - centre[1]
        theta = np.radians(pa)
        self.major = east * np.sin(theta) + north * np.cos(theta)
        self.minor = -east * np.cos(theta) + north * np.sin(theta)
        self.q = float(np.clip(q, 0.05, 1.0))
        self.cos_i = float(np.cos(np.radians(inclination)))
        self.sin_i = float(np.sin(np.radians(inclination)))
        self.subgrid = subgrid

    def elliptical_radius(self, q: float | None = None) -> np.ndarray:
        """Semi-major axis (arcsec) of the isophote of axis ratio ``q`` through each point."""
        q = self.q if q is None else float(np.clip(q, 0.05, 1.0))
        return np.hypot(self.major, self.minor / q)

    def disc_radius(self) -> np.ndarray:
        """Radius in the (thin) disc plane, arcsec, from the inclination."""
        return np.hypot(self.major, self.minor / max(self.cos_i, 0.05))

    def cos_azimuth(self) -> np.ndarray:
        """Cosine of the disc-plane azimuth from the receding major axis."""
        radius = self.disc_radius()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(radius > 0, self.major / radius, 0.0)

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Average a sub-grid evaluation to one value per spaxel."""
        return values.mean(axis=-1) if self.subgrid else values


def exponential_profile(radius: np.ndarray, reff: float) -> np.ndarray:
    """Exponential disc surface brightness, 1 at the centre, half the light inside ``reff``."""
    return np.exp(-1.6783469900166608 * radius / reff)


def sersic_profile(radius: np.ndarray, reff: float, n: float) -> np.ndarray:
    """Sersic surface brightness normalised to 1 at the effective radius ``reff``."""
    b_n = special.gammaincinv(2 * n, 0.5)
    return np.exp(-b_n * ((radius / reff) ** (1.0 / n) - 1.0))


def arctan_velocity(
    geometry: DiscGeometry, v_max: float, r_turn: float, sense: float = 1.0
) -> np.ndarray:
    """Line-of-sight velocity (km/s) of an arctan rotation curve.

    Parameters
    ----------
    geometry : DiscGeometry
    v_max : float
        Asymptotic circular velocity (km/s).
    r_turn : float
        Turn-over radius (arcsec).
    sense : float
        +1 or -1: which side of the major axis recedes.
    """
    radius = geometry.disc_radius()
    circular = v_max * (2 / np.pi) * np.arctan(radius / r_turn)
    return sense * circular * geometry.sin_i * geometry.cos_azimuth()
