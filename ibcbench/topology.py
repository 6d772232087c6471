"""Beyond one server: streaming standbys of the embedded primary, and PgBouncer in front of it.

``Topology(settings).up(replicas=N, pgbouncer=True)`` brings the embedded cluster to that shape:

- **standbys** ``replica-1`` .. ``replica-N``: each a ``pg_basebackup -R`` copy of the primary in
  ``<cluster_dir>/replica-K`` (``standby.signal`` and ``primary_conninfo`` written by ``-R``), with its
  own physical replication slot ``ibcbench_replica_K``, its own port, ``hot_standby = on`` and the
  kit's ``ibcbench.conf`` (the primary's settings with the standby's port, plus a standby section);
- **PgBouncer** in ``<cluster_dir>/pgbouncer``: its ini, userlist, pidfile and log there, every
  database of the primary behind it, transaction pooling by default (session selectable), the kit's
  role's password asked (scram-sha-256; PgBouncer's ``auth_file`` is the server user's alone), the
  admin console (``SHOW POOLS``) open to that role.

Standbys and PgBouncer ask for the password as the primary does, and their URLs name the primary's
password file (``passfile``), never the password; a standby's ``primary_conninfo`` holds the password
in its ``postgresql.auto.conf``, which only the server user can read.

Every member runs as the primary's OS user (the unprivileged ``ibcbench`` when the kit runs as root),
through :class:`~ibcbench.server.LocalServer`'s own runner. The shape is recorded in
``<cluster_dir>/topology.json`` *before* a member starts, so nothing the kit starts is unknown to it.
``up()`` with no arguments restores the recorded shape; ``down()`` stops PgBouncer, the standbys and
the primary. Members started for one run (``owner_pid``: a notebook kernel, a test session) are
removed by the next ``up()`` when their owner is gone, so a killed run leaves no process behind.

External topologies are given by URL: ``REPLICA_URL`` (comma-separated for several) and
``PGBOUNCER_URL`` beside ``DATABASE_URL``; :func:`replica_urls` and :func:`pgbouncer_url` resolve
them the way :func:`ibcbench.db.resolve_dsn` resolves the primary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench import serverauth
from ibcbench.db import describe_dsn, resolve_dsn
from ibcbench.errors import ConfigError, ServerError
from ibcbench.pidfile import check_pgbouncer_pid, check_postmaster_pid, remove_stale
from ibcbench.server import LocalServer, find_pg_bindir
from ibcbench.settings import ServerSettings, explicit_dsn

MAX_REPLICAS = 8  # max_wal_senders and max_replication_slots are 10 by default
POOL_MODES = ("transaction", "session")
SLOT_PREFIX = "ibcbench_replica_"
REPLICA_PREFIX = "replica-"
#: standby settings written into each standby's ibcbench.conf (``replica_settings`` adds to them)
STANDBY_DEFAULTS = {
    "hot_standby": "on",
    "hot_standby_feedback": "off",
    "max_standby_streaming_delay": "30s",
    "wal_receiver_status_interval": "1s",
}
_STATE_NAME = "topology.json"
MEMBER_PORT_OFFSET = 1000  # members listen from the primary's port + this


# ---- state ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicaState:
    index: int
    port: int
    slot: str
    settings: dict[str, str] = field(default_factory=dict)
    owner_pid: int | None = None

    @property
    def name(self) -> str:
        return f"{REPLICA_PREFIX}{self.index}"


@dataclass(frozen=True)
class PgBouncerState:
    port: int
    pool_mode: str = "transaction"
    pool_size: int = 25
    owner_pid: int | None = None


@dataclass(frozen=True)
class TopologyState:
    replicas: tuple[ReplicaState, ...] = ()
    pgbouncer: PgBouncerState | None = None

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "replicas": [asdict(r) for r in self.replicas],
                    "pgbouncer": asdict(self.pgbouncer) if self.pgbouncer else None,
                },
                indent=2,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str) -> TopologyState:
        raw = json.loads(text)
        replicas = tuple(ReplicaState(**r) for r in raw.get("replicas") or [])
        bouncer = raw.get("pgbouncer")
        return cls(replicas, PgBouncerState(**bouncer) if bouncer else None)


@dataclass(frozen=True)
class Member:
    """One process of the topology and how to reach it."""

    role: str  # primary, replica, pgbouncer
    name: str
    url: str
    running: bool
    detail: str = ""


@dataclass(frozen=True)
class TopologyUpResult:
    members: list[Member]
    started: list[str]
    removed: list[str]
    cleaned: list[str]
    primary: Any = None  # the server's UpResult


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes_with_argument(argument: str) -> list[int]:
    """Pids whose command line holds ``argument`` as one exact argument (the kit's own paths)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            found.append(int(entry.name))
    return found


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return not _pid_alive(pid)


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


class Topology:
    """The embedded primary (a :class:`LocalServer`), its standbys and PgBouncer. Safe to call again."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.server = LocalServer(settings)
        self.settings = self.server.settings

    # ---- paths and state ---------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.settings.cluster_dir / _STATE_NAME

    def replica_dir(self, index: int) -> Path:
        return self.settings.cluster_dir / f"{REPLICA_PREFIX}{index}"

    def replica_log(self, index: int) -> Path:
        return self.settings.cluster_dir / f"{REPLICA_PREFIX}{index}.log"

    @property
    def pgbouncer_dir(self) -> Path:
        return self.settings.cluster_dir / "pgbouncer"

    @property
    def pgbouncer_ini(self) -> Path:
        return self.pgbouncer_dir / "pgbouncer.ini"

    @property
    def pgbouncer_pidfile(self) -> Path:
        return self.pgbouncer_dir / "pgbouncer.pid"

    def read_state(self) -> TopologyState:
        try:
            return TopologyState.from_json(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return TopologyState()

    def _write_state(self, state: TopologyState) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.state_file)

    def replica_running(self, index: int) -> bool:
        """Whether the standby's postmaster.pid names its live postmaster (not a stale PID)."""
        return check_postmaster_pid(self.replica_dir(index)).ours

    def pgbouncer_running(self) -> bool:
        return check_pgbouncer_pid(self.pgbouncer_pidfile, self.pgbouncer_ini).ours

    # ---- URLs ----------------------------------------------------------------------------------
    def _url(self, port: int, database: str | None = None) -> str:
        primary = self.server.read_state()
        return serverauth.url(
            self.settings.role,
            "127.0.0.1",
            port,
            database or self.settings.database,
            primary.passfile if primary else None,
        )

    def replica_urls(self) -> list[str]:
        return [
            self._url(r.port) for r in self.read_state().replicas if self.replica_running(r.index)
        ]

    def pgbouncer_url(self) -> str | None:
        bouncer = self.read_state().pgbouncer
        return self._url(bouncer.port) if bouncer and self.pgbouncer_running() else None

    def pgbouncer_admin_url(self) -> str | None:
        bouncer = self.read_state().pgbouncer
        if bouncer is None or not self.pgbouncer_running():
            return None
        return self._url(bouncer.port, "pgbouncer")

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
                    self._url(r.port),
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
                    self._url(b.port),
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
    ) -> TopologyUpResult:
        """Start the primary and bring the topology to the shape asked for.

        ``replicas``/``pgbouncer`` None keep the recorded shape; ``replicas=0`` or ``pgbouncer=False``
        remove those members (a removed standby's slot is dropped and its folder deleted). Members
        started here get ``owner_pid``: when that process is gone, the next ``up()`` removes them.
        """
        if replicas is not None and not 0 <= replicas <= MAX_REPLICAS:
            raise ConfigError(f"replicas must be between 0 and {MAX_REPLICAS}, not {replicas}")
        if pool_mode is not None and pool_mode not in POOL_MODES:
            raise ConfigError(f"pool mode {pool_mode!r} is unknown: use {' or '.join(POOL_MODES)}")
        if pool_size is not None and not 1 <= pool_size <= 150:
            raise ConfigError(f"pool_size must be between 1 and 150, not {pool_size}")
        if pgbouncer:
            find_pgbouncer()
        primary = self.server.up()
        cleaned = self.clean_stale()
        state = self.read_state()
        started: list[str] = []
        removed: list[str] = []
        user = self.server._server_user()
        want = len(state.replicas) if replicas is None else replicas
        if want or state.replicas:
            self._allow_replication(user)
        for r in [r for r in state.replicas if r.index > want]:
            self._remove_replica(r)
            removed.append(r.name)
        kept = [r for r in state.replicas if r.index <= want]
        by_index = {r.index: r for r in kept}
        for index in range(1, want + 1):
            rep = by_index.get(index)
            if rep is None:
                rep = ReplicaState(
                    index, self._free_port(), f"{SLOT_PREFIX}{index}", owner_pid=owner_pid
                )
                by_index[index] = rep
                state = replace(
                    state, replicas=tuple(sorted(by_index.values(), key=lambda r: r.index))
                )
                self._write_state(state)  # recorded before anything runs
            if self.replica_running(index):
                if self._write_replica_conf(rep, user):  # e.g. the primary moved to another port
                    self._reload_replica(index, user)
            else:
                self._start_replica(rep, user)
                by_index[index] = self._replica(index)  # its port may have moved
                started.append(rep.name)
        state = replace(state, replicas=tuple(sorted(by_index.values(), key=lambda r: r.index)))
        self._write_state(state)

        want_bouncer = state.pgbouncer is not None if pgbouncer is None else pgbouncer
        if not want_bouncer and state.pgbouncer is not None:
            self._stop_pgbouncer()
            state = replace(state, pgbouncer=None)
            self._write_state(state)
            removed.append("pgbouncer")
        elif want_bouncer:
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
            state = replace(state, pgbouncer=bouncer)
            self._write_state(state)
            if not self.pgbouncer_running():
                self._start_pgbouncer(bouncer, user)
                started.append("pgbouncer")
        return TopologyUpResult(self.members(), started, removed, cleaned, primary)

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
    ) -> Iterator[TopologyUpResult]:
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

    def restart_replica(self, index: int = 1, *, down_s: float = 0.0) -> None:
        """Stop a standby (fast), wait ``down_s``, start it again: it catches up from its slot."""
        rep = self._replica(index)
        self._stop_replica(index)
        if down_s > 0:
            time.sleep(down_s)
        self._start_replica(rep, self.server._server_user())

    def configure_replica(self, index: int = 1, **settings: str) -> None:
        """Change a standby's settings (e.g. ``hot_standby_feedback="on"``) and reload it."""
        rep = self._replica(index)
        merged = {**rep.settings, **{k: str(v) for k, v in settings.items()}}
        state = self.read_state()
        rep = replace(rep, settings=merged)
        self._write_state(
            replace(state, replicas=tuple(rep if r.index == index else r for r in state.replicas))
        )
        user = self.server._server_user()
        self._write_replica_conf(rep, user)
        if self.replica_running(index):
            self._reload_replica(index, user)

    def _reload_replica(self, index: int, user: Any) -> None:
        bindir = find_pg_bindir(self.settings.pg_bindir)
        self.server._run(
            [str(bindir / "pg_ctl"), "-D", str(self.replica_dir(index)), "reload"], user
        )

    # ---- standbys ------------------------------------------------------------------------------
    def _replica(self, index: int) -> ReplicaState:
        for r in self.read_state().replicas:
            if r.index == index:
                return r
        raise ConfigError(
            f"the embedded server {self.settings.name!r} has no {REPLICA_PREFIX}{index}: "
            f"run `ibcbench db up --replicas {index}`"
        )

    def _replica_folders(self) -> list[Path]:
        if not self.settings.cluster_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.settings.cluster_dir.iterdir()
            if p.is_dir()
            and p.name.startswith(REPLICA_PREFIX)
            and p.name[len(REPLICA_PREFIX) :].isdigit()
        )

    def _admin(self) -> psycopg.Connection:
        state = self.server.read_state()
        if state is None:
            raise ServerError(
                f"the embedded server {self.settings.name!r} is not running: run `ibcbench db up`"
            )
        return psycopg.connect(state.conninfo("postgres"), autocommit=True, connect_timeout=10)

    def _allow_replication(self, user: Any) -> None:
        """A primary started before the kit wrote pg_hba's replication lines gets them, reloaded."""
        hba = self.settings.data_dir / "pg_hba.conf"
        if "local replication" in hba.read_text():
            return
        state = self.server.read_state()
        assert state is not None
        self.server._write_conf(state.port, state.timescaledb_license or "timescale", user)
        with self._admin() as conn:
            conn.execute("SELECT pg_reload_conf()")

    def _free_port(self) -> int:
        taken = {r.port for r in self.read_state().replicas}
        bouncer = self.read_state().pgbouncer
        if bouncer:
            taken.add(bouncer.port)
        primary = self.server.read_state()
        # above the range embedded primaries take (they scan 200 ports from 54329 and come back to
        # their previous port after a stop), so a stopped cluster does not find its port taken
        start = (primary.port if primary else 54329) + MEMBER_PORT_OFFSET
        for port in range(start, start + 400):
            if port not in taken and LocalServer.port_is_free(port):
                return port
        raise ServerError(f"no free port in {start}-{start + 399} for a topology member")

    def _write_replica_conf(self, rep: ReplicaState, user: Any) -> bool:
        """The standby's ibcbench.conf: the primary's settings on the standby's port, the standby
        section, and primary_conninfo to the primary's current port (it moves when the primary is
        restarted on another port). Returns whether the file changed."""
        folder = self.replica_dir(rep.index)
        primary = self.server.read_state()
        assert primary is not None
        conf = folder / "ibcbench.conf"
        standby = {**STANDBY_DEFAULTS, **rep.settings}
        text = self.server._conf_text(rep.port, primary.timescaledb_license or "timescale")
        text += f"\n# {rep.name}: a streaming standby of the primary (ibcbench.topology)\n"
        text += "".join(f"{k} = {_conf_value(v)}\n" for k, v in standby.items())
        changed = _write_if_changed(conf, text, user)
        changed = _write_if_changed(folder / "pg_hba.conf", serverauth.HBA_TEXT, user) or changed
        # primary_conninfo holds the password: postgresql.auto.conf (read last, where
        # pg_basebackup -R wrote it) is the server user's alone
        auto = folder / "postgresql.auto.conf"
        lines = auto.read_text().splitlines(keepends=True) if auto.exists() else []
        kept = [ln for ln in lines if not ln.startswith(("primary_conninfo", "primary_slot_name"))]
        params: dict[str, Any] = {
            "host": primary.socket_dir,
            "port": primary.port,
            "user": primary.role,
            "application_name": rep.name,
        }
        password = primary.password()
        if password is not None:
            params["password"] = password
        kept.append(f"primary_conninfo = {_conf_value(make_conninfo(**params))}\n")
        kept.append(f"primary_slot_name = '{rep.slot}'\n")
        return _write_if_changed(auto, "".join(kept), user) or changed

    def _start_replica(self, rep: ReplicaState, user: Any) -> None:
        bindir = find_pg_bindir(self.settings.pg_bindir)
        folder = self.replica_dir(rep.index)
        primary = self.server.read_state()
        assert primary is not None
        if not (folder / "PG_VERSION").exists() or not (folder / "standby.signal").exists():
            if folder.exists():
                shutil.rmtree(folder)  # a copy that never finished: the kit's own folder
            with self._admin() as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (rep.slot,)
                ).fetchone()
                if not exists:
                    conn.execute(
                        "SELECT pg_create_physical_replication_slot(%s, true)", (rep.slot,)
                    )
            conninfo = make_conninfo(
                host=primary.socket_dir,
                port=primary.port,
                user=primary.role,
                application_name=rep.name,
            )
            password = primary.password()
            self.server._run(
                [
                    str(bindir / "pg_basebackup"),
                    "-D",
                    str(folder),
                    "-d",
                    conninfo,
                    "-R",
                    "-S",
                    rep.slot,
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                ],
                user,
                timeout=3600,
                extra_env={"PGPASSWORD": password} if password else None,
            )
        if not LocalServer.port_is_free(rep.port):  # taken while the standby was stopped
            rep = replace(rep, port=self._free_port())
            self._replace_replica(rep)
        self._write_replica_conf(rep, user)
        # a postmaster.pid of a killed standby whose PID another process has since taken would make
        # the new postmaster refuse to start
        remove_stale(check_postmaster_pid(folder))
        try:
            self.server._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(folder),
                    "-l",
                    str(self.replica_log(rep.index)),
                    "-w",
                    "-t",
                    "120",
                    "start",
                ],
                user,
            )
        except ServerError as exc:
            raise ServerError(
                f"{rep.name} did not start: {exc} (see {self.replica_log(rep.index)})"
            ) from exc
        self._wait_streaming(rep)

    def _replace_replica(self, rep: ReplicaState) -> None:
        state = self.read_state()
        self._write_state(
            replace(
                state, replicas=tuple(rep if r.index == rep.index else r for r in state.replicas)
            )
        )

    def _wait_streaming(self, rep: ReplicaState, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._admin() as conn:
            while True:
                row = conn.execute(
                    "SELECT state FROM pg_stat_replication WHERE application_name = %s", (rep.name,)
                ).fetchone()
                if row and row[0] == "streaming":
                    return
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"{rep.name} started but does not stream from the primary: see {self.replica_log(rep.index)}"
                    )
                time.sleep(0.1)

    def _stop_replica(self, index: int) -> bool:
        """``pg_ctl stop`` of a standby whose postmaster.pid names its postmaster; a stale PID is
        not signalled."""
        folder = self.replica_dir(index)
        if not self.replica_running(index):
            return False
        bindir = find_pg_bindir(self.settings.pg_bindir)
        self.server._run(
            [str(bindir / "pg_ctl"), "-D", str(folder), "-m", "fast", "-w", "stop"],
            self.server._server_user(),
        )
        return True

    def _remove_replica(self, rep: ReplicaState) -> None:
        """Stop a standby, drop its slot (an unused slot keeps WAL forever) and delete its copy."""
        self._stop_replica(rep.index)
        if self.server.is_running():
            with self._admin() as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s AND NOT active",
                    (rep.slot,),
                )
        folder = self.replica_dir(rep.index)
        if folder.exists():
            shutil.rmtree(folder)
        self.replica_log(rep.index).unlink(missing_ok=True)
        state = self.read_state()
        self._write_state(
            replace(state, replicas=tuple(r for r in state.replicas if r.index != rep.index))
        )

    # ---- PgBouncer -----------------------------------------------------------------------------
    def _pgbouncer_ini(self, bouncer: PgBouncerState) -> str:
        primary = self.server.read_state()
        assert primary is not None
        d = self.pgbouncer_dir
        return (
            "; written by `ibcbench db up --pgbouncer` on every start (ibcbench.topology)\n"
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
                    self._url(bouncer.port, "pgbouncer"),
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
        pids = set(_processes_with_argument(str(self.pgbouncer_ini)))
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)  # immediate shutdown
        for p in pids:
            if not _wait_gone(p, 10):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
                _wait_gone(p, 5)
        self.pgbouncer_pidfile.unlink(missing_ok=True)
        return bool(pids)

    # ---- what a killed run left ----------------------------------------------------------------
    def clean_stale(self) -> list[str]:
        """Remove what runs that are gone left behind; returns what was cleaned (one line each).

        Members whose owner process is gone are removed; standby folders and slots the state does not
        name are removed (a run killed while creating a standby); a PgBouncer the state does not name
        is stopped; stale pidfiles of PgBouncer are deleted. Only the kit's own paths are touched.
        """
        cleaned: list[str] = []
        state = self.read_state()
        for r in state.replicas:
            if r.owner_pid is not None and not _pid_alive(r.owner_pid):
                self._remove_replica(r)
                cleaned.append(f"{r.name} of a run that is gone (pid {r.owner_pid}) removed")
        state = self.read_state()
        known = {r.index for r in state.replicas}
        for folder in self._replica_folders():
            index = int(folder.name[len(REPLICA_PREFIX) :])
            if index not in known:
                self._remove_replica(ReplicaState(index, 0, f"{SLOT_PREFIX}{index}"))
                cleaned.append(f"{folder.name} not in {_STATE_NAME} removed")
        if self.server.is_running():
            with self._admin() as conn:
                slots = [
                    r[0]
                    for r in conn.execute(
                        "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s AND NOT active",
                        (SLOT_PREFIX + "%",),
                    ).fetchall()
                ]
                for slot in slots:
                    if slot not in {r.slot for r in state.replicas}:
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        cleaned.append(f"replication slot {slot} of no standby dropped")
        bouncer = state.pgbouncer
        if (
            bouncer is not None
            and bouncer.owner_pid is not None
            and not _pid_alive(bouncer.owner_pid)
        ):
            self._stop_pgbouncer()
            self._write_state(replace(state, pgbouncer=None))
            cleaned.append(f"pgbouncer of a run that is gone (pid {bouncer.owner_pid}) stopped")
        elif bouncer is None and (
            self.pgbouncer_running() or _processes_with_argument(str(self.pgbouncer_ini))
        ):
            self._stop_pgbouncer()
            cleaned.append(f"pgbouncer not in {_STATE_NAME} stopped")
        elif self.pgbouncer_pidfile.exists() and not self.pgbouncer_running():
            self.pgbouncer_pidfile.unlink(missing_ok=True)
            cleaned.append("stale pgbouncer pidfile removed")
        return cleaned


