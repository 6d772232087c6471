"""Read replicas measured the way the service would run them (notebook 07).

- :func:`measure_load_lag`: replication lag, sampled every ``interval_s`` (100 ms by default), while
  the generator loads a span into a scratch database of the primary; peak, p95, time to catch up.
- :func:`compare_analytics`: the workload's analytics queries on the standby against the primary,
  and the service's lookups on the primary alone and while the standby serves the analytics.
- :func:`measure_recovery_conflicts`: queries cancelled on the standby (``canceling statement due to
  conflict with recovery``) while the primary deletes and vacuums, with ``hot_standby_feedback`` off
  and on, and what feedback costs the primary (dead tuples it may not remove, table size).
- :func:`restart_standby_during_run`: the runner keeps going on the primary while a standby restarts;
  reads routed by :class:`~ibcbench.toolkit.routing.RoutedPool` fall back to the primary.

:func:`start_replicas` gives the members: external ones by URL (``replica_dsn``/``REPLICA_URL``,
``pgbouncer_dsn``/``PGBOUNCER_URL``), else a standby (and PgBouncer) of the embedded server behind
``dsn``, started for this run and removed by :meth:`ReplicaSetup.stop` (or, if the run is killed, by
the next ``ibcbench db up``). Scratch objects live in the kit's schema ``ibcbench_replicas`` of the
dataset database and in the kit's database ``ibcbench_replicas_scratch``; both are dropped at the end.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from ibcbench.bench.workload import default_workload, sample_parameters
from ibcbench.bench.workload.python import run_python
from ibcbench.data.datasets import with_database
from ibcbench.data.ownership import create_kit_schema, drop_kit_schema
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError
from ibcbench.results.recorded import save_frame
from ibcbench.toolkit.pool import PoolConfig
from ibcbench.toolkit.routing import RoutingConfig, create_routed_pool, parse_lsn
from ibcbench.topology import Topology, embedded_topology, pgbouncer_url, replica_urls

SCHEMA = "ibcbench_replicas"
SCRATCH_DATABASE = "ibcbench_replicas_scratch"
_SCRATCH_MARKER = "ibcbench_replicas_scratch_marker"
#: the workload's analytics reads (dashboards), and the service's lookups and writes
ANALYTICS = (
    "stuck_packets_24h",
    "network_stats_range",
    "relayer_leaderboard",
    "user_statistics",
    "hourly_packet_stats",
)
SERVICE = ("wallet_history", "packet_by_channel_sequence", "packet_insert", "packet_status_update")
CONFLICT_MESSAGE = "conflict with recovery"


# ---- the members ---------------------------------------------------------------------------------
@dataclass
class ReplicaSetup:
    """Where the primary, a standby and PgBouncer are, for one run."""

    dsn: str
    replica_dsn: str
    pgbouncer_dsn: str | None
    topology: Topology | None = None
    replica_index: int = 1
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def embedded(self) -> bool:
        return self.topology is not None

    def stop(self) -> None:
        """Remove what :func:`start_replicas` started (what was already running stays)."""
        self._stack.close()


def start_replicas(
    dsn: str | None,
    *,
    replica_dsn: str | None = None,
    pgbouncer_dsn: str | None = None,
    pgbouncer: bool = True,
) -> ReplicaSetup:
    """A standby (and PgBouncer) for ``dsn``: given by URL, else started beside the embedded server."""
    target = resolve_dsn(dsn)
    given = replica_urls(replica_dsn) if (replica_dsn or _env("REPLICA_URL")) else []
    if given:
        bouncer = pgbouncer_url(pgbouncer_dsn) if pgbouncer else None
        return ReplicaSetup(target, given[0], bouncer)
    topo = embedded_topology(target)
    if topo is None:
        raise BenchmarkError(
            "the primary is not the kit's embedded server: give its standby with replica_dsn "
            "(or REPLICA_URL), and PgBouncer with pgbouncer_dsn (or PGBOUNCER_URL)"
        )
    setup = ReplicaSetup(target, "", None, topo)
    setup._stack.enter_context(topo.started(replicas=1, pgbouncer=pgbouncer))
    setup.replica_dsn = replica_urls(dsn=target)[0]
    setup.pgbouncer_dsn = pgbouncer_url(dsn=target) if pgbouncer else None
    return setup


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


def _standby_lag(conn: psycopg.Connection) -> tuple[int, float]:
    lsn, lag_s = conn.execute(
        "SELECT pg_last_wal_replay_lsn()::text,"
        " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
        " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"
    ).fetchone()  # type: ignore[misc]
    if lsn is None:
        raise BenchmarkError(
            "the replica is not a standby (pg_last_wal_replay_lsn() is NULL): check replica_dsn"
        )
    return parse_lsn(lsn), float(lag_s or 0.0)


def wait_caught_up(primary: str, replica: str, *, timeout_s: float = 120.0) -> float:
    """Wait until the standby has replayed the primary's current WAL position; returns the seconds."""
    started = time.monotonic()
    with (
        psycopg.connect(primary, autocommit=True) as p,
        psycopg.connect(replica, autocommit=True) as r,
    ):
        goal = parse_lsn(p.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
        while _standby_lag(r)[0] < goal:
            if time.monotonic() - started > timeout_s:
                raise BenchmarkError(f"the standby did not catch up within {timeout_s:g} s")
            time.sleep(0.02)
    return time.monotonic() - started


# ---- lag during a load -----------------------------------------------------------------------------
@dataclass
class LagResult:
    samples: pd.DataFrame  # t_s, lag_bytes, lag_s, replay_lag_s, phase
    load_s: float
    rows_loaded: int
    catch_up_s: float
    interval_s: float
    scale: str

    def save(self, run_dir: Any) -> None:
        save_frame(self.samples, "replica_lag", run_dir)

    def key_numbers(self) -> dict[str, Any]:
        during = self.samples[self.samples.phase != "before"]
        replay = during.replay_lag_s.astype(float).dropna()
        return {
            "lag_peak_bytes": int(during.lag_bytes.max()) if len(during) else 0,
            "lag_p95_bytes": int(np.percentile(during.lag_bytes, 95)) if len(during) else 0,
            # seconds: pg_stat_replication.replay_lag, how long WAL takes to be replayed
            "lag_peak_s": round(float(replay.max()), 3) if len(replay) else None,
            "lag_p95_s": round(float(np.percentile(replay, 95)), 3) if len(replay) else None,
            # the standby's view: age of its newest replayed commit (grows through a long transaction)
            "staleness_peak_s": round(float(during.lag_s.max()), 3) if len(during) else 0.0,
            "lag_catch_up_s": round(self.catch_up_s, 3),
            "lag_load_s": round(self.load_s, 2),
            "lag_samples": len(self.samples),
            "lag_sample_interval_ms": round(1000 * float(np.median(np.diff(self.samples.t_s))), 1)
            if len(self.samples) > 1
            else None,
        }


def _scratch_database(primary: str) -> str:
    """A fresh kit-owned database on the primary (one the kit did not create is refused)."""
    with connect(primary, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (SCRATCH_DATABASE,)
        ).fetchone()
        target = with_database(primary, SCRATCH_DATABASE)
        if exists:
            with connect(target, autocommit=True) as old:
                ours = old.execute("SELECT to_regclass(%s)", (_SCRATCH_MARKER,)).fetchone()[0]  # type: ignore[index]
            if ours is None:
                raise BenchmarkError(
                    f"database {SCRATCH_DATABASE!r} exists but is not the kit's: drop or rename it"
                )
            conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DATABASE))
            )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH_DATABASE)))
    with connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ()").format(sql.Identifier(_SCRATCH_MARKER)))
    return target


