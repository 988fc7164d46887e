"""A mock MaNGA survey in the real DR17 file formats, with known truth.

No full real MaNGA cube ships with (or can be downloaded by) the test suite,
so `ifsrepr.mock` makes galaxies that look and behave like DR17 data:

* drawn from reality: position, redshift, shape, size and IFU bundle of real
  catalogue rows (`catalog`); stellar continua, sky noise and spectral
  resolution from 11 real MaNGA spectra (`templates`);
* with physics an astronomer would accept (`params`, `model`, `nebular`,
  `dust`, `structure`): exponential disc plus Sersic bulge, star formation
  with an abundance gradient along the BPT star-forming sequence, diffuse
  gas, Seyfert and LINER nuclei, Balmer-decrement dust, arctan rotation,
  thermal + turbulent + instrumental line widths, the 2.5" PSF, noise with
  the real sky spectrum and MaNGA's spatial covariance (`synth`);
* with labelled anomalies at a chosen rate (`anomalies`);
* written as DR17 LOGCUBE (`drp_format`) and MAPS (`dap_format`) files, or as
  line stacks without a cube, plus a truth table and a DRPall-like catalogue
  (`survey`), reproducibly: the same seed gives the same bytes.

Examples
--------
>>> import tempfile
>>> from ifsrepr.mock import make_survey
>>> with tempfile.TemporaryDirectory() as outdir:
...     truth = make_survey(outdir, 3, seed=0, products=["linestack"], anomaly_rate=0.34)
>>> list(truth["anomaly"]).count("none")
2

The command line does the same: ``ifsrepr mock OUTDIR --n-galaxies 3 --products linestack``.
`small_survey` goes on to a survey dataset, ready for an encoder.
"""

from .anomalies import ANOMALY_CLASSES
from .params import GalaxyParams, Population
from .small import small_survey
from .survey import PRODUCTS, draw_survey, make_survey, simulate_galaxy, write_galaxy

__all__ = [
    "ANOMALY_CLASSES",
    "PRODUCTS",
    "GalaxyParams",
    "Population",
    "draw_survey",
    "make_survey",
    "simulate_galaxy",
    "small_survey",
    "write_galaxy",
]
