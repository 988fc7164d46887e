"""Tests of `ifsrepr.preprocess`: the model grid, the normalisation, their inverses."""

from __future__ import annotations

import json
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.wcs import WCS

import ifsrepr
from ifsrepr import LineStack
from ifsrepr.lines import resolve_lines
from ifsrepr.preprocess import (
    MissingLinesWarning,
    NotFittedError,
    PreprocessingError,
    Preprocessor,
    config_differences,
)

LINES = ["Hb-4862", "OIII-5008", "Ha-6564"]
FLUX_UNIT = "1e-17 erg/s/cm^2/spaxel"
SB_UNIT = u.Unit("1e-17 erg / (s cm2 arcsec2)")


def make_wcs(n: int, scale_arcsec: float, crpix: float | None = None) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [150.0, 2.0]
    centre = (n + 1) / 2 if crpix is None else crpix
    wcs.wcs.crpix = [centre, centre]
    wcs.wcs.cd = np.diag([-scale_arcsec, scale_arcsec]) / 3600
    wcs.pixel_shape = (n, n)
    return wcs


def gaussian_galaxy(
    *,
    n: int = 40,
    scale: float = 0.5,
    sigma: float = 3.0,
    amplitudes=(2.0, 5.0, 20.0),
    reff: float = 4.0,
    noise: float = 0.1,
) -> LineStack:
    """A smooth galaxy: surface brightness A exp(-r^2 / 2 sigma^2), sampled per spaxel.

    The surface brightness is exact at spaxel centres, so regridded values can
    be compared with the analytic profile at output pixel centres.
    """
    offsets = (np.arange(n) - (n - 1) / 2) * scale  # arcsec, centre between pixels if n even
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    profile = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    area = scale**2
    flux = np.stack([a * profile * area for a in amplitudes])
    ivar = np.full(flux.shape, 1 / (noise * area) ** 2)
    return LineStack(
        resolve_lines(LINES),
        flux,
        FLUX_UNIT,
        ivar,
        wcs=make_wcs(n, scale),
        meta={"plateifu": "0-0", "reff": reff},
    )


def analytic_sb(pre: Preprocessor, stack: LineStack, regridded: LineStack, sigma: float = 3.0):
    """The exact surface brightness at the centres of the output pixels."""
    size = pre.size
    y, x = np.mgrid[:size, :size]
    world = regridded.wcs.pixel_to_world_values(x, y)
    centre = stack.wcs.wcs.crval
    dx = (world[0] - centre[0]) * np.cos(np.deg2rad(centre[1])) * 3600
    dy = (world[1] - centre[1]) * 3600
    profile = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    return np.stack([a * profile for a in (2.0, 5.0, 20.0)])


@pytest.fixture(scope="module")
def maps():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))


# -- the grid ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "tolerance"),
    [
        (48, 0.01),  # 0.33" pixels: finer than the input (bilinear interpolation)
        (16, 0.01),  # 1" pixels: coarser (area-weighted mean over the output pixel)
    ],
)
def test_regrid_recovers_surface_brightness_of_smooth_galaxy(size, tolerance):
    stack = gaussian_galaxy()
    pre = Preprocessor(LINES, size=size, n_reff=2.0)
    regridded = pre.regrid(stack)
    assert regridded.shape == (3, size, size)
    assert regridded.unit == SB_UNIT
    expected = analytic_sb(pre, stack, regridded)
    good = ~regridded.mask
    assert good.mean() > 0.9  # +-8" lies inside the 20" x 20" input
    # Interpolation error, relative to each line's peak; measured 0.66 % (48 px)
    # and 0.67 % (16 px); 0.02 % for 32 px, where output and input pixels coincide.
    error = np.abs(regridded.flux - expected) / expected.max(axis=(1, 2), keepdims=True)
    assert error[good].max() < tolerance
    # The grid spans +-n_reff effective radii.
    assert regridded.meta["ifsrepr_grid"]["pixel_scale"] == pytest.approx(2 * 2.0 * 4.0 / size)


def test_regrid_uses_surface_brightness_so_pixel_scales_agree():
    """The same galaxy observed with 0.5" and 1" spaxels regrids to the same maps."""
    fine = gaussian_galaxy(n=40, scale=0.5)
    coarse = gaussian_galaxy(n=20, scale=1.0)
    pre = Preprocessor(LINES, size=16, n_reff=2.0)
    a, b = pre.regrid(fine), pre.regrid(coarse)
    good = ~a.mask & ~b.mask
    assert good.mean() > 0.8
    relative = np.abs(a.flux - b.flux)[good] / 20.0
    assert relative.max() < 0.02


