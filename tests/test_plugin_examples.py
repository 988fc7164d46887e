"""The example plugin packages of the plugin author's guide, used through their entry points.

``tests/plugins`` holds one complete example package per kind of plugin
(docs/plugins.rst walks through each). These tests use them as a user
would: installed, found through the ``ifsrepr`` entry-point group, and
reached only through ifsrepr's own API (``extract_lines``, ``IFSEncoder``,
``from_pretrained``). A package that is not installed skips its tests with
the command that installs it. The reader package is tested in test_read.py,
test_plugins.py and test_cli.py.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from local_server import serve_directory
from model_fixtures import galaxy_variants
from scipy.special import erf

import ifsrepr
from ifsrepr import hub
from ifsrepr.extraction import LineCoverageWarning
from ifsrepr.mock import make_survey
from ifsrepr.models import ModelConfigError
from ifsrepr.probes import fraction_of_variance_explained
from ifsrepr.units import parse_bunit

pytestmark = pytest.mark.usefixtures("fresh_plugins")

PLUGINS = Path(__file__).parent / "plugins"
#: The seven lines of the BPT diagrams, all in the bundled DR15 MAPS file.
BPT_LINES = ["Hb-4862", "OIII-5008", "OI-6302", "Ha-6564", "NII-6585", "SII-6718", "SII-6732"]


def installed(module: str, plugin: str, distribution: str):
    """The example package ``module``, or a skip saying how to install it."""
    hint = (
        f"the example plugin {distribution} is not installed; run "
        f"`pip install -e tests/plugins/{distribution}`"
    )
    package = pytest.importorskip(module, reason=hint)
    if not importlib.metadata.entry_points(group="ifsrepr", name=plugin):
        pytest.skip(hint)
    return package


def check_registration(registry, name: str, plugin: str, distribution: str):
    """The item ``name`` came through the entry point ``plugin`` of ``distribution``."""
    registration = registry.registration(name)
    assert registration.plugin == plugin
    version = importlib.metadata.version(distribution)
    assert registration.distribution == f"{distribution} {version}"
    return registration.item


@pytest.fixture(scope="session")
def example_extractor():
    return installed("ifsrepr_example_extractor", "example-extractor", "ifsrepr-example-extractor")


@pytest.fixture(scope="session")
def example_architecture():
    return installed(
        "ifsrepr_example_architecture", "example-architecture", "ifsrepr-example-architecture"
    )


@pytest.fixture(scope="session")
def example_pretrained():
    return installed(
        "ifsrepr_example_pretrained", "example-pretrained", "ifsrepr-example-pretrained"
    )


@pytest.fixture(scope="module")
def maps():
    """The bundled real MAPS file (galaxy 7815-3702)."""
    return ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))


def test_every_example_package_is_documented():
    guide = (Path(__file__).parents[1] / "docs" / "plugins.rst").read_text()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    # README's test block installs them all from this file.
    assert "pip install -r tests/plugins/requirements.txt" in readme
    requirements = (PLUGINS / "requirements.txt").read_text().split("\n")
    for package in sorted(PLUGINS.glob("ifsrepr-example-*")):
        assert (package / "pyproject.toml").is_file() and (package / "README.md").is_file()
        assert f"tests/plugins/{package.name}/pyproject.toml" in guide
        assert f"-e ./tests/plugins/{package.name}" in requirements


def test_discovery_imports_no_network_module(example_architecture):
    # ifsrepr imports every plugin to list them; the architecture plugin keeps torch out.
    code = (
        "import sys, ifsrepr\n"
        "ifsrepr.plugins.get_architectures()\n"
        "print(sorted(m for m in sys.modules if m.startswith('ifsrepr_example_architecture')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == (
        "['ifsrepr_example_architecture', 'ifsrepr_example_architecture.plugin']"
    )


def test_docstring_examples_of_the_example_packages(example_architecture):
    # tests/plugins is outside pytest's collection, so run the examples here.
    module = importlib.import_module("ifsrepr_example_architecture.network")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# -- the narrowband extractor --------------------------------------------------------------------


def synthetic_cube(flux_line=50.0, sigma=2.0, noise=0.0, z=0.01, seed=0, shape=(20, 20)):
    """A cube with one Gaussian Hα line on a sloping continuum, on a MaNGA-like log grid."""
    wave = 10 ** (np.log10(6400.0) + 1e-4 * np.arange(1300))  # 6400-8680 Å
    centre = 6564.608 * (1 + z)
    continuum = 2.0 + 0.004 * (wave - centre)
    line = flux_line * np.exp(-0.5 * ((wave - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    spectrum = (continuum + line)[:, None, None] * np.ones((1, *shape))
    rng = np.random.default_rng(seed)
    flux = spectrum + (rng.normal(0.0, noise, spectrum.shape) if noise else 0.0)
    ivar = np.full(spectrum.shape, 1.0 / noise**2 if noise else 1e4)
    unit = parse_bunit("1E-17 erg/s/cm^2/Angstrom/spaxel")
    return ifsrepr.IFSCube(flux * unit, wave * u.AA, ivar=ivar, redshift=z, meta={"name": "toy"})


def test_narrowband_comes_through_its_entry_point(example_extractor):
    extractor = check_registration(
        ifsrepr.plugins.get_line_extractors(),
        "narrowband",
        "example-extractor",
        "ifsrepr-example-extractor",
    )
    assert isinstance(extractor, example_extractor.NarrowbandExtractor)


def test_narrowband_measures_a_known_line_exactly(example_extractor):
    cube = synthetic_cube()
    stack = ifsrepr.extract_lines(cube, ["Ha-6564"], method="narrowband")
    assert isinstance(stack, ifsrepr.LineStack)
    assert stack.shape == (1, 20, 20) and not stack.mask.any()
    assert stack.unit == cube.unit * u.AA
    assert stack.meta["extraction"]["method"] == "narrowband"
    assert stack.meta["extraction"]["half_width_angstrom"] == 7.0
    # A noiseless Gaussian on a straight continuum: the passband holds the
    # Gaussian's flux within ±7 Å (rest), and the medians of the straight
    # continuum in the side-bands interpolate to it exactly (up to where the
    # channel centres fall).
    inside = erf(7.0 * 1.01 / (2.0 * np.sqrt(2)))
    np.testing.assert_allclose(stack.flux, 50.0 * inside, rtol=1e-3)
    wider = ifsrepr.extract_lines(cube, ["Ha-6564"], method="narrowband", half_width=10 * u.AA)
    np.testing.assert_allclose(wider.flux, 50.0 * erf(10.0 * 1.01 / (2.0 * np.sqrt(2))), rtol=1e-4)
    # A passband a few channels wide (1.5 Å channels, σ = 2 Å) counts the
    # channels it cuts in proportion to the part inside: within 3 %.
    narrow = ifsrepr.extract_lines(cube, ["Ha-6564"], method="narrowband", half_width=2.0)
    np.testing.assert_allclose(narrow.flux, 50.0 * erf(2.0 * 1.01 / (2.0 * np.sqrt(2))), rtol=0.03)


def test_narrowband_variance_matches_the_scatter(example_extractor):
    # 900 spaxels of the same spectrum with independent noise: the spread of the
    # fluxes must be what the propagated inverse variance says.
    cube = synthetic_cube(noise=0.3, shape=(30, 30), seed=1)
    stack = ifsrepr.extract_lines(cube, ["Ha-6564"], method="narrowband")
    flux = np.asarray(stack.flux).ravel()
    sigma = 1.0 / np.sqrt(np.asarray(stack.ivar).ravel())
    expected = 50.0 * erf(7.0 * 1.01 / (2.0 * np.sqrt(2)))
    assert abs(flux.mean() - expected) < 4 * flux.std() / np.sqrt(flux.size)
    # The median's variance, (pi/2) sigma^2 / n, holds for large n; the
    # side-bands have about 20 channels, so allow 10 %.
    assert flux.std() / np.median(sigma) == pytest.approx(1.0, abs=0.1)


def test_narrowband_masks_what_it_cannot_measure(example_extractor):
    cube = synthetic_cube()
    flux = cube.flux.value.copy()
    centre = np.argmin(np.abs(cube.spectral_axis.value - 6564.608 * 1.01))
    flux[centre, 3, 4] = np.nan  # a bad channel in the passband
    holed = ifsrepr.IFSCube(
        flux * cube.unit, cube.spectral_axis, ivar=cube.ivar.value, redshift=0.01
    )
    with pytest.warns(LineCoverageWarning, match="Hb-4862"):
        stack = ifsrepr.extract_lines(holed, ["Hb-4862", "Ha-6564"], method="narrowband")
    assert stack.mask[0].all()  # Hβ is off the grid
    assert stack.mask[1, 3, 4] and stack.mask[1].sum() == 1
    assert stack.ivar[1, 3, 4] == 0
    # A line on the grid whose side-band is not: masked too, with a warning.
    short = ifsrepr.IFSCube(
        cube.flux[:190], cube.spectral_axis[:190], ivar=cube.ivar.value[:190], redshift=0.01
    )
    assert short.spectral_axis[-1].value > 6564.608 * 1.01 + 10
    with pytest.warns(LineCoverageWarning, match="side-bands of Ha-6564"):
        stack = ifsrepr.extract_lines(short, ["Ha-6564"], method="narrowband")
    assert stack.mask.all()


def test_narrowband_refuses_bad_options(example_extractor):
    cube = synthetic_cube()
    with pytest.raises(ifsrepr.DataModelError, match="half_width"):
        ifsrepr.extract_lines(cube, ["Ha-6564"], method="narrowband", half_width=-1)
    with pytest.raises(ifsrepr.DataModelError, match="sidebands"):
        ifsrepr.extract_lines(cube, ["Ha-6564"], method="narrowband", sidebands="wide")
    cube.redshift = None
    with pytest.raises(ifsrepr.DataModelError, match="no redshift"):
        ifsrepr.extract_lines(cube, ["Ha-6564"], method="narrowband")


#: Median of narrowband / MaNGA-DAP-style truth over the spaxels with truth S/N > 5 of
#: mock galaxy 9028-1902 (star-forming, make_survey(dir, 1, seed=0, fibres=(19,))),
#: as measured; 225-445 spaxels a line. Like the built-in `window` extractor with
#: continuum="linear" (0.899 0.977 0.934 0.969 0.941 0.984 0.990 on the same
#: galaxy), the side-band continuum cannot follow the stellar absorption under Hβ
#: and Hα and in the side-bands, which is what the low values are.
NARROWBAND_OVER_TRUTH = [0.872, 0.972, 0.925, 0.972, 0.952, 0.982, 0.994]


@pytest.fixture(scope="module")
def mock_galaxy(tmp_path_factory):
    """A mock MaNGA LOGCUBE and its true line fluxes (MAPS GFLUX), one 19-fibre galaxy."""
    outdir = tmp_path_factory.mktemp("mock-narrowband")
    truth = make_survey(outdir, 1, 0, products=["cube", "maps"], fibres=(19,))
    row = truth[0]
    catalogue = Table.read(outdir / "drpall-mock.fits", hdu="MANGA")
    z = float(catalogue["nsa_z"][catalogue["plateifu"] == row["plateifu"]][0])
    cube = ifsrepr.read(outdir / row["cube_file"], redshift=z)
    with fits.open(outdir / row["maps_file"]) as hdus:
        header = hdus["EMLINE_GFLUX"].header
        names = [header[f"C{i:02d}"].strip() for i in range(1, header["NAXIS3"] + 1)]
        index = [names.index(name) for name in BPT_LINES]
        flux = hdus["EMLINE_GFLUX"].data[index].astype(float)
        ivar = hdus["EMLINE_GFLUX_IVAR"].data[index].astype(float)
        good = (hdus["EMLINE_GFLUX_MASK"].data[index] == 0) & (flux * np.sqrt(ivar) > 5)
    return row["plateifu"], cube, flux, good


def test_narrowband_against_mock_truth(example_extractor, mock_galaxy):
    plateifu, cube, truth, good = mock_galaxy
    assert plateifu == "9028-1902"
    stack = ifsrepr.extract_lines(cube, BPT_LINES, method="narrowband")
    assert stack.line_names == BPT_LINES
    assert stack.meta["extraction"]["galactic_ebv"] > 0  # corrected, as the truth is
    used = good & ~stack.mask
    assert (used.sum(axis=(1, 2)) > 200).all()
    ratio = np.where(used, np.asarray(stack.flux) / np.where(good, truth, 1.0), np.nan)
    median = np.nanmedian(ratio.reshape(len(BPT_LINES), -1), axis=1)
    np.testing.assert_allclose(median, NARROWBAND_OVER_TRUTH, atol=0.01)


# -- the conv-ae architecture ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_conv_ae(example_architecture, maps):
    stacks = galaxy_variants(maps.select(BPT_LINES), 12)
    encoder = ifsrepr.IFSEncoder(
        "conv-ae", lines=BPT_LINES, size=16, device="cpu", channels=[8, 16]
    )
    # One thread: the network is tiny, and on a busy two-core machine torch's
    # worker threads would mostly wait for each other (10 s instead of 1 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder.fit(stacks, epochs=8, batch_size=4, learning_rate=3e-3, patience=20, progress=False)
    finally:
        torch.set_num_threads(threads)
    return encoder, stacks


def test_conv_ae_comes_through_its_entry_point(example_architecture):
    architecture = check_registration(
        ifsrepr.plugins.get_architectures(),
        "conv-ae",
        "example-architecture",
        "ifsrepr-example-architecture",
    )
    network = architecture.build(7, 16, channels=[8, 16])
    assert network.latent_dim == 128 and network.trained_by_gradient
    assert network.options == {"channels": [8, 16], "latent_dim": 128, "mask_channels": True}
    assert type(network).__module__ == "ifsrepr_example_architecture.network"


def test_conv_ae_trains(trained_conv_ae):
    encoder, stacks = trained_conv_ae
    losses = [row["train_loss"] for row in encoder.history_]
    assert len(losses) == 8
    # Measured: 3.85 -> 0.36 over the eight epochs.
    assert losses[-1] < 0.25 * losses[0], losses
    assert (
        min(row["validation_loss"] for row in encoder.history_)
        < encoder.history_[0]["validation_loss"]
    )
    latents = encoder.encode(stacks)
    assert latents.shape == (12, 128) and latents.dtype == np.float32
    assert np.isfinite(latents).all()
    rebuilt = encoder.reconstruct(stacks[0])
    assert rebuilt.shape == (7, 16, 16) and rebuilt.meta["reconstructed_by"] == "conv-ae"


def test_conv_ae_save_and_load_round_trip(trained_conv_ae, tmp_path):
    encoder, stacks = trained_conv_ae
    directory = encoder.save_pretrained(tmp_path / "conv-ae")
    config = json.loads((directory / "config.json").read_text())
    assert config["architecture"] == "conv-ae"
    assert config["options"] == {"channels": [8, 16]} and config["latent_dim"] == 128
    loaded = ifsrepr.IFSEncoder.from_pretrained(directory, device="cpu")
    np.testing.assert_array_equal(loaded.encode(stacks), encoder.encode(stacks))


def test_conv_ae_masked_pixels_do_not_leak(trained_conv_ae):
    encoder, stacks = trained_conv_ae
    stack = stacks[0]
    flux = np.array(stack.flux)
    flux[:, 10:25, 10:25] = np.nan
    holed = ifsrepr.LineStack(
        stack.lines, flux, stack.unit, stack.ivar, stack.mask, stack.wcs, stack.redshift,
        stack.meta,
    )  # fmt: skip
    latent = encoder.encode(holed)
    assert np.isfinite(latent).all()
    assert not np.array_equal(latent, encoder.encode(stack))
    # Whatever the values under the mask, the latent is the same.
    flux[:, 10:25, 10:25] = 1e6
    mask = stack.mask.copy()
    mask[:, 10:25, 10:25] = True
    hidden = ifsrepr.LineStack(
        stack.lines, flux, stack.unit, stack.ivar, mask, stack.wcs, stack.redshift, stack.meta
    )
    np.testing.assert_allclose(encoder.encode(hidden), latent, rtol=1e-5, atol=1e-5)


def test_conv_ae_refuses_bad_options(example_architecture, maps):
    architecture = ifsrepr.plugins.get_architectures().get("conv-ae")
    with pytest.raises(ModelConfigError, match="no option chanels; valid options: channels"):
        architecture.build(7, 16, chanels=[8])
    with pytest.raises(ModelConfigError, match="divisible by 8"):
        architecture.build(7, 20)
    encoder = ifsrepr.IFSEncoder("conv-ae", lines=BPT_LINES, size=12, channels=[8, 8, 8])
    with pytest.raises(ModelConfigError, match="divisible by 8"):
        encoder.fit([maps.select(BPT_LINES)] * 2, epochs=1, progress=False)


# -- the example-bpt-pca pretrained model ----------------------------------------------------------

MODEL = "example-bpt-pca"


@pytest.fixture(scope="module")
def weights_dir(example_pretrained) -> Path:
    """The installed directory of the example model's files."""
    return Path(example_pretrained.packaged_model().path)


