"""Small real data files bundled with the package.

=========================  =====================================================
name                       file
=========================  =====================================================
``manga-7815-3702-maps``   A complete, real MaNGA DAP MAPS file (DR15 layout,
                           DAP 2.2.3dev, HYB10-GAU-MILESHC) for galaxy 7815-3702.
=========================  =====================================================

Provenance and licences are in ``ifsrepr/data/PROVENANCE.md``. If you use these
data, acknowledge SDSS-IV and cite the MaNGA DRP (Law et al. 2016) and DAP
(Westfall et al. 2019; Belfiore et al. 2019) papers.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .exceptions import UnknownNameError

__all__ = ["get_path", "sample_names"]

_SAMPLES = {
    "manga-7815-3702-maps": "samples/manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz",
}


def sample_names() -> list[str]:
    """Names of the bundled sample files.

    Examples
    --------
    >>> from ifsrepr import datasets
    >>> datasets.sample_names()
    ['manga-7815-3702-maps']
    """
    return sorted(_SAMPLES)


def get_path(name: str) -> Path:
    """Path of a bundled sample file.

    Parameters
    ----------
    name : str
        One of `sample_names`.

    Examples
    --------
    >>> from ifsrepr import datasets
    >>> datasets.get_path("manga-7815-3702-maps").name
    'manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz'
    """
    try:
        relative = _SAMPLES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown sample {name!r}; available: {', '.join(sample_names())}"
        ) from None
    return Path(str(resources.files("ifsrepr") / "data" / relative))
