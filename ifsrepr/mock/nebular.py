"""Emission-line ratios for the 35 DR17 DAP lines: star formation, AGN, LINER and diffuse gas.

Every function returns intrinsic (unreddened) fluxes relative to Halpha = 1,
shaped ``(35, ...)`` in the order of `ifsrepr.lines.dap_line_table`.

Hydrogen and helium recombination lines
    Case B, T_e = 10^4 K, n_e = 100 cm^-3 (Storey & Hummer 1995, MNRAS 272,
    41): Halpha/Hbeta = 2.86, Hgamma 0.468, Hdelta 0.259, Hepsilon 0.159,
    H8 0.105, H9 0.0731, H10 0.0530, H11 0.0397, H12 0.0305; Paschen P8, P9,
    P10 = 0.0366, 0.0256, 0.0184 (+-10%). He I 5876 0.105, 3889 0.085, 7065
    0.025 relative to Hbeta (Porter et al. 2013 emissivities, as observed in
    HII regions).
Star formation
    The strong lines follow the gas-phase oxygen abundance through the
    empirical calibrations of Curti et al. (2017, MNRAS 465, 1384, table 2),
    fitted to stacked SDSS star-forming galaxies with direct-method
    abundances: log [OIII]5007/Hbeta (R3), log [NII]6584/Halpha (N2),
    log [SII]6717,31/Halpha (S2) and log [OII]3726,29/Hbeta (R2), each a
    polynomial in x = 12 + log(O/H) - 8.69, valid for 7.6 < 12 + log(O/H)
    < 8.85 (x is clipped to that range). A falling abundance therefore walks a
    spaxel up and to the left along the star-forming BPT sequence. [OI]6300/
    Halpha follows log = -1.55 + 0.65 x (the SF sequence of the [OI] BPT
    diagram, Kewley et al. 2006, MNRAS 372, 961); [NeIII]3869/[OIII]5007 =
    0.075; [ArIII]7136/Hbeta = 0.09; [SIII]9069/Hbeta = 0.25;
    [NI]5198,5200/Hbeta = 0.025; He II 4686 is absent.
AGN, LINER and diffuse ionised gas
    Drawn per galaxy from ranges typical of each class in the SDSS BPT
    diagrams (Kewley et al. 2006): Seyfert log([OIII]/Hbeta) 0.7-1.05 with
    log([NII]/Halpha) -0.25-0.1, He II/Hbeta 0.15-0.35; LINER
    log([OIII]/Hbeta) 0-0.3, log([NII]/Halpha) 0-0.3, log([OI]/Halpha)
    -0.9 to -0.6; diffuse ionised gas ionised by hot evolved stars ("LIER",
    Belfiore et al. 2016, MNRAS 461, 3111) between the two, with
    log([OIII]/Hbeta) -0.2-0.2.
Fixed ratios
    The DAP's own ties (``elpmpl11.par``): [NeIII]3968 = 0.30 [NeIII]3869,
    [OIII]4960 = 0.35 [OIII]5008, [OI]6365 = 0.32 [OI]6302, [NII]6549 = 0.34
    [NII]6585; from atomic physics [ArIII]7753 = 0.24 [ArIII]7137 and
    [SIII]9533 = 2.44 [SIII]9071; at n_e = 100 cm^-3, [OII]3729/3727 = 1.3 and
    [SII]6718/6732 = 1.3 (Osterbrock & Ferland 2006); [NI]5199/5201 = 0.6.
"""

from __future__ import annotations

import functools

import numpy as np

from ..lines import dap_line_table

__all__ = [
    "LINE_NAMES",
    "agn_ratios",
    "curti17",
    "line_index",
    "rest_wavelengths",
    "star_forming_ratios",
    "broad_balmer_ratios",
    "draw_agn_ratios",
    "thermal_sigma",
]

#: Names of the 35 DR17 lines, in wavelength order.
LINE_NAMES: tuple[str, ...] = tuple(line.name for line in dap_line_table())

#: Case-B recombination lines relative to Hbeta (10^4 K, 100 cm^-3).
CASE_B = {
    "Ha-6564": 2.863, "Hb-4862": 1.0, "Hgam-4341": 0.468, "Hdel-4102": 0.259,
    "Heps-3971": 0.159, "Hzet-3890": 0.105, "Heta-3836": 0.0731, "Hthe-3798": 0.0530,
    "H11-3771": 0.0397, "H12-3751": 0.0305, "Peps-9548": 0.0366, "Pzet-9231": 0.0256,
    "Peta-9017": 0.0184, "HeI-5877": 0.105, "HeI-3889": 0.085, "HeI-7067": 0.025,
}  # fmt: skip

#: Curti et al. (2017) table 2 polynomial coefficients, c0 + c1 x + c2 x^2 + ...
CURTI17 = {
    "R3": (-0.277, -3.549, -3.593, -0.981),
    "N2": (-0.489, 1.513, -2.554, -5.293, -2.867),
    "S2": (-0.442, -0.360, -6.271, -8.339, -3.559),
    "R2": (0.435, -1.362, -5.655, -4.851, -0.478, 0.736),
}
CURTI17_RANGE = (7.6, 8.85)

