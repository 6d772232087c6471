"""TimescaleDB features benchmarked on copies of packet_flow: layouts, rollups, retention, compression.

Everything is built in the kit's own schema ``ibcbench_layouts`` of the dataset database, copied from
packet_flow, and that schema is dropped at the end: the dataset itself is never changed. Continuous
aggregates and compression need TimescaleDB's Community license; on the Apache edition the results
say they are unavailable instead of pretending.

The package: ``layouts`` (hypertables by chunk interval against a plain and a partitioned table),
``rollups`` (raw GROUP BY, materialized view, incremental rollup) with ``caggs`` (continuous
aggregates), ``retention`` (DELETE, DETACH + DROP, drop_chunks, a retention policy) and ``shared``
(the schema, the copies, WAL positions, jobs run now, the edition's features).
"""

from __future__ import annotations

from ibcbench.bench.timescale.layouts import LayoutResult, benchmark_layouts, plot_layouts
from ibcbench.bench.timescale.retention import RetentionResult, benchmark_retention
from ibcbench.bench.timescale.rollups import RollupResult, benchmark_rollups
from ibcbench.bench.timescale.shared import (
    MAX_REPETITIONS,
    SCHEMA,
    compression_status,
    run_job_now,
)

__all__ = [
    "MAX_REPETITIONS",
    "SCHEMA",
    "LayoutResult",
    "RetentionResult",
    "RollupResult",
    "benchmark_layouts",
    "benchmark_retention",
    "benchmark_rollups",
    "compression_status",
    "plot_layouts",
    "run_job_now",
]