def test_variance_is_propagated_with_squared_weights():
    # Input 1" pixels, output 0.5": output pixel centres fall on input pixel
    # centres, on edge midpoints and on corners, where bilinear weights are
    # (1), (1/2, 1/2) and (1/4 x 4): variance ratios 1, 1/2 and 1/4.
    stack = gaussian_galaxy(n=21, scale=1.0, reff=4.0)  # odd n: centre on a pixel centre
    pre = Preprocessor(LINES, size=33, n_reff=2.0625)  # 2*2.0625*4/33 = 0.5"
    regridded = pre.regrid(stack)
    var_in = 1 / (stack.ivar[0, 0, 0] / 1.0**2)  # input pixel area is 1 arcsec^2
    var_out = 1 / regridded.ivar[0]
    c = 16  # the output centre, on the input centre pixel
    assert var_out[c, c] == pytest.approx(var_in, rel=1e-5)
    assert var_out[c, c + 1] == pytest.approx(var_in / 2, rel=1e-5)
    assert var_out[c + 1, c + 1] == pytest.approx(var_in / 4, rel=1e-5)


def test_mask_grows_only_where_masked_pixels_contribute():
    stack = gaussian_galaxy(n=21, scale=1.0)
    stack.mask[:, 10, 10] = True  # one bad spaxel at the centre
    pre = Preprocessor(LINES, size=33, n_reff=2.0625)
    regridded = pre.regrid(stack)
    masked = np.argwhere(regridded.mask[0])
    # Output pixels within one input pixel (2 output pixels) of the bad one.
    assert {tuple(p) for p in masked} == {(y, x) for y in range(15, 18) for x in range(15, 18)}
    assert np.all(regridded.ivar[regridded.mask] == 0)
    assert np.all(regridded.flux[regridded.mask] == 0)


def test_pixels_outside_the_ifu_are_masked():
    stack = gaussian_galaxy(n=20, scale=0.5, reff=4.0)  # a 10" field
    pre = Preprocessor(LINES, size=32, n_reff=2.0)  # a 16" grid
    regridded = pre.regrid(stack)
    assert regridded.mask[:, 0, :].all() and regridded.mask[:, :, -1].all()
    assert not regridded.mask[:, 16, 16].any()
    # Output pixels coincide with input ones here: exactly the 20 x 20 footprint.
    assert (~regridded.mask[0]).sum() == 20 * 20
    # With 0.53" pixels, only output pixels wholly inside the 10" field survive.
    regridded = Preprocessor(LINES, size=30, n_reff=2.0).regrid(stack)
    half_widths = np.abs(np.arange(30) - 14.5) * 16 / 30 + 0.5 * 16 / 30
    inside_1d = (half_widths <= 5 + 1e-9).sum()
    assert (~regridded.mask[0]).sum() == inside_1d**2


def test_native_grid_on_real_maps_is_a_pure_crop(maps):
    pre = Preprocessor(LINES, grid="native", size=64, normalisation="none")
    regridded = pre.regrid(maps)
    area = np.prod([s.to_value(u.arcsec) for s in maps.wcs.proj_plane_pixel_scales()])
    i = maps.index("Ha-6564")
    # The IFU centre (0-based pixel 21 of 42) lands on output pixel 31 of 64.
    window = (slice(10, 52), slice(10, 52))
    bad = maps.mask[i] | ~(maps.ivar[i] > 0)
    np.testing.assert_array_equal(regridded.mask[2][window], bad)
    np.testing.assert_allclose(
        regridded.flux[2][window] * area, np.where(bad, 0, maps.flux[i]), rtol=1e-6
    )
    np.testing.assert_allclose(
        regridded.ivar[2][window] / area**2, np.where(bad, 0, maps.ivar[i]), rtol=1e-5
    )
    assert regridded.mask[2][:10].all()  # padding
    centre = maps.wcs.pixel_to_world_values(21, 21)
    np.testing.assert_allclose(regridded.wcs.pixel_to_world_values(31, 31), centre)


def test_regrid_needs_reff_and_wcs():
    stack = gaussian_galaxy()
    stack.meta.pop("reff")
    with pytest.raises(PreprocessingError, match=r"meta\['reff'\].*nsa_elpetro_th50_r"):
        Preprocessor(LINES).regrid(stack)
    # The native grid does not need it.
    assert Preprocessor(LINES, grid="native", size=8).regrid(stack).shape == (3, 8, 8)
    no_wcs = LineStack(stack.lines, stack.flux, stack.unit, meta={"reff": 3.0})
    with pytest.raises(PreprocessingError, match="no celestial WCS"):
        Preprocessor(LINES).regrid(no_wcs)


def test_stack_already_on_grid_is_not_resampled_again():
    stack = gaussian_galaxy()
    pre = Preprocessor(LINES, size=24)
    once = pre.regrid(stack)
    assert pre.regrid(once) is once