#: Thermal widths (km/s at 10^4 K) by line prefix: sqrt(kT/m).
THERMAL_SIGMA = {"H": 9.1, "He": 4.5, "N": 2.4, "O": 2.3, "Ne": 2.0, "S": 1.6, "Ar": 1.4}


@functools.cache
def _index() -> dict[str, int]:
    return {name: i for i, name in enumerate(LINE_NAMES)}


def line_index(name: str) -> int:
    """Position of a line (e.g. ``"Ha-6564"``) in the 35-line order."""
    return _index()[name]


@functools.cache
def rest_wavelengths() -> np.ndarray:
    """Vacuum rest wavelengths (Angstrom) of the 35 lines (read-only)."""
    out = np.array([line.rest_wavelength.value for line in dap_line_table()])
    out.flags.writeable = False
    return out


@functools.cache
def thermal_sigma() -> np.ndarray:
    """Thermal Doppler width (km/s, 10^4 K) of each of the 35 lines."""
    out = []
    for name in LINE_NAMES:
        species = name.split("-")[0]
        if species in ("HeI", "HeII"):
            element = "He"
        elif species.startswith("H") or species.startswith("P"):
            element = "H"  # Balmer (Ha, Hb, Hgam, ..., H12) and Paschen (Peta, Pzet, Peps)
        else:
            element = species.rstrip("I")  # OIII -> O, NeIII -> Ne, ArIII -> Ar
        out.append(THERMAL_SIGMA[element])
    result = np.array(out)
    result.flags.writeable = False
    return result


def curti17(ratio: str, logoh: np.ndarray | float) -> np.ndarray:
    """A Curti et al. (2017) strong-line ratio (log10) at ``12 + log(O/H) = logoh``.

    Examples
    --------
    >>> from ifsrepr.mock.nebular import curti17
    >>> round(float(curti17("N2", 8.69)), 3), round(float(curti17("R3", 8.69)), 3)
    (-0.489, -0.277)
    """
    x = np.clip(np.asarray(logoh, dtype=float), *CURTI17_RANGE) - 8.69
    return np.polynomial.polynomial.polyval(x, CURTI17[ratio])


