"""Compare mock MaNGA line maps with the real DAP MAPS file of 7815-3702.

Writes ``docs/_static/mock_vs_real.png`` and prints the numbers quoted in
``docs/mock.rst``. Three data sets, all read back through ``ifsrepr.read``:

* **real**: the bundled DAP MAPS file of 7815-3702 (DR15 layout, 42x42);
* **twin**: a mock galaxy built on 7815-3702's own catalogue row (same
  position, redshift, shape, size and 37-fibre bundle), star-forming, with
  the bulge fraction, abundance, dust and Halpha equivalent width read off
  the real maps (`TWIN`); everything else (noise, PSF, clumps, continuum
  level...) drawn as for any mock galaxy. It tests the physics and the
  instrument given the right inputs;
* **population**: a mock survey of ``--n`` galaxies drawn at random from
  the catalogue (all types, all bundle sizes). It tests the priors.

Usage::

    python docs/scripts/compare_mock_to_real.py [--n 60] [--seed 2024] [--out PNG]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ifsrepr  # noqa: E402
from ifsrepr.mock import Population, make_survey, write_galaxy  # noqa: E402
from ifsrepr.mock.anomalies import draw_anomaly  # noqa: E402
from ifsrepr.mock.catalog import galaxy_at, load_catalogue  # noqa: E402
from ifsrepr.mock.params import _disc_reff, draw_params  # noqa: E402
from ifsrepr.mock.survey import galaxy_rng  # noqa: E402

LINES = ("Hb-4862", "OIII-5008", "Ha-6564", "NII-6585")
#: The twin's parameters read off the real maps: a disc-dominated star-forming
#: galaxy (BPT: all spaxels on the metal-rich end of the star-forming sequence,
#: log [NII]/Halpha = -0.35 => 12 + log(O/H) ~ 8.8 with Curti et al. 2017),
#: median Halpha/Hbeta = 3.69 => E(B-V) = 2.5 / 1.07 log10(3.69 / 2.86) = 0.26,
#: central continuum 1.6e-17 erg/s/cm^2/A per spaxel (SPX_MFLUX, g band; ~1.7 in r),
#: central Halpha 63e-17 erg/s/cm^2 per spaxel => EW ~ 70 A at the centre, falling outward.
TWIN = {
    "bulge_fraction": 0.1,
    "central_continuum": 1.7,
    "logoh_centre": 8.82,
    "logoh_gradient": -0.05,
    "ebv_gas_centre": 0.3,
    "ew_halpha_sf": 45.0,
    "ew_gradient": -0.4,
}
SPAXEL_AREA = 0.25  # arcsec^2


def measurements(stacks: list[ifsrepr.LineStack]) -> dict[str, np.ndarray]:
    """Per-spaxel Halpha surface brightness, S/N and BPT coordinates of some line stacks."""
    out: dict[str, list[np.ndarray]] = {"sb": [], "snr": [], "n2": [], "o3": []}
    for stack in stacks:
        flux = {name: stack.flux[stack.index(name)] for name in LINES}
        snr = {name: flux[name] * np.sqrt(stack.ivar[stack.index(name)]) for name in LINES}
        good = ~stack.mask[stack.index("Ha-6564")]
        out["snr"].append(snr["Ha-6564"][good])
        detected = good & (snr["Ha-6564"] > 3)
        out["sb"].append(np.log10(flux["Ha-6564"][detected] / SPAXEL_AREA))
        bpt = good & np.all([snr[name] > 3 for name in LINES], axis=0)
        out["n2"].append(np.log10(flux["NII-6585"][bpt] / flux["Ha-6564"][bpt]))
        out["o3"].append(np.log10(flux["OIII-5008"][bpt] / flux["Hb-4862"][bpt]))
    return {key: np.concatenate(value) for key, value in out.items()}


def bpt_classes(n2: np.ndarray, o3: np.ndarray) -> dict[str, float]:
    """Fractions below Kauffmann et al. (2003), between it and Kewley et al. (2001), above."""
    kauffmann = np.where(n2 < 0.05, 0.61 / (n2 - 0.05) + 1.3, -np.inf)
    kewley = np.where(n2 < 0.47, 0.61 / (n2 - 0.47) + 1.19, -np.inf)
    sf = o3 < kauffmann
    agn = o3 > kewley
    n = max(n2.size, 1)
    return {
        "star-forming": sf.sum() / n,
        "composite": (~sf & ~agn).sum() / n,
        "AGN/LI(N)ER": agn.sum() / n,
    }


def summary(name: str, m: dict[str, np.ndarray]) -> str:
    """One line of percentiles and BPT fractions."""
    classes = bpt_classes(m["n2"], m["o3"])
    sb = np.percentile(m["sb"], [16, 50, 84])
    snr = np.percentile(m["snr"], [16, 50, 84])
    fractions = ", ".join(f"{key} {value:.0%}" for key, value in classes.items())
    return (
        f"{name:<11s} spaxels {m['snr'].size:6d} | log SB(Halpha) 16/50/84% = "
        f"{sb[0]:.2f}/{sb[1]:.2f}/{sb[2]:.2f} | S/N(Halpha) 16/50/84% = "
        f"{snr[0]:.1f}/{snr[1]:.1f}/{snr[2]:.1f} | BPT ({m['n2'].size} spaxels): {fractions}"
    )


def make_twin(outdir: Path, seed: int) -> ifsrepr.LineStack:
    """Write and read back the MAPS of the mock twin of 7815-3702."""
    table = load_catalogue()
    index = int(np.flatnonzero((table["plate"] == 7815) & (table["ifudesign"] == 3702))[0])
    rng = galaxy_rng(seed, 0, "params")
    params = draw_params(
        galaxy_at(index),
        rng,
        seed=seed,
        population=Population(star_forming=1.0, seyfert=0, liner=0),
    )
    # Match what the real maps show about this galaxy; everything else stays random.
    params = dataclasses.replace(draw_anomaly("none", params, rng), **TWIN)
    # The disc scale depends on the bulge fraction: solve it again.
    disc_reff = _disc_reff(params.reff, params.bulge_fraction, params.bulge_reff / params.disc_reff,
                           params.bulge_sersic_n)  # fmt: skip
    ratio = params.bulge_reff / params.disc_reff
    params = dataclasses.replace(params, disc_reff=disc_reff, bulge_reff=ratio * disc_reff)
    files = write_galaxy(params, outdir, ["maps"], overwrite=True)
    return ifsrepr.read(outdir / files["maps"])


def main() -> None:
    """Make the figure and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60, help="galaxies in the mock population")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--out", default=str(Path(__file__).parents[1] / "_static" / "mock_vs_real.png")
    )
    args = parser.parse_args()

    real = ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        twin = make_twin(tmp / "twin", args.seed)
        truth = make_survey(tmp / "population", args.n, args.seed, products=["maps"], n_jobs=2)
        population = [ifsrepr.read(tmp / "population" / name) for name in truth["maps_file"]]
    kinds = list(truth["galaxy_type"])
    star_forming = [s for s, k in zip(population, kinds, strict=True) if k == "star_forming"]

    sets = {
        "real": measurements([real]),
        "twin": measurements([twin]),
        "mock (all)": measurements(population),
        "mock (SF)": measurements(star_forming),
    }
    for name, m in sets.items():
        print(summary(name, m))

    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5))
    for ax, stack, title in ((axes[0, 0], real, "real 7815-3702"), (axes[0, 1], twin, "mock twin")):
        i = stack.index("Ha-6564")
        image = np.where(
            stack.mask[i], np.nan, np.log10(np.clip(stack.flux[i], 1e-2, None) / SPAXEL_AREA)
        )
        shown = ax.imshow(image, origin="lower", vmin=0, vmax=2.7, cmap="magma")
        ax.set_title(f"{title}: log Halpha SB")
        fig.colorbar(shown, ax=ax, label="log 1e-17 erg/s/cm$^2$/arcsec$^2$")

    ax = axes[0, 2]
    pop = sets["mock (all)"]
    ax.hexbin(pop["n2"], pop["o3"], gridsize=60, extent=(-2, 0.6, -1.3, 1.3), bins="log",
              cmap="Greys", mincnt=1)  # fmt: skip
    ax.scatter(
        sets["twin"]["n2"], sets["twin"]["o3"], s=3, color="tab:blue", alpha=0.5, label="mock twin"
    )
    ax.scatter(
        sets["real"]["n2"],
        sets["real"]["o3"],
        s=3,
        color="tab:red",
        alpha=0.6,
        label="real 7815-3702",
    )
    x = np.linspace(-2, 0.0, 100)
    ax.plot(x, 0.61 / (x - 0.05) + 1.3, "k--", lw=1, label="Kauffmann+03")
    x = np.linspace(-2, 0.4, 100)
    ax.plot(x, 0.61 / (x - 0.47) + 1.19, "k-", lw=1, label="Kewley+01")
    ax.set(
        xlim=(-2, 0.6),
        ylim=(-1.3, 1.3),
        xlabel="log [NII]6584/Halpha",
        ylabel="log [OIII]5007/Hbeta",
        title="BPT, spaxels with S/N > 3 (grey: mock population)",
    )
    ax.legend(loc="lower left", fontsize=8)

    styles = {"real": ("tab:red", 2.0), "twin": ("tab:blue", 1.5),
              "mock (all)": ("0.3", 1.5), "mock (SF)": ("tab:green", 1.5)}  # fmt: skip
    for ax, key, label, bins in (
        (
            axes[1, 0],
            "sb",
            "log Halpha SB (1e-17 erg/s/cm$^2$/arcsec$^2$), S/N > 3",
            np.linspace(-1, 3.2, 50),
        ),
        (axes[1, 1], "snr", "log S/N(Halpha) per spaxel", np.linspace(-1, 3.2, 50)),
    ):
        for name, m in sets.items():
            values = m[key] if key == "sb" else np.log10(np.clip(m[key], 0.1, None))
            color, width = styles[name]
            ax.hist(
                values, bins=bins, density=True, histtype="step", color=color, lw=width, label=name
            )
        ax.set(xlabel=label, ylabel="spaxel density")
        ax.legend(fontsize=8)

    ax = axes[1, 2]
    ax.axis("off")
    lines = [summary(name, m).replace(" | ", "\n    ") for name, m in sets.items()]
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7.2)
    fig.suptitle(
        f"Mock MaNGA line maps vs the real DAP MAPS of 7815-3702 "
        f"(population: {args.n} mock galaxies, seed {args.seed})"
    )
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