def test_pretrained_entry_comes_through_its_entry_point(example_pretrained, weights_dir):
    entry = check_registration(
        ifsrepr.plugins.get_pretrained(), MODEL, "example-pretrained", "ifsrepr-example-pretrained"
    )
    weights = Path(entry.path) / hub.WEIGHTS_NAME
    # Package data of the installed package, with the digest the plugin pins.
    assert Path(entry.path) == weights_dir
    assert Path(example_pretrained.__file__).parent in weights.parents
    assert hub.file_sha256(weights) == entry.sha256 == example_pretrained.SHA256
    assert weights.stat().st_size < 1_000_000
    assert entry.architecture == "pca" and "arXiv" in entry.citation
    assert entry.config["preprocessing"]["params"]["lines"] == BPT_LINES


@pytest.fixture(scope="module")
def pretrained(example_pretrained):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IFSREPR_OFFLINE", "1")  # packaged weights need no network
        ifsrepr.plugins.reset()
        encoder = ifsrepr.IFSEncoder.from_pretrained(MODEL, device="cpu")
    ifsrepr.plugins.reset()
    return encoder


@pytest.fixture(scope="module")
def new_mock_stacks(tmp_path_factory):
    """Five mock galaxies the example model was not fitted on (another seed)."""
    outdir = tmp_path_factory.mktemp("mock-stacks")
    truth = make_survey(outdir, 5, 123, products=["linestack"], fibres=(19, 37))
    stacks = [ifsrepr.read(outdir / name) for name in truth["linestack_file"]]
    for stack, reff in zip(stacks, truth["reff"], strict=True):
        stack.meta["reff"] = float(reff)
    return stacks


