"""The state of each member of a primary: role, lag, slot and pool counters (for ``db status``).

The members are those of the embedded primary (:class:`ibcbench.infra.scaleout.ScaleOut`) or, for an
external server, the ones ``REPLICA_URL`` and ``PGBOUNCER_URL`` name. The lines ``db status`` prints
are written in :mod:`ibcbench.commands.db`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ibcbench.db import resolve_dsn
from ibcbench.dsn import describe_dsn
from ibcbench.infra.members import REPLICA_PREFIX, SLOT_PREFIX
from ibcbench.infra.pgbouncer import admin_console_url, show_pools
from ibcbench.infra.scaleout import (
    ScaleOut,
    embedded_topology,
    pgbouncer_url,
    replica_urls,
    same_database,
)
from ibcbench.infra.standbys import replication_rows, standby_lag
from ibcbench.settings import ServerSettings


@dataclass(frozen=True)
class MemberStatus:
    role: str
    target: str
    running: bool
    lag_bytes: int | None = None
    lag_s: float | None = None
    replay_lag_s: float | None = None
    slot: str | None = None
    slot_active: bool | None = None
    slot_restart_lsn: str | None = None
    pools: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""


def topology_status(
    dsn: str | None = None,
    *,
    replica_dsn: str | None = None,
    pgbouncer_dsn: str | None = None,
    settings: ServerSettings | None = None,
) -> list[MemberStatus]:
    """Every member with its role, lag, slot and pool counters."""
    primary = resolve_dsn(dsn, settings)
    with psycopg.connect(primary, autocommit=True, connect_timeout=10) as conn:
        rows = replication_rows(conn)
        slots = conn.execute(
            "SELECT slot_name, active, restart_lsn::text FROM pg_replication_slots WHERE slot_type = 'physical'"
        ).fetchall()
    out = [
        MemberStatus(
            "primary",
            describe_dsn(primary),
            True,
            detail=f"{len(rows)} standby(s) streaming, {len(slots)} physical slot(s)",
        )
    ]
    topo = embedded_topology(dsn, settings)
    out += _replica_statuses(topo, rows, slots, dsn, replica_dsn, settings)
    bouncer = _pgbouncer_status(topo, dsn, pgbouncer_dsn, settings)
    return out + ([bouncer] if bouncer is not None else [])


def _replica_statuses(
    topo: ScaleOut | None,
    rows: list[dict[str, Any]],
    slots: list[tuple[Any, ...]],
    dsn: str | None,
    replica_dsn: str | None,
    settings: ServerSettings | None,
) -> list[MemberStatus]:
    """Each standby: the embedded ones by name (running or not), else the URLs given."""
    names: list[str | None] = []
    if not (replica_dsn or os.environ.get("REPLICA_URL")) and topo is not None:
        reps = topo.read_state().replicas
        urls = [same_database(topo.member_url(r.port), dsn) for r in reps]
        names = [r.name for r in reps]
    else:
        urls = replica_urls(replica_dsn, dsn=dsn, settings=settings)
        names = [None] * len(urls)
    by_name = {r["application_name"]: r for r in rows}
    slot_by_name = {s[0]: s for s in slots}
    out = []
    for url, name in zip(urls, names, strict=True):
        row = (
            by_name.get(name) if name else (rows[0] if len(rows) == 1 and len(urls) == 1 else None)
        )
        slot = slot_by_name.get(row["slot_name"]) if row and row.get("slot_name") else None
        if slot is None and name:
            slot = slot_by_name.get(f"{SLOT_PREFIX}{name[len(REPLICA_PREFIX) :]}")
        out.append(_replica_status(url, name, row, slot))
    return out


def _replica_status(
    url: str, name: str | None, row: dict[str, Any] | None, slot: tuple[Any, ...] | None
) -> MemberStatus:
    """One standby: its lag as the primary sees it (``row``), its slot, and its own replay lag."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as rconn:
            _, lag_s, paused = standby_lag(rconn)
        running = True
    except psycopg.OperationalError:
        lag_s, paused, running = None, False, False
    return MemberStatus(
        "replica",
        (name + " " if name else "") + describe_dsn(url),
        running,
        lag_bytes=int(row["lag_bytes"]) if row and row["lag_bytes"] is not None else None,
        lag_s=lag_s,
        replay_lag_s=row["replay_lag_s"] if row else None,
        slot=slot[0] if slot else None,
        slot_active=bool(slot[1]) if slot else None,
        slot_restart_lsn=slot[2] if slot else None,
        detail=("replay paused; " if paused else "") + (row["state"] if row else "not streaming"),
    )


def _pgbouncer_status(
    topo: ScaleOut | None,
    dsn: str | None,
    pgbouncer_dsn: str | None,
    settings: ServerSettings | None,
) -> MemberStatus | None:
    """PgBouncer with its pools (None: there is none); the embedded one also when it is stopped."""
    bouncer = pgbouncer_url(pgbouncer_dsn, dsn=dsn, settings=settings)
    if bouncer is None and topo is not None and topo.read_state().pgbouncer is not None:
        b = topo.read_state().pgbouncer
        assert b is not None
        return MemberStatus(
            "pgbouncer", describe_dsn(topo.member_url(b.port)), False, detail="not running"
        )
    if bouncer is None:
        return None
    try:
        pools = show_pools(admin_console_url(bouncer))
        running = True
    except psycopg.Error as exc:
        pools, running = [], False
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    else:
        state = topo.read_state() if topo else None
        mode = state.pgbouncer.pool_mode if state and state.pgbouncer else ""
        detail = f"{mode} pooling" if mode else ""
    return MemberStatus("pgbouncer", describe_dsn(bouncer), running, pools=pools, detail=detail)
