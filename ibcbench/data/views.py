"""The materialized views: refresh them the way this server's edition allows."""

from __future__ import annotations

import time

import psycopg

from ibcbench.infra.status import hourly_stats_kind


def refresh_views(conn: psycopg.Connection, *, concurrently: bool = False) -> dict[str, float]:
    """Refresh mv_user_statistics and hourly_packet_stats; returns elapsed ms per view.

    A continuous aggregate is refreshed with ``refresh_continuous_aggregate`` over its whole range; a
    plain materialized view with ``REFRESH MATERIALIZED VIEW`` (``CONCURRENTLY`` when asked). Needs an
    autocommit connection (continuous aggregate refreshes cannot run in a transaction block).
    """
    elapsed: dict[str, float] = {}
    mode = " CONCURRENTLY" if concurrently else ""
    started = time.perf_counter()
    conn.execute(f"REFRESH MATERIALIZED VIEW{mode} mv_user_statistics")
    elapsed["mv_user_statistics"] = (time.perf_counter() - started) * 1000
    kind = hourly_stats_kind(conn)
    started = time.perf_counter()
    if kind and kind.startswith("continuous"):
        conn.execute("CALL refresh_continuous_aggregate('hourly_packet_stats', NULL, NULL)")
    elif kind:
        conn.execute(f"REFRESH MATERIALIZED VIEW{mode} hourly_packet_stats")
    elapsed["hourly_packet_stats"] = (time.perf_counter() - started) * 1000
    return elapsed