def _write_if_changed(path: Path, text: str, user: Any) -> bool:
    """``path`` holding ``text``, mode 0600, owned by the server user; returns whether it changed."""
    changed = not path.exists() or path.read_text() != text
    if changed:
        path.write_text(text)
    os.chmod(path, 0o600)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return changed


def _conf_value(value: str) -> str:
    text = str(value)
    if text.replace(".", "", 1).isdigit() or text in ("on", "off", "true", "false"):
        return text
    return "'" + text.replace("'", "''") + "'"


# ---- URLs of any topology (embedded or external) ------------------------------------------------
def embedded_topology(dsn: str | None, settings: ServerSettings | None = None) -> Topology | None:
    """The embedded topology behind ``dsn`` (None: the embedded server of ``settings``), found by the
    port among the kit's clusters under ``IBCBENCH_HOME``; None when ``dsn`` is an external server."""
    if explicit_dsn(dsn) is None:
        return Topology(settings)
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
            topo = Topology(replace(base, name=name))
        except ConfigError:
            continue
        primary = topo.server.read_state()
        if primary is not None and int(port) == primary.port and topo.server.is_running():
            return topo
    return None


def _same_database(url: str, dsn: str | None) -> str:
    """``url`` on the database ``dsn`` names (the embedded members serve every database)."""
    if explicit_dsn(dsn) is None:
        return url
    dbname = conninfo_to_dict(explicit_dsn(dsn) or "").get("dbname")
    if not dbname:
        return url
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


