"""SDSS bitmasks (``MANGA_DRP3PIXMASK``, ``MANGA_DAPPIXMASK``, ...).

Bit definitions come from the official ``sdssMaskbits.par`` (idlutils
v5_5_36, as distributed with the MaNGA DAP), shipped as package data.
"""

from __future__ import annotations

import functools
import shlex
from importlib import resources

import numpy as np

from .exceptions import UnknownNameError

__all__ = ["bit_value", "mask_bits", "flagged"]


@functools.cache
def _all_masks() -> dict[str, dict[str, int]]:
    text = (resources.files("ifsrepr") / "data" / "sdssMaskbits.par").read_text()
    masks: dict[str, dict[str, int]] = {}
    for row in text.splitlines():
        if row.startswith("maskbits "):
            _, mask, bit, label, *_ = shlex.split(row)
            masks.setdefault(mask, {})[label] = int(bit)
    return masks


def mask_bits(mask_name: str) -> dict[str, int]:
    """Bit numbers of a named SDSS mask, by flag name.

    Examples
    --------
    >>> from ifsrepr.bitmask import mask_bits
    >>> mask_bits("MANGA_DAPPIXMASK")["DONOTUSE"]
    30
    """
    masks = _all_masks()
    try:
        return dict(masks[mask_name])
    except KeyError:
        raise UnknownNameError(f"unknown SDSS mask {mask_name!r}") from None


def bit_value(mask_name: str, *flags: str) -> int:
    """The integer with the named flags of ``mask_name`` set.

    Examples
    --------
    >>> from ifsrepr.bitmask import bit_value
    >>> bit_value("MANGA_DRP3PIXMASK", "NOCOV", "LOWCOV", "DONOTUSE")
    1027
    """
    bits = mask_bits(mask_name)
    value = 0
    for flag in flags:
        if flag not in bits:
            raise UnknownNameError(
                f"{mask_name} has no flag {flag!r}; flags: {', '.join(sorted(bits))}"
            )
        value |= 1 << bits[flag]
    return value


def flagged(mask: np.ndarray, mask_name: str, *flags: str) -> np.ndarray:
    """Boolean array: True where any of the named flags is set in ``mask``.

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.bitmask import flagged
    >>> mask = np.array([0, 1, 2**30, 2**30 + 1])  # nothing, NOCOV, DONOTUSE, both
    >>> flagged(mask, "MANGA_DAPPIXMASK", "DONOTUSE")
    array([False, False,  True,  True])
    >>> flagged(mask, "MANGA_DAPPIXMASK", "NOCOV", "DONOTUSE")
    array([False,  True,  True,  True])
    """
    return (np.asarray(mask).astype(np.int64) & bit_value(mask_name, *flags)) != 0
