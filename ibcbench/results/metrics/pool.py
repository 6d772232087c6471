"""The keys of notebook 03 (pool settings)."""

from __future__ import annotations

from ibcbench.results.metrics.metric import THROUGHPUT, TIMING, Metric, informational

TABLE: tuple[Metric, ...] = (
    informational(
        "knee_max_size",
        "connections",
        "where throughput stops growing: neither direction is better",
    ),
    informational("knee_clients", "clients", "the client threads the knee is read at"),
    Metric("best_qps", "higher", "queries/s", THROUGHPUT, note="the sweep's best throughput"),
    Metric("errors", "lower", "errors", note="failed queries in the sweep: any increase counts"),
    Metric(
        "client_bound_points",
        "lower",
        "points",
        0.0,
        1.0,
        note="sweep points limited by the Python client, whose figures are the client's; one point flips with noise",
    ),
    Metric("prepared_gain", "higher", "x", THROUGHPUT, note="throughput prepared / not prepared"),
    Metric(
        "max_wait_ms_per_request",
        "lower",
        "ms",
        TIMING,
        1.0,
        note="longest mean pool wait of a sweep point",
    ),
    informational(
        "capacity_rate_qps",
        "queries/s",
        "the arrival rate the wait was measured at (set from the throughput)",
    ),
    informational(
        "capacity_knee_pgbench",
        "connections",
        "where more connections stop adding throughput: neither way is better",
    ),
    informational("capacity_knee_python", "connections", "the same through psycopg_pool"),
    Metric(
        "capacity_wait_p95_ms",
        "lower",
        "ms",
        TIMING,
        1.0,
        note="arrival to a free connection at the rate, p95, per engine and pool size",
    ),
)
