"""Small galaxies and networks for encoder and training tests."""

from __future__ import annotations

import numpy as np

import ifsrepr

#: A network small enough to train in seconds on two cores.
TINY = {"hidden_channels": 4, "frontend_channels": [4, 4], "latent_dim": 8}


def galaxy_variants(maps: ifsrepr.LineStack, n: int, seed: int = 0) -> list[ifsrepr.LineStack]:
    """Copies of a real galaxy with other brightnesses and line ratios."""
    rng = np.random.default_rng(seed)
    stacks = []
    for i in range(n):
        factors = rng.uniform(0.3, 3.0, len(maps))[:, None, None]
        stacks.append(
            ifsrepr.LineStack(
                maps.lines, maps.flux * factors, maps.unit, maps.ivar / factors**2, maps.mask,
                maps.wcs, maps.redshift, dict(maps.meta, plateifu=f"9999-{i}"),
            )
        )  # fmt: skip
    return stacks
