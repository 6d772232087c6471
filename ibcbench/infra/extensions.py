"""TimescaleDB in the databases of the embedded cluster, brought up to the installed version.

When the package is upgraded, databases keep the version they were created with until
``ALTER EXTENSION timescaledb UPDATE`` runs as the first command of a new session.
:func:`update_timescaledb` does that in the kit's databases and reports the others
(:class:`ExtensionUpdate`, one per database older than the installed default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class ExtensionUpdate:
    """TimescaleDB in one database of the cluster, older than the installed default version."""

    database: str
    from_version: str
    to_version: str
    updated: bool
    detail: str = ""
    kit_owned: bool = True

    @property
    def message(self) -> str:
        if self.updated:
            return f"database {self.database}: TimescaleDB updated {self.from_version} -> {self.to_version}"
        return (
            f"database {self.database}: TimescaleDB left at {self.from_version} ({self.detail}); "
            f"to update it, run ALTER EXTENSION timescaledb UPDATE as the first command of a new session"
        )


def _kit_created(conn: psycopg.Connection) -> bool:
    """A dataset of the kit's, or a database whose TimescaleDB the kit's migrations created."""
    query = conn.execute
    tables = query(
        "SELECT to_regclass('ibcbench_dataset') IS NOT NULL,"
        " to_regclass('ibcbench_created_extensions') IS NOT NULL"
    ).fetchone()
    assert tables is not None  # one row, always
    if tables[0]:
        return True
    if not tables[1]:
        return False
    return (
        query("SELECT 1 FROM ibcbench_created_extensions WHERE extname = 'timescaledb'").fetchone()
        is not None
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def update_timescaledb(params: dict[str, Any], kit_database: str) -> list[ExtensionUpdate]:
    """Bring TimescaleDB in the kit's databases of a cluster up to the installed version.

    ``params`` are the connection parameters of the cluster without ``dbname`` (host, port, user,
    passfile). A database is the kit's when it is ``kit_database`` (``ServerSettings.database``), a
    dataset (``ibcbench_dataset``) or one whose TimescaleDB the kit's migrations created
    (``ibcbench_created_extensions``); any other database with an older TimescaleDB is left as it is
    and reported. The update runs ``ALTER EXTENSION timescaledb UPDATE`` as the first command of a
    new session, as TimescaleDB requires; it is one transaction, so a failure leaves the old version
    whole and is reported with its reason. Inspection sessions set ``timescaledb.disable_load`` so
    that a version this server's edition cannot load is still readable.
    """
    import psycopg

    base = params
    inspect = "-c timescaledb.disable_load=on"
    with psycopg.connect(
        **base, dbname="postgres", autocommit=True, options=inspect, connect_timeout=10
    ) as conn:
        databases = [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
                " ORDER BY datname"
            ).fetchall()
        ]
        row = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    if row is None:
        return []
    target = row[0]
    updates: list[ExtensionUpdate] = []
    for dbname in databases:
        try:
            with psycopg.connect(
                **base, dbname=dbname, autocommit=True, options=inspect, connect_timeout=10
            ) as conn:
                found = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                ).fetchone()
                if found is None or _version_key(found[0]) >= _version_key(target):
                    continue
                kit_owned = dbname == kit_database or _kit_created(conn)
        except psycopg.Error as exc:
            if exc.sqlstate == "3D000":  # dropped since it was listed
                continue
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            updates.append(
                ExtensionUpdate(dbname, "?", target, False, f"cannot inspect it: {first}", False)
            )
            continue
        if not kit_owned:
            updates.append(
                ExtensionUpdate(
                    dbname, found[0], target, False, "not a database the kit created", False
                )
            )
            continue
        updates.append(_alter_extension_update(base, dbname, found[0], target))
    return updates


def _alter_extension_update(
    base: dict[str, Any], dbname: str, old: str, target: str
) -> ExtensionUpdate:
    import psycopg

    try:
        # a fresh session whose first command is the update: nothing has loaded the old library
        with psycopg.connect(
            **base,
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
            options="-c lock_timeout=60000",
        ) as conn:
            conn.execute("ALTER EXTENSION timescaledb UPDATE")
            now = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ExtensionUpdate(dbname, old, target, False, f"the update failed: {first}")
    if now is None or now[0] != target:
        got = now[0] if now else "none"
        return ExtensionUpdate(dbname, old, target, False, f"the update stopped at {got}")
    return ExtensionUpdate(dbname, old, target, True)
