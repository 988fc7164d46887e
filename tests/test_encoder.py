"""IFSEncoder: fit, encode, reconstruct, save/load, and the bad inputs it refuses."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
from model_fixtures import TINY, galaxy_variants

import ifsrepr
from ifsrepr.encoder import EncoderInputError, IFSEncoder

# The bundled DR15 MAPS file lacks four manga19 lines; they are masked, with a
# warning (shown once per process) that these tests do not need to see.
pytestmark = pytest.mark.filterwarnings("ignore::ifsrepr.preprocess.MissingLinesWarning")


@pytest.fixture(scope="module")
def maps():
    return ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))


@pytest.fixture(scope="module")
def fitted(maps):
    stacks = galaxy_variants(maps, 8)
    encoder = IFSEncoder("convlstm", size=16, device="cpu", **TINY)
    encoder.fit(stacks, epochs=2, batch_size=4, progress=False)
    return encoder, stacks


def test_fit_encode_reconstruct(fitted, maps):
    encoder, stacks = fitted
    assert len(encoder.history_) == 2
    latents = encoder.encode(stacks[:3])
    assert latents.shape == (3, 8) and latents.dtype == np.float32
    assert np.isfinite(latents).all()
    rebuilt = encoder.reconstruct(maps)
    assert isinstance(rebuilt, ifsrepr.LineStack)
    assert rebuilt.line_names == list(ifsrepr.lines.MANGA19)
    assert rebuilt.shape == (19, 16, 16)
    # Physical surface brightness: the input's flux per spaxel becomes per arcsec^2.
    assert rebuilt.unit == maps.unit * ifsrepr.units.spaxel / u.arcsec**2
    # Lines the DR15 file lacks stay masked in the reconstruction.
    assert rebuilt["NI-5199"].mask.all()


def test_save_and_load_give_identical_latents(fitted, tmp_path):
    encoder, stacks = fitted
    encoder.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["architecture"] == "convlstm" and config["latent_dim"] == 8
    loaded = IFSEncoder.from_pretrained(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(loaded.encode(stacks), encoder.encode(stacks))


def test_weights_of_another_architecture_are_refused(fitted, tmp_path):
    encoder, _ = fitted
    directory = encoder.save_pretrained(tmp_path / "model")
    config = json.loads((directory / "config.json").read_text())
    config["options"]["hidden_channels"] = 6
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ifsrepr.FileFormatError, match="do not fit"):
        IFSEncoder.from_pretrained(directory)


def test_corrupt_weights_and_foreign_configs_are_refused(fitted, tmp_path):
    encoder, _ = fitted
    directory = encoder.save_pretrained(tmp_path / "model")
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ifsrepr.FileFormatError, match="cannot read the weights"):
        IFSEncoder.from_pretrained(directory)
    (directory / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ifsrepr.FileFormatError, match="not an ifsrepr encoder"):
        IFSEncoder.from_pretrained(directory)
    (directory / "config.json").write_text(
        json.dumps({"format": "ifsrepr.IFSEncoder", "format_version": 99})
    )
    with pytest.raises(ifsrepr.FileFormatError, match="newer ifsrepr"):
        IFSEncoder.from_pretrained(directory)


def test_all_masked_galaxy_is_refused(fitted, maps):
    encoder, _ = fitted
    dead = ifsrepr.LineStack(
        maps.lines, maps.flux, maps.unit, maps.ivar, np.ones(maps.shape, bool), maps.wcs,
        maps.redshift, dict(maps.meta, plateifu="0-dead"),
    )  # fmt: skip
    with pytest.raises(EncoderInputError, match="0-dead.*every pixel is masked"):
        encoder.encode([dead])


def test_nans_are_masked_not_propagated(fitted, maps):
    encoder, _ = fitted
    flux = maps.flux.copy()
    flux[:, 10:20, 10:20] = np.nan
    holed = ifsrepr.LineStack(
        maps.lines, flux, maps.unit, maps.ivar, maps.mask, maps.wcs, maps.redshift, maps.meta
    )
    latent = encoder.encode(holed)
    assert np.isfinite(latent).all()


def test_stack_with_other_lines_is_refused(fitted, maps):
    encoder, _ = fitted
    other = maps.select(["OII-3727", "OII-3729"])
    with pytest.raises(EncoderInputError, match="none of its lines"):
        encoder.encode(other)
    with pytest.raises(EncoderInputError, match="LineStacks"):
        encoder.encode(["not a stack"])


def test_unfitted_encoder_says_so(maps):
    with pytest.raises(ifsrepr.IFSReprError, match="not fitted"):
        IFSEncoder().encode(maps)


def test_unknown_architecture_option_is_refused(maps):
    encoder = IFSEncoder("convlstm", size=16, hidden_chanels=4)
    with pytest.raises(ifsrepr.IFSReprError, match="hidden_chanels"):
        encoder.fit(galaxy_variants(maps, 3), epochs=1, progress=False)
