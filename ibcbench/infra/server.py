"""The embedded local PostgreSQL + TimescaleDB server.

``up`` creates a cluster with initdb in a folder the kit owns (``ServerSettings.cluster_dir``), starts it
on a free port with a unix socket and the preloads the kit needs, and creates the ``ibcbench`` database.
PostgreSQL refuses to run as root, so when the kit runs as root the server runs as an unprivileged OS
user (``ibcbench``), created on first use. Every connection gives the kit role's password
(:mod:`ibcbench.infra.serverauth`), and the unix socket's folder is the server user's alone (root reaches it
too). A PID in ``postmaster.pid`` is trusted or signalled only when it is this data directory's
postmaster (:mod:`ibcbench.infra.pidfile`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ibcbench.errors import ServerError
from ibcbench.infra import serverauth
from ibcbench.infra.extensions import ExtensionUpdate, update_timescaledb
from ibcbench.infra.pidfile import PidCheck, check_postmaster_pid, remove_stale
from ibcbench.infra.serverconf import (
    check_extensions_installed,
    find_pg_bindir,
    resolve_license,
    write_conf,
)
from ibcbench.infra.serveruser import prepare_dirs, run_as, server_user
from ibcbench.settings import DEFAULT_FIRST_PORT, ServerSettings

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class ServerState:
    """What ``up`` left behind: enough to build the connection URL without asking the server."""

    port: int
    socket_dir: str
    database: str
    role: str
    bindir: str
    timescaledb_license: str | None = None
    #: the password file of the kit role (None: a cluster made before the kit set passwords)
    passfile: str | None = None
    #: the port of the start before this one, when it was another
    previous_port: int | None = None

    @property
    def url(self) -> str:
        """The TCP URL; it names the password file, it does not hold the password."""
        return serverauth.url(self.role, "127.0.0.1", self.port, self.database, self.passfile)

    @property
    def socket_url(self) -> str:
        return serverauth.socket_url(
            self.role, self.socket_dir, self.port, self.database, self.passfile
        )

    def conninfo(self, dbname: str | None = None, *, tcp: bool = False) -> str:
        """A key=value conninfo to ``dbname`` (default: the kit's database), by socket or TCP."""
        from psycopg.conninfo import make_conninfo

        params: dict[str, Any] = {
            "host": "127.0.0.1" if tcp else self.socket_dir,
            "port": self.port,
            "user": self.role,
            "dbname": dbname or self.database,
        }
        if self.passfile:
            params["passfile"] = self.passfile
        return make_conninfo(**params)

    def password(self) -> str | None:
        """The kit role's password, from its password file."""
        if not self.passfile:
            return None
        return serverauth.read_password(Path(self.passfile), self.role)

    def url_with_password(self) -> str:
        password = self.password()
        if password is None:
            raise ServerError(
                "the embedded server has no password file yet: run `ibcbench db up` to set one"
            )
        return serverauth.url_with_password(
            self.role, "127.0.0.1", self.port, self.database, password
        )


@dataclass(frozen=True)
class UpResult:
    state: ServerState
    created: bool
    started: bool
    data_dir: Path
    updates: list[ExtensionUpdate] = field(default_factory=list)
    #: what ``up`` changed on its own and tells once (stderr): a cluster given a password
    notes: list[str] = field(default_factory=list)


class LocalServer:
    """Controls one embedded cluster. Every method is safe to call again."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        self._as_root = os.geteuid() == 0

    # ---- OS user and programs ------------------------------------------------------------
    def _server_user(self) -> pwd.struct_passwd | None:
        """The OS user that owns and runs the cluster (None: the current user)."""
        return server_user(self.settings) if self._as_root else None

    def _run(
        self,
        args: list[str],
        user: pwd.struct_passwd | None,
        *,
        check: bool = True,
        timeout: float = 120,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the server user (:func:`ibcbench.infra.serveruser.run_as`)."""
        return run_as(self.settings, args, user, check=check, timeout=timeout, extra_env=extra_env)

    # ---- state ---------------------------------------------------------------------------
    def read_state(self) -> ServerState | None:
        try:
            raw = json.loads(self.settings.state_file.read_text())
            return ServerState(**raw)
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def _write_state(self, state: ServerState, user: pwd.struct_passwd | None) -> None:
        tmp = self.settings.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.__dict__, indent=2) + "\n")
        os.replace(tmp, self.settings.state_file)
        if user is not None:
            os.chown(self.settings.state_file, user.pw_uid, user.pw_gid)

    def pid_check(self) -> PidCheck:
        """What ``postmaster.pid`` names: this data directory's postmaster, or a stale PID."""
        return check_postmaster_pid(self.settings.data_dir)

    def is_running(self) -> bool:
        return self.pid_check().ours

    @property
    def passfile(self) -> Path:
        return self.settings.cluster_dir / serverauth.PASSFILE_NAME

    # ---- ports ---------------------------------------------------------------------------
    @staticmethod
    def port_is_free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def _choose_port(self, previous: ServerState | None) -> int:
        if self.settings.port is not None:
            if not self.port_is_free(self.settings.port):
                raise ServerError(
                    f"port {self.settings.port} is in use by another process: "
                    "choose another with --port or stop that process"
                )
            return self.settings.port
        start = previous.port if previous else DEFAULT_FIRST_PORT
        for port in range(start, start + 200):
            if self.port_is_free(port):
                return port
        raise ServerError(f"no free port in {start}-{start + 199}: pass one with --port")

    # ---- lifecycle -----------------------------------------------------------------------
    def up(self) -> UpResult:
        """Create the cluster if needed, start it if stopped, and make sure the database exists."""
        bindir = find_pg_bindir(self.settings.pg_bindir)
        previous = self.read_state()
        if self.is_running() and previous is not None:
            return self._up_running(previous)
        return self._up_stopped(bindir, previous)

    def _up_running(self, previous: ServerState) -> UpResult:
        """``up`` of a running server: the port and edition asked for must be the ones it has."""
        s = self.settings
        if s.port is not None and s.port != previous.port:
            raise ServerError(
                f"the embedded server {s.name!r} already runs on port {previous.port}: "
                "run `ibcbench db down` first to move it"
            )
        wanted = s.timescaledb_license
        if wanted is not None and wanted != previous.timescaledb_license:
            raise ServerError(
                f"the embedded server {s.name!r} already runs with timescaledb.license="
                f"{previous.timescaledb_license or 'unknown'}, not {wanted}: run "
                f"`ibcbench db down --name {s.name}` first, then `ibcbench db up` again"
            )
        state, notes = self._secure_running(previous)
        return self._finish_up(state, created=False, started=False, notes=notes)

    def _up_stopped(self, bindir: Path, previous: ServerState | None) -> UpResult:
        """``up`` of a stopped (or new) cluster: checks, initdb if needed, config, start; a server
        started here is stopped again when what follows the start fails."""
        s = self.settings
        check_extensions_installed(bindir)
        license_ = resolve_license(bindir, s.timescaledb_license)
        port = self._choose_port(previous)
        user = self._server_user()
        prepare_dirs(self.settings, user)
        # a postmaster.pid whose PID is another process would make the new postmaster refuse to start
        remove_stale(self.pid_check())
        created = self._ensure_cluster(bindir, user)
        migrate = not created and self._needs_password()
        hba = serverauth.BOOTSTRAP_HBA_TEXT if migrate else serverauth.HBA_TEXT
        write_conf(s, port, license_, user, hba)
        state = ServerState(
            port=port,
            socket_dir=str(s.socket_dir),
            database=s.database,
            role=s.role,
            bindir=str(bindir),
            timescaledb_license=license_,
            passfile=str(self.passfile),
            previous_port=previous.port if previous and previous.port != port else None,
        )
        self._pg_ctl_start(bindir, user)
        try:
            self._write_state(state, user)
            notes = [self._set_password(state, license_, user)] if migrate else []
            return self._finish_up(state, created=created, started=True, notes=notes)
        except BaseException:
            with contextlib.suppress(Exception):  # started here: not left running half set up
                self.down()
            raise

    def _ensure_cluster(self, bindir: Path, user: pwd.struct_passwd | None) -> bool:
        """initdb (with a new password) when the data directory holds no cluster yet, and return
        True; else check that the cluster is of the binaries' major version."""
        s = self.settings
        if not (s.data_dir / "PG_VERSION").exists():
            if s.data_dir.exists() and any(s.data_dir.iterdir()):
                raise ServerError(
                    f"{s.data_dir} exists but holds no cluster: move it away, then run `ibcbench db up`"
                )
            password = serverauth.new_password()
            self._initdb(bindir, password, user)
            serverauth.write_passfile(self.passfile, s.role, password)
            return True
        version = (s.data_dir / "PG_VERSION").read_text().strip()
        if version != bindir.parent.name:
            raise ServerError(
                f"the cluster in {s.data_dir} is PostgreSQL {version} but the binaries are "
                f"{bindir.parent.name}: set IBCBENCH_PG_BINDIR or use another --name"
            )
        return False

    def _finish_up(
        self, state: ServerState, *, created: bool, started: bool, notes: list[str]
    ) -> UpResult:
        """The last phase of ``up``: the kit's database exists, TimescaleDB is brought up to date."""
        self._ensure_database(state)
        updates = self.update_timescaledb(state)
        return UpResult(
            state=state,
            created=created,
            started=started,
            data_dir=self.settings.data_dir,
            updates=updates,
            notes=notes,
        )

    def _pg_ctl_start(self, bindir: Path, user: pwd.struct_passwd | None) -> None:
        s = self.settings
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(s.data_dir),
                "-l",
                str(s.log_file),
                "-w",
                "-t",
                "60",
                "start",
            ],
            user,
        )

    # ---- authentication ------------------------------------------------------------------
    def _initdb(self, bindir: Path, password: str, user: pwd.struct_passwd | None) -> None:
        """initdb with the kit role's password; the password file initdb reads is the server
        user's alone and gone when initdb is done."""
        s = self.settings
        pwfile = s.cluster_dir / "initdb.pw"
        owner = (user.pw_uid, user.pw_gid) if user is not None else None
        serverauth.write_private(pwfile, password + "\n", owner)
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(s.data_dir),
                    "-U",
                    s.role,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                user,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _needs_password(self) -> bool:
        """A cluster made before the kit set passwords: no password file, or a trusting pg_hba."""
        hba = self.settings.data_dir / "pg_hba.conf"
        trusting = hba.exists() and serverauth.has_trust_line(hba.read_text())
        return trusting or serverauth.read_password(self.passfile, self.settings.role) is None

    def _set_password(
        self, state: ServerState, license_: str, user: pwd.struct_passwd | None
    ) -> str:
        """Give the kit role a password (the one of its password file, else a new one) over the
        unix socket, then ask for it on every connection; returns the line that says so."""
        from psycopg import sql

        s = self.settings
        password = serverauth.read_password(self.passfile, s.role)
        if password is None:
            password = serverauth.new_password()
            serverauth.write_passfile(self.passfile, s.role, password)
        bootstrap = replace(state, passfile=None).conninfo("postgres")
        with self._connect_retrying(bootstrap) as conn:
            # the server gets the scram verifier, never the password itself
            verifier = conn.pgconn.encrypt_password(
                password.encode(), s.role.encode(), b"scram-sha-256"
            )
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(s.role), sql.Literal(verifier.decode())
                )
            )
            write_conf(s, state.port, license_, user)
            conn.execute("SELECT pg_reload_conf()")
        return (
            f"embedded server {s.name!r}: trust authentication replaced by the {s.role} role's "
            f"password (scram-sha-256), kept in {self.passfile} (mode 0600)"
        )

    def _secure_running(self, state: ServerState) -> tuple[ServerState, list[str]]:
        """A running cluster made before the kit set passwords gets one now (its socket's folder
        is closed to other users first)."""
        if state.passfile and not self._needs_password():
            return state, []
        os.chmod(self.settings.socket_dir, 0o700)
        user = self._server_user()
        state = replace(state, passfile=str(self.passfile))
        note = self._set_password(state, state.timescaledb_license or "timescale", user)
        self._write_state(state, user)
        return state, [note]

    def _connect_retrying(self, conninfo: str, timeout_s: float = 30) -> psycopg.Connection:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"the embedded server does not accept connections: {exc}".splitlines()[0]
                        + f" (log: {self.settings.log_file})"
                    ) from exc
                time.sleep(0.3)

    # ---- TimescaleDB updates -------------------------------------------------------------
    def update_timescaledb(self, state: ServerState) -> list[ExtensionUpdate]:
        """Bring TimescaleDB in the kit's databases of this cluster up to the installed version
        (:func:`ibcbench.infra.extensions.update_timescaledb`)."""
        params: dict[str, Any] = {"host": state.socket_dir, "port": state.port, "user": state.role}
        if state.passfile:
            params["passfile"] = state.passfile
        return update_timescaledb(params, state.database)

    def _ensure_database(self, state: ServerState) -> None:
        from psycopg import sql

        with self._connect_retrying(state.conninfo("postgres")) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (state.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(state.database)))

    def down(self) -> bool:
        """Stop the server; returns False when it was not running. A stale ``postmaster.pid``
        (its PID is not this data directory's postmaster) is left as it is: nothing is signalled."""
        if not self.is_running():
            return False
        state = self.read_state()
        bindir = Path(state.bindir) if state else find_pg_bindir(self.settings.pg_bindir)
        user = self._server_user()
        self._run(
            [str(bindir / "pg_ctl"), "-D", str(self.settings.data_dir), "-m", "fast", "-w", "stop"],
            user,
        )
        return True

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m MODE`` (smart, fast or immediate) of the running server, waiting for it."""
        if mode not in ("smart", "fast", "immediate"):
            raise ServerError(f"shutdown mode {mode!r} is unknown: use smart, fast or immediate")
        if not self.is_running():
            raise ServerError(
                f"the embedded server {self.settings.name!r} is not running: run `ibcbench db up`"
            )
        state = self.read_state()
        bindir = Path(state.bindir) if state else find_pg_bindir(self.settings.pg_bindir)
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.settings.data_dir),
                "-l",
                str(self.settings.log_file),
                "-m",
                mode,
                "-w",
                "-t",
                "120",
                "restart",
            ],
            self._server_user(),
            timeout=180,
        )

    def url(self) -> str:
        """The connection URL of the running server."""
        state = self.read_state()
        if state is None or not self.is_running():
            raise ServerError(
                f"the embedded server {self.settings.name!r} is not running: run `ibcbench db up`"
            )
        return state.url

    def socket_url(self) -> str:
        self.url()
        state = self.read_state()
        assert state is not None
        return state.socket_url

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(
                self.settings.log_file.read_text(errors="replace").splitlines()[-lines:]
            )
        return ""
