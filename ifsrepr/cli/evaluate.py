"""``ifsrepr evaluate``: how well the scores find the labelled anomalies of a mock survey."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..scoring import BASELINES
    from ..scoring._cli import add_model_arguments

    parser = subparsers.add_parser(
        "evaluate",
        help="ROC-AUC, average precision, precision@k on a labelled mock survey, vs baselines",
        description=(
            "Score a survey dataset made from a mock survey (ifsrepr mock --anomaly-rate ...; "
            "ifsrepr extract) and compare with its truth table: ROC-AUC, average precision and "
            "precision@k, overall and per anomaly class, for the model's score and each of its "
            "measures, side by side with baselines computed in the same run on the same maps "
            "(PCA reconstruction error, Isolation Forest and LOF on the pixels, Isolation "
            "Forest on PCA components)."
        ),
    )
    parser.add_argument("dataset", help="survey dataset of the mock survey (ifsrepr extract)")
    parser.add_argument("--truth", required=True, help="the mock survey's truth.ecsv")
    add_model_arguments(parser, required=False)
    parser.add_argument("--scores", help="scores already computed (ifsrepr score) for the dataset")
    parser.add_argument("-o", "--output", help="metrics table to write (.ecsv)")
    parser.add_argument("--scores-output", help="also write the scores with the baselines (.ecsv)")
    parser.add_argument("-k", type=int, help="k of precision@k (default: number of anomalies)")
    parser.add_argument("--n-neighbors", type=int, default=10, help="neighbours for k-NN and LOF")
    parser.add_argument(
        "--baselines", nargs="*", choices=list(BASELINES), default=list(BASELINES),
        help="baselines to compute (all)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from .._atomic import atomic_path
    from ..exceptions import IFSReprError
    from ..scoring import AnomalyScorer, evaluate_mock
    from ..scoring._cli import load_model, warnings_to_stderr
    from ..scoring.evaluate import format_metrics

    if not args.model and not args.scores:
        raise IFSReprError("give --model (to score the dataset) or --scores")
    with warnings_to_stderr():
        encoder = load_model(args.model, args.device) if args.model else None
        metrics, scores = evaluate_mock(
            args.dataset,
            args.truth,
            encoder,
            scores=args.scores,
            scorer=AnomalyScorer(n_neighbors=args.n_neighbors),
            baselines=args.baselines,
            k=args.k,
            progress=not args.quiet,
        )
    print(format_metrics(metrics))
    if args.output:
        with atomic_path(args.output) as temporary:
            metrics.write(temporary, format="ascii.ecsv", overwrite=True)
        print(f"metrics written to {args.output}")
    if args.scores_output:
        with atomic_path(args.scores_output) as temporary:
            scores.write(temporary, format="ascii.ecsv", overwrite=True)
    return 0
