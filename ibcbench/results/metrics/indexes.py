"""The keys of notebook 02 (index strategies)."""

from __future__ import annotations

from ibcbench.results.metrics.metric import RATIO, TIMING, Metric, informational, lookup

TABLE: tuple[Metric, ...] = (
    Metric(
        "wallet_history_p50_ms_none",
        "lower",
        "ms",
        TIMING,
        0.05,
        note="wallet history p50 without secondary indexes: a scan",
    ),
    lookup("wallet_history_p50_ms_service", "wallet history p50 with the service's indexes"),
    Metric(
        "wallet_history_speedup",
        "higher",
        "x",
        RATIO,
        note="p50 without indexes / with the service's",
    ),
    Metric(
        "packet_lookup_speedup",
        "higher",
        "x",
        RATIO,
        note="p50 without indexes / with the service's",
    ),
    informational("winners", "", "the fastest strategy per query (names)"),
    Metric("ingest_rows_per_s", "higher", "rows/s", TIMING, note="bulk insert rate per strategy"),
)
