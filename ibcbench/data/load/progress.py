"""The progress bar of a generation or a load (only on a terminal)."""

from __future__ import annotations

import sys
from typing import Any


def progress(total: int | None, quiet: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit=" rows",
        unit_scale=True,
        desc=desc,
        disable=quiet or not sys.stderr.isatty(),
        smoothing=0.1,
        dynamic_ncols=True,
    )
