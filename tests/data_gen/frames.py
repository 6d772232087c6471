"""Generated tables as pandas frames, for the generator's tests."""

from __future__ import annotations

import pandas as pd

from data_gen import GenerationParams, generate
from data_gen.tables import TABLES

Frames = dict[str, pd.DataFrame]


def collect(params: GenerationParams) -> tuple[Frames, dict]:
    """Every table of ``params``' generation as one frame (big integers exact), and the manifest."""
    gen = generate(params)
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
    for batch in gen:
        frame = {}
        for name, values in batch.columns.items():
            frame[name] = values.to_python() if hasattr(values, "to_python") else values
        parts[batch.table].append(pd.DataFrame(frame))
    return {t: pd.concat(p, ignore_index=True) for t, p in parts.items()}, gen.manifest()
