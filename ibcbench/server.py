"""The embedded local PostgreSQL + TimescaleDB server.

``up`` creates a cluster with initdb in a folder the kit owns (``ServerSettings.cluster_dir``), starts it
on a free port with a unix socket and the preloads the kit needs, and creates the ``ibcbench`` database.
PostgreSQL refuses to run as root, so when the kit runs as root the server runs as an unprivileged OS
user (``ibcbench``), created on first use. Every connection gives the kit role's password
(:mod:`ibcbench.serverauth`), and the unix socket's folder is the server user's alone (root reaches it
too). A PID in ``postmaster.pid`` is trusted or signalled only when it is this data directory's
postmaster (:mod:`ibcbench.pidfile`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ibcbench import serverauth
from ibcbench.errors import MissingExtension, ServerError
from ibcbench.pidfile import PidCheck, check_postmaster_pid, remove_stale
from ibcbench.settings import DEFAULT_FIRST_PORT, ServerSettings

if TYPE_CHECKING:
    import psycopg

REQUIRED_PRELOADS = ("timescaledb", "pg_stat_statements", "pg_cron")
_CONF_NAME = "ibcbench.conf"


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


@dataclass(frozen=True)
class UpResult:
    state: ServerState
    created: bool
    started: bool
    data_dir: Path
    updates: list[ExtensionUpdate] = field(default_factory=list)
    #: what ``up`` changed on its own and tells once (stderr): a cluster given a password
    notes: list[str] = field(default_factory=list)


def _conf_quote(value: str) -> str:
    """A postgresql.conf string value."""
    return "'" + value.replace("'", "''") + "'"


def _socket_list_item(path: str) -> str:
    """One folder of ``unix_socket_directories``, a comma-separated list: double-quoted, so a path
    with spaces or commas stays one folder."""
    return '"' + path.replace('"', '""') + '"'


def find_pg_bindir(explicit: Path | None = None) -> Path:
    """The PostgreSQL binaries to use: ``IBCBENCH_PG_BINDIR``, else the newest under /usr/lib/postgresql."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get("IBCBENCH_PG_BINDIR"):
        candidates.append(Path(os.environ["IBCBENCH_PG_BINDIR"]))
    else:
        root = Path("/usr/lib/postgresql")
        if root.is_dir():
            majors = sorted(
                (p for p in root.iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name),
                reverse=True,
            )
            candidates.extend(p / "bin" for p in majors)
    for bindir in candidates:
        if (bindir / "postgres").exists() and (bindir / "initdb").exists():
            return bindir
    raise ServerError(
        "no PostgreSQL server binaries found: run `make setup` (scripts/install-system.sh) "
        "or set IBCBENCH_PG_BINDIR"
    )


