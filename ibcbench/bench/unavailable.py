"""A part of a benchmark that this server cannot run (no PgBouncer, no standby given for a server
that is not the kit's embedded one): said in one line on stderr (a notebook shows it in its output),
and recorded as ``"not available: <reason>"`` in place of the part's numbers."""

from __future__ import annotations

import sys

PREFIX = "not available: "


def not_available(part: str, reason: str) -> str:
    """Say on stderr that ``part`` is skipped and why; the text to record in its place."""
    text = PREFIX + reason
    print(f"{part} skipped: {reason}", file=sys.stderr, flush=True)
    return text
