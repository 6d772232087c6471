"""What the embedded primary's members share: their recorded shape, folders, URLs and processes.

The members are the streaming standbys (:mod:`ibcbench.infra.standbys`) and PgBouncer
(:mod:`ibcbench.infra.pgbouncer`) that :class:`ibcbench.infra.scaleout.ScaleOut` brings up beside the primary.
Their shape is recorded in ``<cluster_dir>/topology.json`` (:class:`TopologyState`) before a member
starts; :class:`MemberFiles` holds the paths, that record, the members' URLs (naming the primary's
password file, never the password) and the primary's admin connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ibcbench.errors import ServerError
from ibcbench.infra import serverauth
from ibcbench.infra.pidfile import check_pgbouncer_pid, check_postmaster_pid
from ibcbench.infra.server import LocalServer
from ibcbench.settings import ServerSettings

SLOT_PREFIX = "ibcbench_replica_"
REPLICA_PREFIX = "replica-"
STATE_NAME = "topology.json"
MEMBER_PORT_OFFSET = 1000  # members listen from the primary's port + this


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_with_argument(argument: str) -> list[int]:
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


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return not pid_alive(pid)


def write_if_changed(path: Path, text: str, user: Any) -> bool:
    """``path`` holding ``text``, mode 0600, owned by the server user; returns whether it changed."""
    changed = not path.exists() or path.read_text() != text
    if changed:
        path.write_text(text)
    os.chmod(path, 0o600)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return changed


def conf_value(value: str) -> str:
    """A postgresql.conf value: numbers and booleans as they are, anything else quoted."""
    text = str(value)
    if text.replace(".", "", 1).isdigit() or text in ("on", "off", "true", "false"):
        return text
    return "'" + text.replace("'", "''") + "'"


class MemberFiles:
    """The paths, recorded shape and URLs of the members beside one embedded primary."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.server = LocalServer(settings)
        self.settings = self.server.settings

    # ---- paths and state ---------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.settings.cluster_dir / STATE_NAME

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
    def member_url(self, port: int, database: str | None = None) -> str:
        """The URL of the member on ``port`` (default: the kit's database), naming the passfile."""
        primary = self.server.read_state()
        return serverauth.url(
            self.settings.role,
            "127.0.0.1",
            port,
            database or self.settings.database,
            primary.passfile if primary else None,
        )

    def _admin(self) -> psycopg.Connection:
        state = self.server.read_state()
        if state is None:
            raise ServerError(
                f"the embedded server {self.settings.name!r} is not running: run `ibcbench db up`"
            )
        return psycopg.connect(state.conninfo("postgres"), autocommit=True, connect_timeout=10)

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
