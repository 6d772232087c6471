"""Loading generated traffic: binary COPY, overlapped with generation, one transaction per span.

Two ways in, TSBS-style:
- ``generate_dataset(params, out_dir)`` writes one binary COPY file per table plus ``manifest.json``,
  and ``load_dataset(dsn, out_dir)`` streams those files (load timings never include generation);
- ``load_dataset(dsn, params)`` generates and loads at once: a producer (a thread by default, or a
  forked process with ``overlap="process"``) generates and encodes batches into a bounded queue while
  this connection COPYs them, so the server is not waiting on Python.

A span is loaded in one transaction and recorded in ``ibcbench_loads``: a failed load leaves nothing
behind, the same folder is never loaded twice, and a span that overlaps the data is refused. Loading
``GenerationParams`` into a database that already holds packets continues it: the next span starts
after the newest packet, with the next ids and gapless sequences per channel. Loads into one
database are serialized by an advisory lock, so two at once cannot both continue the same data.
"""

from __future__ import annotations

from pathlib import Path

from data_gen import GenerationParams
from ibcbench.data.load.checks import check_schema, resume_state
from ibcbench.data.load.copy import COPY_CHUNK, batch_stream, copy_stream, file_sha256
from ibcbench.data.load.folder import generate_dataset, load_folder, read_manifest
from ibcbench.data.load.generated import load_generated
from ibcbench.data.load.producer import (
    OVERLAP_MODES,
    EncodedBatch,
    encoded_batches,
    overlapped_batches,
)
from ibcbench.data.load.record import INCIDENT_FIELDS
from ibcbench.data.load.results import GenerateResult, LoadResult, TableLoad
from ibcbench.errors import ConfigError

__all__ = [
    "COPY_CHUNK",
    "INCIDENT_FIELDS",
    "OVERLAP_MODES",
    "EncodedBatch",
    "GenerateResult",
    "LoadResult",
    "TableLoad",
    "batch_stream",
    "check_schema",
    "copy_stream",
    "encoded_batches",
    "file_sha256",
    "generate_dataset",
    "load_dataset",
    "overlapped_batches",
    "read_manifest",
    "resume_state",
]


def load_dataset(
    dsn: str | None,
    source: GenerationParams | Path | str,
    *,
    quiet: bool = False,
    overlap: str = "thread",
) -> LoadResult:
    """Load a generated folder, or generate ``GenerationParams`` and load them overlapped.

    Everything goes in one transaction, recorded in ``ibcbench_loads``. Parameters without an
    explicit ``resume`` continue the data already in the database. ``overlap`` says what produces
    the batches while this process COPYs them: a forked ``"process"``, a ``"thread"``, or ``"none"``.
    """
    if isinstance(source, GenerationParams):
        if overlap not in OVERLAP_MODES:
            raise ConfigError(f"overlap must be one of {', '.join(OVERLAP_MODES)}, not {overlap!r}")
        return load_generated(dsn, source, quiet=quiet, overlap=overlap)
    return load_folder(dsn, Path(source), quiet=quiet)
