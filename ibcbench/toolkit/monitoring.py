"""Monitoring queries and emergency procedures, as the seed's runbook describes them.

Every reader returns a pandas DataFrame. Every emergency action defaults to a dry run that returns
what it would do, and refuses to act on a database that is not the kit's (no ``schema_migrations`` +
``ibcbench_loads``) unless ``allow_foreign=True``; it only ever touches backends of the database the
connection is in, never its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg
from psycopg import sql

from ibcbench.db import query_frame
from ibcbench.errors import ConfigError
from ibcbench.toolkit.query import identifier


def slow_queries(
    conn: psycopg.Connection, *, limit: int = 20, min_mean_ms: float = 0.0
) -> pd.DataFrame:
    """The most expensive statements of this database from pg_stat_statements."""
    if conn.execute("SELECT to_regclass('pg_stat_statements')").fetchone()[0] is None:  # type: ignore[index]
        raise ConfigError(
            "pg_stat_statements is not installed in this database: run `ibcbench schema up`"
        )
    return query_frame(
        conn,
        "SELECT queryid, left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query, calls,"
        " round(total_exec_time::numeric, 2) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,"
        " round(stddev_exec_time::numeric, 3) AS stddev_ms, rows, shared_blks_hit, shared_blks_read,"
        " round(100.0 * shared_blks_hit / nullif(shared_blks_hit + shared_blks_read, 0), 2) AS hit_pct"
        " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND mean_exec_time >= %s ORDER BY total_exec_time DESC LIMIT %s",
        (min_mean_ms, limit),
    )


def table_bloat(conn: psycopg.Connection, *, min_dead_pct: float = 0.0) -> pd.DataFrame:
    """Dead tuples per table (pg_stat_user_tables), with sizes and the last (auto)vacuum."""
    return query_frame(
        conn,
        "SELECT schemaname, relname AS table_name, n_live_tup, n_dead_tup,"
        " round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 2) AS dead_pct,"
        " pg_total_relation_size(relid) AS total_bytes, last_vacuum, last_autovacuum"
        " FROM pg_stat_user_tables"
        " WHERE coalesce(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 0) >= %s"
        " ORDER BY n_dead_tup DESC",
        (min_dead_pct,),
    )


def locks_not_granted(conn: psycopg.Connection) -> pd.DataFrame:
    """Waiting locks with the session that blocks each."""
    return query_frame(
        conn,
        "SELECT w.pid AS waiting_pid, w.locktype, w.mode, w.relation::regclass::text AS relation,"
        " a.query AS waiting_query, pg_blocking_pids(w.pid) AS blocked_by,"
        " now() - a.query_start AS waiting_for"
        " FROM pg_locks w JOIN pg_stat_activity a ON a.pid = w.pid WHERE NOT w.granted ORDER BY a.query_start",
    )


def index_usage(conn: psycopg.Connection) -> pd.DataFrame:
    """Index scans and sizes per index, unused first."""
    return query_frame(
        conn,
        "SELECT s.schemaname, s.relname AS table_name, s.indexrelname AS index_name, s.idx_scan,"
        " s.idx_tup_read, s.idx_tup_fetch, pg_relation_size(s.indexrelid) AS index_bytes, i.indisunique"
        " FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid"
        " ORDER BY s.idx_scan, pg_relation_size(s.indexrelid) DESC",
    )


def stuck_packets(
    conn: psycopg.Connection, *, min_stuck: int = 5, min_share_pct: float = 2.0
) -> pd.DataFrame:
    """Channel hours with stuck packets: per channel (both directions) and hour of sending, those with
    at least ``min_stuck`` stuck packets making at least ``min_share_pct`` percent of the hour's packets
    (counted in channel_performance). The defaults are over ten times the normal share (stuck packets
    are about 0.15% of traffic), so a busy channel's odd stuck packet is not an alarm."""
    return query_frame(
        conn,
        "WITH s AS (SELECT least(source_chain || ' ' || source_channel, destination_chain || ' ' ||"
        " destination_channel) AS end_a, greatest(source_chain || ' ' || source_channel,"
        " destination_chain || ' ' || destination_channel) AS end_b, date_trunc('hour', created_at) AS hour,"
        " count(*) AS stuck FROM packet_flow WHERE status = 'stuck' GROUP BY 1, 2, 3),"
        " t AS (SELECT least(chain_id || ' ' || channel_id, counterparty_chain_id || ' ' ||"
        " counterparty_channel_id) AS end_a, greatest(chain_id || ' ' || channel_id,"
        " counterparty_chain_id || ' ' || counterparty_channel_id) AS end_b, hour,"
        " sum(packets_sent) AS sent FROM channel_performance WHERE hour IN (SELECT hour FROM s)"
        " GROUP BY 1, 2, 3)"
        " SELECT split_part(s.end_a, ' ', 1) AS chain_a, split_part(s.end_a, ' ', 2) AS channel_a,"
        " split_part(s.end_b, ' ', 1) AS chain_b, split_part(s.end_b, ' ', 2) AS channel_b, s.hour,"
        " s.stuck, t.sent, round(100.0 * s.stuck / t.sent, 2) AS stuck_pct"
        " FROM s JOIN t USING (end_a, end_b, hour)"
        " WHERE s.stuck >= %s AND 100.0 * s.stuck >= %s * t.sent ORDER BY s.hour, s.stuck DESC",
        (min_stuck, min_share_pct),
    )


