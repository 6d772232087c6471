"""``ibcbench db status``: what the server is, what it has, and what shape the schema took on it."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from ibcbench.db import ServerInfo, connect, describe_dsn, resolve_dsn, server_info
from ibcbench.errors import MissingExtension
from ibcbench.settings import ServerSettings, explicit_dsn


@dataclass(frozen=True)
class DatabaseStatus:
    target: str
    embedded: bool
    data_dir: str | None
    info: ServerInfo
    schema_version: int | None
    schema_dirty: bool
    packet_flow_kind: str | None
    hourly_packet_stats_kind: str | None
    cron_jobs: list[tuple[str, str]] = field(default_factory=list)
    row_estimates: dict[str, int] = field(default_factory=dict)


def _scalar(conn: psycopg.Connection, query: str, params: tuple = ()) -> object:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def packet_flow_kind(conn: psycopg.Connection) -> str | None:
    """'hypertable (N chunks)', 'plain table', or None when packet_flow does not exist."""
    if _scalar(conn, "SELECT to_regclass('packet_flow')") is None:
        return None
    if _scalar(conn, "SELECT to_regclass('timescaledb_information.hypertables')") is not None:
        chunks = _scalar(
            conn,
            "SELECT num_chunks FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'packet_flow' AND hypertable_schema = current_schema()",
        )
        if chunks is not None:
            return f"hypertable ({chunks} chunks)"
    return "plain table"


def hourly_stats_kind(conn: psycopg.Connection) -> str | None:
    """How hourly_packet_stats is built here: continuous aggregate or plain materialized view."""
    if _scalar(conn, "SELECT to_regclass('hourly_packet_stats')") is None:
        return None
    if (
        _scalar(conn, "SELECT to_regclass('timescaledb_information.continuous_aggregates')")
        is not None
    ):
        is_cagg = _scalar(
            conn,
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = 'hourly_packet_stats' AND view_schema = current_schema()",
        )
        if is_cagg:
            return "continuous aggregate (refresh policy every 5 min)"
    return "plain materialized view (continuous aggregates unavailable; refreshed CONCURRENTLY by pg_cron)"


def database_status(
    dsn: str | None = None, settings: ServerSettings | None = None
) -> DatabaseStatus:
    from ibcbench.migrate import Migrator
    from ibcbench.server import LocalServer

    embedded = explicit_dsn(dsn) is None
    server = LocalServer(settings) if embedded else None
    with connect(resolve_dsn(dsn, settings)) as conn:
        try:
            info = server_info(conn)
        except psycopg.errors.UndefinedFile as exc:
            # an older TimescaleDB built without the Community edition, on a server that runs it
            first = str(exc).strip().splitlines()[0]
            raise MissingExtension(
                f"{describe_dsn(conn.info.dsn)}: this server's TimescaleDB edition cannot load the "
                f"version in this database ({first}): run `ibcbench db up` to update the kit's "
                "databases, or ALTER EXTENSION timescaledb UPDATE as the first command of a new session"
            ) from exc
        version, dirty = Migrator._read_version(conn)
        pf_kind = packet_flow_kind(conn)
        hs_kind = hourly_stats_kind(conn)
        jobs: list[tuple[str, str]] = []
        if _scalar(conn, "SELECT to_regclass('cron.job')") is not None:
            jobs = [
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT jobname, schedule FROM cron.job WHERE database = current_database() ORDER BY jobname"
                ).fetchall()
            ]
        estimates = {
            r[0]: int(r[1])
            for r in conn.execute(
                "SELECT c.relname, greatest(c.reltuples, 0)::bigint FROM pg_class c"
                " WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)",
                (
                    [
                        "clearing_operations",
                        "network_stats",
                        "channel_performance",
                        "relayer_performance",
                    ],
                ),
            ).fetchall()
        }
        if pf_kind is not None:
            estimates["packet_flow"] = int(
                _scalar(
                    conn,
                    "SELECT CASE WHEN to_regproc('approximate_row_count') IS NOT NULL"
                    " THEN approximate_row_count('packet_flow') ELSE"
                    " (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'packet_flow'::regclass) END",
                )
                or 0
            )
        target = describe_dsn(conn.info.dsn)
    return DatabaseStatus(
        target=target,
        embedded=embedded,
        data_dir=str(server.settings.data_dir) if server else None,
        info=info,
        schema_version=version,
        schema_dirty=dirty,
        packet_flow_kind=pf_kind,
        hourly_packet_stats_kind=hs_kind,
        cron_jobs=jobs,
        row_estimates=estimates,
    )


def timescaledb_line(info: ServerInfo) -> str:
    """Version and edition, the licence setting they come from, and an update waiting to be applied."""
    line = info.edition_label
    if info.timescaledb_version is not None and info.timescaledb_edition:
        line += f" (timescaledb.license={info.timescaledb_edition})"
    installed = info.available_extensions.get("timescaledb")
    if info.timescaledb_version is not None and installed and installed != info.timescaledb_version:
        line += f"; {installed} is installed: run `ibcbench db up` to update"
    return line


def format_status(status: DatabaseStatus) -> str:
    info = status.info
    lines = [
        f"server:       {'embedded' if status.embedded else 'external'} {status.target}",
    ]
    if status.data_dir:
        lines.append(f"data dir:     {status.data_dir}")
    lines += [
        f"postgresql:   {info.version}",
        f"timescaledb:  {timescaledb_line(info)}",
        "extensions:   "
        + (
            ", ".join(f"{k} {v}" for k, v in sorted(info.extensions.items()) if k != "plpgsql")
            or "none"
        ),
        f"preloaded:    {', '.join(info.preload_libraries) or 'none'}",
        "schema:       "
        + (
            "not installed (run `ibcbench schema up`)"
            if status.schema_version is None
            else f"version {status.schema_version}"
            + (" DIRTY (run `ibcbench schema force`)" if status.schema_dirty else "")
        ),
    ]
    if status.packet_flow_kind:
        lines.append(f"packet_flow:  {status.packet_flow_kind}")
    if status.hourly_packet_stats_kind:
        lines.append(f"hourly_packet_stats: {status.hourly_packet_stats_kind}")
    if status.cron_jobs:
        lines.append(
            f"pg_cron jobs: {len(status.cron_jobs)} ({', '.join(n for n, _ in status.cron_jobs)})"
        )
    elif info.cron_database and info.cron_database != info.database:
        lines.append(f"pg_cron jobs: none here (pg_cron runs in database {info.cron_database!r})")
    if status.row_estimates:
        lines.append(
            "rows (est.):  "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(status.row_estimates.items()))
        )
    return "\n".join(lines)
