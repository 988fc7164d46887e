"""Labelled anomalies injected into mock galaxies.

Each class is drawn with its own parameters (recorded as JSON in the truth
table's ``anomaly_params``) and applied in two steps: `adjust_params`, when
drawn, changes the galaxy's own parameters (for anomalies that replace the
galaxy; the truth table holds the changed values) and `apply`, after the
model is built, adds a component or an artefact. The same
model then feeds the cube, the MAPS file and the line stack, so an anomaly
looks the same in every product.

``broad_line_agn``
    A type-1 nucleus: a point source (the PSF) with the continuum of a real
    broad-line MaNGA spectrum (multicomp 2 or 3 of the shipped real spectra,
    broad lines bridged out), 0.3-1.5x the host's central continuum after
    the PSF, plus broad Balmer lines with FWHM 2000-8000 km/s (a Gaussian,
    velocity offset +-300 km/s) and EW(Halpha, broad) 150-450 A against
    that point-source continuum (typical of SDSS broad-line AGN, e.g.
    Stern & Laor 2012), broad Halpha/Hbeta = 3.06 (Dong et al. 2008). The
    galaxy also gets a Seyfert narrow-line region if it had none.
``offnuclear_knot``
    A compact (0.3-0.6" sigma) star-forming clump 0.5-1.2 Re from the centre
    (inside the bundle), with a low abundance (12 + log(O/H) = 8.0-8.3), so
    high [OIII]/Hbeta and low [NII]/Halpha, little dust, Halpha 5-20x the
    galaxy's central Halpha after the PSF, and a velocity 80-250 km/s off the
    local rotation: a gas-rich satellite or a giant HII complex.
``blueberry``
    The whole galaxy replaced by a compact (Re 0.6-1.2") metal-poor starburst
    in the style of the "blueberry" galaxies of Yang et al. (2017, ApJ 847,
    38): no bulge, 12 + log(O/H) = 7.8-8.1 without a gradient, an extra
    0.1-0.25 dex of [OIII] and [NeIII] and 0.2-0.4 dex less of the
    low-ionisation lines (a high ionisation parameter), He II/Hbeta = 0.01-0.02,
    EW(Halpha) 600-1500 A, a continuum 5-10x fainter than a normal galaxy's,
    slow rotation (20-50 km/s) and 30-50 km/s dispersion.
``counter_rotating``
    Gas that counter-rotates against the stars (as after the accretion of
    gas with opposite angular momentum; Chen et al. 2016, Nat. Comm. 7, 13269):
    every emission component's velocity field is reversed, the stars'
    unchanged. Line *fluxes* do not change, so this class is only visible in
    a cube or in the MAPS velocity maps, not in a flux-only line stack.
``dead_fibre``
    A fibre that delivered 0-30% of its light while the pipeline did not
    flag it: the recorded light falls in a 2"-wide patch (Gaussian sigma
    0.7") at one fibre position of the bundle, at all wavelengths. MASK and
    DRP3QUAL are left clean, as for a missed failure.
``cosmic_ray``
    A cosmic-ray track that escaped rejection: 4-12 spaxels along a straight
    line, two adjacent channels at the observed wavelength of a strong line
    (Halpha, [NII]6585, [OIII]5008, Hbeta or [SII]6718), 5-50 x 1e-17
    erg/s/cm^2/A per voxel, unflagged. In line maps it adds its integrated
    flux to that line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ..extinction import attenuation
from .instrument import fibre_positions, footprint, pixel_edges, wavelength
from .model import (
    ContinuumComponent,
    CosmicRay,
    EmissionComponent,
    GalaxyModel,
    gaussian_blob,
)
from .nebular import (
    broad_balmer_ratios,
    draw_agn_ratios,
    line_index,
    rest_wavelengths,
    star_forming_ratios,
)
from .params import GalaxyParams
from .structure import DiscGeometry, arctan_velocity
from .templates import load_library

__all__ = ["ANOMALY_CLASSES", "draw_anomaly", "adjust_params", "apply"]

#: The anomaly classes, as written in the truth table's ``anomaly`` column.
ANOMALY_CLASSES = (
    "broad_line_agn",
    "offnuclear_knot",
    "blueberry",
    "counter_rotating",
    "dead_fibre",
    "cosmic_ray",
)
C_KMS = 299792.458
_HALPHA = line_index("Ha-6564")


def _draw_broad_line_agn(params: GalaxyParams, rng: np.random.Generator) -> dict[str, Any]:
    library = load_library()
    return {
        "fwhm": float(rng.uniform(2000.0, 8000.0)),
        "velocity": float(rng.uniform(-300.0, 300.0)),
        "continuum_ratio": float(rng.uniform(0.3, 1.5)),
        "ew_halpha": float(rng.uniform(150.0, 450.0)),
        "template": library.names[int(rng.choice(library.indices("agn")))],
        "nlr_ratios": draw_agn_ratios("seyfert", rng),
        "nlr_strength": float(10 ** rng.uniform(0.0, 1.0)),
    }


def _inside_position(
    params: GalaxyParams, rng: np.random.Generator, low: float, high: float, margin: float
) -> tuple[float, float]:
    """A random (east, north) offset at low-high Re in the disc plane, inside the bundle."""
    radius_limit = footprint(params.ifudesign).radius - margin
    for _ in range(200):
        radius = rng.uniform(low, high) * params.reff
        angle = rng.uniform(0, 2 * np.pi)
        major, minor = radius * np.cos(angle), radius * np.sin(angle) * (1 - params.ell)
        theta = np.radians(params.pa)
        east = major * np.sin(theta) - minor * np.cos(theta)
        north = major * np.cos(theta) + minor * np.sin(theta)
        hexagonal = max(abs(north) * 2 / np.sqrt(3), abs(east) + abs(north) / np.sqrt(3))
        if hexagonal < radius_limit and np.hypot(east, north) > 2.0:
            return float(east), float(north)
    # Small bundles: fall back to 2.5" along a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    return float(2.5 * np.cos(angle)), float(2.5 * np.sin(angle))


def _draw_knot(params: GalaxyParams, rng: np.random.Generator) -> dict[str, Any]:
    east, north = _inside_position(params, rng, 0.5, 1.2, margin=2.0)
    return {
        "east": east,
        "north": north,
        "size": float(rng.uniform(0.3, 0.6)),
        "logoh": float(rng.uniform(8.0, 8.3)),
        "brightness": float(10 ** rng.uniform(np.log10(5.0), np.log10(20.0))),
        "velocity_offset": float(rng.choice([-1, 1]) * rng.uniform(80.0, 250.0)),
        "sigma": float(rng.uniform(20.0, 40.0)),
        "ebv": float(rng.uniform(0.0, 0.1)),
    }


def _draw_blueberry(params: GalaxyParams, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "reff": float(rng.uniform(0.6, 1.2)),
        "logoh": float(rng.uniform(7.8, 8.1)),
        "high_ionisation": float(rng.uniform(0.1, 0.25)),
        "low_ionisation": float(rng.uniform(0.2, 0.4)),
        "heii": float(rng.uniform(0.01, 0.02)),
        "ew_halpha": float(rng.uniform(600.0, 1500.0)),
        "continuum_scale": float(rng.uniform(0.1, 0.2)),
        "v_max": float(rng.uniform(20.0, 50.0)),
        "sigma": float(rng.uniform(30.0, 50.0)),
        "ebv": float(rng.uniform(0.0, 0.1)),
    }


def _draw_counter_rotating(params: GalaxyParams, rng: np.random.Generator) -> dict[str, Any]:
    return {}


def _draw_dead_fibre(params: GalaxyParams, rng: np.random.Generator) -> dict[str, Any]:
    positions = fibre_positions(params.ifudesign)
    # Avoid the outermost ring so the hole sits inside the data.
    radius = np.hypot(positions[:, 0], positions[:, 1])
    inner = positions[radius < radius.max() - 1.0]
    east, north = inner[int(rng.integers(len(inner)))]
    return {"east": float(east), "north": float(north), "throughput": float(rng.uniform(0.0, 0.3))}


def _draw_cosmic_ray(params: GalaxyParams, rng: np.random.Generator) -> dict[str, Any]:
    foot = footprint(params.ifudesign)
    covered = np.argwhere(foot.covered & ~foot.lowcov)
    y0, x0 = covered[int(rng.integers(len(covered)))]
    length = int(rng.integers(4, 13))
    angle = float(rng.uniform(0, np.pi))
    steps = np.arange(length)
    ys = np.round(y0 + steps * np.sin(angle)).astype(int)
    xs = np.round(x0 + steps * np.cos(angle)).astype(int)
    inside = (ys >= 0) & (ys < foot.n) & (xs >= 0) & (xs < foot.n)
    ys, xs = ys[inside], xs[inside]
    keep = foot.covered[ys, xs]
    line = str(rng.choice(["Ha-6564", "NII-6585", "OIII-5008", "Hb-4862", "SII-6718"]))
    return {
        "ys": [int(v) for v in ys[keep]],
        "xs": [int(v) for v in xs[keep]],
        "line": line,
        "amplitude": float(rng.uniform(5.0, 50.0)),
    }


_DRAWERS: dict[str, Callable[[GalaxyParams, np.random.Generator], dict[str, Any]]] = {
    "broad_line_agn": _draw_broad_line_agn,
    "offnuclear_knot": _draw_knot,
    "blueberry": _draw_blueberry,
    "counter_rotating": _draw_counter_rotating,
    "dead_fibre": _draw_dead_fibre,
    "cosmic_ray": _draw_cosmic_ray,
}


def draw_anomaly(kind: str, params: GalaxyParams, rng: np.random.Generator) -> GalaxyParams:
    """Return ``params`` labelled with anomaly ``kind``, its drawn parameters, and adjusted.

    The result is what the truth table records: for anomalies that change the
    galaxy itself (see `adjust_params`) it already holds the changed values.

    Raises
    ------
    ValueError
        For an unknown class.
    """
    if kind == "none":
        return dataclasses.replace(params, anomaly="none", anomaly_params={})
    if kind not in _DRAWERS:
        raise ValueError(f"unknown anomaly class {kind!r}; classes: {', '.join(ANOMALY_CLASSES)}")
    labelled = dataclasses.replace(params, anomaly=kind, anomaly_params=_DRAWERS[kind](params, rng))
    return adjust_params(labelled)


def adjust_params(params: GalaxyParams) -> GalaxyParams:
    """Change the galaxy itself for anomalies that replace it (``blueberry``, ``broad_line_agn``).

    Called once, by `draw_anomaly`; not idempotent (the blueberry's continuum
    is scaled down).
    """
    p = params.anomaly_params
    if params.anomaly == "blueberry":
        return dataclasses.replace(
            params,
            galaxy_type="star_forming",
            reff=p["reff"],
            disc_reff=p["reff"],
            bulge_fraction=0.0,
            central_continuum=params.central_continuum * p["continuum_scale"],
            disc_young_fraction=1.0,
            ew_halpha_sf=p["ew_halpha"],
            ew_gradient=0.0,
            logoh_centre=p["logoh"],
            logoh_gradient=0.0,
            clumpiness=0.1,
            ebv_gas_centre=p["ebv"],
            v_max=p["v_max"],
            r_turn=max(0.3, 0.3 * p["reff"]),
            sigma_hii=p["sigma"],
            agn_type="none",
            agn_strength=0.0,
            agn_ratios={},
        )
    if params.anomaly == "broad_line_agn" and params.agn_type != "seyfert":
        return dataclasses.replace(
            params,
            agn_type="seyfert",
            agn_strength=p["nlr_strength"],
            agn_ratios=p["nlr_ratios"],
        )
    return params


def _apply_blueberry(model: GalaxyModel) -> None:
    p = model.params.anomaly_params
    hii = next(c for c in model.emission if c.name == "hii")
    i = line_index
    halpha = hii.flux[_HALPHA]
    # Re-derive the lines from the abundance with a higher ionisation parameter.
    ratios = star_forming_ratios(np.full(halpha.shape, p["logoh"]), heii=p["heii"])
    boost, cut = 10 ** p["high_ionisation"], 10 ** (-p["low_ionisation"])
    for name in ("OIII-5008", "OIII-4960", "NeIII-3869", "NeIII-3968", "ArIII-7137", "ArIII-7753"):
        ratios[i(name)] *= boost
    for name in ("OII-3727", "OII-3729", "NII-6549", "NII-6585", "SII-6718", "SII-6732",
                 "OI-6302", "OI-6365", "NI-5199", "NI-5201"):  # fmt: skip
        ratios[i(name)] *= cut
    transmission = attenuation(rest_wavelengths()[:, None, None], p["ebv"])
    intrinsic = halpha / transmission[_HALPHA]
    hii.flux = ratios * intrinsic[None] * transmission


def _apply_broad_line_agn(model: GalaxyModel) -> None:
    p = model.params.anomaly_params
    library = load_library()
    n, centre = model.n, model.n // 2
    spectrum = library.templates[library.names.index(p["template"])]
    host = sum(c.amplitude for c in model.continuum)
    sigma_r = model.psf_sigma_at(6176.58)
    host_centre = model.convolve(host, sigma_r)[centre, centre]
    point = gaussian_blob(n, (0.0, 0.0), 0.0)
    point_centre = model.convolve(point, sigma_r)[centre, centre]
    amplitude = p["continuum_ratio"] * host_centre / point_centre * point
    model.continuum.append(ContinuumComponent("agn", amplitude, spectrum, None))
    grid = library.rest_wavelength
    near_ha = np.abs(grid - 6564.61) < 20.0
    broad_halpha = p["ew_halpha"] * amplitude * float(spectrum[near_ha].mean())
    flux = broad_balmer_ratios()[:, None, None] * broad_halpha[None]
    sigma = np.full((n, n), p["fwhm"] / 2.3548200450309493)
    velocity = np.full((n, n), p["velocity"])
    model.emission.append(EmissionComponent("blr", flux, velocity, sigma))


def _apply_knot(model: GalaxyModel) -> None:
    p = model.params.anomaly_params
    params = model.params
    n, centre = model.n, model.n // 2
    blob = gaussian_blob(n, (p["east"], p["north"]), p["size"])
    sigma_ha = model.psf_sigma_at(6564.61 * (1 + params.z))
    central = sum(c.flux[_HALPHA] for c in model.emission)
    # Against the host's central Halpha, or 10 A of its central continuum if that is
    # brighter (a retired host has almost no Halpha of its own).
    central_ha = max(
        model.convolve(central, sigma_ha)[centre, centre], 10.0 * params.central_continuum
    )
    peak = model.convolve(blob, sigma_ha).max()
    halpha = p["brightness"] * central_ha / peak * blob
    transmission = attenuation(rest_wavelengths()[:, None, None], p["ebv"])
    ratios = star_forming_ratios(np.full((n, n), p["logoh"]))
    flux = ratios * (halpha / transmission[_HALPHA])[None] * transmission
    geometry = DiscGeometry(n, params.pa, 1 - params.ell, params.inclination)
    rotation = arctan_velocity(geometry, params.v_max, params.r_turn, params.rotation_sense)
    velocity = rotation + p["velocity_offset"]
    model.emission.append(EmissionComponent("knot", flux, velocity, np.full((n, n), p["sigma"])))


def _apply_counter_rotating(model: GalaxyModel) -> None:
    for component in model.emission:
        component.velocity = -component.velocity


def _apply_dead_fibre(model: GalaxyModel) -> None:
    p = model.params.anomaly_params
    hole = gaussian_blob(model.n, (p["east"], p["north"]), 0.7)
    hole = hole / hole.max()
    model.throughput = model.throughput * (1 - (1 - p["throughput"]) * hole)


def _apply_cosmic_ray(model: GalaxyModel) -> None:
    p = model.params.anomaly_params
    line = line_index(p["line"])
    observed = rest_wavelengths()[line] * (1 + model.z)
    channel = int(np.searchsorted(pixel_edges(), observed) - 1)
    ys = np.repeat(np.asarray(p["ys"], dtype=int), 2)
    xs = np.repeat(np.asarray(p["xs"], dtype=int), 2)
    channels = np.tile([channel, channel + 1], len(p["ys"]))
    amplitude = np.full(channels.size, p["amplitude"])
    if channels.size and channels.max() < wavelength().size:
        model.cosmic_rays.append(CosmicRay(channels, ys, xs, amplitude, line))


_APPLIERS: dict[str, Callable[[GalaxyModel], None]] = {
    "broad_line_agn": _apply_broad_line_agn,
    "offnuclear_knot": _apply_knot,
    "blueberry": _apply_blueberry,
    "counter_rotating": _apply_counter_rotating,
    "dead_fibre": _apply_dead_fibre,
    "cosmic_ray": _apply_cosmic_ray,
}


def apply(model: GalaxyModel) -> GalaxyModel:
    """Add the model's anomaly (from ``model.params.anomaly``) to the model, in place."""
    kind = model.params.anomaly
    if kind != "none":
        _APPLIERS[kind](model)
    return model
