"""Connections and facts about the server: which DSN to use, what the server is and has."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy

from ibcbench.dsn import describe_dsn, redact_dsn
from ibcbench.errors import ConnectionFailed, first_line
from ibcbench.settings import ServerSettings, explicit_dsn


def resolve_dsn(dsn: str | None = None, settings: ServerSettings | None = None) -> str:
    """The DSN every command uses: ``dsn`` (``--dsn``), else ``DATABASE_URL``, else ``""`` when
    libpq's variables are set (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``, ``PGPASSFILE``,
    ``PGSERVICE``, ``PGSERVICEFILE``, ``PGPASSWORD``: libpq reads them, as psql does), else the
    embedded server's URL."""
    chosen = explicit_dsn(dsn)
    if chosen is not None:
        return chosen
    from ibcbench.infra.server import LocalServer

    return LocalServer(settings).url()


def connect(
    dsn: str | None = None, *, autocommit: bool = False, **kwargs: Any
) -> psycopg.Connection:
    """Open a connection, turning connection failures into one-line errors with the next step."""
    target = resolve_dsn(dsn)
    kwargs.setdefault("connect_timeout", 10)
    try:
        return psycopg.connect(target, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        first = first_line(exc)
        first = redact_dsn(first, dsn=target)
        advice = (
            "check libpq's variables (PGHOST, PGPORT, PGUSER, ...), or unset them for the embedded "
            "server"
            if target == ""
            else "check DATABASE_URL/--dsn or run `ibcbench db up`"
        )
        raise ConnectionFailed(
            f"cannot connect to {describe_dsn(target)}: {first}; {advice}"
        ) from exc
    except psycopg.ProgrammingError as exc:
        detail = redact_dsn(first_line(exc, ""), dsn=target)
        raise ConnectionFailed(
            f"invalid DSN {redact_dsn(target, dsn=target)!r}: {detail}; fix DATABASE_URL or --dsn"
        ) from exc


def create_engine(dsn: str | None = None) -> sqlalchemy.Engine:
    """A SQLAlchemy engine on the psycopg driver for ``dsn`` (any form psycopg takes: URL, key=value,
    unix socket), without a pool of its own: each ``connect()`` opens one connection through
    :func:`connect`, so errors read as the kit's."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    target = resolve_dsn(dsn)
    return sqlalchemy.create_engine(
        "postgresql+psycopg://", creator=lambda: connect(target), poolclass=NullPool
    )


def query_frame(conn: Any, query: Any, params: Any = None) -> pd.DataFrame:
    """Rows of ``query`` on a psycopg connection (or a pool: one of its connections) as a DataFrame
    with the result's column names."""
    import pandas as pd

    if hasattr(conn, "connection") and callable(conn.connection):
        with conn.connection() as c:
            return query_frame(c, query, params)
    cur = conn.execute(query, params)
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or []])


def read_frames(
    dsn: str | None, queries: Mapping[str, str], *, params: Mapping[str, Any] | None = None
) -> dict[str, pd.DataFrame]:
    """``pandas.read_sql`` of each named query (``:name`` binds from ``params``) on one connection;
    NUMERIC columns come back as floats."""
    import pandas as pd
    import sqlalchemy

    engine = create_engine(dsn)
    try:
        with engine.connect() as conn:
            return {
                name: pd.read_sql(
                    sqlalchemy.text(query), conn, params=dict(params or {}), coerce_float=True
                )
                for name, query in queries.items()
            }
    finally:
        engine.dispose()


#: beside TimescaleDB's control file on the server: the project's patches each build of
#: ``scripts/install-system.sh`` got, one line per version (``2.28.3 patched: NAME (stands in for
#: upstream #N), ...`` or ``2.28.3 patched: none``)
BUILD_RECORD = "timescaledb.ibcbench-patches"
_RECORDED_PATCH = re.compile(r"([\w.+-]+) \(stands in for upstream (#\d+)\)")


@dataclass(frozen=True)
class TimescaleBuild:
    """The installed TimescaleDB build of a version, as the install script recorded it."""

    version: str
    #: the project's patches it got, each with the upstream fix it stands in for: ``NAME (#N)``
    patched: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"patched: {', '.join(self.patched) or 'none'}"

    def manifest(self) -> dict[str, Any]:
        return {"version": self.version, "patched": list(self.patched)}


