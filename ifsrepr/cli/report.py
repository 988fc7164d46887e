"""``ifsrepr report``: a static HTML page to review the top anomaly candidates."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..scoring._cli import add_model_arguments

    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML page to review the top anomaly candidates",
        description=(
            "Write OUTPUT/index.html: the top candidates of a scores table (ifsrepr score), each "
            "with its figure, scores and explanation and buttons to mark it interesting / "
            "artefact / normal (kept in the browser; 'Export labels (CSV)' downloads them), a "
            "sortable table of all galaxies, the latent-space map and the galaxies not scored. "
            "One file, no server: open it in any browser. With --dataset and --model the "
            "figures show maps, reconstructions and residuals; with --encoding alone, error maps."
        ),
    )
    parser.add_argument("scores", help="scores table (ifsrepr score)")
    parser.add_argument("-o", "--output", required=True, help="directory for index.html")
    parser.add_argument("--top", type=int, default=20, help="candidates shown in full (20)")
    parser.add_argument("--encoding", help="the encoding scored (latent map, error maps)")
    parser.add_argument("--dataset", help="the survey dataset scored (maps in the figures)")
    add_model_arguments(parser, required=False)
    parser.add_argument("--color-by", help="scores column colouring the latent map (score)")
    parser.add_argument("--title", help="page title")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..exceptions import IFSReprError
    from ..report import write_report
    from ..scoring._cli import load_model, warnings_to_stderr

    if args.dataset and not args.model:
        raise IFSReprError("--dataset needs --model (the figures show the model's reconstruction)")
    with warnings_to_stderr():
        encoder = load_model(args.model, args.device) if args.model else None
        path = write_report(
            args.scores,
            args.output,
            top=args.top,
            encoding=args.encoding,
            dataset=args.dataset,
            encoder=encoder,
            color_by=args.color_by,
            title=args.title,
        )
    print(f"report written to {path.resolve()} (open it in a browser)")
    return 0