def _empty(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros((len(LINE_NAMES), *shape))


def _set_ties(out: np.ndarray) -> None:
    """Fill the partner lines whose ratio is fixed by atomic physics or density."""
    i = line_index
    out[i("NeIII-3968")] = 0.30 * out[i("NeIII-3869")]
    out[i("OIII-4960")] = 0.35 * out[i("OIII-5008")]
    out[i("OI-6365")] = 0.32 * out[i("OI-6302")]
    out[i("NII-6549")] = 0.34 * out[i("NII-6585")]
    out[i("ArIII-7753")] = 0.24 * out[i("ArIII-7137")]
    out[i("SIII-9533")] = 2.44 * out[i("SIII-9071")]


def _recombination(out: np.ndarray, hbeta: np.ndarray | float, helium: float = 1.0) -> None:
    for name, value in CASE_B.items():
        scale = helium if name.startswith("HeI") else 1.0
        out[line_index(name)] = value * scale * hbeta


def _split_doublets(out: np.ndarray, oii: np.ndarray, sii: np.ndarray, ni: np.ndarray) -> None:
    i = line_index
    out[i("OII-3727")] = oii / 2.3
    out[i("OII-3729")] = oii * 1.3 / 2.3
    out[i("SII-6718")] = sii * 1.3 / 2.3
    out[i("SII-6732")] = sii / 2.3
    out[i("NI-5199")] = ni * 0.6 / 1.6
    out[i("NI-5201")] = ni / 1.6


def star_forming_ratios(logoh: np.ndarray | float, *, heii: float = 0.0) -> np.ndarray:
    """Line fluxes of HII regions with oxygen abundance ``logoh``, relative to Halpha.

    Parameters
    ----------
    logoh : array_like
        12 + log(O/H), any shape (a map is fine).
    heii : float
        He II 4686 / Hbeta (0 for normal HII regions; ~0.01-0.02 in the most
        extreme starbursts).

    Returns
    -------
    ndarray
        Shaped ``(35, *logoh.shape)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.mock.nebular import star_forming_ratios, line_index
    >>> r = star_forming_ratios(np.array([8.2, 8.7]))
    >>> n2 = np.log10(r[line_index("NII-6585")])
    >>> o3 = np.log10(r[line_index("OIII-5008")] / r[line_index("Hb-4862")])
    >>> bool(n2[0] < n2[1] and o3[0] > o3[1])
    True
    """
    logoh = np.asarray(logoh, dtype=float)
    out = _empty(logoh.shape)
    hbeta = 1.0 / CASE_B["Ha-6564"]
    _recombination(out, hbeta)
    x = np.clip(logoh, *CURTI17_RANGE) - 8.69
    i = line_index
    out[i("OIII-5008")] = 10 ** curti17("R3", logoh) * hbeta
    out[i("NII-6585")] = 10 ** curti17("N2", logoh)
    out[i("OI-6302")] = 10 ** (-1.55 + 0.65 * x)
    out[i("NeIII-3869")] = 0.075 * out[i("OIII-5008")]
    out[i("ArIII-7137")] = 0.09 * hbeta
    out[i("SIII-9071")] = 0.25 * hbeta
    out[i("HeII-4687")] = heii * hbeta
    _split_doublets(
        out, 10 ** curti17("R2", logoh) * hbeta, 10 ** curti17("S2", logoh), 0.025 * hbeta
    )
    _set_ties(out)
    return out


#: Ranges (uniform draws) of the ratios of each ionising source:
#: log [OIII]5007/Hb, log [NII]6584/Ha, log [SII]/Ha, log [OI]6300/Ha, log [OII]/Hb,
#: and linear [NeIII]3869/[OIII]5007, HeII/Hb, HeI5876/Hb, [ArIII]7136/Hb,
#: [SIII]9069/Hb, [NI]5200/Hb.
AGN_RANGES = {
    "seyfert": {
        "O3": (0.7, 1.05), "N2": (-0.25, 0.1), "S2": (-0.5, -0.25), "O1": (-1.25, -0.9),
        "O2": (0.3, 0.6), "Ne3O3": (0.08, 0.12), "HeII": (0.15, 0.35), "HeI": (0.10, 0.14),
        "Ar3": (0.15, 0.25), "S3": (0.35, 0.55), "N1": (0.08, 0.15),
    },
    "liner": {
        "O3": (0.0, 0.3), "N2": (0.0, 0.3), "S2": (-0.15, 0.1), "O1": (-0.9, -0.6),
        "O2": (0.6, 0.9), "Ne3O3": (0.25, 0.45), "HeII": (0.03, 0.08), "HeI": (0.06, 0.10),
        "Ar3": (0.07, 0.12), "S3": (0.4, 0.6), "N1": (0.25, 0.45),
    },
    "dig": {
        "O3": (-0.2, 0.2), "N2": (-0.1, 0.15), "S2": (-0.2, 0.05), "O1": (-1.1, -0.8),
        "O2": (0.5, 0.8), "Ne3O3": (0.15, 0.3), "HeII": (0.0, 0.03), "HeI": (0.06, 0.10),
        "Ar3": (0.06, 0.10), "S3": (0.3, 0.5), "N1": (0.15, 0.3),
    },
}  # fmt: skip


def draw_agn_ratios(kind: str, rng: np.random.Generator) -> dict[str, float]:
    """Draw one set of ratios of an ionising source (``"seyfert"``, ``"liner"``, ``"dig"``)."""
    ranges = AGN_RANGES[kind]
    return {key: float(rng.uniform(*bounds)) for key, bounds in ranges.items()}


def agn_ratios(ratios: dict[str, float]) -> np.ndarray:
    """Line fluxes relative to Halpha for a set of drawn ratios (see `draw_agn_ratios`).

    Returns
    -------
    ndarray
        Shaped ``(35,)``.
    """
    out = _empty(())
    hbeta = 1.0 / CASE_B["Ha-6564"]
    _recombination(out, hbeta, helium=ratios["HeI"] / CASE_B["HeI-5877"])
    i = line_index
    out[i("OIII-5008")] = 10 ** ratios["O3"] * hbeta
    out[i("NII-6585")] = 10 ** ratios["N2"]
    out[i("OI-6302")] = 10 ** ratios["O1"]
    out[i("NeIII-3869")] = ratios["Ne3O3"] * out[i("OIII-5008")]
    out[i("HeII-4687")] = ratios["HeII"] * hbeta
    out[i("ArIII-7137")] = ratios["Ar3"] * hbeta
    out[i("SIII-9071")] = ratios["S3"] * hbeta
    _split_doublets(out, 10 ** ratios["O2"] * hbeta, 10 ** ratios["S2"], ratios["N1"] * hbeta)
    _set_ties(out)
    return out


def broad_balmer_ratios() -> np.ndarray:
    """Broad-line-region Balmer fluxes relative to broad Halpha, shaped ``(35,)``.

    Broad Halpha/Hbeta = 3.06, the mean intrinsic decrement of blue type-1 AGN
    (Dong et al. 2008, MNRAS 383, 581); Hgamma/Hbeta = 0.42 and Hdelta/Hbeta =
    0.25 (close to case B, as in the Vanden Berk et al. 2001 composite).
    """
    out = _empty(())
    i = line_index
    out[i("Ha-6564")] = 1.0
    out[i("Hb-4862")] = 1 / 3.06
    out[i("Hgam-4341")] = 0.42 / 3.06
    out[i("Hdel-4102")] = 0.25 / 3.06
    return out
