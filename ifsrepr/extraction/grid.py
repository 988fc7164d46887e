"""The spectral grid: channel edges and widths, and where lines fall on it."""

from __future__ import annotations

import numpy as np

__all__ = ["channel_edges", "is_log_uniform", "SPEED_OF_LIGHT_KMS"]

#: Speed of light in km/s.
SPEED_OF_LIGHT_KMS = 299792.458


def is_log_uniform(wave: np.ndarray, rtol: float = 1e-6) -> bool:
    """Whether the channels are equally spaced in log(wavelength), as in MaNGA LOGCUBEs."""
    steps = np.diff(np.log(wave))
    return bool(np.allclose(steps, steps.mean(), rtol=rtol, atol=0))


def channel_edges(wave: np.ndarray) -> np.ndarray:
    """Edges of the channels centred on ``wave`` (length ``n + 1``).

    On a log-uniform grid the edges are the geometric midpoints, so each
    channel's true width grows with wavelength (MaNGA: 0.83 Å at 3622 Å,
    2.4 Å at 10350 Å); a constant width would be wrong by up to a factor of
    three across the range. Other grids use arithmetic midpoints.

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.extraction.grid import channel_edges
    >>> wave = 10 ** (np.log10(3621.59598486) + 1e-4 * np.arange(4563))
    >>> widths = np.diff(channel_edges(wave))
    >>> round(float(widths[0]), 3), round(float(widths[-1]), 3)
    (0.834, 2.384)
    """
    wave = np.asarray(wave, dtype=float)
    if is_log_uniform(wave):
        inner = np.sqrt(wave[1:] * wave[:-1])
        ratio = wave[1] / wave[0]
        first = wave[0] / np.sqrt(ratio)
        last = wave[-1] * np.sqrt(ratio)
    else:
        inner = 0.5 * (wave[1:] + wave[:-1])
        first = wave[0] - 0.5 * (wave[1] - wave[0])
        last = wave[-1] + 0.5 * (wave[-1] - wave[-2])
    return np.concatenate([[first], inner, [last]])
