"""``ibcbench db status``: what the server is, what it has, and what shape the schema took on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from ibcbench.db import ServerInfo, connect, resolve_dsn, server_info
from ibcbench.dsn import describe_dsn
from ibcbench.errors import ConfigError, MissingExtension, first_line
from ibcbench.settings import ServerSettings, explicit_dsn


@dataclass(frozen=True)
class TimescaleJob:
    """A TimescaleDB job of this database (user jobs and policies, ids from 1000) and how it fares."""

    job_id: int
    name: str
    schedule: str
    last_run_status: str | None
    total_failures: int
    last_error: str | None


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
    invalid_indexes: list[str] = field(default_factory=list)
    #: when dirty: the last version fully applied, the one to force
    schema_clean_version: int | None = None
    timescaledb_jobs: list[TimescaleJob] = field(default_factory=list)


def _scalar(conn: psycopg.Connection, query: str, params: tuple = ()) -> Any:
    row = conn.execute(query, params).fetchone()
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


def timescaledb_jobs(conn: psycopg.Connection) -> list[TimescaleJob]:
    """TimescaleDB jobs here, with failures from job_stats and the latest message from job_errors."""
    if _scalar(conn, "SELECT to_regclass('timescaledb_information.job_errors')") is None:
        return []
    rows = conn.execute(
        "SELECT j.job_id, coalesce(j.config->>'name', j.application_name), j.schedule_interval::text,"
        " s.last_run_status, coalesce(s.total_failures, 0),"
        " (SELECT e.err_message FROM timescaledb_information.job_errors e"
        "   WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC NULLS LAST LIMIT 1)"
        " FROM timescaledb_information.jobs j"
        " LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id"
        " WHERE j.job_id >= 1000 ORDER BY j.job_id"
    ).fetchall()
    return [TimescaleJob(r[0], r[1], r[2], r[3], int(r[4]), r[5]) for r in rows]


def job_schedules(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """The kit's jobs and where they run: (name, 'pg_cron' or 'timescaledb', schedule)."""
    _require_job_functions(conn)
    return [
        (r[0], r[1], r[2])
        for r in conn.execute("SELECT * FROM ibcbench_job_schedules() ORDER BY 1").fetchall()
    ]


def use_scheduler(conn: psycopg.Connection, scheduler: str) -> list[tuple[str, str, str]]:
    """Move the kit's maintenance jobs to ``scheduler`` ('timescaledb' or 'pg_cron'), all or none."""
    if scheduler not in ("pg_cron", "timescaledb"):
        raise ConfigError(f"scheduler {scheduler!r} is unknown: use pg_cron or timescaledb")
    _require_job_functions(conn)
    try:
        with conn.transaction():
            rows = conn.execute("SELECT * FROM ibcbench_use_scheduler(%s)", (scheduler,)).fetchall()
    except psycopg.errors.RaiseException as exc:
        raise ConfigError(str(exc.diag.message_primary or exc).strip()) from exc
    return [(r[0], r[1], r[2]) for r in rows]


def _require_job_functions(conn: psycopg.Connection) -> None:
    if _scalar(conn, "SELECT to_regproc('ibcbench_use_scheduler')") is None:
        raise ConfigError(
            "this database has no ibcbench_use_scheduler() (schema older than 11): run `ibcbench schema up`"
        )


def database_status(
    dsn: str | None = None, settings: ServerSettings | None = None
) -> DatabaseStatus:
    from ibcbench.infra.migrate import Migrator, read_version
    from ibcbench.infra.server import LocalServer

    embedded = explicit_dsn(dsn) is None
    server = LocalServer(settings) if embedded else None
    with connect(resolve_dsn(dsn, settings)) as conn:
        try:
            info = server_info(conn)
        except psycopg.errors.UndefinedFile as exc:
            # an older TimescaleDB built without the Community edition, on a server that runs it
            first = first_line(exc, "")
            raise MissingExtension(
                f"{describe_dsn(conn.info.dsn)}: this server's TimescaleDB edition cannot load the "
                f"version in this database ({first}): run `ibcbench db up` to update the kit's "
                "databases, or ALTER EXTENSION timescaledb UPDATE as the first command of a new session"
            ) from exc
        version, dirty = read_version(conn)
        migrator = Migrator()
        invalid = migrator.invalid_indexes(conn) if version is not None else []
        clean = migrator.last_clean(conn, version) if dirty else None
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
        ts_jobs = timescaledb_jobs(conn)
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
        invalid_indexes=invalid,
        schema_clean_version=clean,
        timescaledb_jobs=ts_jobs,
    )


#: the TimescaleDB the kit builds and tests with (scripts/install-system.sh, docker-compose.yml)
KIT_TIMESCALEDB_VERSION = "2.28.3"


def timescaledb_mismatch(info: ServerInfo, *, embedded: bool) -> str | None:
    """One line when an external server's TimescaleDB is not the kit's (the embedded server runs
    the kit's own install, whatever version it built); None when it is, or for the embedded one."""
    version = info.timescaledb_version or info.available_extensions.get("timescaledb")
    if embedded or version == KIT_TIMESCALEDB_VERSION:
        return None
    has = f"TimescaleDB {version}" if version else "no TimescaleDB"
    return (
        f"this server has {has}, the kit is built and tested with {KIT_TIMESCALEDB_VERSION}: "
        "figures, plans and job behaviour may differ"
    )


def timescaledb_line(info: ServerInfo) -> str:
    """Version and edition, the licence setting they come from, and an update waiting to be applied."""
    line = info.edition_label
    if info.timescaledb_version is not None and info.timescaledb_edition:
        line += f" (timescaledb.license={info.timescaledb_edition})"
    if info.timescaledb_build is not None:
        line += f"; {info.timescaledb_build.label}"
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
        *(
            [f"warning:      {mismatch}"]
            if (mismatch := timescaledb_mismatch(info, embedded=status.embedded))
            else []
        ),
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
            + (
                f" DIRTY (run `ibcbench schema force {status.schema_clean_version}`)"
                if status.schema_dirty
                else ""
            )
        ),
    ]
    if status.invalid_indexes:
        lines.append(
            f"INVALID:      {', '.join(status.invalid_indexes)} (a failed CONCURRENTLY build; "
            "run `ibcbench schema up` to rebuild)"
        )
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
    if status.timescaledb_jobs:
        jobs = status.timescaledb_jobs
        lines.append(
            f"timescaledb jobs: {len(jobs)} ("
            + ", ".join(f"{j.name} every {j.schedule}" for j in jobs)
            + ")"
        )
        failed = [j for j in jobs if j.total_failures or j.last_run_status == "Failed"]
        lines.append(
            "job failures: "
            + (
                "none"
                if not failed
                else "; ".join(
                    f"{j.name}: {j.total_failures} (last: {j.last_error or j.last_run_status})"
                    for j in failed
                )
            )
        )
    if status.row_estimates:
        lines.append(
            "rows (est.):  "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(status.row_estimates.items()))
        )
    return "\n".join(lines)
