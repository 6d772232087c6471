"""The members of a replica run: where the primary, a standby and PgBouncer are (:func:`start_replicas`),
and how far the standby has replayed."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import psycopg

from ibcbench.bench.unavailable import not_available
from ibcbench.db import resolve_dsn
from ibcbench.errors import BenchmarkError
from ibcbench.infra.scaleout import ScaleOut, embedded_topology, pgbouncer_url, replica_urls
from ibcbench.results.metrics.metric import Metric, informational
from ibcbench.results.recorded import run_folder
from ibcbench.toolkit.routing import parse_lsn

SCHEMA = "ibcbench_replicas"
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


@dataclass(frozen=True, eq=False)
class ReplicasNotAvailable:
    """What each replica measurement returns when there is no standby: why, recorded as ``replicas``
    (one result however many measurements return it) and shown as a one-row table."""

    text: str  # "not available: <reason>"

    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational(
            "replicas",
            "",
            "why the replica measurements were not run (no standby for an external server)",
            optional=True,
        ),
    )

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"replicas": [self.text]})

    # the tables the measurements' results show, each the one row that says why
    samples = primary = reads = messages = frame

    def key_numbers(self) -> dict[str, Any]:
        return {"replicas": self.text}

    def save(self, run_dir: Any) -> None:
        run = run_folder(run_dir)
        if run is not None:
            run.update_manifest(replicas=self.text)


@dataclass
class ReplicaSetup:
    """Where the primary, a standby and PgBouncer are, for one run (``skipped``: no standby, why)."""

    dsn: str
    replica_dsn: str
    pgbouncer_dsn: str | None
    topology: ScaleOut | None = None
    replica_index: int = 1
    skipped: ReplicasNotAvailable | None = None
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
    """A standby (and PgBouncer) for ``dsn``: given by URL, else started beside the embedded server;
    neither (an external server, none given): a setup whose measurements say why they are skipped."""
    target = resolve_dsn(dsn)
    given = replica_urls(replica_dsn) if (replica_dsn or _env("REPLICA_URL")) else []
    if given:
        bouncer = pgbouncer_url(pgbouncer_dsn) if pgbouncer else None
        return ReplicaSetup(target, given[0], bouncer)
    topo = embedded_topology(target)
    if topo is None:
        reason = (
            "the primary is not the kit's embedded server: give its standby with replica_dsn "
            "(or REPLICA_URL), and PgBouncer with pgbouncer_dsn (or PGBOUNCER_URL)"
        )
        skipped = ReplicasNotAvailable(not_available("the replica measurements", reason))
        return ReplicaSetup(target, "", None, skipped=skipped)
    setup = ReplicaSetup(target, "", None, topo)
    setup._stack.enter_context(topo.started(replicas=1, pgbouncer=pgbouncer))
    setup.replica_dsn = replica_urls(dsn=target)[0]
    setup.pgbouncer_dsn = pgbouncer_url(dsn=target) if pgbouncer else None
    return setup


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


def standby_lag(conn: psycopg.Connection) -> tuple[int, float]:
    """The standby's replayed WAL position and the age of its newest replayed commit (0 when caught up)."""
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
        while standby_lag(r)[0] < goal:
            if time.monotonic() - started > timeout_s:
                raise BenchmarkError(f"the standby did not catch up within {timeout_s:g} s")
            time.sleep(0.02)
    return time.monotonic() - started
