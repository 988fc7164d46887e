"""Make the latent-space picture of README.md from an evaluation survey.

``docs/_static/latent_map.png``: the 128-d ``manga-convlstm`` latents of a
labelled mock survey, embedded in 2-D (UMAP if installed, else t-SNE) and
coloured by the true anomaly class, the ten highest-scoring galaxies circled
and numbered by rank. (README's other picture, ``report_example.png``, is a
screenshot of the review page that ``ifsrepr demo`` writes.)

The survey is the one the evaluation in ``docs/scoring.rst`` uses; make it
with the command line first::

    ifsrepr mock EVAL/mock --n-galaxies 600 --seed 99 --products linestack --anomaly-rate 0.15
    ifsrepr extract EVAL/mock --catalog EVAL/mock/drpall-mock.fits -o EVAL/survey.h5
    python docs/scripts/readme_figures.py EVAL/survey.h5 EVAL/mock/truth.ecsv

(about ten minutes on two cores, most of it making the mock survey).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table, join

STATIC = Path(__file__).resolve().parent.parent / "_static"


def main() -> None:
    """Encode, score and draw; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("survey", help="survey dataset (ifsrepr extract)")
    parser.add_argument("truth", help="the mock survey's truth.ecsv")
    parser.add_argument("--model", default="manga-convlstm")
    parser.add_argument("--out", type=Path, default=STATIC)
    args = parser.parse_args()

    from ifsrepr.encoder import IFSEncoder
    from ifsrepr.report.figures import latent_map
    from ifsrepr.scoring import AnomalyScorer, encode_dataset

    encoder = IFSEncoder.from_pretrained(args.model)
    encoding = encode_dataset(encoder, args.survey, progress=False)
    scores = AnomalyScorer().fit(encoding).score(encoding)
    truth = Table.read(args.truth)
    labelled = join(scores, truth["plateifu", "anomaly"], keys="plateifu", join_type="left")
    labelled.sort("rank")
    by_plateifu = {p: i for i, p in enumerate(encoding.plateifu)}
    rows = np.array([by_plateifu[p] for p in labelled["plateifu"]])
    anomaly = labelled["anomaly"]
    anomaly = anomaly.filled("none") if hasattr(anomaly, "filled") else anomaly
    classes = [str(a).replace("none", "normal") for a in anomaly]

    figure = latent_map(
        encoding.latents[rows], classes, label="true class (mock survey)",
        highlight=np.arange(10), names=[str(r) for r in labelled["rank"][:10]],
    )  # fmt: skip
    figure.suptitle(f"{args.model}; circled and numbered: the 10 highest scores")
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "latent_map.png", dpi=90)

    print(f"wrote {args.out / 'latent_map.png'}")


if __name__ == "__main__":
    main()