def long_running_queries(conn: psycopg.Connection, *, min_duration_s: float = 60.0) -> pd.DataFrame:
    """Active statements of any database running longer than ``min_duration_s``."""
    return query_frame(
        conn,
        "SELECT pid, datname, usename, state, now() - query_start AS duration,"
        " extract(epoch FROM now() - query_start) AS duration_s, wait_event_type, left(query, 200) AS query"
        " FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid()"
        " AND query_start < now() - make_interval(secs => %s) ORDER BY query_start",
        (min_duration_s,),
    )


# ---- emergency procedures ------------------------------------------------------------------------
@dataclass(frozen=True)
class EmergencyAction:
    action: str
    target: str
    executed: bool
    detail: str = ""


def is_kit_database(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT to_regclass('schema_migrations') IS NOT NULL AND to_regclass('ibcbench_loads') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


def _guard(conn: psycopg.Connection, allow_foreign: bool) -> None:
    if not allow_foreign and not is_kit_database(conn):
        raise ConfigError(
            f"database {conn.info.dbname!r} is not an ibcbench database: pass allow_foreign=True "
            "(--allow-foreign) to act on it anyway"
        )


def terminate_long_queries(
    conn: psycopg.Connection,
    *,
    min_duration_s: float = 300.0,
    dry_run: bool = True,
    allow_foreign: bool = False,
) -> list[EmergencyAction]:
    """pg_terminate_backend for active statements of THIS database older than ``min_duration_s``."""
    _guard(conn, allow_foreign)
    rows = conn.execute(
        "SELECT pid, left(query, 120) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND state <> 'idle' AND backend_type = 'client backend'"
        " AND query_start < now() - make_interval(secs => %s)",
        (min_duration_s,),
    ).fetchall()
    actions = []
    for pid, query in rows:
        done = False
        if not dry_run:
            done = bool(conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0])  # type: ignore[index]
        actions.append(EmergencyAction("terminate", f"pid {pid}", done, query))
    return actions


def checkpoint(
    conn: psycopg.Connection, *, dry_run: bool = True, allow_foreign: bool = False
) -> EmergencyAction:
    _guard(conn, allow_foreign)
    if not dry_run:
        conn.execute("CHECKPOINT")
    return EmergencyAction("checkpoint", "server", not dry_run)


def vacuum(
    conn: psycopg.Connection,
    table: str,
    *,
    analyze: bool = True,
    dry_run: bool = True,
    allow_foreign: bool = False,
) -> EmergencyAction:
    """VACUUM (ANALYZE) one table; needs an autocommit connection when executed."""
    _guard(conn, allow_foreign)
    stmt = sql.SQL("VACUUM {}{}").format(
        sql.SQL("(ANALYZE) ") if analyze else sql.SQL(""), identifier(table)
    )
    if not dry_run:
        if not conn.autocommit:
            raise ConfigError("VACUUM needs an autocommit connection: connect with autocommit=True")
        conn.execute(stmt)
    return EmergencyAction("vacuum", table, not dry_run, stmt.as_string(conn))


def reindex_concurrently(
    conn: psycopg.Connection, index: str, *, dry_run: bool = True, allow_foreign: bool = False
) -> EmergencyAction:
    """REINDEX INDEX CONCURRENTLY; needs an autocommit connection when executed."""
    _guard(conn, allow_foreign)
    if conn.execute("SELECT to_regclass(%s)", (index,)).fetchone()[0] is None:  # type: ignore[index]
        raise ConfigError(f"index {index!r} does not exist in database {conn.info.dbname!r}")
    stmt = sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(identifier(index))
    before = conn.execute("SELECT pg_relation_size(%s::regclass)", (index,)).fetchone()[0]  # type: ignore[index]
    detail = f"{before} bytes before"
    if not dry_run:
        if not conn.autocommit:
            raise ConfigError(
                "REINDEX CONCURRENTLY needs an autocommit connection: connect with autocommit=True"
            )
        conn.execute(stmt)
        after = conn.execute("SELECT pg_relation_size(%s::regclass)", (index,)).fetchone()[0]  # type: ignore[index]
        detail += f", {after} bytes after"
    return EmergencyAction("reindex concurrently", index, not dry_run, detail)
