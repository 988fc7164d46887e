"""The running-sum band integrals agree with the explicit coefficients."""

import numpy as np
import pytest

from ifsrepr.extraction.bands import BandSums, band_integrals, dense_band_integrals


def log_grid(n: int, start: float = 6550.0) -> tuple[np.ndarray, np.ndarray]:
    """Channel edges and centres of a MaNGA-like log-lambda grid."""
    edges = start * 10 ** (1e-4 * np.arange(n + 1))
    return 0.5 * (edges[:-1] + edges[1:]), edges


def spectra(rng, wave, n_spaxels, holes=0.02):
    """Continuum plus a line of varying velocity, noisy, with some bad channels."""
    velocity = rng.normal(0, 150, n_spaxels)
    centre = 6564.6 * 1.02 * (1 + velocity / 299792.458)
    flux = (
        2.0
        + 1e-3 * (wave[:, None] - wave.mean())
        + 8 * np.exp(-0.5 * ((wave[:, None] - centre) / 2.5) ** 2)
    )
    ivar = rng.uniform(5, 50, flux.shape)
    flux = flux + rng.normal(size=flux.shape) / np.sqrt(ivar)
    good = rng.random(flux.shape) > holes
    ivar[rng.random(flux.shape) < holes / 2] = 0.0
    return flux, ivar, good, velocity


def bands_for(velocity, z=0.02, half_width=350.0):
    shift = (1 + z) * (1 + velocity / 299792.458)
    factor = half_width / 299792.458
    centre = 6564.608
    passband = (centre * (1 - factor) * shift, centre * (1 + factor) * shift)
    blue = (6483.0 * shift, 6513.0 * shift)
    red = (6623.0 * shift, 6653.0 * shift)
    return passband, blue, red


@pytest.mark.parametrize("first_moment", [False, True])
def test_running_sums_match_explicit_coefficients(first_moment):
    rng = np.random.default_rng(3)
    wave, edges = log_grid(400)
    flux, ivar, good, velocity = spectra(rng, wave, 400)
    bands = bands_for(velocity)
    fast = band_integrals(wave, edges, flux, ivar, good, *bands, first_moment=first_moment)
    slow = dense_band_integrals(wave, edges, flux, ivar, good, *bands, first_moment=first_moment)
    np.testing.assert_array_equal(fast[2], slow[2])
    assert 0 < fast[2].sum() < fast[2].size  # some masked by the holes, most not
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-9)
    if first_moment:
        keep = ~fast[2]
        np.testing.assert_allclose(fast[3][keep], slow[3][keep], rtol=1e-12)


def test_bands_running_off_the_slab_are_masked_like_the_explicit_sum():
    rng = np.random.default_rng(4)
    wave, edges = log_grid(180)
    flux, ivar, good, velocity = spectra(rng, wave, 50, holes=0.0)
    # Shift half the spaxels so the red band runs off the end of the slab.
    velocity[::2] += 4000.0
    bands = bands_for(velocity)
    fast = band_integrals(wave, edges, flux, ivar, good, *bands)
    slow = dense_band_integrals(wave, edges, flux, ivar, good, *bands)
    np.testing.assert_array_equal(fast[2], slow[2])
    assert fast[2][::2].all() and not fast[2][1::2].any()
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-9, atol=1e-9)


def test_bands_meeting_inside_a_channel_keep_the_exact_variance():
    rng = np.random.default_rng(7)
    wave, edges = log_grid(400)
    flux, ivar, good, velocity = spectra(rng, wave, 200, holes=0.0)
    passband, _, _ = bands_for(velocity)
    # Side-bands that end where the passband starts (mid-channel, usually).
    blue = (passband[0] - 20.0, passband[0])
    red = (passband[1], passband[1] + 20.0)
    fast = BandSums(wave, edges, flux, ivar, good).integrals(passband, blue, red)
    slow = dense_band_integrals(wave, edges, flux, ivar, good, passband, blue, red)
    np.testing.assert_array_equal(fast[2], slow[2])
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-9)


def test_overlapping_bands_fall_back_to_the_exact_construction():
    rng = np.random.default_rng(5)
    wave, edges = log_grid(400)
    flux, ivar, good, velocity = spectra(rng, wave, 30, holes=0.0)
    bands = bands_for(velocity, half_width=3500.0)  # the passband swallows the side-bands
    fast = BandSums(wave, edges, flux, ivar, good).integrals(*bands)
    slow = dense_band_integrals(wave, edges, flux, ivar, good, *bands)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_set_of_running_sums_serves_several_lines():
    rng = np.random.default_rng(6)
    wave, edges = log_grid(400)
    flux, ivar, good, velocity = spectra(rng, wave, 100)
    sums = BandSums(wave, edges, flux, ivar, good)
    for half_width in (200.0, 350.0, 500.0):
        bands = bands_for(velocity, half_width=half_width)
        fast = sums.integrals(*bands)
        slow = dense_band_integrals(wave, edges, flux, ivar, good, *bands)
        np.testing.assert_allclose(fast[0], slow[0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fast[1], slow[1], rtol=1e-9)


def test_first_moment_needs_the_moment_tables():
    wave, edges = log_grid(50)
    sums = BandSums(wave, edges, np.ones((50, 2)), np.ones((50, 2)), np.ones((50, 2), bool))
    band = (np.full(2, 6420.0), np.full(2, 6430.0))
    with pytest.raises(ValueError, match="first_moment=True"):
        sums.integrals(band, band, band, first_moment=True)


@pytest.mark.parametrize("first_moment", [False, True])
def test_spaxels_with_nothing_usable_are_masked_like_the_explicit_sum(first_moment):
    rng = np.random.default_rng(8)
    wave, edges = log_grid(400)
    flux, ivar, good, velocity = spectra(rng, wave, 120)
    good[:, 40:90] = False  # outside the IFU: nothing usable
    bands = bands_for(velocity)
    fast = band_integrals(wave, edges, flux, ivar, good, *bands, first_moment=first_moment)
    slow = dense_band_integrals(wave, edges, flux, ivar, good, *bands, first_moment=first_moment)
    assert fast[2][40:90].all() and not fast[2][:40].all()
    np.testing.assert_array_equal(fast[2], slow[2])
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-9)
    if first_moment:
        np.testing.assert_array_equal(np.isnan(fast[3]), np.isnan(slow[3]))


def test_sums_kept_in_reused_buffers_are_the_same():
    """With a Scratch, the running sums live in reused buffers; nothing changes.

    The extractor makes one BandSums per slab with the same buffer names; a
    second slab (other shape) reuses the first's memory.
    """
    from ifsrepr.extraction.scratch import Scratch

    rng = np.random.default_rng(8)
    scratch = Scratch()
    for n_channels, n_spaxels in ((400, 300), (250, 120), (400, 300)):
        wave, edges = log_grid(n_channels)
        flux, ivar, good, velocity = spectra(rng, wave, n_spaxels)
        flux[:, :7] = np.nan  # spaxels with nothing usable: not kept at all
        bands = bands_for(velocity)
        fresh = BandSums(wave, edges, flux, ivar, good, first_moment=True)
        reused = BandSums(
            wave, edges, flux, ivar, good, first_moment=True, scratch=scratch, scratch_prefix="t"
        )
        for a, b in zip(
            fresh.integrals(*bands, first_moment=True),
            reused.integrals(*bands, first_moment=True),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    held = scratch.nbytes
    assert held > 0
    BandSums(wave, edges, flux, ivar, good, scratch=scratch, scratch_prefix="t")
    assert scratch.nbytes == held  # the same buffers again, none added
