# Licensed under a 3-clause BSD style license - see LICENSE
"""Sphinx configuration for the ifsrepr documentation.

Build with ``tox -e build_docs`` (warnings are errors and the gallery in
``../examples`` runs), or by hand from this directory::

    sphinx-build -W --keep-going -b html . _build/html

Environment variables:

``IFSREPR_DOCS_INTERSPHINX``
    ``auto`` (default): link to the documentation of numpy, astropy, ... for
    each site that can be reached when the build starts, and silently skip the
    others, so that an offline build (CI machines that only reach PyPI) still
    passes with ``-W``. ``1``: always try every site (a site that cannot be
    reached is then a warning, hence an error under ``-W``). ``0``: never.
"""

import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

try:
    # v3 = v2 (extensions: automodapi, numpydoc, doctestplus, intersphinx, ...)
    # with the pydata-based "astropy-unified" theme; v2 for older sphinx-astropy.
    from sphinx_astropy.conf.v3 import *
except ImportError:
    try:
        from sphinx_astropy.conf.v2 import *
    except ImportError:
        print('the documentation needs the "docs" extra: pip install -e ".[docs]"')
        sys.exit(1)

ROOT = Path(__file__).resolve().parents[1]
with (ROOT / "pyproject.toml").open("rb") as handle:
    project_meta = tomllib.load(handle)["project"]

# -- Project information -------------------------------------------------------
project = project_meta["name"]
author = project_meta["authors"][0]["name"]
_year = datetime.now(tz=timezone.utc).year
copyright = f"{'2026' if _year == 2026 else f'2026-{_year}'}, {author}"
# The installed version (setuptools_scm), not one parsed from the source tree.
release = metadata.version(project)
version = release.split("+", 1)[0]
source_url = project_meta["urls"]["Source"]

# -- General configuration -------------------------------------------------------
highlight_language = "python3"
exclude_patterns += ["generated/gallery/*.ipynb"]
rst_epilog += """
.. _MaNGA: https://www.sdss4.org/surveys/manga/
.. _specutils: https://specutils.readthedocs.io
.. _spectral-cube: https://spectral-cube.readthedocs.io
.. _pluggy: https://pluggy.readthedocs.io
"""

extensions += ["sphinx_gallery.gen_gallery"]

# automodapi writes one page per public object; keep them out of the sources.
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
# numpydoc: ``x : int, optional`` types stay plain text; class members are
# listed by automodapi, not repeated by numpydoc.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# -- Intersphinx -------------------------------------------------------------------
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "astropy": ("https://docs.astropy.org/en/stable/", None),
    "specutils": ("https://specutils.readthedocs.io/en/stable/", None),
    "spectral_cube": ("https://spectral-cube.readthedocs.io/en/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "pluggy": ("https://pluggy.readthedocs.io/en/stable/", None),
}


def _reachable(url, timeout=3.0):
    """Whether a TCP connection to the host of ``url`` can be opened."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


_intersphinx_mode = os.environ.get("IFSREPR_DOCS_INTERSPHINX", "auto").strip().lower()
if _intersphinx_mode in ("0", "no", "off", "false"):
    intersphinx_mapping = {}
elif _intersphinx_mode == "auto":
    # Sphinx turns an unreachable inventory into a warning that cannot be
    # suppressed, which -W makes fatal: leave out the sites we cannot reach.
    with ThreadPoolExecutor(max_workers=len(intersphinx_mapping)) as pool:
        _ok = dict(
            zip(
                intersphinx_mapping,
                pool.map(lambda entry: _reachable(entry[0]), intersphinx_mapping.values()),
                strict=True,
            )
        )
    _skipped = sorted(name for name, ok in _ok.items() if not ok)
    if _skipped:
        print(f"intersphinx: cannot reach {', '.join(_skipped)}; building without links to them")
    intersphinx_mapping = {name: entry for name, entry in intersphinx_mapping.items() if _ok[name]}

# -- sphinx-gallery ------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "generated/gallery",
    "backreferences_dir": "generated/modules",
    "doc_module": ("ifsrepr",),
    # Only files named plot_*.py run; the others are shown without output.
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    # An example that fails is a build error, as a failing doctest is.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "download_all_examples": False,
    "matplotlib_animations": False,
}

# -- HTML output -------------------------------------------------------------------
html_title = f"{project} v{version}"
html_static_path = ["_static"]
html_css_files = ["ifsrepr.css"]
html_theme_options = {
    "github_url": source_url,
    "use_edit_page_button": False,
    "navigation_with_keys": False,
}
if html_theme == "astropy-unified":
    # The theme's defaults describe astropy.org itself (its navbar, footer and
    # page-view counter); an affiliated package replaces them with its own.
    html_theme_options.update(
        {
            "sst_project_name": project,
            "sst_site_root": project_meta["urls"]["Documentation"],
            "navbar_links": [],
            "footer_links": [],
            "goatcounter_analytics_url": False,
        }
    )
    # The theme's default logo and favicon are astropy's own; ifsrepr has none
    # yet, so the navbar shows the project name instead.
    html_logo = None
    html_favicon = None

# -- Other builders ----------------------------------------------------------------
latex_documents = [("index", f"{project}.tex", f"{project} documentation", author, "manual")]
man_pages = [("index", project, f"{project} documentation", [author], 1)]
linkcheck_ignore = [r"https://github\.com/ifsrepr/ifsrepr.*"]  # placeholder repository

# -- Cross-references ------------------------------------------------------------------
# nitpicky stays off: with intersphinx skipped offline, every link to numpy or
# astropy would otherwise be a warning. Run `sphinx-build -n` online to audit.
nitpicky = False
