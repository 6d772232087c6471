"""CLI command modules; each defines ``register(subparsers)``. Discovered by :mod:`ibcbench.cli`.

What the command modules share lives here, so that none of them imports the CLI that imports them.
"""

from __future__ import annotations

import argparse


def add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    """``--dsn``: an external server instead of the embedded one (default: DATABASE_URL)."""
    parser.add_argument(
        "--dsn",
        default=None,
        help="connection URL of an external server (default: $DATABASE_URL, else the embedded server)",
    )
