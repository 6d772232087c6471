"""Maintenance seen at work: the pg_cron jobs running, bloat made and repaired, the monitoring functions.

pg_cron lives in one database per server (``cron.database_name``). To see the schema's jobs run
without waiting for their schedules, temporary copies of their commands (``ibcbench-demo-*``) are
scheduled every minute in the dataset database with ``cron.schedule_in_database``, watched in
``cron.job_run_details``, and unscheduled afterwards. A run killed while it waits (a notebook kernel
stopped by a timeout) cannot unschedule them: the next run, and :func:`clear_demo_jobs`, remove such
leftovers first, and :func:`scheduled_jobs` never counts them among the schema's jobs. Bloat is made on a scratch copy in the kit's
schema ``ibcbench_maint``, dropped at the end.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import psycopg

from ibcbench.bench.timing import TimingPolicy, time_once_ms, time_query
from ibcbench.data.ownership import create_kit_schema, drop_kit_schema
from ibcbench.db import connect, query_frame, resolve_dsn
from ibcbench.dsn import with_database
from ibcbench.errors import BenchmarkError
from ibcbench.infra.status import hourly_stats_kind
from ibcbench.results.metrics.metric import TIMING, Metric, informational, lookup
from ibcbench.results.recorded import run_folder, save_figure, save_frame
from ibcbench.results.runs import Run

SCHEMA = "ibcbench_maint"
DEMO_PREFIX = "ibcbench-demo-"  # the temporary jobs of run_cron_jobs_now


def cron_database_dsn(dsn: str) -> str | None:
    with connect(dsn) as conn:
        name = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]  # type: ignore[index]
    return with_database(dsn, name) if name else None


def scheduled_jobs(dsn: str | None) -> pd.DataFrame:
    """The schema's 'ibcbench-*' jobs as pg_cron holds them (in the server's cron database)."""
    cron = cron_database_dsn(resolve_dsn(dsn))
    if cron is None:
        return pd.DataFrame(columns=["jobname", "schedule", "command", "database", "active"])
    with connect(cron) as conn:
        if conn.execute("SELECT to_regclass('cron.job')").fetchone()[0] is None:  # type: ignore[index]
            return pd.DataFrame(columns=["jobname", "schedule", "command", "database", "active"])
        return query_frame(
            conn,
            "SELECT jobname, schedule, command, database, active FROM cron.job"
            " WHERE jobname LIKE 'ibcbench-%%' AND jobname NOT LIKE %s ORDER BY jobname",
            (DEMO_PREFIX + "%",),
        )


def clear_demo_jobs(conn: psycopg.Connection) -> int:
    """Unschedule every ``ibcbench-demo-*`` job and forget its runs (``conn``: the cron database).

    Only the kit's own demo jobs are touched; returns how many there were.
    """
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT jobid FROM cron.job WHERE jobname LIKE %s", (DEMO_PREFIX + "%",)
        ).fetchall()
    ]
    for jobid in ids:
        conn.execute("SELECT cron.unschedule(%s)", (jobid,))
    if ids:
        conn.execute("DELETE FROM cron.job_run_details WHERE jobid = ANY(%s)", (ids,))
    return len(ids)


#: what the demo runs: the schema's job commands (dry-run/cheap where the real one would rewrite data)
DEMO_COMMANDS = {
    "ibcbench-demo-analyze": "ANALYZE",
    "ibcbench-demo-refresh-user-statistics": "REFRESH MATERIALIZED VIEW CONCURRENTLY mv_user_statistics",
    "ibcbench-demo-refresh-hourly-packet-stats": "REFRESH MATERIALIZED VIEW CONCURRENTLY hourly_packet_stats",
    "ibcbench-demo-bloat-check": "SELECT count(*) FROM reindex_bloated_indexes(30, 1048576, true)",
}
_REFRESH = "REFRESH MATERIALIZED VIEW CONCURRENTLY "


def run_cron_jobs_now(dsn: str | None, *, wait_s: float = 75.0) -> pd.DataFrame:
    """Schedule the demo jobs every minute in ``dsn``'s database, wait for one run of each, unschedule."""
    target = resolve_dsn(dsn)
    cron = cron_database_dsn(target)
    if cron is None:
        raise BenchmarkError(
            "pg_cron is not preloaded on this server: add it to shared_preload_libraries"
        )
    commands = dict(DEMO_COMMANDS)
    with connect(target) as conn:
        database = conn.info.dbname
        if (hourly_stats_kind(conn) or "").startswith("continuous"):
            # the Community edition's continuous aggregate is refreshed by its own function
            commands["ibcbench-demo-refresh-hourly-packet-stats"] = (
                "CALL refresh_continuous_aggregate('hourly_packet_stats', NULL, NULL)"
            )
    ids: list[int] = []
    started = time.time()
    try:
        with connect(cron, autocommit=True) as conn:
            # pg_cron's tables live in the cron database once the extension is created there
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            clear_demo_jobs(conn)  # left by a run that was killed while it waited
            for name, command in commands.items():
                row = conn.execute(
                    "SELECT cron.schedule_in_database(%s, '* * * * *', %s, %s)",
                    (name, command, database),
                ).fetchone()
                assert row is not None  # cron.schedule_in_database returns the job id
                ids.append(row[0])
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT count(DISTINCT jobid) FROM cron.job_run_details WHERE jobid = ANY(%s) AND end_time IS NOT NULL",
                    (ids,),
                ).fetchone()[0]  # type: ignore[index]
                if done == len(ids):
                    break
                time.sleep(2)
            runs = query_frame(
                conn,
                "SELECT j.jobname, j.command, d.status, d.start_time, d.end_time,"
                " round((extract(epoch FROM d.end_time - d.start_time) * 1000)::numeric, 1) AS duration_ms,"
                " left(d.return_message, 80) AS message FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
                " WHERE d.jobid = ANY(%s) ORDER BY d.start_time",
                (ids,),
            )
    finally:
        if ids:
            with connect(cron, autocommit=True) as conn:
                for jobid in ids:
                    conn.execute("SELECT cron.unschedule(%s)", (jobid,))
                conn.execute("DELETE FROM cron.job_run_details WHERE jobid = ANY(%s)", (ids,))
    runs["waited_s"] = round(time.time() - started, 1)
    return runs