def test_pretrained_encodes_offline(pretrained, maps, new_mock_stacks):
    assert pretrained.architecture == "pca"
    assert pretrained.pretrained_from_ == MODEL
    latents = pretrained.encode([maps, *new_mock_stacks])
    assert latents.shape == (6, 128) and latents.dtype == np.float32
    assert np.isfinite(latents).all()
    assert np.linalg.matrix_rank(latents) == 6  # different galaxies, different latents


def test_pretrained_reconstructs_new_galaxies(pretrained, new_mock_stacks, weights_dir):
    # The weights learned the maps: on galaxies they never saw, the
    # reconstruction explains nearly all the variance of the normalised maps.
    arrays = [pretrained.preprocessor_.transform(stack) for stack in new_mock_stacks]
    x = torch.from_numpy(np.stack([a[0] for a in arrays]))
    w = torch.from_numpy(np.stack([a[1] for a in arrays]))
    with torch.no_grad():
        x_hat = pretrained.network_(x, w)[0]
    _, fve = fraction_of_variance_explained(x.numpy(), x_hat.numpy(), w.numpy())
    # Measured: 0.993 on these five galaxies (make_weights.py reports 0.995 on
    # its own 80 held-out ones; 8 components alone give 0.93).
    assert fve > 0.98, fve
    quality = json.loads((weights_dir / "quality.json").read_text())
    assert quality["fve"] > 0.99 and quality["held_out_galaxies"] == 80


