"""Extinction curves: internal dust (Cardelli et al. 1989) and Galactic dust (O'Donnell 1994).

Internal attenuation of the nebular lines follows the Cardelli, Clayton &
Mathis (1989, ApJ 345, 245; "CCM") curve with R_V = 3.1, the usual choice for
Balmer-decrement corrections of HII regions; it gives k(Hbeta) - k(Halpha) =
1.07 (k = 3.61 and 2.53), so E(B-V) = 0.3 raises Halpha/Hbeta from the case-B 2.86 to 3.8.

Foreground Galactic extinction uses O'Donnell (1994, ApJ 422, 158), the CCM
curve with O'Donnell's optical coefficients and R_V = 3.1, which is what the
MaNGA DAP applies (``GEXTLAW = 'ODonnell'``, ``RVGAL = 3.1``). DRP cubes are
*not* corrected for it; DAP maps are.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ccm89", "odonnell94", "attenuation"]

_CCM_A = (1.0, 0.17699, -0.50447, -0.02427, 0.72085, 0.01979, -0.77530, 0.32999)
_CCM_B = (0.0, 1.41338, 2.28305, 1.07233, -5.38434, -0.62251, 5.30260, -2.09002)
_OD_A = (1.0, 0.104, -0.609, 0.701, 1.137, -1.718, -0.827, 1.647, -0.505)
_OD_B = (0.0, 1.952, 2.908, -3.989, -7.985, 11.102, 5.491, -10.805, 3.347)


def _curve(wave: np.ndarray, r_v: float, optical: tuple) -> np.ndarray:
    x = 1e4 / np.asarray(wave, dtype=float)  # inverse microns
    if np.any((x < 0.3) | (x > 3.3)):
        raise ValueError("the extinction curve is defined here for 3030-33333 Angstrom only")
    a = np.empty_like(x)
    b = np.empty_like(x)
    infrared = x < 1.1
    a[infrared] = 0.574 * x[infrared] ** 1.61
    b[infrared] = -0.527 * x[infrared] ** 1.61
    y = x[~infrared] - 1.82
    coef_a, coef_b = optical
    a[~infrared] = np.polynomial.polynomial.polyval(y, coef_a)
    b[~infrared] = np.polynomial.polynomial.polyval(y, coef_b)
    return a + b / r_v


def ccm89(wave: np.ndarray | float, r_v: float = 3.1) -> np.ndarray:
    """A(lambda)/A(V) of Cardelli, Clayton & Mathis (1989).

    Parameters
    ----------
    wave : array_like
        Wavelength in Angstrom (3030-33333).
    r_v : float
        Total-to-selective extinction ratio.

    Examples
    --------
    >>> from ifsrepr.extinction import ccm89
    >>> k_hb, k_ha = 3.1 * ccm89([4862.68, 6564.61])
    >>> round(float(k_hb - k_ha), 2)
    1.07
    """
    return _curve(np.atleast_1d(wave), r_v, (_CCM_A, _CCM_B))


def odonnell94(wave: np.ndarray | float, r_v: float = 3.1) -> np.ndarray:
    """A(lambda)/A(V) of O'Donnell (1994): CCM with O'Donnell's optical coefficients.

    Parameters
    ----------
    wave : array_like
        Wavelength in Angstrom (3030-33333).
    r_v : float
        Total-to-selective extinction ratio.

    Examples
    --------
    >>> from ifsrepr.extinction import odonnell94
    >>> odonnell94([4862.68, 5500.0, 6564.61])  # doctest: +FLOAT_CMP
    array([1.18112804, 0.99866713, 0.81221366])
    """
    return _curve(np.atleast_1d(wave), r_v, (_OD_A, _OD_B))


def attenuation(
    wave: np.ndarray | float, ebv: np.ndarray | float, *, law: str = "ccm89", r_v: float = 3.1
) -> np.ndarray:
    """Transmitted fraction ``10**(-0.4 A(lambda))`` for colour excess ``ebv``.

    ``wave`` and ``ebv`` broadcast against each other; pass ``wave[:, None, None]``
    and a map of E(B-V) to get a cube.

    Parameters
    ----------
    wave : array_like
        Wavelength in Angstrom.
    ebv : array_like
        Colour excess E(B-V) in magnitudes.
    law : {'ccm89', 'odonnell94'}
        The extinction curve.
    r_v : float
        Total-to-selective extinction ratio.

    Examples
    --------
    E(B-V) = 0.3 raises the Balmer decrement from the case-B 2.86 to about 3.85:

    >>> from ifsrepr.extinction import attenuation
    >>> t_hb, t_ha = attenuation([4862.68, 6564.61], 0.3)
    >>> round(float(2.86 * t_ha / t_hb), 2)
    3.85

    A cube of transmissions, for two wavelengths and a 1x2 map of E(B-V):

    >>> import numpy as np
    >>> wave = np.array([4862.68, 6564.61])
    >>> attenuation(wave[:, None, None], np.array([[0.0, 0.3]])).shape
    (2, 1, 2)
    """
    curve = {"ccm89": ccm89, "odonnell94": odonnell94}[law]
    wave = np.asarray(wave, dtype=float)
    a_over_av = curve(wave.ravel(), r_v).reshape(wave.shape)
    return 10.0 ** (-0.4 * r_v * a_over_av * np.asarray(ebv))