@dataclass(frozen=True)
class CronJobsResult:
    """The schema's scheduled jobs and one watched run of each demo copy."""

    scheduled: pd.DataFrame
    runs: pd.DataFrame

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("cron_jobs_scheduled", "jobs", "how many demo jobs were scheduled"),
        Metric(
            "cron_jobs_seen",
            "higher",
            "runs",
            note="succeeded pg_cron runs: fewer means a job failed or never ran",
        ),
        Metric("cron_job_max_ms", "lower", "ms", TIMING, 50.0, note="the slowest pg_cron run"),
    )

    def key_numbers(self) -> dict[str, Any]:
        """Notebook 06's cron numbers: jobs scheduled, demo runs that succeeded, the slowest run."""
        return {
            "cron_jobs_scheduled": len(self.scheduled),
            "cron_jobs_seen": int((self.runs.status == "succeeded").sum()),
            "cron_job_max_ms": float(self.runs.duration_ms.astype(float).max())
            if len(self.runs)
            else None,
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        save_frame(self.runs.astype(str), "maint_cron_runs", run_dir)


def watch_cron_jobs(dsn: str | None, *, wait_s: float = 75.0) -> CronJobsResult:
    """:func:`run_cron_jobs_now`, then the schema's jobs as pg_cron holds them afterwards."""
    runs = run_cron_jobs_now(dsn, wait_s=wait_s)
    return CronJobsResult(scheduled_jobs(dsn), runs)


# ---- bloat ---------------------------------------------------------------------------------------
STAGE_FRESH = "fresh"
STAGE_REINDEXED = "after REINDEX CONCURRENTLY"


def bloated_stage(delete_share: float) -> str:
    """The name of the bloat demonstration's middle stage (rows deleted, vacuumed, not reindexed)."""
    return f"after deleting {delete_share:.0%} + VACUUM"


@dataclass(frozen=True)
class BloatResult:
    frame: pd.DataFrame  # before / after delete / after reindex
    detected: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def stage(self, name: str) -> pd.Series:
        """One stage's row: ``STAGE_FRESH``, ``bloated_stage(share)`` or ``STAGE_REINDEXED``."""
        rows = self.frame[self.frame.stage == name]
        if len(rows) != 1:
            raise BenchmarkError(
                f"the bloat result has no stage {name!r}: it has {list(self.frame.stage)}"
            )
        return rows.iloc[0]

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("leaf_density_before", "%", "the bloated index, bloated on purpose"),
        Metric("leaf_density_after", "higher", "%", 0.1, 1.0, note="leaf density after REINDEX"),
        informational("index_bytes_before", "bytes", "the bloated index, bloated on purpose"),
        Metric("index_bytes_after", "lower", "bytes", 0.1, 8192.0, note="index size after REINDEX"),
        lookup("lookup_p50_ms_before", "an index lookup on the bloated index"),
        lookup("lookup_p50_ms_after", "the same lookup after REINDEX"),
        Metric(
            "bloat_detected",
            "higher",
            "",
            note="True expected: the monitoring query finds the planted bloat",
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        """Bloated (deleted + vacuumed) against reindexed: leaf density, index bytes, lookup p50."""
        before = self.stage(bloated_stage(self.manifest["delete_share"]))
        after = self.stage(STAGE_REINDEXED)
        return {
            "leaf_density_before": float(before.leaf_density_pct),
            "leaf_density_after": float(after.leaf_density_pct),
            "index_bytes_before": int(before.index_bytes),
            "index_bytes_after": int(after.index_bytes),
            "lookup_p50_ms_before": float(before.p50_ms),
            "lookup_p50_ms_after": float(after.p50_ms),
            "bloat_detected": len(self.detected) > 0,
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        save_frame(self.frame, "maint_bloat", run_dir)


def _index_state(
    conn: psycopg.Connection, index: str, query: str, params: list[tuple], policy: TimingPolicy
) -> dict[str, Any]:
    size, density = conn.execute(
        "SELECT pg_relation_size(%s::regclass), avg_leaf_density FROM pgstatindex(%s)",
        (index, index),
    ).fetchone()  # type: ignore[misc]
    timed = time_query(conn, query, params, policy=policy)
    row = timed.as_row()
    return {
        "index_bytes": int(size),
        "leaf_density_pct": float(density),
        "p50_ms": row["p50_ms"],
        "p50_ci_low_ms": row["p50_ci_low_ms"],
        "p50_ci_high_ms": row["p50_ci_high_ms"],
        "lookups_timed": timed.n,
        "warmup_runs": timed.warmup_runs,
        "stopped_by": timed.stopped_by,
    }


def demonstrate_bloat(
    dsn: str | None,
    *,
    delete_share: float = 0.7,
    lookups: int = 50,
    repetitions: int = 200,
    timing: TimingPolicy | None = None,
) -> BloatResult:
    """Bloat an index on purpose (delete most rows, vacuum), detect it, REINDEX CONCURRENTLY, compare.

    At each stage the lookup of ``lookups`` sampled wallets (cycled) is timed with
    :func:`~ibcbench.bench.timing.time_query`, after a warm-up, at most ``repetitions`` times: fewer
    once the p50 is precise to ±5%. The p50's interval (``p50_ci_low_ms``..``p50_ci_high_ms``) says
    whether two stages differ by more than their noise.
    """
    policy = (timing or TimingPolicy()).with_max_runs(repetitions)
    target = resolve_dsn(dsn)
    index = f"{SCHEMA}.ops_wallet_created"
    with connect(target, autocommit=True) as conn:
        drop_kit_schema(conn, SCHEMA)  # a leftover of a killed run; never a user's schema
        try:
            create_kit_schema(conn, SCHEMA)
            conn.execute(f"CREATE TABLE {SCHEMA}.ops AS SELECT * FROM clearing_operations")
            conn.execute(
                f"CREATE INDEX ops_wallet_created ON {SCHEMA}.ops (wallet_address, created_at DESC)"
            )
            conn.execute(f"VACUUM ANALYZE {SCHEMA}.ops")
            wallets = [
                (r[0],)
                for r in conn.execute(
                    f"SELECT wallet_address FROM {SCHEMA}.ops TABLESAMPLE BERNOULLI (10) REPEATABLE (3) LIMIT %s",
                    (lookups,),
                ).fetchall()
            ]
            query = f"SELECT id, created_at FROM {SCHEMA}.ops WHERE wallet_address = %s ORDER BY created_at DESC LIMIT 20"
            rows = [{"stage": STAGE_FRESH, **_index_state(conn, index, query, wallets, policy)}]
            conn.execute(f"DELETE FROM {SCHEMA}.ops WHERE random() < %s", (delete_share,))
            conn.execute(f"VACUUM {SCHEMA}.ops")
            rows.append(
                {
                    "stage": bloated_stage(delete_share),
                    **_index_state(conn, index, query, wallets, policy),
                }
            )
            detected = query_frame(
                conn,
                "SELECT * FROM reindex_bloated_indexes(20, 0, true) WHERE index_name = %s",
                (index,),
            )
            reindex_ms = time_once_ms(conn, f"REINDEX INDEX CONCURRENTLY {index}")
            rows.append(
                {
                    "stage": STAGE_REINDEXED,
                    **_index_state(conn, index, query, wallets, policy),
                    "reindex_ms": round(reindex_ms, 1),
                }
            )
        finally:
            drop_kit_schema(conn, SCHEMA)
    return BloatResult(
        pd.DataFrame(rows),
        detected,
        {
            "delete_share": delete_share,
            "lookups": lookups,
            "repetitions": repetitions,
            "timing": asdict(policy),
        },
    )


# ---- monitoring functions --------------------------------------------------------------------------
def monitoring_tables(dsn: str | None, *, pattern: str = "packet_flow") -> dict[str, pd.DataFrame]:
    """The schema's monitoring functions over the dataset, plus the top statements."""
    from ibcbench.bench.incidents import data_days
    from ibcbench.toolkit.monitoring import slow_queries

    with connect(dsn) as conn:
        days = data_days(conn)  # the window of score_monitors' health scores too
        health = query_frame(
            conn, "SELECT * FROM calculate_network_health_score(NULL, %s)", (days,)
        )
        health.attrs["window_days"] = days
        return {
            "index_effectiveness": query_frame(conn, "SELECT * FROM check_index_effectiveness()"),
            "query_performance": query_frame(
                conn, "SELECT * FROM analyze_query_performance(%s) LIMIT 15", (pattern,)
            ),
            "network_health": health,
            "top_statements": slow_queries(conn, limit=10),
        }


def plot_health(health: pd.DataFrame) -> Any:
    """One bar per chain, coloured by grade; the title names the score's window (the frame's
    ``attrs["window_days"]``, set by :func:`monitoring_tables`)."""
    import matplotlib.pyplot as plt

    from ibcbench.bench.incidents import window_text

    window = window_text(health.attrs.get("window_days"))
    h = health.sort_values("health_score")
    colors = [
        "#2e7d32" if g == "healthy" else "#e08a00" if g == "degraded" else "#c62828"
        for g in h.grade
    ]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(h) + 1.5))
    ax.barh(h.chain_id, h.health_score.astype(float), color=colors)
    ax.set_xlim(0, 100)
    ax.set_xlabel("calculate_network_health_score (0-100)")
    ax.set_title(f"Network health per chain ({window})")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class MonitoringResult:
    """The monitoring functions' tables over the dataset, by name (see :func:`monitoring_tables`)."""

    tables: dict[str, pd.DataFrame]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("health_scores", "rows", "rows of the network health table"),
    )

    def key_numbers(self) -> dict[str, Any]:
        return {"health_scores": len(self.tables["network_health"])}

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write the network health figure."""
        if run_folder(run_dir) is not None:
            save_figure(
                plot_health(self["network_health"]), "06_network_health", run_dir, close=True
            )


def check_monitoring(dsn: str | None, *, pattern: str = "packet_flow") -> MonitoringResult:
    """:func:`monitoring_tables` as a result that records its key numbers."""
    return MonitoringResult(monitoring_tables(dsn, pattern=pattern))


def tuning_against_server(dsn: str | None) -> pd.DataFrame:
    """The seed's tuning rules for this machine next to the server's current values."""
    from ibcbench.toolkit.tuning import compare_with_server, recommend_settings

    with connect(dsn) as conn:
        return compare_with_server(conn, recommend_settings())
