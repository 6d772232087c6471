"""Test helpers: the command lines of a process and its descendants, scanned from /proc while it
runs (see :mod:`ibcbench.faults.procscan`), and a role that logs in with a password."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench.faults.procscan import CmdlineWatch, cmdline, descendants

__all__ = ["CmdlineWatch", "cmdline", "descendants", "password_login"]


@contextmanager
def password_login(admin_dsn: str, role: str, password: str) -> Iterator[str]:
    """A superuser ``role`` whose logins on 127.0.0.1 the server checks with scram-sha-256 (a
    ``pg_hba.conf`` line ahead of the trust ones, when the server is the kit's embedded one); yields
    a key=value DSN template without dbname. Undone at the end."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
        port = admin.execute("SHOW port").fetchone()[0]  # type: ignore[index]
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
        yield make_conninfo(host="127.0.0.1", port=port, user=role, password=password)
    finally:
        hba.write_text(original)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def with_dbname(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


def dbname_of(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])