def _pg_config(bindir: Path, flag: str) -> Path:
    exe = bindir / "pg_config"
    if not exe.exists():
        exe_path = shutil.which("pg_config")
        if exe_path is None:
            raise ServerError(
                "pg_config not found: install postgresql-server-dev or run `make setup`"
            )
        exe = Path(exe_path)
    out = subprocess.run([str(exe), flag], capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


def check_extensions_installed(bindir: Path) -> None:
    """Refuse to start without the shared libraries the preload list names."""
    sharedir = _pg_config(bindir, "--sharedir") / "extension"
    pkglibdir = _pg_config(bindir, "--pkglibdir")
    major = bindir.parent.name
    missing = [
        ext
        for ext in REQUIRED_PRELOADS
        if not (sharedir / f"{ext}.control").exists() or not (pkglibdir / f"{ext}.so").exists()
    ]
    if missing:
        raise MissingExtension(
            f"extension(s) {', '.join(missing)} not installed for PostgreSQL {major}: "
            "run `make setup` (scripts/install-system.sh) as root"
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


def timescaledb_default_version(bindir: Path) -> str | None:
    """The version ``CREATE EXTENSION timescaledb`` installs here (its control file's default)."""
    control = _pg_config(bindir, "--sharedir") / "extension" / "timescaledb.control"
    try:
        match = re.search(r"^default_version\s*=\s*'([^']+)'", control.read_text(), re.MULTILINE)
    except FileNotFoundError:
        return None
    return match.group(1) if match else None


def resolve_license(bindir: Path, requested: str | None) -> str:
    """``timescaledb.license`` to run with: ``requested``, else the Community edition where installed.

    Refuses the Community edition when the installed default version has no ``timescaledb-tsl``
    library (an Apache-only build), before anything is started.
    """
    version = timescaledb_default_version(bindir)
    tsl = _pg_config(bindir, "--pkglibdir") / f"timescaledb-tsl-{version}.so"
    has_community = version is not None and tsl.exists()
    if requested is None:
        return "timescale" if has_community else "apache"
    if requested == "timescale" and not has_community:
        raise MissingExtension(
            f"the TimescaleDB Community edition needs {tsl.name}, not installed for PostgreSQL "
            f"{bindir.parent.name} (an Apache-only build): run scripts/install-system.sh as root, "
            "or use the Apache edition with TIMESCALEDB_EDITION=apache"
        )
    return requested


class LocalServer:
    """Controls one embedded cluster. Every method is safe to call again."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        self._as_root = os.geteuid() == 0

    # ---- OS user and folders -------------------------------------------------------------
    def _server_user(self) -> pwd.struct_passwd | None:
        """The OS user that owns and runs the cluster (None: the current user)."""
        if not self._as_root:
            return None
        name = self.settings.os_user
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--home-dir",
                str(self.settings.home),
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ServerError(
                f"could not create the OS user {name!r} to run PostgreSQL: {proc.stderr.strip()}"
            )
        return pwd.getpwnam(name)

    def _prepare_dirs(self, user: pwd.struct_passwd | None) -> None:
        s = self.settings
        for path in (s.home, s.cluster_dir, s.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if user is not None:
                os.chown(path, user.pw_uid, user.pw_gid)
        # the cluster's files and its socket are the server user's alone (root reaches them too)
        for path in (s.cluster_dir, s.socket_dir):
            os.chmod(path, 0o700)
        if user is not None:
            # every parent must be traversable by the server user
            for parent in s.home.parents:
                if parent.exists() and not os.stat(parent).st_mode & 0o001:
                    raise ServerError(
                        f"{parent} is not traversable by the server user {user.pw_name!r}: "
                        "set IBCBENCH_HOME to a folder under /var/lib or /srv"
                    )

    def _run(
        self,
        args: list[str],
        user: pwd.struct_passwd | None,
        *,
        check: bool = True,
        timeout: float = 120,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the server user; ``extra_env`` (e.g. ``PGPASSWORD``) reaches
        it through its environment, never its command line."""
        kwargs: dict[str, Any] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        env.update(extra_env or {})
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
            env["HOME"] = str(self.settings.home)
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            cwd=self.settings.cluster_dir,
            env=env,
            timeout=timeout,
            **kwargs,
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            last = detail[-1] if detail else f"exit code {proc.returncode}"
            raise ServerError(
                f"{Path(args[0]).name} failed: {last} (log: {self.settings.log_file})"
            )
        return proc

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

    # ---- configuration -------------------------------------------------------------------
    def _conf_text(self, port: int, license_: str = "timescale") -> str:
        s = self.settings
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        shared_mb = min(s.shared_buffers_mb, max(128, total_mb // 4))
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": _conf_quote(_socket_list_item(str(s.socket_dir))),
            "unix_socket_permissions": "0700",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "200",
            "shared_preload_libraries": "'" + ",".join(REQUIRED_PRELOADS) + "'",
            "cron.database_name": f"'{s.database}'",
            "cron.use_background_workers": "on",
            # TimescaleDB runs one job scheduler per database that has the extension, each holding a
            # background worker for as long as the database exists: a server with many databases
            # (datasets, test databases) needs room, or jobs in the newer ones never run
            "max_worker_processes": "96",
            "timescaledb.telemetry_level": "off",
            "timescaledb.license": f"'{license_}'",
            "timescaledb.max_background_workers": "64",
            "max_locks_per_transaction": "256",
            "shared_buffers": f"{shared_mb}MB",
            "effective_cache_size": f"{max(512, total_mb // 2)}MB",
            "work_mem": "16MB",
            "maintenance_work_mem": "512MB",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "15min",
            "pg_stat_statements.track": "all",
            "pg_stat_statements.max": "10000",
            "track_io_timing": "on",
            "logging_collector": "off",
            "log_timezone": "'UTC'",
            "timezone": "'UTC'",
        }
        lines = ["# written by `ibcbench db up` on every start; edit ServerSettings instead"]
        lines += [f"{k} = {v}" for k, v in settings.items()]
        return "\n".join(lines) + "\n"

    def _write_conf(
        self,
        port: int,
        license_: str,
        user: pwd.struct_passwd | None,
        hba_text: str = serverauth.HBA_TEXT,
    ) -> None:
        data = self.settings.data_dir
        conf = data / _CONF_NAME
        conf.write_text(self._conf_text(port, license_))
        main = data / "postgresql.conf"
        text = main.read_text()
        include = f"include '{_CONF_NAME}'"
        if include not in text:
            main.write_text(text.rstrip("\n") + f"\n\n{include}\n")
        hba = data / "pg_hba.conf"
        hba.write_text(hba_text)
        os.chmod(hba, 0o600)
        if user is not None:
            for path in (conf, main, hba):
                os.chown(path, user.pw_uid, user.pw_gid)

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
        s = self.settings
        bindir = find_pg_bindir(s.pg_bindir)
        previous = self.read_state()
        if self.is_running() and previous is not None:
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
            self._ensure_database(state)
            updates = self.update_timescaledb(state)
            return UpResult(
                state=state,
                created=False,
                started=False,
                data_dir=s.data_dir,
                updates=updates,
                notes=notes,
            )

        check_extensions_installed(bindir)
        license_ = resolve_license(bindir, s.timescaledb_license)
        port = self._choose_port(previous)
        user = self._server_user()
        self._prepare_dirs(user)
        # a postmaster.pid whose PID is another process would make the new postmaster refuse to start
        remove_stale(self.pid_check())
        created = False
        if not (s.data_dir / "PG_VERSION").exists():
            if s.data_dir.exists() and any(s.data_dir.iterdir()):
                raise ServerError(
                    f"{s.data_dir} exists but holds no cluster: move it away, then run `ibcbench db up`"
                )
            password = serverauth.new_password()
            self._initdb(bindir, password, user)
            serverauth.write_passfile(self.passfile, s.role, password)
            created = True
        else:
            version = (s.data_dir / "PG_VERSION").read_text().strip()
            if version != bindir.parent.name:
                raise ServerError(
                    f"the cluster in {s.data_dir} is PostgreSQL {version} but the binaries are "
                    f"{bindir.parent.name}: set IBCBENCH_PG_BINDIR or use another --name"
                )
        migrate = not created and self._needs_password()
        hba = serverauth.BOOTSTRAP_HBA_TEXT if migrate else serverauth.HBA_TEXT
        self._write_conf(port, license_, user, hba)
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
            self._ensure_database(state)
            updates = self.update_timescaledb(state)
        except BaseException:
            with contextlib.suppress(Exception):  # started here: not left running half set up
                self.down()
            raise
        return UpResult(
            state=state,
            created=created,
            started=True,
            data_dir=s.data_dir,
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
            self._write_conf(state.port, license_, user)
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
        """Bring TimescaleDB in the kit's databases of this cluster up to the installed version.

        A database is the kit's when it is the kit's own database (``ServerSettings.database``), a
        dataset (``ibcbench_dataset``) or one whose TimescaleDB the kit's migrations created
        (``ibcbench_created_extensions``); any other database with an older TimescaleDB is left as it is
        and reported. The update runs ``ALTER EXTENSION timescaledb UPDATE`` as the first command of a
        new session, as TimescaleDB requires; it is one transaction, so a failure leaves the old version
        whole and is reported with its reason. Inspection sessions set ``timescaledb.disable_load`` so
        that a version this server's edition cannot load is still readable.
        """
        import psycopg

        base: dict[str, Any] = {"host": state.socket_dir, "port": state.port, "user": state.role}
        if state.passfile:
            base["passfile"] = state.passfile
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
                    kit_owned = dbname == state.database or _kit_created(conn)
            except psycopg.Error as exc:
                if exc.sqlstate == "3D000":  # dropped since it was listed
                    continue
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                updates.append(
                    ExtensionUpdate(
                        dbname, "?", target, False, f"cannot inspect it: {first}", False
                    )
                )
                continue
            if not kit_owned:
                updates.append(
                    ExtensionUpdate(
                        dbname, found[0], target, False, "not a database the kit created", False
                    )
                )
                continue
            updates.append(self._alter_extension_update(base, dbname, found[0], target))
        return updates

    @staticmethod
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
