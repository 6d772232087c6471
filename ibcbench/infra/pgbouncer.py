"""PgBouncer in front of the embedded primary: its ini, userlist, start and stop, and its URLs.

PgBouncer lives in ``<cluster_dir>/pgbouncer`` (ini, userlist, pidfile and log there), with every
database of the primary behind it, transaction pooling by default (session selectable), the kit's
role's password asked (scram-sha-256; the ``auth_file`` is the server user's alone) and the admin
console (``SHOW POOLS``) open to that role. :class:`PgBouncer` is the PgBouncer half of
:class:`ibcbench.infra.scaleout.ScaleOut`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from ibcbench.dsn import with_database
from ibcbench.errors import ServerError
from ibcbench.infra import serverauth
from ibcbench.infra.members import (
    STATE_NAME,
    MemberFiles,
    PgBouncerState,
    TopologyState,
    pid_alive,
    processes_with_argument,
    wait_gone,
)
from ibcbench.infra.server import LocalServer

POOL_MODES = ("transaction", "session")


def find_pgbouncer() -> str:
    """The pgbouncer binary (Debian installs it in /usr/sbin)."""
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found is None:
        raise ServerError(
            "pgbouncer not found: run `make setup` (scripts/install-system.sh) as root"
        )
    return found


class PgBouncer(MemberFiles):
    """PgBouncer beside one embedded primary: start, stop, its URLs."""

    def pgbouncer_url(self) -> str | None:
        bouncer = self.read_state().pgbouncer
        return self.member_url(bouncer.port) if bouncer and self.pgbouncer_running() else None

    def pgbouncer_admin_url(self) -> str | None:
        bouncer = self.read_state().pgbouncer
        if bouncer is None or not self.pgbouncer_running():
            return None
        return self.member_url(bouncer.port, "pgbouncer")

    def _up_pgbouncer(
        self,
        state: TopologyState,
        pgbouncer: bool | None,
        pool_mode: str | None,
        pool_size: int | None,
        owner_pid: int | None,
        user: Any,
    ) -> tuple[list[str], list[str]]:
        """PgBouncer running or not as ``pgbouncer`` asks (None: as recorded), restarted when its
        pool mode or size changes; returns the names started and removed."""
        want_bouncer = state.pgbouncer is not None if pgbouncer is None else pgbouncer
        if not want_bouncer and state.pgbouncer is not None:
            self._stop_pgbouncer()
            self._write_state(replace(state, pgbouncer=None))
            return [], ["pgbouncer"]
        if not want_bouncer:
            return [], []
        previous = state.pgbouncer
        bouncer = PgBouncerState(
            port=previous.port if previous else self._free_port(),
            pool_mode=pool_mode or (previous.pool_mode if previous else "transaction"),
            pool_size=pool_size or (previous.pool_size if previous else 25),
            owner_pid=previous.owner_pid if previous else owner_pid,
        )
        changed = previous is not None and (
            previous.pool_mode != bouncer.pool_mode or previous.pool_size != bouncer.pool_size
        )
        if changed:
            self._stop_pgbouncer()
        self._write_state(replace(state, pgbouncer=bouncer))
        if not self.pgbouncer_running():
            self._start_pgbouncer(bouncer, user)
            return ["pgbouncer"], []
        return [], []

    def _pgbouncer_ini(self, bouncer: PgBouncerState) -> str:
        primary = self.server.read_state()
        assert primary is not None
        d = self.pgbouncer_dir
        return (
            "; written by `ibcbench db up --pgbouncer` on every start (ibcbench.infra.pgbouncer)\n"
            "[databases]\n"
            f"* = {make_conninfo(host=primary.socket_dir, port=primary.port)}\n\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {bouncer.port}\n"
            f"unix_socket_dir = {self.settings.socket_dir}\n"
            "unix_socket_mode = 0700\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {d / 'userlist.txt'}\n"
            f"admin_users = {self.settings.role}\n"
            f"stats_users = {self.settings.role}\n"
            f"pool_mode = {bouncer.pool_mode}\n"
            f"default_pool_size = {bouncer.pool_size}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 1000\n"
            "max_db_connections = 0\n"
            "ignore_startup_parameters = extra_float_digits\n"
            "server_reset_query = DISCARD ALL\n"
            f"pidfile = {self.pgbouncer_pidfile}\n"
            f"logfile = {d / 'pgbouncer.log'}\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
            "stats_period = 10\n"
        )

    def _start_pgbouncer(self, bouncer: PgBouncerState, user: Any) -> None:
        exe = find_pgbouncer()
        if not LocalServer.port_is_free(bouncer.port):  # taken while PgBouncer was stopped
            bouncer = replace(bouncer, port=self._free_port())
            self._write_state(replace(self.read_state(), pgbouncer=bouncer))
        d = self.pgbouncer_dir
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        self.pgbouncer_ini.write_text(self._pgbouncer_ini(bouncer))
        self._write_userlist(user)
        self.pgbouncer_pidfile.unlink(missing_ok=True)  # not running (checked by the caller): stale
        if user is not None:
            for path in (d, self.pgbouncer_ini):
                os.chown(path, user.pw_uid, user.pw_gid)
            with contextlib.suppress(FileNotFoundError):
                os.chown(d / "pgbouncer.log", user.pw_uid, user.pw_gid)
        self.server._run([exe, "-d", str(self.pgbouncer_ini)], user, timeout=30)
        deadline = time.monotonic() + 15
        while True:
            if time.monotonic() > deadline - 14 and not self.pgbouncer_running():
                raise ServerError(
                    f"pgbouncer exited right after it started: see {d / 'pgbouncer.log'}"
                )
            try:
                with psycopg.connect(
                    self.member_url(bouncer.port, "pgbouncer"),
                    autocommit=True,
                    connect_timeout=2,
                ) as conn:
                    conn.execute("SHOW VERSION")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"pgbouncer did not accept connections on port {bouncer.port}: {exc}".splitlines()[
                            0
                        ]
                        + f" (log: {d / 'pgbouncer.log'})"
                    ) from exc
                time.sleep(0.1)

    def _write_userlist(self, user: Any) -> None:
        """PgBouncer's auth_file: the kit role and its password (PgBouncer checks clients' scram
        against it and logs in to the primary with it), the server user's alone."""
        primary = self.server.read_state()
        password = (primary.password() if primary else None) or ""
        role = self.settings.role.replace('"', '""')
        serverauth.write_private(
            self.pgbouncer_dir / "userlist.txt",
            f'"{role}" "{password.replace(chr(34), chr(34) * 2)}"\n',
            (user.pw_uid, user.pw_gid) if user is not None else None,
        )

    def _stop_pgbouncer(self) -> bool:
        # only processes started with this ini: a stale pidfile's PID may be anyone's
        pids = set(processes_with_argument(str(self.pgbouncer_ini)))
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)  # immediate shutdown
        for p in pids:
            if not wait_gone(p, 10):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
                wait_gone(p, 5)
        self.pgbouncer_pidfile.unlink(missing_ok=True)
        return bool(pids)

    def _clean_stale_pgbouncer(self, state: TopologyState) -> list[str]:
        """A PgBouncer of a run that is gone, or one the state does not name: stopped; a stale
        pidfile: deleted. One line each."""
        bouncer = state.pgbouncer
        if (
            bouncer is not None
            and bouncer.owner_pid is not None
            and not pid_alive(bouncer.owner_pid)
        ):
            self._stop_pgbouncer()
            self._write_state(replace(state, pgbouncer=None))
            return [f"pgbouncer of a run that is gone (pid {bouncer.owner_pid}) stopped"]
        if bouncer is None and (
            self.pgbouncer_running() or processes_with_argument(str(self.pgbouncer_ini))
        ):
            self._stop_pgbouncer()
            return [f"pgbouncer not in {STATE_NAME} stopped"]
        if self.pgbouncer_pidfile.exists() and not self.pgbouncer_running():
            self.pgbouncer_pidfile.unlink(missing_ok=True)
            return ["stale pgbouncer pidfile removed"]
        return []


def admin_console_url(pgbouncer: str) -> str:
    """PgBouncer's admin console (database ``pgbouncer``) at the address of ``pgbouncer``."""
    return with_database(pgbouncer, "pgbouncer")


def show_pools(admin_url: str) -> list[dict[str, Any]]:
    """PgBouncer's SHOW POOLS (the admin console speaks the simple query protocol only)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute("SHOW POOLS")
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
