"""
Write a reader plugin for a new survey
======================================

``ifsrepr`` reads MaNGA out of the box; any other survey takes a *reader*, a
small class with a ``name``, an ``identify`` method and a ``read`` method,
delivered as a plugin. This example writes one for a made-up survey,
TOY-IFU, registers it in-process to try it out, uses what it reads with the
pretrained encoder, and shows how to package it so that
``ifsrepr.read`` finds it once it is installed.

The full contract is in :ref:`plugins`; a complete, installable and tested
example package lives in the repository under
``tests/plugins/ifsrepr-example-survey``.
"""

# %%
# The survey's files
# ------------------
# TOY-IFU publishes emission-line maps in its own layout: a primary header
# saying ``TELESCOP = 'TOY-IFU'``, with the object name, redshift ``Z`` and
# effective radius ``REFF`` (arcsec); a ``FLUX`` image of shape
# ``(n_lines, ny, nx)`` with a celestial WCS and NaN where there is no data;
# an ``ERROR`` image of 1-sigma errors; and a ``LINES`` table naming the
# lines in the survey's own way (``HA``, ``NII6584``...).
#
# To have such a file to read, write the real MaNGA galaxy 7815-3702 (bundled
# with ``ifsrepr``) in that layout, as if TOY-IFU had observed it.

import shutil
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

import ifsrepr
from ifsrepr.io import read_primary_header
from ifsrepr.lines import resolve_lines
from ifsrepr.plugins import load_registries
from ifsrepr.preprocess import MissingLinesWarning
from ifsrepr.units import parse_bunit

#: TOY-IFU's line names and the names ifsrepr uses (the MaNGA DAP's).
TOY_LINES = {
    "HB": "Hb-4862",
    "OIII5007": "OIII-5008",
    "OI6300": "OI-6302",
    "HA": "Ha-6564",
    "NII6584": "NII-6585",
    "SII6717": "SII-6718",
    "SII6731": "SII-6732",
}

workdir = Path(tempfile.mkdtemp(prefix="ifsrepr-plugin-"))
maps = ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
toy_names = list(TOY_LINES)
index = [maps.index(TOY_LINES[name]) for name in toy_names]
bad = maps.mask[index]
header = fits.Header({"TELESCOP": "TOY-IFU", "OBJECT": "TOY J2111+1129", "Z": maps.redshift})
header["REFF"] = (maps.meta["reff"], "effective radius [arcsec]")
flux_header = maps.wcs.to_header()
flux_header["BUNIT"] = "1e-17 erg/s/cm2/spaxel"
with np.errstate(divide="ignore"):
    error = np.where(bad, np.nan, 1 / np.sqrt(maps.ivar[index]))
fits.HDUList(
    [
        fits.PrimaryHDU(header=header),
        fits.ImageHDU(np.where(bad, np.nan, maps.flux[index]), flux_header, name="FLUX"),
        fits.ImageHDU(error, name="ERROR"),
        fits.BinTableHDU.from_columns(
            [fits.Column(name="NAME", format="10A", array=toy_names)], name="LINES"
        ),
    ]
).writeto(workdir / "toy-7815-3702.fits")
fits.info(workdir / "toy-7815-3702.fits")

# %%
# The reader
# ----------
# Three things make a reader:
#
# ``name``
#     unique among all readers; users can pick the reader with
#     ``ifsrepr.read(path, reader="toy-maps")``.
# ``identify(path, header)``
#     whether the file is one of ours, decided from the primary header that
#     ``ifsrepr`` has already read (``None`` for a file that is not FITS).
#     It must not open the file again: every reader is asked about every
#     file. Be strict: two readers claiming the same file is an error.
# ``read(path, **options)``
#     the file as an `~ifsrepr.IFSCube` (spectra) or a `~ifsrepr.LineStack`
#     (line maps), in ``ifsrepr``'s conventions: inverse variances rather
#     than errors, a boolean mask of what must not be used, astropy units,
#     lines by their DAP names, a celestial WCS, and in ``meta`` what
#     downstream steps need (``reff`` for the model grid). Raise
#     `ifsrepr.FileFormatError`, naming the file, for a file you recognise
#     but cannot read.


class ToySurveyReader:
    """Read TOY-IFU emission-line files into `ifsrepr.LineStack`."""

    name = "toy-maps"

    def identify(self, path, header):
        """Claim files whose primary header says ``TELESCOP = 'TOY-IFU'``."""
        return header is not None and str(header.get("TELESCOP", "")).strip() == "TOY-IFU"

    def read(self, path):
        """Read the line maps, their errors and the WCS."""
        path = Path(path)
        with fits.open(path) as hdus:
            missing = {"FLUX", "ERROR", "LINES"} - {hdu.name for hdu in hdus}
            if missing:
                raise ifsrepr.FileFormatError(
                    f"{path}: not a complete TOY-IFU file (no {', '.join(sorted(missing))})"
                )
            primary = hdus[0].header
            flux = np.asarray(hdus["FLUX"].data, dtype=np.float64)
            error = np.asarray(hdus["ERROR"].data, dtype=np.float64)
            names = [str(name).strip() for name in hdus["LINES"].data["NAME"]]
            unit = parse_bunit(hdus["FLUX"].header["BUNIT"], filename=str(path))
            wcs = WCS(hdus["FLUX"].header)
        unknown = [name for name in names if name not in TOY_LINES]
        if unknown:
            raise ifsrepr.FileFormatError(f"{path}: unknown TOY-IFU lines {unknown}")
        bad = ~np.isfinite(flux) | ~(error > 0)
        ivar = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, error) ** 2)
        return ifsrepr.LineStack(
            resolve_lines([TOY_LINES[name] for name in names]),
            np.where(bad, 0.0, flux),
            unit,
            ivar,
            bad,
            wcs=wcs,
            redshift=primary.get("Z"),
            meta={"name": primary.get("OBJECT", ""), "reff": primary.get("REFF")},
        )


