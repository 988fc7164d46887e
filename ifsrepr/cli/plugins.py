"""``ifsrepr plugins``: list everything the plugins registered."""

from __future__ import annotations

import argparse
import json

from ..plugins import blocked_plugins, get_registries


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "plugins",
        help="list registered readers, line extractors, architectures and pretrained models",
        description=(
            "List every registered reader, line extractor, architecture and pretrained "
            "model, with the plugin and package that provided it. Plugins named in "
            "IFSREPR_BLOCK_PLUGINS (comma-separated) are not loaded."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def run(args: argparse.Namespace) -> int:
    registries = get_registries()
    sections = {
        "readers": registries.readers,
        "line extractors": registries.line_extractors,
        "architectures": registries.architectures,
        "pretrained models": registries.pretrained,
    }
    listing = {
        title: [
            {"name": entry.name, "plugin": entry.plugin, "package": entry.distribution}
            for entry in registry.registrations()
        ]
        for title, registry in sections.items()
    }
    if args.json:
        print(json.dumps({**listing, "blocked": blocked_plugins()}, indent=2))
        return 0
    for title, rows in listing.items():
        print(f"{title}:")
        if not rows:
            print("  (none)")
        width = max((len(row["name"]) for row in rows), default=0)
        for row in rows:
            print(f"  {row['name']:<{width}}  plugin {row['plugin']} ({row['package']})")
    if blocked_plugins():
        print(f"blocked: {', '.join(blocked_plugins())}")
    return 0
