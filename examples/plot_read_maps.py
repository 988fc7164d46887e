"""
Read a MaNGA MAPS file and map [NII]/Hα
=======================================

Read the real MaNGA DAP ``MAPS`` file bundled with ``ifsrepr`` (galaxy
7815-3702), look at its table of emission lines, and plot the Hα map on the
sky and the [NII]λ6584/Hα ratio, a classic diagnostic of what ionises the gas.
"""

# %%
# Read the file
# -------------
# `ifsrepr.read` identifies the file from its primary header and hands it to
# the ``manga-maps`` reader, which returns a `~ifsrepr.LineStack`: one flux,
# inverse-variance and mask map per emission line, in wavelength order.

import matplotlib.pyplot as plt
import numpy as np

import ifsrepr

maps = ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
print(maps)

# %%
# The lines
# ---------
# One row per line: rest (vacuum) wavelength, the number of spaxels not
# flagged ``DONOTUSE`` by the DAP, and the median flux and signal-to-noise
# over those spaxels.

maps.line_table().pprint_all()

# %%
# Hα on the sky
# -------------
# ``maps["Ha-6564"]`` is a masked `~astropy.units.Quantity`; masked spaxels
# (outside the fibre bundle or failed fits) are left blank. The map carries the
# celestial WCS of the file, so the axes can be right ascension and
# declination.

halpha = maps["Ha-6564"]

fig = plt.figure(figsize=(6, 4.8), layout="constrained")
ax = fig.add_subplot(projection=maps.wcs)
image = ax.imshow(halpha.filled(np.nan).value, origin="lower", cmap="magma")
ax.coords[0].set_axislabel("Right ascension")
ax.coords[1].set_axislabel("Declination")
ax.set_title(f"{maps.name}: Hα")
fig.colorbar(image, ax=ax, label=f"flux [{halpha.unit.to_string('latex_inline')}]")

# %%
# The [NII]/Hα ratio
# ------------------
# Keep spaxels where both lines are detected at a signal-to-noise of at least
# 3. Star-forming gas has log([NII]/Hα) below about -0.4; higher values point
# to harder ionising sources (an active nucleus, shocks, old stars).

index = {name: maps.index(name) for name in ("NII-6585", "Ha-6564")}
snr = {name: maps.flux[i] * np.sqrt(maps.ivar[i]) for name, i in index.items()}
good = ~maps.mask[index["NII-6585"]] & ~maps.mask[index["Ha-6564"]]
good &= (snr["NII-6585"] >= 3) & (snr["Ha-6564"] >= 3)

log_ratio = np.full(maps.spatial_shape, np.nan)
log_ratio[good] = np.log10(maps.flux[index["NII-6585"]][good] / maps.flux[index["Ha-6564"]][good])
print(f"{good.sum()} spaxels; median log [NII]/Hα = {np.nanmedian(log_ratio):.2f}")

fig = plt.figure(figsize=(6, 4.8), layout="constrained")
ax = fig.add_subplot(projection=maps.wcs)
image = ax.imshow(log_ratio, origin="lower", cmap="RdBu_r", vmin=-0.8, vmax=0.2)
ax.coords[0].set_axislabel("Right ascension")
ax.coords[1].set_axislabel("Declination")
ax.set_title(f"{maps.name}: log [NII]λ6584 / Hα  (S/N ≥ 3)")
fig.colorbar(image, ax=ax, label="log [NII]/Hα")

plt.show()