# %%
# The plugin
# ----------
# A plugin is any object (usually a module) with functions named after the
# hooks in `ifsrepr.plugins.hookspecs`, marked with ``@ifsrepr.hookimpl``.
# Each hook receives ``register`` and calls it once per item it provides.


class ToySurveyPlugin:
    """Provides the TOY-IFU reader."""

    @ifsrepr.hookimpl
    def ifsrepr_register_readers(self, register):
        """Register the TOY-IFU reader."""
        register(ToySurveyReader())


# %%
# Try it in-process
# -----------------
# `ifsrepr.plugins.load_registries` discovers the installed plugins into
# fresh registries, leaving alone those that ``ifsrepr.read`` uses, and adds
# any plugin objects you give it, by name. The registry checks the reader's
# attributes and refuses a name that is already taken, naming both plugins.
# This is how the test suite tests plugins, and how to test yours.

registries = load_registries(extra_plugins={"toy-survey": ToySurveyPlugin()})
print(registries.readers.names())
registration = registries.readers.registration("toy-maps")
print(f"{registration.name!r} registered by plugin {registration.plugin!r}")

# %%
# Offer the file to every reader, as `ifsrepr.read` does: exactly one, ours,
# claims it. Then read it.

path = workdir / "toy-7815-3702.fits"
header = read_primary_header(path)
claims = [r.name for r in registries.readers.registrations() if r.item.identify(path, header)]
print("claimed by:", claims)
stack = registries.readers.get(claims[0]).read(path)
print(stack)
stack.line_table().pprint_all()

# %%
# What was read is an ordinary `~ifsrepr.LineStack`: maps by line name, with
# units, masks and the celestial WCS.

halpha = stack["Ha-6564"]
fig = plt.figure(figsize=(10, 4.2), layout="constrained")
ax = fig.add_subplot(1, 2, 1, projection=stack.wcs)
image = ax.imshow(halpha.filled(np.nan).value, origin="lower", cmap="magma")
fig.colorbar(image, ax=ax, label=f"Hα [{halpha.unit.to_string('latex_inline')}]")
ax.set_title(f"{stack.name}: Hα")
with np.errstate(divide="ignore", invalid="ignore"):
    log_ratio = np.log10(stack["NII-6585"] / halpha)
ax = fig.add_subplot(1, 2, 2, projection=stack.wcs)
image = ax.imshow(log_ratio.filled(np.nan).value, origin="lower", cmap="RdBu_r", vmin=-0.8, vmax=0)
fig.colorbar(image, ax=ax, label="log [NII]/Hα")
ax.set_title("[NII]λ6584 / Hα")
for ax in fig.axes[::2]:
    ax.coords[0].set_axislabel("RA")
    ax.coords[1].set_axislabel("Dec")

# %%
# And the rest of ``ifsrepr`` takes it as it is: the pretrained encoder reads
# the seven lines TOY-IFU provides and treats the other twelve of its 19 as
# masked (with a `~ifsrepr.preprocess.MissingLinesWarning`).

encoder = ifsrepr.IFSEncoder.from_pretrained("manga-convlstm", device="cpu")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", MissingLinesWarning)
    latent = encoder.encode(stack)
print(latent.shape)
print(caught[0].message if caught else "no warning")

# %%
# Package it
# ----------
# For ``ifsrepr.read`` (and ``ifsrepr extract``, ``ifsrepr info``...) to find
# the reader by itself, put the reader and the hook in a module of an
# ordinary Python package, and name that module in the ``ifsrepr``
# entry-point group of the package's ``pyproject.toml``:
#
# .. code-block:: text
#
#     ifsrepr-toy-survey/
#         pyproject.toml
#         ifsrepr_toy_survey/
#             __init__.py
#             plugin.py        # ToySurveyReader and the hook below
#
# .. code-block:: toml
#
#     [project]
#     name = "ifsrepr-toy-survey"
#     version = "0.1.0"
#     dependencies = ["ifsrepr", "numpy", "astropy"]
#
#     [project.entry-points.ifsrepr]
#     toy-survey = "ifsrepr_toy_survey.plugin"
#
# In a module the hook is a plain function:
#
# .. code-block:: python
#
#     @ifsrepr.hookimpl
#     def ifsrepr_register_readers(register):
#         register(ToySurveyReader())
#
# Then ``pip install ./ifsrepr-toy-survey`` (or publish it on PyPI), and:
#
# .. code-block:: console
#
#     $ ifsrepr plugins
#     readers:
#       ...
#       manga-maps      plugin manga-maps (ifsrepr ...)
#       toy-maps        plugin toy-survey (ifsrepr-toy-survey 0.1.0)
#     ...
#     $ ifsrepr info toy-7815-3702.fits
#
# and ``ifsrepr.read("toy-7815-3702.fits")`` returns the stack read above.
# ``IFSREPR_BLOCK_PLUGINS=toy-survey`` switches the plugin off. The same
# entry point can also provide line extractors, architectures and pretrained
# models (:ref:`other-hooks`). ``tests/plugins/ifsrepr-example-survey`` in the
# repository is such a package, for cubes of another made-up survey; the test
# suite installs it and reads its files through ``ifsrepr.read``.

# %%
# Everything was written to a temporary directory; remove it.

shutil.rmtree(workdir, ignore_errors=True)
plt.show()