def _drop_scratch(primary: str) -> None:
    with connect(primary, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(SCRATCH_DATABASE)
            )
        )


def measure_load_lag(
    setup: ReplicaSetup,
    *,
    scale: str = "tiny",
    seed: int = 42,
    interval_s: float = 0.1,
    timeout_s: float = 600.0,
) -> LagResult:
    """Lag sampled every ``interval_s`` while the generator loads ``scale`` into a scratch database."""
    from data_gen import GenerationParams
    from ibcbench.data.load import load_dataset
    from ibcbench.migrate import migrate_up

    if not 0.005 <= interval_s <= 0.1:
        raise BenchmarkError("interval_s must be between 0.005 and 0.1 (100 ms or finer)")
    primary = setup.dsn
    scratch = _scratch_database(primary)
    try:
        migrate_up(scratch)
        wait_caught_up(primary, setup.replica_dsn)
        rows: list[tuple[float, int, float, float | None, str]] = []
        phase = ["before"]
        stop = threading.Event()
        failure: list[BaseException] = []

        def sample() -> None:
            try:
                with (
                    psycopg.connect(primary, autocommit=True) as p,
                    psycopg.connect(setup.replica_dsn, autocommit=True) as r,
                ):
                    t0 = time.perf_counter()
                    nxt = t0
                    while not stop.is_set():
                        cur, rl = p.execute(
                            "SELECT pg_current_wal_lsn()::text, (SELECT extract(epoch FROM max(replay_lag))::float8"
                            " FROM pg_stat_replication)"
                        ).fetchone()  # type: ignore[misc]
                        replay, lag_s = _standby_lag(r)
                        rows.append(
                            (
                                time.perf_counter() - t0,
                                max(0, parse_lsn(cur) - replay),
                                lag_s,
                                rl,
                                phase[0],
                            )
                        )
                        nxt += interval_s
                        delay = nxt - time.perf_counter()
                        if delay > 0:
                            stop.wait(delay)
            except BaseException as exc:  # surfaced after the load
                failure.append(exc)

        sampler = threading.Thread(target=sample, name="lag-sampler", daemon=True)
        sampler.start()
        time.sleep(max(0.3, 3 * interval_s))
        phase[0] = "load"
        started = time.perf_counter()
        loaded = load_dataset(scratch, GenerationParams(seed=seed, scale=scale), quiet=True)
        load_s = time.perf_counter() - started
        phase[0] = "catch-up"
        with psycopg.connect(primary, autocommit=True) as p:
            goal = parse_lsn(p.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
        with psycopg.connect(setup.replica_dsn, autocommit=True) as r:
            while _standby_lag(r)[0] < goal:
                if time.perf_counter() - started > timeout_s:
                    raise BenchmarkError(
                        f"the standby did not catch up within {timeout_s:g} s of the load"
                    )
                time.sleep(0.005)
        catch_up_s = time.perf_counter() - started - load_s
        phase[0] = "after"
        time.sleep(max(0.3, 3 * interval_s))
        stop.set()
        sampler.join()
        if failure:
            raise BenchmarkError(f"the lag sampler failed: {failure[0]}") from failure[0]
    finally:
        _drop_scratch(primary)
    frame = pd.DataFrame(rows, columns=["t_s", "lag_bytes", "lag_s", "replay_lag_s", "phase"])
    return LagResult(frame, load_s, int(loaded.rows), catch_up_s, interval_s, scale)


def plot_lag(result: LagResult) -> Any:
    """Lag in MB of WAL, replay_lag in seconds and the standby's staleness against time; the load
    shaded orange, the catch-up green."""
    import matplotlib.pyplot as plt

    f = result.samples
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True)
    axes[0].plot(f.t_s, f.lag_bytes / 1e6, lw=1.0)
    axes[0].set_ylabel("WAL not replayed (MB)")
    axes[1].plot(f.t_s, f.replay_lag_s.astype(float), lw=1.0, color="tab:red")
    axes[1].set_ylabel("replay_lag (s)")
    axes[2].plot(f.t_s, f.lag_s, lw=1.0, color="tab:grey")
    axes[2].set_ylabel("newest commit\nseen on standby (s old)")
    axes[2].set_xlabel("seconds")
    load = f[f.phase == "load"]
    catch = f[f.phase == "catch-up"]
    for ax in axes:
        if len(load):
            ax.axvspan(load.t_s.min(), load.t_s.max(), color="tab:orange", alpha=0.15, lw=0)
        if len(catch):
            ax.axvspan(catch.t_s.min(), catch.t_s.max(), color="tab:green", alpha=0.3, lw=0)
    k = result.key_numbers()
    seconds = f", replay_lag p95 {k['lag_p95_s']:.2f} s" if k["lag_p95_s"] is not None else ""
    fig.suptitle(
        f"Replication lag while {result.rows_loaded:,} rows load ({result.scale}, one transaction):"
        f" peak {k['lag_peak_bytes'] / 1e6:.1f} MB, p95 {k['lag_p95_bytes'] / 1e6:.1f} MB{seconds};"
        f" caught up {k['lag_catch_up_s']:.2f} s after the commit",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


# ---- analytics on the standby ----------------------------------------------------------------------
@dataclass
class AnalyticsResult:
    frame: (
        pd.DataFrame
    )  # target, workload, query, count, errors, throughput_qps, p50_ms, p95_ms, p99_ms
    clients: int
    duration_s: float

    def _all(self, target: str) -> pd.Series:
        return self.frame[(self.frame.target == target) & (self.frame["query"] == "ALL")].iloc[0]

    def save(self, run_dir: Any) -> None:
        save_frame(self.frame, "replica_analytics", run_dir)

    def key_numbers(self) -> dict[str, Any]:
        a_p, a_s = self._all("analytics on primary"), self._all("analytics on standby")
        s_alone, s_busy = (
            self._all("service on primary"),
            self._all("service on primary, standby busy"),
        )
        return {
            "analytics_primary_p50_ms": float(a_p.p50_ms),
            "analytics_standby_p50_ms": float(a_s.p50_ms),
            "analytics_primary_p95_ms": float(a_p.p95_ms),
            "analytics_standby_p95_ms": float(a_s.p95_ms),
            "analytics_standby_over_primary_p50": round(float(a_s.p50_ms) / float(a_p.p50_ms), 3)
            if float(a_p.p50_ms)
            else None,
            "service_p95_ms_alone": float(s_alone.p95_ms),
            "service_p95_ms_standby_busy": float(s_busy.p95_ms),
            "service_qps_alone": float(s_alone.throughput_qps),
            "service_qps_standby_busy": float(s_busy.throughput_qps),
            "analytics_errors": int(a_s.errors) + int(a_p.errors),
        }


def compare_analytics(
    setup: ReplicaSetup,
    *,
    clients: int = 2,
    duration_s: float = 5.0,
    warmup_s: float = 1.0,
    seed: int = 42,
) -> AnalyticsResult:
    """The analytics mix on the primary, then on the standby; the service mix on the primary alone,
    then while the standby runs the analytics mix (on a shared machine they share its CPUs too)."""
    wl = default_workload()
    analytics, service = wl.subset(ANALYTICS), wl.subset(SERVICE)
    with connect(setup.dsn) as conn:
        a_params = sample_parameters(conn, analytics, seed=seed)
        s_params = sample_parameters(conn, service, seed=seed)
    wait_caught_up(setup.dsn, setup.replica_dsn)
    kw: dict[str, Any] = {
        "clients": clients,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "seed": seed,
    }
    frames = []

    def tag(result: Any, target: str, workload: str) -> None:
        s = result.summary.copy()
        s.insert(0, "target", target)
        s.insert(1, "workload", workload)
        frames.append(s)

    tag(
        run_python(setup.dsn, analytics, params=a_params, **kw), "analytics on primary", "analytics"
    )
    tag(
        run_python(setup.replica_dsn, analytics, params=a_params, **kw),
        "analytics on standby",
        "analytics",
    )
    tag(run_python(setup.dsn, service, params=s_params, **kw), "service on primary", "service")
    busy: list[Any] = []
    background = threading.Thread(
        target=lambda: busy.append(
            run_python(
                setup.replica_dsn,
                analytics,
                params=a_params,
                clients=clients,
                duration_s=duration_s + 2 * warmup_s + 1.0,
                warmup_s=0.0,
                seed=seed,
            )
        ),
        daemon=True,
    )
    background.start()
    time.sleep(0.5)
    tag(
        run_python(setup.dsn, service, params=s_params, **kw),
        "service on primary, standby busy",
        "service",
    )
    background.join()
    if busy:
        tag(busy[0], "analytics on standby, service busy", "analytics")
    cols = [
        "target",
        "workload",
        "query",
        "count",
        "errors",
        "throughput_qps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ]
    return AnalyticsResult(pd.concat(frames, ignore_index=True)[cols], clients, duration_s)


# ---- recovery conflicts --------------------------------------------------------------------------
@dataclass
class ConflictResult:
    frame: (
        pd.DataFrame
    )  # feedback, standby_queries, cancelled, dead_tuples_after_vacuum, table_bytes, ...
    messages: list[str]

    def save(self, run_dir: Any) -> None:
        save_frame(self.frame, "replica_conflicts", run_dir)

    def key_numbers(self) -> dict[str, Any]:
        f = self.frame.set_index("hot_standby_feedback")
        out: dict[str, Any] = {}
        for value, row in f.iterrows():
            key = "on" if value else "off"
            out[f"cancelled_feedback_{key}"] = int(row.cancelled)
            out[f"standby_queries_feedback_{key}"] = int(row.standby_queries)
            out[f"dead_tuples_kept_feedback_{key}"] = int(row.dead_tuples_after_vacuum)
            out[f"table_mb_feedback_{key}"] = round(float(row.table_bytes) / 1e6, 2)
        return out


def measure_recovery_conflicts(
    setup: ReplicaSetup,
    *,
    rows: int = 100_000,
    rounds: int = 4,
    query_s: float = 2.0,
    max_standby_delay_s: float = 1.0,
    feedback: tuple[bool, ...] = (False, True),
) -> ConflictResult:
    """Standby queries holding a snapshot ``query_s`` while the primary deletes a slice of a table and
    vacuums it, ``rounds`` times, per ``hot_standby_feedback`` setting.

    ``max_standby_streaming_delay`` is set to ``max_standby_delay_s`` for the measurement (the default,
    30 s, lets replay wait that long before cancelling, so only longer queries are cancelled and the
    standby falls behind instead). Needs the embedded standby (its settings are changed and restored).
    The table lives in the kit's scratch schema ``ibcbench_replicas``: a same-named schema the kit did
    not create is refused before anything is done, never dropped.
    """
    with connect(setup.dsn, autocommit=True) as conn:
        drop_kit_schema(conn, SCHEMA)  # a leftover of a killed run; never a user's schema
    if setup.topology is None:
        raise BenchmarkError(
            "conflicts are measured by changing the standby's hot_standby_feedback: that needs the embedded "
            "standby (start_replicas without replica_dsn)"
        )
    topo, index = setup.topology, setup.replica_index
    before = topo._replica(index).settings
    table = sql.Identifier(SCHEMA, "conflict_demo")
    out_rows = []
    messages: set[str] = set()
    with connect(setup.dsn, autocommit=True) as conn:
        create_kit_schema(conn, SCHEMA)
    try:
        for fb in feedback:
            topo.configure_replica(
                index,
                hot_standby_feedback="on" if fb else "off",
                max_standby_streaming_delay=f"{int(max_standby_delay_s * 1000)}ms",
            )
            with connect(setup.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))  # the kit's schema
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (id bigint PRIMARY KEY, grp int NOT NULL, payload text NOT NULL)"
                        " WITH (autovacuum_enabled = off)"
                    ).format(table)
                )
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} SELECT g, g %% 100, repeat('x', 100) FROM generate_series(1, %s::bigint) g"
                    ).format(table),
                    (rows,),
                )
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table))
            wait_caught_up(setup.dsn, setup.replica_dsn)
            stop = threading.Event()
            counts = {"queries": 0, "cancelled": 0, "other_errors": 0}

            def reader(counts: dict[str, int] = counts, stop: threading.Event = stop) -> None:
                r = psycopg.connect(setup.replica_dsn, autocommit=True)
                try:
                    while not stop.is_set():
                        try:
                            with r.transaction():
                                r.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                                r.execute(
                                    sql.SQL("SELECT count(*) FROM {}").format(table)
                                ).fetchone()
                                r.execute("SELECT pg_sleep(%s)", (query_s,))
                                r.execute(
                                    sql.SQL("SELECT sum(length(payload)) FROM {}").format(table)
                                ).fetchone()
                            counts["queries"] += 1
                        except psycopg.Error as exc:
                            text = (
                                str(exc).strip().splitlines()[0]
                                if str(exc).strip()
                                else type(exc).__name__
                            )
                            counts[
                                "cancelled" if CONFLICT_MESSAGE in str(exc) else "other_errors"
                            ] += 1
                            messages.add(text)
                            if (
                                r.closed or r.broken
                            ):  # "terminating connection due to conflict": reconnect
                                r.close()
                                r = psycopg.connect(setup.replica_dsn, autocommit=True)
                finally:
                    r.close()

            thread = threading.Thread(target=reader, daemon=True)
            thread.start()
            time.sleep(
                1.5
            )  # with feedback on, the reader's snapshot reaches the primary's slot first
            started = time.perf_counter()
            slice_rows = max(1, min(10, 100 // max(1, rounds)))  # groups of 1% retired per round
            deleted = rows * slice_rows // 100
            with connect(setup.dsn, autocommit=True) as conn:
                for k in range(rounds):
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE grp >= %s AND grp < %s").format(table),
                        (k * slice_rows, (k + 1) * slice_rows),
                    )
                    conn.execute(
                        sql.SQL("UPDATE {} SET payload = payload WHERE grp = %s").format(table),
                        (99 - k,),
                    )
                    time.sleep(0.2)
                    conn.execute(sql.SQL("VACUUM {}").format(table))
                    # new rows arrive as old ones are retired: with the dead rows removed they reuse
                    # the space; kept for the standby (feedback on), the table grows instead
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} SELECT g, g %% 100, repeat('x', 100) FROM generate_series(%s::bigint, %s::bigint) g"
                        ).format(table),
                        (rows * (k + 1) + 1, rows * (k + 1) + deleted),
                    )
                    time.sleep(query_s / 2 + max_standby_delay_s)
                primary_s = time.perf_counter() - started
                dead, size = conn.execute(
                    "SELECT n_dead_tup, pg_table_size(relid) FROM pg_stat_user_tables"
                    " WHERE schemaname = %s AND relname = 'conflict_demo'",
                    (SCHEMA,),
                ).fetchone()  # type: ignore[misc]
                xmin = conn.execute(
                    "SELECT max(age(xmin)) FROM pg_replication_slots"  # feedback lands in the slot
                ).fetchone()[0]  # type: ignore[index]
            stop.set()
            thread.join(query_s + 5)
            out_rows.append(
                {
                    "hot_standby_feedback": fb,
                    "standby_queries": counts["queries"],
                    "cancelled": counts["cancelled"],
                    "other_errors": counts["other_errors"],
                    "dead_tuples_after_vacuum": int(dead or 0),
                    "table_bytes": int(size or 0),
                    "standby_xmin_age": int(xmin) if xmin is not None else None,
                    "primary_s": round(primary_s, 2),
                    "rows": rows,
                    "rounds": rounds,
                }
            )
    finally:
        topo.configure_replica(
            index,
            **{
                "hot_standby_feedback": before.get("hot_standby_feedback", "off"),
                "max_standby_streaming_delay": before.get("max_standby_streaming_delay", "30s"),
            },
        )
        with connect(setup.dsn, autocommit=True) as conn:
            drop_kit_schema(conn, SCHEMA)
    return ConflictResult(pd.DataFrame(out_rows), sorted(messages))