def parse_build_record(text: str, version: str) -> TimescaleBuild | None:
    """``version``'s build in the record's ``text`` (its last line for it), None when it has none."""
    found: TimescaleBuild | None = None
    for line in text.splitlines():
        head, sep, rest = line.partition(" patched: ")
        if not sep or head.strip() != version:
            continue
        patched = tuple(f"{name} ({fix})" for name, fix in _RECORDED_PATCH.findall(rest))
        found = TimescaleBuild(version, patched)
    return found


def timescaledb_build(conn: psycopg.Connection, version: str) -> TimescaleBuild | None:
    """The server's record of its TimescaleDB ``version`` build (read by the server, so a remote one
    answers for itself); None without a record, or for a role that may not read server files."""
    allowed = conn.execute(
        "SELECT has_table_privilege('pg_catalog.pg_config', 'SELECT')"
        " AND has_function_privilege('pg_catalog.pg_read_file(text, bigint, bigint, boolean)',"
        " 'EXECUTE')"
    ).fetchone()
    if not allowed or not allowed[0]:
        return None
    row = conn.execute(
        "SELECT pg_read_file(setting || '/extension/' || %s, 0, 65536, true)"
        " FROM pg_catalog.pg_config WHERE name = 'SHAREDIR'",
        (BUILD_RECORD,),
    ).fetchone()
    return parse_build_record(row[0], version) if row and row[0] else None


@dataclass(frozen=True)
class ServerInfo:
    """What a result's manifest records about the server."""

    version: str
    version_num: int
    database: str
    extensions: dict[str, str] = field(default_factory=dict)
    available_extensions: dict[str, str] = field(default_factory=dict)
    timescaledb_edition: str | None = None
    preload_libraries: tuple[str, ...] = ()
    cron_database: str | None = None
    #: the installed build of this database's TimescaleDB version (None: no record readable)
    timescaledb_build: TimescaleBuild | None = None

    @property
    def timescaledb_version(self) -> str | None:
        return self.extensions.get("timescaledb")

    @property
    def has_continuous_aggregates(self) -> bool:
        """Continuous aggregates and compression need TimescaleDB's Community (``timescale``) license."""
        return self.timescaledb_version is not None and self.timescaledb_edition == "timescale"

    @property
    def edition_label(self) -> str:
        if self.timescaledb_version is None:
            if "timescaledb" in self.available_extensions:
                return "TimescaleDB available but not created in this database"
            return "no TimescaleDB"
        if self.timescaledb_edition == "timescale":
            return f"TimescaleDB {self.timescaledb_version} Community edition"
        return (
            f"TimescaleDB {self.timescaledb_version} Apache edition "
            "(no continuous aggregates, compression or jobs)"
        )


def server_info(conn: psycopg.Connection) -> ServerInfo:
    """Read the server's version, extensions, TimescaleDB edition and preloads."""
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
        " current_database(), current_setting('timescaledb.license', true),"
        " current_setting('shared_preload_libraries'), current_setting('cron.database_name', true)"
    ).fetchone()
    assert row is not None
    extensions: dict[str, str] = dict(
        conn.execute("SELECT extname, extversion FROM pg_extension").fetchall()
    )
    available: dict[str, str] = dict(
        conn.execute(
            "SELECT name, default_version FROM pg_available_extensions"
            " WHERE name IN ('timescaledb','pg_cron','hypopg','pg_stat_statements','pgstattuple','dblink')"
        ).fetchall()
    )
    preloads = tuple(p.strip() for p in (row[4] or "").split(",") if p.strip())
    version = extensions.get("timescaledb")
    build = timescaledb_build(conn, version) if version else None
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    return ServerInfo(
        version=row[0],
        version_num=row[1],
        database=row[2],
        extensions=extensions,
        available_extensions=available,
        timescaledb_edition=row[3],
        preload_libraries=preloads,
        cron_database=row[5],
        timescaledb_build=build,
    )
