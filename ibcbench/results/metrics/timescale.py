"""The keys of notebook 05 (TimescaleDB: chunks, continuous aggregates, retention, columnstore)."""

from __future__ import annotations

from ibcbench.results.metrics.metric import RATIO, THROUGHPUT, TIMING, Metric, informational

TABLE: tuple[Metric, ...] = (
    informational("compression", "", "whether the server's edition has compression (text)"),
    informational("caggs_available", "", "whether the server's edition has continuous aggregates"),
    informational("most_chunks_layout", "", "the chunk interval with the most chunks (a name)"),
    informational("chunks_total", "chunks", "set by the data and the chunk interval"),
    Metric(
        "chunks_scanned_bounded",
        "lower",
        "chunks",
        note="a time-bounded lookup: more chunks means less exclusion",
    ),
    informational(
        "chunks_scanned_unbounded", "chunks", "an unbounded lookup scans every chunk by design"
    ),
    Metric(
        "point_lookup_ratio_many_chunks_vs_plain",
        "lower",
        "x",
        THROUGHPUT,
        note="point lookup latency, most chunks / plain table",
    ),
    Metric(
        "rollup_matches_raw",
        "higher",
        "",
        note="True expected: the rollup equals the raw GROUP BY",
    ),
    Metric("refresh_ms", "lower", "ms", TIMING, 5.0, note="rollup refresh time per method"),
    informational(
        "cagg_stale_rows_materialized_only",
        "rows",
        "new packets a materialized-only answer misses: by design",
    ),
    Metric(
        "cagg_stale_rows_real_time",
        "lower",
        "rows",
        note="0 expected: real-time aggregation adds the new rows",
    ),
    Metric(
        "cagg_hierarchical_matches_hourly",
        "higher",
        "",
        note="True expected: the daily aggregate sums the hourly",
    ),
    informational("cagg_policy_runs", "runs", "runs of the refresh policy job seen"),
    Metric("cagg_policy_failures", "lower", "runs", note="failed runs of the refresh policy job"),
    informational("cagg_policy_status", "", "the policy job's last run status (text)"),
    informational("cagg_policy_error", "", "the policy job's last job_errors message (text)"),
    Metric("retention_ms", "lower", "ms", TIMING, 5.0, note="retention time per method"),
    informational("columnstore", "", "'measured', or why the columnstore was not (the edition)"),
    informational("columnstore_setting", "", "the recommended segmentby setting (a name)"),
    Metric(
        "compression_ratio",
        "higher",
        "x",
        0.1,
        0.05,
        note="bytes before / after, compressed chunks, per setting",
    ),
    Metric(
        "compression_ratio_recommended",
        "higher",
        "x",
        0.1,
        0.05,
        note="that ratio for the recommended setting",
    ),
    Metric(
        "analytics_speedup",
        "higher",
        "x",
        RATIO,
        note="rowstore p50 / columnstore p50 per analytics query",
    ),
    Metric(
        "point_lookup_slowdown",
        "lower",
        "x",
        RATIO,
        note="columnstore p50 / rowstore p50 per point lookup",
    ),
    Metric(
        "ingest_rows_per_s_rowstore",
        "higher",
        "rows/s",
        TIMING,
        note="INSERT of a new hour, rowstore copy",
    ),
    Metric(
        "ingest_rows_per_s_columnstore",
        "higher",
        "rows/s",
        TIMING,
        note="INSERT of a new hour, older chunks in the columnstore",
    ),
    Metric(
        "backfill_rows_per_s_compressed_chunk",
        "higher",
        "rows/s",
        TIMING,
        note="INSERT into a compressed chunk's time range",
    ),
    informational("columnstore_policy_runs", "runs", "runs of the columnstore policy job seen"),
    Metric(
        "columnstore_policy_failures",
        "lower",
        "runs",
        note="failed runs of the columnstore policy job",
    ),
    informational(
        "columnstore_policy_error", "", "the policy job's last job_errors message (text)"
    ),
    informational("columnstore_recommendation", "", "the recommendation, in words"),
    Metric(
        "retention_wal_bytes",
        "lower",
        "bytes",
        1.0,
        8192.0,
        note="WAL written by retention per method; full-page images after a checkpoint moved it x1.5",
    ),
)