# ---- a standby restart mid-run ---------------------------------------------------------------------
@dataclass
class RestartResult:
    primary: pd.DataFrame  # the runner's summary on the primary
    reads: dict[str, Any]  # routed reads: on the standby, fallen back to the primary, errors
    restart_s: float
    catch_up_s: float

    def save(self, run_dir: Any) -> None:
        save_frame(self.primary, "replica_restart_primary", run_dir)

    def key_numbers(self) -> dict[str, Any]:
        total = self.primary.set_index("query").loc["ALL"]
        return {
            "restart_primary_errors": int(total.errors),
            "restart_primary_qps": float(total.throughput_qps),
            "restart_read_errors": int(self.reads["errors"]),
            "restart_reads_fell_back": int(self.reads["reads_primary"]),
            "restart_reads_on_standby": int(self.reads["reads_replica"]),
            "restart_s": round(self.restart_s, 2),
        }


def restart_standby_during_run(
    setup: ReplicaSetup, *, duration_s: float = 6.0, clients: int = 2, seed: int = 42
) -> RestartResult:
    """The service mix on the primary for ``duration_s``; routed analytics reads alongside; the
    standby restarted (fast stop, start) at the middle. Needs the embedded standby."""
    if setup.topology is None:
        raise BenchmarkError(
            "a standby restart needs the embedded standby (start_replicas without replica_dsn)"
        )
    wl = default_workload()
    service = wl.subset(SERVICE)
    analytics = wl.subset(["network_stats_range", "relayer_leaderboard"])
    with connect(setup.dsn) as conn:
        s_params = sample_parameters(conn, service, seed=seed)
        a_params = sample_parameters(conn, analytics, seed=seed)
    stop = threading.Event()
    reads = {"errors": 0, "ok": 0}
    routing = RoutingConfig(
        replica_dsns=(setup.replica_dsn,),
        max_lag_s=5.0,
        lag_check_period_s=0.2,
        pool=PoolConfig(
            min_size=1, max_size=2, health_check_period_s=None, slow_query_ms=None, timeout_s=5.0
        ),
    )
    routed = create_routed_pool(routing, setup.dsn)
    restart = {"s": 0.0}

    def read_loop() -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            q = analytics.queries[int(rng.integers(len(analytics.queries)))]
            values = a_params[q.name][int(rng.integers(len(a_params[q.name])))]
            try:
                with routed.reader() as conn:
                    conn.execute(q.sql, values).fetchall()
                reads["ok"] += 1
            except psycopg.Error:
                reads["errors"] += 1
            time.sleep(0.01)

    def restart_later() -> None:
        if stop.wait(duration_s / 2):
            return
        t0 = time.perf_counter()
        setup.topology.restart_replica(setup.replica_index)  # type: ignore[union-attr]
        restart["s"] = time.perf_counter() - t0

    threads = [
        threading.Thread(target=read_loop, daemon=True),
        threading.Thread(target=restart_later, daemon=True),
    ]
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)  # the replica pool's reconnect attempts are expected here
    try:
        for t in threads:
            t.start()
        result = run_python(
            setup.dsn,
            service,
            clients=clients,
            duration_s=duration_s,
            warmup_s=0.0,
            params=s_params,
            seed=seed,
        )
        threads[1].join()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        stats = routed.stats()
        routed.close()
        pool_log.setLevel(level)
    catch_up = wait_caught_up(setup.dsn, setup.replica_dsn)
    summary = {**stats.as_dict(), **reads}
    return RestartResult(result.summary, summary, restart["s"], catch_up)