def replica_urls(
    replica_dsn: str | None = None,
    *,
    dsn: str | None = None,
    settings: ServerSettings | None = None,
) -> list[str]:
    """Standby URLs: ``replica_dsn`` (comma-separated), else ``REPLICA_URL``, else the running standbys
    of the embedded topology behind ``dsn`` (on ``dsn``'s database)."""
    given = replica_dsn or os.environ.get("REPLICA_URL")
    if given:
        return [u.strip() for u in given.split(",") if u.strip()]
    topo = embedded_topology(dsn, settings)
    return [_same_database(u, dsn) for u in topo.replica_urls()] if topo else []


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
    return _same_database(url, dsn) if url else None


def admin_console_url(pgbouncer: str) -> str:
    """PgBouncer's admin console (database ``pgbouncer``) at the address of ``pgbouncer``."""
    params = conninfo_to_dict(pgbouncer)
    params["dbname"] = "pgbouncer"
    return make_conninfo("", **params)


# ---- status ----------------------------------------------------------------------------------------
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


def replication_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """pg_stat_replication joined with the slots, on the primary: lag in bytes (sent - replay) and
    seconds (replay_lag), slot active and restart_lsn."""
    cur = conn.execute(
        "SELECT r.application_name, r.state, r.sent_lsn::text, r.replay_lsn::text,"
        " pg_wal_lsn_diff(r.sent_lsn, r.replay_lsn)::bigint AS lag_bytes,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint AS behind_bytes,"
        " extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s,"
        " s.slot_name, s.active, s.restart_lsn::text"
        " FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid"
        " ORDER BY r.application_name"
    )
    cols = [d.name for d in cur.description or []]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def standby_lag(conn: psycopg.Connection) -> tuple[str | None, float | None, bool]:
    """On a standby: its replay LSN, seconds since the last replayed transaction (0 when it has
    replayed all it received), and whether replay is paused."""
    row = conn.execute(
        "SELECT pg_last_wal_replay_lsn()::text,"
        " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
        " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,"
        " pg_get_wal_replay_pause_state() <> 'not paused'"
    ).fetchone()
    assert row is not None
    return row[0], row[1], bool(row[2])


