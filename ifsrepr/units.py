"""Units used by IFS surveys that astropy does not define.

MaNGA writes ``BUNIT = '1E-17 erg/s/cm^2/Angstrom/spaxel'`` for cubes and
``'1E-17 erg/s/cm^2/spaxel'`` for emission-line maps. ``spaxel`` is not an
astropy unit, so this module defines it and parses such strings.
"""

import re
import warnings

import astropy.units as u

from .exceptions import FileFormatError

__all__ = ["spaxel", "parse_bunit", "unit_to_string"]

#: One spatial pixel of an IFS cube. A dimensionless, counting unit: fluxes
#: "per spaxel" are surface brightnesses integrated over one spaxel's area.
spaxel = u.def_unit("spaxel", doc="one spatial pixel of an integral-field cube")

# Notation seen in survey headers that astropy's parser does not accept.
_REWRITES = [
    (re.compile(r"\^\{?(-?\d+)\}?"), r"**(\1)"),  # cm^2, (...)^{-2}
    (re.compile(r"\bAngstroms?\b|\bang\b", re.IGNORECASE), "Angstrom"),
    (re.compile(r"\bnanomaggies\b"), "nanomaggy"),
]


_POWER_OF_GROUP = re.compile(r"^\((?P<inner>.*)\)\s*(\^|\*\*)\s*\{?\(?(?P<power>-?\d+)\)?\}?$")


def parse_bunit(text: str, *, filename: str | None = None) -> u.UnitBase:
    """Parse a FITS ``BUNIT`` string, accepting the ``spaxel`` unit.

    Parameters
    ----------
    text : str
        The header value, for example ``'1E-17 erg/s/cm^2/spaxel'``.
    filename : str, optional
        Named in the error message if the string does not parse.

    Returns
    -------
    astropy.units.UnitBase
        The unit.

    Raises
    ------
    ifsrepr.FileFormatError
        If the string is not a unit astropy can understand.

    Examples
    --------
    >>> from ifsrepr.units import parse_bunit
    >>> parse_bunit("1E-17 erg/s/cm^2/spaxel")
    Unit("1e-17 erg / (s spaxel cm2)")
    """
    cleaned = text.strip()
    if not cleaned:
        return u.dimensionless_unscaled
    # IVAR extensions write '(1E-17 erg/s/cm^2/spaxel)^{-2}'; astropy cannot
    # raise a scaled, parenthesised unit to a power, so do that step here.
    powered = _POWER_OF_GROUP.match(cleaned)
    if powered:
        return parse_bunit(powered["inner"], filename=filename) ** int(powered["power"])
    for pattern, replacement in _REWRITES:
        cleaned = pattern.sub(replacement, cleaned)
    try:
        # Survey strings such as 'erg/s/cm^2/spaxel' chain slashes; astropy
        # parses them correctly but warns that FITS discourages it.
        with u.add_enabled_units([spaxel]), warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            return u.Unit(cleaned, parse_strict="raise")
    except ValueError as exc:
        where = f"{filename}: " if filename else ""
        reason = str(exc).split(" If this is meant", 1)[0]
        raise FileFormatError(f"{where}unknown BUNIT {text!r}: {reason}") from None


def unit_to_string(unit: u.UnitBase) -> str:
    """Write a unit so that `parse_bunit` reads it back exactly.

    Examples
    --------
    >>> from ifsrepr.units import parse_bunit, unit_to_string
    >>> unit = parse_bunit("1E-17 erg/s/cm^2/spaxel")
    >>> parse_bunit(unit_to_string(unit)) == unit
    True
    """
    return unit.to_string("generic")