# -- missing lines -----------------------------------------------------------------------


def test_missing_lines_become_masked_planes_with_one_warning(maps):
    pre = Preprocessor("manga19", size=16)
    with pytest.warns(MissingLinesWarning, match="NI-5199, HeI-7067, ArIII-7137, ArIII-7753"):
        pre.fit([maps])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per set of lines: not again
        x, w = pre.transform(maps)
    missing = [pre.line_names.index(n) for n in ("NI-5199", "HeI-7067", "ArIII-7137")]
    assert np.all(w[missing] == 0) and np.all(x[missing] == 0)
    present = pre.line_names.index("Ha-6564")
    assert (w[present] > 0).mean() > 0.3
    # A line never seen in fit still gets a usable (typical) scale.
    assert np.all(np.isfinite(pre.scales_)) and np.all(pre.scales_ > 0)
    assert pre.n_good_[missing].sum() == 0


# -- normalisation -----------------------------------------------------------------------


def test_transform_then_inverse_recovers_the_regridded_stack(maps):
    pre = Preprocessor(LINES, size=32).fit([maps])
    x, w = pre.transform(maps)
    assert x.dtype == w.dtype == np.float32
    assert x.shape == w.shape == (3, 32, 32)
    back = pre.inverse_transform(x, like=maps, w=w)
    regridded = pre.regrid(maps)
    np.testing.assert_array_equal(back.mask, regridded.mask)
    good = ~regridded.mask
    np.testing.assert_allclose(back.flux[good], regridded.flux[good], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(back.ivar[good], regridded.ivar[good], rtol=2e-5)
    assert back.unit == regridded.unit
    assert back.wcs.to_header() == regridded.wcs.to_header()
    assert back.meta["plateifu"] == "7815-3702"


def test_inverse_transform_from_grid_info_and_torch(maps):
    torch = pytest.importorskip("torch")
    pre = Preprocessor(LINES, size=32).fit([maps])
    x, _ = pre.transform(maps)
    info = json.loads(json.dumps(pre.grid_info(maps)))  # as stored in a dataset
    back = pre.inverse_transform(torch.from_numpy(x), like=info)
    assert back.wcs.to_header() == pre.regrid(maps).wcs.to_header()
    assert back.unit == SB_UNIT
    assert np.all(back.ivar == 0) and not back.mask.any()  # no w: ivar unknown


def test_asinh_is_exactly_invertible_and_weights_follow_the_derivative():
    pre = Preprocessor(LINES, size=8)
    pre.partial_fit_arrays(np.ones((1, 3, 8, 8)), np.zeros((1, 3, 8, 8), bool), SB_UNIT)
    rng = np.random.default_rng(0)
    flux = rng.normal(0, 50, (3, 8, 8)) * np.logspace(-2, 3, 64).reshape(8, 8)
    ivar = rng.uniform(0.1, 10, flux.shape)
    mask = rng.random(flux.shape) < 0.1
    x, w = pre.normalise(flux, ivar, mask)
    back, ivar_back = pre.denormalise(x, w)
    good = ~mask
    np.testing.assert_allclose(back[good], flux[good], rtol=1e-5)
    s = pre.scales_[:, None, None] * np.ones_like(flux)
    np.testing.assert_allclose(w[good], (ivar * (s**2 + flux**2))[good], rtol=1e-5)
    np.testing.assert_allclose(ivar_back[good], ivar[good], rtol=1e-4)
    # Numerical derivative: var_x = var_f (dx/df)^2.
    step = 1e-3 * s
    derivative = (np.arcsinh((flux + step) / s) - np.arcsinh((flux - step) / s)) / (2 * step)
    np.testing.assert_allclose(w[good], (ivar / derivative**2)[good], rtol=1e-4)


def test_weights_are_zero_where_masked_and_nans_become_zero():
    pre = Preprocessor(LINES, size=4, normalisation="asinh")
    pre.partial_fit_arrays(np.ones((3, 4, 4)), np.zeros((3, 4, 4), bool), SB_UNIT)
    flux = np.ones((3, 4, 4))
    ivar = np.ones((3, 4, 4))
    mask = np.zeros((3, 4, 4), bool)
    mask[0, 0, 0] = True
    flux[1, 1, 1] = np.nan
    ivar[2, 2, 2] = np.inf
    x, w = pre.normalise(flux, ivar, mask)
    for index in [(0, 0, 0), (1, 1, 1), (2, 2, 2)]:
        assert x[index] == 0 and w[index] == 0
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(w))
    assert (w > 0).sum() == 3 * 16 - 3


