"""Queries cancelled on the standby by recovery conflicts while the primary deletes and vacuums, with
``hot_standby_feedback`` off and on, and what feedback costs the primary
(:func:`measure_recovery_conflicts`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import psycopg
from psycopg import sql

from ibcbench.bench.replicas.members import (
    CONFLICT_MESSAGE,
    SCHEMA,
    ReplicaSetup,
    ReplicasNotAvailable,
    wait_caught_up,
)
from ibcbench.data.ownership import create_kit_schema, drop_kit_schema
from ibcbench.db import connect
from ibcbench.errors import BenchmarkError
from ibcbench.infra.scaleout import ScaleOut
from ibcbench.results.metrics.metric import Metric, informational
from ibcbench.results.recorded import save_frame

_TABLE = sql.Identifier(SCHEMA, "conflict_demo")


@dataclass(frozen=True)
class ConflictResult:
    frame: (
        pd.DataFrame
    )  # feedback, standby_queries, cancelled, dead_tuples_after_vacuum, table_bytes, ...
    messages: list[str]

    def save(self, run_dir: Any) -> None:
        save_frame(self.frame, "replica_conflicts", run_dir)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        # one of each per hot_standby_feedback setting measured (off and on by default)
        Metric(
            "cancelled_feedback_off",
            "none",
            "queries",
            note="standby queries cancelled by vacuum: expected > 0",
            optional=True,
        ),
        Metric(
            "cancelled_feedback_on",
            "lower",
            "queries",
            note="cancelled with hot_standby_feedback: 0 expected",
            optional=True,
        ),
        informational(
            "standby_queries_feedback_off",
            "queries",
            "standby queries that completed",
            optional=True,
        ),
        informational(
            "standby_queries_feedback_on",
            "queries",
            "standby queries that completed",
            optional=True,
        ),
        informational(
            "dead_tuples_kept_feedback_off",
            "rows",
            "dead rows vacuum could not remove",
            optional=True,
        ),
        Metric(
            "dead_tuples_kept_feedback_on",
            "none",
            "rows",
            note="what feedback costs the primary: dead rows kept",
            optional=True,
        ),
        informational(
            "table_mb_feedback_off", "MB", "the demo table after the rounds", optional=True
        ),
        Metric(
            "table_mb_feedback_on",
            "none",
            "MB",
            note="the demo table, dead rows kept for the standby",
            optional=True,
        ),
    )

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
) -> ConflictResult | ReplicasNotAvailable:
    """Standby queries holding a snapshot ``query_s`` while the primary deletes a slice of a table and
    vacuums it, ``rounds`` times, per ``hot_standby_feedback`` setting.

    ``max_standby_streaming_delay`` is set to ``max_standby_delay_s`` for the measurement (the default,
    30 s, lets replay wait that long before cancelling, so only longer queries are cancelled and the
    standby falls behind instead). Needs the embedded standby (its settings are changed and restored).
    The table lives in the kit's scratch schema ``ibcbench_replicas``: a same-named schema the kit did
    not create is refused before anything is done, never dropped.
    """
    if setup.skipped is not None:
        return setup.skipped
    with connect(setup.dsn, autocommit=True) as conn:
        drop_kit_schema(conn, SCHEMA)  # a leftover of a killed run; never a user's schema
    if setup.topology is None:
        raise BenchmarkError(
            "conflicts are measured by changing the standby's hot_standby_feedback: that needs the embedded "
            "standby (start_replicas without replica_dsn)"
        )
    topo, index = setup.topology, setup.replica_index
    before = topo._replica(index).settings
    out_rows = []
    messages: set[str] = set()
    with connect(setup.dsn, autocommit=True) as conn:
        create_kit_schema(conn, SCHEMA)
    try:
        for fb in feedback:
            _configure_standby(topo, index, feedback=fb, delay_s=max_standby_delay_s)
            _create_demo_table(setup.dsn, rows)
            wait_caught_up(setup.dsn, setup.replica_dsn)
            reader = _StandbyReader(setup.replica_dsn, query_s)
            reader.start()
            time.sleep(
                1.5
            )  # with feedback on, the reader's snapshot reaches the primary's slot first
            primary = _retire_rows(setup.dsn, rows, rounds, query_s, max_standby_delay_s)
            reader.stop(timeout_s=query_s + 5)
            messages |= reader.messages
            out_rows.append(
                {
                    "hot_standby_feedback": fb,
                    "standby_queries": reader.counts["queries"],
                    "cancelled": reader.counts["cancelled"],
                    "other_errors": reader.counts["other_errors"],
                    **primary,
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


def _configure_standby(topo: ScaleOut, index: int, *, feedback: bool, delay_s: float) -> None:
    topo.configure_replica(
        index,
        hot_standby_feedback="on" if feedback else "off",
        max_standby_streaming_delay=f"{int(delay_s * 1000)}ms",
    )


def _create_demo_table(dsn: str, rows: int) -> None:
    """The demo table in the kit's schema, ``rows`` rows in 100 groups, vacuumed, no autovacuum."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_TABLE))  # the kit's schema
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, grp int NOT NULL, payload text NOT NULL)"
                " WITH (autovacuum_enabled = off)"
            ).format(_TABLE)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT g, g %% 100, repeat('x', 100) FROM generate_series(1, %s::bigint) g"
            ).format(_TABLE),
            (rows,),
        )
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(_TABLE))


