"""Beyond one server: the embedded primary with streaming standbys and PgBouncer in front of it.

``ScaleOut(settings).up(replicas=N, pgbouncer=True)`` brings the embedded cluster to that shape:
standbys ``replica-1`` .. ``replica-N`` (:mod:`ibcbench.infra.standbys`: ``pg_basebackup -R`` copies of the
primary, one replication slot and port each) and PgBouncer (:mod:`ibcbench.infra.pgbouncer`).

Standbys and PgBouncer ask for the password as the primary does, and their URLs name the primary's
password file (``passfile``), never the password.

Every member runs as the primary's OS user (the unprivileged ``ibcbench`` when the kit runs as root),
through :class:`~ibcbench.infra.server.LocalServer`'s own runner. The shape is recorded in
``<cluster_dir>/topology.json`` *before* a member starts, so nothing the kit starts is unknown to it.
``up()`` with no arguments restores the recorded shape; ``down()`` stops PgBouncer, the standbys and
the primary. Members started for one run (``owner_pid``: a notebook kernel, a test session) are
removed by the next ``up()`` when their owner is gone, so a killed run leaves no process behind.

External members are given by URL: ``REPLICA_URL`` (comma-separated for several) and
``PGBOUNCER_URL`` beside ``DATABASE_URL``; :func:`replica_urls` and :func:`pgbouncer_url` resolve
them the way :func:`ibcbench.db.resolve_dsn` resolves the primary.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ibcbench.dsn import with_database
from ibcbench.errors import ConfigError
from ibcbench.infra.members import REPLICA_PREFIX, Member, TopologyState
from ibcbench.infra.pgbouncer import POOL_MODES, PgBouncer, find_pgbouncer
from ibcbench.infra.standbys import MAX_REPLICAS, Standbys
from ibcbench.settings import ServerSettings, explicit_dsn


@dataclass(frozen=True)
class ScaleOutUpResult:
    members: list[Member]
    started: list[str]
    removed: list[str]
    cleaned: list[str]
    primary: Any = None  # the server's UpResult


def _check_shape(replicas: int | None, pool_mode: str | None, pool_size: int | None) -> None:
    if replicas is not None and not 0 <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"replicas must be between 0 and {MAX_REPLICAS}, not {replicas}")
    if pool_mode is not None and pool_mode not in POOL_MODES:
        raise ConfigError(f"pool mode {pool_mode!r} is unknown: use {' or '.join(POOL_MODES)}")
    if pool_size is not None and not 1 <= pool_size <= 150:
        raise ConfigError(f"pool_size must be between 1 and 150, not {pool_size}")


class ScaleOut(Standbys, PgBouncer):
    """The embedded primary (a :class:`LocalServer`), its standbys and PgBouncer. Safe to call again."""

    def members(self) -> list[Member]:
        state = self.read_state()
        primary_running = self.server.is_running()
        primary_state = self.server.read_state()
        out = [
            Member(
                "primary",
                "primary",
                primary_state.url if primary_state else "",
                primary_running,
                str(self.settings.data_dir),
            )
        ]
        for r in state.replicas:
            out.append(
                Member(
                    "replica",
                    r.name,
                    self.member_url(r.port),
                    self.replica_running(r.index),
                    str(self.replica_dir(r.index)),
                )
            )
        if state.pgbouncer:
            b = state.pgbouncer
            out.append(
                Member(
                    "pgbouncer",
                    "pgbouncer",
                    self.member_url(b.port),
                    self.pgbouncer_running(),
                    f"{b.pool_mode} pooling, pool of {b.pool_size}",
                )
            )
        return out

    # ---- lifecycle -----------------------------------------------------------------------------
    def up(
        self,
        *,
        replicas: int | None = None,
        pgbouncer: bool | None = None,
        pool_mode: str | None = None,
        pool_size: int | None = None,
        owner_pid: int | None = None,
    ) -> ScaleOutUpResult:
        """Start the primary and bring the members to the shape asked for.

        ``replicas``/``pgbouncer`` None keep the recorded shape; ``replicas=0`` or ``pgbouncer=False``
        remove those members (a removed standby's slot is dropped and its folder deleted). Members
        started here get ``owner_pid``: when that process is gone, the next ``up()`` removes them.
        """
        _check_shape(replicas, pool_mode, pool_size)
        if pgbouncer:
            find_pgbouncer()
        primary = self.server.up()
        cleaned = self.clean_stale()
        user = self.server._server_user()
        state, started, removed = self._up_replicas(self.read_state(), replicas, owner_pid, user)
        more_started, more_removed = self._up_pgbouncer(
            state, pgbouncer, pool_mode, pool_size, owner_pid, user
        )
        return ScaleOutUpResult(
            self.members(), started + more_started, removed + more_removed, cleaned, primary
        )

    def down(self) -> list[str]:
        """Stop PgBouncer, the standbys and the primary (data and the recorded shape are kept)."""
        stopped = []
        if self._stop_pgbouncer():
            stopped.append("pgbouncer")
        for r in self.read_state().replicas:
            if self._stop_replica(r.index):
                stopped.append(r.name)
        # standby folders the state does not name (a run killed while creating one)
        for folder in self._replica_folders():
            index = int(folder.name[len(REPLICA_PREFIX) :])
            if index not in {r.index for r in self.read_state().replicas} and self._stop_replica(
                index
            ):
                stopped.append(folder.name)
        if self.server.down():
            stopped.append("primary")
        return stopped

    @contextlib.contextmanager
    def started(
        self,
        *,
        replicas: int = 1,
        pgbouncer: bool = False,
        pool_mode: str | None = None,
        pool_size: int | None = None,
    ) -> Iterator[ScaleOutUpResult]:
        """Members for one run: what this starts is owned by this process and removed on exit;
        what was already there is used and left as it was."""
        before = self.read_state()
        had_replicas = len(before.replicas)
        result = self.up(
            replicas=max(replicas, had_replicas),
            pgbouncer=True if pgbouncer else None,
            pool_mode=pool_mode,
            pool_size=pool_size,
            owner_pid=os.getpid(),
        )
        try:
            yield result
        finally:
            state = self.read_state()
            mine = [r for r in state.replicas if r.owner_pid == os.getpid()]
            for r in mine:
                self._remove_replica(r)
            bouncer = state.pgbouncer
            restore_bouncer = before.pgbouncer
            if bouncer is not None and bouncer.owner_pid == os.getpid():
                self._stop_pgbouncer()
                bouncer = None
            elif restore_bouncer is not None and bouncer is not None and bouncer != restore_bouncer:
                self._stop_pgbouncer()  # the pool mode was changed for this run: put it back
                bouncer = restore_bouncer
            self._write_state(
                TopologyState(
                    tuple(r for r in state.replicas if r.owner_pid != os.getpid()), bouncer
                )
            )
            if bouncer is not None and not self.pgbouncer_running() and self.server.is_running():
                self._start_pgbouncer(bouncer, self.server._server_user())

    # ---- what a killed run left ----------------------------------------------------------------
    def clean_stale(self) -> list[str]:
        """Remove what runs that are gone left behind; returns what was cleaned (one line each).

        Members whose owner process is gone are removed; standby folders and slots the state does not
        name are removed (a run killed while creating a standby); a PgBouncer the state does not name
        is stopped; stale pidfiles of PgBouncer are deleted. Only the kit's own paths are touched.
        """
        cleaned = self._clean_stale_replicas()
        return cleaned + self._clean_stale_pgbouncer(self.read_state())


def embedded_topology(dsn: str | None, settings: ServerSettings | None = None) -> ScaleOut | None:
    """The embedded primary and members behind ``dsn`` (None: the embedded server of ``settings``), found by the
    port among the kit's clusters under ``IBCBENCH_HOME``; None when ``dsn`` is an external server."""
    if explicit_dsn(dsn) is None:
        return ScaleOut(settings)
    try:
        port = conninfo_to_dict(explicit_dsn(dsn) or "").get("port")
    except psycopg.ProgrammingError:
        return None
    if port is None:
        return None
    base = settings or ServerSettings()
    candidates = [base.name]
    if base.home.is_dir():
        candidates += sorted(p.parent.name for p in base.home.glob("*/server.json"))
    for name in dict.fromkeys(candidates):
        try:
            topo = ScaleOut(replace(base, name=name))
        except ConfigError:
            continue
        primary = topo.server.read_state()
        if primary is not None and int(port) == primary.port and topo.server.is_running():
            return topo
    return None


def same_database(url: str, dsn: str | None) -> str:
    """``url`` on the database ``dsn`` names (the embedded members serve every database)."""
    if explicit_dsn(dsn) is None:
        return url
    dbname = conninfo_to_dict(explicit_dsn(dsn) or "").get("dbname")
    if not dbname:
        return url
    return with_database(url, str(dbname))


def replica_urls(
    replica_dsn: str | None = None,
    *,
    dsn: str | None = None,
    settings: ServerSettings | None = None,
) -> list[str]:
    """Standby URLs: ``replica_dsn`` (comma-separated), else ``REPLICA_URL``, else the running standbys
    of the embedded primary behind ``dsn`` (on ``dsn``'s database)."""
    given = replica_dsn or os.environ.get("REPLICA_URL")
    if given:
        return [u.strip() for u in given.split(",") if u.strip()]
    topo = embedded_topology(dsn, settings)
    return [same_database(u, dsn) for u in topo.replica_urls()] if topo else []


def pgbouncer_url(
    pgbouncer_dsn: str | None = None,
    *,
    dsn: str | None = None,
    settings: ServerSettings | None = None,
) -> str | None:
    """PgBouncer's URL: ``pgbouncer_dsn``, else ``PGBOUNCER_URL``, else the embedded one behind ``dsn``."""
    given = pgbouncer_dsn or os.environ.get("PGBOUNCER_URL")
    if given:
        return given
    topo = embedded_topology(dsn, settings)
    url = topo.pgbouncer_url() if topo else None
    return same_database(url, dsn) if url else None