def test_scales_are_the_median_absolute_good_value(maps):
    pre = Preprocessor(LINES, size=32).fit([maps])
    regridded = pre.regrid(maps)
    for i in range(3):
        good = ~regridded.mask[i]
        expected = np.median(np.abs(regridded.flux[i][good]))
        assert pre.scales_[i] == pytest.approx(expected, rel=0.005)
    assert pre.unit_ == SB_UNIT
    # partial_fit_arrays on the regridded arrays learns the same scales.
    again = Preprocessor(LINES, size=32).partial_fit_arrays(
        regridded.flux, regridded.mask, regridded.unit
    )
    np.testing.assert_array_equal(again.scales_, pre.scales_)


def test_transform_converts_units_to_the_fitted_unit():
    stack = gaussian_galaxy()
    pre = Preprocessor(LINES, size=16).fit([stack])
    cgs = LineStack(
        stack.lines,
        stack.flux * 1e-17,
        "erg/(s cm2 spaxel)",
        stack.ivar * 1e34,
        wcs=stack.wcs,
        meta=stack.meta,
    )
    x1, w1 = pre.transform(stack)
    x2, w2 = pre.transform(cgs)
    np.testing.assert_allclose(x1, x2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w1, w2, rtol=1e-4)


def test_normalisation_none():
    stack = gaussian_galaxy()
    pre = Preprocessor(LINES, size=16, normalisation="none")
    x, w = pre.transform(stack)  # nothing to learn: no fit needed
    regridded = pre.regrid(stack)
    np.testing.assert_array_equal(x, regridded.flux)
    np.testing.assert_array_equal(w, regridded.ivar)


# -- parameters and serialisation --------------------------------------------------------


def test_parameters_are_validated_and_fit_is_required():
    stack = gaussian_galaxy()
    with pytest.raises(PreprocessingError, match="grid must be one of"):
        Preprocessor(LINES, grid="hex").fit([stack])
    with pytest.raises(PreprocessingError, match="size"):
        Preprocessor(LINES, size=1.5).fit([stack])
    with pytest.raises(PreprocessingError, match="n_reff"):
        Preprocessor(LINES, n_reff=-1).fit([stack])
    with pytest.raises(PreprocessingError, match="unknown emission line"):
        Preprocessor(["Xx-1234"]).fit([stack])
    with pytest.raises(PreprocessingError, match="at least one stack"):
        Preprocessor(LINES).fit([])
    with pytest.raises(NotFittedError, match="fit"):
        Preprocessor(LINES).transform(stack)
    assert isinstance(NotFittedError("x"), ifsrepr.IFSReprError)


def test_fit_returns_self_and_learned_state_has_trailing_underscore():
    pre = Preprocessor(LINES, size=16)
    assert pre.fit([gaussian_galaxy()]) is pre
    assert pre.n_stacks_seen_ == 1
    assert repr(pre).startswith("Preprocessor(lines=['Hb-4862'")


def test_to_dict_from_dict_round_trip(maps):
    pre = Preprocessor(LINES, size=24, n_reff=1.5).fit([maps])
    config = json.loads(json.dumps(pre.to_dict()))  # JSON-serialisable
    assert config["params"]["lines"] == LINES
    assert config["lines"][2] == {"name": "Ha-6564", "rest_wavelength": pytest.approx(6564.608)}
    again = Preprocessor.from_dict(config)
    np.testing.assert_array_equal(again.scales_, pre.scales_)
    assert again.unit_ == pre.unit_
    assert again.params_dict() == pre.params_dict()
    for a, b in zip(again.transform(maps), pre.transform(maps), strict=True):
        np.testing.assert_array_equal(a, b)
    assert Preprocessor.from_dict(json.dumps(config)).differences(pre) == []
    # The DAP lines keep their side-bands.
    assert again.emission_lines[0].blueside is not None


def test_from_dict_keeps_custom_lines():
    custom = ifsrepr.EmissionLine("Xx-5000", 5000.0 * u.AA)
    pre = Preprocessor([custom, "Ha-6564"], size=8, normalisation="none")
    again = Preprocessor.from_dict(pre.to_dict())
    assert again.line_names == ["Xx-5000", "Ha-6564"]
    with pytest.raises(PreprocessingError, match="not a Preprocessor"):
        Preprocessor.from_dict({"format": "something else"})


def test_differences_are_readable():
    a = Preprocessor("manga19", size=64)
    b = Preprocessor(LINES, size=32, grid="native")
    differences = a.differences(b)
    assert "size: 64 != 32" in differences
    assert "grid: 'reff' != 'native'" in differences
    [lines] = [d for d in differences if d.startswith("lines:")]
    assert "Heta-3836" in lines and "only in the first" in lines
    assert config_differences({"a": {"b": 1}}, {"a": {"b": 2}}, labels=("old", "new")) == [
        "a.b: 1 in old, 2 in new"
    ]
    assert config_differences({"n": 2}, {"n": 2.0}) == []