def _retire_rows(
    dsn: str, rows: int, rounds: int, query_s: float, delay_s: float
) -> dict[str, Any]:
    """On the primary, ``rounds`` times: delete a slice of groups, update another, vacuum, insert as
    many new rows; then what is left: dead rows, table size, the standby's xmin age in the slot."""
    started = time.perf_counter()
    slice_rows = max(1, min(10, 100 // max(1, rounds)))  # groups of 1% retired per round
    deleted = rows * slice_rows // 100
    with connect(dsn, autocommit=True) as conn:
        for k in range(rounds):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE grp >= %s AND grp < %s").format(_TABLE),
                (k * slice_rows, (k + 1) * slice_rows),
            )
            conn.execute(
                sql.SQL("UPDATE {} SET payload = payload WHERE grp = %s").format(_TABLE),
                (99 - k,),
            )
            time.sleep(0.2)
            conn.execute(sql.SQL("VACUUM {}").format(_TABLE))
            # new rows arrive as old ones are retired: with the dead rows removed they reuse
            # the space; kept for the standby (feedback on), the table grows instead
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT g, g %% 100, repeat('x', 100) FROM generate_series(%s::bigint, %s::bigint) g"
                ).format(_TABLE),
                (rows * (k + 1) + 1, rows * (k + 1) + deleted),
            )
            time.sleep(query_s / 2 + delay_s)
        primary_s = time.perf_counter() - started
        dead, size = conn.execute(
            "SELECT n_dead_tup, pg_table_size(relid) FROM pg_stat_user_tables"
            " WHERE schemaname = %s AND relname = 'conflict_demo'",
            (SCHEMA,),
        ).fetchone()  # type: ignore[misc]
        xmin = conn.execute(
            "SELECT max(age(xmin)) FROM pg_replication_slots"  # feedback lands in the slot
        ).fetchone()[0]  # type: ignore[index]
    return {
        "dead_tuples_after_vacuum": int(dead or 0),
        "table_bytes": int(size or 0),
        "standby_xmin_age": int(xmin) if xmin is not None else None,
        "primary_s": round(primary_s, 2),
    }


class _StandbyReader:
    """A thread running snapshot-holding queries on the standby until :meth:`stop`: completed,
    cancelled by a recovery conflict, other errors, and the first line of each error seen."""

    def __init__(self, replica_dsn: str, query_s: float) -> None:
        self.replica_dsn, self.query_s = replica_dsn, query_s
        self.counts = {"queries": 0, "cancelled": 0, "other_errors": 0}
        self.messages: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, timeout_s: float) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        r = psycopg.connect(self.replica_dsn, autocommit=True)
        try:
            while not self._stop.is_set():
                try:
                    self._query(r)
                    self.counts["queries"] += 1
                except psycopg.Error as exc:
                    text = (
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    )
                    self.counts[
                        "cancelled" if CONFLICT_MESSAGE in str(exc) else "other_errors"
                    ] += 1
                    self.messages.add(text)
                    if r.closed or r.broken:  # "terminating connection due to conflict": reconnect
                        r.close()
                        r = psycopg.connect(self.replica_dsn, autocommit=True)
        finally:
            r.close()

    def _query(self, r: psycopg.Connection) -> None:
        with r.transaction():
            r.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            r.execute(sql.SQL("SELECT count(*) FROM {}").format(_TABLE)).fetchone()
            r.execute("SELECT pg_sleep(%s)", (self.query_s,))
            r.execute(sql.SQL("SELECT sum(length(payload)) FROM {}").format(_TABLE)).fetchone()