def show_pools(admin_url: str) -> list[dict[str, Any]]:
    """PgBouncer's SHOW POOLS (the admin console speaks the simple query protocol only)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute("SHOW POOLS")
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def topology_status(
    dsn: str | None = None,
    *,
    replica_dsn: str | None = None,
    pgbouncer_dsn: str | None = None,
    settings: ServerSettings | None = None,
) -> list[MemberStatus]:
    """Every member with its role, lag, slot and pool counters."""
    primary = resolve_dsn(dsn, settings)
    out = []
    with psycopg.connect(primary, autocommit=True, connect_timeout=10) as conn:
        rows = replication_rows(conn)
        slots = conn.execute(
            "SELECT slot_name, active, restart_lsn::text FROM pg_replication_slots WHERE slot_type = 'physical'"
        ).fetchall()
    out.append(
        MemberStatus(
            "primary",
            describe_dsn(primary),
            True,
            detail=f"{len(rows)} standby(s) streaming, {len(slots)} physical slot(s)",
        )
    )
    by_name = {r["application_name"]: r for r in rows}
    topo = embedded_topology(dsn, settings)
    names: list[str | None] = []
    if not (replica_dsn or os.environ.get("REPLICA_URL")) and topo is not None:
        reps = topo.read_state().replicas
        urls = [_same_database(topo._url(r.port), dsn) for r in reps]
        names = [r.name for r in reps]
    else:
        urls = replica_urls(replica_dsn, dsn=dsn, settings=settings)
        names = [None] * len(urls)
    slot_by_name = {s[0]: s for s in slots}
    for url, name in zip(urls, names, strict=True):
        row = (
            by_name.get(name) if name else (rows[0] if len(rows) == 1 and len(urls) == 1 else None)
        )
        slot = slot_by_name.get(row["slot_name"]) if row and row.get("slot_name") else None
        if slot is None and name:
            slot = slot_by_name.get(f"{SLOT_PREFIX}{name[len(REPLICA_PREFIX) :]}")
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as rconn:
                _, lag_s, paused = standby_lag(rconn)
            running = True
        except psycopg.OperationalError:
            lag_s, paused, running = None, False, False
        out.append(
            MemberStatus(
                "replica",
                (name + " " if name else "") + describe_dsn(url),
                running,
                lag_bytes=int(row["lag_bytes"]) if row and row["lag_bytes"] is not None else None,
                lag_s=lag_s,
                replay_lag_s=row["replay_lag_s"] if row else None,
                slot=slot[0] if slot else None,
                slot_active=bool(slot[1]) if slot else None,
                slot_restart_lsn=slot[2] if slot else None,
                detail=("replay paused; " if paused else "")
                + (row["state"] if row else "not streaming"),
            )
        )
    bouncer = pgbouncer_url(pgbouncer_dsn, dsn=dsn, settings=settings)
    if bouncer is None and topo is not None and topo.read_state().pgbouncer is not None:
        b = topo.read_state().pgbouncer
        assert b is not None
        out.append(
            MemberStatus("pgbouncer", describe_dsn(topo._url(b.port)), False, detail="not running")
        )
    elif bouncer is not None:
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
        out.append(
            MemberStatus("pgbouncer", describe_dsn(bouncer), running, pools=pools, detail=detail)
        )
    return out


def format_members(members: list[MemberStatus]) -> str:
    """The topology as lines for ``ibcbench db status``."""
    lines = []
    for m in members:
        head = f"{m.role + ':':<12} {m.target}  {'running' if m.running else 'NOT RUNNING'}"
        if m.detail:
            head += f" ({m.detail})"
        lines.append(head)
        if m.role == "replica":
            lag = "lag:         " + (
                f"{m.lag_bytes:,} bytes sent-not-replayed"
                if m.lag_bytes is not None
                else "bytes unknown"
            )
            lag += ", " + (
                f"{m.lag_s:.3f} s since the last replayed commit"
                if m.lag_s is not None
                else "seconds unknown"
            )
            if m.replay_lag_s is not None:
                lag += f", replay_lag {m.replay_lag_s:.3f} s"
            lines.append("             " + lag)
            if m.slot:
                lines.append(
                    f"             slot {m.slot}: {'active' if m.slot_active else 'INACTIVE (retains WAL)'},"
                    f" restart_lsn {m.slot_restart_lsn}"
                )
        if m.role == "pgbouncer":
            if m.running and not [p for p in m.pools if p.get("database") != "pgbouncer"]:
                lines.append(
                    "             no pools yet (PgBouncer opens one on a database's first client)"
                )
            for p in m.pools:
                if p.get("database") == "pgbouncer":
                    continue
                lines.append(
                    f"             pool {p.get('database')}/{p.get('user')}: cl_active {p.get('cl_active')},"
                    f" cl_waiting {p.get('cl_waiting')}, sv_active {p.get('sv_active')}, sv_idle {p.get('sv_idle')}"
                )
    return "\n".join(lines)
