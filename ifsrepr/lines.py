"""Emission lines, the MaNGA DAP line table, and named line sets.

The package ships the DR17 DAP emission-line table (``elpmpl11.par``, 35
lines, vacuum rest wavelengths; provenance in ``ifsrepr/data/PROVENANCE.md``).
Lines are named as the DAP names its MAPS channels, ``f"{species}-{int(wave)}"``
(for example ``"Ha-6564"``), so a line read from a MAPS file and the same line
in the table have the same name.

Named line sets:

``manga35``
    All 35 lines the DR17 DAP fits, in wavelength order.
``manga19``
    The 19 lines between 3800 and 8000 Å that carry independent information:
    the 25 DR17 lines in that range, minus the four whose flux the DAP ties at
    a fixed ratio to a stronger partner ([NeIII]3968, [OIII]4960, [OI]6365,
    [NII]6549 — the ratios are set by atomic physics, so the partner adds no
    information) and minus the two lines blended within 2.5 Å of a partner
    whose kinematics the DAP ties to it (HeI 3889 under Hζ, [NI]5201 under
    [NI]5199: at MaNGA's resolution of ~2.5 Å FWHM they cannot be measured
    apart). This is the default for the encoder. DR15 MAPS files fit only 22
    lines and lack four of the 19 ([NI]5199, HeI 7067, [ArIII]7137,
    [ArIII]7753); those maps are read as fully masked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

import astropy.units as u

from .exceptions import DataModelError, FileFormatError, UnknownNameError

__all__ = [
    "EmissionLine",
    "dap_line_table",
    "get_line_set",
    "line_set_names",
    "resolve_lines",
    "MANGA19",
]


@dataclass(frozen=True)
class EmissionLine:
    """One emission line: a name and a vacuum rest wavelength.

    Parameters
    ----------
    name : str
        Unique name, by convention ``"{species}-{int(rest wavelength)}"`` as in
        DAP MAPS channels, e.g. ``"Ha-6564"``.
    rest_wavelength : `~astropy.units.Quantity`
        Vacuum rest wavelength (a float is taken to be in Angstrom).
    blueside, redside : tuple of float, optional
        Continuum side-bands in rest-frame vacuum Angstrom, as in the DAP
        table; used by band-based line extractors.

    Examples
    --------
    >>> import astropy.units as u
    >>> from ifsrepr import EmissionLine
    >>> EmissionLine("Ha-6564", 6564.608 * u.AA)
    EmissionLine('Ha-6564', 6564.608 Angstrom)
    """

    name: str
    rest_wavelength: u.Quantity
    blueside: tuple[float, float] | None = field(default=None, compare=False)
    redside: tuple[float, float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataModelError(f"an emission line needs a non-empty name, got {self.name!r}")
        wave = self.rest_wavelength
        if not isinstance(wave, u.Quantity):
            wave = u.Quantity(float(wave), u.AA)
        try:
            wave = wave.to(u.AA, equivalencies=u.spectral())
        except u.UnitConversionError:
            raise DataModelError(
                f"line {self.name!r}: rest wavelength {wave} is not a wavelength"
            ) from None
        if not wave.isscalar or not wave.value > 0:
            raise DataModelError(f"line {self.name!r}: rest wavelength must be one positive value")
        object.__setattr__(self, "rest_wavelength", wave)

    @property
    def species(self) -> str:
        """The part of the name before the wavelength, e.g. ``'Ha'``."""
        return self.name.rsplit("-", 1)[0]

    def __repr__(self) -> str:
        return f"EmissionLine({self.name!r}, {self.rest_wavelength:.3f})"


_PAR_ROW = re.compile(
    r"^DAPEML\s+(?P<index>\d+)\s+(?P<species>\S+)\s+(?P<wave>[\d.]+)\s+(?P<ref>\S+)\s+(?P<action>\S)"
    r"\s+\{(?P<tie>[^}]*)\}\s+\{(?P<blue>[^}]*)\}\s+\{(?P<red>[^}]*)\}"
)


def _parse_dap_par(text: str, source: str) -> list[EmissionLine]:
    """Parse the active ``DAPEML`` rows of a DAP Yanny-par emission-line table."""
    lines = []
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.startswith("DAPEML"):
            continue  # comments, the typedef, and disabled '#DAPEML' rows
        match = _PAR_ROW.match(row)
        if match is None:
            raise FileFormatError(f"{source}, line {number}: cannot parse DAPEML row {row!r}")
        wave = float(match["wave"])
        blue = tuple(float(v) for v in match["blue"].split())
        red = tuple(float(v) for v in match["red"].split())
        lines.append(
            EmissionLine(f"{match['species']}-{int(wave)}", wave * u.AA, blueside=blue, redside=red)
        )
    return lines


@functools.cache
def dap_line_table() -> tuple[EmissionLine, ...]:
    """The 35 lines of the DR17 MaNGA DAP emission-line table, in wavelength order.

    Returns
    -------
    tuple of `EmissionLine`
        With the DAP's continuum side-bands attached.

    Examples
    --------
    >>> from ifsrepr.lines import dap_line_table
    >>> len(dap_line_table())
    35
    >>> dap_line_table()[23]
    EmissionLine('Ha-6564', 6564.608 Angstrom)
    """
    source = resources.files("ifsrepr") / "data" / "elpmpl11.par"
    return tuple(_parse_dap_par(source.read_text(), "elpmpl11.par"))


#: The 19 lines of the ``manga19`` set; see the module docstring for why.
MANGA19 = (
    "Heta-3836", "NeIII-3869", "Hzet-3890", "Heps-3971", "Hdel-4102", "Hgam-4341",
    "HeII-4687", "Hb-4862", "OIII-5008", "NI-5199", "HeI-5877", "OI-6302",
    "Ha-6564", "NII-6585", "SII-6718", "SII-6732", "HeI-7067", "ArIII-7137",
    "ArIII-7753",
)  # fmt: skip


def _line_sets() -> dict[str, tuple[EmissionLine, ...]]:
    table = {line.name: line for line in dap_line_table()}
    return {
        "manga35": dap_line_table(),
        "manga19": tuple(table[name] for name in MANGA19),
    }


def line_set_names() -> list[str]:
    """Names of the built-in line sets.

    Examples
    --------
    >>> from ifsrepr.lines import line_set_names
    >>> line_set_names()
    ['manga19', 'manga35']
    """
    return sorted(_line_sets())


def get_line_set(name: str) -> tuple[EmissionLine, ...]:
    """Return a named line set.

    Parameters
    ----------
    name : str
        ``"manga19"`` or ``"manga35"``.

    Examples
    --------
    >>> from ifsrepr.lines import get_line_set
    >>> [line.name for line in get_line_set("manga19")][:3]
    ['Heta-3836', 'NeIII-3869', 'Hzet-3890']
    """
    sets = _line_sets()
    try:
        return sets[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown line set {name!r}; available: {', '.join(sorted(sets))}"
        ) from None


def find_line(name: str) -> EmissionLine | None:
    """Look a line up in the DAP table by its exact name, or return None."""
    for line in dap_line_table():
        if line.name == name:
            return line
    return None


def resolve_lines(lines: str | Iterable[str | EmissionLine]) -> tuple[EmissionLine, ...]:
    """Turn a line-set name or a list of names and lines into `EmissionLine` objects.

    Parameters
    ----------
    lines : str or iterable of str or `EmissionLine`
        A set name (``"manga19"``), or a sequence whose strings are names from
        the DAP table and whose `EmissionLine` objects are used as given.

    Returns
    -------
    tuple of `EmissionLine`

    Raises
    ------
    ifsrepr.UnknownNameError
        For a name that is neither a set nor a line in the table.
    ifsrepr.DataModelError
        For a list that names the same line twice.

    Examples
    --------
    >>> from ifsrepr.lines import resolve_lines
    >>> resolve_lines(["Hb-4862", "OIII-5008"])
    (EmissionLine('Hb-4862', 4862.683 Angstrom), EmissionLine('OIII-5008', 5008.240 Angstrom))
    """
    if isinstance(lines, str):
        return get_line_set(lines)
    resolved = []
    for item in lines:
        if isinstance(item, EmissionLine):
            resolved.append(item)
            continue
        line = find_line(item)
        if line is None:
            known = ", ".join(line.name for line in dap_line_table())
            raise UnknownNameError(
                f"unknown emission line {item!r}; pass an EmissionLine for a line outside "
                f"the DAP table, or one of: {known}"
            )
        resolved.append(line)
    check_unique_names(resolved)
    return tuple(resolved)


def check_unique_names(lines: Sequence[EmissionLine]) -> None:
    """Raise `DataModelError` if two lines share a name."""
    seen: set[str] = set()
    for line in lines:
        if line.name in seen:
            raise DataModelError(f"line {line.name!r} appears more than once")
        seen.add(line.name)
