"""Generating ``GenerationParams`` and loading them at once, overlapped, in one transaction."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from data_gen import GenerationParams
from data_gen.tables import FACT_TABLES, TABLES
from ibcbench.data.load.attempt import Attempt
from ibcbench.data.load.checks import (
    check_incident_table,
    check_schema,
    check_span,
    continue_params,
    lock,
)
from ibcbench.data.load.copy import batch_stream, copy_stream
from ibcbench.data.load.derived import upsert_derived
from ibcbench.data.load.producer import overlapped_batches
from ibcbench.data.load.progress import progress
from ibcbench.data.load.record import record_span
from ibcbench.data.load.results import LoadResult, TableLoad


def _seed_source(params: GenerationParams) -> str:
    sizes = "".join(
        f", {name} {value}"
        for name, value in (("packets", params.packets), ("days", params.days))
        if value is not None
    )
    return f"generated: seed {params.seed}, scale {params.scale}{sizes}"


def load_generated(
    dsn: str | None, params: GenerationParams, *, quiet: bool, overlap: str
) -> LoadResult:
    per_table = {t: [0, 0, 0.0] for t in TABLES}  # rows, bytes, seconds
    manifest: dict[str, Any] = {}
    attempt = Attempt(
        dsn, _seed_source(params), again="run the seed again (it continues the data committed)"
    )
    with attempt.connection() as conn, conn.cursor() as cur:
        check_schema(conn)
        check_incident_table(conn, params.incidents)
        attempt.start_journal(conn, None)
        lock(conn)
        params = continue_params(conn, params)
        check_span(conn, params.start_time, params.resume.next_packet_id if params.resume else 1)
        started = time.perf_counter()
        with progress(None, quiet, "load") as bar:
            for item in overlapped_batches(params, overlap):
                if isinstance(item, dict):
                    manifest = item
                    continue
                t0 = time.perf_counter()
                if item.table in FACT_TABLES:
                    written = copy_stream(cur, item.table, batch_stream(item.body))
                    bar.update(item.rows)
                else:
                    written, _ = upsert_derived(cur, item.table, batch_stream(item.body))
                acc = per_table[item.table]
                acc[0] += item.rows
                acc[1] += written
                acc[2] += time.perf_counter() - t0
            record_span(cur, manifest, time.perf_counter() - started, attempt.attempt_id)
        attempt.commit(conn)
        elapsed = time.perf_counter() - started  # the load's clock includes COMMIT
    attempt.end("committed", manifest.get("checksums"))
    tables = [TableLoad(t, int(v[0]), int(v[1]), float(v[2])) for t, v in per_table.items()]
    return LoadResult(
        tables,
        elapsed,
        manifest,
        datetime.fromisoformat(manifest["span_start"]),
        datetime.fromisoformat(manifest["span_end"]),
        settled=attempt.settled,
        attempt_id=attempt.attempt_id,
    )