def test_pretrained_weights_that_do_not_match_are_refused(
    example_pretrained, weights_dir, use_plugins, tmp_path
):
    copy = shutil.copytree(weights_dir, tmp_path / "copy")
    data = bytearray((copy / hub.WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last weight
    (copy / hub.WEIGHTS_NAME).write_bytes(bytes(data))
    entry = example_pretrained.packaged_model()

    class Tampered:
        @ifsrepr.hookimpl
        def ifsrepr_register_pretrained(self, register):
            register(dataclasses.replace(entry, name="tampered", path=str(copy)))

    use_plugins(tampered=Tampered())
    with pytest.raises(ifsrepr.FileFormatError, match="does not match"):
        ifsrepr.IFSEncoder.from_pretrained("tampered")


@pytest.fixture
def served_weights(weights_dir):
    """The example model's weights file served over HTTP on 127.0.0.1; yields (url, log)."""
    with serve_directory(weights_dir) as (url, server):
        yield f"{url}/{hub.WEIGHTS_NAME}", server.requests


def test_hosted_entry_downloads_once_and_verifies(
    example_pretrained, pretrained, maps, use_plugins, served_weights, tmp_path, monkeypatch
):
    # The guide's other way to publish: the same weights at a URL (here a local
    # server standing in for Zenodo), downloaded into the cache and checked.
    url, seen = served_weights
    monkeypatch.delenv("IFSREPR_OFFLINE", raising=False)

    class Hosted:
        @ifsrepr.hookimpl
        def ifsrepr_register_pretrained(self, register):
            register(example_pretrained.hosted_model(url, name=f"{MODEL}-hosted"))

    use_plugins(hosted=Hosted())
    cache = tmp_path / "cache"
    encoder = ifsrepr.IFSEncoder.from_pretrained(f"{MODEL}-hosted", cache_dir=cache, device="cpu")
    assert len(seen) == 1
    expected = pretrained.encode(maps)
    np.testing.assert_array_equal(encoder.encode(maps), expected)
    again = ifsrepr.IFSEncoder.from_pretrained(
        f"{MODEL}-hosted", cache_dir=cache, local_files_only=True, device="cpu"
    )
    assert len(seen) == 1  # from the cache
    np.testing.assert_array_equal(again.encode(maps), expected)


def test_shipped_config_is_what_make_weights_asks_for(weights_dir):
    script = PLUGINS / "ifsrepr-example-pretrained" / "make_weights.py"
    spec = importlib.util.spec_from_file_location("make_weights", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NAME == MODEL and weights_dir.name == MODEL
    config = json.loads((weights_dir / "config.json").read_text())
    assert config["options"] == module.OPTIONS
    params = config["preprocessing"]["params"]
    assert params["lines"] == module.BPT_LINES
    assert (params["size"], params["n_reff"]) == (module.SIZE, module.N_REFF)
