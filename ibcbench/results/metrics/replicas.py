"""The keys of notebook 07 (replicas and PgBouncer: ``bench/replicas/``, ``bench/pgbouncer.py``)."""

from __future__ import annotations

from ibcbench.results.metrics.metric import THROUGHPUT, TIMING, Metric, informational

TABLE: tuple[Metric, ...] = (
    Metric(
        "lag_peak_bytes",
        "lower",
        "bytes",
        TIMING,
        1e6,
        note="WAL the standby had not replayed, at worst",
    ),
    Metric(
        "lag_p95_bytes",
        "lower",
        "bytes",
        TIMING,
        1e6,
        note="WAL not replayed, 95th percentile of the samples",
    ),
    Metric(
        "lag_peak_s",
        "lower",
        "s",
        TIMING,
        0.1,
        note="replay_lag (pg_stat_replication) at worst during the load",
    ),
    Metric("lag_p95_s", "lower", "s", TIMING, 0.1, note="replay_lag, 95th percentile"),
    Metric(
        "staleness_peak_s",
        "none",
        "s",
        note="age of the newest commit the standby showed: the load's length",
    ),
    Metric(
        "lag_catch_up_s",
        "lower",
        "s",
        TIMING,
        0.1,
        note="from the load's commit until the standby replayed it",
    ),
    Metric("lag_load_s", "lower", "s", TIMING, note="the load itself, while the standby streamed"),
    informational("lag_samples", "samples", "how many lag samples were taken"),
    informational("lag_sample_interval_ms", "ms", "the median interval between lag samples"),
    *(
        Metric(
            f"analytics_{t}_{p}_ms",
            "lower",
            "ms",
            TIMING,
            0.05,
            note=f"the analytics mix on the {t}",
        )
        for t in ("primary", "standby")
        for p in ("p50", "p95")
    ),
    Metric(
        "analytics_standby_over_primary_p50",
        "none",
        "",
        note="standby p50 / primary p50 (1: the same)",
    ),
    Metric(
        "service_p95_ms_alone",
        "lower",
        "ms",
        TIMING,
        0.05,
        note="the service mix on the primary alone",
    ),
    Metric(
        "service_p95_ms_standby_busy",
        "lower",
        "ms",
        TIMING,
        0.05,
        note="the service mix while the standby runs the analytics (same machine: shared CPUs)",
    ),
    Metric("service_qps_alone", "higher", "queries/s", THROUGHPUT),
    Metric("service_qps_standby_busy", "higher", "queries/s", THROUGHPUT),
    Metric("analytics_errors", "lower", "errors", note="0 expected"),
    Metric(
        "cancelled_feedback_off",
        "none",
        "queries",
        note="standby queries cancelled by vacuum: expected > 0",
    ),
    Metric(
        "cancelled_feedback_on",
        "lower",
        "queries",
        note="cancelled with hot_standby_feedback: 0 expected",
    ),
    informational("standby_queries_feedback_off", "queries", "standby queries that completed"),
    informational("standby_queries_feedback_on", "queries", "standby queries that completed"),
    informational("dead_tuples_kept_feedback_off", "rows", "dead rows vacuum could not remove"),
    Metric(
        "dead_tuples_kept_feedback_on",
        "none",
        "rows",
        note="what feedback costs the primary: dead rows kept",
    ),
    informational("table_mb_feedback_off", "MB", "the demo table after the rounds"),
    Metric(
        "table_mb_feedback_on",
        "none",
        "MB",
        note="the demo table, dead rows kept for the standby",
    ),
    Metric(
        "restart_primary_errors",
        "lower",
        "errors",
        note="0 expected: the primary keeps serving",
    ),
    Metric("restart_primary_qps", "higher", "queries/s", THROUGHPUT),
    Metric(
        "restart_read_errors",
        "lower",
        "errors",
        1.0,
        2.0,
        note="reads on the standby as it went down",
    ),
    Metric(
        "restart_reads_fell_back",
        "none",
        "reads",
        note="routed reads sent to the primary meanwhile",
    ),
    Metric("restart_reads_on_standby", "none", "reads"),
    Metric("restart_s", "lower", "s", TIMING, 1.0, note="the standby's stop and start"),
    *(
        Metric(f"{path}_{n}c_qps", "higher", "queries/s", THROUGHPUT, note=f"{path}, {n} clients")
        for path in (
            "direct_python",
            "direct_pgbench",
            "pgb_txn_pgbench",
            "pgb_session_pgbench",
            "pgb_txn_python",
            "pgb_session_python",
        )
        for n in (1, 25, 200)
    ),
    *(
        Metric(f"{path}_{n}c_p99_ms", "lower", "ms", TIMING, 1.0, note=f"{path}, {n} clients")
        for path in (
            "direct_python",
            "direct_pgbench",
            "pgb_txn_pgbench",
            "pgb_session_pgbench",
            "pgb_txn_python",
            "pgb_session_python",
        )
        for n in (1, 25, 200)
    ),
    Metric(
        "prepared_errors_threshold_5",
        "none",
        "errors",
        note="prepare_threshold=5 through transaction pooling",
    ),
    Metric(
        "prepared_errors_threshold_none",
        "lower",
        "errors",
        note="the fix, prepare_threshold=None: 0 expected",
    ),
)
